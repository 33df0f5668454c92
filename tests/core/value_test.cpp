// value.hpp: exact decimals, canonical forms per type, and equality per compare mode.
#include "mdsync/core/value.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_support.hpp"

namespace mdsync::core {
namespace {

using test::kNull;

// ---- canonical_decimal ----------------------------------------------------------------

struct DecimalCase {
  std::string input;
  std::string canonical;
};

class CanonicalDecimalAccepts : public ::testing::TestWithParam<DecimalCase> {};

TEST_P(CanonicalDecimalAccepts, GivesCanonicalText) {
  const DecimalCase& c = GetParam();
  const auto d = canonical_decimal(c.input);
  ASSERT_TRUE(d.has_value()) << "input '" << c.input << "'";
  EXPECT_EQ(*d, c.canonical) << "input '" << c.input << "'";
}

INSTANTIATE_TEST_SUITE_P(
    Value, CanonicalDecimalAccepts,
    ::testing::Values(DecimalCase{"0", "0"}, DecimalCase{"10", "10"}, DecimalCase{"007", "7"},
                      DecimalCase{"000", "0"}, DecimalCase{"12.500", "12.5"},
                      DecimalCase{"10.00", "10"}, DecimalCase{"0.000", "0"}, DecimalCase{"-0", "0"},
                      DecimalCase{"-0.00", "0"}, DecimalCase{"+1.50", "1.5"},
                      DecimalCase{"-001.250", "-1.25"}, DecimalCase{".5", "0.5"},
                      DecimalCase{"-.5", "-0.5"}, DecimalCase{"5.", "5"},
                      DecimalCase{"0.0001", "0.0001"},
                      // far beyond a double's precision: kept digit for digit
                      DecimalCase{"12345678901234567890.123456789012345678901",
                                  "12345678901234567890.123456789012345678901"}));

class CanonicalDecimalRejects : public ::testing::TestWithParam<std::string> {};

TEST_P(CanonicalDecimalRejects, GivesNullopt) {
  EXPECT_FALSE(canonical_decimal(GetParam()).has_value()) << "input '" << GetParam() << "'";
}

INSTANTIATE_TEST_SUITE_P(Value, CanonicalDecimalRejects,
                         ::testing::Values("1e5", "abc", "", "-", "+", ".", "-.", "1.2.3", " 1",
                                           "1 ", "1,5", "--1", "0x10", "NaN", "Infinity"));

// ---- compare_decimal ------------------------------------------------------------------

struct OrderCase {
  std::string a;
  std::string b;
  int sign;  // expected sign of compare_decimal(a, b)
};

class CompareDecimal : public ::testing::TestWithParam<OrderCase> {};

TEST_P(CompareDecimal, OrdersExactly) {
  const OrderCase& c = GetParam();
  const int got = compare_decimal(c.a, c.b);
  const int sign = got < 0 ? -1 : (got > 0 ? 1 : 0);
  EXPECT_EQ(sign, c.sign) << c.a << " vs " << c.b;
  const int back = compare_decimal(c.b, c.a);
  EXPECT_EQ(back < 0 ? -1 : (back > 0 ? 1 : 0), -c.sign) << c.b << " vs " << c.a;
}

INSTANTIATE_TEST_SUITE_P(
    Value, CompareDecimal,
    ::testing::Values(OrderCase{"0", "0", 0}, OrderCase{"1", "2", -1}, OrderCase{"-1", "1", -1},
                      OrderCase{"-1", "-2", 1}, OrderCase{"10", "9", 1}, OrderCase{"10", "9.99", 1},
                      OrderCase{"-10", "-9.99", -1}, OrderCase{"0.5", "0.45", 1},
                      OrderCase{"-0.5", "-0.45", -1}, OrderCase{"0.1", "0.10", 0},
                      OrderCase{"1.05", "1.5", -1}, OrderCase{"100", "99.999999", 1},
                      OrderCase{"0", "-0.0001", 1}, OrderCase{"0", "0.0001", -1},
                      OrderCase{"12345678901234567890.1", "12345678901234567890.01", 1}));

// ---- canonicalize ---------------------------------------------------------------------

TEST(Canonicalize, NullStaysNullForEveryType) {
  for (FieldType t :
       {FieldType::kText, FieldType::kInteger, FieldType::kNumeric, FieldType::kBoolean,
        FieldType::kDate, FieldType::kTimestamptz, FieldType::kJson}) {
    const auto v = canonicalize(t, kNull);
    ASSERT_TRUE(v.has_value()) << to_string(t);
    EXPECT_FALSE(v->has_value()) << to_string(t);
  }
}

TEST(Canonicalize, IntegerAcceptsWholeNumbersOnly) {
  EXPECT_EQ(canonicalize(FieldType::kInteger, Value{"0042"}), std::optional<Value>(Value{"42"}));
  EXPECT_EQ(canonicalize(FieldType::kInteger, Value{"-7"}), std::optional<Value>(Value{"-7"}));
  EXPECT_EQ(canonicalize(FieldType::kInteger, Value{"+3"}), std::optional<Value>(Value{"3"}));
  EXPECT_FALSE(canonicalize(FieldType::kInteger, Value{"1.5"}).has_value());
  EXPECT_FALSE(canonicalize(FieldType::kInteger, Value{"1e3"}).has_value());
  EXPECT_FALSE(canonicalize(FieldType::kInteger, Value{"seven"}).has_value());
  EXPECT_FALSE(canonicalize(FieldType::kInteger, Value{""}).has_value());
}

TEST(Canonicalize, NumericIsExactCanonicalDecimal) {
  EXPECT_EQ(canonicalize(FieldType::kNumeric, Value{"0010.500"}),
            std::optional<Value>(Value{"10.5"}));
  EXPECT_EQ(canonicalize(FieldType::kNumeric, Value{"-0.0"}), std::optional<Value>(Value{"0"}));
  EXPECT_EQ(canonicalize(FieldType::kNumeric, Value{"0.1000000000000000055511151231257827"}),
            std::optional<Value>(Value{"0.1000000000000000055511151231257827"}));
  EXPECT_FALSE(canonicalize(FieldType::kNumeric, Value{"1e5"}).has_value());
  EXPECT_FALSE(canonicalize(FieldType::kNumeric, Value{"12,50"}).has_value());
}

TEST(Canonicalize, BooleanSpellings) {
  for (const char* yes : {"t", "true", "TRUE", "True"})
    EXPECT_EQ(canonicalize(FieldType::kBoolean, Value{yes}), std::optional<Value>(Value{"true"}))
        << yes;
  for (const char* no : {"f", "false", "FALSE", "False"})
    EXPECT_EQ(canonicalize(FieldType::kBoolean, Value{no}), std::optional<Value>(Value{"false"}))
        << no;
  for (const char* bad : {"yes", "", "2", "tru", " true"})
    EXPECT_FALSE(canonicalize(FieldType::kBoolean, Value{bad}).has_value()) << bad;
}

TEST(Canonicalize, TextKeepsEveryByte) {
  const std::vector<std::string> texts = {
      "",
      "  padded  ",
      "Mixed Case",
      "emoji \xF0\x9F\x98\x80 and flag \xF0\x9F\x87\xA7\xF0\x9F\x87\xAA",
      "rtl mark \xE2\x80\x8F\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D",  // U+200F then Hebrew
      "e\xCC\x81 vs \xC3\xA9",                                  // decomposed vs composed é
      "zero\xE2\x80\x8Bwidth and bom \xEF\xBB\xBF",             // U+200B, U+FEFF
      "quotes \" ' \xE2\x80\x9C curly \xE2\x80\x9D",
      "back\\slash \\n not a newline",
      "tab\tnew\nline\r",
      "\xF4\x8F\xBF\xBF",  // U+10FFFF, the last code point
  };
  for (const std::string& t : texts) {
    for (FieldType type : {FieldType::kText, FieldType::kJson}) {
      const auto v = canonicalize(type, Value{t});
      ASSERT_TRUE(v.has_value()) << t;
      ASSERT_TRUE(v->has_value()) << t;
      EXPECT_EQ(**v, t) << "type " << to_string(type);
    }
  }
}

// ---- values_equal ---------------------------------------------------------------------

struct EqualCase {
  FieldType type;
  Compare mode;
  Value a;
  Value b;
  bool equal;
};

class ValuesEqual : public ::testing::TestWithParam<EqualCase> {};

TEST_P(ValuesEqual, FollowsTypeAndMode) {
  const EqualCase& c = GetParam();
  EXPECT_EQ(values_equal(c.type, c.mode, c.a, c.b), c.equal)
      << to_string(c.type) << "/" << to_string(c.mode) << ": " << show(c.a) << " vs " << show(c.b);
  EXPECT_EQ(values_equal(c.type, c.mode, c.b, c.a), c.equal) << "not symmetric";
}

constexpr FieldType kText = FieldType::kText;
constexpr FieldType kNumeric = FieldType::kNumeric;
constexpr FieldType kInteger = FieldType::kInteger;
constexpr Compare kExact = Compare::kExact;
constexpr Compare kTrim = Compare::kTrim;
constexpr Compare kNoCase = Compare::kCaseInsensitive;

INSTANTIATE_TEST_SUITE_P(
    Value, ValuesEqual,
    ::testing::Values(
        // numbers compare as numbers, in any mode
        EqualCase{kNumeric, kExact, "10.0", "10.00", true},
        EqualCase{kNumeric, kExact, "10", "10.000", true},
        EqualCase{kNumeric, kExact, "-0", "0", true},
        EqualCase{kNumeric, kExact, "10.01", "10.1", false},
        EqualCase{kInteger, kExact, "007", "7", true},
        EqualCase{kNumeric, kTrim, "1.50", "1.5", true},
        // NULL is not the empty string, in every mode and type
        EqualCase{kText, kExact, kNull, "", false}, EqualCase{kText, kTrim, kNull, "", false},
        EqualCase{kText, kNoCase, kNull, " ", false},
        EqualCase{kNumeric, kExact, kNull, "0", false},
        EqualCase{kText, kExact, kNull, kNull, true},
        // text: exact is byte for byte
        EqualCase{kText, kExact, "x", "x", true}, EqualCase{kText, kExact, "x", "X", false},
        EqualCase{kText, kExact, "x", " x", false},
        EqualCase{kText, kExact, "\xC3\xA9", "e\xCC\x81", false},
        // trim ignores surrounding whitespace only
        EqualCase{kText, kTrim, "  x\t\n", "x", true},
        EqualCase{kText, kTrim, "a  b", "a b", false}, EqualCase{kText, kTrim, "X", "x", false},
        // case_insensitive folds ASCII case (and trims)
        EqualCase{kText, kNoCase, "  X", "x", true},
        EqualCase{kText, kNoCase, "Alice@Example.COM", "alice@example.com", true},
        EqualCase{kText, kNoCase, "\xC3\x89", "\xC3\xA9", false},  // É vs é: not merged
        EqualCase{kText, kNoCase, "ab", "abc", false},
        // other types compare their canonical text exactly, whatever the mode
        EqualCase{FieldType::kBoolean, kNoCase, "true", "TRUE", false},
        EqualCase{FieldType::kDate, kTrim, "2024-01-01", " 2024-01-01", false}));

}  // namespace
}  // namespace mdsync::core

