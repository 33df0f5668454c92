#include "mdsync/mapping/field_transform.hpp"

#include <stdexcept>

#include "mdsync/mapping/decimal_scale.hpp"

namespace mdsync::mapping {

namespace {

constexpr const char* kValueSlot = "{value}";

std::string quoted(const std::string& s) {
  return "'" + s + "'";
}

// "'BE', 'NL'" (at most eight, then "..."): what a map accepts, for error messages.
std::string listing(const std::map<std::string, std::string>& m) {
  std::string out;
  std::size_t n = 0;
  for (const auto& [k, v] : m) {
    (void)v;
    if (n++ == 8) return out + ", ...";
    out += (out.empty() ? "" : ", ") + quoted(k);
  }
  return out;
}

std::string unit_text(int scale) {
  return "10^" + std::to_string(-scale);
}

bool numeric_type(core::FieldType t) {
  return t == core::FieldType::kNumeric || t == core::FieldType::kInteger;
}

}  // namespace

FieldTransform::FieldTransform(core::FieldType type) : type_(type) {}

FieldTransform::FieldTransform(core::FieldType type, const FieldMapping& mapping)
    : type_(type), scale_(mapping.scale), normalize_(mapping.normalize) {
  const std::string type_name = core::to_string(type);
  if (scale_) {
    if (!numeric_type(type))
      throw std::invalid_argument("scale applies to numeric and integer fields, not " + type_name);
    if (*scale_ < -kMaxScale || *scale_ > kMaxScale)
      throw std::invalid_argument("scale must be between " + std::to_string(-kMaxScale) + " and " +
                                  std::to_string(kMaxScale));
    if (!mapping.value_map.empty())
      throw std::invalid_argument("a field cannot have both a value map and a scale");
  }
  if (!normalize_.empty() && type != core::FieldType::kText)
    throw std::invalid_argument("normalizers apply to text fields, not " + type_name);
  if (!mapping.write_as.empty()) {
    // A spelling is only a spelling where the column's normalizers read it back as the value;
    // without them, "https://{value}" would be a different value on the side.
    if (normalize_.empty())
      throw std::invalid_argument(
          "write_as needs the column's normalizers (such as [\"url_host\"]): they read what it "
          "writes back as the value");
    const std::size_t at = mapping.write_as.find(kValueSlot);
    if (at == std::string::npos || mapping.write_as.find(kValueSlot, at + 1) != std::string::npos)
      throw std::invalid_argument("write_as must hold {value} exactly once, as in " +
                                  quoted("https://{value}"));
    write_as_ = mapping.write_as;
    // A template no ordinary value survives is a mistake; a value it cannot spell at run time
    // is written in its normalized form (to_side).
    std::string refusal;
    bool reads_back = false;
    for (const char* sample : {"example.com", "x"}) {
      const auto value = normalize(normalize_, sample);
      if (!value || value->empty()) continue;
      const std::string written = spell(*value);
      const auto back = normalize(normalize_, written);
      if (back && *back == *value) {
        reads_back = true;
        break;
      }
      if (refusal.empty())
        refusal = "write_as " + quoted(write_as_) + " does not read back: " + quoted(*value) +
                  " is written as " + quoted(written) + ", which the normalizers read as " +
                  (back ? quoted(*back) : std::string("text that is not UTF-8"));
    }
    if (!reads_back && !refusal.empty()) throw std::invalid_argument(refusal);
  }
  if (!mapping.value_map.empty() && type == core::FieldType::kJson)
    throw std::invalid_argument("a value map does not apply to json fields");
  for (const auto& [canonical_raw, side_raw] : mapping.value_map) {
    const auto canonical = core::canonicalize(type, canonical_raw);
    if (!canonical || !*canonical)
      throw std::invalid_argument("value map: " + quoted(canonical_raw) + " is not a " + type_name +
                                  " value");
    const auto side = normalize(normalize_, side_raw);
    if (!side) throw std::invalid_argument("value map: " + quoted(side_raw) + " is not UTF-8");
    if (auto [it, fresh] = map_to_side_.emplace(**canonical, *side); !fresh)
      throw std::invalid_argument("value map: " + quoted(canonical_raw) + " is the " + type_name +
                                  " value " + quoted(it->first) + " again");
    if (auto [it, fresh] = map_to_canonical_.emplace(*side, **canonical); !fresh)
      throw std::invalid_argument("value map is not one-to-one: " + quoted(it->second) + " and " +
                                  quoted(**canonical) + " both become side value " + quoted(*side) +
                                  ", which could not be read back");
  }
}

Converted FieldTransform::to_canonical(const core::Value& raw) const {
  if (!raw) return Converted::of(std::nullopt);
  std::string text = *raw;
  if (!normalize_.empty()) {
    auto n = normalize(normalize_, text);
    if (!n) return Converted::failure("side value is not valid UTF-8");
    text = std::move(*n);
  }
  if (!map_to_canonical_.empty()) {
    const auto it = map_to_canonical_.find(text);
    if (it == map_to_canonical_.end())
      return Converted::failure(
          "side value " + quoted(text) +
          " is not in the value map (side values: " + listing(map_to_canonical_) + ")");
    text = it->second;
  }
  if (scale_) {
    const auto d = core::canonical_decimal(text);
    if (!d) return Converted::failure("side value " + quoted(text) + " is not a decimal number");
    if (!is_whole(*d))
      return Converted::failure("side value " + quoted(text) + " is not a whole number of " +
                                unit_text(*scale_) + " units (scale " + std::to_string(*scale_) +
                                ")");
    text = *shift_decimal(*d, -*scale_);
    if (type_ == core::FieldType::kInteger && !is_whole(text))
      return Converted::failure("side value " + quoted(*raw) + " is " + text + " at scale " +
                                std::to_string(*scale_) + ", not a whole number");
  }
  const auto canonical = core::canonicalize(type_, text);
  if (!canonical)
    return Converted::failure(quoted(text) + " is not a " + std::string(core::to_string(type_)) +
                              " value");
  return Converted::of(*canonical);
}

Converted FieldTransform::to_canonical(const core::Value& raw, const core::Value& base) const {
  if (side_holds(raw, base)) return Converted::of(base);
  return to_canonical(raw);
}

std::string FieldTransform::spell(const std::string& normalized) const {
  if (write_as_.empty()) return normalized;
  std::string out = write_as_;
  return out.replace(out.find(kValueSlot), std::string(kValueSlot).size(), normalized);
}

Converted FieldTransform::to_side(const core::Value& canonical) const {
  const Converted form = side_form(canonical);
  if (!form.ok() || !form.value() || write_as_.empty()) return form;
  // A value the template cannot spell so that it reads back (a "host" with a space, which
  // url_host keeps whole) is written in its normalized form, which always does.
  const std::string spelled = spell(*form.value());
  const auto back = normalize(normalize_, spelled);
  if (!back || *back != *form.value()) return form;
  return Converted::of(spelled);
}

Converted FieldTransform::side_form(const core::Value& canonical) const {
  if (!canonical) return Converted::of(std::nullopt);
  const auto c = core::canonicalize(type_, canonical);
  if (!c || !*c)
    return Converted::failure(quoted(*canonical) + " is not a " +
                              std::string(core::to_string(type_)) + " value");
  std::string text = **c;
  if (scale_) {
    const auto shifted = shift_decimal(text, *scale_);
    if (!shifted) return Converted::failure(quoted(text) + " cannot be scaled");
    if (!is_whole(*shifted)) {
      if (*scale_ >= 0)
        return Converted::failure(quoted(text) + " has more than " + std::to_string(*scale_) +
                                  " decimal places; the side stores whole " + unit_text(*scale_) +
                                  " units (scale " + std::to_string(*scale_) + ")");
      return Converted::failure(quoted(text) + " is not a whole multiple of " + unit_text(*scale_) +
                                " (scale " + std::to_string(*scale_) + ")");
    }
    text = *shifted;
  }
  if (!map_to_side_.empty()) {
    const auto it = map_to_side_.find(text);
    if (it == map_to_side_.end())
      return Converted::failure(quoted(text) +
                                " is not in the value map (values: " + listing(map_to_side_) + ")");
    return Converted::of(it->second);  // stored normalized
  }
  if (!normalize_.empty()) {
    auto n = normalize(normalize_, text);
    if (!n) return Converted::failure(quoted(text) + " is not valid UTF-8");
    text = std::move(*n);
  }
  return Converted::of(std::move(text));
}

bool FieldTransform::side_holds(const core::Value& raw, const core::Value& canonical) const {
  if (!raw || !canonical) return !raw && !canonical;
  const Converted written = side_form(canonical);
  if (written.ok() && written.value()) {
    const auto n = normalize(normalize_, *raw);
    if (n && *n == *written.value()) return true;
  }
  const Converted read = to_canonical(raw);
  if (!read.ok()) return false;
  const auto c = core::canonicalize(type_, canonical);
  return c && core::values_equal(type_, core::Compare::kExact, read.value(), *c);
}

std::optional<std::string> FieldTransform::check_round_trip(const core::Value& canonical) const {
  const Converted side = to_side(canonical);
  if (!side.ok()) return "to the side: " + side.reason();
  const Converted back = to_canonical(side.value());
  if (!back.ok()) return "back from side value " + core::show(side.value()) + ": " + back.reason();
  const auto c = core::canonicalize(type_, canonical);
  if (!c) return core::show(canonical) + " is not a " + std::string(core::to_string(type_));
  if (lossless()) {
    if (!core::values_equal(type_, core::Compare::kExact, back.value(), *c))
      return core::show(*c) + " is written as " + core::show(side.value()) + " and reads back as " +
             core::show(back.value());
    return std::nullopt;
  }
  const Converted again = to_side(back.value());
  if (!again.ok() || again.value() != side.value())
    return core::show(*c) + " is written as " + core::show(side.value()) +
           ", which is not stable: read back and written again it becomes " +
           (again.ok() ? core::show(again.value()) : again.reason());
  if (!side_holds(side.value(), *c))
    return "side value " + core::show(side.value()) + " does not hold " + core::show(*c);
  return std::nullopt;
}

std::optional<std::string> FieldTransform::check_side_round_trip(const core::Value& raw) const {
  const Converted read = to_canonical(raw);
  if (!read.ok()) return read.reason();
  const Converted written = to_side(read.value());
  if (!written.ok())
    return "read as " + core::show(read.value()) +
           ", which cannot be written back: " + written.reason();
  if (!side_holds(raw, read.value()))
    return "side value " + core::show(raw) + " does not hold what it reads as, " +
           core::show(read.value());
  const Converted again = to_canonical(written.value());
  if (!again.ok() || !core::values_equal(type_, core::Compare::kExact, again.value(), read.value()))
    return "side value " + core::show(raw) + " reads as " + core::show(read.value()) +
           ", is written back as " + core::show(written.value()) + " and reads back as " +
           (again.ok() ? core::show(again.value()) : again.reason());
  return std::nullopt;
}

}  // namespace mdsync::mapping
