// One batch of rows decided in one control transaction: captured changes of every side (the
// engine's pass, merged by capture time) or the rows `sync --initial` reads, side after side.
// The batch reads its links, records and held rows in a few statements first, keeps the
// records as it changes them, and plans their write-backs and stores their match keys once, at
// the end, so a record's writes follow every row of the batch. Buffered (the normal path), its
// writes go a table at a time (RecordWriteBuffer); row by row (the exception path), each row is
// decided in a savepoint of its own, so one the engine cannot reconcile is kept in
// capture_error alone and the batch goes on.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "match_index.hpp"
#include "mdsync/config/config.hpp"
#include "mdsync/core/record_state.hpp"
#include "mdsync/core/ruleset.hpp"
#include "mdsync/store/record_repository.hpp"
#include "mdsync/store/side.hpp"
#include "mdsync/store/sync_engine.hpp"

namespace pqxx {
class transaction_base;
}

namespace mdsync::store {

class FieldTransforms;

// A buffered batch met a row it could not decide, or the store refused the batch's writes:
// the caller rolls the transaction back and decides the same rows again row by row, where
// that row alone is kept as an error (retry re-runs the code, never an in-doubt commit).
class RowByRowNeeded : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class BatchReconciler {
 public:
  enum class Mode { kBuffered, kRowByRow };
  BatchReconciler(pqxx::transaction_base& tx, const config::Config& config, const core::Ruleset& rs,
                  const FieldTransforms& transforms, Mode mode = Mode::kBuffered);

  // Reads the links of these rows (side, row) and the records they are linked to, locked.
  void prefetch(const std::vector<std::pair<std::string, const CapturedRow*>>& rows);
  // Decides one row of `side` against its record as this batch has left it; `epoch` names the
  // capture table it came from (kept with it if it becomes a capture error).
  void reconcile(const std::string& side, const std::string& epoch, const CapturedRow& row,
                 PassResult& result);
  // Sends what the batch holds (writes, match keys) and forgets the rows and records it has
  // seen, keeping only which records it touched (sync --initial, between chunks: memory follows
  // a chunk, not the run). Later rows find those records in the store.
  void checkpoint();
  // Plans the write-backs of every record the batch touched (those forgotten at a checkpoint
  // read again from the store, a chunk at a time), stores the match keys and sends every
  // buffered write.
  void finish();

  // The records the batch touched, as it left them.
  const std::map<std::int64_t, core::RecordState>& states() const { return states_; }

 private:
  const core::RecordState* state_of(std::int64_t id);
  // Runs `step`, which sends the batch's writes: buffered, a refusal of the store becomes
  // RowByRowNeeded (the caller decides the batch again row by row).
  template <typename Step>
  void sending(Step&& step);
  // The open create conflict holding an unlinked row, from the batch's prefetch while nothing
  // the batch did can have changed it.
  std::optional<std::int64_t> create_conflict(const RecordRepository::RowRef& ref);

  pqxx::transaction_base& tx_;
  const config::Config& config_;
  const core::Ruleset& rs_;
  const FieldTransforms& transforms_;
  const Mode mode_;
  RecordRepository repo_;
  MatchIndex matches_;
  const StateOf state_of_;
  // The links of the batch's rows, followed as the batch makes and removes them.
  std::map<RecordRepository::RowRef, std::int64_t> links_;
  std::map<RecordRepository::RowRef, std::string> link_states_;
  std::map<std::int64_t, core::RecordState> loaded_;  // as read
  std::map<std::int64_t, core::RecordState> states_;  // as the batch changed them
  std::map<std::int64_t, const core::EntityRules*> touched_;
  // Records set aside at a checkpoint wait in mdsync.planning_queue (this transaction's rows).
  bool checkpointed_ = false;
  // Records a row's match keys found that the batch had not loaded (see match_row).
  std::map<std::int64_t, core::RecordState> candidates_;
  // Open create conflicts of the batch's unlinked rows, as prefetched; stale once the batch
  // itself opened or linked a held row (then looked up row by row).
  std::map<RecordRepository::RowRef, std::int64_t> create_conflicts_;
  std::set<RecordRepository::RowRef> unlinked_prefetched_;
  bool create_conflicts_stale_ = false;
};

}  // namespace mdsync::store
