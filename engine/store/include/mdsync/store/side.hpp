// A side database as the engine needs it, whatever its kind: reading its captured changes,
// acknowledging them, reading its current rows and applying write-backs, plus setting it up.
// make_side builds the kind a side is; the first and only kind so far is a PostgreSQL
// database with capture triggers (engine/store/src/trigger_side.hpp).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "mdsync/config/config.hpp"
#include "mdsync/core/change.hpp"
#include "mdsync/core/writeback_plan.hpp"
#include "mdsync/store/store_identity.hpp"

namespace mdsync::store {

// The config's mapping does not match the live side; the message lists every mismatch.
class MappingError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The side's write-back transaction deadlocked (or failed to serialize) with other
// transactions on every attempt: contention, not an outage. Nothing was written; the writes
// are tried again on the next pass.
class SideContention : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The side is stamped for another control store (or for none): the engine leaves it alone,
// and `init` changes nothing on it. The message names the owner and how to move the side.
class SideOwnershipError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// `init` may not create or use the capture role (no CREATEROLE, not a member, cannot change a
// function's owner); the message names what is missing and points to `--print-grants`.
class CapturePrivilegeError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct CapturedRow {
  std::int64_t seq = 0;
  std::string entity;
  core::Op op = core::Op::kUpsert;
  // The row left the side's scope (op is kDelete): the engine stops syncing it and deletes
  // nothing. A soft-deleted row is a plain kDelete.
  bool left_scope = false;
  std::string row_key;
  core::FieldValues values;  // raw text as the side holds it, by field
  // Fields whose side value could not be read (a foreign key that the lookup table does not
  // hold): field -> reason. The engine makes them invalid_value conflicts.
  std::map<std::string, std::string> invalid = {};
  std::int64_t captured_at_us = 0;  // 0: not captured (a row read from a snapshot)
};

// One read of a side's capture table: its epoch (which identifies this capture table; it
// changes if the table is ever re-created, so sequences are never confused) and rows.
struct CaptureBatch {
  std::string epoch;
  std::vector<CapturedRow> rows;
};

struct WriteRequest {
  std::int64_t outbox_id = 0;
  std::string entity;
  core::RowWrite::Kind kind = core::RowWrite::Kind::kUpdate;
  // Update, delete: the row's key. Insert: the key of the record's soft-deleted row on this
  // side, if it has one; that row is restored instead of a new one inserted.
  std::string row_key;
  core::FieldValues values;
  core::FieldValues expected;
  // The record no longer wants this write (migration 0004): it is not written; the side only
  // says whether an earlier attempt applied it (kApplied: the engine did not hear of it) or
  // records the id as cancelled so that it never will be (kCancelled).
  bool cancel = false;
};

struct WriteResult {
  enum class Status {
    kApplied,     // written now, or found written by an earlier attempt (idempotency key)
    kSuperseded,  // the side no longer holds the expected base: not written (guarantee 4)
    kFailed,      // the side refused the row (a constraint, a type); others still go through
    kVetoed,      // a delete guard refused the delete; `error` is the guard's reason
    // The side cannot hold the golden value of `field` (outside its value map, finer than its
    // scale, a code its lookup table lacks); nothing of the row was written. `error` says why.
    kUnwritable,
    kCancelled,  // a withdrawn write (WriteRequest::cancel) that was never applied
  };
  Status status = Status::kApplied;
  // The side's key (for an insert: the key the side generated). A restore reported
  // kSuperseded with no key found the row gone: the engine inserts a new one instead.
  std::string row_key;
  std::string error;
  std::string field = {};  // kUnwritable: the field
  // kUnwritable: the side's database refused the value (a constraint, a trigger) rather than
  // the mapping: the engine opens a write_refused conflict instead of invalid_value.
  bool refused = false;
  std::string sqlstate = {};  // kFailed by the side's database: its SQLSTATE
  // kSuperseded: the row has captured changes the engine has not reconciled yet, which
  // explain the difference. Without them the side holds values the engine never saw.
  bool unreconciled_capture = false;
};

// What `sync --initial` reads of a side: the captured changes not acknowledged yet and the rows
// of each entity that take part, as of one moment that holds while the snapshot lives (a
// captured change is either in the rows or comes after them). Rows come in key order, a chunk
// at a time, so memory follows the chunk, not the table (seq numbers them in key order, from 1).
class SideSnapshot {
 public:
  virtual ~SideSnapshot() = default;
  SideSnapshot(const SideSnapshot&) = delete;
  SideSnapshot& operator=(const SideSnapshot&) = delete;

  virtual const CaptureBatch& captures() const = 0;
  // The entity's rows that take part (for progress).
  virtual std::int64_t count(const config::EntityConfig& entity) = 0;
  // Which of these row keys the snapshot holds among the entity's rows that take part.
  virtual std::set<std::string> present(const config::EntityConfig& entity,
                                        const std::vector<std::string>& keys) = 0;
  // The entity's next rows, up to `max_rows`; empty once every row was read. One entity is read
  // at a time, each from its first row.
  virtual std::vector<CapturedRow> next(const config::EntityConfig& entity,
                                        std::size_t max_rows) = 0;

