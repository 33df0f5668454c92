// token_bucket.hpp: the pacing of a side's write-backs, with the time passed in: what is
// there, what a send takes, when the next tokens are there (never early, never "now" when they
// are not, so a paced engine cannot spin), and the average rate over a long run.
#include "mdsync/core/token_bucket.hpp"

#include <gtest/gtest.h>

namespace mdsync::core {
namespace {

TEST(TokenBucket, StartsFullAndTakingEmptiesIt) {
  TokenBucket b(10, 10, 0);
  EXPECT_EQ(b.available(0), 10);
  b.take(10, 0);
  EXPECT_EQ(b.available(0), 0);
  b.take(5, 0);  // never below empty
  EXPECT_EQ(b.available(0), 0);
  EXPECT_EQ(b.ms_until(1, 0), 100);
}

TEST(TokenBucket, RefillsAtTheRateUpToTheCapacity) {
  TokenBucket b(10, 10, 1000);
  b.take(10, 1000);
  EXPECT_EQ(b.available(1099), 0);
  EXPECT_EQ(b.available(1100), 1);
  EXPECT_EQ(b.available(1550), 5);
  EXPECT_EQ(b.available(2000), 10);
  EXPECT_EQ(b.available(1000000), 10);  // a long idle time fills it, no more
}

TEST(TokenBucket, FractionsOfATokenAreKept) {
  // 3 a second: a token every 333.3 ms, none lost to rounding.
  TokenBucket b(3, 3, 0);
  b.take(3, 0);
  EXPECT_EQ(b.available(333), 0);
  EXPECT_EQ(b.available(334), 1);
  b.take(1, 334);
  EXPECT_EQ(b.available(667), 1);  // 2001 thousandths accrued since 0, 1000 taken
  EXPECT_EQ(b.available(1000), 2);
}

TEST(TokenBucket, MsUntilIsExactNeverEarlyAndNeverZeroWhenShort) {
  TokenBucket b(7, 7, 0);
  b.take(7, 0);
  for (std::int64_t n = 1; n <= 7; ++n) {
    const std::int64_t wait = b.ms_until(n, 0);
    EXPECT_GE(wait, 1) << n;
    TokenBucket probe = b;
    EXPECT_EQ(probe.available(wait), n) << n;  // there then
    TokenBucket earlier = b;
    EXPECT_LT(earlier.available(wait - 1), n) << n;  // and not a millisecond before
  }
  EXPECT_EQ(b.ms_until(0, 0), 0);
}

TEST(TokenBucket, MsUntilIsZeroWhenThereAndCapsAtTheCapacity) {
  TokenBucket b(5, 5, 0);
  EXPECT_EQ(b.ms_until(5, 0), 0);
  b.take(5, 0);
  // More than fits is asked as a full bucket.
  EXPECT_EQ(b.ms_until(50, 0), 1000);
}

TEST(TokenBucket, TheAverageRateHoldsOverALongRun) {
  // A sender that takes whatever is there every 37 ms for a minute sends at most
  // capacity + rate * 60 s.
  TokenBucket b(20, 20, 0);
  std::int64_t sent = 0;
  for (std::int64_t t = 0; t <= 60000; t += 37) {
    const std::int64_t n = b.available(t);
    b.take(n, t);
    sent += n;
  }
  EXPECT_LE(sent, 20 + 20 * 60);
  EXPECT_GE(sent, 20 * 60 - 20);
}

TEST(TokenBucket, AClockGoingBackAddsNothing) {
  TokenBucket b(10, 10, 5000);
  b.take(10, 5000);
  EXPECT_EQ(b.available(4000), 0);
  EXPECT_EQ(b.available(5100), 1);
}

TEST(TokenBucket, RateAndCapacityAreAtLeastOne) {
  TokenBucket b(0, 0, 0);
  EXPECT_EQ(b.rate_per_s(), 1);
  EXPECT_EQ(b.capacity(), 1);
  EXPECT_EQ(b.available(0), 1);
}

TEST(TokenBucket, HighRatesAndLongTimesDoNotOverflow) {
  TokenBucket b(1000000000, 1000000000, 0);
  b.take(1000000000, 0);
  EXPECT_EQ(b.available(INT64_MAX / 2), 1000000000);
}

}  // namespace
}  // namespace mdsync::core
