// End-to-end tests of what operators rely on the CLI for (issue 10, points 11-14): error items
// (`mdsync errors`: changes kept as errors, failed write-backs) listed, retried from the row as
// it is now, discarded, audited, all or nothing; `status` exit codes and --check thresholds;
// usage errors for unknown filters and malformed values; PostgreSQL errors translated; a
// command before `init`; multi-id commands all or nothing; the steward's identity.
#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "e2e_harness.hpp"
#include "mdsync/core/utf8.hpp"

namespace mdsync::e2e {
namespace {

using nlohmann::json;

std::size_t line_count(const std::string& s) {
  std::size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

std::string crm_name_of_erp_row(const Scenario& s, const std::string& account_num) {
  const std::string key = s.control(
      "SELECT x2.row_key FROM mdsync.crosswalk x1 JOIN mdsync.crosswalk x2"
      " ON x2.golden_id = x1.golden_id AND x2.side = 'crm'"
      " WHERE x1.side = 'erp' AND x1.row_key = '" +
      account_num + "'");
  return s.crm("SELECT \"accountName\" FROM crm.accounts WHERE id = '" + key + "'");
}

// A concurrent edit of the shared, quarantined segment: one open conflict on the record of
// ERP row `account_num`; returns its id.
std::string open_segment_conflict(const Scenario& s, int account_num) {
  const std::string n = std::to_string(account_num);
  s.erp_exec("INSERT INTO erp.customers (account_num, cust_name, segment_code) VALUES (" + n +
             ", 'Customer " + n + "', 'smb')");
  s.mdsync_ok({"run", "--once"});
  s.erp_exec("UPDATE erp.customers SET segment_code = 'enterprise' WHERE account_num = " + n);
  s.crm_exec("UPDATE crm.accounts SET segment = 'public' WHERE \"accountName\" = 'Customer " + n +
             "'");
  s.mdsync_ok({"run", "--once"});
  return s.control(
      "SELECT c.id FROM mdsync.conflict c JOIN mdsync.crosswalk x ON x.golden_id = c.golden_id"
      " WHERE x.side = 'erp' AND x.row_key = '" +
      n + "' AND c.status = 'open'");
}

// A refusing trigger on the control store stands for any reason the engine cannot reconcile
// a change (the change is kept in capture_error, BadRowsTest).
void refuse_poison(const Scenario& s) {
  s.control_exec(
      "CREATE FUNCTION public.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
      " IF NEW.\"values\"->>'name' LIKE 'Poison%' THEN RAISE EXCEPTION 'refused by the test';"
      " END IF; RETURN NEW; END $$;"
      "CREATE TRIGGER refuse_poison BEFORE UPDATE ON mdsync.golden FOR EACH ROW"
      " EXECUTE FUNCTION public.refuse_poison()");
}

std::vector<std::string> ids_of(const json& items) {
  std::vector<std::string> ids;
  for (const json& i : items) ids.push_back(i["id"].get<std::string>());
  return ids;
}

TEST(ErrorsTest, ChangeKeptAsErrorIsRetriedFromTheRowAsItIsNowAndAudited) {
  Scenario s("errors_retry_change");
  s.write_config();
  s.mdsync_ok({"init"});
  s.erp_exec(
      "INSERT INTO erp.customers (account_num, cust_name) VALUES"
      " (1, 'Steady'), (2, 'Victim'), (3, 'Later')");
  s.mdsync_ok({"run", "--once"});
  refuse_poison(s);
  s.erp_exec("UPDATE erp.customers SET cust_name = 'Poison 2' WHERE account_num = 2");
  s.erp_exec("UPDATE erp.customers SET cust_name = 'Poison 3' WHERE account_num = 3");
  const RunResult drained = s.mdsync({"run", "--once"});
  EXPECT_EQ(drained.exit_code, 1) << drained.err;
  EXPECT_NE(drained.err.find("mdsync: run --once: 2 changes kept as errors"), std::string::npos)
      << drained.err;

  // Both are open error items, and status fails on them.
  const json items = json::parse(s.mdsync_ok({"errors", "list", "--json"}));
  ASSERT_EQ(items.size(), 2u) << items.dump(2);
  for (const json& i : items) {
    EXPECT_EQ(i["kind"], "capture_error") << i.dump();
    EXPECT_EQ(i["side"], "erp") << i.dump();
    EXPECT_EQ(i["status"], "open") << i.dump();
    EXPECT_NE(i["error"].get<std::string>().find("refused by the test"), std::string::npos);
    EXPECT_EQ(i["id"].get<std::string>().front(), 'c');
  }
  EXPECT_EQ(items[0]["row_key"], "2");
  EXPECT_EQ(items[1]["row_key"], "3");
  const json one = json::parse(s.mdsync_ok({"errors", "show", items[0]["id"], "--json"}));
  EXPECT_EQ(one["values"]["name"], "Poison 2") << one.dump(2);
  RunResult st = s.mdsync({"status", "--json"});
  EXPECT_EQ(st.exit_code, 1) << st.err;
  EXPECT_EQ(json::parse(st.out)["sides"]["erp"]["capture_errors"], 2) << st.out;
  // The batch recorded when it took the ERP's captures in (with its done markers, one
  // statement); the CRM captured nothing.
  EXPECT_TRUE(json::parse(st.out)["sides"]["erp"]["last_capture_at"].is_string()) << st.out;
  EXPECT_TRUE(json::parse(st.out)["sides"]["crm"]["last_capture_at"].is_null()) << st.out;
  EXPECT_NE(st.err.find("side erp: 2 change(s) kept as errors"), std::string::npos) << st.err;
  EXPECT_EQ(json::parse(st.out)["problems"][0]["check"], "errors") << st.out;
  EXPECT_EQ(s.mdsync({"status", "--check", "errors=2"}).exit_code, 0);

  // Meanwhile row 3 is edited again and that change is reconciled; then the cause is fixed.
  s.erp_exec("UPDATE erp.customers SET cust_name = 'Fixed 3' WHERE account_num = 3");
  s.mdsync_ok({"run", "--once"});
  EXPECT_EQ(crm_name_of_erp_row(s, "3"), "Fixed 3");
  s.control_exec("DROP TRIGGER refuse_poison ON mdsync.golden");

  const std::string out =
      s.mdsync_ok({"errors", "retry", items[0]["id"], items[1]["id"], "--note", "trigger removed"});
  EXPECT_NE(out.find("re-captured erp customer row 2 as it is now (upsert)"), std::string::npos)
      << out;
  s.mdsync_ok({"run", "--once"});
  // Row 2 arrives as it is; row 3 keeps its later value: the old change is not replayed.
  EXPECT_EQ(crm_name_of_erp_row(s, "2"), "Poison 2");
  EXPECT_EQ(crm_name_of_erp_row(s, "3"), "Fixed 3");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.golden WHERE \"values\"->>'name' = 'Poison 3'"),
            "0");

