// End-to-end tests of the walking skeleton: the real binary keeps a real ERP and CRM in
// sync. Each test states the DESIGN.md guarantee it proves and fails when it breaks.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>

#include "e2e_harness.hpp"
#include "mdsync/core/value.hpp"

namespace mdsync::e2e {
namespace {

using nlohmann::json;

struct FieldMap {
  const char* field;
  core::FieldType type;
  const char* erp;
  const char* crm;
};
const FieldMap kFields[] = {
    {"name", core::FieldType::kText, "cust_name", "\"accountName\""},
    {"phone", core::FieldType::kText, "phone_no", "phone"},
    {"email", core::FieldType::kText, "email_addr", "email"},
    {"credit_limit", core::FieldType::kNumeric, "credit_lim", "credit_limit"},
    {"segment", core::FieldType::kText, "segment_code", "segment"},
    {"street", core::FieldType::kText, "street", "billing_street"},
    {"city", core::FieldType::kText, "city", "billing_city"},
    {"zip", core::FieldType::kText, "zip", "billing_zip"},
    {"country", core::FieldType::kText, "country", "billing_country"},
    {"active", core::FieldType::kBoolean, "is_active", "active"},
};

// Field values of one side row, canonical, keyed by field name.
core::FieldValues side_row(const Scenario& s, const std::string& side, const std::string& key) {
  std::string cols;
  for (const auto& f : kFields) {
    cols += std::string(cols.empty() ? "" : ", ") + (side == "erp" ? f.erp : f.crm) + "::text";
  }
  const std::string sql = side == "erp"
                              ? "SELECT " + cols + " FROM erp.customers WHERE account_num = " + key
                              : "SELECT " + cols + " FROM crm.accounts WHERE id = '" + key + "'";
  const auto rows = s.rows(side == "erp" ? s.erp_db() : s.crm_db(), sql);
  core::FieldValues out;
  if (rows.empty()) return out;
  std::size_t start = 0, i = 0;
  const std::string& line = rows[0];
  for (const auto& f : kFields) {
    const std::size_t bar = line.find('|', start);
    std::string raw =
        line.substr(start, bar == std::string::npos ? std::string::npos : bar - start);
    start = bar + 1;
    core::Value v = raw == "<null>" ? core::Value{} : core::Value{raw};
    out[f.field] = core::canonicalize(f.type, v).value_or(v);
    ++i;
  }
  return out;
}

// Every difference between a side and the golden record, except fields held by an open
// conflict. Empty means DESIGN.md guarantee 1 holds.
std::vector<std::string> divergences(const Scenario& s) {
  std::vector<std::string> out;
  for (const std::string& line :
       s.rows(s.control_db(),
              "SELECT g.id, g.\"values\"::text, x.side, x.row_key,"
              " coalesce((SELECT jsonb_agg(c.unit) FROM mdsync.conflict c"
              "  WHERE c.golden_id = g.id AND c.status = 'open'), '[]')::text"
              " FROM mdsync.golden g JOIN mdsync.crosswalk x ON x.golden_id = g.id"
              " ORDER BY g.id, x.side")) {
    // id|values|side|key|held — values is JSON and may contain '|', so split from both ends.
    const std::size_t first = line.find('|');
    const std::size_t last = line.rfind('|');
    const std::size_t key_bar = line.rfind('|', last - 1);
    const std::size_t side_bar = line.rfind('|', key_bar - 1);
    const std::string id = line.substr(0, first);
    const json golden = json::parse(line.substr(first + 1, side_bar - first - 1));
    const std::string side = line.substr(side_bar + 1, key_bar - side_bar - 1);
    const std::string key = line.substr(key_bar + 1, last - key_bar - 1);
    const json held = json::parse(line.substr(last + 1));
    const core::FieldValues row = side_row(s, side, key);
    if (row.empty()) {
      out.push_back("golden " + id + ": " + side + " row " + key + " is missing");
      continue;
    }
    for (const auto& f : kFields) {
      const bool address = std::string(f.field) == "street" || std::string(f.field) == "city" ||
                           std::string(f.field) == "zip" || std::string(f.field) == "country";
      bool is_held = false;
      for (const auto& u : held) is_held = is_held || u == f.field || (address && u == "address");
      if (is_held) continue;
      const core::Value g = golden[f.field].is_null()
                                ? core::Value{}
                                : core::Value{golden[f.field].get<std::string>()};
      if (!core::values_equal(f.type, core::Compare::kExact, g, row.at(f.field)))
        out.push_back("golden " + id + "." + f.field + " = " + core::show(g) + " but " + side +
                      " " + key + " holds " + core::show(row.at(f.field)));
    }
  }
  return out;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

void insert_customers(const Scenario& s) {
  s.erp_exec(
      "INSERT INTO erp.customers (cust_name, credit_lim, segment_code, street, city, zip, country)"
      " SELECT 'Customer ' || i, 1000 * i + 0.25, 'smb', i || ' Main St', 'Ghent', '900' || i, 'BE'"
      " FROM generate_series(1, 5) i");
  s.crm_exec(
      "INSERT INTO crm.accounts (\"accountName\", phone, email, credit_limit, segment)"
      " VALUES ('Prospect A', '+1 555 0001', 'a@example.com', 0, 'enterprise'),"
      "        ('Prospect B', '+1 555 0002', 'b@example.com', 0, 'public'),"
      "        ('Prospect C', NULL, NULL, NULL, NULL)");
}

class SkeletonTest : public ::testing::Test {
 protected:
  explicit SkeletonTest() : s_(::testing::UnitTest::GetInstance()->current_test_info()->name()) {}
  void SetUp() override {
    s_.write_config();
    s_.mdsync_ok({"init"});
  }
  Scenario s_;
};

// Guarantee 1: once changes stop, every side holds the golden value of every field.
TEST_F(SkeletonTest, ConvergesAfterCreatesAndEditsOnBothSides) {
  insert_customers(s_);
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s_.erp("SELECT count(*) FROM erp.customers"), "8");
  EXPECT_EQ(s_.crm("SELECT count(*) FROM crm.accounts"), "8");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.crosswalk"), "16");

  s_.crm_exec(
      "UPDATE crm.accounts SET phone = '+32 9 000 0000' WHERE \"accountName\" = 'Customer 2'");
  s_.erp_exec("UPDATE erp.customers SET credit_lim = 7777.70 WHERE cust_name = 'Customer 3'");
  s_.crm_exec(
      "UPDATE crm.accounts SET \"accountName\" = 'Customer Four' WHERE \"accountName\" = 'Customer "
      "4'");
  s_.erp_exec(
      "UPDATE erp.customers SET street = '1 New St', city = 'Bruges', zip = '8000' WHERE cust_name "
      "= 'Customer 5'");
  s_.erp_exec("UPDATE erp.customers SET segment_code = 'public' WHERE cust_name = 'Prospect A'");
  s_.mdsync_ok({"run", "--once"});

  EXPECT_EQ(joined(divergences(s_)), "");
  EXPECT_EQ(s_.erp("SELECT phone_no FROM erp.customers WHERE cust_name = 'Customer 2'"),
            "+32 9 000 0000");
  EXPECT_EQ(s_.crm("SELECT credit_limit FROM crm.accounts WHERE \"accountName\" = 'Customer 3'"),
            "7777.7000");
  EXPECT_EQ(s_.erp("SELECT count(*) FROM erp.customers WHERE cust_name = 'Customer Four'"), "1");
  EXPECT_EQ(
      s_.crm("SELECT billing_street || ', ' || billing_zip || ' ' || billing_city FROM crm.accounts"
             " WHERE \"accountName\" = 'Customer 5'"),
      "1 New St, 8000 Bruges");
  EXPECT_EQ(s_.crm("SELECT segment FROM crm.accounts WHERE \"accountName\" = 'Prospect A'"),
            "public");
}

// Guarantee 2: a golden value of a field owned by X comes only from X (or a steward).
TEST_F(SkeletonTest, ForeignWriteToOwnedFieldIsRevertedAndNeverBecomesGolden) {
  insert_customers(s_);
  s_.mdsync_ok({"run", "--once"});
  s_.crm_exec("UPDATE crm.accounts SET credit_limit = 999999 WHERE \"accountName\" = 'Customer 1'");
  s_.crm_exec("UPDATE crm.accounts SET credit_limit = 5 WHERE \"accountName\" = 'Prospect A'");
  s_.mdsync_ok({"run", "--once"});

  EXPECT_EQ(s_.crm("SELECT credit_limit FROM crm.accounts WHERE \"accountName\" = 'Customer 1'"),
            "1000.2500");
  EXPECT_EQ(s_.erp("SELECT credit_lim FROM erp.customers WHERE cust_name = 'Customer 1'"),
            "1000.25");
  // The two updates were reverted, golden unchanged by them. (Prospect C's empty credit
  // limit was reverted too, when the CRM created it: golden went from nothing to the ERP
  // rule's default 0, so its audit row has old != new.)
  EXPECT_EQ(
      s_.control("SELECT count(*) FROM mdsync.audit WHERE unit = 'credit_limit'"
                 " AND decision = 'revert' AND source LIKE 'crm#%' AND old_value = new_value"),
      "2");
  // The golden credit_limit only ever changed through the ERP, a steward, or the rule's
  // default when the CRM created a record (never to a value the CRM proposed).
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.audit WHERE unit = 'credit_limit'"
                       " AND old_value IS DISTINCT FROM new_value"
                       " AND source NOT LIKE 'erp#%' AND source NOT LIKE 'steward:%'"
                       " AND (decision = 'accept' OR new_value <> '{\"credit_limit\": \"0\"}')"),
            "0");
  EXPECT_EQ(joined(divergences(s_)), "");
}

