// One side database as the engine uses it: checking the config's mapping against the live
// tables, installing trigger capture, reading and forgetting captured changes, and
// applying write-backs conditionally and idempotently. All SQL against a side lives here.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "mdsync/config/config.hpp"
#include "mdsync/core/change.hpp"
#include "mdsync/core/writeback_plan.hpp"
#include "mdsync/store/db_connection.hpp"
#include "mdsync/store/store_identity.hpp"

namespace pqxx {
class connection_base;
class transaction_base;
}  // namespace pqxx

namespace mdsync::store {

class FieldTransforms;

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
  std::int64_t captured_at_us = 0;
};

// One read of a side's capture table: its epoch (which identifies this capture table; it
// changes if the table is ever re-created, so sequences are never confused) and rows.
struct CaptureBatch {
  std::string epoch;
  std::vector<CapturedRow> rows;
};

class SideStore;

// What `sync --initial` reads of a side: the capture rows not forgotten yet and the rows of
// each entity that take part, from one repeatable-read snapshot that stays open while the
// reader lives. Rows come in key order through a server-side cursor, a chunk at a time, so
// memory follows the chunk, not the table (seq numbers them in key order, from 1).
class SideSnapshotReader {
 public:
  ~SideSnapshotReader();
  SideSnapshotReader(const SideSnapshotReader&) = delete;
  SideSnapshotReader& operator=(const SideSnapshotReader&) = delete;

  const CaptureBatch& captures() const { return captures_; }
  // The entity's rows that take part (for progress).
  std::int64_t count(const config::EntityConfig& entity);
  // Which of these row keys the snapshot holds among the entity's rows that take part.
  std::set<std::string> present(const config::EntityConfig& entity,
                                const std::vector<std::string>& keys);
  // The entity's next rows, up to `max_rows`; empty once every row was read. One entity is read
  // at a time, each from its first row.
  std::vector<CapturedRow> next(const config::EntityConfig& entity, std::size_t max_rows);

 private:
  friend class SideStore;
  explicit SideSnapshotReader(SideStore& side);

  SideStore& side_;
  std::unique_ptr<pqxx::transaction_base> tx_;
  CaptureBatch captures_;
  std::string cursor_entity_;         // the entity whose cursor is open
  std::optional<CapturedRow> carry_;  // a row whose fields continue in the next fetch
  bool cursor_done_ = false;
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

class SideStore {
 public:
  SideStore(const config::Config& config, const config::SideConfig& side);
  ~SideStore();
  SideStore(const SideStore&) = delete;
  SideStore& operator=(const SideStore&) = delete;

  const std::string& name() const { return side_.name; }

  // Makes this the engine's view of the side, working for control store `store`: every
  // connection carries `key.secret` as its origin mark (its writes are not captured) and first
  // checks that the side is stamped for `store` (SideOwnershipError if not). Reading and
  // forgetting captures and writing back check the stamp again in their transaction, so a side
  // adopted by another store is refused from then on. An unbound store (status, init's
  // checks) carries no mark and checks no stamp.
  void bind(const StoreIdentity& store, const SideKey& key);

  // Throws MappingError naming each missing table or column, with the config path.
  void check_mappings();
  // Creates the side's mdsync schema, capture table, stamp, capture role, SECURITY DEFINER
  // capture functions, triggers and privileges where missing or different, for control store
  // `store`; returns a line per thing it changed (empty: already installed). A side stamped
  // by another store is refused (SideOwnershipError) unless `adopt`: then it is re-stamped,
  // gets a new capture epoch and loses its write-back idempotency keys.
  std::vector<std::string> install_capture(const StoreIdentity& store, const SideKey& key,
                                           bool adopt);

  // The highest outbox id the side has recorded (applied or withdrawn), 0 for none: a control
  // store restored from a backup must hand out higher ids, or its new writes would be taken
  // for ones the side already applied.
  std::int64_t highest_applied_id();

  // The mapped columns (and key, scope, soft-delete columns) the side's tables no longer
  // have, one message each: the capture trigger goes on without them and the engine does not
  // write them until the mapping and the side agree again (`init`). Reported by `status` and,
  // once per process, in the log when captures are read.
  std::vector<std::string> mapping_drift();