  EXPECT_EQ(s.mdsync_ok({"errors", "list"}), "no open error items\n");
  const json retried =
      json::parse(s.mdsync_ok({"errors", "list", "--status", "retried", "--json"}));
  ASSERT_EQ(retried.size(), 2u) << retried.dump(2);
  EXPECT_EQ(retried[0]["handled_by"], steward_source()) << retried.dump(2);
  EXPECT_EQ(retried[0]["note"], "trigger removed") << retried.dump(2);
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.audit WHERE decision = 'error_retry'"
                      " AND source = " +
                      steward_source_sql() + " AND reason LIKE '%trigger removed%'"),
            "2");
  st = s.mdsync({"status"});
  EXPECT_EQ(st.exit_code, 0) << st.err;
  // A retried item cannot be retried again; nothing changes.
  const RunResult again = s.mdsync({"errors", "retry", items[0]["id"]});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find(items[0]["id"].get<std::string>() + " is already retried"),
            std::string::npos)
      << again.err;
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.audit WHERE decision = 'error_retry'"), "2");
}

TEST(ErrorsTest, DiscardIsAuditedAndEveryIdOrNone) {
  Scenario s("errors_discard");
  s.write_config();
  s.mdsync_ok({"init"});
  s.erp_exec(
      "INSERT INTO mdsync.capture (entity, op, row_key, changed) VALUES"
      " ('customer', 'U', NULL, '{\"name\": \"Keyless\"}'),"
      " ('vendor', 'U', '7', '{\"name\": \"Not an entity\"}')");
  EXPECT_EQ(s.mdsync({"run", "--once"}).exit_code, 1);
  const std::vector<std::string> ids =
      ids_of(json::parse(s.mdsync_ok({"errors", "list", "--side", "erp", "--json"})));
  ASSERT_EQ(ids.size(), 2u);

  // Neither can be re-read from its side: retry refuses both, naming why, and changes nothing.
  RunResult r = s.mdsync({"errors", "retry", ids[0], ids[1]});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(ids[0] + " has no row key"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("entity 'vendor' is not mapped"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nothing was changed"), std::string::npos) << r.err;
  // One unknown id: nothing is discarded.
  r = s.mdsync({"errors", "discard", ids[0], "c999999"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no error item c999999"), std::string::npos) << r.err;
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.capture_error WHERE status = 'open'"), "2");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.audit WHERE decision LIKE 'error_%'"), "0");
  // Not an item id: a usage error.
  r = s.mdsync({"errors", "discard", "x1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(line_count(r.err), 1u) << r.err;

  s.mdsync_ok({"errors", "discard", ids[0], ids[1], "--note", "junk rows"});
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.capture_error WHERE status = 'discarded'"
                      " AND handled_by = " +
                      steward_source_sql()),
            "2");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.audit WHERE decision = 'error_discard'"
                      " AND source = " +
                      steward_source_sql() + " AND reason LIKE '%junk rows%'"),
            "2");
  const RunResult st = s.mdsync({"status", "--json"});
  EXPECT_EQ(st.exit_code, 0) << st.err;
  EXPECT_EQ(json::parse(st.out)["sides"]["erp"]["capture_errors"], 0) << st.out;
  EXPECT_EQ(json::parse(s.mdsync_ok({"errors", "list", "--status", "all", "--json"})).size(), 2u);
}

