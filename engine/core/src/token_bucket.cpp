#include "mdsync/core/token_bucket.hpp"

#include <algorithm>

namespace mdsync::core {

namespace {
constexpr std::int64_t kMilli = 1000;
}

TokenBucket::TokenBucket(std::int64_t rate_per_s, std::int64_t capacity, std::int64_t now_ms)
    : rate_(std::max<std::int64_t>(1, rate_per_s)),
      capacity_(std::max<std::int64_t>(1, capacity)),
      level_(capacity_ * kMilli),
      last_ms_(now_ms) {}

void TokenBucket::refill(std::int64_t now_ms) {
  if (now_ms <= last_ms_) return;  // a clock read earlier than the last adds nothing
  const std::int64_t room = capacity_ * kMilli - level_;
  // Bounded before multiplying: a long idle time only fills the bucket.
  const std::int64_t elapsed = std::min(now_ms - last_ms_, room / rate_ + 1);
  level_ = std::min(capacity_ * kMilli, level_ + elapsed * rate_);
  last_ms_ = now_ms;
}

std::int64_t TokenBucket::available(std::int64_t now_ms) {
  refill(now_ms);
  return level_ / kMilli;
}

void TokenBucket::take(std::int64_t n, std::int64_t now_ms) {
  refill(now_ms);
  level_ = std::max<std::int64_t>(0, level_ - std::max<std::int64_t>(0, n) * kMilli);
}

std::int64_t TokenBucket::ms_until(std::int64_t n, std::int64_t now_ms) {
  refill(now_ms);
  const std::int64_t missing = std::min(n, capacity_) * kMilli - level_;
  if (missing <= 0) return 0;
  return (missing + rate_ - 1) / rate_;
}

}  // namespace mdsync::core
