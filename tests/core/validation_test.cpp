// validation.hpp: every check of a field's `validate` rule, one at a time.
#include "mdsync/core/validation.hpp"

#include <gtest/gtest.h>

#include <string>

#include "test_support.hpp"

namespace mdsync::core {
namespace {

using test::kNull;

Validation required() {
  Validation v;
  v.required = true;
  return v;
}

Validation max_length(std::size_t n) {
  Validation v;
  v.max_length = n;
  return v;
}

Validation pattern(std::string p) {
  Validation v;
  v.pattern = std::move(p);
  return v;
}

Validation range(std::optional<std::string> min, std::optional<std::string> max) {
  Validation v;
  v.min = std::move(min);
  v.max = std::move(max);
  return v;
}

bool passes(const Validation& rules, FieldType type, const Value& value) {
  return !validate(rules, type, value).has_value();
}

TEST(Validate, NoRulesPassAnything) {
  EXPECT_TRUE(passes(Validation{}, FieldType::kText, kNull));
  EXPECT_TRUE(passes(Validation{}, FieldType::kText, Value{""}));
  EXPECT_TRUE(passes(Validation{}, FieldType::kNumeric, Value{"-99999999999999999999.5"}));
}

TEST(Validate, RequiredRejectsNullAndEmpty) {
  const auto null_reason = validate(required(), FieldType::kText, kNull);
  ASSERT_TRUE(null_reason.has_value());
  EXPECT_EQ(*null_reason, "required, but NULL");
  const auto empty_reason = validate(required(), FieldType::kText, Value{""});
  ASSERT_TRUE(empty_reason.has_value());
  EXPECT_EQ(*empty_reason, "required, but empty");
  EXPECT_TRUE(passes(required(), FieldType::kText, Value{" "}));
  EXPECT_TRUE(passes(required(), FieldType::kText, Value{"x"}));
}

// DESIGN.md: `required` rejects NULL and the empty string after the unit's compare trimming:
// under `trim` and `case_insensitive` blank text is empty; under `exact` it is a value.
TEST(Validate, RequiredRejectsBlankTextUnderTrimmingCompareModes) {
  for (Compare mode : {Compare::kTrim, Compare::kCaseInsensitive}) {
    const auto blank = validate(required(), FieldType::kText, Value{" \t\n"}, mode);
    ASSERT_TRUE(blank.has_value()) << to_string(mode);
    EXPECT_EQ(*blank, "required, but blank");
    EXPECT_TRUE(validate(required(), FieldType::kText, Value{""}, mode).has_value());
    EXPECT_FALSE(validate(required(), FieldType::kText, Value{" x "}, mode).has_value());
  }
  EXPECT_FALSE(validate(required(), FieldType::kText, Value{" "}, Compare::kExact).has_value());
}

// Every value is held to the engine's 1 MiB limit, whatever the rules say: one runaway value
// is not copied to every side.
TEST(Validate, ValuesLargerThanTheLimitAreInvalidWithoutAnyRule) {
  const std::string big(kMaxValueBytes + 1, 'x');
  const auto why = validate(Validation{}, FieldType::kText, Value{big});
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(*why, "larger than the 1 MiB value limit (1048577 bytes)");
  EXPECT_FALSE(validate(Validation{}, FieldType::kText, Value{std::string(kMaxValueBytes, 'x')})
                   .has_value());
}

// std::regex matches by recursion: a 100 kB value crashed the engine (stack overflow) on
// every pass. A value longer than a pattern is checked on fails the pattern instead.
TEST(Validate, APatternIsNotRunOnAHostileLongValue) {
  Validation v;
  v.pattern = "^[^@\\s]+@[^@\\s]+$";
  const std::string hostile = std::string(100000, 'a') + "@b";
  const auto why = validate(v, FieldType::kText, Value{hostile});
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(*why, "longer than the 1000 bytes a pattern is checked on (100002 bytes)");
  EXPECT_FALSE(validate(v, FieldType::kText, Value{std::string(990, 'a') + "@b"}).has_value());
}

TEST(PatternHazard, NestedRepetitionIsNamedOtherPatternsPass) {
  EXPECT_TRUE(pattern_hazard("(a+)*").has_value());
  EXPECT_TRUE(pattern_hazard("^(\\w+\\s?)+@x$").has_value());
  EXPECT_TRUE(pattern_hazard("((ab)*c)+").has_value());
  EXPECT_TRUE(pattern_hazard("(?:x*)+").has_value());
  EXPECT_TRUE(pattern_hazard("(a{2,})*").has_value());
  EXPECT_FALSE(pattern_hazard("^[^@\\s]+@[^@\\s]+$").has_value());
  EXPECT_FALSE(pattern_hazard("^[A-Z]{2}[0-9]+$").has_value());
  EXPECT_FALSE(pattern_hazard("(ab)+").has_value());
  EXPECT_FALSE(pattern_hazard("(a+)?b").has_value());     // optional, not repeated
  EXPECT_FALSE(pattern_hazard("[(+)]*").has_value());     // quantifiers inside a class are literals
  EXPECT_FALSE(pattern_hazard("\\(a+\\)*").has_value());  // escaped parentheses
}

TEST(Validate, NullPassesEveryCheckButRequired) {
  Validation all = range("1", "2");
  all.max_length = 1;
  all.pattern = "[a-z]+";
  all.one_of = std::vector<std::string>{"a"};
  EXPECT_TRUE(passes(all, FieldType::kNumeric, kNull));
}

TEST(Utf8Length, CountsCodePoints) {
  EXPECT_EQ(utf8_length(""), 0u);
  EXPECT_EQ(utf8_length("abc"), 3u);
  EXPECT_EQ(utf8_length("\xC3\xA9t\xC3\xA9"), 3u);                 // été
  EXPECT_EQ(utf8_length("\xE2\x82\xAC"), 1u);                      // €
  EXPECT_EQ(utf8_length("\xF0\x9F\x98\x80\xF0\x9F\x98\x80"), 2u);  // two emoji
  EXPECT_EQ(utf8_length("e\xCC\x81"), 2u);  // e + combining acute: two code points
}

TEST(Validate, MaxLengthCountsCodePointsNotBytes) {
  // "été" is 5 bytes but 3 code points
  EXPECT_TRUE(passes(max_length(3), FieldType::kText, Value{"\xC3\xA9t\xC3\xA9"}));
  EXPECT_FALSE(passes(max_length(3), FieldType::kText, Value{"\xC3\xA9t\xC3\xA9s"}));
  // three emoji: 12 bytes, 3 code points
  const Value emoji{"\xF0\x9F\x98\x80\xF0\x9F\x98\x81\xF0\x9F\x98\x82"};
  EXPECT_TRUE(passes(max_length(3), FieldType::kText, emoji));
  EXPECT_FALSE(passes(max_length(2), FieldType::kText, emoji));
  const auto why = validate(max_length(2), FieldType::kText, emoji);
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(*why, "longer than max_length 2 (3 characters)");
  EXPECT_TRUE(passes(max_length(0), FieldType::kText, Value{""}));
}

TEST(Validate, PatternMustMatchWholeValue) {
  const Validation country = pattern("[A-Z]{2}");
  EXPECT_TRUE(passes(country, FieldType::kText, Value{"BE"}));
  EXPECT_FALSE(passes(country, FieldType::kText, Value{"BEL"}));
  EXPECT_FALSE(passes(country, FieldType::kText, Value{"xBE"}));
  EXPECT_FALSE(passes(country, FieldType::kText, Value{"be"}));
  const auto why = validate(pattern("b"), FieldType::kText, Value{"abc"});
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(*why, "does not match pattern b");
  EXPECT_TRUE(passes(pattern("^[^@]+@[^@]+$"), FieldType::kText, Value{"a@b.example"}));
  EXPECT_FALSE(passes(pattern("^[^@]+@[^@]+$"), FieldType::kText, Value{"a@b@c"}));
}

TEST(Validate, MinAndMaxAreExactDecimals) {
  const Validation limits = range("0.1", "1000000");
  EXPECT_TRUE(passes(limits, FieldType::kNumeric, Value{"0.10"}));  // equal to min
  EXPECT_TRUE(passes(limits, FieldType::kNumeric, Value{"0.1"}));
  EXPECT_FALSE(passes(limits, FieldType::kNumeric, Value{"0.09999999999999999999"}));
  EXPECT_TRUE(passes(limits, FieldType::kNumeric, Value{"1000000.00"}));
  EXPECT_FALSE(passes(limits, FieldType::kNumeric, Value{"1000000.000000000000001"}));
  const auto below = validate(limits, FieldType::kNumeric, Value{"0.05"});
  ASSERT_TRUE(below.has_value());
  EXPECT_EQ(*below, "below min 0.1");
  const auto above = validate(limits, FieldType::kNumeric, Value{"2000000"});
  ASSERT_TRUE(above.has_value());
  EXPECT_EQ(*above, "above max 1000000");
}

TEST(Validate, MinWithNegativeBoundsAndIntegers) {
  const Validation limits = range("-10", "-1");
  EXPECT_TRUE(passes(limits, FieldType::kInteger, Value{"-10"}));
  EXPECT_TRUE(passes(limits, FieldType::kInteger, Value{"-5"}));
  EXPECT_FALSE(passes(limits, FieldType::kInteger, Value{"-11"}));
  EXPECT_FALSE(passes(limits, FieldType::kInteger, Value{"0"}));
  EXPECT_TRUE(passes(range("0", std::nullopt), FieldType::kNumeric, Value{"0"}));
  EXPECT_FALSE(passes(range("0", std::nullopt), FieldType::kNumeric, Value{"-0.01"}));
  EXPECT_TRUE(passes(range(std::nullopt, "0.10"), FieldType::kNumeric, Value{"0.1"}));
}

TEST(Validate, MinMaxRejectNonNumbers) {
  const auto why = validate(range("0", std::nullopt), FieldType::kNumeric, Value{"abc"});
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(*why, "not a number: abc");
}

TEST(Validate, OneOfIsExact) {
  Validation v;
  v.one_of = std::vector<std::string>{"smb", "enterprise"};
  EXPECT_TRUE(passes(v, FieldType::kText, Value{"smb"}));
  EXPECT_TRUE(passes(v, FieldType::kText, Value{"enterprise"}));
  EXPECT_FALSE(passes(v, FieldType::kText, Value{"SMB"}));
  EXPECT_FALSE(passes(v, FieldType::kText, Value{"smb "}));
  EXPECT_FALSE(passes(v, FieldType::kText, Value{""}));
  const auto why = validate(v, FieldType::kText, Value{"retail"});
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(*why, "not one of the allowed values");
}

TEST(Validate, FirstFailingCheckIsReported) {
  Validation v = required();
  v.max_length = 2;
  v.one_of = std::vector<std::string>{"ab"};
  const auto why = validate(v, FieldType::kText, Value{"abc"});
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(*why, "longer than max_length 2 (3 characters)");
}

}  // namespace
}  // namespace mdsync::core
