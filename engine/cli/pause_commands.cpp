#include "pause_commands.hpp"

#include <algorithm>
#include <iostream>

#include "control_session.hpp"
#include "mdsync/store/side_pause.hpp"

namespace mdsync::cli {

int cmd_pause(const config::Config& config, const PauseRequest& request) {
  const std::string command = request.resume ? "resume" : "pause";
  std::vector<std::string> sides = request.sides;
  for (const std::string& side : sides) check_side(config, side, command);
  if (sides.empty()) sides = config.side_names();
  ControlSession session = open_control(config);
  require_service_role(session, config, command + " sides: it runs");
  const std::vector<std::string> changed =
      request.resume
          ? store::resume_sides(*session.conn, sides)
          : store::pause_sides(*session.conn, sides, steward_identity(session), request.note);
  for (const std::string& side : sides) {
    const bool did = std::find(changed.begin(), changed.end(), side) != changed.end();
    if (request.resume)
      std::cout << (did ? "resumed " + side + ": its queued write-backs are sent at the next pass"
                        : side + " was not paused")
                << "\n";
    else
      std::cout << (did ? "paused " + side +
                              ": capture goes on; write-backs to it wait until `mdsync resume " +
                              side + "`"
                        : side + " was already paused")
                << "\n";
  }
  return 0;
}

}  // namespace mdsync::cli
