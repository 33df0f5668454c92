#include "mdsync/store/sync_engine.hpp"

#include "prepared_statement.hpp"

#include <algorithm>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "batch_reconciler.hpp"
#include "capture_intake.hpp"
#include "captured_change.hpp"
#include "field_transforms.hpp"
#include "match_index.hpp"
#include "mdsync/core/reconciler.hpp"
#include "mdsync/core/utf8.hpp"
#include "mdsync/core/writeback_plan.hpp"
#include "mdsync/log/event_log.hpp"
#include "mdsync/rules/located_json.hpp"
#include "mdsync/store/crash_points.hpp"
#include "mdsync/store/db_connection.hpp"
#include "mdsync/store/engine_lease.hpp"
#include "mdsync/store/pg_arrays.hpp"
#include "mdsync/store/record_repository.hpp"
#include "mdsync/store/ruleset_store.hpp"
#include "mdsync/store/steward_actions.hpp"
#include "mdsync/store/store_identity.hpp"
#include "savepoint.hpp"

namespace mdsync::store {

PassResult& PassResult::operator+=(const PassResult& o) {
  captured += o.captured;
  conflicts_opened += o.conflicts_opened;
  writes_applied += o.writes_applied;
  writes_superseded += o.writes_superseded;
  writes_failed += o.writes_failed;
  writes_cancelled += o.writes_cancelled;
  steward_actions += o.steward_actions;
  writes_vetoed += o.writes_vetoed;
  change_errors += o.change_errors;
  side_errors += o.side_errors;
  created += o.created;
  linked_by_match += o.linked_by_match;
  possible_duplicates += o.possible_duplicates;
  held += o.held;
  writes_waiting += o.writes_waiting;
  backlog = backlog || o.backlog;
  return *this;
}

namespace {

// Capture batches reconciled in one pass before write-backs when a side's capture keeps
// coming back full (a backlog): bounded, so write-backs and stewards are not starved.
constexpr int kBacklogBatches = 20;

std::string first_line(const std::string& s) {
  return s.substr(0, s.find('\n'));
}

}  // namespace

SyncEngine::SyncEngine(const config::Config& config, std::uint64_t seed)
    : config_(config), transforms_(std::make_unique<FieldTransforms>(config)), rng_(seed) {
  for (const config::SideConfig& side : config_.sides) sides_.push_back(make_side(config_, side));
}

SyncEngine::~SyncEngine() = default;

pqxx::connection_base& SyncEngine::control() {
  if (control_ && control_->is_open()) return *control_;
  PgConnection fresh = connect(config_.control_dsn, "control store");
  take_engine_lease(*fresh);
  // The store's identity and side keys, read again on every connection: the sides' sessions
  // are marked with the keys of the store the engine is connected to.
  const StoreIdentity identity = load_store_identity(*fresh);
  const std::map<std::string, SideKey> keys = load_side_keys(*fresh, config_.side_names());
  for (auto& side : sides_) side->bind(identity, keys.at(side->name()));
  control_ = std::move(fresh);
  return *control_;
}

void SyncEngine::connect_control() {
  try {
    control();
  } catch (const pqxx::broken_connection& e) {
    throw ConnectionError("lost the control store: " + first_line(e.what()));
  }
}

Side& SyncEngine::side_store(const std::string& side) {
  for (auto& s : sides_)
    if (s->name() == side) return *s;
  throw std::runtime_error("'" + side + "' is not a side");
}

const core::Ruleset& SyncEngine::ruleset() {
  const auto newest = latest_ruleset_version(control());
  if (!newest)
    throw std::runtime_error(
        "no ruleset has been applied to the control store; run `mdsync rules apply`");
  if (ruleset_ && ruleset_->version == *newest) return *ruleset_;
  try {
    core::Ruleset loaded = load_ruleset(control(), config_);
    log::info("ruleset_loaded", {{"version", loaded.version}});
    ruleset_ = std::move(loaded);
  } catch (const rules::CheckError& e) {
    // A ruleset that does not fit the config never replaces one that works.
    if (!ruleset_) throw;
    log::error("ruleset_rejected", {{"version", *newest},
                                    {"kept_version", ruleset_->version},
                                    {"error", std::string(e.what())}});
  }
  return *ruleset_;
}

void SyncEngine::side_failed(Side& side, const std::string& what, Clock::time_point now) {
  side.reset();
  SideHealth& h = health_[side.name()];
  ++h.failures;
  const double base = std::min<double>(
      config_.service.writeback_backoff_max_ms,
      config_.service.writeback_backoff_initial_ms * std::pow(2.0, std::min(h.failures - 1, 20)));
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  const auto delay = std::chrono::milliseconds(static_cast<std::int64_t>(base * jitter(rng_)));
  h.next_attempt = now + delay;
  const bool new_error = h.failures == 1 || h.last_error != first_line(what);
  h.last_error = first_line(what);
  log::warn("side_unavailable", {{"side", side.name()},
                                 {"error", h.last_error},
                                 {"attempt", static_cast<std::int64_t>(h.failures)},
                                 {"retry_in_ms", static_cast<std::int64_t>(delay.count())}});
  try {
    pqxx::work tx(control());
    tx.exec_params(
        "INSERT INTO mdsync.side_state (side, last_error, last_error_at, consecutive_failures)"
        " VALUES ($1, $2, now(), $3) ON CONFLICT (side) DO UPDATE SET last_error = $2,"
        " last_error_at = now(), consecutive_failures = $3",
        side.name(), h.last_error, h.failures);
    // The history status shows after recovery: one event per episode (or changed error).
    if (new_error)
      tx.exec_params("INSERT INTO mdsync.side_event (side, kind, message) VALUES ($1, 'error', $2)",
                     side.name(), h.last_error);
    tx.commit();
  } catch (const std::exception&) {
    control_.reset();  // the control store is down too; the pass reports that
  }
}

void SyncEngine::side_ok(Side& side) {
  SideHealth& h = health_[side.name()];
  if (h.failures > 0) log::info("side_recovered", {{"side", side.name()}});
  // The side's current error is cleared once it answers again (also one recorded by an
  // earlier process), and its recovery joins the history; checked once per process and
  // after each failure, so a healthy side costs nothing here.
  bool recorded = h.recovery_recorded && h.failures == 0;
  if (!recorded) {
    try {
      pqxx::work tx(control());
      tx.exec_params(
          "WITH cleared AS (UPDATE mdsync.side_state SET last_error = NULL, last_error_at = NULL,"
          " consecutive_failures = 0 WHERE side = $1 AND last_error IS NOT NULL RETURNING side)"
          " INSERT INTO mdsync.side_event (side, kind, message)"
          " SELECT side, 'recovered', 'reachable again' FROM cleared",
          side.name());
      tx.commit();
      recorded = true;
    } catch (const std::exception&) {
      control_.reset();  // the control store is down; the pass reports that, and this is redone
    }
  }
  h = SideHealth{};
  h.recovery_recorded = recorded;
}

PassResult SyncEngine::run_pass(Clock::time_point now) {
  try {
    // Stewards' decisions first: each is planned (its write-backs queued) before this pass
    // reconciles captures, so a capture that opens a new conflict on the unit does not keep the
    // resolution from being written back (DESIGN.md).
    PassResult r;
    if (ruleset_check_due_) {
      ruleset_check_due_ = false;
      try {
        ruleset();
      } catch (const rules::CheckError& e) {
        // No ruleset in force yet to keep: the batch that needs one fails the same way.
        log::error("ruleset_rejected", {{"error", std::string(e.what())}});
      }
    }
    if (store::steward_actions_pending(control()))
      r.steward_actions = apply_steward_actions(control(), config_, ruleset());
    r += apply_writebacks(now);
    // A backlog is reconciled before more is written back (up to kBacklogBatches batches a
    // pass): a write to a row whose later changes are still captured would only wait for them.
    for (int batch = 0; batch < kBacklogBatches; ++batch) {
      const PassResult c = reconcile_captures(now);
      r += c;
      if (!c.backlog) break;
    }
    r += apply_writebacks(now);
    return r;
  } catch (const pqxx::broken_connection& e) {
    control_.reset();
    throw ConnectionError("lost the control store: " + first_line(e.what()));
  }
}

PassResult SyncEngine::drain(std::chrono::milliseconds max_wait) {
  const auto start = Clock::now();
  PassResult total;
  for (;;) {
    const PassResult r = run_pass(Clock::now());
    total += r;
    total.side_errors = r.side_errors;
    if (r.did_work()) continue;
    if (r.side_errors == 0 && std::all_of(health_.begin(), health_.end(),
                                          [](const auto& h) { return h.second.failures == 0; }))
      break;
    if (Clock::now() - start >= max_wait) break;
    auto wake = Clock::now() + std::chrono::milliseconds(200);
    for (const auto& [name, h] : health_)
      if (h.failures > 0) wake = std::min(wake, std::max(h.next_attempt, Clock::now()));
    std::this_thread::sleep_until(wake);
  }
  return total;
}

void SyncEngine::set_waiting(bool waiting) {
  for (auto& side : sides_) {
    const config::SideConfig* cfg = config_.side(side->name());
    if (cfg == nullptr || !cfg->notify) continue;
    try {
      side->set_engine_waiting(waiting);
    } catch (const std::exception& e) {
      side->reset();
      log::debug("wake_flag_not_set", {{"side", side->name()}, {"error", first_line(e.what())}});
    }
  }
}

std::int64_t SyncEngine::pending_writebacks() {
  pqxx::read_transaction tx(control());
  return tx.exec1("SELECT count(*) FROM mdsync.outbox WHERE status IN ('pending', 'cancelling')")[0]
      .as<std::int64_t>();
}

namespace {

// Consecutive supersedes of a record's write to a side, with no change of the row captured,
// from which its next write backs off (the first may be a stale expectation, never a second).
constexpr int kStuckStreak = 2;

// The outcome of a side's write-backs, saved to the outbox in one statement.
class OutboxOutcomes {
 public:
  void add(std::int64_t id, const char* status, const std::string& row_key,
           const std::string& error) {
    ids_.push_back(std::to_string(id));
    statuses_.push_back(status);
    row_keys_.push_back(row_key);
    errors_.push_back(error);
  }
  void save(pqxx::transaction_base& tx) const {
    if (ids_.empty()) return;
    tx.exec_params(
        "UPDATE mdsync.outbox o SET status = u.status, done_at = now(),"
        " row_key = nullif(u.row_key, ''),"
        // A superseded or withdrawn write keeps the note that says why.
        " last_error = CASE WHEN u.error <> '' THEN u.error"
        "  WHEN u.status = 'superseded' THEN o.last_error END,"
        " attempts = o.attempts + 1"
        " FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])"
        "  AS u(id, status, row_key, error) WHERE o.id = u.id",
        pg_text_array(ids_), pg_text_array(statuses_), pg_text_array(row_keys_),
        pg_text_array(errors_));
  }