namespace mdsync::core {
namespace {

// Dates are checked; timestamps become the UTC text PostgreSQL prints, so one instant has
// one spelling whichever side or offset it came from.
TEST(Canonicalize, DatesAndTimestamps) {
  struct Case {
    FieldType type;
    const char* in;
    const char* out;  // nullptr: does not convert
  };
  const Case cases[] = {
      {FieldType::kDate, "2024-02-29", "2024-02-29"},
      {FieldType::kDate, "2023-02-29", nullptr},
      {FieldType::kDate, "2024-13-01", nullptr},
      {FieldType::kDate, "24-01-01", nullptr},
      {FieldType::kTimestamptz, "2024-01-02T10:00:00+01:00", "2024-01-02 09:00:00+00"},
      {FieldType::kTimestamptz, "2024-01-02 09:00:00+00", "2024-01-02 09:00:00+00"},
      {FieldType::kTimestamptz, "2024-01-02T09:00:00Z", "2024-01-02 09:00:00+00"},
      {FieldType::kTimestamptz, "2024-01-01T00:30:00.120+05:30", "2023-12-31 19:00:00.12+00"},
      {FieldType::kTimestamptz, "2024-12-31T23:59:59.999999-0200", "2025-01-01 01:59:59.999999+00"},
      {FieldType::kTimestamptz, "2024-03-01T01:00:00+02", "2024-02-29 23:00:00+00"},
      {FieldType::kTimestamptz, "infinity", "infinity"},
      {FieldType::kTimestamptz, "2024-01-02 09:00:00", nullptr},  // no zone
      {FieldType::kTimestamptz, "2024-01-02T25:00:00Z", nullptr},
      {FieldType::kTimestamptz, "yesterday", nullptr},
      {FieldType::kTimestamptz, "2024-01-02T09:00:00.1234567Z", nullptr},
  };
  for (const Case& c : cases) {
    const auto v = canonicalize(c.type, Value{c.in});
    if (c.out == nullptr) {
      EXPECT_FALSE(v.has_value()) << c.in << " -> " << show(v ? *v : Value{});
    } else {
      ASSERT_TRUE(v.has_value()) << c.in;
      EXPECT_EQ(show(*v), show(Value{c.out})) << c.in;
    }
  }
  // The same instant from two offsets compares equal once canonical.
  EXPECT_EQ(canonicalize(FieldType::kTimestamptz, Value{"2024-06-01T12:00:00+02:00"}),
            canonicalize(FieldType::kTimestamptz, Value{"2024-06-01 10:00:00+00"}));
}

}  // namespace
}  // namespace mdsync::core
