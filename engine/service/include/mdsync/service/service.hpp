// `mdsync run`: the long-running service. One Boost.Asio event loop runs the engine's passes
// when a side's capture or the control store NOTIFYs (store::WakeListeners), at once again
// while there is work, and on a poll timer as the safety net; it stops on SIGTERM or SIGINT
// after the pass in progress, and keeps running when a side or the control store goes away.
#pragma once

#include <cstdint>

#include "mdsync/config/config.hpp"

namespace mdsync::service {

struct RunOptions {
  bool once = false;       // drain what is pending, then exit
  std::uint64_t seed = 0;  // backoff jitter seed; 0 picks one, which is logged
};

// Returns the process exit code: 0 after a clean stop (or a complete drain with --once),
// 1 when --once could not drain everything (a side or the control store unreachable) or left
// error items (write-backs a side refused, changes kept in capture_error).
int run(const config::Config& config, const RunOptions& options);

}  // namespace mdsync::service
