// Ruleset versions in the control store: `rules apply` saves the checked rule files as a
// new numbered version; the service and the CLI load the newest and re-check it against
// the current config, so a version that no longer fits is refused, never half-applied.
#pragma once

#include <cstdint>
#include <optional>

#include "mdsync/config/config.hpp"
#include "mdsync/core/ruleset.hpp"
#include "mdsync/rules/rules_reader.hpp"

namespace pqxx {
class connection_base;
}

namespace mdsync::store {

struct StoredRuleset {
  std::int64_t version = 0;
  rules::RuleTexts texts;
};

std::optional<StoredRuleset> latest_ruleset(pqxx::connection_base& conn);
std::optional<std::int64_t> latest_ruleset_version(pqxx::connection_base& conn);

// Saves `texts` as a new version unless they equal the newest; returns the version in force.
std::int64_t apply_ruleset(pqxx::connection_base& conn, const rules::RuleTexts& texts,
                           bool* created);

// The newest ruleset, checked against the config. Throws std::runtime_error if none was
// applied, rules::CheckError if it no longer fits the config.
core::Ruleset load_ruleset(pqxx::connection_base& conn, const config::Config& config);

}  // namespace mdsync::store
