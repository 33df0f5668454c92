// `mdsync sync --initial`: bootstrapping from the rows the sides already hold, in one control
// transaction. Every side is read in one snapshot each; the rows are decided side after side
// (the rules' `priority` first) by the engine's own batch code, each row linked by the match
// keys of what every side holds, whoever owns the key's fields; write-backs are planned once,
// after every side's rows, so nothing is written because of the order the sides were read in.
// The dry run is the same transaction rolled back, listing every write it would have queued.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "mdsync/config/config.hpp"
#include "mdsync/store/sync_engine.hpp"

namespace mdsync::store {

// Where `sync --initial` is: an entity's rows of one side being decided, a chunk at a time.
struct InitialSyncProgress {
  std::string entity, side;
  std::int64_t done = 0, total = 0;  // rows of this entity and side
  bool finished = false;             // the last chunk of this entity and side
};

struct InitialSyncOptions {
  bool dry_run = false;
  // Queue the writes even when they overwrite more of a side's values than
  // `initial_sync.max_overwrite_share` allows.
  bool accept_overwrites = false;
  std::uint64_t seed = 0;
  // Keep every planned write in the report (`writes`): a dry run and --json list them; a real
  // run only counts them, so memory does not grow with the number of writes.
  bool list_writes = true;
  // Called after each chunk of rows is decided, and once when a side's rows are all read.
  std::function<void(const InitialSyncProgress&)> progress;
};

// What happened (or would happen) to one entity's rows on one side.
struct InitialSyncStep {
  std::string entity;
  std::string side;
  std::int64_t rows = 0;        // rows the side holds that take part
  int already_linked = 0;       // linked before: diffed against their base
  int linked = 0;               // linked to an existing record by a match key
  int created = 0;              // created a record (created on the other sides at write-back)
  int possible_duplicates = 0;  // opened a possible_duplicate conflict
  int other = 0;                // held by an open conflict or as an unauthorized create
  int errors = 0;               // kept as errors (`mdsync errors list`), not synced
  std::vector<std::string> duplicates;  // one line per possible duplicate
};

// One field of one queued write-back (an insert or delete lists the row once, field empty).
struct PlannedWrite {
  std::string side;
  std::string entity;
  std::int64_t golden_id = 0;
  std::string kind;     // insert, update, delete
  std::string row_key;  // empty for an insert
  std::string field;
  std::optional<std::string> old_value;  // what the side holds now
  std::optional<std::string> new_value;
  bool queued_before = false;  // queued by an earlier run and still pending
};

// A side's share of the writes: how many of its non-empty values they replace.
struct SideWrites {
  std::string side;
  int inserts = 0, updates = 0, deletes = 0;
  std::int64_t fields = 0;      // field values written by updates
  std::int64_t overwrites = 0;  // of them: a non-empty value replaced (blanks included)
  std::int64_t blanks = 0;      // of them: a non-empty value replaced by an empty one
  std::int64_t non_empty = 0;   // non-empty values the side's rows hold
};

struct InitialSyncReport {
  bool dry_run = false;
  std::vector<InitialSyncStep> steps;
  std::vector<PlannedWrite> writes;  // every write-back pending after the decisions
  std::vector<SideWrites> sides;
  int captures_applied = 0;   // pending capture rows decided first (rows gone since)
  int captures_subsumed = 0;  // pending capture rows whose row was read whole instead
  double max_overwrite_share = 0;
  // Set when the run refused to commit: the sides whose overwrites pass the share.
  std::vector<std::string> refused;
  PassResult delivered;  // write-backs an earlier run had queued, delivered before the read
  PassResult writeback;  // the drain after the commit (not for a dry run or a refusal)
};

// Throws when a side or the control store cannot be reached (nothing is changed then), or
// when a service holds the engine lease.
InitialSyncReport initial_sync(const config::Config& config, const InitialSyncOptions& options);

}  // namespace mdsync::store
