// `mdsync verify [--repair]` (issue 13) between the demo ERP and CRM: what capture never saw
// (writes with session_replication_role = replica, which skips the capture trigger, and a
// TRUNCATE, which fires no row trigger) is found field by field, row by row and link by link,
// and repaired: golden goes back where another side owns the unit, an uncaptured_value conflict
// holds a unit the side owns or shares, a row gone from a side whose deletes do not count is
// re-created, the deleting side's own uncaptured delete waits for a steward, and a row with no
// link is captured again.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "e2e_harness.hpp"
#include "fault_harness.hpp"

namespace mdsync::e2e {
namespace {

using nlohmann::json;

// Three ERP customers, created on the CRM and linked.
void three_synced(Scenario& s, const std::string& config_patch = "{}") {
  s.write_config(default_rules(), config_patch);
  s.mdsync_ok({"init"});
  s.erp_exec(
      "INSERT INTO erp.customers (account_num, cust_name, credit_lim, segment_code) VALUES"
      " (1, 'Acme', 1000.50, 'smb'), (2, 'Globex', 2000.00, 'enterprise'),"
      " (3, 'Initech', 3000.00, 'public')");
  s.mdsync_ok({"run", "--once"});
  ASSERT_EQ(s.crm("SELECT count(*) FROM crm.accounts"), "3");
}

// Runs `sql` on a side with capture bypassed, as a superuser or the table's owner can.
void bypassing_capture(const Scenario& s, const std::string& db, const std::string& sql) {
  const std::string all = "SET LOCAL session_replication_role = replica; " + sql;
  if (db == "erp")
    s.erp_exec(all);
  else
    s.crm_exec(all);
}

std::string crm_key_of(const Scenario& s, int account_num) {
  return s.control(
      "SELECT x2.row_key FROM mdsync.crosswalk x1 JOIN mdsync.crosswalk x2"
      " ON x2.golden_id = x1.golden_id AND x2.side = 'crm'"
      " WHERE x1.side = 'erp' AND x1.row_key = '" +
      std::to_string(account_num) + "'");
}

json verify_json(const Scenario& s, std::vector<std::string> extra, int expected_exit) {
  std::vector<std::string> args = {"verify", "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  const RunResult r = s.mdsync(args);
  EXPECT_EQ(r.exit_code, expected_exit) << r.out << r.err;
  return json::parse(r.out);
}

TEST(VerifyTest, ConvergedSidesHaveNoDifference) {
  Scenario s("verify_clean");
  three_synced(s);
  const RunResult r = s.mdsync({"verify"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("verify: 6 rows and 6 links checked, 0 differences"), std::string::npos)
      << r.out;
  for (const std::string chunk : {"1000", "2", "1"}) {
    const json j = verify_json(s, {"--chunk-rows", chunk}, 0);
    EXPECT_TRUE(j["differences"].empty()) << chunk;
    EXPECT_EQ(j["summary"]["rows_checked"], 6) << chunk;
    EXPECT_EQ(j["summary"]["links_checked"], 6) << chunk;
  }
}

TEST(VerifyTest, AChangeNotReconciledYetIsInFlightNotADifference) {
  Scenario s("verify_in_flight");
  three_synced(s);
  // Captured, not reconciled: the CRM's row differs from golden, and the capture explains it.
  s.crm_exec("UPDATE crm.accounts SET credit_limit = 5 WHERE id = '" + crm_key_of(s, 1) + "'");
  const json j = verify_json(s, {}, 0);
  EXPECT_TRUE(j["differences"].empty()) << j.dump();
  EXPECT_EQ(j["summary"]["differences"], 0);
  EXPECT_EQ(j["summary"]["in_flight"], 1) << "the row was looked at again and its capture found";
}

TEST(VerifyTest, ARowWithAWriteBackQueuedIsInFlightNotADifference) {
  Scenario s("verify_queued");
  three_synced(s);
  // The CRM is paused: the ERP's change is decided and its write-back to the CRM waits.
  s.mdsync_ok({"pause", "crm"});
  s.erp_exec("UPDATE erp.customers SET credit_lim = 1234.00 WHERE account_num = 2");
  s.mdsync_ok({"run", "--once"});
  const json j = verify_json(s, {}, 0);
  EXPECT_TRUE(j["differences"].empty()) << j.dump();
  EXPECT_EQ(j["summary"]["in_flight"], 1);
  s.mdsync_ok({"resume", "crm"});
  s.mdsync_ok({"run", "--once"});
  const json after = verify_json(s, {}, 0);
  EXPECT_EQ(after["summary"]["in_flight"], 0);
}

TEST(VerifyTest, AWriteThatBypassedCaptureIsFoundAndRepairedByTheRules) {
  Scenario s("verify_bypassed_write");
  three_synced(s);
  const std::string crm1 = crm_key_of(s, 1);
  // credit_limit belongs to the ERP, email to the CRM.
  bypassing_capture(s, "crm",
                    "UPDATE crm.accounts SET credit_limit = 999, email = 'old@acme.example'"
                    " WHERE id = '" +
                        crm1 + "'");
  const std::string gid = s.control(
      "SELECT golden_id FROM mdsync.crosswalk WHERE side = 'erp'"
      " AND row_key = '1'");

  const RunResult report = s.mdsync({"verify"});
  EXPECT_EQ(report.exit_code, 1);
  EXPECT_NE(report.out.find("crm customer " + crm1 + " (golden " + gid +
                            "): credit_limit: crm holds \"999\", golden \"1000.5\""),
            std::string::npos)
      << report.out;
  EXPECT_NE(report.out.find("email: crm holds \"old@acme.example\", golden NULL"),
            std::string::npos)
      << report.out;
  EXPECT_NE(report.err.find("2 differences found; `mdsync verify --repair` repairs them"),
            std::string::npos)
      << report.err;
  // Reporting changed nothing.
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.conflict"), "0");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.outbox WHERE status = 'pending'"), "0");

  const json repaired = verify_json(s, {"--repair"}, 0);
  ASSERT_EQ(repaired["differences"].size(), 2u) << repaired.dump();
  for (const json& d : repaired["differences"]) {
    EXPECT_EQ(d["kind"], "value");
    EXPECT_EQ(d["side"], "crm");
    EXPECT_EQ(d["row_key"], crm1);
    EXPECT_TRUE(d["repaired"].get<bool>());
    if (d["field"] == "credit_limit") {
      EXPECT_EQ(d["side_value"], "999");
      EXPECT_EQ(d["golden_value"], "1000.5");
      EXPECT_EQ(d["repair"], "golden goes back (write-back queued)");
    } else {
      EXPECT_EQ(d["field"], "email");
      EXPECT_EQ(d["repair"].get<std::string>().rfind("uncaptured_value conflict ", 0), 0u)
          << d.dump();
    }
  }
  EXPECT_EQ(repaired["summary"]["conflicts_opened"], 1);
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.audit WHERE decision = 'repair'"
                      " AND unit = 'credit_limit' AND source = 'verify:crm'"),
            "1");
  const std::string conflict = s.control(
      "SELECT id FROM mdsync.conflict WHERE kind = 'uncaptured_value' AND status = 'open' AND unit "
      "= 'email'"
      " AND side = 'crm'");
  ASSERT_NE(conflict, "<none>");
  // A second --repair before the engine ran changes nothing: the write-back is queued (in
  // flight) and the conflict holds email.
  const json again = verify_json(s, {"--repair"}, 0);
  EXPECT_TRUE(again["differences"].empty()) << again.dump();
  EXPECT_EQ(again["summary"]["in_flight"], 1);
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.conflict"), "1");

