// The control store's record tables, read and written inside a caller's transaction:
// golden records, crosswalk links with per-side bases, conflicts, audit rows and the
// write-back outbox. The batch and the steward commands share it, so both persist a core
// plan the same way.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "mdsync/core/decision.hpp"
#include "mdsync/core/record_state.hpp"
#include "mdsync/core/ruleset.hpp"
#include "mdsync/core/writeback_plan.hpp"

namespace pqxx {
class transaction_base;
}

namespace mdsync::store {

// FieldValues as a jsonb object text {field: text-or-null}, and back (src/jsonb_text.cpp:
// written and read directly, without a JSON tree).
std::string values_to_json(const core::FieldValues& values);
core::FieldValues values_from_json(std::string_view json);

class RecordWriteBuffer;

class RecordRepository {
 public:
  // Immediate: every write is a statement of its own (steward commands, the exception path).
  // Buffered: golden, crosswalk, conflict, audit and outbox writes are kept and sent a table
  // at a time (RecordWriteBuffer) by flush(), which every read and every other write of this
  // repository does first; the caller flushes before it reads those tables itself and before
  // it commits. A refusal of the store then surfaces at the flush, for the batch as a whole.
  enum class Mode { kImmediate, kBuffered };
  explicit RecordRepository(pqxx::transaction_base& tx, Mode mode = Mode::kImmediate);
  ~RecordRepository();
  RecordRepository(const RecordRepository&) = delete;
  RecordRepository& operator=(const RecordRepository&) = delete;

  // Sends the writes kept in buffered mode (nothing in immediate mode).
  void flush();

  std::optional<std::int64_t> find_by_key(const std::string& entity, const std::string& side,
                                          const std::string& row_key);
  // The golden ids of many side rows in one statement, for a batch; rows not linked are
  // left out.
  using RowRef = std::tuple<std::string, std::string, std::string>;  // entity, side, row key
  // `states`, when given, receives each found link's state: "linked", or a link kept for a
  // row that is not synced now ("out_of_scope", "deleted": see retire()).
  std::map<RowRef, std::int64_t> find_by_keys(const std::set<RowRef>& rows,
                                              std::map<RowRef, std::string>* states = nullptr);
  // Locks the golden row for the rest of the transaction. nullopt if there is none.
  std::optional<core::RecordState> load(std::int64_t golden_id);
  // Loads and locks (in id order) many records in one statement; ids with no golden row are
  // left out.
  std::map<std::int64_t, core::RecordState> load_many(const std::vector<std::int64_t>& ids);
  std::map<std::string, std::string> row_keys(std::int64_t golden_id);  // side -> row key
  // The open create conflicts (unauthorized_create, possible_duplicate) holding any of these
  // rows with no golden record, in one statement (see open_create_conflict).
  std::map<RowRef, std::int64_t> open_create_conflicts(const std::set<RowRef>& rows);

  std::int64_t create_golden(const std::string& entity, const core::RecordState& state);
  void save_golden(std::int64_t golden_id, const core::RecordState& state);
  // Links a side row to a record, replacing a retired link of the record on that side (a
  // row that was soft-deleted and is now replaced or restored). Throws if the row is linked
  // to another record.
  void link(const std::string& entity, const std::string& side, const std::string& row_key,
            std::int64_t golden_id, const core::FieldValues& base);
  void unlink(std::int64_t golden_id, const std::string& side);
  // Keeps the record's link on `side` but stops syncing it: the row left the side's scope
  // ("out_of_scope") or was soft-deleted ("deleted"). Its key and base stay, and pending
  // write-backs of the record to that side are cancelled. Loaded records have no base there.
  void retire(std::int64_t golden_id, const std::string& side, const std::string& state);
  // Syncs a retired link again and returns its base (the row came back into scope).
  core::FieldValues revive(std::int64_t golden_id, const std::string& side);
  // Withdraws the record's pending write-backs of these kinds to `side` ('cancelling': the
  // side confirms they were never applied, see migration 0004), with `why` as the outbox
  // row's note when given.
  void cancel_pending(std::int64_t golden_id, const std::string& side,
                      const std::vector<std::string>& kinds, const std::string& why = "");
  void save_base(std::int64_t golden_id, const std::string& side, const core::FieldValues& base);

  // Saves what a plan opened, attached and closed (a steward's resolution), and its audit
  // rows. Conflicts opened get
  // their ids written back into `after.open_conflicts`.
  void persist_plan(const std::string& entity, std::optional<std::int64_t> golden_id,
                    const std::string& side, const std::string& row_key, const core::Plan& plan,
                    core::RecordState& after);

  // An audit row for an event that changes no golden value (a row left the side's scope, a
  // steward retried an error item). `golden_id` is empty for a row linked to no record.
  void audit_event(const std::string& entity, std::optional<std::int64_t> golden_id,
                   const std::string& decision, const std::string& source,
                   std::int64_t ruleset_version, const std::string& reason);
  // The side whose delete made the record deleted, from the audit trail ("" if unknown).
  std::string deleting_side(std::int64_t golden_id);

  // The open conflict that holds a row with no golden record (unauthorized_create, or
  // possible_duplicate from its match keys), if any: later captures of the row attach to it.
  std::optional<std::int64_t> open_create_conflict(const std::string& entity,
                                                   const std::string& side,
                                                   const std::string& row_key);

  // The record's queued write-backs, not yet confirmed by their sides.
  std::vector<core::PendingWrite> pending_writes(std::int64_t golden_id);
  // Queues `write`; not sent before `delay_ms` from now when it is positive.
  void enqueue(const std::string& entity, std::int64_t golden_id, const core::RowWrite& write,
               std::int64_t delay_ms = 0);
  // Plans what each side must receive to hold the record's golden values (given the
  // write-backs already queued), withdraws the queued writes the record no longer wants, and
  // queues the rest. `delays_ms`: per side, how long its new writes wait (a write that keeps
  // being superseded backs off).
  void plan_and_enqueue(const core::EntityRules& rules, const std::vector<std::string>& sides,
                        std::int64_t golden_id, const core::RecordState& state,
                        const std::map<std::string, std::int64_t>& delays_ms = {});
  // plan_and_enqueue for many records, reading their queued writes in one statement.
  struct Planned {
    const core::EntityRules* rules;
    std::int64_t golden_id;
    const core::RecordState* state;
  };
  void plan_and_enqueue_many(const std::vector<Planned>& records,
                             const std::vector<std::string>& sides);

 private:
  // The queued write-backs of these records, by record, in one statement.
  std::map<std::int64_t, std::vector<core::PendingWrite>> pending_writes_of(
      const std::vector<std::int64_t>& ids);
  void enqueue_planned(const std::string& entity, std::int64_t golden_id,
                       const core::WritebackPlan& plan,
                       const std::map<std::string, std::int64_t>& delays_ms);

  pqxx::transaction_base& tx_;
  std::unique_ptr<RecordWriteBuffer> buffer_;  // buffered mode only
};

}  // namespace mdsync::store
