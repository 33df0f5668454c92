// End-to-end tests of guarantee 8's integrity half: mdsync.audit is append-only and
// hash-chained (schema/control/0006_audit_chain.sql), and `mdsync audit verify` names the
// first row that was changed, removed or slipped past the chain, even by a superuser who
// bypassed the triggers.
#include <gtest/gtest.h>

#include <algorithm>
#include <exception>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <thread>

#include "e2e_harness.hpp"

namespace mdsync::e2e {
namespace {

using nlohmann::json;

struct Verified {
  int exit_code = -1;
  json report;
  std::string err;
};

Verified verify(const Scenario& s) {
  const RunResult r = s.mdsync({"audit", "verify", "--json"});
  Verified v{r.exit_code, json(), r.err};
  try {
    v.report = json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "audit verify --json printed no JSON (" << e.what() << "):\n"
                  << r.out << "\nstderr:\n"
                  << r.err;
  }
  return v;
}

// `n` audit rows in one INSERT ... SELECT, as a batch would write them.
void insert_audit_rows(const Scenario& s, int n, const std::string& tag) {
  s.exec_with(s.control_db(),
              "INSERT INTO mdsync.audit (entity, golden_id, unit, decision, old_value, new_value,"
              " source, rule, ruleset_version, reason)"
              " SELECT 'customer', i, 'name', 'accept', jsonb_build_object('name', 'old ' || i),"
              " jsonb_build_object('name', $1 || ' ' || i), 'crm#' || i, 'name: crm', 1, 'test'"
              " FROM generate_series(1, " +
                  std::to_string(n) + ") i",
              tag);
}

// The audit id at a place in the chain.
std::string id_at(const Scenario& s, int chain_seq) {
  return s.control("SELECT audit_id FROM mdsync.audit_chain WHERE chain_seq = " +
                   std::to_string(chain_seq));
}

// Runs `sql` as the superuser with every trigger skipped, as a tamperer would.
void tamper(const Scenario& s, const std::string& sql) {
  s.control_exec("SET session_replication_role = replica; " + sql);
}

void expect_refused(const Scenario& s, const std::string& sql, const std::string& table) {
  try {
    s.control_exec(sql);
    ADD_FAILURE() << "not refused: " << sql;
  } catch (const pqxx::sql_error& e) {
    EXPECT_NE(std::string(e.what()).find(table + " is append-only"), std::string::npos)
        << sql << ": " << e.what();
  }
}

// One session on the control store whose transactions the test drives statement by statement.
struct Session {
  explicit Session(const Scenario& s) : conn(s.dsn(s.control_db())), tx(conn) {}
  void exec(const std::string& sql) { tx.exec(sql); }
  std::string one(const std::string& sql) {
    const pqxx::result r = tx.exec(sql);
    return r.empty() ? "<none>" : r[0][0].is_null() ? "<null>" : r[0][0].c_str();
  }
  // `n` audit rows whose reason is `tag`, in one INSERT (one row: one INSERT ... VALUES).
  void insert(int n, const std::string& tag) {
    if (n == 1)
      tx.exec_params(
          "INSERT INTO mdsync.audit (entity, unit, decision, source, rule, ruleset_version,"
          " reason) VALUES ('customer', 'name', 'accept', 'crm#1', 'name: crm', 1, $1)",
          tag);
    else
      tx.exec_params(
          "INSERT INTO mdsync.audit (entity, golden_id, unit, decision, old_value, new_value,"
          " source, rule, ruleset_version, reason)"
          " SELECT 'customer', i, 'name', 'accept', jsonb_build_object('name', 'old ' || i),"
          " jsonb_build_object('name', $2 || ' ' || i), 'crm#' || i, 'name: crm', 1, $2"
          " FROM generate_series(1, $1) i",
          n, tag);
  }
  pqxx::connection conn;
  pqxx::nontransaction tx;
};

// The chain as runs of rows with the same reason, in chain order: "a*3 b*1 a*2".
const char* const kChainRuns =
    "SELECT coalesce(string_agg(reason || '*' || n, ' ' ORDER BY first_seq), '')"
    " FROM (SELECT reason, count(*) AS n, min(chain_seq) AS first_seq FROM ("
    "  SELECT c.chain_seq, a.reason, c.chain_seq - row_number() OVER (PARTITION BY a.reason"
    "   ORDER BY c.chain_seq) AS run FROM mdsync.audit_chain c"
    "  JOIN mdsync.audit a ON a.id = c.audit_id) l GROUP BY reason, run) r";

// Within a transaction ids grow in insertion order: the chain links the rows in that order.
const char* const kChainInIdOrder =
    "SELECT coalesce(bool_and(audit_id > previous), true) FROM (SELECT audit_id,"
    " lag(audit_id) OVER (ORDER BY chain_seq) AS previous FROM mdsync.audit_chain) l";

class AuditTest : public ::testing::Test {
 protected:
  AuditTest() : s_(::testing::UnitTest::GetInstance()->current_test_info()->name()) {}
  void SetUp() override {
    s_.write_config();
    s_.mdsync_ok({"init"});
  }
  Scenario s_;
};

// Creates, edits on both sides, a concurrent edit queued as a conflict and a steward's
// resolution through the CLI: the chain is intact, names every audit row once, and its head
// is the last link.
TEST_F(AuditTest, NormalWorkloadLeavesAnIntactChainWhoseHeadIsTheLastRow) {
  s_.erp_exec(
      "INSERT INTO erp.customers (cust_name, credit_lim, segment_code, city, country)"
      " SELECT 'Customer ' || i, 1000 * i + 0.25, 'smb', 'Ghent', 'BE'"
      " FROM generate_series(1, 4) i");
  s_.crm_exec(
      "INSERT INTO crm.accounts (\"accountName\", phone, email, segment)"
      " VALUES ('Prospect A', '+1 555 0001', 'a@example.com', 'enterprise'),"
      "        ('Prospect \"B\" \xE2\x80\x8F\xD7\xA9', NULL, NULL, NULL)");
  s_.mdsync_ok({"run", "--once"});
  s_.crm_exec("UPDATE crm.accounts SET phone = '+32 9 000' WHERE \"accountName\" = 'Customer 2'");
  s_.erp_exec("UPDATE erp.customers SET city = 'Bruges' WHERE cust_name = 'Prospect A'");
  s_.mdsync_ok({"run", "--once"});
  s_.erp_exec("UPDATE erp.customers SET segment_code = 'public' WHERE cust_name = 'Customer 3'");
  s_.crm_exec(
      "UPDATE crm.accounts SET segment = 'enterprise' WHERE \"accountName\" = 'Customer 3'");
  s_.mdsync_ok({"run", "--once"});
  const json open = json::parse(s_.mdsync_ok({"conflicts", "list", "--json"}));
  ASSERT_EQ(open.size(), 1u) << open.dump(2);
  s_.mdsync_ok(
      {"conflicts", "resolve", std::to_string(open[0]["id"].get<std::int64_t>()), "--take", "crm"});
  s_.mdsync_ok({"run", "--once"});
  ASSERT_EQ(s_.control("SELECT count(*) FROM mdsync.audit WHERE source = " + steward_source_sql()),
            "1");

  const Verified v = verify(s_);
  EXPECT_EQ(v.exit_code, 0) << v.err;
  const std::string rows = s_.control("SELECT count(*) FROM mdsync.audit");
  EXPECT_GT(std::stoi(rows), 10);
  EXPECT_EQ(v.report["intact"], true) << v.report.dump(2);
  EXPECT_EQ(v.report["rows"].dump(), rows);
  EXPECT_TRUE(v.report["first_broken"].is_null()) << v.report.dump(2);
  EXPECT_EQ(v.report["head"]["seq"].dump(), rows);
  EXPECT_EQ(v.report["head"]["hash"],
            s_.control("SELECT encode(hash, 'hex') FROM mdsync.audit_chain"
                       " ORDER BY chain_seq DESC LIMIT 1"));
  EXPECT_EQ(s_.control("SELECT count(DISTINCT c.audit_id) || ' ' || count(a.id)"
                       " FROM mdsync.audit_chain c LEFT JOIN mdsync.audit a ON a.id = c.audit_id"),
            rows + " " + rows);

  const RunResult text = s_.mdsync({"audit", "verify"});
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find(rows + " rows, intact"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(v.report["head"]["hash"].get<std::string>()), std::string::npos)
      << text.out;
  EXPECT_EQ(s_.mdsync({"audit", "verify", "--entity", "customer"}).exit_code, 2);
  const RunResult help = s_.mdsync({"audit", "verify", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("Usage:"), std::string::npos) << help.out;
}

// The triggers refuse every change of a written row, to anyone: the tests connect as the
// cluster's superuser.
TEST_F(AuditTest, UpdateDeleteAndTruncateAreRefusedEvenForTheSuperuser) {
  ASSERT_EQ(s_.control("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"), "t");
  insert_audit_rows(s_, 3, "new");
  expect_refused(s_, "UPDATE mdsync.audit SET reason = 'rewritten'", "mdsync.audit");
  expect_refused(s_, "DELETE FROM mdsync.audit WHERE id = " + id_at(s_, 2), "mdsync.audit");
  expect_refused(s_, "TRUNCATE mdsync.audit", "mdsync.audit");
  expect_refused(s_, "UPDATE mdsync.audit_chain SET hash = prev_hash", "mdsync.audit_chain");
  expect_refused(s_, "DELETE FROM mdsync.audit_chain", "mdsync.audit_chain");
  expect_refused(s_, "TRUNCATE mdsync.audit_chain", "mdsync.audit_chain");
  EXPECT_EQ(s_.control("SELECT count(*) || ' ' || count(*) FILTER (WHERE reason = 'test')"
                       " FROM mdsync.audit"),
            "3 3");
  EXPECT_EQ(verify(s_).exit_code, 0);
}

// A value changed with the triggers bypassed is found, and the row named. SQL NULL and JSON
// null are different contents; so are two times a microsecond apart.
TEST_F(AuditTest, ChangedValueIsNamed) {
  insert_audit_rows(s_, 6, "new");
  ASSERT_EQ(s_.control("SELECT count(*) FROM mdsync.audit WHERE proposed IS NULL"), "6");
  tamper(s_, "UPDATE mdsync.audit SET proposed = 'null' WHERE id = " + id_at(s_, 5));
  Verified v = verify(s_);
  EXPECT_EQ(v.exit_code, 1);
  EXPECT_EQ(v.report["intact"], false);
  EXPECT_EQ(v.report["first_broken"]["id"].dump(), id_at(s_, 5)) << v.report.dump(2);
  EXPECT_EQ(v.report["first_broken"]["chain_seq"], 5);
  EXPECT_NE(v.report["first_broken"]["problem"].get<std::string>().find("content"),
            std::string::npos);

  // An earlier change is the first broken row; the message names it on stderr.
  tamper(s_,
         "UPDATE mdsync.audit SET new_value = '{\"name\": \"forged\"}' WHERE id = " + id_at(s_, 3));
  const RunResult text = s_.mdsync({"audit", "verify"});
  EXPECT_EQ(text.exit_code, 1);
  EXPECT_NE(text.err.find("audit row " + id_at(s_, 3) +
                          " (chain_seq 3): its content no longer "
                          "matches its hash"),
            std::string::npos)
      << text.err;
  EXPECT_NE(text.out.find("BROKEN"), std::string::npos) << text.out;

  tamper(s_,
         "UPDATE mdsync.audit SET at = at + interval '1 microsecond' WHERE id = " + id_at(s_, 1));
  v = verify(s_);
  EXPECT_EQ(v.report["first_broken"]["chain_seq"], 1) << v.report.dump(2);
}

// A tamperer who also rewrites the changed row's hash is named at the next row, whose link
// no longer matches.
TEST_F(AuditTest, RewrittenHashIsNamedAtTheNextRow) {
  insert_audit_rows(s_, 4, "new");
  tamper(s_,
         "UPDATE mdsync.audit SET reason = 'forged' WHERE id = " + id_at(s_, 2) +
             "; UPDATE mdsync.audit_chain c SET hash = sha256(c.prev_hash || convert_to("
             "jsonb_build_array(c.chain_seq, a.id, (extract(epoch FROM a.at) * 1000000)::bigint,"
             " a.entity, a.golden_id, a.unit, a.decision, a.old_value::text, a.new_value::text,"
             " a.proposed::text, a.source, a.rule, a.ruleset_version, a.reason)::text, 'UTF8'))"
             " FROM mdsync.audit a WHERE a.id = c.audit_id AND c.chain_seq = 2");
  const Verified v = verify(s_);
  EXPECT_EQ(v.exit_code, 1);
  EXPECT_EQ(v.report["first_broken"]["id"].dump(), id_at(s_, 3)) << v.report.dump(2);
  EXPECT_EQ(v.report["first_broken"]["chain_seq"], 3);
  EXPECT_NE(v.report["first_broken"]["problem"].get<std::string>().find("prev_hash"),
            std::string::npos);
}

// Rows deleted from the middle, with their links (a gap) or without (a link naming a row
// that is gone), with the triggers disabled for the deletion.
TEST_F(AuditTest, DeletedMiddleRowsAreNamed) {
  insert_audit_rows(s_, 6, "new");
  s_.control_exec(
      "BEGIN;"
      " ALTER TABLE mdsync.audit DISABLE TRIGGER audit_append_only;"
      " ALTER TABLE mdsync.audit_chain DISABLE TRIGGER audit_chain_append_only;"
      " DELETE FROM mdsync.audit WHERE id IN (SELECT audit_id FROM mdsync.audit_chain"
      "  WHERE chain_seq IN (3, 4));"
      " DELETE FROM mdsync.audit_chain WHERE chain_seq IN (3, 4);"
      " ALTER TABLE mdsync.audit ENABLE TRIGGER audit_append_only;"
      " ALTER TABLE mdsync.audit_chain ENABLE TRIGGER audit_chain_append_only;"
      " COMMIT");
  Verified v = verify(s_);
  EXPECT_EQ(v.exit_code, 1);
  EXPECT_EQ(v.report["rows"], 4);
  EXPECT_EQ(v.report["first_broken"]["id"].dump(), id_at(s_, 5)) << v.report.dump(2);
  EXPECT_EQ(v.report["first_broken"]["chain_seq"], 5);
  EXPECT_NE(v.report["first_broken"]["problem"].get<std::string>().find("chain_seq 3..4"),
            std::string::npos)
      << v.report.dump(2);
  // The delete was refused again once the trigger was back.
  expect_refused(s_, "DELETE FROM mdsync.audit WHERE id = " + id_at(s_, 5), "mdsync.audit");

  const std::string second = id_at(s_, 2);
  tamper(s_, "DELETE FROM mdsync.audit WHERE id = " + second);
  v = verify(s_);
  EXPECT_EQ(v.report["first_broken"]["id"].dump(), second) << v.report.dump(2);
  EXPECT_EQ(v.report["first_broken"]["chain_seq"], 2);
  EXPECT_NE(v.report["first_broken"]["problem"].get<std::string>().find("missing"),
            std::string::npos);
}

// The last row deleted with its link: audit_head shows that rows were removed from the end.
// A superuser who also moves audit_head back leaves a chain that verifies: only a head kept
// elsewhere shows that (README).
TEST_F(AuditTest, DeletedLastRowIsReportedAsRemovedFromTheEnd) {
  insert_audit_rows(s_, 5, "new");
  const Verified before = verify(s_);
  ASSERT_EQ(before.exit_code, 0) << before.err;
  const json recorded = before.report["head"];
  ASSERT_EQ(recorded["seq"], 5);
  tamper(s_, "DELETE FROM mdsync.audit WHERE id = " + id_at(s_, 5) +
                 "; DELETE FROM mdsync.audit_chain WHERE chain_seq = 5");
  Verified v = verify(s_);
  EXPECT_EQ(v.exit_code, 1);
  EXPECT_TRUE(v.report["first_broken"]["id"].is_null()) << v.report.dump(2);
  EXPECT_EQ(v.report["first_broken"]["chain_seq"], 5);
  EXPECT_NE(
      v.report["first_broken"]["problem"].get<std::string>().find(
          "rows were removed from the end: audit_head is at chain_seq 5, the chain ends at 4"),
      std::string::npos)
      << v.report.dump(2);
  EXPECT_NE(v.err.find("rows were removed from the end"), std::string::npos) << v.err;

  tamper(s_,
         "UPDATE mdsync.audit_head SET seq = 4, hash = (SELECT hash FROM mdsync.audit_chain"
         " WHERE chain_seq = 4)");
  v = verify(s_);
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_LT(v.report["head"]["seq"].get<int>(), recorded["seq"].get<int>());
}

// A row inserted with the triggers bypassed is not in the chain, and is named.
TEST_F(AuditTest, RowInsertedPastTheChainIsNamed) {
  insert_audit_rows(s_, 2, "new");
  tamper(s_,
         "INSERT INTO mdsync.audit (entity, unit, decision, source, rule, ruleset_version, reason)"
         " VALUES ('customer', 'name', 'accept', 'crm#9', '', 1, 'slipped in')");
  const Verified v = verify(s_);
  EXPECT_EQ(v.exit_code, 1);
  EXPECT_EQ(v.report["first_broken"]["id"].dump(),
            s_.control("SELECT id FROM mdsync.audit WHERE reason = 'slipped in'"));
  EXPECT_NE(v.report["first_broken"]["problem"].get<std::string>().find("not in the chain"),
            std::string::npos)
      << v.report.dump(2);
}

// Two transactions insert audit rows; the one that commits first is linked first, whatever
// the ids (taken at insert time) say.
TEST_F(AuditTest, ConcurrentTransactionsAreChainedInCommitOrder) {
  insert_audit_rows(s_, 1, "before");
  pqxx::connection c1(s_.dsn(s_.control_db())), c2(s_.dsn(s_.control_db()));
  // Not a timing assertion: if the chain's lock were taken at insert, t2 would wait for t1
  // forever; this turns that into a failure.
  for (auto* c : {&c1, &c2}) pqxx::nontransaction(*c).exec("SET lock_timeout = '60s'");
  pqxx::work t1(c1), t2(c2);
  const std::string insert =
      "INSERT INTO mdsync.audit (entity, unit, decision, source, rule, ruleset_version, reason)"
      " VALUES ('customer', 'name', 'accept', $1, '', 1, 'concurrent') RETURNING id";
  const auto first_id = t1.exec_params1(insert, std::string("t1"))[0].as<std::int64_t>();
  const auto second_id = t2.exec_params1(insert, std::string("t2"))[0].as<std::int64_t>();
  ASSERT_LT(first_id, second_id);
  t2.commit();
  t1.commit();
  EXPECT_EQ(s_.rows(s_.control_db(),
                    "SELECT a.source FROM mdsync.audit_chain c JOIN mdsync.audit a"
                    " ON a.id = c.audit_id WHERE a.reason = 'concurrent' ORDER BY c.chain_seq"),
            (std::vector<std::string>{"t2", "t1"}));
  EXPECT_EQ(verify(s_).exit_code, 0);
}

// A batch that has written audit rows and then waits for a record a steward's resolution
// holds, while the steward writes its audit row: neither waits for the other's audit, so
// both commit (the chain is linked at commit, not when a row is inserted).
TEST_F(AuditTest, WritersWhoseLocksCrossDoNotDeadlock) {
  s_.control_exec("INSERT INTO mdsync.golden (entity) VALUES ('customer')");
  const std::string gid = s_.control("SELECT max(id) FROM mdsync.golden");
  pqxx::connection batch_conn(s_.dsn(s_.control_db())), steward_conn(s_.dsn(s_.control_db()));
  const std::string batch_pid =
      pqxx::nontransaction(batch_conn).exec1("SELECT pg_backend_pid()")[0].as<std::string>();
  const std::string insert =
      "INSERT INTO mdsync.audit (entity, golden_id, unit, decision, source, rule,"
      " ruleset_version, reason) VALUES ('customer', $1, 'name', 'accept', $2, '', 1, 'x')";
  pqxx::work batch(batch_conn), steward(steward_conn);
  batch.exec_params(insert, gid, std::string("crm#1"));
  steward.exec("UPDATE mdsync.golden SET updated_at = now() WHERE id = " + gid);

  std::string batch_error;
  std::thread waiting([&] {
    try {
      batch.exec("UPDATE mdsync.golden SET updated_at = now() WHERE id = " + gid);
    } catch (const std::exception& e) {
      batch_error = e.what();
    }
  });
  EXPECT_EQ(wait_until(
                [&] {
                  return s_.control("SELECT wait_event_type FROM pg_stat_activity WHERE pid = " +
                                    batch_pid);
                },
                "Lock", 60),
            "Lock");
  std::string steward_error;
  try {
    steward.exec_params(insert, gid, std::string("steward:e2e"));
    steward.commit();
  } catch (const std::exception& e) {
    steward_error = e.what();
  }
  waiting.join();
  EXPECT_EQ(steward_error, "");
  EXPECT_EQ(batch_error, "");
  if (batch_error.empty()) batch.commit();
  EXPECT_EQ(s_.rows(s_.control_db(),
                    "SELECT a.source FROM mdsync.audit_chain c JOIN mdsync.audit a"
                    " ON a.id = c.audit_id ORDER BY c.chain_seq"),
            (std::vector<std::string>{"steward:e2e", "crm#1"}));
  EXPECT_EQ(verify(s_).exit_code, 0);
}

// One multi-row INSERT ... SELECT links every row, in the statement's order, with values
// that test the content's canonical form: NULLs, JSON null, quotes, Unicode, a time written
// in another session time zone. The session's hint to the head's tuple is a stale one.
TEST_F(AuditTest, MultiRowInsertSelectChainsEveryRow) {
  insert_audit_rows(s_, 2, "before");
  s_.control_exec(
      "SET TimeZone = 'Asia/Kathmandu'; SET mdsync.audit_head_tid = '(0,1)';"
      " INSERT INTO mdsync.audit (at, entity, golden_id, unit, decision, old_value, new_value,"
      " proposed, source, rule, ruleset_version, reason)"
      " SELECT timestamptz '2024-02-29 23:59:59.999999' + i * interval '1 second', 'customer',"
      " CASE WHEN i % 3 = 0 THEN NULL ELSE i END, 'name', 'accept',"
      " CASE WHEN i % 2 = 0 THEN 'null'::jsonb END,"
      " jsonb_build_object('name', E'O''Brien \"q\" \\\\ \\u00e9\\u200f' || i),"
      " CASE WHEN i % 5 = 0 THEN '[1, 2.50]'::jsonb END, 'crm#' || i, 'name: crm', 1, 'multi'"
      " FROM generate_series(1, 300) i");
  EXPECT_EQ(s_.control("SELECT count(*) || ' ' || min(c.chain_seq) || ' ' || max(c.chain_seq) ||"
                       " ' ' || bool_and(c.chain_seq - 2 = a.golden_id) FILTER (WHERE a.golden_id"
                       " IS NOT NULL) FROM mdsync.audit a JOIN mdsync.audit_chain c"
                       " ON c.audit_id = a.id WHERE a.reason = 'multi'"),
            "300 3 302 true");
  const Verified v = verify(s_);
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(v.report["rows"], 302);
  EXPECT_EQ(v.report["head"]["seq"], 302);
}

// A store from before the chain (migration 0006 not applied, audit rows present) is upgraded
// by `mdsync init`, which links the existing rows in id order.
TEST_F(AuditTest, InitChainsTheRowsOfAStoreFromBeforeTheChain) {
  insert_audit_rows(s_, 3, "before");
  s_.control_exec(
      "DROP TABLE mdsync.audit_chain, mdsync.audit_head;"
      " DROP FUNCTION mdsync.audit_chain_link(), mdsync.audit_refuse_change(),"
      "  mdsync.audit_chain_append(mdsync.audit) CASCADE;"
      " DELETE FROM mdsync.schema_migrations WHERE version = 6");
  ASSERT_EQ(s_.control("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'mdsync.audit'::regclass"
                       " AND NOT tgisinternal"),
            "0");
  insert_audit_rows(s_, 4, "pre-0006");
  const RunResult no_chain = s_.mdsync({"audit", "verify"});
  EXPECT_EQ(no_chain.exit_code, 1);
  EXPECT_NE(no_chain.err.find("mdsync init"), std::string::npos) << no_chain.err;

  EXPECT_NE(s_.mdsync_ok({"init"}).find("applied migration 0006_audit_chain"), std::string::npos);
  EXPECT_EQ(s_.control("SELECT string_agg(audit_id::text, ',' ORDER BY chain_seq)"
                       " FROM mdsync.audit_chain"),
            s_.control("SELECT string_agg(id::text, ',' ORDER BY id) FROM mdsync.audit"));
  Verified v = verify(s_);
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(v.report["rows"], 7);
  EXPECT_EQ(v.report["head"]["seq"], 7);
  EXPECT_NE(s_.mdsync_ok({"init"}).find("schema up to date"), std::string::npos);
  insert_audit_rows(s_, 1, "after");
  v = verify(s_);
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(v.report["head"]["seq"], 8);
}

// What the service role will be granted (README): INSERT and SELECT on mdsync.audit and the
// use of its id sequence. Its rows are linked (the trigger runs as the schema's owner); it
// can change nothing, not even through the chain's tables or functions.
TEST_F(AuditTest, RoleWithOnlyInsertAndSelectAppendsLinkedRowsAndRewritesNothing) {
  const std::string role = "audit_writer_" + s_.control_db();
  struct DropRole {
    const Scenario& s;
    std::string role;
    ~DropRole() {
      try {
        s.control_exec("DROP OWNED BY " + role);
        pqxx::connection admin(s.dsn("postgres"));
        pqxx::nontransaction(admin).exec("DROP ROLE IF EXISTS " + role);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "dropping role " << role << ": " << e.what();
      }
    }
  } drop{s_, role};
  s_.control_exec("CREATE ROLE " + role + " NOLOGIN; GRANT USAGE ON SCHEMA mdsync TO " + role +
                  "; GRANT INSERT, SELECT ON mdsync.audit TO " + role +
                  "; GRANT USAGE ON SEQUENCE mdsync.audit_id_seq TO " + role);
  const std::string as_role = "SET ROLE " + role + "; ";
  s_.control_exec(as_role +
                  "INSERT INTO mdsync.audit (entity, unit, decision, source, rule,"
                  " ruleset_version, reason) VALUES ('customer', 'name', 'accept', 'crm#1', '',"
                  " 1, 'by the service role')");
  EXPECT_EQ(s_.control("SELECT c.chain_seq FROM mdsync.audit_chain c JOIN mdsync.audit a"
                       " ON a.id = c.audit_id WHERE a.reason = 'by the service role'"),
            "1");
  for (const std::string& sql :
       {std::string("UPDATE mdsync.audit SET reason = 'x'"),
        std::string("DELETE FROM mdsync.audit"),
        std::string("UPDATE mdsync.audit_head SET seq = 0"),
        std::string("INSERT INTO mdsync.audit_chain VALUES (2, 1, '', '')"),
        std::string("SELECT mdsync.audit_chain_append(a) FROM mdsync.audit a")}) {
    try {
      s_.control_exec(as_role + sql);
      ADD_FAILURE() << "the role was allowed: " << sql;
    } catch (const pqxx::sql_error& e) {
      EXPECT_NE(std::string(e.what()).find("permission denied"), std::string::npos)
          << sql << ": " << e.what();
    }
  }
  EXPECT_EQ(verify(s_).exit_code, 0);
}

// Issue 12: linking a transaction's rows costs one head update, whatever their number (0006
// updated the head once per row: 301 here). The deferred links run at SET CONSTRAINTS ALL
// IMMEDIATE as they would at commit, so the transaction's own statistics show what they did.
TEST_F(AuditTest, ATransactionsRowsAreLinkedWithOneHeadUpdate) {
  insert_audit_rows(s_, 2, "before");  // reason "test"
  Session t(s_);
  t.exec("BEGIN");
  t.insert(200, "many");
  t.insert(1, "one");
  t.insert(100, "more");
  t.exec("SET CONSTRAINTS ALL IMMEDIATE");
  EXPECT_EQ(t.one("SELECT (SELECT n_tup_upd FROM pg_stat_xact_user_tables"
                  "  WHERE relid = 'mdsync.audit_head'::regclass) || ' ' ||"
                  " (SELECT n_tup_ins FROM pg_stat_xact_user_tables"
                  "  WHERE relid = 'mdsync.audit_chain'::regclass)"),
            "1 301");
  t.exec("COMMIT");
  EXPECT_EQ(s_.control(kChainRuns), "test*2 many*200 one*1 more*100");
  EXPECT_EQ(s_.control(kChainInIdOrder), "t");
  const Verified v = verify(s_);
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(v.report["head"]["seq"], 303);
}

// Rows of a savepoint rolled back are not linked (they are gone); rows of a released one are,
// in the order they were inserted. Also when the transaction's first rows are the ones rolled
// back, and when they are in a savepoint released.
TEST_F(AuditTest, RowsOfRolledBackSavepointsAreNotLinkedThoseOfReleasedOnesAre) {
  insert_audit_rows(s_, 1, "before");
  Session t(s_);
  t.exec("BEGIN");
  t.exec("SAVEPOINT a");
  t.insert(5, "gone");
  t.exec("ROLLBACK TO SAVEPOINT a");
  t.insert(20, "kept");
  t.exec("SAVEPOINT b");
  t.insert(3, "released");
  t.exec("SAVEPOINT c");
  t.insert(4, "gone");
  t.insert(1, "gone");
  t.exec("ROLLBACK TO SAVEPOINT c");
  t.insert(1, "released");
  t.exec("RELEASE SAVEPOINT b");
  t.exec("SAVEPOINT d");
  t.insert(2, "gone");
  t.exec("ROLLBACK TO SAVEPOINT d");
  t.insert(30, "kept");
  t.exec("COMMIT");

  t.exec("BEGIN");
  t.exec("SAVEPOINT x");
  t.insert(2, "second");
  t.exec("RELEASE SAVEPOINT x");
  t.exec("SAVEPOINT y");
  t.insert(3, "gone");
  t.exec("ROLLBACK TO SAVEPOINT y");
  t.insert(1, "second");
  t.exec("COMMIT");

  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.audit WHERE reason = 'gone'"), "0");
  EXPECT_EQ(s_.control(kChainRuns), "test*1 kept*20 released*4 kept*30 second*3");
  EXPECT_EQ(s_.control(kChainInIdOrder), "t");
  const Verified v = verify(s_);
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(v.report["head"]["seq"], 58);
}

// Two transactions insert rows in turns and commit in the opposite order: each is linked
// whole, the first to commit first. Then one links its rows early (SET CONSTRAINTS ALL
// IMMEDIATE) and so holds the head: the other's commit waits for it, and the rows the first
// inserts meanwhile still come before the other's.
TEST_F(AuditTest, InterleavedTransactionsAreLinkedWholeInCommitOrder) {
  Session t1(s_), t2(s_);
  t1.exec("BEGIN");
  t2.exec("BEGIN");
  t1.insert(10, "t1");
  t2.insert(7, "t2");
  t1.insert(1, "t1");
  t2.insert(1, "t2");
  t1.insert(5, "t1");
  t2.insert(3, "t2");
  t2.exec("COMMIT");
  t1.exec("COMMIT");
  EXPECT_EQ(s_.control(kChainRuns), "t2*11 t1*16");
  EXPECT_EQ(verify(s_).exit_code, 0);

  Session t3(s_), t4(s_);
  for (Session* t : {&t3, &t4}) t->exec("SET lock_timeout = '60s'");
  t3.exec("BEGIN");
  t4.exec("BEGIN");
  t4.insert(4, "t4");
  t3.insert(2, "t3");
  t3.exec("SET CONSTRAINTS ALL IMMEDIATE");
  const std::string t4_pid = t4.one("SELECT pg_backend_pid()");
  std::string t4_error;
  std::thread committing([&] {
    try {
      t4.exec("COMMIT");
    } catch (const std::exception& e) {
      t4_error = e.what();
    }
  });
  EXPECT_EQ(
      wait_until(
          [&] {
            return s_.control("SELECT wait_event_type FROM pg_stat_activity WHERE pid = " + t4_pid);
          },
          "Lock", 60),
      "Lock");
  t3.insert(3, "t3");
  t3.exec("COMMIT");
  committing.join();
  EXPECT_EQ(t4_error, "");
  EXPECT_EQ(s_.control(kChainRuns), "t2*11 t1*16 t3*5 t4*4");
  const Verified v = verify(s_);
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(v.report["head"]["seq"], 36);
}

// SET CONSTRAINTS ... IMMEDIATE links the rows pending, and each later statement's rows at its
// end; DEFERRED again defers them to commit. A link made inside a savepoint that is rolled
// back is undone with it and made again at commit.
TEST_F(AuditTest, RowsAfterSetConstraintsImmediateAreLinkedAsTheyAreInserted) {
  Session t(s_);
  const auto linked = [&](const std::string& tag) {
    return t.one(
        "SELECT count(*) FROM mdsync.audit_chain c JOIN mdsync.audit a"
        " ON a.id = c.audit_id WHERE a.reason = '" +
        tag + "'");
  };
  t.exec("BEGIN");
  t.insert(10, "deferred");
  EXPECT_EQ(linked("deferred"), "0");
  t.exec("SET CONSTRAINTS ALL IMMEDIATE");
  EXPECT_EQ(linked("deferred"), "10");
  t.insert(1, "immediate");
  t.insert(4, "immediate");
  EXPECT_EQ(linked("immediate"), "5");
  t.exec("SAVEPOINT a");
  t.insert(3, "gone");
  EXPECT_EQ(linked("gone"), "3");
  t.exec("ROLLBACK TO SAVEPOINT a");
  t.insert(2, "immediate");
  t.exec("SET CONSTRAINTS mdsync.audit_chain_link DEFERRED");
  t.insert(6, "deferred again");
  EXPECT_EQ(linked("deferred again"), "0");
  t.exec("SET CONSTRAINTS mdsync.audit_chain_link IMMEDIATE");
  EXPECT_EQ(linked("deferred again"), "6");
  t.insert(1, "immediate again");
  t.exec("COMMIT");
  EXPECT_EQ(s_.control(kChainRuns), "deferred*10 immediate*7 deferred again*6 immediate again*1");
  Verified v = verify(s_);
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(v.report["head"]["seq"], 24);

  t.exec("BEGIN");
  t.insert(2, "outer");
  t.exec("SAVEPOINT s");
  t.exec("SET CONSTRAINTS ALL IMMEDIATE");
  EXPECT_EQ(linked("outer"), "2");
  t.insert(1, "gone");
  t.exec("ROLLBACK TO SAVEPOINT s");
  EXPECT_EQ(linked("outer"), "0");
  t.insert(3, "outer");
  t.exec("COMMIT");
  EXPECT_EQ(s_.control(kChainRuns),
            "deferred*10 immediate*7 deferred again*6 immediate again*1 outer*5");
  EXPECT_EQ(s_.control(kChainInIdOrder), "t");
  v = verify(s_);
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(v.report["head"]["seq"], 29);
}

// The service role's case (INSERT and SELECT on mdsync.audit only) in transactions of several
// statements and savepoints: its rows are linked, whatever the transaction-local settings
// the linking reads say (a session can set them), and it can neither see nor change the queue
// of rows to link, nor call the linking.
TEST_F(AuditTest, RoleWithOnlyInsertAndSelectHasWholeTransactionsLinkedAndCannotReachTheQueue) {
  const std::string role = "audit_writer_" + s_.control_db();
  struct DropRole {
    const Scenario& s;
    std::string role;
    ~DropRole() {
      try {
        s.control_exec("DROP OWNED BY " + role);
        pqxx::connection admin(s.dsn("postgres"));
        pqxx::nontransaction(admin).exec("DROP ROLE IF EXISTS " + role);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "dropping role " << role << ": " << e.what();
      }
    }
  } drop{s_, role};
  s_.control_exec("CREATE ROLE " + role + " NOLOGIN; GRANT USAGE ON SCHEMA mdsync TO " + role +
                  "; GRANT INSERT, SELECT ON mdsync.audit TO " + role +
                  "; GRANT USAGE ON SEQUENCE mdsync.audit_id_seq TO " + role);
  {
    Session t(s_);
    t.exec("SET ROLE " + role);
    t.exec("BEGIN");
    t.exec(
        "SELECT set_config('mdsync.audit_chain_batch', '1', true),"
        " set_config('mdsync.audit_head_tid', '(0,1)', true)");
    t.insert(1, "role");
    t.exec("SAVEPOINT a");
    t.insert(3, "gone");
    t.exec("ROLLBACK TO SAVEPOINT a");
    t.exec("SELECT set_config('mdsync.audit_chain_batch', 'not a number', true)");
    t.insert(4, "role");
    t.exec("SELECT set_config('mdsync.audit_chain_batch', '999999999', true)");
    t.insert(2, "role");
    t.exec("COMMIT");
    t.exec("BEGIN");
    t.insert(1, "role again");
    t.exec("SET CONSTRAINTS ALL IMMEDIATE");
    t.insert(2, "role again");
    t.exec("COMMIT");
  }
  EXPECT_EQ(s_.control(kChainRuns), "role*7 role again*3");
  EXPECT_EQ(verify(s_).exit_code, 0);
  for (const std::string& sql :
       {std::string("SELECT * FROM mdsync.audit_chain_pending"),
        std::string("INSERT INTO mdsync.audit_chain_pending (ids, leader) VALUES ('{1}', true)"),
        std::string("DELETE FROM mdsync.audit_chain_pending"),
        std::string("SELECT mdsync.audit_chain_tail(a) FROM mdsync.audit a"),
        std::string("SELECT mdsync.audit_chain_append(a) FROM mdsync.audit a")}) {
    try {
      s_.control_exec("SET ROLE " + role + "; " + sql);
      ADD_FAILURE() << "the role was allowed: " << sql;
    } catch (const pqxx::sql_error& e) {
      EXPECT_NE(std::string(e.what()).find("permission denied"), std::string::npos)
          << sql << ": " << e.what();
    }
  }
}

// A store whose chain was made under 0006 (a link per row) is upgraded in place by `init`: the
// chain goes on verifying and new rows continue it. A transaction that inserted rows under the
// old trigger and is still open when init runs holds the upgrade back until it has committed,
// and its rows are linked the old way.
TEST_F(AuditTest, InitUpgradesAStoreWithAChainInPlace) {
  // The store as the migrations before 0012 made it, built from schema/control as init does.
  // It keeps its identity, so that the sides stamped by it stay its own.
  s_.control_exec(
      "CREATE TABLE public.kept_identity AS SELECT * FROM mdsync.store_identity;"
      " DROP SCHEMA mdsync CASCADE; CREATE SCHEMA mdsync; CREATE TABLE mdsync.schema_migrations"
      " (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL"
      " DEFAULT now())");
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(MDSYNC_SCHEMA_DIR))
    if (e.path().extension() == ".sql") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    const std::string name = f.stem().string();
    const int version = std::stoi(name.substr(0, name.find('_')));
    if (version >= 12) continue;
    s_.control_exec(read_file(f.string()));
    s_.exec_with(s_.control_db(),
                 "INSERT INTO mdsync.schema_migrations (version, name) VALUES (" +
                     std::to_string(version) + ", $1)",
                 name);
  }
  s_.control_exec(
      "UPDATE mdsync.store_identity s SET store_id = k.store_id, secret = k.secret,"
      " created_at = k.created_at FROM public.kept_identity k; DROP TABLE public.kept_identity");
  ASSERT_EQ(s_.control("SELECT tgname FROM pg_trigger WHERE tgrelid = 'mdsync.audit'::regclass"
                       " AND tgconstraint <> 0"),
            "audit_chain_link");
  insert_audit_rows(s_, 3, "old");
  {
    Session t(s_);
    t.exec("BEGIN");
    t.insert(2, "old");
    t.exec("SAVEPOINT a");
    t.insert(1, "gone");
    t.exec("ROLLBACK TO SAVEPOINT a");
    t.exec("COMMIT");
  }
  EXPECT_EQ(s_.control(kChainRuns), "test*3 old*2");
  EXPECT_EQ(s_.control("SELECT seq FROM mdsync.audit_head"), "5");

