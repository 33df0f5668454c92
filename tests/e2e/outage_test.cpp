// Fault tests of outages (DESIGN.md guarantee 3, "a side that is down for a while", and the
// service's per-side backoff): the CRM side or the control store lives in a cluster of its
// own that the test stops and starts under a running service.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "e2e_harness.hpp"
#include "fault_harness.hpp"

namespace mdsync::e2e {
namespace {

using nlohmann::json;
using namespace fault;

std::string demo_sql(const char* file) {
  return read_file(std::string(MDSYNC_DEMO_DATA) + "/" + file);
}

// retry_in_ms of the first `n` events grows strictly (exponential backoff; the jitter of
// +-20% never undoes a doubling).
void expect_growing_retries(const std::vector<json>& ev, std::size_t n, const std::string& log) {
  ASSERT_GE(ev.size(), n) << log;
  for (std::size_t i = 1; i < n; ++i) {
    EXPECT_GT(ev[i]["retry_in_ms"].get<std::int64_t>(),
              ev[i - 1]["retry_in_ms"].get<std::int64_t>())
        << ev[i - 1].dump() << "\n"
        << ev[i].dump();
    EXPECT_EQ(ev[i]["attempt"].get<std::int64_t>(), ev[i - 1]["attempt"].get<std::int64_t>() + 1)
        << ev[i].dump();
  }
}

std::string count_of(const std::string& dsn, const std::string& sql) {
  try {
    return sql1(dsn, sql);
  } catch (const std::exception& e) {
    return std::string("error: ") + e.what();
  }
}

TEST(OutageTest, CrmDownWhileErpKeepsChangingThenEverythingConverges) {
  PgCluster crm_cluster("crmside");
  Scenario s("crm_down");
  crm_cluster.create_database("crm_side", demo_sql("crm.sql"));
  const json patch = {{"sides", {{"crm", {{"dsn", crm_cluster.dsn("crm_side")}}}}},
                      {"service",
                       {{"poll_interval_ms", 50},
                        {"writeback_backoff_initial_ms", 100},
                        {"writeback_backoff_max_ms", 3000}}}};
  s.write_config(default_rules(), patch.dump());
  run_ok(s, {"init"});
  const Dbs d = dbs_of(s);

  Service svc(s, "service");
  s.erp_exec(
      "INSERT INTO erp.customers (account_num, cust_name, credit_lim) SELECT i, 'Before ' || i,"
      " 100 * i FROM generate_series(1, 3) i");
  ASSERT_EQ(
      wait_until([&] { return count_of(d.crm, "SELECT count(*) FROM crm.accounts"); }, "3", 60),
      "3")
      << svc.log();
  // A CRM change committed just before the outage may or may not be read before it: either
  // way it must arrive.
  sql_exec(d.crm,
           "UPDATE crm.accounts SET phone = '+1 555 7777' WHERE \"accountName\" = 'Before 2'");
  crm_cluster.stop();

  // The ERP keeps changing while the CRM is down.
  s.erp_exec(
      "INSERT INTO erp.customers (account_num, cust_name, credit_lim) SELECT i, 'During ' || i,"
      " 100 * i FROM generate_series(4, 8) i");
  s.erp_exec("UPDATE erp.customers SET credit_lim = 1234.56 WHERE account_num = 1");
  s.erp_exec("UPDATE erp.customers SET cust_name = 'Renamed 3' WHERE account_num = 3");
  // ERP -> golden keeps working.
  EXPECT_EQ(wait_until(
                [&] {
                  return s.control(
                      "SELECT count(*) FILTER (WHERE \"values\"->>'name' LIKE 'During %') || ' ' ||"
                      " count(*) FILTER (WHERE \"values\"->>'credit_limit' = '1234.56') || ' ' ||"
                      " count(*) FILTER (WHERE \"values\"->>'name' = 'Renamed 3')"
                      " FROM mdsync.golden");
                },
                "5 1 1", 60),
            "5 1 1")
      << svc.log();
  EXPECT_EQ(wait_until([&] { return s.erp("SELECT count(*) FROM mdsync.capture"); }, "0", 60), "0");
  // The outage is visible: growing retries in the log, the side's state in `status`.
  ASSERT_EQ(wait_until(
                [&] {
                  return std::to_string(
                      std::min<std::size_t>(4, events(svc.log(), "side_unavailable").size()));
                },
                "4", 60),
            "4")
      << svc.log();
  std::vector<json> down;
  for (const json& e : events(svc.log(), "side_unavailable")) {
    EXPECT_EQ(e["side"], "crm") << e.dump();
    EXPECT_FALSE(e.value("error", "").empty()) << e.dump();
    down.push_back(e);
  }
  expect_growing_retries(down, 4, svc.log());
  // An unreachable side makes status fail, naming the side on stderr.
  const RunResult st = run(s, {"status", "--json"});
  ASSERT_EQ(st.exit_code, 1) << st.err;
  EXPECT_NE(st.err.find("side crm is unreachable"), std::string::npos) << st.err;
  const json status = json::parse(st.out);
  EXPECT_EQ(status["sides"]["crm"]["reachable"], false) << status.dump(2);
  EXPECT_TRUE(status["sides"]["crm"]["last_error"].is_string()) << status.dump(2);
  EXPECT_GE(status["sides"]["crm"]["consecutive_failures"].get<int>(), 2) << status.dump(2);
  EXPECT_GT(status["sides"]["crm"]["writeback_pending"].get<std::int64_t>(), 0) << status.dump(2);
  EXPECT_EQ(status["sides"]["erp"]["reachable"], true) << status.dump(2);
  EXPECT_TRUE(svc.running()) << svc.log();

  crm_cluster.start();
  EXPECT_EQ(
      wait_until([&] { return count_of(d.crm, "SELECT count(*) FROM crm.accounts"); }, "8", 90),
      "8")
      << svc.log();
  EXPECT_EQ(
      wait_until(
          [&] { return s.control("SELECT count(*) FROM mdsync.outbox WHERE status = 'pending'"); },
          "0", 90),
      "0")
      << svc.log();
  EXPECT_EQ(wait_until([&] { return lines(divergences(d)); }, "", 60), "") << svc.log();
  EXPECT_EQ(s.erp("SELECT phone_no FROM erp.customers WHERE account_num = 2"), "+1 555 7777");
  EXPECT_EQ(sql1(d.crm, "SELECT credit_limit FROM crm.accounts WHERE \"accountName\" = 'Before 1'"),
            "1234.5600");
  EXPECT_EQ(sql1(d.crm, "SELECT count(*) FROM crm.accounts WHERE \"accountName\" = 'Renamed 3'"),
            "1");
  EXPECT_FALSE(events(svc.log(), "side_recovered").empty()) << svc.log();
  const json after = json::parse(run_ok(s, {"status", "--json"}));
  EXPECT_EQ(after["sides"]["crm"]["reachable"], true) << after.dump(2);
  EXPECT_EQ(after["sides"]["crm"]["consecutive_failures"], 0) << after.dump(2);
  // The error is history once the side is back: not the current error, but kept.
  EXPECT_TRUE(after["sides"]["crm"]["last_error"].is_null()) << after.dump(2);
  const json& history = after["sides"]["crm"]["recent_errors"];
  ASSERT_GE(history.size(), 2u) << after.dump(2);
  EXPECT_EQ(history[0]["event"], "recovered") << after.dump(2);
  EXPECT_EQ(history[1]["event"], "error") << after.dump(2);
  EXPECT_FALSE(history[1]["message"].get<std::string>().empty()) << after.dump(2);
  EXPECT_TRUE(after["problems"].empty()) << after.dump(2);
  EXPECT_EQ(svc.stop(), 0) << svc.log();
  EXPECT_EQ(lines(exactly_once_problems(d)), "");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.outbox WHERE status = 'failed'"), "0");
}

TEST(OutageTest, ControlStoreDownServiceKeepsRunningAndResumes) {
  PgCluster control_cluster("control");
  Scenario s("control_down");
  control_cluster.create_database("control", "");
  const json patch = {{"control", control_cluster.dsn("control")},
                      {"service",
                       {{"poll_interval_ms", 50},
                        {"writeback_backoff_initial_ms", 100},
                        {"writeback_backoff_max_ms", 3000}}}};
  s.write_config(default_rules(), patch.dump());
  run_ok(s, {"init"});
  const Dbs d = dbs_of(s);

  Service svc(s, "service");
  s.erp_exec(
      "INSERT INTO erp.customers (account_num, cust_name) SELECT i, 'Before ' || i"
      " FROM generate_series(1, 3) i");
  ASSERT_EQ(wait_until([&] { return s.crm("SELECT count(*) FROM crm.accounts"); }, "3", 60), "3")
      << svc.log();
  control_cluster.stop();

  s.erp_exec(
      "INSERT INTO erp.customers (account_num, cust_name) SELECT i, 'During ' || i"
      " FROM generate_series(4, 6) i");
  s.crm_exec("UPDATE crm.accounts SET email = 'b1@example.com' WHERE \"accountName\" = 'Before 1'");
  s.erp_exec("UPDATE erp.customers SET credit_lim = 42 WHERE account_num = 2");
  ASSERT_EQ(wait_until(
                [&] {
                  return std::to_string(
                      std::min<std::size_t>(4, events(svc.log(), "pass_failed").size()));
                },
                "4", 60),
            "4")
      << svc.log();
  expect_growing_retries(events(svc.log(), "pass_failed"), 4, svc.log());
  EXPECT_TRUE(svc.running()) << svc.log();
  // Nothing was lost while the control store was away: the changes wait on the sides.
  EXPECT_EQ(s.erp("SELECT count(*) FROM mdsync.capture"), "4");
  EXPECT_EQ(s.crm("SELECT count(*) FROM mdsync.capture"), "1");
  const RunResult once = run(s, {"run", "--once"});
  EXPECT_EQ(once.exit_code, 1) << once.err;

  control_cluster.start();
  EXPECT_EQ(wait_until([&] { return s.crm("SELECT count(*) FROM crm.accounts"); }, "6", 90), "6")
      << svc.log();
  EXPECT_EQ(wait_until(
                [&] {
                  return count_of(d.control,
                                  "SELECT count(*) FROM mdsync.outbox WHERE status = 'pending'");
                },
                "0", 90),
            "0")
      << svc.log();
  EXPECT_EQ(wait_until([&] { return lines(divergences(d)); }, "", 60), "") << svc.log();
  EXPECT_EQ(s.erp("SELECT email_addr FROM erp.customers WHERE account_num = 1"), "b1@example.com");
  EXPECT_EQ(s.crm("SELECT credit_limit FROM crm.accounts WHERE \"accountName\" = 'Before 2'"),
            "42.0000");
  EXPECT_TRUE(svc.running()) << svc.log();
  EXPECT_EQ(svc.stop(), 0) << svc.log();
  EXPECT_EQ(lines(exactly_once_problems(d)), "");
}

}  // namespace
}  // namespace mdsync::e2e
