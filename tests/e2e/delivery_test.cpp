// Fault tests of delivery (DESIGN.md guarantees 3-6): gap-safe capture, exactly once in
// effect under kill -9 at every crash point, redelivery, no lost update, no echo, order,
// and bad rows that must not stop good ones. Each test fails when its guarantee breaks.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <random>
#include <thread>

#include "e2e_harness.hpp"
#include "fault_harness.hpp"

namespace mdsync::e2e {
namespace {

using nlohmann::json;
using namespace fault;

// The seed of a randomized test: MDSYNC_FAULT_SEED when set (to replay a failure), else
// fresh. Printed and recorded in the test's XML properties.
std::string current_test_name() {
  return ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

class DeliveryTest : public ::testing::Test {
 protected:
  DeliveryTest() : s_(current_test_name()) {}
  void SetUp() override {
    s_.write_config();
    run_ok(s_, {"init"});
  }
  Dbs dbs() const { return dbs_of(s_); }
  Scenario s_;
};

// ---------------------------------------------------------------------------------------
// Guarantee 3, gap-safe capture: a change whose transaction commits after a later-numbered
// one is not skipped, and a rolled-back transaction's gap stalls nothing.

TEST_F(DeliveryTest, LateCommittingTransactionIsNotSkipped) {
  s_.erp_exec("INSERT INTO erp.customers (cust_name) VALUES ('Base Ltd')");
  run_ok(s_, {"run", "--once"});
  ASSERT_EQ(s_.crm("SELECT \"accountName\" FROM crm.accounts"), "Base Ltd");

  pqxx::connection c1(s_.dsn(s_.erp_db())), c2(s_.dsn(s_.erp_db()));
  pqxx::work t1(c1);
  t1.exec("UPDATE erp.customers SET cust_name = 'Late Ltd' WHERE cust_name = 'Base Ltd'");
  const auto late_seq = t1.exec("SELECT max(seq) FROM mdsync.capture")[0][0].as<std::int64_t>();
  {
    pqxx::work t2(c2);
    t2.exec("INSERT INTO erp.customers (cust_name) VALUES ('Early Ltd')");
    t2.commit();
  }
  const auto early_seq = std::stoll(s_.erp("SELECT max(seq) FROM mdsync.capture"));
  ASSERT_LT(late_seq, early_seq) << "the open transaction must hold the lower capture number";

  run_ok(s_, {"run", "--once"});
  EXPECT_EQ(s_.crm("SELECT count(*) FROM crm.accounts WHERE \"accountName\" = 'Early Ltd'"), "1");
  EXPECT_EQ(s_.crm("SELECT count(*) FROM crm.accounts WHERE \"accountName\" = 'Base Ltd'"), "1");

  t1.commit();
  run_ok(s_, {"run", "--once"});
  EXPECT_EQ(s_.crm("SELECT count(*) FROM crm.accounts WHERE \"accountName\" = 'Late Ltd'"), "1")
      << "the change of the late-committing transaction (erp#" << late_seq << ") was skipped";
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.audit WHERE source = 'erp#" +
                       std::to_string(late_seq) + "' AND unit = 'name'"),
            "1");
  EXPECT_EQ(s_.erp("SELECT count(*) FROM mdsync.capture"), "0");

  // A rolled-back transaction leaves a hole in the sequence; later changes still flow.
  {
    pqxx::work ghost(c1);
    ghost.exec("INSERT INTO erp.customers (cust_name) VALUES ('Ghost Ltd')");
    ghost.abort();
  }
  s_.erp_exec("INSERT INTO erp.customers (cust_name) VALUES ('After Ghost Ltd')");
  run_ok(s_, {"run", "--once"});
  EXPECT_EQ(s_.crm("SELECT count(*) FROM crm.accounts WHERE \"accountName\" = 'After Ghost Ltd'"),
            "1");
  EXPECT_EQ(s_.crm("SELECT count(*) FROM crm.accounts WHERE \"accountName\" = 'Ghost Ltd'"), "0");
  EXPECT_EQ(lines(divergences(dbs())), "");
}

// The same through the running service, which keeps its state between passes: a change
// that commits late is still picked up.
TEST_F(DeliveryTest, ServicePicksUpLateCommitAfterLaterChangesWereReconciled) {
  Service svc(s_, "service");
  pqxx::connection c1(s_.dsn(s_.erp_db()));
  pqxx::work t1(c1);
  t1.exec("INSERT INTO erp.customers (cust_name) VALUES ('Slow Insert')");
  s_.erp_exec("INSERT INTO erp.customers (cust_name) VALUES ('Fast Insert')");
  ASSERT_EQ(wait_until([&] { return s_.crm("SELECT count(*) FROM crm.accounts"); }, "1", 60), "1")
      << svc.log();
  // Several more passes with newer changes before the slow transaction commits.
  for (int i = 0; i < 3; ++i) {
    s_.erp_exec("UPDATE erp.customers SET credit_lim = " + std::to_string(100 + i) +
                " WHERE cust_name = 'Fast Insert'");
    ASSERT_EQ(wait_until(
                  [&] {
                    return s_.crm(
                        "SELECT credit_limit::int FROM crm.accounts"
                        " WHERE \"accountName\" = 'Fast Insert'");
                  },
                  std::to_string(100 + i), 60),
              std::to_string(100 + i))
        << svc.log();
  }
  t1.commit();
  EXPECT_EQ(wait_until([&] { return s_.crm("SELECT count(*) FROM crm.accounts"); }, "2", 60), "2")
      << "the late commit was never reconciled\n"
      << svc.log();
  EXPECT_EQ(svc.stop(), 0) << svc.log();
  EXPECT_EQ(lines(divergences(dbs())), "");
}

// ---------------------------------------------------------------------------------------
// Guarantee 3, exactly once in effect across kill -9 at any point. A seeded workload runs
// phase by phase on two scenarios: one syncs cleanly after each phase, the other is killed
// at every crash point (several times, and mid-transaction after N writes) before its clean
// run. Both must end with the same content everywhere, and no change may count twice.

struct CrashStep {
  std::string point;
  int after;
};

// Every crash point the engine documents (crash_points.hpp).
const char* const kCrashPoints[] = {"batch.before_commit", "batch.after_commit",
                                    "writeback.mid_side", "writeback.after_side_commit",
                                    "writeback.before_control_commit"};

class CrashCounter {
 public:
  // Runs one crashing pass; returns true when the process died at the point.
  bool run(const Scenario& s, const CrashStep& step) {
    const RunResult r = run_crashing(s, step.point, step.after);
    if (r.exit_code == 137) {
      const auto hit = events(r.err, "crash_point");
      EXPECT_EQ(hit.size(), 1u) << r.err;
      if (!hit.empty()) {
        EXPECT_EQ(hit[0]["point"], step.point);
      }
      ++fired_[step.point];
      return true;
    }
    EXPECT_EQ(r.exit_code, 0) << "crash point " << step.point << " after " << step.after
                              << ": unexpected exit\n"
                              << r.err;
    return false;
  }
  void expect_every_point_fired() const {
    for (const char* p : kCrashPoints)
      EXPECT_GT(fired_.count(p) ? fired_.at(p) : 0, 0)
          << "crash point " << p
          << " was never reached with work pending, so this test did not exercise it";
  }
  void print() const {
    for (const auto& [p, n] : fired_) std::cout << "[crash] " << p << " fired " << n << "x\n";
  }

