// Read-only views for stewards and operators: one golden record with its crosswalk, bases,
// open conflicts and history; the audit trail; and the per-side status report. Each is a
// JSON document with a stable shape that the CLI prints as is (--json) or as text.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mdsync/config/config.hpp"

namespace pqxx {
class connection_base;
}

namespace mdsync::store {

// `id`: a golden id ("17") or a side's row key ("crm:6f1c..."). Throws StewardError
// (conflict_queue.hpp) when there is no such record.
nlohmann::json show_record(pqxx::connection_base& conn, const config::Config& config,
                           const std::string& entity, const std::string& id, bool history);

struct AuditFilter {
  std::optional<std::string> entity;
  std::optional<std::int64_t> golden_id;
  std::optional<std::string> since;  // a timestamp PostgreSQL understands
  int limit = 1000;
};
nlohmann::json audit_log(pqxx::connection_base& conn, const AuditFilter& filter);

// What names each record for people: the golden value of its entity's label field
// (config `label`), by golden id; records without one are left out.
std::map<std::int64_t, std::string> record_labels(pqxx::connection_base& conn,
                                                  const config::Config& config,
                                                  const std::vector<std::int64_t>& golden_ids);

// Control-store view of every side plus, where reachable, each side's capture backlog.
// kGauges leaves out what a metrics scrape does not need (each side's mapping drift and its
// recent error history).
enum class StatusDetail { kFull, kGauges };
nlohmann::json status_report(pqxx::connection_base& conn, const config::Config& config,
                             StatusDetail detail = StatusDetail::kFull);

}  // namespace mdsync::store
