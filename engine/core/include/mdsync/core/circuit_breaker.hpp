// A side's circuit breaker: after a run of consecutive failures the engine leaves the side
// alone for a while (open), then lets one attempt through (half-open) whose outcome closes the
// circuit or opens it again for twice as long. Pure: the caller passes the time (milliseconds
// on a monotonic clock) and makes the attempts; this only says when and keeps count.
#pragma once

#include <cstdint>

namespace mdsync::core {

struct CircuitSettings {
  int failures = 5;                   // consecutive failures that open the circuit
  std::int64_t open_ms = 30000;       // how long it stays open the first time
  std::int64_t max_open_ms = 300000;  // each re-opening doubles that, up to this
};

class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };
  // What an event changed, for the caller to log and record.
  enum class Transition { kNone, kOpened, kReopened, kHalfOpened, kClosed };

  explicit CircuitBreaker(CircuitSettings settings = {});

  // The side may be used freely (below the failure threshold the caller's own backoff applies).
  bool closed() const { return state_ == State::kClosed; }
  // Open and its time is up: the circuit turns half-open and the caller makes one attempt now,
  // the probe, whose outcome it reports with failed() or succeeded(). False while closed, while
  // open before retry_at_ms(), and while a probe is out (one at a time).
  bool probe_due(std::int64_t now_ms);
  // An attempt failed. Closed: counted, and the threshold opens the circuit (kOpened). A failed
  // probe opens it again for twice as long, up to max_open_ms (kReopened). Open: an attempt
  // started before it opened; counted only.
  Transition failed(std::int64_t now_ms);
  // An attempt succeeded: the count starts again, and an open or half-open circuit closes
  // (kClosed) with its next opening back at open_ms.
  Transition succeeded();

  State state() const { return state_; }
  int consecutive_failures() const { return failures_; }
  // Of the current episode (not closed): when it first opened, and when the next probe is due
  // (while open).
  std::int64_t opened_at_ms() const { return opened_at_ms_; }
  std::int64_t retry_at_ms() const { return retry_at_ms_; }
  // How long the circuit stays open this time (doubles with every re-opening).
  std::int64_t open_for_ms() const { return open_for_ms_; }
  const CircuitSettings& settings() const { return settings_; }

  static const char* name(State s);  // "closed", "open", "half_open"

 private:
  void open(std::int64_t now_ms);

  CircuitSettings settings_;
  State state_ = State::kClosed;
  int failures_ = 0;
  std::int64_t opened_at_ms_ = 0;
  std::int64_t retry_at_ms_ = 0;
  std::int64_t open_for_ms_ = 0;
};

}  // namespace mdsync::core
