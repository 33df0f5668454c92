// The LISTEN connections that wake the service: one per side whose capture NOTIFYs (config
// `notify`) and one on the control store (stewards' requests, `rules apply`). The service
// waits on their sockets in its event loop and calls consume() when one is readable; this unit
// connects, reads what arrived without blocking, and reconnects a lost listener with backoff.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "mdsync/config/config.hpp"

namespace mdsync::store {

// The channels: a side's capture statement trigger NOTIFYs kCaptureChannel
// (trigger_side_install.cpp); the control store's steward functions and privileged steward commands
// NOTIFY kStewardChannel (steward_actions.hpp, migrations 0008 and 0014).
inline constexpr const char* kCaptureChannel = "mdsync_capture";
inline constexpr const char* kStewardChannel = "mdsync_steward";

class WakeListeners {
 public:
  using Clock = std::chrono::steady_clock;

  // One listener per side with `notify` on, then the control store's; none is connected yet.
  // Backoff between attempts follows `service.writeback_backoff_initial_ms` to `_max_ms`.
  explicit WakeListeners(const config::Config& config);
  // Closes every connection: whoever watches their sockets must have stopped first.
  ~WakeListeners();
  WakeListeners(const WakeListeners&) = delete;
  WakeListeners& operator=(const WakeListeners&) = delete;

  std::size_t size() const;
  const std::string& what(std::size_t i) const;  // "side erp", "control store"
  const std::string& side(std::size_t i) const;  // "erp"; empty for the control store's
  // Listener i is the control store's: what it hears is a steward's command (or `rules
  // apply`) committed in another session.
  bool control_store(std::size_t i) const;
  // The connection's socket while it listens, else -1. Watch it, never read it or close it.
  int socket(std::size_t i) const;

  // Connects listener i and LISTENs on its channel; true when it listens. A failure is logged
  // (`listener_unavailable`, the DSN without its password) and backed off: next_attempt(i).
  bool listen(std::size_t i, Clock::time_point now);
  Clock::time_point next_attempt(std::size_t i) const;

  struct Arrived {
    int notifications = 0;
    bool ruleset_applied = false;  // `rules apply` stored a new ruleset version
    bool lost = false;             // the connection is gone: stop watching, then drop()
    bool more = false;             // stopped reading a flood: call consume() again soon
  };
  // Takes every notification that has arrived on listener i, without blocking.
  Arrived consume(std::size_t i);

  // After consume() reported `lost`, or the socket failed (`why`), once the caller has stopped
  // watching the socket: closes the connection, logs `listener_lost` and backs off.
  void drop(std::size_t i, Clock::time_point now, const std::string& why = "");

 private:
  struct Listener;
  void back_off(Listener& l, Clock::time_point now);

  const config::Config& config_;
  std::vector<std::unique_ptr<Listener>> listeners_;
};

}  // namespace mdsync::store
