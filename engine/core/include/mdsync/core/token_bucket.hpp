// A token bucket, which paces a side's write-backs (`max_writes_per_s`): tokens accrue at
// `rate` a second up to `capacity`, and each row write sent takes one, so no more than `rate`
// writes a second go out on average and at most `capacity` at once. Pure: the caller passes
// the time (milliseconds on a monotonic clock). Counted in thousandths of a token, so the
// arithmetic is exact and "when will n tokens be there" is never early.
#pragma once

#include <cstdint>

namespace mdsync::core {

class TokenBucket {
 public:
  // Starts full. rate and capacity are at least 1.
  TokenBucket(std::int64_t rate_per_s, std::int64_t capacity, std::int64_t now_ms);

  // Whole tokens there at now_ms.
  std::int64_t available(std::int64_t now_ms);
  // Takes n tokens (fewer if fewer are there: the bucket never goes below empty).
  void take(std::int64_t n, std::int64_t now_ms);
  // Milliseconds from now_ms until n tokens are there: 0 when they are, else at least 1.
  // n is capped at the capacity (more never fit).
  std::int64_t ms_until(std::int64_t n, std::int64_t now_ms);

  std::int64_t rate_per_s() const { return rate_; }
  std::int64_t capacity() const { return capacity_; }

 private:
  void refill(std::int64_t now_ms);

  std::int64_t rate_;      // tokens a second = thousandths of a token a millisecond
  std::int64_t capacity_;  // whole tokens
  std::int64_t level_;     // thousandths of a token
  std::int64_t last_ms_;
};

}  // namespace mdsync::core
