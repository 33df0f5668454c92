// Operator commands of the mdsync CLI: `init` (control schema, capture on every side, the
// first ruleset), `rules check|apply|show|diff` and `sync --initial`. Each returns the process exit
// code and throws for failures that main() reports uniformly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "mdsync/config/config.hpp"
#include "mdsync/store/initial_sync.hpp"

namespace mdsync::cli {

struct InitOptions {
  // Print the SQL a DBA runs so that init needs no CREATEROLE (per side), connect to nothing.
  bool print_grants = false;
  // Move this side, stamped by another control store, to this one.
  std::optional<std::string> adopt_side;
};

// `init`: exit 1 when a side belongs to another control store (the others are installed),
// 2 when --adopt-side names no side.
int cmd_init(const config::Config& config, const InitOptions& options);
int cmd_rules_check(const config::Config& config);
int cmd_rules_apply(const config::Config& config);
int cmd_rules_show(const config::Config& config, const std::optional<std::string>& entity);
int cmd_rules_diff(const config::Config& config);
// `sync --initial [--dry-run] [--accept-overwrites] [--json]`: prints per entity and side what
// was (or would be) linked, created and flagged as a possible duplicate, the write-backs per
// side and field, and (dry run, or --json) every write. Exit 1 when it refused to overwrite
// too much of a side, when rows were kept as errors, or when write-backs failed. Progress goes
// to stderr (progress_display.hpp).
int cmd_sync_initial(const config::Config& config, store::InitialSyncOptions options, bool json);

}  // namespace mdsync::cli
