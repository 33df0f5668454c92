// The value transforms of one field on one side, applied both ways: a side's text to the
// canonical value the core decides on, and a canonical value to the text written to the
// side. Built from a checked FieldMapping; pure, so the engine, `init` and tests share it.
//
// Composition, each step only when configured:
//   to_side(c)      = normalize(map(scale(c)))
//   to_canonical(r) = canonical(unscale(unmap(normalize(r))))
// - value map: one-to-one, canonical <-> side; a value outside the map is an error both ways
//   (an invalid_value for the engine), never passed through, so the map always round-trips.
// - scale n: the side holds whole units of 10^-n (6: micros). Exact digit shifts, never a
//   double. A canonical value with more decimals than the side can hold, and a side value
//   that is not whole, are errors, as is a side value that does not divide back into an
//   integer field.
// - normalizers (text fields): the column holds values in normalized form. Reading, the
//   side's text is normalized first ("HTTPS://WWW.Example.com/" reads as "example.com");
//   writing, what is written is normalized (a golden "https://www.example.com/about" from a
//   side without the normalizer is written as "example.com"), then spelled the side's way
//   when the column has a `write_as` template ("https://{value}" writes
//   "https://example.com", which the normalizers read back as "example.com").
//
// Equality on the side. A side value r *holds* a canonical value c (side_holds) when its
// normalized text is side_form(c) (to_side before write_as), or when it reads back as a value equal
// to c ("12500000.000" holds "12.5" at scale 6). The engine reads a captured value with
// to_canonical(raw, base), which returns the base itself when the side still holds it, so a
// formatting-only edit is no change and golden keeps its spelling; and it skips a write whose
// target already holds the value. So formatting-only differences cause no write and no
// ping-pong. Normalizers make a transform lossy: to_canonical(to_side(c)) is then the
// normalized c, and the round-trip check asks that the side form be stable instead.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mdsync/core/ruleset.hpp"
#include "mdsync/core/value.hpp"
#include "mdsync/mapping/field_mapping.hpp"

namespace mdsync::mapping {

// The result of converting one value: the value (possibly NULL), or why it cannot convert.
class Converted {
 public:
  static Converted of(core::Value v) { return Converted(std::move(v), {}); }
  static Converted failure(std::string reason) { return Converted({}, std::move(reason)); }

  bool ok() const { return reason_.empty(); }
  const core::Value& value() const { return value_; }    // NULL when !ok()
  const std::string& reason() const { return reason_; }  // empty when ok()

 private:
  Converted(core::Value v, std::string reason) : value_(std::move(v)), reason_(std::move(reason)) {}
  core::Value value_;
  std::string reason_;
};

// Scales outside this range are refused: nothing real needs them, and a typo such as 60
// would make every value a 60-digit number.
inline constexpr int kMaxScale = 18;

class FieldTransform {
 public:
  // The identity: the column holds the canonical value itself.
  explicit FieldTransform(core::FieldType type);
  // Throws std::invalid_argument with a reason fit for a config error: a scale on a field
  // that is not numeric or integer, a map together with a scale, normalizers on a field that
  // is not text, a map key that is not a value of the field's type, a map that is not
  // one-to-one (also after the normalizers: "Belgium" and "BELGIUM" under lower).
  FieldTransform(core::FieldType type, const FieldMapping& mapping);

  // A side's value to the canonical value (NULL stays NULL).
  Converted to_canonical(const core::Value& raw) const;
  // Reads a captured side value against the side's base: the base itself when the side
  // still holds it (side_holds), else to_canonical(raw). This is how a formatting-only
  // difference becomes no change.
  Converted to_canonical(const core::Value& raw, const core::Value& base) const;
  // A canonical value to the side's text (NULL stays NULL), spelled by write_as.
  Converted to_side(const core::Value& canonical) const;
  // The same before write_as: the normalized form two spellings of one value share.
  Converted side_form(const core::Value& canonical) const;
  // Whether the side's value `raw` stands for `canonical`: its normalized text is what
  // side_form(canonical) is, or it reads back as a value equal to canonical. A write whose
  // target already holds the value needs not be made; this is also the write-back condition
  // for columns whose text may differ from what was last written.
  bool side_holds(const core::Value& raw, const core::Value& canonical) const;

  // nullopt when `canonical` survives the trip to the side and back: exactly for a lossless
  // transform; for a normalizing one, the side form it gets is stable (reading it back and
  // writing again gives the same text) and holds the value. Else the reason.
  std::optional<std::string> check_round_trip(const core::Value& canonical) const;
  // The same from the side: a side value reads, writes back as a text that holds what it
  // read, and reads back the same. For checking a live side's sample values.
  std::optional<std::string> check_side_round_trip(const core::Value& raw) const;

  bool identity() const { return map_to_side_.empty() && !scale_ && normalize_.empty(); }
  bool lossless() const { return normalize_.empty(); }
  core::FieldType type() const { return type_; }

 private:
  core::FieldType type_;
  std::optional<int> scale_;
  std::vector<Normalizer> normalize_;
  std::string write_as_;  // "https://{value}"; empty: the normalized text is written
  std::string spell(const std::string& normalized) const;
  std::map<std::string, std::string> map_to_side_;       // canonical -> normalized side text
  std::map<std::string, std::string> map_to_canonical_;  // normalized side text -> canonical
};

}  // namespace mdsync::mapping
