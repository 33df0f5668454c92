// Fault-test helpers on top of e2e_harness: runs of the real binary with crash points in
// the environment, a service process that is always reaped, private PostgreSQL clusters
// that can be stopped and started (a side or the control store going away), convergence
// and content snapshots that work across clusters, and a seeded workload that can be
// replayed on two scenarios to compare a crash-ridden run with a clean one.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "e2e_harness.hpp"

namespace mdsync::e2e::fault {

using Env = std::map<std::string, std::string>;

// Runs `mdsync args...` with the scenario's config and `env` added to the environment.
// exit_code is 128+N when the process was killed by signal N (137 for a crash point).
// A run that does not finish within `timeout_s` is killed and reported (exit_code -1), so
// an engine that livelocks fails the test instead of hanging it.
RunResult run(const Scenario& s, const std::vector<std::string>& args, const Env& env = {},
              int timeout_s = 120);
// Runs and expects exit code 0 (stderr is shown on failure); returns stdout.
std::string run_ok(const Scenario& s, const std::vector<std::string>& args);
// Runs `mdsync run --once` with MDSYNC_CRASH_AT=point (and MDSYNC_CRASH_AFTER=after).
RunResult run_crashing(const Scenario& s, const std::string& point, int after = 1);

// JSON-lines events named `event` in a log text (every event when `event` is empty).
std::vector<nlohmann::json> events(const std::string& log_text, const std::string& event = "");

// One-shot SQL against any libpq DSN (first value: "<null>" for NULL, "<none>" for no row).
std::string sql1(const std::string& dsn, const std::string& sql);
std::vector<std::string> sql_rows(const std::string& dsn, const std::string& sql);
void sql_exec(const std::string& dsn, const std::string& sql);
void sql_exec_params(const std::string& dsn, const std::string& sql,
                     const std::vector<std::optional<std::string>>& params);
// The error `sql` raises for `dsn`, or "" when it succeeds.
std::string error_of(const std::string& dsn, const std::string& sql);
// A role name as a quoted identifier (the names tests make need no escaping).
std::string q(const std::string& name);

// `mdsync service` in the background with its log in the scenario folder. The destructor
// kills it (SIGKILL) if it still runs, so a failing test leaves no process behind.
class Service {
 public:
  Service(const Scenario& s, const std::string& name, const Env& env = {},
          const std::vector<std::string>& extra_args = {});
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;
  // SIGTERM, then waits; returns the exit code (-1 if it had to be killed).
  int stop(int seconds = 60);
  bool running();
  std::string log() const;
  int pid() const { return pid_; }

 private:
  int pid_ = -1;
  std::string log_path_;
  bool reaped_ = false;
  int exit_code_ = -1;
};

// A private PostgreSQL cluster (initdb + pg_ctl from MDSYNC_TEST_PGBIN, run as
// MDSYNC_TEST_RUN_AS when set) with its socket in its own temp folder. stop() and start()
// take it away and bring it back; the destructor stops it (immediate) and removes it.
class PgCluster {
 public:
  explicit PgCluster(const std::string& name);
  ~PgCluster();
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;
  void start();
  void stop();  // pg_ctl stop -m fast
  bool is_up() const { return up_; }
  std::string dsn(const std::string& db) const;
  // CREATE DATABASE db, then runs `setup_sql` in it (may be empty).
  void create_database(const std::string& db, const std::string& setup_sql);

 private:
  void pg_ctl(const std::vector<std::string>& args, bool must_succeed);
  std::string base_, data_, bin_, run_as_;
  int port_ = 0;
  bool up_ = false;
};

// DSNs of the three databases of a scenario, possibly in different clusters.
struct Dbs {
  std::string erp, crm, control;
};
Dbs dbs_of(const Scenario& s);

// Every difference between a side row and its golden record (open conflicts exempt) and
// every golden record missing a side row. Empty means the system converged (guarantee 1).
std::vector<std::string> divergences(const Dbs& d);

// Content of a scenario without keys (they differ between two scenarios): sorted side
// rows, golden values, audit and conflict rows, outbox outcomes (but superseded attempts)
// and capture errors.
struct Snapshot {
  std::vector<std::string> erp_rows, crm_rows, golden, audit, conflicts, outbox, capture_errors;
};
Snapshot snapshot(const Dbs& d);
// Human-readable differences between two snapshots (empty when equal).
std::string compare(const Snapshot& expected, const Snapshot& actual);

// Checks of exactly-once bookkeeping inside one scenario: no audit row twice for the same
// change and unit; every write the sides recorded as applied is done in the outbox and vice
// versa; no capture rows or pending writes left.
std::vector<std::string> exactly_once_problems(const Dbs& d);

std::string lines(const std::vector<std::string>& v);

// The seed of a randomized test: $MDSYNC_FAULT_SEED, else random; printed and recorded, so a
// failing run can be replayed.
std::uint32_t test_seed();

// A seeded workload of customer changes on both sides, phase by phase. Records are
// logical; each scenario keeps its own map to row keys (rows the engine creates get keys
// of the engine's choosing, found through the crosswalk after each phase converges).
struct Op {
  enum Kind { kInsert, kUpdate, kDelete } kind = kUpdate;
  char side = 'e';                                           // 'e' erp, 'c' crm
  int record = 0;                                            // logical record
  std::map<std::string, std::optional<std::string>> values;  // field -> value
};

class Workload {
 public:
  explicit Workload(std::uint32_t seed) : rng_(seed) {}
  // Generates the next phase: `n` changes, about `insert_share` of them creates,
  // `deletes` deletes (ERP deletes are authoritative; CRM deletes are restored).
  std::vector<Op> phase(int n, double insert_share, int deletes);
  int records() const { return next_record_; }

 private:
  std::string pick_text(const char* prefix);
  std::mt19937 rng_;
  int next_record_ = 0;
  std::vector<int> alive_;
};

// Applies a phase's ops to one scenario, each in its own transaction.
class Applier {
 public:
  explicit Applier(const Dbs& d) : d_(d) {}
  void apply(const std::vector<Op>& ops);
  // After convergence: learns the keys rows got on the other side from the crosswalk.
  void learn_keys();

 private:
  Dbs d_;
  std::map<int, std::string> erp_key_, crm_key_;
};

}  // namespace mdsync::e2e::fault