TEST(ErrorsTest, FailedWriteBackIsRetriedOnceTheSideAcceptsIt) {
  Scenario s("errors_retry_writeback");
  s.write_config();
  s.mdsync_ok({"init"});
  s.erp_exec(
      "INSERT INTO erp.customers (account_num, cust_name, credit_lim) VALUES (1, 'Big', 10)");
  s.mdsync_ok({"run", "--once"});
  s.crm_exec(
      "ALTER TABLE crm.accounts ADD CONSTRAINT small_credit CHECK (credit_limit < 1000000)"
      " NOT VALID");
  s.erp_exec("UPDATE erp.customers SET credit_lim = 2000000 WHERE account_num = 1");
  const RunResult drained = s.mdsync({"run", "--once"});
  EXPECT_EQ(drained.exit_code, 1) << drained.err;
  EXPECT_NE(drained.err.find("1 write-back failed"), std::string::npos) << drained.err;

  const json items = json::parse(s.mdsync_ok({"errors", "list", "--json"}));
  ASSERT_EQ(items.size(), 1u) << items.dump(2);
  EXPECT_EQ(items[0]["kind"], "writeback_failed");
  EXPECT_EQ(items[0]["side"], "crm");
  EXPECT_NE(items[0]["error"].get<std::string>().find("small_credit"), std::string::npos);
  const std::string id = items[0]["id"];
  EXPECT_EQ(id, "w" + s.control("SELECT id FROM mdsync.outbox WHERE status = 'failed'"));
  RunResult st = s.mdsync({"status"});
  EXPECT_EQ(st.exit_code, 1);
  EXPECT_NE(st.err.find("side crm: 1 failed write-back(s)"), std::string::npos) << st.err;
  EXPECT_EQ(s.mdsync({"status", "--check", "failed=1"}).exit_code, 0);

  // The side accepts it now, but nothing retries it by itself.
  s.crm_exec("ALTER TABLE crm.accounts DROP CONSTRAINT small_credit");
  s.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s.crm("SELECT credit_limit::int FROM crm.accounts"), "10");
  const std::string out = s.mdsync_ok({"errors", "retry", id});
  EXPECT_NE(out.find("planned the write-backs of customer"), std::string::npos) << out;
  s.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s.crm("SELECT credit_limit::int FROM crm.accounts"), "2000000");
  EXPECT_EQ(s.control("SELECT review FROM mdsync.outbox WHERE id = " + id.substr(1)), "retried");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.audit WHERE decision = 'error_retry'"), "1");
  st = s.mdsync({"status"});
  EXPECT_EQ(st.exit_code, 0) << st.err;
}

