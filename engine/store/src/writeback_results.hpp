// What a side answered to a batch of write-backs, taken into the control store in the
// transaction that records it: each write's outcome, the links and bases an applied write
// moves, backoff for a write the side keeps superseding with nothing captured, and the records
// planned again (superseded write, vetoed delete, unwritable value).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "mdsync/config/config.hpp"
#include "mdsync/core/ruleset.hpp"
#include "mdsync/store/record_repository.hpp"
#include "mdsync/store/side.hpp"
#include "mdsync/store/sync_engine.hpp"
#include "outbox_queue.hpp"

namespace pqxx {
class transaction_base;
}  // namespace pqxx

namespace mdsync::store {

class WritebackResults {
 public:
  // `rs`: the ruleset in force, for the records planned again; nullptr when no write of the
  // batch was superseded, refused or withdrawn (then a write withdrawn meanwhile is taken in
  // without planning its record again: its next change or supersede does).
  // `mode`: kBuffered sends the links and unlinks of the batch as one statement each; a batch
  // the store refuses that way is taken in again, in a new transaction, kImmediate (a row at a
  // time, so the error names the row).
  WritebackResults(pqxx::transaction_base& tx, const config::Config& config,
                   const std::string& side, const core::Ruleset* rs, RecordRepository::Mode mode);

  // Takes in `results` (one per request of `sent`, in order), adds them to `result`, and marks
  // the side's write-back done in side_state. Does not commit.
  void take(const QueuedWrites& sent, const std::vector<WriteResult>& results, PassResult& result);

 private:
  // Locks the batch's outbox rows; returns those a steward's command withdrew meanwhile (it
  // takes no lease), so one the side applied is taken in as a withdrawn write found applied,
  // not recorded as done and forgotten.
  std::set<std::int64_t> lock_sent(const QueuedWrites& sent);
  // Sorts one write's result into the follow-ups below and the outcome to save.
  void sort(const WriteRequest& w, const WriteResult& res, std::int64_t gid, bool withdrawn,
            PassResult& result);
  void sort_applied(const WriteRequest& w, const WriteResult& res, std::int64_t gid, bool withdrawn,
                    PassResult& result);
  // Outcomes, bases, match keys and stale later writes, each in one statement.
  void save();
  // Counts supersedes with no change captured per record; returns the backoff (ms) of the
  // records past kStuckStreak.
  std::map<std::int64_t, std::int64_t> back_off_stuck();
  // Vetoed deletes, unwritable values and superseded writes: the record planned again.
  void plan_again(const std::map<std::int64_t, std::int64_t>& delay_of, PassResult& result);
  bool soft_deletes(const std::string& entity) const;

  pqxx::transaction_base& tx_;
  const config::Config& config_;
  const std::string side_;
  const core::Ruleset* rs_;
  RecordRepository repo_;
  OutboxOutcomes outcome_;
  std::set<std::int64_t> replan_;
  std::vector<std::pair<std::int64_t, std::string>> vetoed_;  // golden id, the guard's reason
  std::vector<std::pair<std::int64_t, WriteResult>> unwritable_;
  // Applied updates: what the row the write went to now holds.
  std::vector<std::string> base_ids_, base_keys_, base_values_;
  // Superseded with no change of the row captured: the side holds what the engine never saw.
  std::vector<std::pair<std::int64_t, std::int64_t>> unexplained_;  // golden id, outbox id
  // Later queued writes of a record whose write was superseded expected what it would write.
  std::vector<std::string> stale_gids_, stale_after_;
  std::map<std::int64_t, const config::EntityConfig*> keyed_;  // applied, with match keys
};

}  // namespace mdsync::store