 private:
  std::map<std::string, int> fired_;
};

void expect_same_outcome(const Scenario& reference, const Scenario& crashed) {
  const Dbs ref = dbs_of(reference), got = dbs_of(crashed);
  EXPECT_EQ(lines(divergences(ref)), "") << "the crash-free run did not converge";
  EXPECT_EQ(lines(divergences(got)), "") << "the crash-ridden run did not converge";
  EXPECT_EQ(lines(exactly_once_problems(ref)), "");
  EXPECT_EQ(lines(exactly_once_problems(got)), "");
  const Snapshot a = snapshot(ref), b = snapshot(got);
  EXPECT_EQ(compare(a, b), "");
  EXPECT_EQ(a.audit.size(), b.audit.size());
  std::cout << "[outcome] " << a.erp_rows.size() << " erp rows, " << a.crm_rows.size()
            << " crm rows, " << a.golden.size() << " golden, " << a.audit.size() << " audit, "
            << a.conflicts.size() << " conflicts\n";
}

TEST(ExactlyOnceTest, EveryCrashPointInTurnMatchesCrashFreeRun) {
  const std::uint32_t seed = test_seed();
  Scenario reference("exactly_once_ref"), crashed("exactly_once_kill");
  for (Scenario* s : {&reference, &crashed}) {
    s->write_config();
    run_ok(*s, {"init"});
  }
  Applier ref_apply(dbs_of(reference)), crash_apply(dbs_of(crashed));
  Workload workload(seed);
  std::mt19937 rng(seed ^ 0x5eedu);
  CrashCounter counter;
  const std::vector<CrashStep> steps = {
      {"batch.before_commit", 1},         {"batch.after_commit", 1},
      {"writeback.mid_side", 1},          {"writeback.mid_side", 0},  // 0: random N > 1
      {"writeback.after_side_commit", 1}, {"writeback.before_control_commit", 1}};
  int total_ops = 0;
  const int kPhases = 6;
  for (int phase = 0; phase < kPhases; ++phase) {
    const std::vector<Op> ops =
        phase == 0 ? workload.phase(400, 1.0, 0) : workload.phase(450, 0.1, phase >= 4 ? 3 : 0);
    total_ops += static_cast<int>(ops.size());
    ref_apply.apply(ops);
    run_ok(reference, {"run", "--once"});
    ref_apply.learn_keys();

    crash_apply.apply(ops);
    // Each phase starts the round at a different point, so every point meets fresh work.
    for (std::size_t k = 0; k < steps.size(); ++k) {
      CrashStep step = steps[(k + static_cast<std::size_t>(phase)) % steps.size()];
      if (step.after == 0) step.after = 2 + static_cast<int>(rng() % 40);
      for (int rep = 0; rep < 2; ++rep)
        if (!counter.run(crashed, step)) break;
      if (::testing::Test::HasFailure()) break;
    }
    run_ok(crashed, {"run", "--once"});
    crash_apply.learn_keys();
    if (::testing::Test::HasFailure()) break;
  }
  std::cout << "[workload] " << total_ops << " changes in " << kPhases << " phases\n";
  counter.print();
  expect_same_outcome(reference, crashed);
  counter.expect_every_point_fired();
}

TEST(ExactlyOnceTest, RandomCrashesMatchCrashFreeRun) {
  const std::uint32_t seed = test_seed();
  Scenario reference("random_crash_ref"), crashed("random_crash_kill");
  for (Scenario* s : {&reference, &crashed}) {
    s->write_config();
    run_ok(*s, {"init"});
  }
  Applier ref_apply(dbs_of(reference)), crash_apply(dbs_of(crashed));
  Workload workload(seed);
  std::mt19937 rng(seed ^ 0xc0ffeeu);
  CrashCounter counter;
  int crashes = 0;
  for (int round = 0; round < 14; ++round) {
    const int n = 60 + static_cast<int>(rng() % 80);
    const std::vector<Op> ops =
        round == 0 ? workload.phase(150, 1.0, 0) : workload.phase(n, 0.15, rng() % 3 == 0 ? 1 : 0);
    ref_apply.apply(ops);
    run_ok(reference, {"run", "--once"});
    ref_apply.learn_keys();

    crash_apply.apply(ops);
    // Random points and counts until a run gets through without reaching its point.
    for (int i = 0; i < 5; ++i) {
      CrashStep step{kCrashPoints[rng() % std::size(kCrashPoints)], 1};
      if (step.point == "writeback.mid_side") step.after = 1 + static_cast<int>(rng() % 60);
      if (step.point == "writeback.after_side_commit") step.after = 1 + static_cast<int>(rng() % 2);
      const bool killed = counter.run(crashed, step);
      std::cout << "[crash] round " << round << ": " << step.point << " after " << step.after
                << (killed ? ": killed" : ": not reached") << "\n";
      if (!killed || ::testing::Test::HasFailure()) break;
      ++crashes;
    }
    run_ok(crashed, {"run", "--once"});
    crash_apply.learn_keys();
    if (::testing::Test::HasFailure()) break;
  }
  counter.print();
  EXPECT_GE(crashes, 10) << "too few kills to mean anything";
  expect_same_outcome(reference, crashed);
}

// Every documented crash point is reached by a pass with work to do (a point that is
// never reached would make the kill -9 tests prove nothing about it).
TEST_F(DeliveryTest, EveryDocumentedCrashPointIsReached) {
  for (const char* point : kCrashPoints) {
    s_.erp_exec("INSERT INTO erp.customers (cust_name) VALUES ('Reach " + std::string(point) +
                "')");
    const RunResult r = run_crashing(s_, point);
    EXPECT_EQ(r.exit_code, 137) << "crash point " << point << " was not reached\n" << r.err;
    EXPECT_EQ(events(r.err, "crash_point").size(), r.exit_code == 137 ? 1u : 0u) << r.err;
    run_ok(s_, {"run", "--once"});
  }
  EXPECT_EQ(s_.crm("SELECT count(*) FROM crm.accounts"), std::to_string(std::size(kCrashPoints)));
  EXPECT_EQ(lines(exactly_once_problems(dbs())), "");
}

// ---------------------------------------------------------------------------------------
// Guarantee 3, redelivery: a capture row delivered again (same side, epoch and sequence)
// changes nothing, even when its value is stale by now.

TEST_F(DeliveryTest, RedeliveredCaptureRowsChangeNothing) {
  s_.erp_exec("INSERT INTO erp.customers (cust_name, credit_lim) VALUES ('Redeliver Co', 10)");
  run_ok(s_, {"run", "--once"});
  const std::string copy_rows =
      "INSERT INTO public.saved SELECT * FROM mdsync.capture ORDER BY seq";
  s_.erp_exec("CREATE TABLE public.saved AS SELECT * FROM mdsync.capture WITH NO DATA");

  // Row 1: read before the engine saw it.
  s_.erp_exec("UPDATE erp.customers SET cust_name = 'Redeliver B', credit_lim = 20");
  s_.erp_exec(copy_rows);
  run_ok(s_, {"run", "--once"});
  // Row 2: left on the side by a crash after the control commit, then reconciled.
  s_.erp_exec("UPDATE erp.customers SET cust_name = 'Redeliver C', credit_lim = 30");
  ASSERT_EQ(run_crashing(s_, "batch.after_commit").exit_code, 137);
  ASSERT_EQ(s_.erp("SELECT count(*) FROM mdsync.capture"), "1")
      << "the crash should leave the reconciled row on the side";
  s_.erp_exec("INSERT INTO public.saved SELECT * FROM mdsync.capture");
  run_ok(s_, {"run", "--once"});
  ASSERT_EQ(s_.erp("SELECT count(*) FROM mdsync.capture"), "0");
  // The current state moves on once more.
  s_.erp_exec("UPDATE erp.customers SET cust_name = 'Redeliver D', credit_lim = 40");
  run_ok(s_, {"run", "--once"});
  ASSERT_EQ(s_.crm("SELECT \"accountName\" || ' ' || credit_limit FROM crm.accounts"),
            "Redeliver D 40.0000");

  const std::string audit = s_.control("SELECT count(*) FROM mdsync.audit");
  const std::string outbox = s_.control("SELECT count(*) FROM mdsync.outbox");
  const std::string golden = s_.control("SELECT \"values\"::text FROM mdsync.golden");
  ASSERT_EQ(s_.erp("SELECT count(*) FROM public.saved"), "2");
  s_.erp_exec("INSERT INTO mdsync.capture SELECT * FROM public.saved");
  const RunResult again = run(s_, {"run", "--once", "--log-level", "info"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.audit"), audit);
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.outbox"), outbox);
  EXPECT_EQ(s_.control("SELECT \"values\"::text FROM mdsync.golden"), golden);
  EXPECT_EQ(s_.erp("SELECT cust_name || ' ' || credit_lim FROM erp.customers"),
            "Redeliver D 40.00");
  EXPECT_EQ(s_.crm("SELECT \"accountName\" || ' ' || credit_limit FROM crm.accounts"),
            "Redeliver D 40.0000");
  EXPECT_EQ(s_.erp("SELECT count(*) FROM mdsync.capture"), "0")
      << "redelivered rows must be removed, not left to be read forever";
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.capture_error"), "0");
}

// ---------------------------------------------------------------------------------------
// Guarantee 4, no lost update: a write-back queued but not yet applied never overwrites a
// value a user wrote since; the user's value is captured and decided like any change.

class NoLostUpdateTest : public ::testing::TestWithParam<const char*> {};

TEST_P(NoLostUpdateTest, UserValueWrittenWhileWriteBackIsQueuedIsNotOverwritten) {
  std::string name = std::string("no_lost_update_") + GetParam();
  Scenario s(name);
  s.write_config();
  run_ok(s, {"init"});
  s.erp_exec(
      "INSERT INTO erp.customers (account_num, cust_name, credit_lim) VALUES"
      " (1, 'Alpha', 100), (2, 'Beta', 200), (3, 'Gamma', 300)");
  run_ok(s, {"run", "--once"});
  s.crm_exec("UPDATE crm.accounts SET phone = '+1 555 0003' WHERE \"accountName\" = 'Gamma'");
  run_ok(s, {"run", "--once"});
  ASSERT_EQ(s.erp("SELECT phone_no FROM erp.customers WHERE account_num = 3"), "+1 555 0003");

  // Changes whose write-backs get queued: to the CRM (name: shared; credit limit: ERP's) and
  // to the ERP (phone: CRM's).
  s.erp_exec("UPDATE erp.customers SET cust_name = 'Alpha ERP' WHERE account_num = 1");
  s.erp_exec("UPDATE erp.customers SET credit_lim = 250 WHERE account_num = 2");
  s.crm_exec("UPDATE crm.accounts SET phone = '+1 555 3333' WHERE \"accountName\" = 'Gamma'");
  const RunResult crash = run_crashing(s, GetParam());
  ASSERT_EQ(crash.exit_code, 137) << crash.err;
  ASSERT_NE(s.control("SELECT count(*) FROM mdsync.outbox WHERE status = 'pending'"), "0")
      << "the crash should leave write-backs queued";
  ASSERT_EQ(s.crm("SELECT count(*) FROM crm.accounts WHERE \"accountName\" = 'Alpha'"), "1");

  // Users write the same fields on the sides the queued writes are about to change.
  s.crm_exec(
      "UPDATE crm.accounts SET \"accountName\" = 'Alpha CRM' WHERE \"accountName\" = 'Alpha'");
  s.crm_exec("UPDATE crm.accounts SET credit_limit = 777 WHERE \"accountName\" = 'Beta'");
  s.erp_exec("UPDATE erp.customers SET phone_no = '+32 9 999' WHERE account_num = 3");
  const std::string crm_seq_alpha =
      s.crm("SELECT seq FROM mdsync.capture WHERE changed ? 'name' ORDER BY seq DESC LIMIT 1");
  const std::string crm_seq_beta = s.crm(
      "SELECT seq FROM mdsync.capture WHERE changed ? 'credit_limit' ORDER BY seq DESC LIMIT 1");
  const std::string erp_seq_gamma =
      s.erp("SELECT seq FROM mdsync.capture WHERE changed ? 'phone' ORDER BY seq DESC LIMIT 1");

  // A pass that applies the queued writes and dies before reconciling what users wrote:
  // the queued writes must not have overwritten anything.
  const RunResult writes_only = run_crashing(s, "batch.before_commit");
  ASSERT_EQ(writes_only.exit_code, 137) << writes_only.err;
  EXPECT_EQ(s.crm("SELECT count(*) FROM crm.accounts WHERE \"accountName\" = 'Alpha CRM'"), "1")
      << "a queued write-back overwrote the user's name";
  EXPECT_EQ(s.crm("SELECT count(*) FROM crm.accounts WHERE credit_limit = 777"), "1")
      << "a queued write-back overwrote the user's credit limit";
  EXPECT_EQ(s.erp("SELECT phone_no FROM erp.customers WHERE account_num = 3"), "+32 9 999")
      << "a queued write-back overwrote the user's phone";
  // They wait for the users' changes, captured and not reconciled yet: still queued (each is
  // withdrawn or sent once those changes are reconciled), none applied, none planned again.
  EXPECT_GE(std::stoi(s.control("SELECT count(*) FROM mdsync.outbox WHERE status = 'pending'")), 3);
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.outbox WHERE status = 'superseded'"), "0");

  run_ok(s, {"run", "--once"});
  // name is shared, last writer wins: the CRM user wrote last, so that value wins everywhere.
  EXPECT_EQ(s.erp("SELECT cust_name FROM erp.customers WHERE account_num = 1"), "Alpha CRM");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.audit WHERE source = 'crm#" + crm_seq_alpha +
                      "' AND unit = 'name' AND new_value->>'name' = 'Alpha CRM'"),
            "1");
  // credit_limit is the ERP's: the CRM user's value was seen (audited as proposed) and then
  // reverted by a write that was conditional on exactly that value.
  EXPECT_EQ(s.crm("SELECT credit_limit FROM crm.accounts WHERE \"accountName\" = 'Beta'"),
            "250.0000");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.audit WHERE source = 'crm#" + crm_seq_beta +
                      "' AND unit = 'credit_limit' AND decision = 'revert'"
                      " AND proposed->>'credit_limit' = '777'"),
            "1");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.outbox WHERE side = 'crm' AND status = 'done'"
                      " AND \"values\"->>'credit_limit' = '250'"
                      " AND expected->>'credit_limit' = '777'"),
            "1");
  // phone is the CRM's: the ERP user's write was seen and reverted the same way.
  EXPECT_EQ(s.erp("SELECT phone_no FROM erp.customers WHERE account_num = 3"), "+1 555 3333");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.audit WHERE source = 'erp#" + erp_seq_gamma +
                      "' AND unit = 'phone' AND decision = 'revert'"
                      " AND proposed->>'phone' = '+32 9 999'"),
            "1");
  EXPECT_EQ(lines(divergences(dbs_of(s))), "");
  EXPECT_EQ(lines(exactly_once_problems(dbs_of(s))), "");
}