// Status and a conflict read as text for people: times without quotes, values as field="value"
// (NULL apart from ""), conflict counts as words, no JSON fragments.
TEST(StatusTest, TextOutputReadsWithoutJsonFragments) {
  Scenario s("status_text");
  s.write_config();
  s.mdsync_ok({"init"});
  const std::string id = open_segment_conflict(s, 5);
  ASSERT_NE(id, "<none>");
  const std::string status = s.mdsync({"status"}).out;
  EXPECT_NE(status.find("open conflicts: customer: 1 concurrent_edit\n"), std::string::npos)
      << status;
  EXPECT_EQ(status.find('{'), std::string::npos) << status;
  // The sides as a table: a header and one row each, the columns lined up.
  std::map<std::string, std::string> rows;
  std::istringstream in(status);
  for (std::string line; std::getline(in, line);)
    for (const char* first : {"SIDE ", "crm ", "erp "})
      if (line.rfind(first, 0) == 0) rows[first] = line;
  ASSERT_EQ(rows.size(), 3u) << status;
  const std::size_t pending = rows["SIDE "].find("WRITE-BACKS PENDING");
  const std::size_t circuit = rows["SIDE "].find("CIRCUIT");
  for (const char* side : {"crm ", "erp "}) {
    EXPECT_EQ(rows[side].find("yes"), rows["SIDE "].find("REACHABLE")) << status;
    EXPECT_EQ(rows[side].find_first_not_of(' ', pending), pending) << status;
    EXPECT_EQ(rows[side].substr(circuit), "closed") << status;
  }

  s.mdsync_ok({"conflicts", "dismiss", id, "--note", "checked"});
  const std::string shown = s.mdsync_ok({"conflicts", "show", id});
  EXPECT_EQ(shown.find('{'), std::string::npos) << shown;
  EXPECT_EQ(shown.find("\"20"), std::string::npos) << "a time in quotes:\n" << shown;
  EXPECT_NE(shown.find("  opened:  20"), std::string::npos) << shown;
  EXPECT_NE(shown.find("  values:  "), std::string::npos) << shown;
  EXPECT_NE(shown.find("segment=\"enterprise\""), std::string::npos) << shown;
  EXPECT_NE(shown.find("  closed:  20"), std::string::npos) << shown;
  EXPECT_NE(shown.find(": dismiss"), std::string::npos) << shown;
}

