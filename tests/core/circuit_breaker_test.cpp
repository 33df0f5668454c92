// circuit_breaker.hpp: every transition of a side's circuit (closed, open, half-open), with the
// time passed in, so each test says exactly when a probe is due.
#include "mdsync/core/circuit_breaker.hpp"

#include <gtest/gtest.h>

namespace mdsync::core {
namespace {

using State = CircuitBreaker::State;
using T = CircuitBreaker::Transition;

CircuitBreaker breaker(int failures = 3, std::int64_t open_ms = 1000,
                       std::int64_t max_open_ms = 3000) {
  return CircuitBreaker(CircuitSettings{failures, open_ms, max_open_ms});
}

// Fails a closed breaker until it opens; the opening failure is at `at`.
void open_at(CircuitBreaker& b, std::int64_t at) {
  while (b.closed()) b.failed(at);
}

TEST(CircuitBreaker, StartsClosedAndFailuresBelowTheThresholdKeepItClosed) {
  CircuitBreaker b = breaker();
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.closed());
  EXPECT_FALSE(b.probe_due(0));  // nothing to probe while closed
  EXPECT_EQ(b.failed(10), T::kNone);
  EXPECT_EQ(b.failed(20), T::kNone);
  EXPECT_EQ(b.consecutive_failures(), 2);
  EXPECT_TRUE(b.closed());
  EXPECT_FALSE(b.probe_due(1000000));
}

TEST(CircuitBreaker, ASuccessBelowTheThresholdStartsTheCountAgain) {
  CircuitBreaker b = breaker();
  b.failed(10);
  b.failed(20);
  EXPECT_EQ(b.succeeded(), T::kNone);  // closed stays closed: nothing to log
  EXPECT_EQ(b.consecutive_failures(), 0);
  EXPECT_EQ(b.failed(30), T::kNone);
  EXPECT_EQ(b.failed(40), T::kNone);
  EXPECT_TRUE(b.closed());
}

TEST(CircuitBreaker, TheNthConsecutiveFailureOpensIt) {
  CircuitBreaker b = breaker(3, 1000);
  b.failed(10);
  b.failed(20);
  EXPECT_EQ(b.failed(30), T::kOpened);
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_EQ(b.consecutive_failures(), 3);
  EXPECT_EQ(b.opened_at_ms(), 30);
  EXPECT_EQ(b.retry_at_ms(), 1030);
  EXPECT_EQ(b.open_for_ms(), 1000);
}

TEST(CircuitBreaker, OneFailureOpensItWhenTheThresholdIsOne) {
  CircuitBreaker b = breaker(1, 500);
  EXPECT_EQ(b.failed(7), T::kOpened);
  EXPECT_EQ(b.retry_at_ms(), 507);
}

TEST(CircuitBreaker, OpenAllowsNothingUntilItsTimeThenExactlyOneProbe) {
  CircuitBreaker b = breaker(3, 1000);
  open_at(b, 0);
  EXPECT_FALSE(b.probe_due(0));
  EXPECT_FALSE(b.probe_due(999));
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_TRUE(b.probe_due(1000));
  EXPECT_EQ(b.state(), State::kHalfOpen);
  // The probe is out: no second one, whatever the time.
  EXPECT_FALSE(b.probe_due(1000));
  EXPECT_FALSE(b.probe_due(50000));
  EXPECT_FALSE(b.closed());
}

TEST(CircuitBreaker, ASuccessfulProbeClosesIt) {
  CircuitBreaker b = breaker(3, 1000);
  open_at(b, 0);
  ASSERT_TRUE(b.probe_due(1200));
  EXPECT_EQ(b.succeeded(), T::kClosed);
  EXPECT_TRUE(b.closed());
  EXPECT_EQ(b.consecutive_failures(), 0);
  EXPECT_EQ(b.opened_at_ms(), 0);
  EXPECT_EQ(b.retry_at_ms(), 0);
  // Closed again: it takes the whole threshold to open it, for open_ms again.
  b.failed(2000);
  b.failed(2001);
  EXPECT_EQ(b.failed(2002), T::kOpened);
  EXPECT_EQ(b.retry_at_ms(), 3002);
}

TEST(CircuitBreaker, AFailedProbeReopensItForTwiceAsLongUpToTheMaximum) {
  CircuitBreaker b = breaker(3, 1000, 3000);
  open_at(b, 0);
  ASSERT_TRUE(b.probe_due(1000));
  EXPECT_EQ(b.failed(1005), T::kReopened);
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_EQ(b.consecutive_failures(), 4);
  EXPECT_EQ(b.open_for_ms(), 2000);
  EXPECT_EQ(b.retry_at_ms(), 3005);
  EXPECT_EQ(b.opened_at_ms(), 0);  // the episode's start is kept
  EXPECT_FALSE(b.probe_due(3004));
  ASSERT_TRUE(b.probe_due(3005));
  EXPECT_EQ(b.failed(3010), T::kReopened);
  EXPECT_EQ(b.open_for_ms(), 3000);  // 4000 capped
  EXPECT_EQ(b.retry_at_ms(), 6010);
  ASSERT_TRUE(b.probe_due(6010));
  EXPECT_EQ(b.failed(6010), T::kReopened);
  EXPECT_EQ(b.open_for_ms(), 3000);
  EXPECT_EQ(b.consecutive_failures(), 6);
}

TEST(CircuitBreaker, AFailureReportedWhileOpenIsCountedButChangesNothing) {
  // An attempt that started before the circuit opened and ends after it.
  CircuitBreaker b = breaker(3, 1000);
  open_at(b, 0);
  EXPECT_EQ(b.failed(500), T::kNone);
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_EQ(b.retry_at_ms(), 1000);
  EXPECT_EQ(b.consecutive_failures(), 4);
}

TEST(CircuitBreaker, ASuccessReportedWhileOpenClosesIt) {
  CircuitBreaker b = breaker(3, 1000);
  open_at(b, 0);
  EXPECT_EQ(b.succeeded(), T::kClosed);
  EXPECT_TRUE(b.closed());
}

TEST(CircuitBreaker, AfterClosingAReopeningStartsAgainFromOpenMs) {
  CircuitBreaker b = breaker(2, 1000, 8000);
  open_at(b, 0);
  ASSERT_TRUE(b.probe_due(1000));
  b.failed(1000);  // 2000
  ASSERT_TRUE(b.probe_due(3000));
  b.succeeded();
  open_at(b, 5000);
  EXPECT_EQ(b.open_for_ms(), 1000);
  EXPECT_EQ(b.retry_at_ms(), 6000);
}

TEST(CircuitBreaker, SettingsAreMadeSane) {
  // A maximum below open_ms would shorten re-openings: it is raised to open_ms.
  CircuitBreaker b(CircuitSettings{0, 1000, 10});
  EXPECT_EQ(b.settings().failures, 1);
  EXPECT_EQ(b.settings().max_open_ms, 1000);
  EXPECT_EQ(b.failed(0), T::kOpened);
  ASSERT_TRUE(b.probe_due(1000));
  b.failed(1000);
  EXPECT_EQ(b.open_for_ms(), 1000);
}

TEST(CircuitBreaker, DoublingNeverOverflows) {
  const std::int64_t huge = INT64_MAX / 2 + 10;
  CircuitBreaker b(CircuitSettings{1, huge, INT64_MAX - 1});
  b.failed(0);
  ASSERT_TRUE(b.probe_due(huge));
  b.failed(0);
  EXPECT_EQ(b.open_for_ms(), INT64_MAX - 1);
}

TEST(CircuitBreaker, StateNames) {
  EXPECT_STREQ(CircuitBreaker::name(State::kClosed), "closed");
  EXPECT_STREQ(CircuitBreaker::name(State::kOpen), "open");
  EXPECT_STREQ(CircuitBreaker::name(State::kHalfOpen), "half_open");
}

}  // namespace
}  // namespace mdsync::core