// Guarantee 2 with on_foreign_write: quarantine: the foreign value is held, not applied.
TEST_F(SkeletonTest, QuarantinedForeignWriteOpensConflictAndKeepsGolden) {
  std::string rules = default_rules();
  const std::string from = R"("credit_limit": { "owner": "erp", "on_foreign_write": "revert")";
  ASSERT_NE(rules.find(from), std::string::npos);
  rules.replace(rules.find(from), from.size(),
                R"("credit_limit": { "owner": "erp", "on_foreign_write": "quarantine")");
  s_.write_config(rules);
  s_.mdsync_ok({"rules", "apply"});
  insert_customers(s_);
  s_.mdsync_ok({"run", "--once"});
  s_.crm_exec("UPDATE crm.accounts SET credit_limit = 42 WHERE \"accountName\" = 'Customer 2'");
  s_.mdsync_ok({"run", "--once"});

  // Two foreign writes are held: Prospect C was created on the CRM with no credit limit
  // (the ERP's rule default is 0), and the CRM's edit of Customer 2.
  const json open = json::parse(s_.mdsync_ok({"conflicts", "list", "--json"}));
  ASSERT_EQ(open.size(), 2u) << open.dump(2);
  EXPECT_EQ(open[0]["kind"], "foreign_write");
  EXPECT_EQ(open[0]["values"]["crm"]["credit_limit"], nullptr);
  EXPECT_EQ(open[0]["values"]["erp"]["credit_limit"], "0");
  EXPECT_EQ(open[1]["kind"], "foreign_write");
  EXPECT_EQ(open[1]["unit"], "credit_limit");
  EXPECT_EQ(open[1]["values"]["crm"]["credit_limit"], "42");
  EXPECT_EQ(open[1]["values"]["erp"]["credit_limit"], "2000.25");
  EXPECT_EQ(s_.crm("SELECT credit_limit FROM crm.accounts WHERE \"accountName\" = 'Customer 2'"),
            "42.0000");
  EXPECT_EQ(s_.erp("SELECT credit_lim FROM erp.customers WHERE cust_name = 'Customer 2'"),
            "2000.25");
  EXPECT_EQ(joined(divergences(s_)), "");  // the held field is exempt; everything else converged
}

