#include "mdsync/core/circuit_breaker.hpp"

#include <algorithm>

namespace mdsync::core {

CircuitBreaker::CircuitBreaker(CircuitSettings settings) : settings_(settings) {
  settings_.failures = std::max(1, settings_.failures);
  settings_.open_ms = std::max<std::int64_t>(1, settings_.open_ms);
  settings_.max_open_ms = std::max(settings_.open_ms, settings_.max_open_ms);
}

bool CircuitBreaker::probe_due(std::int64_t now_ms) {
  if (state_ != State::kOpen || now_ms < retry_at_ms_) return false;
  state_ = State::kHalfOpen;
  return true;
}

void CircuitBreaker::open(std::int64_t now_ms) {
  state_ = State::kOpen;
  retry_at_ms_ = now_ms + open_for_ms_;
}

CircuitBreaker::Transition CircuitBreaker::failed(std::int64_t now_ms) {
  ++failures_;
  switch (state_) {
    case State::kClosed:
      if (failures_ < settings_.failures) return Transition::kNone;
      opened_at_ms_ = now_ms;
      open_for_ms_ = settings_.open_ms;
      open(now_ms);
      return Transition::kOpened;
    case State::kHalfOpen:
      // Halved first, so a doubling never overflows whatever the settings.
      open_for_ms_ =
          open_for_ms_ > settings_.max_open_ms / 2 ? settings_.max_open_ms : open_for_ms_ * 2;
      open(now_ms);
      return Transition::kReopened;
    case State::kOpen:
      return Transition::kNone;
  }
  return Transition::kNone;
}

CircuitBreaker::Transition CircuitBreaker::succeeded() {
  failures_ = 0;
  if (state_ == State::kClosed) return Transition::kNone;
  state_ = State::kClosed;
  opened_at_ms_ = retry_at_ms_ = open_for_ms_ = 0;
  return Transition::kClosed;
}

const char* CircuitBreaker::name(State s) {
  switch (s) {
    case State::kClosed:
      return "closed";
    case State::kOpen:
      return "open";
    case State::kHalfOpen:
      return "half_open";
  }
  return "closed";
}

}  // namespace mdsync::core
