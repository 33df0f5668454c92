// Exact decimal shifts: digits move, none is lost or invented, at any size.
#include "mdsync/mapping/decimal_scale.hpp"

#include <gtest/gtest.h>

#include <string>

namespace mdsync::mapping {
namespace {

std::string shift(const std::string& d, int places) {
  auto out = shift_decimal(d, places);
  return out ? *out : std::string("<not a decimal>");
}

TEST(DecimalScale, ShiftsBothWays) {
  EXPECT_EQ(shift("12.5", 6), "12500000");
  EXPECT_EQ(shift("12500000", -6), "12.5");
  EXPECT_EQ(shift("0.000001", 6), "1");
  EXPECT_EQ(shift("1", -6), "0.000001");
  EXPECT_EQ(shift("-12.5", 6), "-12500000");
  EXPECT_EQ(shift("-1", -3), "-0.001");
  EXPECT_EQ(shift("12.5000005", 6), "12500000.5");
  EXPECT_EQ(shift("0", 6), "0");
  EXPECT_EQ(shift("-0", 6), "0");
  EXPECT_EQ(shift("12000", -3), "12");
  EXPECT_EQ(shift("7", 0), "7");
}

TEST(DecimalScale, AcceptsAnyPlainDecimalSpelling) {
  EXPECT_EQ(shift("+012.500", 2), "1250");
  EXPECT_EQ(shift(".5", 1), "5");
  EXPECT_EQ(shift("5.", -1), "0.5");
  EXPECT_EQ(shift("abc", 1), "<not a decimal>");
  EXPECT_EQ(shift("1e5", 1), "<not a decimal>");
  EXPECT_EQ(shift("", 1), "<not a decimal>");
  EXPECT_EQ(shift("NaN", 1), "<not a decimal>");
}

TEST(DecimalScale, HugeNumbersKeepEveryDigit) {
  EXPECT_EQ(shift("99999999999999999999999.999999", 6), "99999999999999999999999999999");
  EXPECT_EQ(shift("99999999999999999999999999999", -6), "99999999999999999999999.999999");
  const std::string long_digits(400, '7');
  EXPECT_EQ(shift(long_digits, 18), long_digits + std::string(18, '0'));
  EXPECT_EQ(shift(long_digits, -18), long_digits.substr(0, 382) + "." + long_digits.substr(382));
}

TEST(DecimalScale, IsWhole) {
  EXPECT_TRUE(is_whole("12"));
  EXPECT_TRUE(is_whole("-3"));
  EXPECT_FALSE(is_whole("12.5"));
}

}  // namespace
}  // namespace mdsync::mapping