// `conflicts list` is a table whose columns line up whatever the widths (a long record name,
// an accented one, a ten-digit id), with each record's name beside its id; `conflicts show`
// names the record too. A name with a newline stays on its line.
TEST(StatusTest, ConflictsListLinesUpAndNamesTheRecords) {
  Scenario s("status_table");
  s.write_config();
  s.mdsync_ok({"init"});
  const std::string first = open_segment_conflict(s, 5);
  const std::string second = open_segment_conflict(s, 6);
  ASSERT_NE(first, "<none>");
  ASSERT_NE(second, "<none>");
  // Names the engine holds in golden; one is long, accented and has a line break.
  s.control_exec(
      "UPDATE mdsync.golden SET \"values\" = jsonb_set(\"values\", '{name}', "
      "to_jsonb('Société Générale de Belgique\nBranch'::text)) WHERE id = (SELECT "
      "golden_id FROM mdsync.conflict WHERE id = " +
      first + ")");
  const std::string list = s.mdsync_ok({"conflicts", "list"});
  std::vector<std::string> lines;
  std::istringstream in(list);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] != ' ') lines.push_back(line);  // rows, not their value notes
  ASSERT_EQ(lines.size(), 3u) << list;
  EXPECT_EQ(lines[0].rfind("ID", 0), 0u) << list;
  // Each column starts at the same place (counted in characters) on every row.
  auto column_at = [](const std::string& line, const std::string& text) {
    const auto at = line.find(text);
    return at == std::string::npos ? std::string::npos
                                   : core::utf8_length(std::string_view(line).substr(0, at));
  };
  const std::size_t kind = column_at(lines[0], "KIND");
  EXPECT_EQ(column_at(lines[1], "concurrent_edit"), kind) << list;
  EXPECT_EQ(column_at(lines[2], "concurrent_edit"), kind) << list;
  const std::size_t unit = column_at(lines[0], "UNIT");
  EXPECT_EQ(column_at(lines[1], "segment"), unit) << list;
  EXPECT_EQ(column_at(lines[2], "segment"), unit) << list;
  const std::string gid = s.control("SELECT golden_id FROM mdsync.conflict WHERE id = " + first);
  EXPECT_NE(list.find(gid + " Société Générale de Belgique Br"), std::string::npos) << list;
  EXPECT_NE(list.find(" Customer 6 "), std::string::npos) << list;
  EXPECT_NE(s.mdsync_ok({"conflicts", "show", second}).find("  record:  customer "),
            std::string::npos);
  EXPECT_NE(s.mdsync_ok({"conflicts", "show", second}).find(" Customer 6, from "),
            std::string::npos)
      << s.mdsync_ok({"conflicts", "show", second});
  // --json is as documented: no name added.
  EXPECT_EQ(s.mdsync_ok({"conflicts", "list", "--json"}).find("Société"), std::string::npos);
}

TEST(StatusTest, ChecksSetTheExitCode) {
  Scenario s("status_checks");
  s.write_config();
  s.mdsync_ok({"init"});
  RunResult st = s.mdsync({"status", "--json"});
  EXPECT_EQ(st.exit_code, 0) << st.err;
  EXPECT_TRUE(json::parse(st.out)["problems"].empty()) << st.out;

  const std::string conflict = open_segment_conflict(s, 5);
  ASSERT_NE(conflict, "<none>");
  st = s.mdsync({"status", "--check", "conflicts=0"});
  EXPECT_EQ(st.exit_code, 1);
  EXPECT_NE(st.err.find("1 open conflict(s) (limit 0)"), std::string::npos) << st.err;
  EXPECT_NE(st.out.find("\nerp "), std::string::npos) << st.out;  // the report is still out
  EXPECT_EQ(s.mdsync({"status", "--check", "conflicts=1"}).exit_code, 0);

  // Captured changes waiting for the engine.
  s.erp_exec("UPDATE erp.customers SET cust_name = 'Waiting' WHERE account_num = 5");
  st = s.mdsync({"status", "--check", "backlog=0", "--json"});
  EXPECT_EQ(st.exit_code, 1);
  EXPECT_EQ(json::parse(st.out)["problems"][0]["check"], "backlog") << st.out;
  EXPECT_EQ(s.mdsync({"status", "--check", "backlog=1"}).exit_code, 0);

  // A write-back waiting for an hour.
  s.control_exec(
      "INSERT INTO mdsync.outbox (side, entity, golden_id, kind, row_key, created_at)"
      " SELECT 'crm', 'customer', golden_id, 'update', row_key, now() - interval '1 hour'"
      " FROM mdsync.crosswalk WHERE side = 'crm' LIMIT 1");
  st = s.mdsync({"status", "--check", "lag=60"});
  EXPECT_EQ(st.exit_code, 1);
  EXPECT_NE(st.err.find("side crm: the oldest pending write-back waits"), std::string::npos)
      << st.err;
  EXPECT_EQ(s.mdsync({"status", "--check", "lag=7200"}).exit_code, 0);

  for (const char* bad : {"nope=1", "lag=abc", "lag"}) {
    st = s.mdsync({"status", "--check", bad});
    EXPECT_EQ(st.exit_code, 2) << bad;
    EXPECT_EQ(line_count(st.err), 1u) << st.err;
  }
}