INSTANTIATE_TEST_SUITE_P(Crash, NoLostUpdateTest,
                         ::testing::Values("batch.after_commit", "writeback.mid_side"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '.') c = '_';
                           return n;
                         });

// ---------------------------------------------------------------------------------------
// Batched write-back (guarantees 3 and 4 at batch scale): a pass's writes to one table
// arrive as one statement per kind, still conditional on the base and still carrying their
// idempotency keys; a row the side refuses fails alone, a row the user changed is superseded
// alone, and a retried batch writes nothing twice.

// Logs every INSERT, UPDATE and DELETE statement on `table` with the number of rows it
// changed (statement triggers with transition tables), so a test sees how write-backs arrive.
void log_statements(const std::string& dsn, const std::string& table) {
  std::string sql = "CREATE TABLE public.stmt_log (id serial PRIMARY KEY, op text, n bigint);";
  for (const auto& [op, rows] : {std::pair<std::string, std::string>{"insert", "NEW"},
                                 {"update", "NEW"},
                                 {"delete", "OLD"}}) {
    sql += "CREATE FUNCTION public.log_" + op +
           "() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
           " INSERT INTO public.stmt_log (op, n) SELECT '" +
           op + "', count(*) FROM changed_rows; RETURN NULL; END $$;";
    sql += "CREATE TRIGGER zz_log_" + op + " AFTER " + op + " ON " + table + " REFERENCING " +
           rows + " TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION public.log_" + op +
           "();";
  }
  sql_exec(dsn, sql);
}