// Guarantee 5: the engine's own writes are not captured, and a quiet system does no work.
TEST_F(SkeletonTest, EngineWritesAreNotCapturedAndQuietSystemDoesNoWork) {
  insert_customers(s_);
  // Capture works for users: 5 inserts on the ERP are 5 captured rows before the engine runs.
  EXPECT_EQ(s_.erp("SELECT count(*) FROM mdsync.capture"), "5");
  s_.mdsync_ok({"run", "--once"});
  s_.crm_exec("UPDATE crm.accounts SET phone = '+1 555 9999' WHERE \"accountName\" = 'Customer 1'");
  s_.mdsync_ok({"run", "--once"});
  ASSERT_EQ(joined(divergences(s_)), "");
  // The engine wrote 8 inserts and an update, none of them came back as a captured change.
  EXPECT_EQ(s_.erp("SELECT count(*) FROM mdsync.capture"), "0");
  EXPECT_EQ(s_.crm("SELECT count(*) FROM mdsync.capture"), "0");
  const std::string outbox = s_.control("SELECT count(*) FROM mdsync.outbox");
  const std::string audit = s_.control("SELECT count(*) FROM mdsync.audit");
  const RunResult quiet = s_.mdsync({"run", "--once", "--log-level", "info"});
  ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_NE(quiet.err.find(R"("changes":0)"), std::string::npos) << quiet.err;
  EXPECT_NE(quiet.err.find(R"("writes_applied":0)"), std::string::npos) << quiet.err;
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.outbox"), outbox);
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.audit"), audit);
}

