// Steward commands of the mdsync CLI: the conflict queue (list, show, resolve, dismiss),
// records, the audit trail and status (with its health checks and exit code). JSON output is the
// store's documents as they are; text output renders them for a terminal, with values JSON-quoted
// so no byte hides.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mdsync/config/config.hpp"
#include "mdsync/store/conflict_queue.hpp"
#include "mdsync/store/record_view.hpp"

namespace mdsync::cli {

int cmd_conflicts_list(const config::Config& config, const store::ConflictFilter& filter,
                       bool json);
int cmd_conflicts_show(const config::Config& config, std::int64_t id, bool json);

struct ResolveRequest {
  std::vector<std::int64_t> ids;
  bool all = false;  // with entity (and field): every matching open conflict
  std::optional<std::string> entity, field;
  std::optional<std::string> take_side;
  std::optional<std::string> value_json;
  std::optional<std::string> note;
  bool dismiss = false;
  // possible_duplicate: link the conflict's row to the record SIDE:ROWKEY (or a golden id)
  // stands for, or create a new record from it.
  std::optional<std::string> link;
  bool create = false;
  // A steward who may not write the control store asks the engine (mdsync's functions); how
  // long to wait for the engine to apply the decision before returning with it queued.
  int wait_seconds = 30;
};
int cmd_conflicts_resolve(const config::Config& config, const ResolveRequest& request);

int cmd_records_show(const config::Config& config, const std::string& entity, const std::string& id,
                     bool history, bool json);
int cmd_audit(const config::Config& config, const store::AuditFilter& filter, bool json);
// Exit 0 when the audit chain is intact, 1 when it is broken (stderr names the first row).
int cmd_audit_verify(const config::Config& config, bool json);
// Exit 1 (problems on stderr, one line each) when a side is unreachable, error items are open,
// or a --check threshold (NAME=VALUE: lag, backlog, conflicts, failed, errors) is exceeded.
int cmd_status(const config::Config& config, bool json, const std::vector<std::string>& checks);

}  // namespace mdsync::cli
