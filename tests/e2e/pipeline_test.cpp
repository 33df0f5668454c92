// The batch pipeline (issue 12): a backlog is reconciled before it is written back, so no
// write-back is refused and planned again because its row still has captured changes; a
// batch whose writes the store refuses is decided again row by row, in the service's batch and
// in `sync --initial`, where the refused row alone is kept as an error; a batch's lookups of
// queued writes read its records' writes, not the queue, whatever the queue's statistics say.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "e2e_harness.hpp"
#include "fault_harness.hpp"

namespace mdsync::e2e {
namespace {

using namespace fault;

// A trigger on the control store that refuses golden records named 'Poison' (it stands in for
// any error the database raises while a batch's decisions are saved).
void refuse_poison(const Scenario& s, const std::string& when) {
  s.control_exec(
      "CREATE FUNCTION public.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
      " IF NEW.\"values\"->>'name' = 'Poison' THEN RAISE EXCEPTION 'refused by the test'; END IF;"
      " RETURN NEW; END $$;"
      "CREATE TRIGGER refuse_poison BEFORE " +
      when + " ON mdsync.golden FOR EACH ROW EXECUTE FUNCTION public.refuse_poison()");
}

// 300 records changed on both sides, the ERP's credit limits in one order and the CRM's phones
// in the opposite order, drained in batches of 5: every write-back to a row whose own change
// is not reconciled yet waits for it instead of being superseded and planned again (before,
// each pass wrote the rows its batch had reconciled and was refused on every row the other
// side's later batches would reconcile).
TEST(PipelineTest, ABacklogIsReconciledBeforeItIsWrittenBackAndNothingIsPlannedTwice) {
  Scenario s("pipeline_backlog");
  s.write_config(default_rules(), R"({"service": {"batch_size": 5}})");
  run_ok(s, {"init"});
  s.erp_exec(
      "INSERT INTO erp.customers (cust_name, credit_lim, phone_no)"
      " SELECT 'Customer ' || lpad(i::text, 3, '0'), i, NULL FROM generate_series(1, 300) i");
  run_ok(s, {"run", "--once"});
  ASSERT_EQ(s.crm("SELECT count(*) FROM crm.accounts"), "300");
  const std::string outbox_before = s.control("SELECT coalesce(max(id), 0) FROM mdsync.outbox");

  s.erp_exec(
      "DO $$ DECLARE r record; BEGIN FOR r IN SELECT account_num FROM erp.customers"
      " ORDER BY account_num LOOP UPDATE erp.customers SET credit_lim = credit_lim + 1000"
      " WHERE account_num = r.account_num; END LOOP; END $$");
  s.crm_exec(
      "DO $$ DECLARE r record; BEGIN FOR r IN SELECT id FROM crm.accounts"
      " ORDER BY \"accountName\" DESC LOOP UPDATE crm.accounts SET phone = '+1 555 ' ||"
      " right(\"accountName\", 3) WHERE id = r.id; END LOOP; END $$");
  run_ok(s, {"run", "--once"});

  // One update per record and side, each applied once; none superseded or withdrawn.
  EXPECT_EQ(s.control("SELECT string_agg(side || ' ' || kind || ' ' || status || ' ' || n, ', '"
                      " ORDER BY side) FROM (SELECT side, kind, status, count(*) AS n"
                      " FROM mdsync.outbox WHERE id > " +
                      outbox_before + " GROUP BY 1, 2, 3) t"),
            "crm update done 300, erp update done 300");
  EXPECT_EQ(s.crm("SELECT sum(credit_limit) FROM crm.accounts"),
            s.erp("SELECT sum(credit_lim)::numeric(14,4) FROM erp.customers"));
  EXPECT_EQ(s.erp("SELECT count(*) FROM erp.customers WHERE phone_no = '+1 555 ' ||"
                  " right(cust_name, 3)"),
            "300");
  EXPECT_EQ(lines(divergences(dbs_of(s))), "");
}

// The queue's statistics taken while it was empty (as autovacuum leaves them after a quiet
// spell) price every partial index of the outbox at one row, so a backlog's lookups of queued
// writes by record read the whole queue, once per batch or once per record (a drain of 20,000
// changes read 110 million index entries, half its time). With 1,000 writes held for a paused
// CRM and 20 of those records changed again, the lookups read fewer index entries than the
// queue holds: a few per record.
TEST(PipelineTest, QueuedWritesAreLookedUpByRecordWhateverTheQueuesStatistics) {
  constexpr int kRecords = 1000;
  constexpr int kChanged = 20;
  Scenario s("pipeline_queue_statistics");
  s.write_config(default_rules(), R"({"service": {"batch_size": 50}})");
  run_ok(s, {"init"});
  s.erp_exec(
      "INSERT INTO erp.customers (cust_name, credit_lim)"
      " SELECT 'Customer ' || lpad(i::text, 3, '0'), i FROM generate_series(1, " +
      std::to_string(kRecords) + ") i");
  run_ok(s, {"run", "--once"});
  ASSERT_EQ(s.crm("SELECT count(*) FROM crm.accounts"), std::to_string(kRecords));
  // A history of several writes per record: the planner then expects a probe by record to
  // return several rows, and an empty partial index (as the statistics say) to return one.
  for (int round = 0; round < 3; ++round) {
    s.erp_exec("UPDATE erp.customers SET credit_lim = credit_lim + 1");
    run_ok(s, {"run", "--once"});
  }
  // Statistics of an empty queue, kept: autovacuum would otherwise refresh them at its pace.
  s.control_exec(
      "ALTER TABLE mdsync.outbox SET (autovacuum_enabled = false, "
      "toast.autovacuum_enabled = false); ANALYZE mdsync.outbox");
  ASSERT_EQ(s.control("SELECT count(*) FROM mdsync.outbox WHERE status <> 'done'"), "0");

  s.mdsync_ok({"pause", "crm"});
  s.erp_exec("UPDATE erp.customers SET credit_lim = credit_lim + 1000");
  run_ok(s, {"run", "--once"});
  ASSERT_EQ(s.control("SELECT count(*) FROM mdsync.outbox WHERE status = 'pending'"),
            std::to_string(kRecords));

  auto index_entries_read = [&] {
    // A backend flushes its statistics as it exits, before it leaves pg_stat_activity: once
    // the runs' sessions are gone, what they read is counted.
    for (int i = 0; i < 1000 && s.control("SELECT count(*) FROM pg_stat_activity"
                                          " WHERE datname = current_database()"
                                          " AND backend_type = 'client backend'"
                                          " AND pid <> pg_backend_pid()") != "0";
         ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return std::stoll(
        s.control("SELECT sum(idx_tup_read) FROM pg_stat_user_indexes"
                  " WHERE schemaname = 'mdsync' AND relname = 'outbox'"));
  };
  const long long before = index_entries_read();
  s.erp_exec(
      "UPDATE erp.customers SET credit_lim = credit_lim + 1000 WHERE account_num IN"
      " (SELECT account_num FROM erp.customers ORDER BY account_num LIMIT " +
      std::to_string(kChanged) + ")");
  run_ok(s, {"run", "--once"});
  const long long read = index_entries_read() - before;
  // A run with nothing to reconcile reads what every run reads (the counts of queued writes
  // it reports at the end read the whole queue); the changes' lookups are the difference.
  run_ok(s, {"run", "--once"});
  const long long idle = index_entries_read() - before - read;
  // Each changed record's lookups read its own queued writes (one or two) a few times; one
  // scan of the queue alone reads kRecords entries.
  EXPECT_LT(read - idle, 10 * kChanged)
      << "outbox index entries read to drain " << kChanged << " changes (" << read
      << "), beyond what a run with nothing to do reads (" << idle << ")";

  s.mdsync_ok({"resume", "crm"});
  run_ok(s, {"run", "--once"});
  EXPECT_EQ(s.crm("SELECT sum(credit_limit) FROM crm.accounts"),
            s.erp("SELECT sum(credit_lim)::numeric(14,4) FROM erp.customers"));
  EXPECT_EQ(
      s.control("SELECT count(*) FROM mdsync.outbox WHERE status IN ('pending', 'cancelling')"),
      "0");
  EXPECT_EQ(lines(divergences(dbs_of(s))), "");
}

// The service's batch: the buffered batch is refused as a whole, decided again row by row, and
// only the refused row is kept as an error; the rows around it are synced.
TEST(PipelineTest, ABatchTheStoreRefusesIsDecidedAgainRowByRow) {
  Scenario s("pipeline_row_by_row");
  s.write_config();
  run_ok(s, {"init"});
  refuse_poison(s, "INSERT");
  s.erp_exec(
      "INSERT INTO erp.customers (account_num, cust_name, credit_lim) VALUES"
      " (1, 'Steady', 10), (2, 'Poison', 20), (3, 'Other', 30)");
  const RunResult r = run(s, {"run", "--once"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("1 change kept as an error"), std::string::npos) << r.err;
  EXPECT_EQ(s.control("SELECT row_key || ': ' || (error LIKE '%refused by the test%')"
                      " FROM mdsync.capture_error"),
            "2: true");
  EXPECT_EQ(s.crm("SELECT string_agg(\"accountName\", ',' ORDER BY \"accountName\")"
                  " FROM crm.accounts"),
            "Other,Steady");
  EXPECT_EQ(s.erp("SELECT count(*) FROM mdsync.capture"), "0");
  EXPECT_EQ(lines(divergences(dbs_of(s))), "");
}

// sync --initial: the same, for the one transaction of the first contact. The refused row is
// kept as an error (its capture table is "initial sync"), the run says so and exits 1, and the
// rest is synced.
TEST(PipelineTest, AnInitialSyncRowTheStoreRefusesIsKeptAsAnErrorAndTheRestSyncs) {
  Scenario s("pipeline_initial_refused");
  s.write_config();
  run_ok(s, {"init"});
  refuse_poison(s, "INSERT");
  s.erp_exec(
      "INSERT INTO erp.customers (account_num, cust_name, credit_lim) VALUES"
      " (1, 'Steady', 10), (2, 'Poison', 20), (3, 'Other', 30)");
  const RunResult r = run(s, {"sync", "--initial", "--accept-overwrites"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("customer on erp: 3 rows: 0 already linked, 0 linked, 2 created, 0 "
                       "possible duplicates, 1 kept as errors"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.err.find("1 row was kept as errors and not synced; see `mdsync errors list`"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(s.control("SELECT row_key || ' ' || epoch || ' ' || (error LIKE '%refused by the "
                      "test%') FROM mdsync.capture_error"),
            "2 initial sync true");
  EXPECT_EQ(s.crm("SELECT string_agg(\"accountName\", ',' ORDER BY \"accountName\")"
                  " FROM crm.accounts"),
            "Other,Steady");
  const nlohmann::json report =
      nlohmann::json::parse(run(s, {"sync", "--initial", "--dry-run", "--json"}).out);
  EXPECT_EQ(report["steps"][0]["errors"], 1) << report.dump(2);
}

}  // namespace
}  // namespace mdsync::e2e
