// The conflict queue as stewards see it: listing and showing conflicts, and resolving them
// (take a side, set a value, dismiss) through the core, in one control transaction that
// also audits the resolution and queues the write-backs that make every side converge.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "mdsync/config/config.hpp"
#include "mdsync/core/reconciler.hpp"

namespace pqxx {
class connection_base;
}

namespace mdsync::store {

// A steward request that cannot be carried out (unknown id, already resolved, ...).
class StewardError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ConflictFilter {
  std::optional<std::string> entity, field, kind;
  std::string status = "open";  // open | resolved | dismissed | all
};

// JSON documents with a stable shape (README, "JSON output").
nlohmann::json list_conflicts(pqxx::connection_base& conn, const ConflictFilter& filter);
nlohmann::json show_conflict(pqxx::connection_base& conn, std::int64_t id);

// Resolves (or dismisses) one open conflict; returns the core's plan as text.
std::string resolve_conflict(pqxx::connection_base& conn, const config::Config& config,
                             std::int64_t id, const core::Resolution& resolution);

}  // namespace mdsync::store
