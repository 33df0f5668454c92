// The CLI's side of the control store: one connection per command, checked once for the
// control schema (a command before `init` says to run it), the database session user it runs
// as (the steward's identity in the audit trail, and the role named in grant hints), and the
// checks that turn an unknown entity, field or side in a request into a usage error.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

#include "mdsync/config/config.hpp"
#include "mdsync/store/db_connection.hpp"

namespace mdsync::cli {

// A request that names something the config or ruleset lacks, or a malformed value: exit 2.
// The message is one line and ends with the hint of the command's --help.
class UsageError : public std::runtime_error {
 public:
  UsageError(const std::string& what, const std::string& command)
      : std::runtime_error(what + " (see 'mdsync " + command + " --help')") {}
};

struct ControlSession {
  store::PgConnection conn;
  std::string session_user;
};

// Connects; with `need_schema`, throws store::SchemaMissing unless `init` has installed
// every migration this mdsync carries.
ControlSession open_control(const config::Config& config, bool need_schema = true);

// The session user of the last control connection opened ("" before any): for grant hints.
const std::string& control_role();

// Throws store::StewardError unless the session may write the record tables (the service
// role): "<user> may not <refusal> as the service role (<role>, config `roles`)".
void require_service_role(const ControlSession& session, const config::Config& config,
                          const std::string& refusal);

// The display name a steward gave with --as (or $MDSYNC_STEWARD); empty for none.
void set_display_name(const std::string& name);
const std::string& display_name();
// The steward's name in the audit trail (source "steward:<this>", a conflict's resolved_by):
// the database session user, which the control store authenticated, with the display name
// as an annotation: "alice" or "alice as Alice Smith". Never the OS user.
std::string steward_identity(const ControlSession& session);

// Usage checks against the config: throw UsageError naming the valid choices.
void check_entity(const config::Config& config, const std::string& entity,
                  const std::string& command);
void check_side(const config::Config& config, const std::string& side, const std::string& command);
// A field of the entity (of any entity when none is given), or a group name the ruleset in
// force gives those entities.
void check_field(const config::Config& config, ControlSession& session,
                 const std::optional<std::string>& entity, const std::string& field,
                 const std::string& command);
// --since: an ISO 8601 date or date-time (2024-05-01, 2024-05-01T12:00:00Z, ...+02:00).
void check_time(const std::string& text, const std::string& option, const std::string& command);

}  // namespace mdsync::cli
