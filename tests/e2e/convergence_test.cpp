// Convergence holes around deletes and large values (issue 10, points 1-4), on the real binary
// and real PostgreSQL. A side is "down" for a run by pointing its DSN at a database that does
// not exist, so every step is a deterministic `mdsync run --once`; each test states what broke
// before and fails when it breaks again.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <random>
#include <string>
#include <thread>

#include "e2e_harness.hpp"
#include "fault_harness.hpp"

namespace mdsync::e2e {
namespace {

using nlohmann::json;
using namespace fault;

// The demo rules with the ERP's delete propagating as a delete everywhere.
std::string rules_with_deletes() {
  json rules = json::parse(default_rules());
  rules["delete"] = {{"owner", "erp"}, {"propagate", "delete"}};
  return rules.dump();
}

class ConvergenceTest : public ::testing::Test {
 protected:
  explicit ConvergenceTest(std::string rules = default_rules(), int backoff_ms = 50)
      : s_(::testing::UnitTest::GetInstance()->current_test_info()->name()),
        rules_(std::move(rules)),
        backoff_ms_(backoff_ms) {
    crm_up();
    run_ok(s_, {"init"});
  }

  // Writes the config with the CRM reachable, or pointing at a database that does not exist.
  void crm_up() { s_.write_config(rules_, patch(s_.dsn(s_.crm_db()))); }
  void crm_down() { s_.write_config(rules_, patch(s_.dsn(s_.crm_db() + "_gone"))); }

  std::string patch(const std::string& crm_dsn) const {
    return json{{"sides", {{"crm", {{"dsn", crm_dsn}}}}},
                {"service",
                 {{"writeback_backoff_initial_ms", backoff_ms_},
                  {"writeback_backoff_max_ms", std::max(200, backoff_ms_)}}}}
        .dump();
  }