  CaptureBatch read_capture(int limit);
  void forget_capture(const std::vector<std::int64_t>& seqs);
  std::int64_t capture_backlog();
  // Whether the capture trigger NOTIFYs (mdsync.wake): only while the engine waits for it.
  void set_engine_waiting(bool waiting);

  // Applies the requests in one side transaction, set-based: one statement finds the
  // idempotency keys already recorded, then each group of requests of one table, kind and
  // column set is locked and written by a statement or two per chunk, in a savepoint. A chunk
  // the side refuses is redone row by row, so the refused row fails alone. Results are in
  // request order. A transaction that deadlocks with users' transactions is run again, up to
  // kContentionAttempts times, then SideContention is thrown.
  std::vector<WriteResult> apply(const std::vector<WriteRequest>& requests);
  static constexpr int kContentionAttempts = 4;
  // Side transactions retried because of a deadlock or serialization failure, so far.
  std::int64_t contention_retries() const { return contention_retries_; }

  // `sync --initial`: the capture table and the rows that take part, in one snapshot held
  // open until the reader is destroyed (the side's connection is its meanwhile).
  std::unique_ptr<SideSnapshotReader> open_snapshot();
  // `errors retry`: one row as it is now, enqueued the way the trigger captures it: a full-row
  // upsert ('U') while it takes part, 'L' when it is live but outside the scope, 'D' when it is
  // soft-deleted or gone. Returns the op enqueued. The engine then reconciles it like any
  // change, after the row's earlier captures (guarantee 6).
  std::string recapture_row(const config::EntityConfig& entity, const std::string& row_key);
  // The rows of the entity that take part, as capture would deliver them (lookups resolved; seq
  // numbers the rows in key order), read without writing anything.
  std::vector<CapturedRow> read_current_rows(const config::EntityConfig& entity);

  // Drops the connection (after an error); the next call reconnects.
  void reset();

 private:
  friend class SideSnapshotReader;
  pqxx::connection_base& conn();
  // The capture rows (up to `limit`), read in `tx` after checking the side's stamp.
  CaptureBatch read_capture_in(pqxx::transaction_base& tx, int limit);
  // The SELECT of the entity's rows that take part, one result row per field (s.n, s.k, key,
  // value) in key order (current_rows, the snapshot reader's cursor).
  std::string current_rows_sql(pqxx::transaction_base& tx, const config::EntityConfig& entity);
  void resolve_lookups(pqxx::transaction_base& tx, std::vector<CapturedRow>& rows);
  // `also` runs in the capture read's snapshot, after the rows are read.
  CaptureBatch read_capture(int limit, const std::function<void(pqxx::transaction_base&)>& also);
  std::vector<CapturedRow> current_rows(pqxx::transaction_base& tx,
                                        const config::EntityConfig& entity);
  std::vector<WriteResult> apply_once(const std::vector<WriteRequest>& requests);
  std::vector<std::string> mapping_drift(pqxx::transaction_base& tx);
  // A row write the side's database refused, made kUnwritable (refused) when the refusal names
  // a field the write sets; else left kFailed.
  void classify_refusal(pqxx::transaction_base& tx, const WriteRequest& req,
                        const core::FieldValues& side_values, WriteResult& res);
  // Throws SideOwnershipError unless `owner` (mdsync.owner's store_id; empty: no stamp) is the
  // bound store.
  void require_owner(const std::string& owner, const std::string& owner_text = {}) const;
  // In a writing transaction of a bound store: waits for an `--adopt-side` in progress and
  // checks the stamp, so nothing is written to a side that has just been moved.
  void hold_ownership(pqxx::transaction_base& tx);

  const config::Config& config_;
  const config::SideConfig& side_;
  PgConnection conn_;
  std::unique_ptr<FieldTransforms> transforms_;
  std::int64_t contention_retries_ = 0;
  bool bound_ = false;
  std::set<std::string> drift_logged_;  // mapping drift already in the log
  StoreIdentity store_;
  SideKey key_;
};

}  // namespace mdsync::store
