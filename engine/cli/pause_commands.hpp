// `mdsync pause [SIDE...] [--note TEXT]` and `mdsync resume [SIDE...]` (every side when none is
// named): nothing is written to a paused side while capture goes on (store/side_pause.hpp).
// They run as the service role, like the engine whose work they hold back.
#pragma once

#include <string>
#include <vector>

#include "mdsync/config/config.hpp"

namespace mdsync::cli {

struct PauseRequest {
  std::vector<std::string> sides;  // empty: every side
  std::string note;
  bool resume = false;
};

int cmd_pause(const config::Config& config, const PauseRequest& request);

}  // namespace mdsync::cli
