// A side's circuit breaker and write rate limit (issue 13, "Per side"), on real PostgreSQL.
//
// The breaker: the CRM's DSN goes through a ConnectionGate the test closes and opens, which
// counts every connection the service makes to the CRM. `init` and `status` reach the CRM
// directly (the DSN's host and port come from the environment), so the gate counts the
// service's attempts and nothing else. With the count and the order of the service's log, the
// test shows, with no timing: the circuit opens after N failures, no attempt is made while it
// is open, one probe when it half-opens, a failed probe opens it again for longer, a probe
// that gets through closes it; meanwhile the ERP keeps syncing.
//
// The rate limit: a backlog of write-backs to a CRM limited to a few writes a second arrives
// whole and in order, in side transactions of at most the limit each (counted by transaction
// id in the CRM's mdsync.applied), by `run --once` and by the service, whose `status` shows
// the side throttled meanwhile.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "connection_gate.hpp"
#include "e2e_harness.hpp"
#include "fault_harness.hpp"

namespace mdsync::e2e {
namespace {

using nlohmann::json;
using namespace fault;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) throw std::runtime_error(std::string(name) + " is not set: run tools/test");
  return v;
}

// status --json as seen with `e`: its exit code says whether problems were found, which does
// not matter here.
json status_json(const Scenario& s, const Env& e) {
  const RunResult r = run(s, {"status", "--json"}, e);
  return json::parse(r.out);
}

bool is_crm_attempt(const json& e) {
  const std::string ev = e.value("event", "");
  if (ev == "side_unavailable" || ev == "wake_flag_not_set") return e.value("side", "") == "crm";
  if (ev == "listener_unavailable" || ev == "listener_connected")
    return e.value("listener", "") == "side crm";
  return false;
}