  s.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s.crm("SELECT credit_limit FROM crm.accounts WHERE id = '" + crm1 + "'"), "1000.5000");
  EXPECT_EQ(s.crm("SELECT email FROM crm.accounts WHERE id = '" + crm1 + "'"), "old@acme.example")
      << "held by the uncaptured_value conflict until a steward decides";
  EXPECT_EQ(s.erp("SELECT email_addr FROM erp.customers WHERE account_num = 1"), "<null>");

  // The CRM owns email: the steward hears it.
  s.mdsync_ok({"conflicts", "resolve", conflict, "--take", "crm"});
  s.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s.erp("SELECT email_addr FROM erp.customers WHERE account_num = 1"),
            "old@acme.example");
  const json after = verify_json(s, {}, 0);
  EXPECT_TRUE(after["differences"].empty()) << after.dump();
}

TEST(VerifyTest, DismissingAnUncapturedValueConflictWritesGoldenBackToTheSide) {
  Scenario s("verify_uncaptured_dismissed");
  three_synced(s);
  // segment is shared: the ERP's uncaptured value waits for a steward.
  bypassing_capture(s, "erp",
                    "UPDATE erp.customers SET segment_code = 'public' WHERE account_num = 2");
  const json repaired = verify_json(s, {"--repair"}, 0);
  ASSERT_EQ(repaired["differences"].size(), 1u) << repaired.dump();
  EXPECT_EQ(repaired["differences"][0]["field"], "segment");
  const std::string conflict = s.control(
      "SELECT id FROM mdsync.conflict WHERE kind = 'uncaptured_value' AND status = 'open'");
  ASSERT_NE(conflict, "<none>");
  s.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s.erp("SELECT segment_code FROM erp.customers WHERE account_num = 2"), "public");
  s.mdsync_ok({"conflicts", "dismiss", conflict});
  s.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s.erp("SELECT segment_code FROM erp.customers WHERE account_num = 2"), "enterprise");
  EXPECT_TRUE(verify_json(s, {}, 0)["differences"].empty());
}

