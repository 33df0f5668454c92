// `mdsync sync --initial`: bootstrapping from the rows the sides already hold. Entity by
// entity, side by side (the rules' `priority` first, then config order), every row that takes
// part is enqueued into the side's
// capture table as a full-row upsert and reconciled by the normal engine, without write-backs
// until every side is done: the first side's rows create records, the later sides' rows are
// linked to them by match keys (or open possible_duplicate conflicts), and rows already
// linked are diffed against their base like any change. Then the write-backs are drained.
// Running it again creates nothing new.
//
// The dry run reads the same rows without enqueuing them, and decides on them with the same
// functions (match keys, the core's reconcile) in a control transaction that is rolled back:
// nothing changes anywhere.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mdsync/config/config.hpp"
#include "mdsync/store/sync_engine.hpp"

namespace mdsync::store {

// What happened (or would happen) to one entity's rows on one side.
struct InitialSyncStep {
  std::string entity;
  std::string side;
  std::int64_t rows = 0;        // rows the side holds that take part
  int already_linked = 0;       // linked before: diffed against their base
  int linked = 0;               // linked to an existing record by a match key
  int created = 0;              // created a record (created on the other sides at write-back)
  int possible_duplicates = 0;  // opened a possible_duplicate conflict
  int other = 0;                // held by an open conflict, an unauthorized create, an error
  std::vector<std::string> duplicates;  // one line per possible duplicate
  std::vector<std::string> others;      // one line per row counted in `other` (dry run)
};

struct InitialSyncReport {
  bool dry_run = false;
  std::vector<InitialSyncStep> steps;
  PassResult writeback;  // the drain after the sides (not for a dry run)
};

InitialSyncReport initial_sync(const config::Config& config, bool dry_run, std::uint64_t seed);

}  // namespace mdsync::store
