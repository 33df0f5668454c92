// `mdsync pause` and `mdsync resume` (issue 13): nothing is written to a paused side while its
// changes are still captured and reconciled (and written to the other sides); its write-backs
// wait, in order, and are sent once it is resumed. `status` shows who paused it and why, and
// `run --once` does not count the held write-backs as a failed drain.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "e2e_harness.hpp"

namespace mdsync::e2e {
namespace {

using nlohmann::json;

void two_synced(Scenario& s) {
  s.write_config();
  s.mdsync_ok({"init"});
  s.erp_exec(
      "INSERT INTO erp.customers (account_num, cust_name, credit_lim) VALUES"
      " (1, 'Acme', 100.00), (2, 'Globex', 200.00)");
  s.mdsync_ok({"run", "--once"});
  ASSERT_EQ(s.crm("SELECT count(*) FROM crm.accounts"), "2");
}

json status_of(const Scenario& s) {
  const RunResult r = s.mdsync({"status", "--json"});
  return json::parse(r.out);
}

TEST(PauseTest, APausedSideIsNotWrittenAndGetsWhatWaitedOnResume) {
  Scenario s("pause_resume");
  two_synced(s);
  EXPECT_EQ(s.mdsync_ok({"pause", "crm", "--note", "CRM upgrade tonight"}),
            "paused crm: capture goes on; write-backs to it wait until `mdsync resume crm`\n");
  s.erp_exec("UPDATE erp.customers SET credit_lim = 150.00 WHERE account_num = 1");
  s.erp_exec("UPDATE erp.customers SET credit_lim = 175.00 WHERE account_num = 1");
  // The CRM's own change is still captured and reaches the ERP.
  s.crm_exec("UPDATE crm.accounts SET phone = '+32 2 555 0101' WHERE \"accountName\" = 'Globex'");
  const RunResult drained = s.mdsync({"run", "--once"});
  EXPECT_EQ(drained.exit_code, 0) << drained.err;
  EXPECT_NE(drained.err.find("\"held_for_paused_sides\":1"), std::string::npos) << drained.err;
  EXPECT_EQ(s.crm("SELECT credit_limit FROM crm.accounts WHERE \"accountName\" = 'Acme'"),
            "100.0000");
  EXPECT_EQ(s.erp("SELECT phone_no FROM erp.customers WHERE account_num = 2"), "+32 2 555 0101");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.outbox WHERE side = 'crm'"
                      " AND status = 'pending'"),
            "1");

  const json st = status_of(s);
  EXPECT_TRUE(st["sides"]["crm"]["paused"].get<bool>());
  EXPECT_FALSE(st["sides"]["erp"]["paused"].get<bool>());
  EXPECT_EQ(st["sides"]["crm"]["pause_note"], "CRM upgrade tonight");
  EXPECT_EQ(st["sides"]["crm"]["paused_by"],
            steward_source().substr(std::string("steward:").size()));
  EXPECT_EQ(st["sides"]["crm"]["writeback_pending"], 1);
  const RunResult text = s.mdsync({"status"});
  EXPECT_NE(text.out.find("PAUSED since "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("(CRM upgrade tonight): capture goes on"), std::string::npos) << text.out;

  EXPECT_EQ(s.mdsync_ok({"resume", "crm"}),
            "resumed crm: its queued write-backs are sent at the next pass\n");
  s.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s.crm("SELECT credit_limit FROM crm.accounts WHERE \"accountName\" = 'Acme'"),
            "175.0000");
  EXPECT_FALSE(status_of(s)["sides"]["crm"]["paused"].get<bool>());
  EXPECT_EQ(s.mdsync_ok({"resume", "crm"}), "crm was not paused\n");
}

TEST(PauseTest, PauseWithoutASidePausesEverySideAndAnUnknownSideIsAUsageError) {
  Scenario s("pause_all");
  two_synced(s);
  EXPECT_EQ(s.mdsync_ok({"pause"}),
            "paused crm: capture goes on; write-backs to it wait until `mdsync resume crm`\n"
            "paused erp: capture goes on; write-backs to it wait until `mdsync resume erp`\n");
  EXPECT_EQ(s.mdsync_ok({"pause", "erp"}), "erp was already paused\n");
  s.crm_exec("UPDATE crm.accounts SET phone = '+1' WHERE \"accountName\" = 'Acme'");
  s.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s.erp("SELECT phone_no FROM erp.customers WHERE account_num = 1"), "<null>");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.outbox WHERE side = 'erp'"
                      " AND status = 'pending'"),
            "1");

  const RunResult bad = s.mdsync({"pause", "sap"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("sap"), std::string::npos) << bad.err;

  s.mdsync_ok({"resume"});
  s.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s.erp("SELECT phone_no FROM erp.customers WHERE account_num = 1"), "+1");
}

}  // namespace
}  // namespace mdsync::e2e