TEST(CircuitBreakerTest, OpensAfterNFailuresLeavesTheSideAloneProbesAndClosesWhenItIsBack) {
  Scenario s("circuit_breaker");
  ConnectionGate gate(env("MDSYNC_TEST_PGHOST"), std::stoi(env("MDSYNC_TEST_PGPORT")));
  const Env direct = {{"MDSYNC_T_CRM_HOST", env("MDSYNC_TEST_PGHOST")},
                      {"MDSYNC_T_CRM_PORT", env("MDSYNC_TEST_PGPORT")}};
  const Env gated = {{"MDSYNC_T_CRM_HOST", gate.dir()},
                     {"MDSYNC_T_CRM_PORT", std::to_string(gate.port())}};
  // A ten-minute poll: every retry, half-open probe included, runs because the service wakes
  // for it, not because a poll came by.
  const json patch = {
      {"sides",
       {{"crm",
         {{"dsn", "host='${MDSYNC_T_CRM_HOST}' port=${MDSYNC_T_CRM_PORT} user=" +
                      env("MDSYNC_TEST_PGUSER") + " dbname=" + s.crm_db()},
          {"circuit_breaker", {{"failures", 3}, {"open_s", 1}, {"max_open_s", 2}}}}}}},
      {"service",
       {{"poll_interval_ms", 600000},
        {"writeback_backoff_initial_ms", 50},
        {"writeback_backoff_max_ms", 200}}}};
  s.write_config(default_rules(), patch.dump());
  ASSERT_EQ(run(s, {"init"}, direct).exit_code, 0);

  // The CRM is down (the gate drops every connection) from the start.
  Service svc(s, "service", gated, {"--log-level", "debug"});
  ASSERT_EQ(
      wait_until(
          [&] { return status_json(s, direct)["sides"]["crm"]["circuit"].get<std::string>(); },
          "open", 60),
      "open")
      << svc.log();
  const json open = status_json(s, direct)["sides"]["crm"];
  EXPECT_TRUE(open["circuit_opened_at"].is_string()) << open.dump(2);
  EXPECT_GE(open["consecutive_failures"].get<int>(), 3) << open.dump(2);
  EXPECT_TRUE(open["last_error"].is_string()) << open.dump(2);
  const std::string text = run(s, {"status"}, direct).out;
  EXPECT_NE(text.find("  circuit "), std::string::npos) << text;
  EXPECT_EQ(status_json(s, direct)["sides"]["erp"]["circuit"], "closed");

  // A failed probe opens it again, for twice as long (capped at max_open_s).
  ASSERT_EQ(wait_until(
                [&] {
                  for (const json& e : events(svc.log(), "side_circuit_opened"))
                    if (e.value("reopened", false) && e.value("open_ms", 0) == 2000) return "yes";
                  return "no";
                },
                "yes", 60),
            "yes")
      << svc.log();

  // The ERP keeps syncing meanwhile: its new customer becomes golden, queued for the CRM.
  s.erp_exec(
      "INSERT INTO erp.customers (account_num, cust_name, credit_lim) VALUES (7, 'Acme',"
      " 125.50)");
  EXPECT_EQ(wait_until([&] { return s.control("SELECT count(*) FROM mdsync.golden"); }, "1", 60),
            "1")
      << svc.log();
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.outbox WHERE side = 'crm' AND status ="
                      " 'pending'"),
            "1");

  // The CRM comes back: the next probe gets through and closes the circuit.
  gate.open();
  ASSERT_EQ(
      wait_until([&] { return std::to_string(events(svc.log(), "side_circuit_closed").size()); },
                 "1", 60),
      "1")
      << svc.log();
  EXPECT_EQ(wait_until([&] { return s.crm("SELECT count(*) FROM crm.accounts"); }, "1", 60), "1")
      << svc.log();
  EXPECT_EQ(s.crm("SELECT \"accountName\" || ' ' || credit_limit FROM crm.accounts"),
            "Acme 125.5000");
  const json closed = status_json(s, direct)["sides"]["crm"];
  EXPECT_EQ(closed["circuit"], "closed") << closed.dump(2);
  EXPECT_TRUE(closed["circuit_opened_at"].is_null()) << closed.dump(2);
  EXPECT_TRUE(closed["circuit_retry_at"].is_null()) << closed.dump(2);
  EXPECT_EQ(closed["consecutive_failures"], 0) << closed.dump(2);
  // The CRM's listener is back too (it was left alone while the circuit was open).
  EXPECT_EQ(wait_until(
                [&] {
                  for (const json& e : events(svc.log(), "listener_connected"))
                    if (e.value("listener", "") == "side crm") return "yes";
                  return "no";
                },
                "yes", 60),
            "yes")
      << svc.log();
  ASSERT_EQ(svc.stop(), 0) << svc.log();

  // The log, in order: three failures open the circuit; while it is open nothing of the service
  // touches the CRM; each half-open is one probe that re-opens or closes it.
  const std::vector<json> log = events(svc.log());
  enum { kClosed, kOpen, kHalfOpen } state = kClosed;
  int failures_before_open = 0, opened = 0, half_opened = 0, probes_failed = 0;
  int attempts_logged = 0;
  for (const json& e : log) {
    const std::string ev = e.value("event", "");
    if (is_crm_attempt(e)) {
      ++attempts_logged;
      EXPECT_NE(state, kOpen) << "the CRM was tried while its circuit was open: " << e.dump();
      if (state == kClosed && opened == 0 && ev == "side_unavailable") ++failures_before_open;
      if (state == kHalfOpen) {
        EXPECT_EQ(ev, "side_unavailable") << e.dump();
        ++probes_failed;
      }
    }
    if (e.value("side", "") != "crm") continue;
    if (ev == "side_circuit_opened") {
      EXPECT_NE(state, kOpen) << e.dump();
      EXPECT_EQ(e.value("reopened", false), state == kHalfOpen) << e.dump();
      state = kOpen;
      ++opened;
    } else if (ev == "side_circuit_half_open") {
      EXPECT_EQ(state, kOpen) << e.dump();
      state = kHalfOpen;
      ++half_opened;
    } else if (ev == "side_circuit_closed") {
      EXPECT_EQ(state, kHalfOpen) << e.dump();
      state = kClosed;
    }
  }
  EXPECT_EQ(state, kClosed);
  EXPECT_EQ(failures_before_open, 3) << svc.log();
  EXPECT_GE(opened, 2);
  EXPECT_EQ(half_opened, opened);        // every opening ended in one probe
  EXPECT_EQ(probes_failed, opened - 1);  // all but the last failed
  // Every connection the gate saw is an attempt in the log, plus the one the service kept once
  // the CRM was back: no attempt went unlogged, so none was made while the circuit was open.
  EXPECT_EQ(gate.accepted(), attempts_logged + 1) << svc.log();
}

