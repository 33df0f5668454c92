// Error items: what the engine could not do on its own and an operator must look at. A change
// kept in capture_error (`c12`) and a write-back a side refused (outbox row 'failed', `w34`),
// listed, shown, retried or discarded through one id form (`mdsync errors`). Retry and discard
// are audited and all-or-nothing across the ids given.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mdsync/config/config.hpp"

namespace pqxx {
class connection_base;
}

namespace mdsync::store {

struct ErrorItemId {
  char kind = 'c';  // 'c' capture error, 'w' failed write-back
  std::int64_t number = 0;
  std::string text() const { return kind + std::to_string(number); }
};
// "c12" / "w34"; nullopt for anything else.
std::optional<ErrorItemId> parse_error_item_id(const std::string& text);

struct ErrorFilter {
  std::optional<std::string> side, entity;
  std::string status = "open";  // open | retried | discarded | all
};

// JSON documents with a stable shape (README, "JSON output").
nlohmann::json list_error_items(pqxx::connection_base& conn, const ErrorFilter& filter);
// Throws StewardError when there is no such item.
nlohmann::json show_error_item(pqxx::connection_base& conn, const ErrorItemId& id);

struct ErrorAction {
  enum class Kind { kRetry, kDiscard } kind = Kind::kRetry;
  std::string steward;  // the audit source's name: "alice" or "alice as Alice Smith"
  std::string note;
};

// Retries or discards every item, or none: any id that cannot be handled (unknown, not open,
// a capture error without a row key or of an entity the config does not map) throws
// StewardRefusals naming each, and nothing changes. Retrying a capture error re-captures the
// row's current state on its side (Side::recapture_row), never the old change; retrying
// a failed write-back plans the record's write-backs again under the ruleset in force.
// Returns one line per item saying what was done.
std::vector<std::string> handle_error_items(pqxx::connection_base& conn,
                                            const config::Config& config,
                                            const std::vector<ErrorItemId>& ids,
                                            const ErrorAction& action);

}  // namespace mdsync::store
