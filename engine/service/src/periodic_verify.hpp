// `run`'s periodic verify (config `service.verify_interval_s`): `mdsync verify` on a thread of
// its own, with connections of its own, so passes go on while it walks the sides. It logs each
// difference (which field of which row, not the values) and a summary, and with
// `service.verify_repair` repairs as `verify --repair` does. Stopping ends the walk after the
// chunk in progress.
#pragma once

#include <atomic>
#include <thread>

#include "mdsync/config/config.hpp"

namespace mdsync::service {

class PeriodicVerify {
 public:
  explicit PeriodicVerify(const config::Config& config) : config_(config) {}
  ~PeriodicVerify() { stop(); }
  PeriodicVerify(const PeriodicVerify&) = delete;
  PeriodicVerify& operator=(const PeriodicVerify&) = delete;

  // Starts a walk unless the last one is still running (then this one is skipped, logged).
  void start();
  // Asks the walk in progress to end and waits for it.
  void stop();

 private:
  void walk();

  const config::Config& config_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> stop_{false};
};

}  // namespace mdsync::service