// What an engine that was killed left in side_state is not shown as current once the next
// engine takes the lease.
TEST(CircuitBreakerTest, WhatAnEarlierEngineLeftIsClearedWhenTheNextTakesTheLease) {
  Scenario s("circuit_left_behind");
  s.write_config(default_rules(), R"({"sides": {"crm": {"max_writes_per_s": 10}}})");
  s.mdsync_ok({"init"});
  s.control_exec(
      "INSERT INTO mdsync.side_state (side, circuit, circuit_opened_at, circuit_retry_at,"
      " throttled_since) VALUES ('crm', 'open', now(), now() + interval '1 minute', now())"
      " ON CONFLICT (side) DO UPDATE SET circuit = 'open', circuit_opened_at = now(),"
      " circuit_retry_at = now() + interval '1 minute', throttled_since = now()");
  const json before = json::parse(s.mdsync({"status", "--json"}).out)["sides"]["crm"];
  EXPECT_EQ(before["circuit"], "open") << before.dump(2);
  EXPECT_TRUE(before["throttled"].get<bool>()) << before.dump(2);
  const std::string text = s.mdsync({"status"}).out;
  EXPECT_NE(text.find("  circuit OPEN since "), std::string::npos) << text;
  EXPECT_NE(text.find("  write-backs limited to 10/s: THROTTLED since "), std::string::npos)
      << text;
  s.mdsync_ok({"run", "--once"});
  const json after = json::parse(s.mdsync({"status", "--json"}).out)["sides"]["crm"];
  EXPECT_EQ(after["circuit"], "closed") << after.dump(2);
  EXPECT_TRUE(after["circuit_opened_at"].is_null()) << after.dump(2);
  EXPECT_TRUE(after["circuit_retry_at"].is_null()) << after.dump(2);
  EXPECT_FALSE(after["throttled"].get<bool>()) << after.dump(2);
  EXPECT_TRUE(after["throttled_since"].is_null()) << after.dump(2);
}

// Writes the CRM received, by side transaction in commit order: the outbox ids of each.
std::vector<std::vector<long long>> crm_transactions(const Scenario& s) {
  std::vector<std::vector<long long>> out;
  for (const std::string& row :
       s.rows(s.crm_db(),
              "SELECT string_agg(outbox_id::text, ',' ORDER BY outbox_id) FROM mdsync.applied"
              " WHERE NOT cancelled GROUP BY xmin::text::bigint ORDER BY xmin::text::bigint")) {
    std::vector<long long> ids;
    std::size_t at = 0;
    while (at < row.size()) {
      const std::size_t comma = row.find(',', at);
      ids.push_back(std::stoll(row.substr(at, comma - at)));
      at = comma == std::string::npos ? row.size() : comma + 1;
    }
    out.push_back(ids);
  }
  return out;
}

// All of them, each transaction at most `limit` writes, in queue order across transactions.
void expect_paced(const Scenario& s, std::size_t writes, std::size_t limit) {
  const auto txns = crm_transactions(s);
  std::size_t total = 0;
  long long last = 0;
  for (const auto& ids : txns) {
    EXPECT_LE(ids.size(), limit);
    EXPECT_GT(ids.front(), last) << "a write went out before one queued earlier";
    last = ids.back();
    total += ids.size();
  }
  EXPECT_EQ(total, writes);
  EXPECT_GE(txns.size(), (writes + limit - 1) / limit);
}