  // `mdsync run --once`; with the CRM down it exits 1 (work left for the CRM).
  RunResult once() { return run(s_, {"run", "--once"}); }
  void once_ok() {
    const RunResult r = once();
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  std::string outbox(const std::string& where) {
    return s_.control("SELECT count(*) FROM mdsync.outbox WHERE " + where);
  }

  Scenario s_;
  std::string rules_;
  int backoff_ms_;
};

// Point 1: a CRM row with an update queued (the CRM was down) is deleted by a CRM user. The ERP
// owns deletes, so the delete is undone. The queued update was superseded and planned again as
// an update, the restore was planned as an update too, both failed (`invalid input syntax for
// type uuid: ""`), no conflict opened and the row stayed missing.
TEST_F(ConvergenceTest, ForeignDeleteOfARowWithAQueuedUpdateIsRestored) {
  s_.erp_exec(
      "INSERT INTO erp.customers (account_num, cust_name, credit_lim) VALUES (1, 'Acme', 100)");
  once_ok();
  ASSERT_EQ(s_.crm("SELECT count(*) FROM crm.accounts"), "1");

  crm_down();
  s_.erp_exec("UPDATE erp.customers SET credit_lim = 250 WHERE account_num = 1");
  EXPECT_EQ(once().exit_code, 1);
  ASSERT_EQ(outbox("side = 'crm' AND status = 'pending' AND kind = 'update'"), "1");

  s_.crm_exec("DELETE FROM crm.accounts");
  crm_up();
  once_ok();
  EXPECT_EQ(s_.crm("SELECT count(*) || ' ' || min(credit_limit)::numeric(10,2) || ' ' ||"
                   " min(\"accountName\") FROM crm.accounts"),
            "1 250.00 Acme");
  EXPECT_EQ(outbox("status IN ('failed', 'pending', 'cancelling')"), "0");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.capture_error"), "0");
  // The queued update was withdrawn (the side recorded it as cancelled), not applied.
  EXPECT_EQ(s_.crm("SELECT count(*) FROM mdsync.applied WHERE cancelled"), "1");
  // The restored row is linked: the next ERP change reaches it.
  s_.erp_exec("UPDATE erp.customers SET credit_lim = 300 WHERE account_num = 1");
  once_ok();
  EXPECT_EQ(s_.crm("SELECT credit_limit::numeric(10,2) FROM crm.accounts"), "300.00");
}

class DeletePropagatesTest : public ConvergenceTest {
 protected:
  DeletePropagatesTest() : ConvergenceTest(rules_with_deletes()) {}
};

// Point 2: the ERP creates a row while the CRM is down, then deletes it. The insert queued for
// the CRM was applied when the CRM came back and linked to a deleted record: silently, with
// nothing pending or failed.
TEST_F(DeletePropagatesTest, DeleteOwnersDeleteWithdrawsAnInsertQueuedForASideThatIsDown) {
  crm_down();
  s_.erp_exec("INSERT INTO erp.customers (account_num, cust_name) VALUES (7, 'Short-lived')");
  EXPECT_EQ(once().exit_code, 1);
  ASSERT_EQ(outbox("side = 'crm' AND status = 'pending' AND kind = 'insert'"), "1");
  s_.erp_exec("DELETE FROM erp.customers WHERE account_num = 7");
  EXPECT_EQ(once().exit_code, 1);  // the withdrawal itself waits for the CRM
  EXPECT_EQ(outbox("side = 'crm' AND status = 'cancelling'"), "1");

  crm_up();
  once_ok();
  EXPECT_EQ(s_.crm("SELECT count(*) FROM crm.accounts"), "0");
  EXPECT_EQ(s_.control("SELECT deleted FROM mdsync.golden"), "t");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.crosswalk"), "0");
  EXPECT_EQ(outbox("status IN ('failed', 'pending', 'cancelling')"), "0");
  EXPECT_EQ(s_.crm("SELECT count(*) FROM mdsync.applied WHERE cancelled"), "1");
  const json status = json::parse(run_ok(s_, {"status", "--json"}));
  EXPECT_EQ(status["sides"]["crm"]["writeback_pending"], 0) << status.dump(2);
  EXPECT_EQ(status["sides"]["crm"]["writeback_failed"], 0) << status.dump(2);
}

// A propagated delete waits for the row's captured changes that are not reconciled yet (found
// by the core's delete-heavy property): deleted first, the CRM user's edit was later read as a
// change of a row the engine no longer knew, that is, as a new record.
TEST_F(DeletePropagatesTest, APropagatedDeleteWaitsForTheRowsUnreconciledChanges) {
  s_.erp_exec("INSERT INTO erp.customers (account_num, cust_name) VALUES (3, 'Acme')");
  once_ok();
  ASSERT_EQ(s_.crm("SELECT count(*) FROM crm.accounts"), "1");
  // A CRM user edits the row, and the ERP deletes it; the ERP's delete is reconciled while the
  // CRM is down, so the CRM's edit is still in its capture table when the delete reaches it.
  s_.crm_exec("UPDATE crm.accounts SET phone = '+32 9 000'");
  s_.erp_exec("DELETE FROM erp.customers WHERE account_num = 3");
  crm_down();
  EXPECT_EQ(once().exit_code, 1);
  // The CRM comes back. A pass writes back first: the delete meets the pending edit and waits;
  // the edit is reconciled against the deleted record; then the delete is written.
  crm_up();
  once_ok();
  EXPECT_EQ(s_.crm("SELECT count(*) FROM crm.accounts"), "0");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.golden"), "1");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.golden WHERE NOT deleted"), "0");
  EXPECT_EQ(s_.erp("SELECT count(*) FROM erp.customers"), "0");
  EXPECT_EQ(outbox("status IN ('failed', 'pending', 'cancelling')"), "0");
}

// Points 3 and 4: a value over 1 MiB of multibyte text. Its reason was cut by bytes, which split
// a UTF-8 sequence; the JSON encoder threw, and the whole row landed in capture_error. Then,
// once a steward resolved the conflict, a 64-byte placeholder had become the side's base, and
// the engine superseded the same write about 40 times a second until a user edited the row.
TEST_F(ConvergenceTest, AValueOverOneMebibyteIsAConflictAndTheRestOfTheRowSyncs) {
  s_.erp_exec("INSERT INTO erp.customers (account_num, cust_name) VALUES (1, 'Acme')");
  once_ok();
  // One UPDATE: a huge phone (the CRM owns it) and a new segment.
  s_.crm_exec(
      "UPDATE crm.accounts SET segment = 'smb',"
      " phone = repeat('t\u00e9l\u00e9phone ', 110000)");  // about 1.2 MB
  once_ok();
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.capture_error"), "0");
  EXPECT_EQ(s_.erp("SELECT segment_code FROM erp.customers"), "smb");
  EXPECT_EQ(s_.control("SELECT kind || ' ' || unit || ' ' || status FROM mdsync.conflict"),
            "invalid_value phone open");
  EXPECT_EQ(s_.control("SELECT reason LIKE '%larger than the 1 MiB value limit (1320000 bytes)'"
                       " FROM mdsync.conflict"),
            "t");
  EXPECT_EQ(s_.erp("SELECT phone_no IS NULL FROM erp.customers"), "t");
  // The CRM's base is what the CRM holds, byte for byte.
  EXPECT_EQ(s_.control("SELECT base->>'phone' = repeat('t\u00e9l\u00e9phone ', 110000)"
                       " FROM mdsync.crosswalk WHERE side = 'crm'"),
            "t");

  // The steward keeps the golden value (NULL): it is written over the huge one, once.
  const std::string id = s_.control("SELECT id FROM mdsync.conflict");
  run_ok(s_, {"conflicts", "dismiss", id});
  once_ok();
  EXPECT_EQ(s_.crm("SELECT phone IS NULL FROM crm.accounts"), "t");
  EXPECT_EQ(outbox("side = 'crm' AND status = 'superseded'"), "0");
  EXPECT_EQ(outbox("status IN ('failed', 'pending', 'cancelling')"), "0");
  const std::string writes = outbox("true");
  once_ok();  // and nothing more happens
  EXPECT_EQ(outbox("true"), writes);
}

// Point 4: a write superseded again and again with no change captured (here a trigger on the
// CRM rewrites what the engine writes, so the CRM never holds what the engine saw) must stop,
// back off and show in `status`, instead of a new outbox row at every pass.
class BackoffTest : public ConvergenceTest {
 protected:
  // A first back-off of a minute: longer than any pass, so the run ends with the write waiting.
  BackoffTest() : ConvergenceTest(default_rules(), 60000) {}
};

TEST_F(BackoffTest, AWriteSupersededWithoutAnyCapturedChangeBacksOffAndShowsInStatus) {
  s_.erp_exec(
      "INSERT INTO erp.customers (account_num, cust_name, credit_lim) VALUES (1, 'Acme', 10)");
  once_ok();
  s_.crm_exec(
      "CREATE FUNCTION crm.pad() RETURNS trigger LANGUAGE plpgsql AS"
      " $$ BEGIN NEW.credit_limit := NEW.credit_limit + 1; RETURN NEW; END $$;"
      " CREATE TRIGGER pad BEFORE UPDATE ON crm.accounts FOR EACH ROW EXECUTE FUNCTION crm.pad()");
  s_.erp_exec("UPDATE erp.customers SET credit_lim = 20 WHERE account_num = 1");
  once_ok();  // written as 20, held as 21: the engine's base says 20
  s_.erp_exec("UPDATE erp.customers SET credit_lim = 30 WHERE account_num = 1");
  const RunResult r = once();
  EXPECT_EQ(r.exit_code, 1) << "a write is left waiting\n" << r.err;
  const auto stuck = events(r.err, "writeback_stuck");
  ASSERT_EQ(stuck.size(), 1u) << r.err;
  EXPECT_EQ(stuck[0]["side"], "crm");
  EXPECT_EQ(stuck[0]["streak"], 2);
  // Two attempts, not one per pass: the third waits (not_before) and the drain ends.
  EXPECT_EQ(outbox("side = 'crm' AND status = 'superseded'"), "2");
  EXPECT_EQ(outbox("side = 'crm' AND status = 'pending' AND not_before > now()"), "1");
  EXPECT_EQ(s_.control("SELECT last_error LIKE 'superseded 2 times in a row with no change "
                       "captured on crm%' FROM mdsync.outbox WHERE side = 'crm'"
                       " AND status = 'superseded' ORDER BY id DESC LIMIT 1"),
            "t");
  // `status` says so, and exits 1 (a row that keeps backing off is a problem to look at).
  const RunResult st = run(s_, {"status", "--json"});
  EXPECT_EQ(st.exit_code, 1) << st.err;
  const json status = json::parse(st.out);
  EXPECT_EQ(status["sides"]["crm"]["writeback_stuck"], 1) << status.dump(2);
  ASSERT_EQ(status["problems"].size(), 1u) << status.dump(2);
  EXPECT_EQ(status["problems"][0]["check"], "stuck") << status.dump(2);

  // A change of the field, captured and reconciled (a CRM user's write of the ERP's credit
  // limit, reverted), tells the engine what the CRM holds: the streak clears, the write lands.
  s_.crm_exec("DROP TRIGGER pad ON crm.accounts");
  s_.crm_exec("UPDATE crm.accounts SET credit_limit = 5");
  s_.control_exec("UPDATE mdsync.outbox SET not_before = NULL WHERE status = 'pending'");
  once_ok();
  EXPECT_EQ(s_.control("SELECT superseded_streak FROM mdsync.crosswalk WHERE side = 'crm'"), "0");
  EXPECT_EQ(s_.crm("SELECT credit_limit::numeric(10,2) FROM crm.accounts"), "30.00");
}

// Point 15: a write-back that deadlocks with a user's transaction (the user locks the rows in
// the other order) is retried: counted, logged at debug, and never the side's last_error.
TEST(ContentionTest, AWriteBackThatDeadlocksWithAUsersTransactionIsRetriedQuietly) {
  Scenario s("deadlock");
  s.write_config();
  run_ok(s, {"init"});
  s.erp_exec(
      "INSERT INTO erp.customers (account_num, cust_name, credit_lim) VALUES"
      " (1, 'A', 1), (2, 'B', 2), (3, 'C', 3)");
  run_ok(s, {"run", "--once"});
  // The engine locks the rows it writes in key order: a, b, c (which account sorts first by
  // uuid is random).
  const std::vector<std::string> keys =
      s.rows(s.crm_db(), "SELECT id FROM crm.accounts ORDER BY id");
  ASSERT_EQ(keys.size(), 3u);
  const std::string &a = keys[0], &b = keys[1], &c = keys[2];
  // A deadlock is found by a waiting backend that checks deadlock_timeout after its wait began,
  // once per wait. For the engine's statement to be the one cancelled, whatever the timing, the
  // engine's own request must close the cycle: the user holds c and already waits for a, which
  // the engine holds, when the engine asks for c. A gate holding b stops the engine between the
  // two until the user waits. (With two rows, the user's second lock closed the cycle: when the
  // test took over a second to get there, the engine's one check had found nothing, and the
  // user's transaction was the one cancelled.)
  pqxx::connection user(s.dsn(s.crm_db())), gate(s.dsn(s.crm_db()));
  const std::string user_pid = std::to_string(user.backendpid());
  const std::string gate_pid = std::to_string(gate.backendpid());
  pqxx::work utx(user), gtx(gate);
  utx.exec("SET LOCAL deadlock_timeout = '60s'");
  utx.exec_params("UPDATE crm.accounts SET phone = 'user 3' WHERE id = $1::uuid", c);
  gtx.exec_params("SELECT 1 FROM crm.accounts WHERE id = $1::uuid FOR UPDATE", b);
  s.erp_exec("UPDATE erp.customers SET credit_lim = credit_lim + 100");
  const std::string log = s.dir() + "/deadlock.log";
  const int pid = s.spawn_mdsync({"run", "--once", "--log-level", "debug"}, log);
  const std::string engine_waits =
      "FROM pg_stat_activity WHERE datname = current_database() AND application_name ="
      " 'mdsync run' AND pg_blocking_pids(pid) = ARRAY[" +
      gate_pid + "]";
  ASSERT_EQ(wait_until([&] { return s.crm("SELECT count(*) " + engine_waits); }, "1", 60), "1")
      << read_file(log);
  const std::string engine_pid = s.crm("SELECT pid " + engine_waits);
  std::string user_error;
  std::thread user_waits([&] {
    try {
      utx.exec_params("UPDATE crm.accounts SET phone = 'user 1' WHERE id = $1::uuid", a);
    } catch (const std::exception& e) {
      user_error = e.what();
    }
  });
  const std::string blocker =
      wait_until([&] { return s.crm("SELECT pg_blocking_pids(" + user_pid + ")::text"); },
                 "{" + engine_pid + "}", 60);
  gtx.abort();
  user_waits.join();
  ASSERT_EQ(blocker, "{" + engine_pid + "}") << "the user never waited for the engine";
  ASSERT_EQ(user_error, "") << "the user's transaction, not the engine's, was cancelled";
  utx.commit();
  ASSERT_EQ(wait_exit(pid, 120), 0) << read_file(log);

  const auto retried = events(read_file(log), "writeback_contention");
  ASSERT_FALSE(retried.empty()) << read_file(log);
  EXPECT_EQ(retried[0]["level"], "debug");
  // Retried in the same pass, inside Side::apply, not left for the next pass.
  EXPECT_TRUE(events(read_file(log), "writeback_deferred").empty()) << read_file(log);
  EXPECT_TRUE(events(read_file(log), "side_unavailable").empty()) << read_file(log);
  EXPECT_EQ(s.control("SELECT coalesce(last_error, '<none>') || ' ' || (contention_retries > 0)"
                      " FROM mdsync.side_state WHERE side = 'crm'"),
            "<none> true");
  const json status = json::parse(run_ok(s, {"status", "--json"}));
  EXPECT_GE(status["sides"]["crm"]["contention_retries"].get<int>(), 1) << status.dump(2);
  EXPECT_EQ(s.crm("SELECT string_agg(\"accountName\" || ' ' || credit_limit::numeric(10,2), ', '"
                  " ORDER BY \"accountName\") FROM crm.accounts"),
            "A 101.00, B 102.00, C 103.00");
  EXPECT_EQ(s.crm("SELECT string_agg(coalesce(phone, '-'), ', ' ORDER BY id) FROM crm.accounts"),
            "user 1, -, user 3");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.outbox WHERE status IN ('failed', 'pending')"),
            "0");
}