 private:
  std::vector<std::string> ids_, statuses_, row_keys_, errors_;
};

}  // namespace

void SyncEngine::decide_captured(const std::vector<CaptureBatch>& captured,
                                 std::vector<std::vector<std::int64_t>>& read_seqs,
                                 const core::Ruleset& rs, bool row_by_row, PassResult& result) {
  pqxx::work tx(control());

  // Rows reconciled by an earlier batch (whose side cleanup did not happen, or that were
  // delivered again) are skipped.
  std::vector<SideRows> to_decide;
  for (std::size_t i = 0; i < sides_.size(); ++i) {
    if (captured[i].rows.empty()) continue;
    for (const CapturedRow& row : captured[i].rows) read_seqs[i].push_back(row.seq);
    const std::set<std::int64_t> done =
        reconciled_before(tx, sides_[i]->name(), captured[i].epoch, read_seqs[i]);
    SideRows side{sides_[i]->name(), captured[i].epoch, {}};
    for (const CapturedRow& row : captured[i].rows)
      if (!done.count(row.seq)) side.rows.push_back(&row);
    to_decide.push_back(std::move(side));
  }

  BatchReconciler batch(
      tx, config_, rs, *transforms_,
      row_by_row ? BatchReconciler::Mode::kRowByRow : BatchReconciler::Mode::kBuffered);
  {
    std::vector<std::pair<std::string, const CapturedRow*>> all;
    for (const SideRows& side : to_decide)
      for (const CapturedRow* row : side.rows) all.emplace_back(side.side, row);
    batch.prefetch(all);
  }
  in_capture_order(to_decide, [&](const SideRows& side, const CapturedRow& row) {
    batch.reconcile(side.side, side.epoch, row, result);
  });
  batch.finish();
  for (std::size_t i = 0; i < sides_.size(); ++i) {
    if (read_seqs[i].empty()) continue;
    mark_reconciled(tx, sides_[i]->name(), captured[i].epoch, read_seqs[i]);
    tx.exec_params(
        "INSERT INTO mdsync.side_state (side, last_capture_at) VALUES ($1, now())"
        " ON CONFLICT (side) DO UPDATE SET last_capture_at = now()",
        sides_[i]->name());
  }
  crash_point("batch.before_commit");
  tx.commit();
  crash_point("batch.after_commit");
}

PassResult SyncEngine::reconcile_captures(Clock::time_point now) {
  PassResult result;
  std::vector<CaptureBatch> captured(sides_.size());
  bool any = false;
  for (std::size_t i = 0; i < sides_.size(); ++i) {
    Side& side = *sides_[i];
    if (health_[side.name()].next_attempt > now) continue;
    try {
      captured[i] = side.read_capture(config_.service.batch_size);
      side_ok(side);
      if (static_cast<int>(captured[i].rows.size()) >= config_.service.batch_size)
        result.backlog = true;
      any = any || !captured[i].rows.empty();
    } catch (const std::exception& e) {
      side_failed(side, e.what(), now);
      ++result.side_errors;
    }
  }
  if (!any) return result;

  const core::Ruleset& rs = ruleset();
  std::vector<std::vector<std::int64_t>> read_seqs(sides_.size());
  const PassResult read_result = result;
  // Buffered first; a row the batch cannot decide, or a write the store refuses, rolls it back
  // and the same rows are decided again row by row, where that row alone becomes an error.
  for (bool row_by_row : {false, true}) {
    result = read_result;
    for (auto& seqs : read_seqs) seqs.clear();
    try {
      decide_captured(captured, read_seqs, rs, row_by_row, result);
      break;
    } catch (const RowByRowNeeded& e) {
      log::info("batch_row_by_row", {{"reason", std::string(e.what())}});
    }
  }
  if (result.captured > 0 || result.change_errors > 0)
    log::info("batch_reconciled",
              {{"changes", static_cast<std::int64_t>(result.captured)},
               {"errors", static_cast<std::int64_t>(result.change_errors)},
               {"conflicts_opened", static_cast<std::int64_t>(result.conflicts_opened)},
               {"ruleset_version", rs.version}});

  // The control store now remembers these rows as done; drop them from the sides.
  for (std::size_t i = 0; i < sides_.size(); ++i) {
    if (read_seqs[i].empty()) continue;
    try {
      sides_[i]->forget_capture(read_seqs[i]);
    } catch (const std::exception& e) {
      side_failed(*sides_[i], e.what(), now);
      ++result.side_errors;
    }
  }
  prune_capture_done(now);
  return result;
}

void SyncEngine::prune_capture_done(Clock::time_point now) {
  // Done markers outlive their capture rows by a week, long enough for any redelivery.
  if (now < next_prune_) return;
  next_prune_ = now + std::chrono::hours(1);
  pqxx::work tx(control());
  tx.exec("DELETE FROM mdsync.capture_done WHERE done_at < now() - interval '7 days'");
  tx.commit();
}

PassResult SyncEngine::apply_writebacks(Clock::time_point now) {
  PassResult result;
  for (auto& side_ptr : sides_) {
    Side& side = *side_ptr;
    if (health_[side.name()].next_attempt > now) continue;
    std::vector<WriteRequest> requests;
    std::vector<std::int64_t> ids;
    {
      pqxx::read_transaction tx(control());
      // One write per record per pass: a later write of the same record may need the key an
      // earlier insert is about to get, and expects what the earlier ones will have written.
      // A record whose oldest write backs off (not_before) waits whole.
      for (const auto& row : exec_prepared(
               tx, "mdsync_outbox_next",
               "SELECT o.id, o.entity, o.golden_id, o.kind,"
               // An insert names the record's soft-deleted row, to restore it; an update or
               // a delete names the row that is synced.
               " CASE WHEN (o.kind = 'insert') = (x.state = 'deleted') THEN x.row_key END,"
               " o.\"values\"::text, o.expected::text, o.status = 'cancelling'"
               " FROM mdsync.outbox o"
               " LEFT JOIN mdsync.crosswalk x ON x.golden_id = o.golden_id AND x.side = o.side"
               " WHERE o.side = $1 AND o.status IN ('pending', 'cancelling')"
               // Walked in id order (index outbox_queued_in_order) and stopped at the batch
               // size: the cost follows the batch, not the length of the queue.
               " AND NOT EXISTS (SELECT FROM mdsync.outbox p WHERE p.side = o.side"
               "  AND p.golden_id = o.golden_id AND p.status IN ('pending', 'cancelling')"
               "  AND p.id < o.id)"
               " AND (o.not_before IS NULL OR o.not_before <= now())"
               " ORDER BY o.id LIMIT $2",
               side.name(), config_.service.batch_size)) {
        WriteRequest w;
        w.outbox_id = row[0].as<std::int64_t>();
        w.entity = row[1].as<std::string>();
        w.kind = core::row_write_kind_from_string(row[3].as<std::string>())
                     .value_or(core::RowWrite::Kind::kUpdate);
        w.row_key = row[4].is_null() ? std::string() : row[4].as<std::string>();
        w.values = values_from_json(row[5].as<std::string>());
        w.expected = values_from_json(row[6].as<std::string>());
        w.cancel = row[7].as<bool>();
        requests.push_back(std::move(w));
        ids.push_back(row[2].as<std::int64_t>());
      }
    }
    if (requests.empty()) continue;

    std::vector<WriteResult> results;
    const std::int64_t retries_before = side.contention_retries();
    // Deadlocks with users' transactions are contention, not failure: retried (by apply, and
    // else on the next pass), counted and logged at debug, never the side's last_error.
    auto record_contention = [&] {
      const std::int64_t retried = side.contention_retries() - retries_before;
      if (retried == 0) return;
      log::debug("writeback_contention", {{"side", side.name()}, {"retries", retried}});
      pqxx::work tx(control());
      tx.exec_params(
          "INSERT INTO mdsync.side_state (side, contention_retries) VALUES ($1, $2)"
          " ON CONFLICT (side) DO UPDATE SET contention_retries ="
          " mdsync.side_state.contention_retries + $2",
          side.name(), retried);
      tx.commit();
    };
    try {
      results = side.apply(requests);
      crash_point("writeback.after_side_commit");
    } catch (const SideContention& e) {
      record_contention();
      log::debug("writeback_deferred", {{"side", side.name()}, {"reason", std::string(e.what())}});
      continue;
    } catch (const std::exception& e) {
      side_failed(side, e.what(), now);
      ++result.side_errors;
      std::vector<std::int64_t> outbox_ids;
      for (const WriteRequest& w : requests) outbox_ids.push_back(w.outbox_id);
      pqxx::work tx(control());
      tx.exec_params(
          "UPDATE mdsync.outbox SET attempts = attempts + 1, last_error = $2"
          " WHERE id = ANY($1::bigint[])",
          pg_bigint_array(outbox_ids), first_line(e.what()));
      tx.commit();
      continue;
    }
    side_ok(side);
    record_contention();

    const PassResult before = result;
    // Superseded writes are planned again under the ruleset in force; it is looked up before
    // the control transaction opens (one transaction at a time on a connection).
    const bool any_superseded =
        std::any_of(requests.begin(), requests.end(),
                    [](const WriteRequest& w) { return w.cancel; }) ||
        std::any_of(results.begin(), results.end(), [](const WriteResult& r) {
          return r.status == WriteResult::Status::kSuperseded ||
                 r.status == WriteResult::Status::kVetoed ||
                 r.status == WriteResult::Status::kUnwritable;
        });
    const core::Ruleset* rs = any_superseded ? &ruleset() : nullptr;
    pqxx::work tx(control());
    RecordRepository repo(tx);
    // The batch's outbox rows, locked: a steward's command that ran meanwhile (it takes no
    // lease) may have withdrawn some, and one of those the side applied is taken in as a
    // withdrawn write found applied, not recorded as done and forgotten.
    std::set<std::int64_t> withdrawn_meanwhile;
    {
      std::vector<std::int64_t> sent;
      for (const WriteRequest& w : requests)
        if (!w.cancel) sent.push_back(w.outbox_id);
      if (!sent.empty())
        for (const auto& row :
             tx.exec_params("SELECT id, status FROM mdsync.outbox WHERE id = ANY($1::bigint[])"
                            " ORDER BY id FOR UPDATE",
                            pg_bigint_array(sent)))
          if (row[1].as<std::string>() == "cancelling")
            withdrawn_meanwhile.insert(row[0].as<std::int64_t>());
    }
    if (!withdrawn_meanwhile.empty() && rs == nullptr) rs = &ruleset();
    auto soft_deletes = [&](const std::string& entity) {
      const config::EntityConfig* e = config_.entity(entity);
      const config::SideMapping* m = e ? e->mapping_for(side.name()) : nullptr;
      return m != nullptr && m->soft_delete.has_value();
    };
    std::set<std::int64_t> replan;
    std::vector<std::pair<std::int64_t, std::string>> vetoed;  // golden id, the guard's reason
    std::vector<std::pair<std::int64_t, WriteResult>> unwritable;
    OutboxOutcomes outcome;
    // Applied updates: what the row the write went to now holds.
    std::vector<std::string> base_ids, base_keys, base_values;
    // Superseded with no change of the row captured: the side holds what the engine never saw.
    std::vector<std::pair<std::int64_t, std::int64_t>> unexplained;  // golden id, outbox id
    // Later queued writes of a record whose write was superseded expected what it would write.
    std::vector<std::string> stale_gids, stale_after;
    std::map<std::int64_t, const config::EntityConfig*> keyed;  // applied, with match keys
    for (std::size_t k = 0; k < requests.size(); ++k) {
      const WriteRequest& w = requests[k];
      const WriteResult& res = results[k];
      const std::int64_t gid = ids[k];
      const bool withdrawn = w.cancel || withdrawn_meanwhile.count(w.outbox_id) != 0;
      switch (res.status) {
        case WriteResult::Status::kApplied:
          if (withdrawn) {
            // A withdrawn write that an earlier attempt had applied (the engine crashed before
            // it heard): the side holds it, so it is taken in, and the record planned again.
            replan.insert(gid);
            log::warn("withdrawn_write_was_applied",
                      {{"side", side.name()}, {"golden_id", gid}, {"outbox_id", w.outbox_id}});
          }
          if (w.kind == core::RowWrite::Kind::kInsert) {
            // A withdrawn insert may find the record linked to another row meanwhile (a match,
            // a steward's --link): the inserted row is the engine's and nobody else's; say so.
            const auto linked =
                withdrawn ? repo.row_keys(gid) : std::map<std::string, std::string>{};
            if (auto other = linked.find(side.name());
                other != linked.end() && other->second != res.row_key) {
              const std::string why = "inserted row " + res.row_key + " on " + side.name() +
                                      " was withdrawn but had been applied; the record is "
                                      "linked to row " +
                                      other->second + ": delete row " + res.row_key + " on " +
                                      side.name();
              outcome.add(w.outbox_id, "failed", res.row_key, why);
              log::error("writeback_orphan_row",
                         {{"side", side.name()}, {"golden_id", gid}, {"error", why}});
              ++result.writes_failed;
              break;
            }
            repo.link(w.entity, side.name(), res.row_key, gid, w.values);
          } else if (w.kind == core::RowWrite::Kind::kDelete && soft_deletes(w.entity)) {
            repo.retire(gid, side.name(), "deleted");
          } else if (w.kind == core::RowWrite::Kind::kDelete) {
            repo.unlink(gid, side.name());
          } else {
            base_ids.push_back(std::to_string(gid));
            base_keys.push_back(w.row_key);
            base_values.push_back(values_to_json(w.values));
          }
          outcome.add(w.outbox_id, "done", res.row_key, "");
          if (const config::EntityConfig* e = config_.entity(w.entity); e && !e->match.empty())
            keyed[gid] = e;
          ++result.writes_applied;
          break;
        case WriteResult::Status::kCancelled:
          outcome.add(w.outbox_id, "superseded", res.row_key, "");
          ++result.writes_cancelled;
          break;
        case WriteResult::Status::kSuperseded:
          if (res.unreconciled_capture && !withdrawn) {
            // The row changed and its change is still captured: the write stays queued, and
            // the change, once reconciled, plans the record again (withdrawing this write if
            // it no longer fits the row). Not a supersede: nothing is planned twice.
            ++result.writes_waiting;
            break;
          }
          // A soft-deleted row to restore that is gone for good: forgotten, so the record is
          // inserted as a new row.
          if (w.kind == core::RowWrite::Kind::kInsert && !w.row_key.empty() && res.row_key.empty())
            repo.unlink(gid, side.name());
          else if (!res.unreconciled_capture && !res.row_key.empty())
            unexplained.emplace_back(gid, w.outbox_id);
          outcome.add(w.outbox_id, "superseded", res.row_key, "");
          stale_gids.push_back(std::to_string(gid));
          stale_after.push_back(std::to_string(w.outbox_id));
          replan.insert(gid);
          ++result.writes_superseded;
          break;
        case WriteResult::Status::kVetoed:
          outcome.add(w.outbox_id, "vetoed", res.row_key, res.error);
          vetoed.emplace_back(gid, res.error);
          log::warn("delete_vetoed", {{"side", side.name()},
                                      {"golden_id", gid},
                                      {"row_key", res.row_key},
                                      {"reason", res.error}});
          ++result.writes_failed;
          ++result.writes_vetoed;
          break;
        case WriteResult::Status::kUnwritable:
          // The value is valid where it came from; an invalid_value conflict holds the
          // field for the steward, and the rest of the row is planned again without it.
          unwritable.emplace_back(gid, res);
          if (res.refused)  // the side's database refused it: still a failed write-back
            log::error("writeback_failed", {{"side", side.name()},
                                            {"outbox_id", w.outbox_id},
                                            {"golden_id", gid},
                                            {"field", res.field},
                                            {"error", res.error}});
          else
            log::warn("value_unwritable", {{"side", side.name()},
                                           {"golden_id", gid},
                                           {"field", res.field},
                                           {"reason", res.error}});
          outcome.add(w.outbox_id, "failed", res.row_key,
                      res.field + ": " + res.error + "; not written, the golden value stays");
          ++result.writes_failed;
          break;
        case WriteResult::Status::kFailed:
          if (withdrawn) {  // refused, and not wanted any more: nothing to review
            outcome.add(w.outbox_id, "superseded", res.row_key, res.error);
            break;
          }
          outcome.add(w.outbox_id, "failed", res.row_key, res.error);
          log::error("writeback_failed", {{"side", side.name()},
                                          {"outbox_id", w.outbox_id},
                                          {"golden_id", gid},
                                          {"error", res.error}});
          ++result.writes_failed;
          break;
      }
    }
    outcome.save(tx);
    if (!base_ids.empty())
      tx.exec_params(
          "UPDATE mdsync.crosswalk x SET base = x.base || u.v::jsonb, superseded_streak = 0"
          " FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(id, k, v)"
          " WHERE x.golden_id = u.id AND x.side = $4 AND x.row_key = u.k",
          pg_text_array(base_ids), pg_text_array(base_keys), pg_text_array(base_values),
          side.name());
    if (!keyed.empty()) {
      // Match keys are built from what each side holds too (record_keys): an applied write
      // moves its record's keys, or a value no side holds any more would still find it.
      MatchIndex keys(tx, false);
      std::vector<std::int64_t> gids;
      for (const auto& [gid, entity] : keyed) gids.push_back(gid);
      for (auto& [gid, state] : repo.load_many(gids)) keys.changed(*keyed[gid], gid, state);
      keys.flush();
    }
    if (!stale_gids.empty())
      // Never sent: a record's writes go one per pass in id order, and these come later.
      tx.exec_params(
          "UPDATE mdsync.outbox o SET status = 'superseded', done_at = now(),"
          " last_error = 'an earlier write of the record to this side was superseded'"
          " FROM unnest($1::bigint[], $2::bigint[]) AS u(gid, after)"
          " WHERE o.golden_id = u.gid AND o.side = $3 AND o.id > u.after"
          " AND o.status = 'pending'",
          pg_text_array(stale_gids), pg_text_array(stale_after), side.name());
    // A write superseded again and again with no change captured on the side would otherwise
    // be planned and superseded at every pass: past the first time it backs off, and the
    // streak shows in `mdsync status` until a change of the row is reconciled or a write lands.
    std::map<std::int64_t, std::int64_t> delay_of;  // golden id -> ms
    if (!unexplained.empty()) {
      std::vector<std::string> gids, outbox_ids;
      for (const auto& [gid, oid] : unexplained) {
        gids.push_back(std::to_string(gid));
        outbox_ids.push_back(std::to_string(oid));
      }
      for (const auto& row : tx.exec_params(
               "UPDATE mdsync.crosswalk x SET superseded_streak = x.superseded_streak + 1"
               " FROM unnest($1::bigint[]) AS u(gid) WHERE x.golden_id = u.gid AND x.side = $2"
               " RETURNING x.golden_id, x.superseded_streak",
               pg_text_array(gids), side.name())) {
        const auto gid = row[0].as<std::int64_t>();
        const int streak = row[1].as<int>();
        if (streak < kStuckStreak) continue;
        const std::int64_t delay = std::min<std::int64_t>(
            config_.service.writeback_backoff_max_ms,
            static_cast<std::int64_t>(config_.service.writeback_backoff_initial_ms)
                << std::min(streak - kStuckStreak, 20));
        delay_of[gid] = delay;
        const std::string why = "superseded " + std::to_string(streak) +
                                " times in a row with no change captured on " + side.name() +
                                ": the row holds values the engine never saw (a trigger that "
                                "rewrites them, a column that rounds, capture disabled?); next "
                                "attempt in " +
                                std::to_string(delay) + " ms";
        log::warn("writeback_stuck", {{"side", side.name()},
                                      {"golden_id", gid},
                                      {"streak", static_cast<std::int64_t>(streak)},
                                      {"retry_in_ms", delay}});
        tx.exec_params(
            "UPDATE mdsync.outbox SET last_error = $3 WHERE id = ANY($1::bigint[])"
            " AND golden_id = $2",
            pg_text_array(outbox_ids), gid, why);
      }
    }
    // A record as it is now, and its entity's rules in force (nullptr: gone, or not ruled).
    auto record = [&](std::int64_t gid) {
      auto state = repo.load(gid);
      const pqxx::result e = tx.exec_params("SELECT entity FROM mdsync.golden WHERE id = $1", gid);
      const core::EntityRules* rules = e.empty() ? nullptr : rs->find(e[0][0].as<std::string>());
      return std::make_pair(std::move(state), rules);
    };
    // A vetoed delete keeps the record: the core restores it and opens a foreign_delete
    // conflict with the guard's reason; deletes still queued for other sides are withdrawn.
    for (const auto& [gid, reason] : vetoed) {
      const auto [state, rules] = record(gid);
      if (!state || rules == nullptr) continue;
      const std::string deleter = repo.deleting_side(gid);
      core::Reconciliation r =
          core::veto_delete(*rules, rs->version, *state, side.name(), deleter, reason);
      repo.save_golden(gid, r.after);
      // The conflict is the deleting side's, so the steward can accept that side's delete.
      repo.persist_plan(rules->entity, gid, deleter.empty() ? side.name() : deleter, "", r.plan,
                        r.after);
      repo.plan_and_enqueue(*rules, config_.side_names(), gid, r.after);
      result.conflicts_opened += static_cast<int>(r.plan.opened.size());
    }
    for (const auto& [gid, res] : unwritable) {
      const auto [state, rules] = record(gid);
      if (!state || rules == nullptr) continue;
      const core::Reconciliation r = core::unwritable_value(
          *rules, rs->version, *state, side.name(), res.field, res.error,
          res.refused ? core::ConflictKind::kWriteRefused : core::ConflictKind::kInvalidValue);
      core::RecordState after = r.after;
      repo.persist_plan(rules->entity, gid, side.name(), res.row_key, r.plan, after);
      // Planned again with the field held: the rest of the row is written.
      repo.plan_and_enqueue(*rules, config_.side_names(), gid, after);
      result.conflicts_opened += static_cast<int>(r.plan.opened.size());
    }
    // A superseded write means the side changed under us; its change is captured and
    // reconciled, and the record is planned again from what the engine now knows.
    if (!replan.empty() && rs != nullptr) {
      for (std::int64_t gid : replan) {
        const auto [state, rules] = record(gid);
        std::map<std::string, std::int64_t> delays;
        if (auto d = delay_of.find(gid); d != delay_of.end()) delays[side.name()] = d->second;
        if (state && rules)
          repo.plan_and_enqueue(*rules, config_.side_names(), gid, *state, delays);
      }
    }
    tx.exec_params(
        "INSERT INTO mdsync.side_state (side, last_writeback_at, consecutive_failures)"
        " VALUES ($1, now(), 0) ON CONFLICT (side) DO UPDATE SET last_writeback_at = now(),"
        " consecutive_failures = 0",
        side.name());
    crash_point("writeback.before_control_commit");
    tx.commit();
    log::info(
        "writeback_applied",
        {{"side", side.name()},
         {"applied", static_cast<std::int64_t>(result.writes_applied - before.writes_applied)},
         {"superseded",
          static_cast<std::int64_t>(result.writes_superseded - before.writes_superseded)},
         {"failed", static_cast<std::int64_t>(result.writes_failed - before.writes_failed)}});
  }
  return result;
}

// ---- sync --initial -------------------------------------------------------------------

PassResult SyncEngine::deliver_writebacks() {
  PassResult total;
  // Bounded: a write superseded again and again backs off (not_before), but a side that keeps
  // changing under it must not hold the run here.
  for (int pass = 0; pass < 20; ++pass) {
    PassResult r;
    try {
      r = apply_writebacks(Clock::now());
    } catch (const pqxx::broken_connection& e) {
      control_.reset();
      throw ConnectionError("lost the control store: " + first_line(e.what()));
    }
    total += r;
    // A pass that applied nothing new (everything left waits for a side, a back-off or a
    // steward) ends it.
    if (r.writes_applied == 0 && r.writes_superseded == 0 && r.writes_cancelled == 0) break;
  }
  return total;
}

void SyncEngine::refresh_statistics() {
  try {
    pqxx::nontransaction tx(control());
    const pqxx::result tables = tx.exec(
        "SELECT string_agg(c.oid::regclass::text, ', ') FROM pg_class c"
        " WHERE c.oid IN ('mdsync.golden'::regclass, 'mdsync.crosswalk'::regclass,"
        "  'mdsync.outbox'::regclass, 'mdsync.match_key'::regclass, 'mdsync.conflict'::regclass)"
        " AND pg_has_role(c.relowner, 'USAGE')");
    if (!tables[0][0].is_null()) tx.exec("ANALYZE " + tables[0][0].as<std::string>());
  } catch (const pqxx::broken_connection& e) {
    control_.reset();
    throw ConnectionError("lost the control store: " + first_line(e.what()));
  } catch (const std::exception& e) {
    log::warn("statistics_not_refreshed", {{"error", first_line(e.what())}});
  }
}

bool SyncEngine::in_control_transaction(const ControlWork& work) {
  try {
    const core::Ruleset& rs = ruleset();
    pqxx::work tx(control());
    if (!work(tx, rs, *transforms_)) {
      tx.abort();
      return false;
    }
    crash_point("initial.before_commit");
    tx.commit();
    crash_point("initial.after_commit");
    return true;
  } catch (const pqxx::broken_connection& e) {
    control_.reset();
    throw ConnectionError("lost the control store: " + first_line(e.what()));
  }
}

}  // namespace mdsync::store