// The logged statements that changed rows, as "op n", oldest first.
std::vector<std::string> logged_statements(const std::string& dsn) {
  return sql_rows(dsn, "SELECT op || ' ' || n FROM public.stmt_log WHERE n > 0 ORDER BY id");
}

TEST(BatchedWriteBackTest, EachKindOfWriteToATableIsOneStatementPerPass) {
  Scenario s("batched_write_back");
  std::string rules = default_rules();
  const std::string deactivate = "\"deactivate:active\"";
  rules.replace(rules.find(deactivate), deactivate.size(), "\"delete\"");
  s.write_config(rules);
  run_ok(s, {"init"});
  const Dbs d = dbs_of(s);
  log_statements(d.crm, "crm.accounts");
  log_statements(d.erp, "erp.customers");

  // Creates both ways: each side's inserts arrive in one statement, and every side row is
  // linked to the row it was created for (a key mapped to the wrong request would diverge).
  s.erp_exec(
      "INSERT INTO erp.customers (cust_name, credit_lim, segment_code)"
      " SELECT 'Batch ' || i, i, CASE WHEN i % 3 = 0 THEN NULL ELSE 'smb' END"
      " FROM generate_series(1, 40) i");
  s.crm_exec(
      "INSERT INTO crm.accounts (\"accountName\", phone, credit_limit)"
      " SELECT 'Crm batch ' || i, '+2 ' || i, 0 FROM generate_series(1, 10) i");
  run_ok(s, {"run", "--once"});
  // Each log: the users' insert, then the engine's.
  EXPECT_EQ(lines(logged_statements(d.crm)), "insert 10\ninsert 40\n");
  EXPECT_EQ(lines(logged_statements(d.erp)), "insert 40\ninsert 10\n");
  EXPECT_EQ(lines(divergences(d)), "");
  EXPECT_EQ(s.crm("SELECT count(*) FROM crm.accounts WHERE \"accountName\" LIKE 'Batch %'"
                  " AND segment IS NULL"),
            "13")
      << "NULLs must arrive as NULL, not as text";

  // Updates of every row: one conditional UPDATE on the CRM.
  sql_exec(d.crm, "TRUNCATE public.stmt_log");
  s.erp_exec("UPDATE erp.customers SET credit_lim = credit_lim + 1000");
  run_ok(s, {"run", "--once"});
  EXPECT_EQ(lines(logged_statements(d.crm)), "update 50\n");

  // A batch retried after the side committed it (its control update lost) finds its
  // idempotency keys and writes nothing again.
  sql_exec(d.crm, "TRUNCATE public.stmt_log");
  s.erp_exec("UPDATE erp.customers SET credit_lim = credit_lim + 1000");
  ASSERT_EQ(run_crashing(s, "writeback.after_side_commit").exit_code, 137);
  EXPECT_EQ(lines(logged_statements(d.crm)), "update 50\n");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.outbox WHERE status = 'pending'"), "50");
  run_ok(s, {"run", "--once"});
  EXPECT_EQ(lines(logged_statements(d.crm)), "update 50\n") << "a retried batch wrote again";
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.outbox WHERE status = 'pending'"), "0");

  // The delete owner's deletes: one DELETE on the CRM.
  sql_exec(d.crm, "TRUNCATE public.stmt_log");
  s.erp_exec("DELETE FROM erp.customers WHERE cust_name LIKE 'Batch _'");
  run_ok(s, {"run", "--once"});
  EXPECT_EQ(lines(logged_statements(d.crm)), "delete 9\n");
  EXPECT_EQ(s.crm("SELECT count(*) FROM crm.accounts"), "41");
  EXPECT_EQ(lines(divergences(d)), "");
  EXPECT_EQ(lines(exactly_once_problems(d)), "");
}