void insert_erp_customers(const Scenario& s, int n) {
  s.erp_exec(
      "INSERT INTO erp.customers (account_num, cust_name, credit_lim) SELECT i,"
      " 'Customer ' || i, i * 10 FROM generate_series(1, " +
      std::to_string(n) + ") i");
}

void expect_crm_holds_customers(const Scenario& s, int n) {
  EXPECT_EQ(s.crm("SELECT count(*) FROM crm.accounts"), std::to_string(n));
  // Every row as the ERP has it: name and credit limit of each number.
  EXPECT_EQ(
      s.crm("SELECT count(*) FROM crm.accounts a JOIN generate_series(1, " + std::to_string(n) +
            ") i ON a.\"accountName\" = 'Customer ' || i AND a.credit_limit = i * 10"),
      std::to_string(n));
}

TEST(RateLimitTest, RunOnceDrainsAPacedBacklogWholeAndInOrder) {
  Scenario s("rate_limit_once");
  s.write_config(default_rules(), R"({"sides": {"crm": {"max_writes_per_s": 10}}})");
  s.mdsync_ok({"init"});
  insert_erp_customers(s, 60);
  const RunResult r = s.mdsync({"run", "--once"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_crm_holds_customers(s, 60);
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.outbox WHERE status <> 'done'"), "0");
  // Without the limit the 60 inserts go in one side transaction (a batch is 500).
  expect_paced(s, 60, 10);
  EXPECT_FALSE(events(r.err, "writeback_throttled").empty()) << r.err;
  EXPECT_FALSE(events(r.err, "writeback_unthrottled").empty()) << r.err;
}

TEST(RateLimitTest, TheServiceShowsTheSideThrottledAndSendsEverythingWithoutWaitingForAPoll) {
  Scenario s("rate_limit_service");
  // A ten-minute poll: the service must wake for the side's tokens by itself.
  s.write_config(default_rules(),
                 R"({"sides": {"crm": {"max_writes_per_s": 5}},
                     "service": {"poll_interval_ms": 600000}})");
  s.mdsync_ok({"init"});
  Service svc(s, "service");
  // 5 at once, then one every 200 ms: throttled for about 7 s.
  insert_erp_customers(s, 40);
  json st;
  ASSERT_EQ(wait_until(
                [&] {
                  st = json::parse(s.mdsync({"status", "--json"}).out);
                  return st["sides"]["crm"]["throttled"].get<bool>() ? "throttled" : "not";
                },
                "throttled", 60),
            "throttled")
      << svc.log();
  EXPECT_EQ(st["sides"]["crm"]["max_writes_per_s"], 5) << st.dump(2);
  EXPECT_TRUE(st["sides"]["crm"]["throttled_since"].is_string()) << st.dump(2);
  EXPECT_TRUE(st["sides"]["erp"]["max_writes_per_s"].is_null()) << st.dump(2);
  EXPECT_FALSE(st["sides"]["erp"]["throttled"].get<bool>()) << st.dump(2);
  EXPECT_EQ(wait_until([&] { return s.crm("SELECT count(*) FROM crm.accounts"); }, "40", 90), "40")
      << svc.log();
  expect_crm_holds_customers(s, 40);
  EXPECT_EQ(wait_until(
                [&] {
                  const json after = json::parse(s.mdsync({"status", "--json"}).out);
                  return after["sides"]["crm"]["throttled"].get<bool>() ? "throttled" : "not";
                },
                "not", 60),
            "not")
      << svc.log();
  const std::string text = s.mdsync({"status"}).out;
  EXPECT_NE(text.find("  write-backs limited to 5/s: not throttling\n"), std::string::npos) << text;
  EXPECT_EQ(svc.stop(), 0) << svc.log();
  expect_paced(s, 40, 5);
}

}  // namespace
}  // namespace mdsync::e2e