// A concurrent edit of a shared field is queued; the rest of the record keeps syncing;
// the steward's resolution converges both sides and is audited.
TEST_F(SkeletonTest, ConcurrentSharedEditIsQueuedThenResolvedBySteward) {
  insert_customers(s_);
  s_.mdsync_ok({"run", "--once"});
  s_.erp_exec("UPDATE erp.customers SET segment_code = 'public' WHERE cust_name = 'Customer 3'");
  s_.crm_exec(
      "UPDATE crm.accounts SET segment = 'enterprise', email = 'c3@example.com'"
      " WHERE \"accountName\" = 'Customer 3'");
  s_.mdsync_ok({"run", "--once"});

  const json open = json::parse(s_.mdsync_ok({"conflicts", "list", "--json"}));
  ASSERT_EQ(open.size(), 1u) << open.dump(2);
  EXPECT_EQ(open[0]["kind"], "concurrent_edit");
  EXPECT_EQ(open[0]["unit"], "segment");
  EXPECT_EQ(s_.erp("SELECT email_addr FROM erp.customers WHERE cust_name = 'Customer 3'"),
            "c3@example.com");
  EXPECT_EQ(joined(divergences(s_)), "");

  const std::string id = std::to_string(open[0]["id"].get<std::int64_t>());
  s_.mdsync_ok({"conflicts", "resolve", id, "--take", "crm", "--note", "checked"});
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s_.erp("SELECT segment_code FROM erp.customers WHERE cust_name = 'Customer 3'"),
            "enterprise");
  EXPECT_EQ(s_.crm("SELECT segment FROM crm.accounts WHERE \"accountName\" = 'Customer 3'"),
            "enterprise");
  EXPECT_EQ(json::parse(s_.mdsync_ok({"conflicts", "list", "--json"})).size(), 0u);
  EXPECT_EQ(s_.control("SELECT status || ' ' || resolved_by FROM mdsync.conflict WHERE id = " + id),
            "resolved " + steward_source());
  EXPECT_EQ(
      s_.control("SELECT count(*) FROM mdsync.audit WHERE decision = 'resolve' AND source = " +
                 steward_source_sql()),
      "1");
  EXPECT_EQ(joined(divergences(s_)), "");
  // Resolving again is refused with a clear message.
  const RunResult again = s_.mdsync({"conflicts", "resolve", id, "--take", "erp"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("already resolved"), std::string::npos) << again.err;
}

// A record created on the CRM is created on the ERP with the ERP's own key, and linked.
TEST_F(SkeletonTest, CreateOnCrmGetsErpKeyAndCrosswalkLink) {
  s_.erp_exec("SELECT setval('erp.customers_account_num_seq', 500)");
  s_.crm_exec(
      "INSERT INTO crm.accounts (id, \"accountName\", phone) VALUES"
      " ('11111111-2222-3333-4444-555555555555', 'Linked Ltd', '+44 20 0000')");
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s_.erp("SELECT account_num || ' ' || cust_name || ' ' || phone_no FROM erp.customers"),
            "501 Linked Ltd +44 20 0000");
  const json rec = json::parse(s_.mdsync_ok(
      {"records", "show", "customer", "crm:11111111-2222-3333-4444-555555555555", "--json"}));
  EXPECT_EQ(rec["sides"]["erp"]["row_key"], "501");
  EXPECT_EQ(rec["sides"]["crm"]["row_key"], "11111111-2222-3333-4444-555555555555");
  EXPECT_EQ(rec["values"]["name"], "Linked Ltd");
  // The ERP owns credit_limit: the CRM-made record gets the rule's default, on both sides.
  EXPECT_EQ(rec["values"]["credit_limit"], "0");
  EXPECT_EQ(s_.crm("SELECT credit_limit FROM crm.accounts"), "0.0000");
  const json same = json::parse(s_.mdsync_ok({"records", "show", "customer", "erp:501", "--json"}));
  EXPECT_EQ(same["golden_id"], rec["golden_id"]);
  // Provenance is stored without its defaults (no steward here) and shown in full.
  const json name = rec["provenance"]["name"];
  EXPECT_EQ(name["side"], "crm") << rec.dump(2);
  EXPECT_EQ(name["steward"], "") << rec.dump(2);
  ASSERT_TRUE(name["time_us"].is_number_integer()) << rec.dump(2);
  EXPECT_GT(name["time_us"].get<std::int64_t>(), 0) << rec.dump(2);
  EXPECT_FALSE(name.contains("seeded")) << rec.dump(2);
  EXPECT_EQ(s_.control("SELECT provenance->'name' ? 'steward' FROM mdsync.golden"), "f");
}