// A batched insert takes the side's generated keys in the order RETURNING gives them and
// checks each returned row against its request; when a side rewrites what it is given (here a
// trigger appends to a mapped column), the check fails and the chunk is inserted row by row,
// so every key still goes to the record it belongs to.
TEST(BatchedWriteBackTest, InsertsASideRewritesAreInsertedRowByRowAndLinkedRight) {
  Scenario s("batched_insert_rewritten");
  s.write_config();
  run_ok(s, {"init"});
  const Dbs d = dbs_of(s);
  s.crm_exec(
      "CREATE FUNCTION public.tag_phone() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
      " NEW.phone := coalesce(NEW.phone, '') || ' (crm)'; RETURN NEW; END $$;"
      "CREATE TRIGGER tag_phone BEFORE INSERT ON crm.accounts FOR EACH ROW"
      " EXECUTE FUNCTION public.tag_phone()");
  log_statements(d.crm, "crm.accounts");
  s.erp_exec(
      "INSERT INTO erp.customers (cust_name, credit_lim)"
      " SELECT 'Rewrite ' || i, i FROM generate_series(1, 12) i");
  run_ok(s, {"run", "--once"});
  // The batched attempt was rolled back with its log row; then one insert per row.
  EXPECT_EQ(lines(logged_statements(d.crm)), lines(std::vector<std::string>(12, "insert 1")));
  // Every ERP row is linked to the CRM row created for it.
  pqxx::connection ctl(d.control);
  pqxx::nontransaction q(ctl);
  int checked = 0;
  for (const auto& row :
       q.exec("SELECT e.row_key, c.row_key FROM mdsync.crosswalk e JOIN mdsync.crosswalk c"
              " ON c.golden_id = e.golden_id AND c.side = 'crm' WHERE e.side = 'erp'")) {
    const std::string erp_name =
        sql1(d.erp,
             "SELECT cust_name FROM erp.customers WHERE account_num = " + row[0].as<std::string>());
    const std::string crm_name =
        sql1(d.crm, "SELECT \"accountName\" FROM crm.accounts WHERE id = '" +
                        row[1].as<std::string>() + "'");
    EXPECT_EQ(crm_name, erp_name);
    ++checked;
  }
  EXPECT_EQ(checked, 12);
}

TEST(BatchedWriteBackTest, RowTheSideRefusesFailsAloneAndTheRestOfTheBatchApplies) {
  Scenario s("batched_refused_row");
  s.write_config();
  run_ok(s, {"init"});
  s.erp_exec(
      "INSERT INTO erp.customers (cust_name, credit_lim)"
      " SELECT 'Refuse ' || i, i FROM generate_series(1, 20) i");
  run_ok(s, {"run", "--once"});
  s.crm_exec(
      "ALTER TABLE crm.accounts ADD CONSTRAINT small_credit CHECK (credit_limit < 1000000)"
      " NOT VALID");

  s.erp_exec("UPDATE erp.customers SET credit_lim = credit_lim + 100");
  s.erp_exec("UPDATE erp.customers SET credit_lim = 2000000 WHERE cust_name = 'Refuse 7'");
  const RunResult r = run(s, {"run", "--once"});
  // The refused write-back is an open error item: the drain says so and exits 1.
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("mdsync: run --once: 1 write-back failed"), std::string::npos) << r.err;
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.outbox WHERE side = 'crm' AND status = 'failed'"
                      " AND last_error LIKE '%small_credit%'"),
            "1");
  EXPECT_EQ(events(r.err, "writeback_failed").size(), 1u) << r.err;
  EXPECT_EQ(s.crm("SELECT count(*) FROM crm.accounts a WHERE credit_limit > 100"), "19")
      << "the rows in the refused row's batch must still be written";
  EXPECT_EQ(s.crm("SELECT credit_limit FROM crm.accounts WHERE \"accountName\" = 'Refuse 7'"),
            "7.0000");
}

TEST(BatchedWriteBackTest, RowsUsersChangedAreSupersededAloneInABatch) {
  Scenario s("batched_superseded");
  s.write_config();
  run_ok(s, {"init"});
  s.erp_exec(
      "INSERT INTO erp.customers (cust_name, credit_lim)"
      " SELECT 'Super ' || i, i FROM generate_series(1, 20) i");
  run_ok(s, {"run", "--once"});

  // Writes to the CRM are queued (the crash leaves them pending); then CRM users change two
  // of those rows before the writes are applied.
  s.erp_exec("UPDATE erp.customers SET credit_lim = credit_lim + 100");
  ASSERT_EQ(run_crashing(s, "batch.after_commit").exit_code, 137);
  ASSERT_EQ(
      s.control("SELECT count(*) FROM mdsync.outbox WHERE side = 'crm' AND status = 'pending'"),
      "20");
  s.crm_exec(
      "UPDATE crm.accounts SET credit_limit = 5 WHERE \"accountName\" IN ('Super 3', 'Super 4')");
  const Dbs d = dbs_of(s);
  log_statements(d.crm, "crm.accounts");
  run_ok(s, {"run", "--once"});

  // The batched conditional update wrote the 18 rows that still held their base and left
  // the two users' values alone; those were reconciled (a foreign write to the ERP's field,
  // reverted) and then written conditionally on the users' values.
  const auto statements = logged_statements(d.crm);
  ASSERT_FALSE(statements.empty());
  EXPECT_EQ(statements.front(), "update 18") << lines(statements);
  EXPECT_GE(std::stoi(s.control("SELECT count(*) FROM mdsync.outbox WHERE side = 'crm'"
                                " AND status = 'superseded'")),
            2);
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.audit WHERE unit = 'credit_limit'"
                      " AND decision = 'revert' AND proposed->>'credit_limit' = '5'"),
            "2");
  EXPECT_EQ(s.crm("SELECT count(*) FROM crm.accounts WHERE credit_limit > 100"), "20");
  EXPECT_EQ(lines(divergences(d)), "");
  EXPECT_EQ(lines(exactly_once_problems(d)), "");
}

