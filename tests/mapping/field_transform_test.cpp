// FieldTransform both ways for every transform: value maps, scales, normalizers, their
// errors, the side-equality that keeps formatting-only differences from being changes, and
// the round-trip checks.
#include "mdsync/mapping/field_transform.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace mdsync::mapping {
namespace {

using core::FieldType;
using core::Value;

// "value" or "NULL", or "error: reason".
std::string shown(const Converted& c) {
  return c.ok() ? core::show(c.value()) : "error: " + c.reason();
}

FieldMapping with_map(std::vector<std::pair<std::string, std::string>> map) {
  FieldMapping m{"country", "country"};
  m.value_map = std::move(map);
  return m;
}

FieldMapping with_scale(int scale) {
  FieldMapping m{"credit_limit", "creditLimitMicros"};
  m.scale = scale;
  return m;
}

FieldMapping with_normalize(std::vector<Normalizer> ns) {
  FieldMapping m{"website", "domainName"};
  m.normalize = std::move(ns);
  return m;
}

std::string build_error(FieldType type, const FieldMapping& m) {
  try {
    FieldTransform t(type, m);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "built";
}

TEST(FieldTransform, IdentityCanonicalizesByTypeAndKeepsTextByteForByte) {
  const FieldTransform text(FieldType::kText);
  EXPECT_TRUE(text.identity());
  const std::string hostile = std::string("a\tb \u200F\u202Ex😀\u0301 ") + "\xEF\xBB\xBF";
  EXPECT_EQ(shown(text.to_canonical(hostile)), core::show(hostile));
  EXPECT_EQ(shown(text.to_side(hostile)), core::show(hostile));
  EXPECT_EQ(shown(text.to_canonical(Value{})), "NULL");
  EXPECT_EQ(shown(text.to_canonical(std::string())), "\"\"");
  const FieldTransform numeric(FieldType::kNumeric);
  EXPECT_EQ(shown(numeric.to_canonical(std::string("012.50"))), "\"12.5\"");
  EXPECT_EQ(shown(numeric.to_canonical(std::string("12,5"))),
            "error: '12,5' is not a numeric value");
  const FieldTransform flag(FieldType::kBoolean);
  EXPECT_EQ(shown(flag.to_canonical(std::string("t"))), "\"true\"");
}

TEST(FieldTransform, ValueMapBothWays) {
  const FieldTransform t(
      FieldType::kText,
      with_map({{"BE", "Belgium"}, {"NL", "Netherlands"}, {"CI", "Côte d’Ivoire"}}));
  EXPECT_EQ(shown(t.to_side(std::string("BE"))), "\"Belgium\"");
  EXPECT_EQ(shown(t.to_canonical(std::string("Netherlands"))), "\"NL\"");
  EXPECT_EQ(shown(t.to_canonical(std::string("Côte d’Ivoire"))), "\"CI\"");
  EXPECT_EQ(shown(t.to_side(Value{})), "NULL");
  EXPECT_EQ(shown(t.to_canonical(Value{})), "NULL");
  // Outside the map is an error both ways, never passed through.
  EXPECT_EQ(shown(t.to_side(std::string("DE"))),
            "error: 'DE' is not in the value map (values: 'BE', 'CI', 'NL')");
  EXPECT_EQ(shown(t.to_canonical(std::string("Germany"))),
            "error: side value 'Germany' is not in the value map (side values: 'Belgium', "
            "'Côte d’Ivoire', 'Netherlands')");
  EXPECT_EQ(shown(t.to_canonical(std::string("belgium"))).substr(0, 32),
            "error: side value 'belgium' is n");
}

TEST(FieldTransform, ValueMapOfBooleansAndNumbersUsesCanonicalKeys) {
  const FieldTransform flag(FieldType::kBoolean, with_map({{"true", "Y"}, {"f", "N"}}));
  EXPECT_EQ(shown(flag.to_side(std::string("t"))), "\"Y\"");
  EXPECT_EQ(shown(flag.to_side(std::string("false"))), "\"N\"");
  EXPECT_EQ(shown(flag.to_canonical(std::string("N"))), "\"false\"");
  const FieldTransform tier(FieldType::kNumeric, with_map({{"1.0", "gold"}, {"2", "silver"}}));
  EXPECT_EQ(shown(tier.to_side(std::string("1"))), "\"gold\"");
  EXPECT_EQ(shown(tier.to_side(std::string("2.00"))), "\"silver\"");
  EXPECT_EQ(shown(tier.to_canonical(std::string("gold"))), "\"1\"");
}

TEST(FieldTransform, ValueMapMustBeOneToOne) {
  EXPECT_EQ(build_error(FieldType::kText, with_map({{"BE", "Belgium"}, {"BX", "Belgium"}})),
            "value map is not one-to-one: 'BE' and 'BX' both become side value 'Belgium', which "
            "could not be read back");
  // Also after the side's normalizers.
  FieldMapping m = with_map({{"BE", "Belgium"}, {"BX", "BELGIUM "}});
  m.normalize = {Normalizer::kTrim, Normalizer::kLower};
  EXPECT_EQ(build_error(FieldType::kText, m),
            "value map is not one-to-one: 'BE' and 'BX' both become side value 'belgium', which "
            "could not be read back");
  EXPECT_EQ(build_error(FieldType::kNumeric, with_map({{"10", "ten"}, {"10.0", "TEN"}})),
            "value map: '10.0' is the numeric value '10' again");
  EXPECT_EQ(build_error(FieldType::kBoolean, with_map({{"yes", "Y"}})),
            "value map: 'yes' is not a boolean value");
  EXPECT_EQ(build_error(FieldType::kJson, with_map({{"{}", "empty"}})),
            "a value map does not apply to json fields");
}

TEST(FieldTransform, ScaleIsAnExactDecimalShift) {
  const FieldTransform micros(FieldType::kNumeric, with_scale(6));
  EXPECT_EQ(shown(micros.to_side(std::string("12.5"))), "\"12500000\"");
  EXPECT_EQ(shown(micros.to_canonical(std::string("12500000"))), "\"12.5\"");
  EXPECT_EQ(shown(micros.to_side(std::string("-0.000001"))), "\"-1\"");
  EXPECT_EQ(shown(micros.to_canonical(std::string("1"))), "\"0.000001\"");
  EXPECT_EQ(shown(micros.to_side(std::string("0"))), "\"0\"");
  // A numeric(20,3) column prints trailing zeros; they are not a fraction.
  EXPECT_EQ(shown(micros.to_canonical(std::string("12500000.000"))), "\"12.5\"");
  EXPECT_EQ(shown(micros.to_side(std::string("99999999999999999999999.999999"))),
            "\"99999999999999999999999999999\"");
  EXPECT_EQ(shown(micros.to_canonical(std::string("99999999999999999999999999999"))),
            "\"99999999999999999999999.999999\"");
  EXPECT_EQ(shown(micros.to_canonical(Value{})), "NULL");
}

TEST(FieldTransform, ScaleRefusesWhatDoesNotDivideExactly) {
  const FieldTransform micros(FieldType::kNumeric, with_scale(6));
  EXPECT_EQ(shown(micros.to_side(std::string("12.5000005"))),
            "error: '12.5000005' has more than 6 decimal places; the side stores whole 10^-6 "
            "units (scale 6)");
  EXPECT_EQ(shown(micros.to_canonical(std::string("12500000.5"))),
            "error: side value '12500000.5' is not a whole number of 10^-6 units (scale 6)");
  EXPECT_EQ(shown(micros.to_canonical(std::string("12.5e6"))),
            "error: side value '12.5e6' is not a decimal number");
  EXPECT_EQ(shown(micros.to_side(std::string("NaN"))), "error: 'NaN' cannot be scaled");
  EXPECT_EQ(shown(micros.to_side(std::string("ten"))), "error: 'ten' is not a numeric value");

  const FieldTransform cents(FieldType::kInteger, with_scale(2));
  EXPECT_EQ(shown(cents.to_canonical(std::string("1200"))), "\"12\"");
  EXPECT_EQ(shown(cents.to_canonical(std::string("1250"))),
            "error: side value '1250' is 12.5 at scale 2, not a whole number");
  EXPECT_EQ(shown(cents.to_side(std::string("12"))), "\"1200\"");

  const FieldTransform thousands(FieldType::kNumeric, with_scale(-3));
  EXPECT_EQ(shown(thousands.to_side(std::string("12000"))), "\"12\"");
  EXPECT_EQ(shown(thousands.to_canonical(std::string("12"))), "\"12000\"");
  EXPECT_EQ(shown(thousands.to_side(std::string("12500"))),
            "error: '12500' is not a whole multiple of 10^3 (scale -3)");
}

TEST(FieldTransform, ContradictionsAreRefused) {
  EXPECT_EQ(build_error(FieldType::kText, with_scale(6)),
            "scale applies to numeric and integer fields, not text");
  EXPECT_EQ(build_error(FieldType::kNumeric, with_scale(19)), "scale must be between -18 and 18");
  FieldMapping both = with_map({{"1", "one"}});
  both.scale = 2;
  EXPECT_EQ(build_error(FieldType::kNumeric, both),
            "a field cannot have both a value map and a scale");
  FieldMapping n = with_normalize({Normalizer::kTrim});
  EXPECT_EQ(build_error(FieldType::kNumeric, n), "normalizers apply to text fields, not numeric");
  EXPECT_EQ(build_error(FieldType::kText, n), "built");
}

TEST(FieldTransform, NormalizersReadAndWriteTheNormalizedForm) {
  const FieldTransform host(FieldType::kText, with_normalize({Normalizer::kUrlHost}));
  EXPECT_FALSE(host.lossless());
  EXPECT_EQ(shown(host.to_canonical(std::string("HTTPS://WWW.Example.com/"))), "\"example.com\"");
  EXPECT_EQ(shown(host.to_side(std::string("https://www.example.com/about"))), "\"example.com\"");
  EXPECT_EQ(shown(host.to_canonical(std::string("\xFF"))), "error: side value is not valid UTF-8");
  EXPECT_EQ(shown(host.to_side(std::string("\xFF"))), "error: '\xFF' is not valid UTF-8");
}

// write_as spells the normalized value the side's way; every spelling of the value is held
// by it, so a formatting-only edit stays no change both ways.
TEST(FieldTransform, WriteAsSpellsTheNormalizedValueTheSidesWay) {
  FieldMapping m = with_normalize({Normalizer::kTrim, Normalizer::kUrlHost});
  m.write_as = "https://{value}";
  const FieldTransform host(FieldType::kText, m);
  EXPECT_EQ(shown(host.to_side(std::string("HTTP://WWW.Example.com/about"))),
            "\"https://example.com\"");
  EXPECT_EQ(shown(host.side_form(std::string("HTTP://WWW.Example.com/about"))), "\"example.com\"");
  EXPECT_EQ(shown(host.to_side(Value{})), "NULL");
  EXPECT_EQ(shown(host.to_canonical(std::string("https://example.com"))), "\"example.com\"");
  // What the side holds in any spelling of the value, and what it would write, hold it.
  EXPECT_TRUE(host.side_holds(std::string("example.com"), std::string("example.com")));
  EXPECT_TRUE(host.side_holds(std::string("https://example.com"), std::string("example.com")));
  EXPECT_TRUE(host.side_holds(std::string("http://www.EXAMPLE.com/x"),
                              std::string("https://example.com/y")));
  EXPECT_FALSE(host.side_holds(std::string("https://other.com"), std::string("example.com")));
  EXPECT_EQ(
      shown(host.to_canonical(std::string("http://www.example.com/"), std::string("example.com"))),
      "\"example.com\"");
  // A value the template would not read back as itself is written in its normalized form.
  FieldMapping www = with_normalize({Normalizer::kUrlHost});
  www.write_as = "https://www.{value}/";
  const FieldTransform www_host(FieldType::kText, www);
  EXPECT_EQ(shown(www_host.to_side(std::string("example.com"))), "\"https://www.example.com/\"");
  EXPECT_EQ(shown(www_host.to_side(std::string("acme widgets"))), "\"acme widgets\"");
  // Bad text is still refused, not spelled.
  EXPECT_EQ(shown(host.to_side(std::string("\xFF"))), "error: '\xFF' is not valid UTF-8");
}

TEST(FieldTransform, WriteAsThatDoesNotReadBackIsRefused) {
  FieldMapping m = with_normalize({Normalizer::kUrlHost});
  m.write_as = "{value}.invalid";
  EXPECT_EQ(build_error(FieldType::kText, m),
            "write_as '{value}.invalid' does not read back: 'example.com' is written as "
            "'example.com.invalid', which the normalizers read as 'example.com.invalid'");
  m.write_as = "https://example.com";
  EXPECT_EQ(build_error(FieldType::kText, m),
            "write_as must hold {value} exactly once, as in 'https://{value}'");
  m.write_as = "{value}{value}";
  EXPECT_EQ(build_error(FieldType::kText, m),
            "write_as must hold {value} exactly once, as in 'https://{value}'");
  FieldMapping plain{"website", "website"};
  plain.write_as = "https://{value}";
  EXPECT_EQ(build_error(FieldType::kText, plain),
            "write_as needs the column's normalizers (such as [\"url_host\"]): they read what it "
            "writes back as the value");
  m.write_as = "https://www.{value}/";
  EXPECT_EQ(build_error(FieldType::kText, m), "built");
}

TEST(FieldTransform, FormattingOnlyDifferenceIsNoChange) {
  const FieldTransform host(FieldType::kText, with_normalize({Normalizer::kUrlHost}));
  // The side holds its base in another spelling: reading it against the base gives the base
  // itself, so the core sees no change and nothing is written back.
  const Value base = std::string("https://www.example.com/about");
  EXPECT_TRUE(host.side_holds(std::string("HTTPS://WWW.Example.com/"), base));
  EXPECT_TRUE(host.side_holds(std::string("example.com"), std::string("example.com")));
  EXPECT_EQ(shown(host.to_canonical(std::string("HTTPS://WWW.Example.com/"), base)),
            core::show(base));
  // A real change is read as such.
  EXPECT_FALSE(host.side_holds(std::string("other.com"), base));
  EXPECT_EQ(shown(host.to_canonical(std::string("other.com"), base)), "\"other.com\"");
  EXPECT_TRUE(host.side_holds(Value{}, Value{}));
  EXPECT_FALSE(host.side_holds(Value{}, base));
  EXPECT_FALSE(host.side_holds(std::string(""), Value{}));

  const FieldTransform micros(FieldType::kNumeric, with_scale(6));
  EXPECT_TRUE(micros.side_holds(std::string("12500000.000"), std::string("12.50")));
  EXPECT_FALSE(micros.side_holds(std::string("12500001"), std::string("12.5")));
  EXPECT_FALSE(micros.side_holds(std::string("junk"), std::string("12.5")));
}

TEST(FieldTransform, MapThroughNormalizers) {
  FieldMapping m = with_map({{"BE", "Belgium"}, {"NL", "Netherlands"}});
  m.normalize = {Normalizer::kTrim, Normalizer::kLower};
  const FieldTransform t(FieldType::kText, m);
  EXPECT_EQ(shown(t.to_side(std::string("BE"))), "\"belgium\"");
  EXPECT_EQ(shown(t.to_canonical(std::string("  BELGIUM "))), "\"BE\"");
  EXPECT_TRUE(t.side_holds(std::string("Belgium"), std::string("BE")));
}

TEST(FieldTransform, RoundTripChecks) {
  const FieldTransform micros(FieldType::kNumeric, with_scale(6));
  EXPECT_EQ(micros.check_round_trip(std::string("12.5")), std::nullopt);
  EXPECT_EQ(micros.check_round_trip(Value{}), std::nullopt);
  EXPECT_EQ(micros.check_round_trip(std::string("12.5000005")),
            "to the side: '12.5000005' has more than 6 decimal places; the side stores whole "
            "10^-6 units (scale 6)");
  EXPECT_EQ(micros.check_side_round_trip(std::string("12500000")), std::nullopt);
  EXPECT_EQ(micros.check_side_round_trip(std::string("12500000.5")),
            "side value '12500000.5' is not a whole number of 10^-6 units (scale 6)");

  const FieldTransform host(FieldType::kText, with_normalize({Normalizer::kUrlHost}));
  EXPECT_EQ(host.check_round_trip(std::string("https://www.example.com/x")), std::nullopt);
  EXPECT_EQ(host.check_side_round_trip(std::string("HTTPS://WWW.Example.com/")), std::nullopt);

  const FieldTransform country(FieldType::kText, with_map({{"BE", "Belgium"}}));
  EXPECT_EQ(country.check_round_trip(std::string("BE")), std::nullopt);
  EXPECT_EQ(country.check_round_trip(std::string("DE")),
            "to the side: 'DE' is not in the value map (values: 'BE')");
  EXPECT_EQ(country.check_side_round_trip(std::string("Belgique")),
            "side value 'Belgique' is not in the value map (side values: 'Belgium')");
}

}  // namespace
}  // namespace mdsync::mapping