 protected:
  SideSnapshot() = default;
};

// One row as a side holds it now (`verify`'s second look at a row that seemed to differ).
struct RowNow {
  enum class State {
    kTakesPart,    // live and inside the entity's scope: `row` holds it
    kOutOfScope,   // live, but the scope (a row filter) leaves it out
    kSoftDeleted,  // there, but soft-deleted (the mapping's deleted_at or active flag)
    kGone,         // deleted, or never there
  };
  State state = State::kGone;
  CapturedRow row;  // kTakesPart: as capture would deliver it (lookups resolved)
  // A captured change of the row is not acknowledged yet: it explains any difference.
  bool capture_waiting = false;
};

class Side {
 public:
  virtual ~Side() = default;
  Side(const Side&) = delete;
  Side& operator=(const Side&) = delete;

  virtual const std::string& name() const = 0;

  // ---- Set-up --------------------------------------------------------------------------------

  // Makes this the engine's view of the side, working for control store `store`: every
  // connection carries `key.secret` as its origin mark (its writes are not captured) and first
  // checks that the side is stamped for `store` (SideOwnershipError if not). Reading and
  // acknowledging captures and writing back check the stamp again in their transaction, so a
  // side adopted by another store is refused from then on. An unbound side (status, init's
  // checks) carries no mark and checks no stamp.
  virtual void bind(const StoreIdentity& store, const SideKey& key) = 0;
  // Throws MappingError naming each missing table or column, with the config path.
  virtual void check_mappings() = 0;
  // Installs what capture needs on the side (for the trigger side: its mdsync schema, capture
  // table, stamp, capture role, SECURITY DEFINER capture functions, triggers and privileges)
  // where missing or different, for control store `store`; returns a line per thing it
  // changed (empty: already installed). A side stamped by another store is refused
  // (SideOwnershipError) unless `adopt`: then it is re-stamped, gets a new capture epoch and
  // loses its write-back idempotency keys.
  virtual std::vector<std::string> install_capture(const StoreIdentity& store, const SideKey& key,
                                                   bool adopt) = 0;
  // The mapped columns (and key, scope, soft-delete columns) the side's tables no longer
  // have, one message each: capture goes on without them and the engine does not write them
  // until the mapping and the side agree again (`init`). Reported by `status` and, once per
  // process, in the log when captures are read.
  virtual std::vector<std::string> mapping_drift() = 0;
  // Drops the connection (after an error); the next call reconnects.
  virtual void reset() = 0;

  // ---- Capture read: the side's changes, oldest first -----------------------------------------

  // Up to `limit` captured changes not acknowledged yet, with the capture's epoch.
  virtual CaptureBatch read_capture(int limit) = 0;
  // How many captured changes wait to be read.
  virtual std::int64_t capture_backlog() = 0;
  // Whether capture wakes the engine (a NOTIFY): only while the engine waits for it.
  virtual void set_engine_waiting(bool waiting) = 0;

  // ---- Acknowledge: captured changes the engine has reconciled --------------------------------

  // The changes (by seq) are reconciled and committed in the control store: the side forgets
  // them. A side adopted by another store since they were read keeps them for its new owner.
  virtual void forget_capture(const std::vector<std::int64_t>& seqs) = 0;

  // ---- Current rows: what the side holds now ---------------------------------------------------

  // `sync --initial`: the captured changes and the rows that take part, in one snapshot held
  // open until it is destroyed (the side's connection is its meanwhile). kRowsOnly (`verify`)
  // leaves the capture table unread: captures() is empty.
  enum class SnapshotReads { kCapturesAndRows, kRowsOnly };
  virtual std::unique_ptr<SideSnapshot> open_snapshot(SnapshotReads reads) = 0;
  // The rows of the entity that take part, as capture would deliver them (lookups resolved; seq
  // numbers the rows in key order), read without writing anything.
  virtual std::vector<CapturedRow> read_current_rows(const config::EntityConfig& entity) = 0;
  // The rows with these keys as they are now, in one statement, by key (every key given has an
  // entry), read without writing anything.
  virtual std::map<std::string, RowNow> read_rows(const config::EntityConfig& entity,
                                                  const std::vector<std::string>& keys) = 0;
  // `errors retry`: one row as it is now, captured the way a change of it is: a full-row
  // upsert ('U') while it takes part, 'L' when it is live but outside the scope, 'D' when it is
  // soft-deleted or gone. Returns the op captured. The engine then reconciles it like any
  // change, after the row's earlier captures (guarantee 6).
  virtual std::string recapture_row(const config::EntityConfig& entity,
                                    const std::string& row_key) = 0;

  // ---- Apply writes: write-backs, conditional and idempotent ---------------------------------

  // Applies the requests in one side transaction: a request is written only where the side
  // still holds its expected base (else kSuperseded) and at most once (its outbox id is the
  // idempotency key, recorded with the write). A row the side refuses fails alone. Results are
  // in request order. A transaction that deadlocks with users' transactions is run again, up to
  // kContentionAttempts times, then SideContention is thrown.
  virtual std::vector<WriteResult> apply(const std::vector<WriteRequest>& requests) = 0;
  static constexpr int kContentionAttempts = 4;
  // Side transactions retried because of a deadlock or serialization failure, so far.
  virtual std::int64_t contention_retries() const = 0;
  // The highest outbox id the side has recorded (applied or withdrawn), 0 for none: a control
  // store restored from a backup must hand out higher ids, or its new writes would be taken
  // for ones the side already applied.
  virtual std::int64_t highest_applied_id() = 0;

 protected:
  Side() = default;
};

// The side `side` of `config` (the config outlives it), not connected yet.
std::unique_ptr<Side> make_side(const config::Config& config, const config::SideConfig& side);

}  // namespace mdsync::store