TEST(VerifyTest, ATruncatedSideIsReCreatedFromGolden) {
  Scenario s("verify_truncate");
  three_synced(s);
  const std::string crm2 = crm_key_of(s, 2);
  s.crm_exec("TRUNCATE crm.accounts");

  const json report = verify_json(s, {"--chunk-rows", "2"}, 1);
  ASSERT_EQ(report["differences"].size(), 3u) << report.dump();
  for (const json& d : report["differences"]) {
    EXPECT_EQ(d["kind"], "missing");
    EXPECT_EQ(d["side"], "crm");
  }
  EXPECT_EQ(report["summary"]["rows_checked"], 3) << "the ERP's three";

  const json repaired = verify_json(s, {"--repair"}, 0);
  ASSERT_EQ(repaired["differences"].size(), 3u);
  for (const json& d : repaired["differences"])
    EXPECT_EQ(d["repair"], "re-created from golden (insert queued)");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.audit WHERE decision = 'repair'"
                      " AND unit = '*record*'"),
            "3");
  s.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s.crm("SELECT string_agg(\"accountName\" || '=' || credit_limit, ',' ORDER BY"
                  " \"accountName\") FROM crm.accounts"),
            "Acme=1000.5000,Globex=2000.0000,Initech=3000.0000");
  EXPECT_NE(crm_key_of(s, 2), crm2) << "linked to the new row";
  EXPECT_TRUE(verify_json(s, {}, 0)["differences"].empty());
  // Nothing went the other way: the ERP kept its rows.
  EXPECT_EQ(s.erp("SELECT count(*) FROM erp.customers WHERE is_active"), "3");
}