// ---------------------------------------------------------------------------------------
// Guarantee 5, no echo: the engine's writes are never captured, and a service over a
// quiet system writes nothing anywhere.

// Rows written to the user tables of the database `db_dsn` names (its own tables, the
// mdsync schema's included). Catalog writes are left out on purpose: autovacuum and
// autoanalyze update pg_statistic and pg_class on their own schedule, which is not the
// engine's doing, and counting them made this test flaky.
// Tuples written in the database, but the side's wake flag (mdsync.wake), which wake_writes_of
// counts: a service writes it when it goes idle and when it stops, not per poll.
std::int64_t writes_of(const std::string& db_dsn) {
  pqxx::connection c(db_dsn);
  pqxx::nontransaction tx(c);
  tx.exec("SELECT pg_stat_clear_snapshot()");
  return tx
      .exec1(
          "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint"
          " FROM pg_stat_user_tables WHERE (schemaname, relname) <> ('mdsync', 'wake')")[0]
      .as<std::int64_t>();
}

std::int64_t wake_writes_of(const std::string& db_dsn) {
  pqxx::connection c(db_dsn);
  pqxx::nontransaction tx(c);
  tx.exec("SELECT pg_stat_clear_snapshot()");
  return tx
      .exec1(
          "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint"
          " FROM pg_stat_user_tables WHERE (schemaname, relname) = ('mdsync', 'wake')")[0]
      .as<std::int64_t>();
}

// Waits until no session but ours is connected to `db` (a closing backend flushes its
// statistics before it leaves pg_stat_activity).
void wait_sessions_gone(const std::string& admin_dsn, const std::string& db) {
  const std::string left = wait_until(
      [&] {
        return sql1(admin_dsn,
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = '" + db +
                        "' AND pid <> pg_backend_pid() AND backend_type = 'client backend'");
      },
      "0", 30);
  ASSERT_EQ(left, "0") << "sessions still connected to " << db;
}

TEST_F(DeliveryTest, EngineWritesAreNeverCapturedAndQuietServiceWritesNothing) {
  // Every row that enters a capture table, whoever wrote it, is logged by our own trigger
  // (SECURITY DEFINER: it fires inside the capture function, which runs as the capture role).
  for (const std::string& db : {s_.erp_db(), s_.crm_db()})
    sql_exec(s_.dsn(db),
             "CREATE TABLE public.capture_log (seq bigint, row_key text, changed jsonb,"
             " origin text);"
             "CREATE FUNCTION public.log_capture() RETURNS trigger LANGUAGE plpgsql"
             " SECURITY DEFINER AS $$"
             " BEGIN INSERT INTO public.capture_log VALUES (NEW.seq, NEW.row_key, NEW.changed,"
             " current_setting('mdsync.origin', true)); RETURN NULL; END $$;"
             "CREATE TRIGGER zz_log AFTER INSERT ON mdsync.capture FOR EACH ROW"
             " EXECUTE FUNCTION public.log_capture()");
  // 6 user changes on the ERP, 4 on the CRM; they cause inserts, updates and reverts on
  // both sides.
  s_.erp_exec(
      "INSERT INTO erp.customers (cust_name, credit_lim, segment_code, phone_no) VALUES"
      " ('Echo 1', 10, 'smb', '+1'), ('Echo 2', 20, 'public', NULL), ('Echo 3', 30, NULL, NULL)");
  s_.crm_exec(
      "INSERT INTO crm.accounts (\"accountName\", phone, credit_limit) VALUES"
      " ('Echo 4', '+4', 44), ('Echo 5', NULL, NULL)");
  run_ok(s_, {"run", "--once"});
  s_.erp_exec("UPDATE erp.customers SET credit_lim = 11 WHERE cust_name = 'Echo 1'");
  s_.erp_exec("UPDATE erp.customers SET phone_no = '+999' WHERE cust_name = 'Echo 2'");
  s_.erp_exec("UPDATE erp.customers SET street = 'S', city = 'C' WHERE cust_name = 'Echo 3'");
  s_.crm_exec("UPDATE crm.accounts SET credit_limit = 5 WHERE \"accountName\" = 'Echo 1'");
  s_.crm_exec("UPDATE crm.accounts SET phone = '+5' WHERE \"accountName\" = 'Echo 5'");
  run_ok(s_, {"run", "--once"});
  ASSERT_EQ(lines(divergences(dbs())), "");
  ASSERT_GT(std::stoi(s_.control("SELECT count(*) FROM mdsync.outbox WHERE status = 'done'")), 10);

  EXPECT_EQ(s_.erp("SELECT count(*) FROM public.capture_log"), "6");
  EXPECT_EQ(s_.crm("SELECT count(*) FROM public.capture_log"), "4");
  // No capture row comes from a session that carries an origin mark (the engine's).
  EXPECT_EQ(s_.erp("SELECT count(*) FROM public.capture_log WHERE origin <> ''"), "0");
  EXPECT_EQ(s_.crm("SELECT count(*) FROM public.capture_log WHERE origin <> ''"), "0");
  EXPECT_EQ(s_.erp("SELECT count(*) FROM mdsync.capture"), "0");
  EXPECT_EQ(s_.crm("SELECT count(*) FROM mdsync.capture"), "0");

  // Quiet period: a service polling every 50 ms for 2 s writes no tuple anywhere, but its wake
  // flag on each side: set once when it finds nothing to do, cleared once when it stops.
  const std::string admin = s_.dsn("postgres");
  const std::vector<std::string> dbnames = {s_.erp_db(), s_.crm_db(), s_.control_db()};
  for (const auto& db : dbnames) wait_sessions_gone(admin, db);
  std::map<std::string, std::int64_t> before;
  for (const auto& db : dbnames) before[db] = writes_of(s_.dsn(db));
  std::map<std::string, std::int64_t> wake_before;
  for (const auto& db : {s_.erp_db(), s_.crm_db()}) wake_before[db] = wake_writes_of(s_.dsn(db));
  const std::string counts_sql =
      "SELECT (SELECT count(*) FROM mdsync.outbox) || ' ' || (SELECT count(*) FROM mdsync.audit)"
      " || ' ' || (SELECT max(updated_at) FROM mdsync.golden)";
  const std::string counts = s_.control(counts_sql);
  {
    Service svc(s_, "quiet");
    ::usleep(2000 * 1000);  // the observation window, not a wait for anything
    ASSERT_TRUE(svc.running()) << svc.log();
    EXPECT_EQ(svc.stop(), 0) << svc.log();
    EXPECT_EQ(events(svc.log(), "batch_reconciled").size(), 0u) << svc.log();
    EXPECT_EQ(events(svc.log(), "writeback_applied").size(), 0u) << svc.log();
  }
  for (const auto& db : dbnames) wait_sessions_gone(admin, db);
  for (const auto& db : dbnames)
    EXPECT_EQ(writes_of(s_.dsn(db)), before[db]) << "the quiet service wrote tuples in " << db;
  for (const auto& db : {s_.erp_db(), s_.crm_db()})
    EXPECT_EQ(wake_writes_of(s_.dsn(db)) - wake_before[db], 2) << db;
  EXPECT_EQ(s_.control(counts_sql), counts);
  EXPECT_EQ(s_.erp("SELECT count(*) FROM public.capture_log"), "6");
  EXPECT_EQ(s_.crm("SELECT count(*) FROM public.capture_log"), "4");

  // The measurement can see a write: one user update shows up in the statistics.
  s_.erp_exec("UPDATE erp.customers SET credit_lim = 12 WHERE cust_name = 'Echo 1'");
  wait_sessions_gone(admin, s_.erp_db());
  const std::int64_t seen = before[s_.erp_db()];
  EXPECT_EQ(
      wait_until([&] { return std::to_string(writes_of(s_.dsn(s_.erp_db())) - seen); }, "3", 30),
      "3")
      << "one update, its capture row and our log row should count as three written tuples";
}

