// Stewards who may not write the control store decide through mdsync's functions: their
// decision on conflicts is recorded by mdsync.request_steward_action, which stamps the session
// user (migration 0008), and the engine applies it at its next pass with the same code and
// checks as a privileged `mdsync conflicts resolve`, recording the steward who asked.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mdsync/config/config.hpp"
#include "mdsync/core/ruleset.hpp"
#include "mdsync/core/value.hpp"

namespace pqxx {
class connection_base;
class transaction_base;
}  // namespace pqxx

namespace mdsync::store {

// What the control store lets this session do with conflicts.
enum class ControlAccess {
  kWrite,    // write the record tables: resolve in the session's own transaction
  kRequest,  // execute mdsync.request_steward_action: the engine applies the decision
  kRead,     // read only
};
ControlAccess control_access(pqxx::connection_base& conn);

struct StewardRequest {
  enum class Kind { kTake, kValue, kDismiss, kLink, kCreate };
  Kind kind = Kind::kTake;
  std::vector<std::int64_t> conflict_ids;
  std::string take_side;     // kTake
  core::FieldValues values;  // kValue ("" for the one field of a one-field unit)
  std::string link_target;   // kLink: SIDE:ROWKEY or a golden id
  std::string note;
  std::string display_as;  // --as
};

// Records the request (all its conflicts open, or nothing is recorded and the database's
// message says which are not); returns the action's id.
std::int64_t request_steward_action(pqxx::connection_base& conn, const StewardRequest& request);

struct StewardActionState {
  std::string status;  // pending | applied | refused
  std::string result;  // the plans applied, or why the engine refused it
};

// Polls the action until the engine has applied or refused it, or `wait` has passed.
StewardActionState wait_for_steward_action(pqxx::connection_base& conn, std::int64_t id,
                                           std::chrono::milliseconds wait);

// Wakes a running service (which LISTENs on kStewardChannel, wake_listeners.hpp) when `tx`
// commits: a privileged steward command that queued write-backs or re-captured a row has work
// for the engine's next pass. Nothing is sent if `tx` rolls back. `what` is the payload.
void notify_engine(pqxx::transaction_base& tx, const std::string& what);

// The engine's part: applying the pending actions in the order they were asked under ruleset
// `rs`, each in a control transaction of its own that also marks it applied or refused (a
// refusal changes nothing else). Returns how many it handled. (Whether any waits is read with
// the paused sides, at the start of each pass: SyncEngine::read_pass_start.)
int apply_steward_actions(pqxx::connection_base& control, const config::Config& config,
                          const core::Ruleset& rs);

}  // namespace mdsync::store
