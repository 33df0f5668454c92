// The conflict queue as stewards see it: listing and showing conflicts, and resolving them
// (take a side, set a value, dismiss) through the core, in one control transaction that
// also audits the resolution and queues the write-backs that make every side converge.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mdsync/config/config.hpp"
#include "mdsync/core/reconciler.hpp"

namespace pqxx {
class connection_base;
class transaction_base;
}  // namespace pqxx

namespace mdsync::store {

// A steward request that cannot be carried out (unknown id, already resolved, ...).
class StewardError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A request about several ids refused as a whole: one problem per id that could not be
// carried out. Nothing was changed.
class StewardRefusals : public StewardError {
 public:
  explicit StewardRefusals(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

struct ConflictFilter {
  std::optional<std::string> entity, field, kind;
  std::string status = "open";  // open | resolved | dismissed | all
};

// JSON documents with a stable shape (README, "JSON output").
nlohmann::json list_conflicts(pqxx::connection_base& conn, const ConflictFilter& filter);
nlohmann::json show_conflict(pqxx::connection_base& conn, std::int64_t id);

// Resolves (or dismisses) open conflicts in one control transaction, all or none: an id that
// cannot be resolved (unknown, not open, the wrong kind, a bad value) throws StewardRefusals
// naming every such id, and nothing changes. Returns the core's plans as text.
std::string resolve_conflicts(pqxx::connection_base& conn, const config::Config& config,
                              const std::vector<std::int64_t>& ids,
                              const core::Resolution& resolution);
// The same inside the caller's transaction (the engine applying a steward's queued action),
// under ruleset `rs`. A resolution's time_us, when set, is when the steward decided.
std::string resolve_conflicts_in(pqxx::transaction_base& tx, const config::Config& config,
                                 const core::Ruleset& rs, const std::vector<std::int64_t>& ids,
                                 const core::Resolution& resolution);

}  // namespace mdsync::store