TEST(CliTruthTest, UnknownFiltersAndMalformedValuesAreUsageErrors) {
  Scenario s("cli_truth_usage");
  s.write_config();
  s.mdsync_ok({"init"});
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"conflicts", "list", "--entity", "vendor"},
       "'vendor' is not an entity (entities: customer)"},
      {{"conflicts", "list", "--field", "fax"}, "'fax' is not a field or group"},
      {{"conflicts", "list", "--entity", "customer", "--field", "fax"}, "address"},
      {{"conflicts", "resolve", "--all", "--entity", "vendor", "--take", "erp"}, "'vendor'"},
      {{"conflicts", "resolve", "1", "--take", "sap"}, "'sap' is not a side (sides: "},
      {{"conflicts", "resolve", "1", "--value", "{\"segment\": "}, "--value is not valid JSON"},
      {{"conflicts", "resolve", "1", "--value", "smb"}, "--value is not valid JSON"},
      {{"errors", "list", "--side", "sap"}, "'sap' is not a side"},
      {{"errors", "list", "--entity", "vendor"}, "'vendor' is not an entity"},
      {{"errors", "list", "--status", "done"}, "done"},
      {{"audit", "--entity", "vendor"}, "'vendor' is not an entity"},
      {{"audit", "--since", "yesterday"}, "--since: 'yesterday' is not an ISO 8601 time"},
      {{"audit", "--since", "2024-13-01"}, "is not an ISO 8601 time"},
      {{"records", "show", "vendor", "1"}, "'vendor' is not an entity"},
      {{"records", "show", "customer", "sap:1"}, "'sap' is not a side"},
      {{"rules", "show", "--entity", "vendor"}, "'vendor' is not an entity of the ruleset"},
  };
  for (const auto& [args, needle] : cases) {
    std::string name = "mdsync";
    for (const auto& a : args) name += " " + a;
    const RunResult r = s.mdsync(args);
    EXPECT_EQ(r.exit_code, 2) << name << "\n" << r.out << r.err;
    EXPECT_EQ(line_count(r.err), 1u) << name << ":\n" << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << name << ":\n" << r.err;
    EXPECT_NE(r.err.find("--help"), std::string::npos) << name << ":\n" << r.err;
    EXPECT_EQ(r.out, "") << name;
  }
  // Valid ones still work: a group name, an ISO time, a field with no conflicts.
  EXPECT_EQ(s.mdsync_ok({"conflicts", "list", "--field", "address"}), "no open conflicts\n");
  EXPECT_EQ(s.mdsync_ok({"conflicts", "list", "--entity", "customer", "--field", "city"}),
            "no open conflicts\n");
  s.mdsync_ok({"audit", "--since", "2024-05-01"});
  s.mdsync_ok({"audit", "--since", "2024-05-01T12:00:00.5+02:00"});
}

TEST(CliTruthTest, CommandsBeforeInitSayToRunInit) {
  Scenario s("cli_truth_noinit");
  s.write_config();
  const std::vector<std::vector<std::string>> commands = {{"conflicts", "list"},
                                                          {"status"},
                                                          {"errors", "list"},
                                                          {"audit"},
                                                          {"rules", "show"},
                                                          {"run", "--once"},
                                                          {"records", "show", "customer", "1"},
                                                          {"rules", "apply"}};
  for (const auto& args : commands) {
    std::string name = "mdsync";
    for (const auto& a : args) name += " " + a;
    const RunResult r = s.mdsync(args);
    EXPECT_EQ(r.exit_code, 1) << name << "\n" << r.err;
    EXPECT_NE(r.err.find("the control store is not initialized: run `mdsync init`"),
              std::string::npos)
        << name << ":\n"
        << r.err;
    EXPECT_EQ(r.err.find("does not exist"), std::string::npos) << name << ":\n" << r.err;
  }
  s.mdsync_ok({"init"});
  s.mdsync_ok({"conflicts", "list"});
}