// The randomized delete-heavy run (issue 10): a seeded workload of creates, edits and deletes
// on both sides (the ERP's deletes propagate as deletes, the CRM's are restored), phases in
// which the CRM cannot be reached while both sides keep changing, and open invoices on the
// CRM whose delete guard vetoes some of the ERP's deletes. At the end every side holds exactly
// what golden says: each live record has one linked row per side holding its values, a deleted
// one has none, no row is left unlinked, nothing is pending, failed or lost.
TEST(DeleteHeavyTest, DeletesRestoresVetoesAndOutagesConverge) {
  const std::uint32_t seed = test_seed();
  std::mt19937 rng(seed ^ 0xde1e7eu);
  Scenario s("delete_heavy");
  s.crm_exec("CREATE TABLE crm.invoices (account_id uuid NOT NULL, open boolean NOT NULL)");
  auto config = [&](bool crm_reachable) {
    const json patch = {
        {"sides", {{"crm", {{"dsn", s.dsn(crm_reachable ? s.crm_db() : s.crm_db() + "_gone")}}}}},
        {"service", {{"writeback_backoff_initial_ms", 20}, {"writeback_backoff_max_ms", 100}}},
        {"entities",
         {{"customer",
           {{"sides",
             {{"crm",
               {{"delete_guard",
                 {{"table", "invoices"},
                  {"on", {{"account_id", "id"}}},
                  {"where", json::array({{{"column", "open"}, {"eq", true}}})},
                  {"reason", "the account has open invoices"}}}}}}}}}}}};
    s.write_config(rules_with_deletes(), patch.dump());
  };
  config(true);
  run_ok(s, {"init"});
  const Dbs d = dbs_of(s);
  Applier apply(d);
  Workload workload(seed);
  int outages = 0;
  for (int phase = 0; phase < 8; ++phase) {
    const bool down = phase > 0 && rng() % 3 == 0;
    outages += down ? 1 : 0;
    config(!down);
    apply.apply(phase == 0 ? workload.phase(60, 1.0, 0) : workload.phase(80, 0.15, 14));
    // Some CRM accounts get an open invoice, some get theirs paid.
    s.crm_exec("INSERT INTO crm.invoices SELECT id, true FROM crm.accounts ORDER BY id OFFSET " +
               std::to_string(rng() % 40) + " LIMIT 3");
    s.crm_exec(
        "UPDATE crm.invoices SET open = false WHERE ctid IN (SELECT ctid FROM"
        " crm.invoices ORDER BY account_id OFFSET " +
        std::to_string(rng() % 5) + " LIMIT 2)");
    const RunResult r = run(s, {"run", "--once"});
    ASSERT_EQ(r.exit_code, down ? 1 : 0) << "phase " << phase << "\n" << r.err;
    if (!down) apply.learn_keys();
  }
  config(true);
  run_ok(s, {"run", "--once"});
  std::cout << "[workload] 8 phases, " << outages << " with the CRM unreachable; "
            << s.control(
                   "SELECT count(*) FILTER (WHERE deleted) || ' deleted, ' ||"
                   " count(*) FILTER (WHERE NOT deleted) || ' live' FROM mdsync.golden")
            << "; " << s.control("SELECT count(*) FROM mdsync.outbox WHERE status = 'vetoed'")
            << " deletes vetoed, "
            << s.control("SELECT count(*) FROM mdsync.outbox WHERE last_error LIKE 'withdrawn%'")
            << " writes withdrawn\n";

  EXPECT_EQ(lines(divergences(d)), "");
  EXPECT_EQ(lines(exactly_once_problems(d)), "");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.capture_error"), "0");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.outbox WHERE status = 'failed'"), "0");
  // One linked row per side for each live record, none for a deleted one, and no row a side
  // holds that is not linked (a duplicate, or a record that should be gone).
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.golden g WHERE NOT g.deleted AND"
                      " (SELECT count(*) FROM mdsync.crosswalk x WHERE x.golden_id = g.id) <> 2"),
            "0");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.crosswalk x JOIN mdsync.golden g"
                      " ON g.id = x.golden_id WHERE g.deleted"),
            "0");
  EXPECT_EQ(s.erp("SELECT count(*) FROM erp.customers"),
            s.control("SELECT count(*) FROM mdsync.crosswalk WHERE side = 'erp'"));
  EXPECT_EQ(s.crm("SELECT count(*) FROM crm.accounts"),
            s.control("SELECT count(*) FROM mdsync.crosswalk WHERE side = 'crm'"));
}

}  // namespace
}  // namespace mdsync::e2e