// ---------------------------------------------------------------------------------------
// Guarantee 6, order: successive changes of one record from one side apply in commit order,
// while other records' changes interleave, across many small batches of a running service.

TEST(OrderTest, HundredSuccessiveUpdatesEndWithTheLastValue) {
  Scenario s("order_hundred");
  s.write_config(default_rules(), R"({"service": {"batch_size": 7, "poll_interval_ms": 20}})");
  run_ok(s, {"init"});
  s.erp_exec(
      "INSERT INTO erp.customers (account_num, cust_name) SELECT i, 'Other ' || i"
      " FROM generate_series(1, 5) i;"
      "INSERT INTO erp.customers (account_num, cust_name) VALUES (100, 'Step 0')");
  run_ok(s, {"run", "--once"});
  Service svc(s, "service");
  {
    pqxx::connection erp(s.dsn(s.erp_db())), crm(s.dsn(s.crm_db()));
    for (int i = 1; i <= 100; ++i) {
      pqxx::work tx(erp);
      tx.exec("UPDATE erp.customers SET cust_name = 'Step " + std::to_string(i) +
              "', credit_lim = " + std::to_string(i) + " WHERE account_num = 100");
      tx.commit();
      if (i % 3 == 0) {
        pqxx::work other(erp);
        other.exec("UPDATE erp.customers SET credit_lim = credit_lim + 1 WHERE account_num = " +
                   std::to_string(1 + i % 5));
        other.commit();
      }
      if (i % 4 == 0) {
        pqxx::work other(crm);
        other.exec("UPDATE crm.accounts SET phone = '+" + std::to_string(i) +
                   "' WHERE \"accountName\" = 'Other " + std::to_string(1 + i % 5) + "'");
        other.commit();
      }
    }
  }
  EXPECT_EQ(wait_until(
                [&] {
                  return s.crm(
                      "SELECT \"accountName\" || ' ' || credit_limit::int FROM"
                      " crm.accounts WHERE \"accountName\" LIKE 'Step %'");
                },
                "Step 100 100", 120),
            "Step 100 100")
      << svc.log();
  EXPECT_EQ(wait_until([&] { return s.erp("SELECT count(*) FROM mdsync.capture"); }, "0", 60), "0");
  EXPECT_EQ(
      wait_until(
          [&] { return s.control("SELECT count(*) FROM mdsync.outbox WHERE status = 'pending'"); },
          "0", 60),
      "0");
  EXPECT_EQ(svc.stop(), 0) << svc.log();
  EXPECT_GT(events(svc.log(), "batch_reconciled").size(), 10u) << "expected many small batches";
  // The golden name moved through the values in commit order, each exactly once.
  const auto names =
      s.rows(s.control_db(),
             "SELECT a.new_value->>'name' FROM mdsync.audit a"
             " JOIN mdsync.crosswalk x ON x.golden_id = a.golden_id"
             " WHERE x.side = 'erp' AND x.row_key = '100' AND a.unit = 'name'"
             " AND a.source LIKE 'erp#%' AND a.new_value->>'name' <> 'Step 0' ORDER BY a.id");
  std::vector<std::string> expected;
  for (int i = 1; i <= 100; ++i) expected.push_back("Step " + std::to_string(i));
  EXPECT_EQ(names, expected);
  EXPECT_EQ(s.erp("SELECT cust_name || ' ' || credit_lim FROM erp.customers"
                  " WHERE account_num = 100"),
            "Step 100 100.00");
  EXPECT_EQ(lines(divergences(dbs_of(s))), "");
  EXPECT_EQ(lines(exactly_once_problems(dbs_of(s))), "");
}

// ---------------------------------------------------------------------------------------
// Bad rows in a batch with good ones: the good ones are reconciled; a value that does not
// convert or is too large becomes an invalid_value conflict; a change without a key or of
// an unknown entity is kept whole in capture_error; hostile text is data, byte for byte.

