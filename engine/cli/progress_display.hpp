// How `sync --initial` shows where it is: on a terminal, one line redrawn in place with a bar,
// the rate and the time left; otherwise (a log, a pipe) a plain line now and then and one when
// a side's rows are all decided. Written to stderr, so stdout keeps only the report.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include "mdsync/store/initial_sync.hpp"

namespace mdsync::cli {

class ProgressDisplay {
 public:
  using Clock = std::chrono::steady_clock;
  // `terminal`: redraw in place; else plain lines at most every `plain_every`.
  ProgressDisplay(std::FILE* out, bool terminal,
                  std::chrono::milliseconds plain_every = std::chrono::seconds(10));
  void update(const store::InitialSyncProgress& p, Clock::time_point now = Clock::now());

 private:
  std::string line(const store::InitialSyncProgress& p, Clock::time_point now) const;

  std::FILE* out_;
  bool terminal_;
  std::chrono::milliseconds plain_every_;
  std::string step_;  // entity and side being shown
  Clock::time_point started_{}, shown_{};
};

}  // namespace mdsync::cli
