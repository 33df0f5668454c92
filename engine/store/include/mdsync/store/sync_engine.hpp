// The engine's work loop, one pass at a time: apply pending write-backs, reconcile one
// batch of captured changes from every side in one control transaction (decisions, audit,
// conflicts, outbox and capture bookkeeping commit together), then write back again.
// A side that fails is backed off on its own, and after consecutive failures its circuit
// opens (no attempt until a probe is due); a side with a write rate limit is paced. The others
// keep going.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "mdsync/config/config.hpp"
#include "mdsync/core/circuit_breaker.hpp"
#include "mdsync/core/ruleset.hpp"
#include "mdsync/core/token_bucket.hpp"
#include "mdsync/store/db_connection.hpp"
#include "mdsync/store/pass_tally.hpp"
#include "mdsync/store/side.hpp"

namespace pqxx {
class connection_base;
class transaction_base;
}  // namespace pqxx

namespace mdsync::store {

using Clock = std::chrono::steady_clock;

struct PassResult {
  int captured = 0;  // capture rows reconciled
  int conflicts_opened = 0;
  int writes_applied = 0;
  int writes_superseded = 0;
  int writes_failed = 0;
  int writes_vetoed = 0;     // of writes_failed: deletes a guard refused (a conflict holds them)
  int writes_cancelled = 0;  // withdrawn writes the side confirmed it never applied
  int steward_actions = 0;   // stewards' queued decisions applied or refused
  int side_errors = 0;       // sides that could not be reached or refused a batch
  int change_errors = 0;     // captured changes kept in capture_error instead of reconciled
  // Of the changes captured: rows not linked before that created a record, were linked to an
  // existing one by a match key, or opened a possible_duplicate conflict.
  int created = 0;
  int linked_by_match = 0;
  int possible_duplicates = 0;
  int held = 0;  // rows not linked that a conflict holds (unauthorized create, open conflict)
  // Write-backs held back because their row has captured changes still to reconcile: they
  // stay queued, and the change, once reconciled, plans the record again.
  int writes_waiting = 0;
  bool backlog = false;  // a side's capture batch came back full: more is captured
  PassTally tally;       // the same, per side and entity, for metrics
  // Records whose reconciled change goes to the other sides, with the change's capture time
  // (microseconds since the epoch, the side's clock): the start of its write-back latency.
  std::vector<std::pair<std::int64_t, std::int64_t>> captured_at_us;
  bool did_work() const {
    return captured > 0 || writes_applied > 0 || writes_superseded > 0 || writes_failed > 0 ||
           writes_cancelled > 0 || steward_actions > 0 || change_errors > 0;
  }
  PassResult& operator+=(const PassResult& o);
};

class FieldTransforms;
struct QueuedWrites;

class SyncEngine {
 public:
  // `seed` drives the backoff jitter; the service logs it so a run can be replayed.
  SyncEngine(const config::Config& config, std::uint64_t seed);
  ~SyncEngine();

  // Connects to the control store and takes the engine lease (engine_lease.hpp) if the engine
  // is not connected yet; throws LeaseHeld naming the holder, ConnectionError when the store
  // cannot be reached. Every pass starts with it, so an engine that lost its connection and
  // finds the lease taken on reconnecting does no work (a standby that keeps retrying).
  void connect_control();
  // Whether this engine holds its control store's lease now (connected, lease taken).
  bool holds_lease() const;

  // The engine's view of a side (bound to this store: marked writes, stamp checked); throws
  // for a name that is not a side.
  Side& side_store(const std::string& side);

  PassResult run_pass(Clock::time_point now);

  // `rules apply` stored a new ruleset version (the service heard it): the next pass loads
  // and checks it even if it has no captures to reconcile, so the log says at once whether
  // the new version is in force (`ruleset_loaded`) or refused (`ruleset_rejected`).
  void ruleset_applied() { ruleset_check_due_ = true; }

  // A steward's command committed in another session (the service heard it, or could not
  // listen): it may have queued write-backs whose ids are below where the engine's queue walks
  // start (queue_floor_), so the next pass walks each side's queue from its start.
  void rewalk_write_queues() { next_full_walk_ = {}; }

  // Runs passes until one does no work; returns the totals. Sides in backoff are retried
  // after their delay, up to `max_wait` in total.
  PassResult drain(std::chrono::milliseconds max_wait);

  // Write-backs queued for sides that are not paused (those a drain should have sent).
  std::int64_t pending_writebacks() { return queued_writebacks(false); }
  // Write-backs held for paused sides (`mdsync pause`).
  std::int64_t held_writebacks() { return queued_writebacks(true); }
  // Tells the sides with `notify` on whether the engine now waits for their NOTIFY (idle) or
  // not (busy: their commits then notify nobody and do not queue behind each other). A side
  // that cannot be reached is skipped: the poll interval covers it.
  void set_waiting(bool waiting);

  // Applies queued write-backs until none is left that a pass can deliver (no captures are
  // read): `sync --initial` settles what an earlier run queued, or applied without hearing of
  // it, before it reads the sides. Sides in backoff are skipped.
  PassResult deliver_writebacks();

  // `sync --initial`: runs `work` in one control transaction (lease held) with the engine's
  // ruleset and field transforms, and commits it when `work` returns true; otherwise it is
  // rolled back. Returns whether it committed.
  using ControlWork = std::function<bool(pqxx::transaction_base& tx, const core::Ruleset& rs,
                                         const FieldTransforms& transforms)>;
  bool in_control_transaction(const ControlWork& work);
  // After a bulk load (sync --initial): the planner's statistics of the record tables still
  // describe them as they were (the write-back queue's reads would plan as if it were empty).
  // Analyzed when the engine's role owns them (autovacuum gets to them otherwise).
  // `queue_only`: the write-back queue alone, once its writes are sent (statistics taken while
  // every write was pending made the planner read the queue by primary key, done rows and all).
  void refresh_statistics(bool queue_only = false);