TEST(BadRowsTest, BadChangesAreIsolatedAndGoodOnesProceed) {
  Scenario s("bad_rows");
  s.crm_exec("ALTER TABLE crm.accounts ALTER COLUMN credit_limit TYPE text");
  s.write_config();
  run_ok(s, {"init"});
  s.erp_exec(
      "INSERT INTO erp.customers (account_num, cust_name, credit_lim) VALUES"
      " (101, 'Big Co', 10), (102, 'Steady Co', 20)");
  run_ok(s, {"run", "--once"});
  ASSERT_EQ(s.crm("SELECT count(*) FROM crm.accounts"), "2");

  const std::string hostile =
      "O'Brien \"q\" \\b\\ '); DROP TABLE crm.accounts; -- \xF0\x9F\x92\xA5 "
      "\xE2\x80\x8F\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D\xE2\x80\x8E e\xCC\x81 \t";
  const std::string oversize(1024 * 1024 + 10, 'x');
  // One batch: good and bad changes from both sides.
  s.crm_exec(
      "INSERT INTO crm.accounts (\"accountName\", phone, credit_limit) VALUES"
      " ('Good Crm', '+1 555 0100', NULL), ('Bad Credit', '+1 555 0200', 'abc')");
  s.exec_with(s.erp_db(), "UPDATE erp.customers SET cust_name = $1 WHERE account_num = 101",
              oversize);
  s.exec_with(s.erp_db(), "INSERT INTO erp.customers (cust_name, city) VALUES ($1, $1)", hostile);
  s.erp_exec("UPDATE erp.customers SET credit_lim = 2222.22 WHERE account_num = 102");
  s.erp_exec(
      "INSERT INTO mdsync.capture (entity, op, row_key, changed) VALUES"
      " ('customer', 'U', NULL, '{\"name\": \"Keyless\"}'),"
      " ('customer', 'U', '', '{\"name\": \"Empty key\"}'),"
      " ('vendor', 'U', '7', '{\"name\": \"Not an entity\"}')");
  const RunResult r = run(s, {"run", "--once"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("3 changes kept as errors"), std::string::npos) << r.err;

  // Good changes went through.
  EXPECT_EQ(s.erp("SELECT count(*) FROM erp.customers WHERE cust_name = 'Good Crm'"
                  " AND phone_no = '+1 555 0100'"),
            "1");
  EXPECT_EQ(s.crm("SELECT credit_limit FROM crm.accounts WHERE \"accountName\" = 'Steady Co'"),
            "2222.22");
  // Hostile text stored verbatim everywhere.
  EXPECT_EQ(s.crm("SELECT count(*) FROM crm.accounts"), "5");
  pqxx::connection crm(s.dsn(s.crm_db()));
  pqxx::nontransaction q(crm);
  const pqxx::result h = q.exec_params(
      "SELECT \"accountName\", billing_city FROM crm.accounts WHERE \"accountName\" = $1", hostile);
  ASSERT_EQ(h.size(), 1u) << "hostile name did not arrive verbatim on the CRM";
  EXPECT_EQ(h[0][1].as<std::string>(), hostile);
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.golden WHERE \"values\"->>'name' = " +
                      q.quote(hostile)),
            "1");
  // The unconvertible value: an invalid_value conflict naming it; the record exists.
  EXPECT_EQ(s.erp("SELECT count(*) FROM erp.customers WHERE cust_name = 'Bad Credit'"), "1");
  const json conflicts = json::parse(run_ok(s, {"conflicts", "list", "--json"}));
  int abc = 0, big = 0;
  for (const auto& c : conflicts) {
    if (c["kind"] != "invalid_value") continue;
    const std::string reason = c["reason"].get<std::string>();
    if (c["unit"] == "credit_limit" &&
        reason.find("'abc' is not a valid numeric") != std::string::npos)
      ++abc;
    if (c["unit"] == "name" && reason.find("1 MiB") != std::string::npos) ++big;
  }
  EXPECT_EQ(abc, 1) << conflicts.dump(2);
  EXPECT_EQ(big, 1) << conflicts.dump(2).substr(0, 4000);
  // The oversize value was not copied anywhere.
  EXPECT_EQ(s.crm("SELECT count(*) FROM crm.accounts WHERE \"accountName\" = 'Big Co'"), "1");
  EXPECT_EQ(
      s.control("SELECT count(*) FROM mdsync.golden WHERE length(\"values\"->>'name') > 1000"),
      "0");
  // Keyless and unknown-entity changes are kept whole, with a clear reason.
  const auto errors = s.rows(s.control_db(),
                             "SELECT side || ' ' || entity || ' ' || coalesce(row_key, '<null>')"
                             " || ' ' || (\"values\"->>'name') || ': ' || error"
                             " FROM mdsync.capture_error ORDER BY seq");
  ASSERT_EQ(errors.size(), 3u) << lines(errors);
  EXPECT_NE(errors[0].find("erp customer <null> Keyless: "), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("row key is NULL"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("erp customer <null> Empty key: "), std::string::npos) << errors[1];
  EXPECT_NE(errors[2].find("erp vendor 7 Not an entity: "), std::string::npos) << errors[2];
  EXPECT_NE(errors[2].find("entity 'vendor' is not in the config"), std::string::npos) << errors[2];
  EXPECT_EQ(events(r.err, "change_not_reconciled").size(), 3u) << r.err.substr(0, 4000);
  const RunResult st = run(s, {"status", "--json"});
  EXPECT_EQ(st.exit_code, 1) << st.err;
  const json status = json::parse(st.out);
  EXPECT_EQ(status["sides"]["erp"]["capture_errors"], 3) << status.dump(2);
  // Nothing is stuck: the capture tables are empty and a second run has nothing to do.
  EXPECT_EQ(s.erp("SELECT count(*) FROM mdsync.capture"), "0");
  EXPECT_EQ(s.crm("SELECT count(*) FROM mdsync.capture"), "0");
  const std::string audit = s.control("SELECT count(*) FROM mdsync.audit");
  run_ok(s, {"run", "--once"});
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.audit"), audit);
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.capture_error"), "3");
  EXPECT_EQ(lines(divergences(dbs_of(s))), "");
}

// A change the control store refuses (here a trigger stands in for any error the database
// raises while the change's decisions are saved) is kept in capture_error, and the other
// changes of its batch are reconciled and written back.
TEST(BadRowsTest, ChangeTheControlStoreRefusesIsKeptAndTheBatchProceeds) {
  Scenario s("control_refuses_change");
  s.write_config();
  run_ok(s, {"init"});
  s.erp_exec(
      "INSERT INTO erp.customers (account_num, cust_name, credit_lim) VALUES"
      " (1, 'Steady', 10), (2, 'Victim', 20), (3, 'Other', 30)");
  run_ok(s, {"run", "--once"});
  s.control_exec(
      "CREATE FUNCTION public.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
      " IF NEW.\"values\"->>'name' = 'Poison' THEN RAISE EXCEPTION 'refused by the test'; END IF;"
      " RETURN NEW; END $$;"
      "CREATE TRIGGER refuse_poison BEFORE UPDATE ON mdsync.golden FOR EACH ROW"
      " EXECUTE FUNCTION public.refuse_poison()");

  s.erp_exec("UPDATE erp.customers SET credit_lim = 11 WHERE account_num = 1");
  s.erp_exec("UPDATE erp.customers SET cust_name = 'Poison' WHERE account_num = 2");
  s.erp_exec("UPDATE erp.customers SET credit_lim = 33 WHERE account_num = 3");
  const RunResult r = run(s, {"run", "--once"});
  EXPECT_EQ(r.exit_code, 1) << r.err;  // a change kept as an error
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.capture_error WHERE row_key = '2'"
                      " AND error LIKE '%refused by the test%'"),
            "1")
      << r.err;
  EXPECT_EQ(s.crm("SELECT string_agg(\"accountName\" || ' ' || credit_limit::int, ', '"
                  " ORDER BY \"accountName\") FROM crm.accounts"),
            "Other 33, Steady 11, Victim 20");
  EXPECT_EQ(s.erp("SELECT count(*) FROM mdsync.capture"), "0");
}

}  // namespace
}  // namespace mdsync::e2e
