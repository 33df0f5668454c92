#include "mdsync/store/sync_engine.hpp"

#include "prepared_statement.hpp"

#include <algorithm>
#include <pqxx/pqxx>
#include <set>
#include <thread>
#include <utility>

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
#include "mdsync/store/side_pause.hpp"
#include "mdsync/store/steward_actions.hpp"
#include "mdsync/store/store_identity.hpp"
#include "outbox_queue.hpp"
#include "savepoint.hpp"
#include "writeback_results.hpp"

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
  tally += o.tally;
  captured_at_us.insert(captured_at_us.end(), o.captured_at_us.begin(), o.captured_at_us.end());
  return *this;
}

PassTally& PassTally::operator+=(const PassTally& o) {
  for (const auto& [k, n] : o.changes) changes[k] += n;
  for (const auto& [k, n] : o.writebacks) writebacks[k] += n;
  for (const auto& [k, n] : o.writeback_retries) writeback_retries[k] += n;
  for (const auto& [k, n] : o.side_errors) side_errors[k] += n;
  batch_seconds.insert(batch_seconds.end(), o.batch_seconds.begin(), o.batch_seconds.end());
  capture_to_writeback_seconds.insert(capture_to_writeback_seconds.end(),
                                      o.capture_to_writeback_seconds.begin(),
                                      o.capture_to_writeback_seconds.end());
  return *this;
}