// Guarantee 7 (text): hostile text is data, stored and propagated byte for byte.
TEST_F(SkeletonTest, HostileTextRoundTripsByteForByte) {
  const std::string hostile =
      "O'Brien \"quoted\" \\back\\slash'); DROP TABLE erp.customers; -- \xF0\x9F\x8E\x89 "
      "\xE2\x80\x8F\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D\xE2\x80\x8F e\xCC\x81"
      // What COPY's text format escapes (the audit rows go by COPY): tab, newline, carriage
      // return, a backslash before N (COPY's NULL) and before a digit.
      "\ttab\nline\rcr \\N \\0 \\.";
  s_.exec_with(s_.crm_db(), "INSERT INTO crm.accounts (\"accountName\") VALUES ($1)", hostile);
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s_.erp("SELECT count(*) FROM erp.customers"), "1");
  EXPECT_EQ(s_.erp("SELECT cust_name FROM erp.customers"), hostile);
  EXPECT_EQ(s_.control("SELECT \"values\"->>'name' FROM mdsync.golden"), hostile);
  EXPECT_EQ(s_.control("SELECT new_value ->> 'name' FROM mdsync.audit WHERE unit = 'name'"),
            hostile);
  EXPECT_EQ(s_.control("SELECT source || ' ' || decision || ' ' || (golden_id IS NOT NULL)"
                       " FROM mdsync.audit WHERE unit = 'name'"),
            "crm#1 create true");
  EXPECT_EQ(joined(divergences(s_)), "");
}

// `mdsync run` keeps syncing until SIGTERM, then finishes its pass and exits 0.
TEST_F(SkeletonTest, ServiceSyncsContinuouslyAndStopsCleanlyOnSigterm) {
  const std::string log = s_.dir() + "/service.log";
  const int pid = s_.spawn_mdsync({"run"}, log);
  ASSERT_GT(pid, 0);
  s_.erp_exec("INSERT INTO erp.customers (cust_name) VALUES ('Live One')");
  EXPECT_EQ(wait_until([&] { return s_.crm("SELECT count(*) FROM crm.accounts"); }, "1", 60), "1");
  s_.crm_exec("UPDATE crm.accounts SET phone = '+1 555 0100'");
  EXPECT_EQ(
      wait_until([&] { return s_.erp("SELECT phone_no FROM erp.customers"); }, "+1 555 0100", 60),
      "+1 555 0100");
  ::kill(pid, SIGTERM);
  const int code = wait_exit(pid, 60);
  if (code == -1) ::kill(pid, SIGKILL);
  EXPECT_EQ(code, 0) << read_file(log);
  const std::string text = read_file(log);
  EXPECT_NE(text.find(R"("event":"service_stopping")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("event":"service_stopped")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("seed":)"), std::string::npos) << text;  // the jitter seed is logged
}

// Guarantee 4 with a value changed and changed back: a write-back queued while the CRM
// changes a field A -> B -> A must not go through (the row equals the base again, but the
// CRM's two changes are still to be reconciled). Found by the core's property tests.
TEST_F(SkeletonTest, WriteBackWaitsForUnreconciledChangesOfTheRow) {
  s_.erp_exec("INSERT INTO erp.customers (cust_name) VALUES ('Orig')");
  s_.mdsync_ok({"run", "--once"});
  s_.erp_exec("UPDATE erp.customers SET cust_name = 'Erp Name'");
  // Reconcile the ERP's change but die before writing it back to the CRM.
  ::setenv("MDSYNC_CRASH_AT", "batch.after_commit", 1);
  const RunResult crashed = s_.mdsync({"run", "--once"});
  ::unsetenv("MDSYNC_CRASH_AT");
  ASSERT_EQ(crashed.exit_code, 137) << crashed.err;
  ASSERT_EQ(s_.control("SELECT count(*) FROM mdsync.outbox WHERE status = 'pending'"), "1");
  s_.crm_exec("UPDATE crm.accounts SET \"accountName\" = 'Tmp'");
  s_.crm_exec("UPDATE crm.accounts SET \"accountName\" = 'Orig'");
  s_.mdsync_ok({"run", "--once"});
  s_.mdsync_ok({"run", "--once"});
  // The CRM wrote last (name is shared, last_writer_wins): its final 'Orig' is golden.
  EXPECT_EQ(s_.control("SELECT \"values\"->>'name' FROM mdsync.golden"), "Orig");
  EXPECT_EQ(s_.crm("SELECT \"accountName\" FROM crm.accounts"), "Orig");
  EXPECT_EQ(s_.erp("SELECT cust_name FROM erp.customers"), "Orig");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.outbox WHERE status = 'pending'"), "0");
  EXPECT_EQ(joined(divergences(s_)), "");
}