  Session open(s_);
  open.exec("BEGIN");
  open.insert(2, "open during the upgrade");
  const int pid = s_.spawn_mdsync({"init"}, s_.dir() + "/init.log");
  EXPECT_EQ(wait_until(
                [&] {
                  return s_.control(
                      "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                      " AND wait_event_type = 'Lock'");
                },
                "1", 60),
            "1");
  open.insert(1, "open during the upgrade");
  open.exec("COMMIT");
  ASSERT_EQ(wait_exit(pid, 120), 0) << read_file(s_.dir() + "/init.log");
  EXPECT_NE(read_file(s_.dir() + "/init.log").find("applied migration 0012_audit_chain"),
            std::string::npos)
      << read_file(s_.dir() + "/init.log");
  EXPECT_EQ(s_.control("SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger"
                       " WHERE tgrelid = 'mdsync.audit'::regclass AND NOT tgisinternal"),
            "audit_append_only,audit_chain_queue,audit_no_truncate");
  EXPECT_EQ(s_.control(kChainRuns), "test*3 old*2 open during the upgrade*3");
  Verified v = verify(s_);
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(v.report["head"]["seq"], 8);

  insert_audit_rows(s_, 4, "new");
  {
    Session t(s_);
    t.exec("BEGIN");
    t.insert(1, "new");
    t.insert(3, "new");
    t.exec("COMMIT");
  }
  EXPECT_EQ(s_.control(kChainRuns), "test*3 old*2 open during the upgrade*3 test*4 new*4");
  v = verify(s_);
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(v.report["head"]["seq"], 16);
  EXPECT_NE(s_.mdsync_ok({"init"}).find("schema up to date"), std::string::npos);
}

}  // namespace
}  // namespace mdsync::e2e