  // Whether the side's circuit is closed: while it is not, nothing of the engine's (nor the
  // service's listener) touches the side.
  bool side_closed(const std::string& side) const;
  // When a side whose write rate limit held writes back has tokens again: the next pass is due
  // then (the engine is not idle). None when no side waits for tokens.
  std::optional<Clock::time_point> paced_until() const;
  // The earliest time after `after` when a side that failed is tried again (its backoff ends
  // or its circuit's probe is due), so a pass can run then rather than at the next poll.
  std::optional<Clock::time_point> next_retry(Clock::time_point after) const;

 private:
  struct SideHealth {
    SideHealth(const config::SideConfig& side, Clock::time_point now);
    core::CircuitBreaker breaker;      // counts consecutive failures; open: the side is left alone
    Clock::time_point next_attempt{};  // below the breaker's threshold: the backoff
    std::string last_error;
    bool recovery_recorded = false;  // side_state checked for a stale error by this process
    // max_writes_per_s: the bucket, whether the limit holds queued writes back, and when a
    // pass should look again at a side it skipped for want of tokens.
    std::optional<core::TokenBucket> pace;
    std::int64_t pace_chunk = 0;
    bool throttled = false;
    std::optional<Clock::time_point> paced_wake;
    // When the side is tried again after a failure: its circuit's probe, else its backoff.
    Clock::time_point retry_at() const;
  };

  pqxx::connection_base& control();
  const core::Ruleset& ruleset();
  SideHealth& health(const std::string& side) { return health_.at(side); }
  void side_failed(Side& side, const std::string& what, Clock::time_point now);
  void side_ok(Side& side);
  // Whether a capture read may touch the side now: closed and out of backoff, or its circuit's
  // probe is due (logged and recorded as half-open).
  bool may_read(Side& side, Clock::time_point now);
  // For `status` (another process), in mdsync.side_state: a side's circuit, whether its
  // rate limit throttles it, and both for every side when this engine takes the lease.
  void record_circuit(pqxx::transaction_base& tx, const std::string& side, Clock::time_point now);
  void record_throttled(const std::string& side, bool throttled);
  void record_runtime(pqxx::connection_base& conn);
  // How many of the side's queued writes may be sent now (batch_size without a limit); 0 (the
  // side is skipped) when its bucket holds less than a send worth making.
  int writes_allowed(SideHealth& h, Clock::time_point now);
  void set_throttled(const std::string& side, SideHealth& h, bool throttled);
  PassResult reconcile_captures(Clock::time_point now);
  // Decides the captured rows in one control transaction and commits it, recording which
  // capture rows it read in `read_seqs`. Buffered unless `row_by_row` (BatchReconciler).
  void decide_captured(const std::vector<CaptureBatch>& captured,
                       std::vector<std::vector<std::int64_t>>& read_seqs, const core::Ruleset& rs,
                       bool row_by_row, PassResult& result);
  // Write-back, a side at a time, in three stages: read the side's next queued writes, send
  // them (side.apply), take the side's answers into the control store.
  PassResult apply_writebacks(Clock::time_point now);
  // The results in request order; none when the side could not take the batch (contention:
  // tried again next pass; failure: the side backs off, each write's attempt is counted).
  std::optional<std::vector<WriteResult>> send_writes(Side& side,
                                                      const std::vector<WriteRequest>& requests,
                                                      Clock::time_point now, PassResult& result);
  void take_in_results(Side& side, const QueuedWrites& sent,
                       const std::vector<WriteResult>& results, PassResult& result);
  void prune_capture_done(Clock::time_point now);
  // Capture-to-write-back latency (PassTally): when each record's change was captured, until
  // a write-back of it is applied.
  void remember_capture_times(
      const std::vector<std::pair<std::int64_t, std::int64_t>>& captured_at_us);
  void tally_results(const Side& side, const QueuedWrites& sent,
                     const std::vector<WriteResult>& results, PassResult& result);
  std::int64_t queued_writebacks(bool for_paused_sides);
  // The pass's first read: which sides are paused (logging each change) and whether steward
  // actions wait (returned).
  bool read_pass_start();

  const config::Config& config_;
  PgConnection control_;
  std::vector<std::unique_ptr<Side>> sides_;
  std::unique_ptr<FieldTransforms> transforms_;  // reads captured values of mapped fields
  std::map<std::string, SideHealth> health_;     // every side, from the start
  std::set<std::string> unreached_;              // sides this pass left alone (circuit open)
  std::optional<core::Ruleset> ruleset_;
  std::mt19937_64 rng_;
  Clock::time_point next_prune_{};
  // Where each side's queue walk starts: below the first queued write the last walk met, rows
  // are done (their index entries dead until a vacuum, and costly to step over: 6 ms a walk at
  // 1,000 changes/s). A write committed late with a lower id (a steward's command in another
  // session) is met by a walk from the start: after that session's NOTIFY
  // (rewalk_write_queues) and at least once a second while passes run (next_full_walk_).
  std::map<std::string, std::int64_t> queue_floor_;
  Clock::time_point next_full_walk_{};
  bool ruleset_check_due_ = false;
  std::set<std::string> paused_;  // as of this pass
  static constexpr std::size_t kCaptureTimesKept = 100000;
  std::unordered_map<std::int64_t, std::int64_t> capture_time_us_;  // golden id -> captured at
  std::int64_t next_capture_prune_us_ = 0;
};

}  // namespace mdsync::store