// `mdsync init` twice changes nothing the second time.
TEST_F(SkeletonTest, InitIsIdempotent) {
  auto fingerprint = [&](const std::string& db) {
    return s_.rows(
        db,
        "SELECT p.proname || ':' || md5(p.prosrc) FROM pg_proc p JOIN pg_namespace n ON"
        " n.oid = p.pronamespace WHERE n.nspname = 'mdsync' UNION ALL SELECT tgname || ':' ||"
        " tgrelid::regclass::text || ':' || oid::text FROM pg_trigger WHERE tgname LIKE 'mdsync%'"
        " ORDER BY 1");
  };
  const auto erp_before = fingerprint(s_.erp_db()), crm_before = fingerprint(s_.crm_db());
  // Every migration of this build was applied by the first init, none by the second.
  const std::string migrations = s_.control("SELECT count(*) FROM mdsync.schema_migrations");
  const std::string newest = s_.control("SELECT max(version) FROM mdsync.schema_migrations");
  EXPECT_NE(migrations, "0");
  const std::string second = s_.mdsync_ok({"init"});
  EXPECT_NE(second.find("control store: schema up to date (version " + newest + ")"),
            std::string::npos)
      << second;
  EXPECT_NE(second.find("side erp: capture already installed"), std::string::npos) << second;
  EXPECT_NE(second.find("side crm: capture already installed"), std::string::npos) << second;
  EXPECT_NE(second.find("ruleset v1 in force"), std::string::npos) << second;
  EXPECT_EQ(fingerprint(s_.erp_db()), erp_before);
  EXPECT_EQ(fingerprint(s_.crm_db()), crm_before);
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.ruleset"), "1");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.schema_migrations"), migrations);
}

// A control store migrated by an older binary (fewer migrations recorded) is upgraded by
// `init`; one newer than the binary is refused with a clear message.
TEST(InitTest, RefusesControlSchemaNewerThanBinary) {
  Scenario s("init_newer");
  s.write_config();
  s.mdsync_ok({"init"});
  s.control_exec(
      "INSERT INTO mdsync.schema_migrations (version, name) VALUES (9999, 'from_the_future')");
  const RunResult r = s.mdsync({"init"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("schema version 9999, newer than this mdsync knows"), std::string::npos)
      << r.err;
}

// `mdsync init` checks every mapping against the live sides, reports every mismatch at
// once, and names the side, the table, the column and where the config maps it.
TEST(InitTest, NamesMissingTableAndColumn) {
  Scenario s("init_mapping");
  s.write_config(default_rules(),
                 R"({"entities": {"customer": {"sides": {
                      "erp": {"columns": {"phone": "phone_number"}},
                      "crm": {"table": "acounts"}}}}})");
  const RunResult r = s.mdsync({"init"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("side erp: table erp.customers has no column 'phone_number' (mapped to "
                       "customer.phone in entities.customer.sides.erp.columns)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(
      r.err.find("side crm: table crm.acounts does not exist (entities.customer.sides.crm.table"),
      std::string::npos)
      << r.err;
  // Nothing was installed on either side while the mapping is wrong.
  EXPECT_EQ(s.erp("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'mdsync%'"), "0");
  EXPECT_EQ(s.crm("SELECT to_regnamespace('mdsync') IS NULL"), "t");
}

// A side that cannot be reached is named, and a password in its DSN never shows.
TEST(InitTest, UnreachableDatabaseIsNamedWithoutPassword) {
  Scenario s("init_unreachable");
  s.write_config(
      default_rules(),
      R"({"control": "host=/nonexistent/socket/dir port=5432 user=x password=s3cr3t-pw dbname=nope"})");
  const RunResult r = s.mdsync({"init"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot connect to control store"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("password=****"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("s3cr3t-pw"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mdsync::e2e
