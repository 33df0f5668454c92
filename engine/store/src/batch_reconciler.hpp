// One batch of rows decided in one control transaction: captured changes of every side (the
// engine's pass, merged by capture time) or the rows `sync --initial` reads, side after side.
// Each row is decided by the core in a savepoint of its own (one the engine cannot reconcile
// is kept in capture_error, and the batch goes on); the batch reads its links and records in
// two statements first, keeps the records as it changes them, and plans their write-backs and
// stores their match keys once, at the end, so a record's writes follow every row of the batch.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "match_index.hpp"
#include "mdsync/config/config.hpp"
#include "mdsync/core/record_state.hpp"
#include "mdsync/core/ruleset.hpp"
#include "mdsync/store/record_repository.hpp"
#include "mdsync/store/side_store.hpp"
#include "mdsync/store/sync_engine.hpp"

namespace pqxx {
class transaction_base;
}

namespace mdsync::store {

class FieldTransforms;

class BatchReconciler {
 public:
  BatchReconciler(pqxx::transaction_base& tx, const config::Config& config, const core::Ruleset& rs,
                  const FieldTransforms& transforms);

  // Reads the links of these rows (side, row) and the records they are linked to, locked.
  void prefetch(const std::vector<std::pair<std::string, const CapturedRow*>>& rows);
  // Decides one row of `side` against its record as this batch has left it; `epoch` names the
  // capture table it came from (kept with it if it becomes a capture error).
  void reconcile(const std::string& side, const std::string& epoch, const CapturedRow& row,
                 PassResult& result);
  // Plans the write-backs of every record the batch touched and stores the match keys.
  void finish();

  // The records the batch touched, as it left them.
  const std::map<std::int64_t, core::RecordState>& states() const { return states_; }

 private:
  const core::RecordState* state_of(std::int64_t id);

  pqxx::transaction_base& tx_;
  const config::Config& config_;
  const core::Ruleset& rs_;
  const FieldTransforms& transforms_;
  RecordRepository repo_;
  MatchIndex matches_;
  const StateOf state_of_;
  // The links of the batch's rows, followed as the batch makes and removes them.
  std::map<RecordRepository::RowRef, std::int64_t> links_;
  std::map<RecordRepository::RowRef, std::string> link_states_;
  std::map<std::int64_t, core::RecordState> loaded_;  // as read
  std::map<std::int64_t, core::RecordState> states_;  // as the batch changed them
  std::map<std::int64_t, const core::EntityRules*> touched_;
  // Records a row's match keys found that the batch had not loaded (see match_row).
  std::map<std::int64_t, core::RecordState> candidates_;
};

}  // namespace mdsync::store