// A login role without privileges, unique to the scenario (roles are cluster-wide), dropped at
// the end after the scenario's databases (it is declared first, so destroyed last).
struct ScenarioRole {
  std::string admin_dsn, name;
  ~ScenarioRole() {
    if (name.empty()) return;
    try {
      pqxx::connection c(admin_dsn);
      pqxx::nontransaction tx(c);
      tx.exec("DROP ROLE IF EXISTS " + tx.quote_name(name));
    } catch (const std::exception& e) {
      ADD_FAILURE() << "could not drop role " << name << ": " << e.what();
    }
  }
};

TEST(CliTruthTest, PermissionErrorsNameTheDatabaseTheObjectAndTheGrant) {
  ScenarioRole role;
  Scenario s("cli_truth_grants");
  s.write_config();
  s.mdsync_ok({"init"});
  const std::string conflict = open_segment_conflict(s, 9);
  role.admin_dsn = s.dsn("postgres");
  role.name = s.control_db() + "_r";
  s.control_exec("CREATE ROLE " + role.name + " LOGIN");
  nlohmann::json config = json::parse(read_file(s.config_path()));
  config["control"] = s.dsn(s.control_db()) + " user=" + role.name;
  write_file(s.config_path(), config.dump(2));

  RunResult r = s.mdsync({"conflicts", "list"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(line_count(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("control store: permission denied for schema mdsync"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("GRANT USAGE ON SCHEMA mdsync TO " + role.name), std::string::npos) << r.err;

  s.control_exec("GRANT USAGE ON SCHEMA mdsync TO " + role.name);
  r = s.mdsync({"conflicts", "list"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(line_count(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("control store: permission denied for table"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA mdsync TO " +
                       role.name),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("CONTEXT"), std::string::npos) << r.err;

  // Granted, the role acts as a steward under its own database name (not $MDSYNC_STEWARD alone).
  s.control_exec("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA mdsync TO " +
                 role.name + "; GRANT USAGE ON ALL SEQUENCES IN SCHEMA mdsync TO " + role.name);
  s.mdsync_ok({"conflicts", "dismiss", conflict});
  EXPECT_EQ(s.control("SELECT resolved_by FROM mdsync.conflict WHERE id = " + conflict),
            "steward:" + role.name + " as e2e");
}

TEST(CliTruthTest, MultiIdCommandsChangeNothingWhenOneIdIsRefused) {
  Scenario s("cli_truth_all_or_nothing");
  s.write_config();
  s.mdsync_ok({"init"});
  const std::string a = open_segment_conflict(s, 1);
  const std::string b = open_segment_conflict(s, 2);
  const std::string audit = s.control("SELECT count(*) FROM mdsync.audit");

  RunResult r = s.mdsync({"conflicts", "dismiss", "999999", a});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("conflict 999999: no conflict with id 999999"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nothing was changed"), std::string::npos) << r.err;
  r = s.mdsync({"conflicts", "resolve", a, "999998", "--take", "erp"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.conflict WHERE status = 'open'"), "2");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.audit"), audit);

  // --as names the person next to the database user.
  s.mdsync_ok({"--as", "Alice Smith", "conflicts", "dismiss", a, b});
  const std::string user = steward_source().substr(0, steward_source().find(" as "));
  EXPECT_EQ(s.control("SELECT string_agg(DISTINCT resolved_by, ',') FROM mdsync.conflict"),
            user + " as Alice Smith");
}

}  // namespace
}  // namespace mdsync::e2e
