// Operator commands of the mdsync CLI: `init` (control schema, capture on every side, the
// first ruleset) and `rules check|apply|show|diff`. Each returns the process exit code and
// throws for failures that main() reports uniformly.
#pragma once

#include <optional>
#include <string>

#include "mdsync/config/config.hpp"

namespace mdsync::cli {

// Refuses a config whose mappings use options this build reads and checks but does not yet
// apply when it syncs (a scale, a lookup, a scope, ...): syncing them as plain columns would
// write wrong values to the other side. Throws naming every such option.
void refuse_unapplied_mappings(const config::Config& config);

int cmd_init(const config::Config& config);
int cmd_rules_check(const config::Config& config);
int cmd_rules_apply(const config::Config& config);
int cmd_rules_show(const config::Config& config, const std::optional<std::string>& entity);
int cmd_rules_diff(const config::Config& config);

}  // namespace mdsync::cli