namespace {

// Capture batches reconciled in one pass before write-backs when a side's capture keeps
// coming back full (a backlog): bounded, so write-backs and stewards are not starved.
constexpr int kBacklogBatches = 20;

// How often the write-back queue is walked from its start rather than from where the last walk
// met the first queued write (queue_floor_): the longest a write committed late, below that
// point, waits.
constexpr auto kFullWalkInterval = std::chrono::seconds(1);

std::string first_line(const std::string& s) {
  return s.substr(0, s.find('\n'));
}

// Wall-clock microseconds, the unit of a capture's time (CapturedRow::captured_at_us).
std::int64_t epoch_us_now() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The breaker and the bucket count milliseconds on the engine's monotonic clock.
std::int64_t ms_of(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
Clock::time_point at_ms(std::int64_t ms) {
  return Clock::time_point(std::chrono::milliseconds(ms));
}

}  // namespace

SyncEngine::SideHealth::SideHealth(const config::SideConfig& side, Clock::time_point now)
    : breaker(core::CircuitSettings{side.circuit_breaker.failures,
                                    std::int64_t{side.circuit_breaker.open_s} * 1000,
                                    std::int64_t{side.circuit_breaker.max_open_s} * 1000}) {
  // One second's worth may go at once (after a quiet time); the average stays at the rate.
  if (side.max_writes_per_s)
    pace.emplace(*side.max_writes_per_s, *side.max_writes_per_s, ms_of(now));
}

SyncEngine::SyncEngine(const config::Config& config, std::uint64_t seed)
    : config_(config), transforms_(std::make_unique<FieldTransforms>(config)), rng_(seed) {
  const auto now = Clock::now();
  for (const config::SideConfig& side : config_.sides) {
    sides_.push_back(make_side(config_, side));
    SideHealth& h = health_.emplace(side.name, SideHealth(side, now)).first->second;
    // A send worth a side transaction: a fifth of a second's worth (so at most about five
    // paced transactions a second), at least one write, at most a batch.
    if (h.pace)
      h.pace_chunk =
          std::clamp<std::int64_t>(*side.max_writes_per_s / 5, 1, config_.service.batch_size);
  }
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
  // The lease is this engine's: what an earlier one left in side_state is not current.
  record_runtime(*fresh);
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

bool SyncEngine::holds_lease() const {
  return control_ && control_->is_open();
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
  SideHealth& h = health(side.name());
  const core::CircuitBreaker::Transition circuit = h.breaker.failed(ms_of(now));
  const int failures = h.breaker.consecutive_failures();
  const double base = std::min<double>(
      config_.service.writeback_backoff_max_ms,
      config_.service.writeback_backoff_initial_ms * std::pow(2.0, std::min(failures - 1, 20)));
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  auto delay = std::chrono::milliseconds(static_cast<std::int64_t>(base * jitter(rng_)));
  h.next_attempt = now + delay;
  // Open, the circuit says when the side is tried again.
  if (!h.breaker.closed())
    delay =
        std::chrono::milliseconds(std::max<std::int64_t>(0, h.breaker.retry_at_ms() - ms_of(now)));
  const bool new_error = failures == 1 || h.last_error != first_line(what);
  h.last_error = first_line(what);
  log::warn("side_unavailable", {{"side", side.name()},
                                 {"error", h.last_error},
                                 {"attempt", static_cast<std::int64_t>(failures)},
                                 {"retry_in_ms", static_cast<std::int64_t>(delay.count())}});
  const bool opened = circuit == core::CircuitBreaker::Transition::kOpened ||
                      circuit == core::CircuitBreaker::Transition::kReopened;
  if (opened)
    log::warn("side_circuit_opened",
              {{"side", side.name()},
               {"failures", static_cast<std::int64_t>(failures)},
               {"open_ms", h.breaker.open_for_ms()},
               {"reopened", circuit == core::CircuitBreaker::Transition::kReopened}});
  try {
    pqxx::work tx(control());
    tx.exec_params(
        "INSERT INTO mdsync.side_state (side, last_error, last_error_at, consecutive_failures)"
        " VALUES ($1, $2, now(), $3) ON CONFLICT (side) DO UPDATE SET last_error = $2,"
        " last_error_at = now(), consecutive_failures = $3",
        side.name(), h.last_error, failures);
    if (opened) record_circuit(tx, side.name(), now);
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
  SideHealth& h = health(side.name());
  const bool failed_before = h.breaker.consecutive_failures() > 0;
  if (failed_before) log::info("side_recovered", {{"side", side.name()}});
  if (h.breaker.succeeded() == core::CircuitBreaker::Transition::kClosed)
    log::info("side_circuit_closed", {{"side", side.name()}});
  // The side's current error is cleared once it answers again (also one recorded by an
  // earlier process), and its recovery joins the history; checked once per process and
  // after each failure, so a healthy side costs nothing here.
  bool recorded = h.recovery_recorded && !failed_before;
  if (!recorded) {
    try {
      pqxx::work tx(control());
      tx.exec_params(
          "WITH cleared AS (UPDATE mdsync.side_state SET last_error = NULL, last_error_at = NULL,"
          " consecutive_failures = 0, circuit = 'closed', circuit_opened_at = NULL,"
          " circuit_retry_at = NULL WHERE side = $1 AND (last_error IS NOT NULL"
          " OR circuit <> 'closed') RETURNING side)"
          " INSERT INTO mdsync.side_event (side, kind, message)"
          " SELECT side, 'recovered', 'reachable again' FROM cleared",
          side.name());
      tx.commit();
      recorded = true;
    } catch (const std::exception&) {
      control_.reset();  // the control store is down; the pass reports that, and this is redone
    }
  }
  h.next_attempt = {};
  h.last_error.clear();
  h.recovery_recorded = recorded;
}

bool SyncEngine::may_read(Side& side, Clock::time_point now) {
  SideHealth& h = health(side.name());
  if (h.breaker.closed()) return h.next_attempt <= now;
  if (!h.breaker.probe_due(ms_of(now))) {
    unreached_.insert(side.name());  // open: left alone
    return false;
  }
  // The capture read that follows is the probe: its outcome closes or re-opens the circuit.
  log::info("side_circuit_half_open",
            {{"side", side.name()},
             {"failures", static_cast<std::int64_t>(h.breaker.consecutive_failures())}});
  try {
    pqxx::work tx(control());
    record_circuit(tx, side.name(), now);
    tx.commit();
  } catch (const std::exception&) {
    control_.reset();  // the control store is down; the probe still reports to the breaker
  }
  return true;
}

void SyncEngine::record_circuit(pqxx::transaction_base& tx, const std::string& side,
                                Clock::time_point now) {
  const core::CircuitBreaker& b = health(side).breaker;
  const std::int64_t t = ms_of(now);
  tx.exec_params(
      "INSERT INTO mdsync.side_state (side, circuit, circuit_opened_at, circuit_retry_at)"
      " VALUES ($1, $2::text,"
      " CASE WHEN $2::text <> 'closed' THEN now() - $3::float8 * interval '1 millisecond' END,"
      " CASE WHEN $2::text = 'open' THEN now() + $4::float8 * interval '1 millisecond' END)"
      " ON CONFLICT (side) DO UPDATE SET circuit = excluded.circuit,"
      " circuit_opened_at = excluded.circuit_opened_at,"
      " circuit_retry_at = excluded.circuit_retry_at",
      side, core::CircuitBreaker::name(b.state()), b.closed() ? 0 : t - b.opened_at_ms(),
      b.closed() ? 0 : b.retry_at_ms() - t);
}

void SyncEngine::record_throttled(const std::string& side, bool throttled) {
  pqxx::work tx(control());
  tx.exec_params(
      "INSERT INTO mdsync.side_state (side, throttled_since) VALUES ($1, CASE WHEN $2 THEN now()"
      " END) ON CONFLICT (side) DO UPDATE SET throttled_since = excluded.throttled_since",
      side, throttled);
  tx.commit();
}

void SyncEngine::record_runtime(pqxx::connection_base& conn) {
  const auto now = Clock::now();
  pqxx::work tx(conn);
  for (const auto& side : sides_) {
    const SideHealth& h = health(side->name());
    if (h.breaker.closed() && !h.throttled) {
      // The usual case (a new engine): only a state left behind is cleared, so an engine
      // that starts and finds nothing to do writes nothing.
      tx.exec_params(
          "UPDATE mdsync.side_state SET circuit = 'closed', circuit_opened_at = NULL,"
          " circuit_retry_at = NULL, throttled_since = NULL"
          " WHERE side = $1 AND (circuit <> 'closed' OR throttled_since IS NOT NULL)",
          side->name());
      continue;
    }
    record_circuit(tx, side->name(), now);
    tx.exec_params(
        "UPDATE mdsync.side_state SET throttled_since = CASE WHEN $2 THEN"
        " coalesce(throttled_since, now()) END WHERE side = $1",
        side->name(), h.throttled);
  }
  tx.commit();
}

int SyncEngine::writes_allowed(SideHealth& h, Clock::time_point now) {
  h.paced_wake.reset();
  if (!h.pace) return config_.service.batch_size;
  const std::int64_t t = ms_of(now);
  const std::int64_t tokens = h.pace->available(t);
  if (tokens >= h.pace_chunk)
    return static_cast<int>(std::min<std::int64_t>(tokens, config_.service.batch_size));
  // Fewer tokens than a send worth a side transaction: a pass looks again when there are
  // enough (ms_until is at least 1 ms while short, so this never asks for a pass at once).
  h.paced_wake = now + std::chrono::milliseconds(h.pace->ms_until(h.pace_chunk, t));
  return 0;
}

void SyncEngine::set_throttled(const std::string& side, SideHealth& h, bool throttled) {
  if (h.throttled == throttled) return;
  h.throttled = throttled;
  if (throttled)
    log::info("writeback_throttled",
              {{"side", side}, {"max_writes_per_s", h.pace ? h.pace->rate_per_s() : 0}});
  else
    log::info("writeback_unthrottled", {{"side", side}});
  record_throttled(side, throttled);
}

bool SyncEngine::side_closed(const std::string& side) const {
  const auto it = health_.find(side);
  return it == health_.end() || it->second.breaker.closed();
}

std::optional<Clock::time_point> SyncEngine::paced_until() const {
  std::optional<Clock::time_point> at;
  for (const auto& [name, h] : health_)
    if (h.paced_wake && (!at || *h.paced_wake < *at)) at = h.paced_wake;
  return at;
}

Clock::time_point SyncEngine::SideHealth::retry_at() const {
  return breaker.closed() ? next_attempt : at_ms(breaker.retry_at_ms());
}

std::optional<Clock::time_point> SyncEngine::next_retry(Clock::time_point after) const {
  std::optional<Clock::time_point> at;
  for (const auto& [name, h] : health_) {
    if (h.breaker.consecutive_failures() == 0) continue;
    const Clock::time_point t = h.retry_at();
    if (t > after && (!at || t < *at)) at = t;
  }
  return at;
}

PassResult SyncEngine::run_pass(Clock::time_point now) {
  try {
    // Stewards' decisions first: each is planned (its write-backs queued) before this pass
    // reconciles captures, so a capture that opens a new conflict on the unit does not keep the
    // resolution from being written back (DESIGN.md).
    PassResult r;
    unreached_.clear();
    if (ruleset_check_due_) {
      ruleset_check_due_ = false;
      try {
        ruleset();
      } catch (const rules::CheckError& e) {
        // No ruleset in force yet to keep: the batch that needs one fails the same way.
        log::error("ruleset_rejected", {{"error", std::string(e.what())}});
      }
    }
    if (read_pass_start()) r.steward_actions = apply_steward_actions(control(), config_, ruleset());
    r += apply_writebacks(now);
    // A backlog is reconciled before more is written back (up to kBacklogBatches batches a
    // pass): a write to a row whose later changes are still captured would only wait for them.
    for (int batch = 0; batch < kBacklogBatches; ++batch) {
      const PassResult c = reconcile_captures(now);
      r += c;
      if (!c.backlog) break;
    }
    r += apply_writebacks(now);
    // A side whose circuit kept it out of the pass is a side not reached, as one that failed.
    r.side_errors = std::max(r.side_errors, static_cast<int>(unreached_.size()));
    return r;
  } catch (const pqxx::broken_connection& e) {
    control_.reset();
    throw ConnectionError("lost the control store: " + first_line(e.what()));
  }
}

PassResult SyncEngine::drain(std::chrono::milliseconds max_wait) {
  const auto start = Clock::now();
  PassResult total;
  bool worked = false;
  for (;;) {
    const PassResult r = run_pass(Clock::now());
    total += r;
    total.side_errors = r.side_errors;
    const bool worked_before = std::exchange(worked, r.did_work());
    if (worked) continue;
    // Writes a side's rate limit holds back are sent, paced, however long that takes: after a
    // pass that sent some, the next waits for the side's tokens. (Two passes in a row with
    // nothing done mean what is left does not wait for tokens.)
    if (const auto paced = paced_until(); paced && worked_before) {
      std::this_thread::sleep_until(*paced);
      continue;
    }
    if (r.side_errors == 0 && std::all_of(health_.begin(), health_.end(), [](const auto& h) {
          return h.second.breaker.consecutive_failures() == 0;
        }))
      break;
    if (Clock::now() - start >= max_wait) break;
    auto wake = Clock::now() + std::chrono::milliseconds(200);
    for (const auto& [name, h] : health_)
      if (h.breaker.consecutive_failures() > 0)
        wake = std::min(wake, std::max(h.retry_at(), Clock::now()));
    std::this_thread::sleep_until(wake);
  }
  return total;
}

void SyncEngine::set_waiting(bool waiting) {
  for (auto& side : sides_) {
    const config::SideConfig* cfg = config_.side(side->name());
    if (cfg == nullptr || !cfg->notify || !side_closed(side->name())) continue;
    try {
      side->set_engine_waiting(waiting);
    } catch (const std::exception& e) {
      side->reset();
      log::debug("wake_flag_not_set", {{"side", side->name()}, {"error", first_line(e.what())}});
    }
  }
}

// The control store's reads of a pass (paused sides, the queue walk, these counts) run outside a
// transaction block: each statement of a READ COMMITTED transaction takes its own snapshot
// anyway, so a read_transaction added only its BEGIN, SET TRANSACTION and ROLLBACK, three round
// trips a read and about twenty a pass under a steady load (tools/bench-sync, latency).
std::int64_t SyncEngine::queued_writebacks(bool for_paused_sides) {
  pqxx::nontransaction tx(control());
  return tx
      .exec_params1(
          "SELECT count(*) FROM mdsync.outbox WHERE status IN ('pending', 'cancelling')"
          " AND (side IN (SELECT side FROM mdsync.side_state WHERE paused_at IS NOT NULL))"
          " = $1",
          for_paused_sides)[0]
      .as<std::int64_t>();
}

bool SyncEngine::read_pass_start() {
  // One statement: the sides paused now (nothing is written to them) and, as a NULL row,
  // whether any steward action waits.
  std::set<std::string> now;
  bool steward_actions = false;
  {
    pqxx::nontransaction tx(control());
    for (const auto& row :
         tx.exec("SELECT side FROM mdsync.side_state WHERE paused_at IS NOT NULL"
                 " UNION ALL SELECT NULL"
                 " WHERE EXISTS (SELECT 1 FROM mdsync.steward_action WHERE status = 'pending')")) {
      if (row[0].is_null())
        steward_actions = true;
      else
        now.insert(row[0].as<std::string>());
    }
  }
  for (const std::string& side : now)
    if (!paused_.count(side)) log::info("side_paused", {{"side", side}});
  for (const std::string& side : paused_)
    if (!now.count(side)) log::info("side_resumed", {{"side", side}});
  paused_ = std::move(now);
  return steward_actions;
}

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
    mark_reconciled_now(tx, sides_[i]->name(), captured[i].epoch, read_seqs[i]);
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
    if (!may_read(side, now)) continue;
    try {
      captured[i] = side.read_capture(config_.service.batch_size);
      side_ok(side);
      if (static_cast<int>(captured[i].rows.size()) >= config_.service.batch_size)
        result.backlog = true;
      any = any || !captured[i].rows.empty();
    } catch (const std::exception& e) {
      side_failed(side, e.what(), now);
      ++result.side_errors;
      ++result.tally.side_errors[side.name()];
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
      const auto started = Clock::now();
      decide_captured(captured, read_seqs, rs, row_by_row, result);
      result.tally.batch_seconds.push_back(
          std::chrono::duration<double>(Clock::now() - started).count());
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

  remember_capture_times(result.captured_at_us);
  result.captured_at_us.clear();

  // The control store now remembers these rows as done; drop them from the sides.
  for (std::size_t i = 0; i < sides_.size(); ++i) {
    if (read_seqs[i].empty()) continue;
    try {
      sides_[i]->forget_capture(read_seqs[i]);
    } catch (const std::exception& e) {
      side_failed(*sides_[i], e.what(), now);
      ++result.side_errors;
      ++result.tally.side_errors[sides_[i]->name()];
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
  const bool full_walk = now >= next_full_walk_;
  if (full_walk) next_full_walk_ = now + kFullWalkInterval;
  for (auto& side_ptr : sides_) {
    Side& side = *side_ptr;
    SideHealth& h = health(side.name());
    if (!h.breaker.closed() || h.next_attempt > now || paused_.count(side.name())) {
      // Held by something else than its rate limit.
      h.paced_wake.reset();
      set_throttled(side.name(), h, false);
      continue;
    }
    const int allowed = writes_allowed(h, now);
    if (allowed == 0) continue;
    // Below a batch because of the limit: one more is read, to tell whether the limit holds
    // writes back (`status` shows the side throttled while it does).
    const bool limited = allowed < config_.service.batch_size;
    QueuedWrites queued;
    {
      pqxx::nontransaction tx(control());
      std::int64_t& floor = queue_floor_[side.name()];
      queued =
          next_queued_writes(tx, side.name(), allowed + (limited ? 1 : 0), full_walk ? 0 : floor);
      if (queued.first_queued_id > 0) floor = queued.first_queued_id - 1;
    }
    const bool held = limited && static_cast<int>(queued.requests.size()) > allowed;
    if (held) {
      queued.requests.pop_back();
      queued.golden_ids.pop_back();
    }
    if (h.pace) set_throttled(side.name(), h, held);
    if (queued.requests.empty()) continue;
    if (const auto results = send_writes(side, queued.requests, now, result)) {
      if (h.pace) h.pace->take(static_cast<std::int64_t>(queued.requests.size()), ms_of(now));
      take_in_results(side, queued, *results, result);
    }
  }
  return result;
}

std::optional<std::vector<WriteResult>> SyncEngine::send_writes(
    Side& side, const std::vector<WriteRequest>& requests, Clock::time_point now,
    PassResult& result) {
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
  std::vector<WriteResult> results;
  try {
    results = side.apply(requests);
    crash_point("writeback.after_side_commit");
  } catch (const SideContention& e) {
    record_contention();
    log::debug("writeback_deferred", {{"side", side.name()}, {"reason", std::string(e.what())}});
    return std::nullopt;
  } catch (const std::exception& e) {
    side_failed(side, e.what(), now);
    ++result.side_errors;
    ++result.tally.side_errors[side.name()];
    result.tally.writeback_retries[side.name()] += static_cast<std::int64_t>(requests.size());
    pqxx::work tx(control());
    count_failed_attempt(tx, requests, first_line(e.what()));
    tx.commit();
    return std::nullopt;
  }
  side_ok(side);
  record_contention();
  return results;
}

void SyncEngine::take_in_results(Side& side, const QueuedWrites& sent,
                                 const std::vector<WriteResult>& results, PassResult& result) {
  // Superseded and refused writes are planned again under the ruleset in force, looked up
  // before the control transaction opens (one transaction at a time on a connection). A write a
  // steward withdraws while it is sent is planned under the one this engine holds.
  const bool replans = std::any_of(sent.requests.begin(), sent.requests.end(),
                                   [](const WriteRequest& w) { return w.cancel; }) ||
                       std::any_of(results.begin(), results.end(), [](const WriteResult& r) {
                         return r.status == WriteResult::Status::kSuperseded ||
                                r.status == WriteResult::Status::kVetoed ||
                                r.status == WriteResult::Status::kUnwritable;
                       });
  const core::Ruleset* rs = replans ? &ruleset() : ruleset_ ? &*ruleset_ : nullptr;
  const PassResult before = result;
  for (const auto mode : {RecordRepository::Mode::kBuffered, RecordRepository::Mode::kImmediate}) {
    result = before;
    try {
      pqxx::work tx(control());
      WritebackResults(tx, config_, side.name(), rs, mode).take(sent, results, result);
      crash_point("writeback.before_control_commit");
      tx.commit();
      tally_results(side, sent, results, result);
      break;
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const std::exception& e) {
      // Nothing of it committed: the side's answers are taken in again, a row at a time.
      if (mode == RecordRepository::Mode::kImmediate) throw;
      log::info("writeback_results_row_by_row",
                {{"side", side.name()}, {"reason", first_line(e.what())}});
    }
  }
  log::info("writeback_applied",
            {{"side", side.name()},
             {"applied", static_cast<std::int64_t>(result.writes_applied - before.writes_applied)},
             {"superseded",
              static_cast<std::int64_t>(result.writes_superseded - before.writes_superseded)},
             {"failed", static_cast<std::int64_t>(result.writes_failed - before.writes_failed)}});
}

void SyncEngine::remember_capture_times(
    const std::vector<std::pair<std::int64_t, std::int64_t>>& captured_at_us) {
  const std::int64_t now_us = epoch_us_now();
  // Bounded: a record whose write-back never comes (its side paused or down for long, or a
  // change that needed none) is forgotten after an hour, and while the map is full new
  // records go unmeasured (their write-backs are counted, not timed).
  constexpr std::int64_t kMinute = std::int64_t{60} * 1000000;
  if (capture_time_us_.size() >= kCaptureTimesKept && now_us >= next_capture_prune_us_) {
    next_capture_prune_us_ = now_us + kMinute;
    for (auto it = capture_time_us_.begin(); it != capture_time_us_.end();)
      it = it->second < now_us - 60 * kMinute ? capture_time_us_.erase(it) : std::next(it);
  }
  // The oldest capture not yet written back is where the record's latency starts.
  for (const auto& [gid, at] : captured_at_us)
    if (capture_time_us_.size() < kCaptureTimesKept) capture_time_us_.emplace(gid, at);
}

void SyncEngine::tally_results(const Side& side, const QueuedWrites& sent,
                               const std::vector<WriteResult>& results, PassResult& result) {
  const std::int64_t now_us = epoch_us_now();
  for (std::size_t k = 0; k < sent.requests.size() && k < results.size(); ++k) {
    const WriteRequest& w = sent.requests[k];
    const WriteResult& r = results[k];
    const char* word = "applied";
    switch (r.status) {
      case WriteResult::Status::kApplied:
        word = "applied";
        break;
      case WriteResult::Status::kSuperseded:
        word = r.unreconciled_capture ? "waiting" : "superseded";
        break;
      case WriteResult::Status::kFailed:
        word = "failed";
        break;
      case WriteResult::Status::kVetoed:
        word = "vetoed";
        break;
      case WriteResult::Status::kUnwritable:
        word = "unwritable";
        break;
      case WriteResult::Status::kCancelled:
        word = "cancelled";
        break;
    }
    result.tally.add_writeback(side.name(), w.entity, word);
    // Capture-to-write-back: from the side's commit of the change (its capture time, on that
    // side's clock) to the first write-back of its record that another side took.
    if (r.status != WriteResult::Status::kApplied || w.cancel) continue;
    const auto at = capture_time_us_.find(sent.golden_ids[k]);
    if (at == capture_time_us_.end()) continue;
    result.tally.capture_to_writeback_seconds.push_back(
        static_cast<double>(std::max<std::int64_t>(0, now_us - at->second)) / 1e6);
    capture_time_us_.erase(at);
  }
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
    // steward) ends it, unless a side's rate limit was short of tokens: then the next pass
    // waits for them (within the same bound).
    if (r.writes_applied == 0 && r.writes_superseded == 0 && r.writes_cancelled == 0) {
      const auto paced = paced_until();
      if (!paced) break;
      std::this_thread::sleep_until(*paced);
    }
  }
  return total;
}

void SyncEngine::refresh_statistics(bool queue_only) {
  try {
    pqxx::nontransaction tx(control());
    const pqxx::result tables = tx.exec_params(
        "SELECT string_agg(c.oid::regclass::text, ', ') FROM pg_class c"
        " WHERE c.oid = ANY($1::regclass[]) AND pg_has_role(c.relowner, 'USAGE')",
        queue_only ? "{mdsync.outbox}"
                   : "{mdsync.golden,mdsync.crosswalk,mdsync.outbox,mdsync.match_key,"
                     "mdsync.conflict}");
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
