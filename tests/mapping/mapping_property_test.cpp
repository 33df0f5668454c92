// Property tests of the mapping transforms: exact round trips for value maps and scales,
// stable side forms for normalizers, idempotent normalizers, and no change for formatting-
// only differences, on hostile Unicode and numbers of any size. rapidcheck prints its seed;
// RC_PARAMS="seed=N" replays a run, and a failure found becomes a plain test elsewhere.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "mdsync/core/utf8.hpp"
#include "mdsync/mapping/decimal_scale.hpp"
#include "mdsync/mapping/field_transform.hpp"
#include "mdsync/mapping/match_keys.hpp"
#include "mdsync/mapping/normalizer.hpp"

namespace mdsync::mapping {
namespace {

using core::FieldType;
using core::Value;

// Code points chosen to break things: white space of several kinds, marks that combine or
// that are invisible, direction marks, case oddities, URL punctuation, emoji, scripts that
// run right to left, and the last code point. No NUL and no invalid UTF-8 (values from
// PostgreSQL have neither); invalid bytes have tests of their own.
const std::vector<char32_t> kCodePoints = {
    U'a',          U'B',          U'z',          U'0',      U'9',      U' ',      U'\t',
    U'.',          U'/',          U':',          U'@',      U'?',      U'#',      U'-',
    U'&',          U'\'',         U',',          U'w',      U'W',      U'\u00A0', U'\u3000',
    U'\u2003',     U'\u200F',     U'\u200E',     U'\u202E', U'\u200D', U'\uFEFF', U'\u0301',
    U'\u0308',     U'\u00C9',     U'\u00DF',     U'\u0130', U'\u03A3', U'\u1100', U'\u1161',
    U'\uFB01',     U'\U0001F600', U'\U0001F680', U'\u05D0', U'\u0627', U'\u4E2D', U'\uFFFD',
    U'\U0010FFFF', U'\u2019'};

std::string utf8(const std::u32string& cps) {
  std::string out;
  for (char32_t c : cps) core::append_utf8(out, static_cast<std::uint32_t>(c));
  return out;
}

rc::Gen<std::string> gen_text() {
  return rc::gen::map(rc::gen::container<std::u32string>(rc::gen::elementOf(kCodePoints)), utf8);
}

rc::Gen<std::string> gen_digits(int max) {
  return rc::gen::map(
      rc::gen::container<std::vector<int>>(*rc::gen::inRange(0, max + 1), rc::gen::inRange(0, 10)),
      [](const std::vector<int>& ds) {
        std::string s;
        for (int d : ds) s += static_cast<char>('0' + d);
        return s;
      });
}

// A canonical decimal with up to 40 integer digits and up to `max_frac` fractional ones.
rc::Gen<std::string> gen_decimal(int max_frac) {
  return rc::gen::exec([max_frac] {
    const bool negative = *rc::gen::arbitrary<bool>();
    std::string text = (negative ? "-" : "") + *gen_digits(40) + "." + *gen_digits(max_frac);
    if (text == "." || text == "-.") text = "0";
    return *core::canonical_decimal(text);
  });
}

// Pieces of URLs and company names, so that the normalizers' own cases come up often:
// schemes, www., ports, dots where marks combine, legal suffixes in pieces.
const std::vector<std::string> kFragments = {
    "https://", "HTTP://", "//",   "www.", "WWW.",   ".",          "..",     ":8080",
    "/",        "?q",      "#f",   "@",    "[",      "]",          " ",      "\u00A0",
    "e",        "\u0301",  "Acme", "co",   " Inc.",  " S.A.",      " GmbH",  " & Co. KG",
    "a/s",      "S",       "p",    "A",    "\u200F", "\U0001F600", "\u0130", "\u03A3"};

rc::Gen<std::string> gen_fragments() {
  return rc::gen::map(rc::gen::container<std::vector<std::string>>(rc::gen::elementOf(kFragments)),
                      [](const std::vector<std::string>& parts) {
                        std::string out;
                        for (const std::string& p : parts) out += p;
                        return out;
                      });
}

const std::vector<Normalizer> kAll = {Normalizer::kTrim, Normalizer::kLower, Normalizer::kNfc,
                                      Normalizer::kUrlHost, Normalizer::kCompanyName};

// Eight texts per case through every normalizer: idempotence faults hide in rare
// combinations ("www." twice, a mark after a dropped dot), so each run tries many.
RC_GTEST_PROP(MappingProperties, NormalizersAreIdempotent, ()) {
  const auto texts =
      *rc::gen::container<std::vector<std::string>>(8, rc::gen::oneOf(gen_text(), gen_fragments()));
  for (const std::string& text : texts)
    for (Normalizer n : kAll) {
      const auto once = normalize(n, text);
      RC_ASSERT(once.has_value());
      const auto twice = normalize(n, *once);
      if (!twice || *twice != *once)
        RC_FAIL(std::string(to_string(n)) + ": '" + text + "' -> '" + *once + "' -> '" +
                (twice ? *twice : std::string("<not UTF-8>")) + "'");
    }
}

RC_GTEST_PROP(MappingProperties, ScaleRoundTripsExactly, ()) {
  const int scale = *rc::gen::inRange(-kMaxScale, kMaxScale + 1);
  FieldMapping m{"amount", "amount_units"};
  m.scale = scale;
  const FieldTransform t(FieldType::kNumeric, m);
  // Values the side can hold: at most `scale` decimals (none, and whole multiples of
  // 10^-scale, for a negative scale).
  std::string c = *gen_decimal(scale > 0 ? scale : 0);
  if (scale < 0) c = *shift_decimal(c, -scale);
  RC_ASSERT(t.check_round_trip(c) == std::nullopt);
  const Converted side = t.to_side(c);
  RC_ASSERT(side.ok());
  RC_ASSERT(is_whole(*side.value()));
  RC_ASSERT(*t.to_canonical(side.value()).value() == c);
  RC_ASSERT(t.check_side_round_trip(side.value()) == std::nullopt);
}

RC_GTEST_PROP(MappingProperties, ScaleEitherRoundTripsOrSaysWhy, ()) {
  const int scale = *rc::gen::inRange(-kMaxScale, kMaxScale + 1);
  FieldMapping m{"amount", "amount_units"};
  m.scale = scale;
  const FieldTransform t(FieldType::kNumeric, m);
  const std::string c = *gen_decimal(2 * kMaxScale);
  const Converted side = t.to_side(c);
  if (side.ok()) {
    RC_ASSERT(t.check_round_trip(c) == std::nullopt);
  } else {
    RC_ASSERT(!side.reason().empty());
    // Refused exactly when the shifted value has a fraction.
    RC_ASSERT(!is_whole(*shift_decimal(c, scale)));
  }
}

RC_GTEST_PROP(MappingProperties, ValueMapRoundTripsBothWays, ()) {
  const auto keys = *rc::gen::container<std::set<std::string>>(gen_text());
  const auto values = *rc::gen::container<std::set<std::string>>(gen_text());
  RC_PRE(!keys.empty() && !values.empty());
  FieldMapping m{"label", "label"};
  auto k = keys.begin();
  for (auto v = values.begin(); k != keys.end() && v != values.end(); ++k, ++v)
    m.value_map.emplace_back(*k, *v);
  const FieldTransform t(FieldType::kText, m);
  for (const auto& [canonical, side] : m.value_map) {
    RC_ASSERT(t.check_round_trip(canonical) == std::nullopt);
    RC_ASSERT(t.check_side_round_trip(side) == std::nullopt);
    RC_ASSERT(*t.to_side(canonical).value() == side);
  }
}

RC_GTEST_PROP(MappingProperties, NormalizedSideFormIsStable, ()) {
  FieldMapping m{"label", "label"};
  m.normalize = *rc::gen::container<std::vector<Normalizer>>(rc::gen::elementOf(kAll));
  RC_PRE(!m.normalize.empty());
  const FieldTransform t(FieldType::kText, m);
  const std::string x = *rc::gen::oneOf(gen_text(), gen_fragments());
  RC_ASSERT(t.check_round_trip(x) == std::nullopt);
  RC_ASSERT(t.check_side_round_trip(x) == std::nullopt);
  const Value side = t.to_side(x).value();
  RC_ASSERT(t.side_holds(side, x));
  // Whatever the side shows for x, read against x as the base, is no change.
  RC_ASSERT(*t.to_canonical(side, x).value() == x);
}

// A host decorated the way people type it: any case, scheme, www., port, path, query.
RC_GTEST_PROP(MappingProperties, UrlFormattingIsNoChange, ()) {
  const std::string label = *rc::gen::element<std::string>("example", "acme", "münchen", "a-b");
  const std::string tld = *rc::gen::element<std::string>("com", "co.uk", "de");
  const std::string host = label + "." + tld;
  std::string decorated = *rc::gen::element<std::string>("", "http://", "HTTPS://", "//") +
                          *rc::gen::element<std::string>("", "www.", "WWW.") + host +
                          *rc::gen::element<std::string>("", ".") +
                          *rc::gen::element<std::string>("", ":8080") +
                          *rc::gen::element<std::string>("", "/", "/path/x", "/?q=1#f");
  if (*rc::gen::arbitrary<bool>())
    for (char& c : decorated)
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  if (*rc::gen::arbitrary<bool>()) decorated = "  " + decorated + " ";
  FieldMapping m{"website", "domainName"};
  m.normalize = {Normalizer::kUrlHost};
  const FieldTransform t(FieldType::kText, m);
  RC_ASSERT(t.side_holds(decorated, host));
  RC_ASSERT(*t.to_canonical(decorated, host).value() == host);
  RC_ASSERT(*t.to_canonical(decorated).value() == host);
  MatchSpec spec;
  spec.keys.push_back({{"website"}, {Normalizer::kUrlHost}});
  const auto keys = match_keys(spec, {{"website", decorated}});
  RC_ASSERT(keys.size() == 1u);
  RC_ASSERT(keys.front().value == host);
}

}  // namespace
}  // namespace mdsync::mapping