TEST(VerifyTest, TheDeletingSidesUncapturedDeleteWaitsForAStewardAndAnUnlinkedRowIsCaptured) {
  Scenario s("verify_owner_delete");
  three_synced(s);
  const std::string crm2 = crm_key_of(s, 2);
  // The ERP owns deletes: its uncaptured delete is not propagated on verify's word alone.
  bypassing_capture(s, "erp", "DELETE FROM erp.customers WHERE account_num = 2");
  bypassing_capture(s, "erp",
                    "INSERT INTO erp.customers (account_num, cust_name, credit_lim)"
                    " VALUES (40, 'Restored From Backup', 40.00)");

  const json repaired = verify_json(s, {"--repair"}, 0);
  ASSERT_EQ(repaired["differences"].size(), 2u) << repaired.dump();
  for (const json& d : repaired["differences"]) {
    if (d["kind"] == "unlinked") {
      EXPECT_EQ(d["row_key"], "40");
      EXPECT_EQ(d["repair"],
                "captured again: the engine links it, creates a record or asks a steward");
    } else {
      EXPECT_EQ(d["kind"], "missing");
      EXPECT_EQ(d["row_key"], "2");
      EXPECT_EQ(d["repair"].get<std::string>().rfind("foreign_delete conflict ", 0), 0u)
          << d.dump();
    }
  }
  s.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s.crm("SELECT active FROM crm.accounts WHERE id = '" + crm2 + "'"), "t")
      << "not deactivated before the steward decides";
  EXPECT_EQ(s.crm("SELECT count(*) FROM crm.accounts WHERE \"accountName\" = "
                  "'Restored From Backup'"),
            "1");

  const std::string conflict =
      s.control("SELECT id FROM mdsync.conflict WHERE kind = 'foreign_delete' AND status = 'open'");
  ASSERT_NE(conflict, "<none>");
  s.mdsync_ok({"conflicts", "dismiss", conflict});
  s.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s.erp("SELECT count(*) FROM erp.customers WHERE cust_name = 'Globex'"
                  " AND credit_lim = 2000.00"),
            "1")
      << "re-created on the ERP";
  EXPECT_TRUE(verify_json(s, {}, 0)["differences"].empty());
}

TEST(VerifyTest, TheServiceVerifiesEveryIntervalAndRepairsWhenConfiguredTo) {
  Scenario s("verify_periodic");
  three_synced(s, R"({"service": {"verify_interval_s": 1, "verify_repair": true}})");
  fault::Service svc(s, "verify_periodic");
  const std::string crm3 = crm_key_of(s, 3);
  bypassing_capture(s, "crm", "UPDATE crm.accounts SET credit_limit = 1 WHERE id = '" + crm3 + "'");
  // Nothing was captured: only the periodic verify can find it.
  EXPECT_EQ(
      wait_until(
          [&] { return s.crm("SELECT credit_limit FROM crm.accounts WHERE id = '" + crm3 + "'"); },
          "3000.0000", 60),
      "3000.0000")
      << svc.log();
  EXPECT_EQ(svc.stop(), 0) << svc.log();
  bool found = false;
  for (const json& e : fault::events(svc.log(), "verify_difference"))
    found |= e.value("row_key", "") == crm3 && e.value("field", "") == "credit_limit" &&
             e.value("repair", "") == "golden goes back (write-back queued)";
  EXPECT_TRUE(found) << svc.log();
  EXPECT_FALSE(fault::events(svc.log(), "verify_done").empty()) << svc.log();
  for (const json& e : fault::events(svc.log(), "verify_difference"))
    EXPECT_FALSE(e.contains("side_value") || e.contains("golden_value")) << "no values logged";
}

TEST(VerifyTest, ALinkWhoseKeyTheSideCannotHoldIsADifferenceNotAFailure) {
  Scenario s("verify_bad_key");
  three_synced(s);
  // The ERP's key is an integer: 'x3' cannot be one (a key column whose type changed since).
  s.control_exec("UPDATE mdsync.crosswalk SET row_key = 'x3' WHERE side = 'erp' AND row_key = '3'");
  const json j = verify_json(s, {}, 1);
  ASSERT_EQ(j["differences"].size(), 2u) << j.dump();
  std::set<std::string> seen;
  for (const json& d : j["differences"])
    seen.insert(d["kind"].get<std::string>() + " " + d["row_key"].get<std::string>());
  EXPECT_EQ(seen, (std::set<std::string>{"missing x3", "unlinked 3"}));
}

TEST(VerifyTest, AnUnknownEntityIsAUsageError) {
  Scenario s("verify_usage");
  s.write_config();
  s.mdsync_ok({"init"});
  const RunResult r = s.mdsync({"verify", "--entity", "nosuch"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("nosuch"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mdsync::e2e
