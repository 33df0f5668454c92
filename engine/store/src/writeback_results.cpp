#include "writeback_results.hpp"

#include <algorithm>
#include <pqxx/pqxx>

#include "match_index.hpp"
#include "mdsync/core/reconciler.hpp"
#include "mdsync/log/event_log.hpp"
#include "mdsync/store/pg_arrays.hpp"

namespace mdsync::store {

namespace {

// Consecutive supersedes of a record's write to a side, with no change of the row captured,
// from which its next write backs off (the first may be a stale expectation, never a second).
constexpr int kStuckStreak = 2;

// Whether an applied write can move its record's match keys, which are built from golden and
// from what each side holds (record_keys): an insert or delete adds or drops what the side
// holds; an update only when it names a field a key is built from (most name none, and
// rebuilding their keys cost a record load each).
bool moves_match_keys(const config::EntityConfig& entity, const WriteRequest& w) {
  if (entity.match.empty()) return false;
  if (w.kind != core::RowWrite::Kind::kUpdate) return true;
  return std::any_of(w.values.begin(), w.values.end(),
                     [&](const auto& value) { return entity.match.reads(value.first); });
}

}  // namespace

WritebackResults::WritebackResults(pqxx::transaction_base& tx, const config::Config& config,
                                   const std::string& side, const core::Ruleset* rs,
                                   RecordRepository::Mode mode)
    : tx_(tx), config_(config), side_(side), rs_(rs), repo_(tx, mode) {}

void WritebackResults::take(const QueuedWrites& sent, const std::vector<WriteResult>& results,
                            PassResult& result) {
  const std::set<std::int64_t> withdrawn_meanwhile = lock_sent(sent);
  for (std::size_t k = 0; k < sent.requests.size(); ++k) {
    const WriteRequest& w = sent.requests[k];
    sort(w, results[k], sent.golden_ids[k], w.cancel || withdrawn_meanwhile.count(w.outbox_id) != 0,
         result);
  }
  save();
  plan_again(back_off_stuck(), result);
  repo_.flush();
  tx_.exec_params(
      "INSERT INTO mdsync.side_state (side, last_writeback_at, consecutive_failures)"
      " VALUES ($1, now(), 0) ON CONFLICT (side) DO UPDATE SET last_writeback_at = now(),"
      " consecutive_failures = 0",
      side_);
}

std::set<std::int64_t> WritebackResults::lock_sent(const QueuedWrites& sent) {
  std::set<std::int64_t> withdrawn;
  std::vector<std::int64_t> ids;
  for (const WriteRequest& w : sent.requests)
    if (!w.cancel) ids.push_back(w.outbox_id);
  if (ids.empty()) return withdrawn;
  for (const auto& row :
       tx_.exec_params("SELECT id, status FROM mdsync.outbox WHERE id = ANY($1::bigint[])"
                       " ORDER BY id FOR UPDATE",
                       pg_bigint_array(ids)))
    if (row[1].as<std::string>() == "cancelling") withdrawn.insert(row[0].as<std::int64_t>());
  return withdrawn;
}

bool WritebackResults::soft_deletes(const std::string& entity) const {
  const config::EntityConfig* e = config_.entity(entity);
  const config::SideMapping* m = e ? e->mapping_for(side_) : nullptr;
  return m != nullptr && m->soft_delete.has_value();
}

void WritebackResults::sort(const WriteRequest& w, const WriteResult& res, std::int64_t gid,
                            bool withdrawn, PassResult& result) {
  switch (res.status) {
    case WriteResult::Status::kApplied:
      sort_applied(w, res, gid, withdrawn, result);
      break;
    case WriteResult::Status::kCancelled:
      outcome_.add(w.outbox_id, "superseded", res.row_key, "");
      ++result.writes_cancelled;
      break;
    case WriteResult::Status::kSuperseded:
      if (res.unreconciled_capture && !withdrawn) {
        // The row changed and its change is still captured: the write stays queued, and the
        // change, once reconciled, plans the record again (withdrawing this write if it no
        // longer fits the row). Not a supersede: nothing is planned twice.
        ++result.writes_waiting;
        break;
      }
      // A soft-deleted row to restore that is gone for good: forgotten, so the record is
      // inserted as a new row.
      if (w.kind == core::RowWrite::Kind::kInsert && !w.row_key.empty() && res.row_key.empty())
        repo_.unlink(gid, side_);
      else if (!res.unreconciled_capture && !res.row_key.empty())
        unexplained_.emplace_back(gid, w.outbox_id);
      outcome_.add(w.outbox_id, "superseded", res.row_key, "");
      stale_gids_.push_back(std::to_string(gid));
      stale_after_.push_back(std::to_string(w.outbox_id));
      replan_.insert(gid);
      ++result.writes_superseded;
      break;
    case WriteResult::Status::kVetoed:
      outcome_.add(w.outbox_id, "vetoed", res.row_key, res.error);
      vetoed_.emplace_back(gid, res.error);
      log::warn(
          "delete_vetoed",
          {{"side", side_}, {"golden_id", gid}, {"row_key", res.row_key}, {"reason", res.error}});
      ++result.writes_failed;
      ++result.writes_vetoed;
      break;
    case WriteResult::Status::kUnwritable:
      // The value is valid where it came from; an invalid_value conflict holds the field for
      // the steward, and the rest of the row is planned again without it.
      unwritable_.emplace_back(gid, res);
      if (res.refused)  // the side's database refused it: still a failed write-back
        log::error("writeback_failed", {{"side", side_},
                                        {"outbox_id", w.outbox_id},
                                        {"golden_id", gid},
                                        {"field", res.field},
                                        {"error", res.error}});
      else
        log::warn(
            "value_unwritable",
            {{"side", side_}, {"golden_id", gid}, {"field", res.field}, {"reason", res.error}});
      outcome_.add(w.outbox_id, "failed", res.row_key,
                   res.field + ": " + res.error + "; not written, the golden value stays");
      ++result.writes_failed;
      break;
    case WriteResult::Status::kFailed:
      if (withdrawn) {  // refused, and not wanted any more: nothing to review
        outcome_.add(w.outbox_id, "superseded", res.row_key, res.error);
        break;
      }
      outcome_.add(w.outbox_id, "failed", res.row_key, res.error);
      log::error(
          "writeback_failed",
          {{"side", side_}, {"outbox_id", w.outbox_id}, {"golden_id", gid}, {"error", res.error}});
      ++result.writes_failed;
      break;
  }
}

void WritebackResults::sort_applied(const WriteRequest& w, const WriteResult& res, std::int64_t gid,
                                    bool withdrawn, PassResult& result) {
  if (withdrawn) {
    // A withdrawn write that an earlier attempt had applied (the engine crashed before it
    // heard): the side holds it, so it is taken in, and the record planned again.
    replan_.insert(gid);
    log::warn("withdrawn_write_was_applied",
              {{"side", side_}, {"golden_id", gid}, {"outbox_id", w.outbox_id}});
  }
  if (w.kind == core::RowWrite::Kind::kInsert) {
    // A withdrawn insert may find the record linked to another row meanwhile (a match, a
    // steward's --link): the inserted row is the engine's and nobody else's; say so.
    const auto linked = withdrawn ? repo_.row_keys(gid) : std::map<std::string, std::string>{};
    if (auto other = linked.find(side_); other != linked.end() && other->second != res.row_key) {
      const std::string why = "inserted row " + res.row_key + " on " + side_ +
                              " was withdrawn but had been applied; the record is linked to "
                              "row " +
                              other->second + ": delete row " + res.row_key + " on " + side_;
      outcome_.add(w.outbox_id, "failed", res.row_key, why);
      log::error("writeback_orphan_row", {{"side", side_}, {"golden_id", gid}, {"error", why}});
      ++result.writes_failed;
      return;
    }
    repo_.link(w.entity, side_, res.row_key, gid, w.values);
  } else if (w.kind == core::RowWrite::Kind::kDelete && soft_deletes(w.entity)) {
    repo_.retire(gid, side_, "deleted");
  } else if (w.kind == core::RowWrite::Kind::kDelete) {
    repo_.unlink(gid, side_);
  } else {
    base_ids_.push_back(std::to_string(gid));
    base_keys_.push_back(w.row_key);
    base_values_.push_back(values_to_json(w.values));
  }
  outcome_.add(w.outbox_id, "done", res.row_key, "");
  if (const config::EntityConfig* e = config_.entity(w.entity); e && moves_match_keys(*e, w))
    keyed_[gid] = e;
  ++result.writes_applied;
}

void WritebackResults::save() {
  repo_.flush();
  outcome_.save(tx_);
  if (!base_ids_.empty())
    tx_.exec_params(
        "UPDATE mdsync.crosswalk x SET base = x.base || u.v::jsonb, superseded_streak = 0"
        " FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(id, k, v)"
        " WHERE x.golden_id = u.id AND x.side = $4 AND x.row_key = u.k",
        pg_text_array(base_ids_), pg_text_array(base_keys_), pg_text_array(base_values_), side_);
  if (!keyed_.empty()) {
    // Match keys are built from what each side holds too (record_keys): an applied write moves
    // its record's keys, or a value no side holds any more would still find it.
    MatchIndex keys(tx_, false);
    std::vector<std::int64_t> gids;
    for (const auto& [gid, entity] : keyed_) gids.push_back(gid);
    for (auto& [gid, state] : repo_.load_many(gids)) keys.changed(*keyed_[gid], gid, state);
    keys.flush();
  }
  if (!stale_gids_.empty())
    // Never sent: a record's writes go one per pass in id order, and these come later.
    // One probe of outbox_queued_by_record per record (OFFSET 0: see pending_writes_of), and the
    // status the probe saw asked again of the row updated, as in RecordWriteBuffer's withdrawals.
    tx_.exec_params(
        "UPDATE mdsync.outbox o SET status = 'superseded', done_at = now(),"
        " last_error = 'an earlier write of the record to this side was superseded'"
        " FROM (SELECT w.id, w.status FROM unnest($1::bigint[], $2::bigint[]) AS u(gid, after)"
        "  CROSS JOIN LATERAL (SELECT id, status FROM mdsync.outbox w WHERE w.golden_id = u.gid"
        "   AND w.side = $3 AND w.id > u.after AND w.status = 'pending' OFFSET 0) w) q"
        " WHERE o.id = q.id AND o.status = q.status",
        pg_text_array(stale_gids_), pg_text_array(stale_after_), side_);
}

std::map<std::int64_t, std::int64_t> WritebackResults::back_off_stuck() {
  // A write superseded again and again with no change captured on the side would otherwise be
  // planned and superseded at every pass: past the first time it backs off, and the streak
  // shows in `mdsync status` until a change of the row is reconciled or a write lands.
  std::map<std::int64_t, std::int64_t> delay_of;  // golden id -> ms
  if (unexplained_.empty()) return delay_of;
  std::vector<std::string> gids, outbox_ids;
  for (const auto& [gid, oid] : unexplained_) {
    gids.push_back(std::to_string(gid));
    outbox_ids.push_back(std::to_string(oid));
  }
  for (const auto& row : tx_.exec_params(
           "UPDATE mdsync.crosswalk x SET superseded_streak = x.superseded_streak + 1"
           " FROM unnest($1::bigint[]) AS u(gid) WHERE x.golden_id = u.gid AND x.side = $2"
           " RETURNING x.golden_id, x.superseded_streak",
           pg_text_array(gids), side_)) {
    const auto gid = row[0].as<std::int64_t>();
    const int streak = row[1].as<int>();
    if (streak < kStuckStreak) continue;
    const std::int64_t delay = std::min<std::int64_t>(
        config_.service.writeback_backoff_max_ms,
        static_cast<std::int64_t>(config_.service.writeback_backoff_initial_ms)
            << std::min(streak - kStuckStreak, 20));
    delay_of[gid] = delay;
    const std::string why = "superseded " + std::to_string(streak) +
                            " times in a row with no change captured on " + side_ +
                            ": the row holds values the engine never saw (a trigger that "
                            "rewrites them, a column that rounds, capture disabled?); next "
                            "attempt in " +
                            std::to_string(delay) + " ms";
    log::warn("writeback_stuck", {{"side", side_},
                                  {"golden_id", gid},
                                  {"streak", static_cast<std::int64_t>(streak)},
                                  {"retry_in_ms", delay}});
    tx_.exec_params(
        "UPDATE mdsync.outbox SET last_error = $3 WHERE id = ANY($1::bigint[])"
        " AND golden_id = $2",
        pg_text_array(outbox_ids), gid, why);
  }
  return delay_of;
}

void WritebackResults::plan_again(const std::map<std::int64_t, std::int64_t>& delay_of,
                                  PassResult& result) {
  if (rs_ == nullptr) return;
  const core::Ruleset& rs = *rs_;
  // A record as it is now, and its entity's rules in force (nullptr: gone, or not ruled).
  auto record = [&](std::int64_t gid) {
    auto state = repo_.load(gid);
    const pqxx::result e = tx_.exec_params("SELECT entity FROM mdsync.golden WHERE id = $1", gid);
    const core::EntityRules* rules = e.empty() ? nullptr : rs.find(e[0][0].as<std::string>());
    return std::make_pair(std::move(state), rules);
  };
  // A vetoed delete keeps the record: the core restores it and opens a foreign_delete conflict
  // with the guard's reason; deletes still queued for other sides are withdrawn.
  for (const auto& [gid, reason] : vetoed_) {
    const auto [state, rules] = record(gid);
    if (!state || rules == nullptr) continue;
    const std::string deleter = repo_.deleting_side(gid);
    core::Reconciliation r = core::veto_delete(*rules, rs.version, *state, side_, deleter, reason);
    repo_.save_golden(gid, r.after);
    // The conflict is the deleting side's, so the steward can accept that side's delete.
    repo_.persist_plan(rules->entity, gid, deleter.empty() ? side_ : deleter, "", r.plan, r.after);
    repo_.plan_and_enqueue(*rules, config_.side_names(), gid, r.after);
    result.conflicts_opened += static_cast<int>(r.plan.opened.size());
  }
  for (const auto& [gid, res] : unwritable_) {
    const auto [state, rules] = record(gid);
    if (!state || rules == nullptr) continue;
    const core::Reconciliation r = core::unwritable_value(
        *rules, rs.version, *state, side_, res.field, res.error,
        res.refused ? core::ConflictKind::kWriteRefused : core::ConflictKind::kInvalidValue);
    core::RecordState after = r.after;
    repo_.persist_plan(rules->entity, gid, side_, res.row_key, r.plan, after);
    // Planned again with the field held: the rest of the row is written.
    repo_.plan_and_enqueue(*rules, config_.side_names(), gid, after);
    result.conflicts_opened += static_cast<int>(r.plan.opened.size());
  }
  // A superseded write means the side changed under us; its change is captured and
  // reconciled, and the record is planned again from what the engine now knows.
  for (std::int64_t gid : replan_) {
    const auto [state, rules] = record(gid);
    std::map<std::string, std::int64_t> delays;
    if (auto d = delay_of.find(gid); d != delay_of.end()) delays[side_] = d->second;
    if (state && rules) repo_.plan_and_enqueue(*rules, config_.side_names(), gid, *state, delays);
  }
}

}  // namespace mdsync::store
