// The control store's roles (issue 10, point 10), with real login roles on the real cluster:
// a viewer reads but cannot decide; a steward decides only through mdsync's functions (no
// write privilege on any table), and the audit names the steward's database session user; the
// engine runs with the service role's privileges alone, which append to the audit but can
// neither change nor delete it; `init --print-grants` lets a login without CREATEROLE set up
// the control store.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "e2e_harness.hpp"
#include "fault_harness.hpp"

namespace mdsync::e2e {
namespace {

using nlohmann::json;
using namespace fault;

// A copy of the scenario's config whose control store is reached as `login`; returns its path.
std::string config_as(const Scenario& s, const std::string& login) {
  json config = json::parse(read_file(s.config_path()));
  config["control"] = s.dsn_as(s.control_db(), login);
  const std::string path = s.dir() + "/mdsync-" + login + ".json";
  write_file(path, config.dump(2));
  return path;
}

RunResult as(const Scenario& s, const std::string& login, std::vector<std::string> args,
             const Env& env = {}) {
  args.insert(args.begin(), {"--config", config_as(s, login)});
  return run(s, args, env);
}

// A concurrent edit of the shared segment: one open conflict; returns its id.
std::string open_segment_conflict(Scenario& s, const std::string& name) {
  s.erp_exec("INSERT INTO erp.customers (cust_name, segment_code) VALUES ('" + name + "', 'smb')");
  run_ok(s, {"run", "--once"});
  s.erp_exec("UPDATE erp.customers SET segment_code = 'enterprise' WHERE cust_name = '" + name +
             "'");
  s.crm_exec("UPDATE crm.accounts SET segment = 'public' WHERE \"accountName\" = '" + name + "'");
  run_ok(s, {"run", "--once"});
  return s.control(
      "SELECT c.id FROM mdsync.conflict c JOIN mdsync.golden g ON g.id = c.golden_id"
      " WHERE c.status = 'open' AND c.unit = 'segment' AND g.\"values\"->>'name' = '" +
      name + "'");
}

TEST(RolesTest, StewardDecidesThroughFunctionsViewerReadsServiceRunsWithLeastPrivilege) {
  Scenario s("roles");
  s.write_config();
  run_ok(s, {"init"});
  const std::string alice = s.create_role("alice", "LOGIN");
  const std::string vera = s.create_role("vera", "LOGIN");
  const std::string svc = s.create_role("svc", "LOGIN");
  s.control_exec("GRANT " + q(s.role("steward")) + " TO " + q(alice) + "; GRANT " +
                 q(s.role("viewer")) + " TO " + q(vera) + "; GRANT " + q(s.role("service")) +
                 " TO " + q(svc));
  const std::string id = open_segment_conflict(s, "Acme");
  ASSERT_NE(id, "<none>");
  const std::string as_alice = s.dsn_as(s.control_db(), alice);
  const std::string as_vera = s.dsn_as(s.control_db(), vera);
  const std::string as_svc = s.dsn_as(s.control_db(), svc);

  // The viewer reads the queue, cannot decide, and cannot read the engine's secret.
  const RunResult list = as(s, vera, {"conflicts", "list", "--json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(json::parse(list.out).size(), 1u) << list.out;
  const RunResult refused = as(s, vera, {"conflicts", "resolve", id, "--take", "crm"});
  EXPECT_EQ(refused.exit_code, 1) << refused.err;
  EXPECT_NE(refused.err.find(vera + " may read the conflict queue but not decide on it"),
            std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find(s.role("steward")), std::string::npos) << refused.err;
  EXPECT_NE(error_of(as_vera, "SELECT secret FROM mdsync.store_identity").find("permission denied"),
            std::string::npos);
  EXPECT_EQ(error_of(as_vera, "SELECT store_id FROM mdsync.store_identity"), "");

  // The steward writes no table: not golden, not the audit, not the action queue itself.
  for (const std::string& sql :
       {std::string("UPDATE mdsync.golden SET deleted = false"),
        std::string("INSERT INTO mdsync.audit (entity, unit, decision, source, rule,"
                    " ruleset_version, reason) VALUES ('customer', 'x', 'resolve', 'steward:x',"
                    " '', 1, 'forged')"),
        std::string("INSERT INTO mdsync.steward_action (kind, conflict_ids, requested_by)"
                    " VALUES ('dismiss', '{" +
                    id + "}', 'somebody else')"),
        std::string("UPDATE mdsync.conflict SET status = 'dismissed'")})
    EXPECT_NE(error_of(as_alice, sql).find("permission denied"), std::string::npos) << sql;
  EXPECT_NE(
      error_of(as_alice, "SELECT secret FROM mdsync.store_identity").find("permission denied"),
      std::string::npos);

  // ... but decides through mdsync's function: queued (no engine runs), then applied by the
  // engine, which runs as the service role; the audit names alice, the session user.
  const RunResult queued =
      as(s, alice, {"conflicts", "resolve", id, "--take", "crm", "--wait", "0"});
  ASSERT_EQ(queued.exit_code, 0) << queued.err;
  EXPECT_NE(queued.out.find("is queued"), std::string::npos) << queued.out;
  EXPECT_EQ(s.control("SELECT status FROM mdsync.conflict WHERE id = " + id), "open");
  EXPECT_EQ(s.control("SELECT requested_by FROM mdsync.steward_action"), alice);
  const RunResult engine = as(s, svc, {"run", "--once"});
  ASSERT_EQ(engine.exit_code, 0) << engine.err;
  EXPECT_EQ(s.control("SELECT status || ' ' || resolved_by FROM mdsync.conflict WHERE id = " + id),
            "resolved steward:" + alice + " as e2e");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.audit WHERE source = 'steward:" + alice +
                      " as e2e' AND unit = 'segment' AND decision = 'resolve'"),
            "1");
  EXPECT_EQ(s.control("SELECT status FROM mdsync.steward_action"), "applied");
  EXPECT_EQ(s.erp("SELECT segment_code FROM erp.customers WHERE cust_name = 'Acme'"), "public");

  // The service role appends to the audit and can neither change nor delete it (a privilege,
  // before any trigger), nor apply rules or decide for a steward.
  for (const std::string& sql :
       {std::string("UPDATE mdsync.audit SET reason = 'rewritten'"),
        std::string("DELETE FROM mdsync.audit"), std::string("TRUNCATE mdsync.audit"),
        std::string("UPDATE mdsync.audit_head SET seq = 0"),
        std::string("INSERT INTO mdsync.ruleset (texts) VALUES ('{}')")})
    EXPECT_NE(error_of(as_svc, sql).find("permission denied"), std::string::npos) << sql;

  // Rules too go through a function: applied by the steward, recorded under her name.
  json rules = json::parse(default_rules());
  rules["fields"]["phone"]["compare"] = "trim";
  write_file(s.dir() + "/rules/customer.json", rules.dump(2));
  const RunResult applied = as(s, alice, {"rules", "apply"});
  ASSERT_EQ(applied.exit_code, 0) << applied.err;
  EXPECT_EQ(s.control("SELECT applied_by FROM mdsync.ruleset ORDER BY version DESC LIMIT 1"),
            alice);

  // With the engine running, a steward's decision returns once it is applied: the plan, or the
  // engine's refusal (an invalid value), which changes nothing.
  const std::string second = open_segment_conflict(s, "Beta");
  fault::Service service(s, "service", {}, {"--config", config_as(s, svc)});
  const RunResult bad = as(s, alice, {"conflicts", "resolve", second, "--value", "\"bogus\""});
  EXPECT_EQ(bad.exit_code, 1) << bad.out;
  EXPECT_NE(bad.err.find("was refused, nothing changed"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("not one of the allowed values"), std::string::npos) << bad.err;
  EXPECT_EQ(s.control("SELECT status FROM mdsync.conflict WHERE id = " + second), "open");
  const RunResult good = as(s, alice, {"conflicts", "resolve", second, "--value", "\"smb\""});
  ASSERT_EQ(good.exit_code, 0) << good.err;
  EXPECT_NE(good.out.find("plan customer from steward:" + alice + " as e2e"), std::string::npos)
      << good.out;
  EXPECT_EQ(s.control("SELECT status FROM mdsync.conflict WHERE id = " + second), "resolved");
  // A request for a conflict that is not open is refused at once, by the function.
  const RunResult again = as(s, alice, {"conflicts", "dismiss", second});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("conflict " + second + " is already resolved"), std::string::npos)
      << again.err;
  EXPECT_EQ(service.stop(), 0) << service.log();
  EXPECT_EQ(as(s, svc, {"audit", "verify"}).exit_code, 0);
}

// `init --print-grants` prints a control-store section a DBA runs as superuser; then a login
// that may not create roles (nor schemas in the database) initializes the control store, and
// the roles hold exactly their privileges.
TEST(RolesTest, PrintGrantsLetsALoginWithoutCreateroleSetUpTheControlStore) {
  Scenario s("roles_grants");
  s.write_config();
  const std::string owner = s.create_role("owner", "LOGIN");
  const std::string config = config_as(s, owner);
  const RunResult denied = run(s, {"--config", config, "init"});
  EXPECT_EQ(denied.exit_code, 1) << denied.out;

  const RunResult script = run(s, {"--config", config, "init", "--print-grants"});
  ASSERT_EQ(script.exit_code, 0) << script.err;
  const std::size_t begin = script.out.find("\n-- control store:");
  ASSERT_NE(begin, std::string::npos) << script.out;
  const std::size_t end = script.out.find("\n-- side ", begin);
  s.control_exec(script.out.substr(begin, end - begin));
  const RunResult init = run(s, {"--config", config, "init"});
  ASSERT_EQ(init.exit_code, 0) << init.err;

  auto may = [&](const std::string& role, const std::string& what) {
    return s.control("SELECT " + what + " FROM (SELECT " + "'" + role + "'::text AS r) x");
  };
  const std::string steward = s.role("steward"), service = s.role("service"),
                    viewer = s.role("viewer");
  EXPECT_EQ(may(steward, "has_table_privilege(r, 'mdsync.golden', 'UPDATE')"), "f");
  EXPECT_EQ(may(steward, "has_table_privilege(r, 'mdsync.conflict', 'SELECT')"), "t");
  EXPECT_EQ(may(steward,
                "has_function_privilege(r, 'mdsync.request_steward_action(text, bigint[], text,"
                " jsonb, text, text, text)', 'EXECUTE')"),
            "t");
  EXPECT_EQ(may(viewer,
                "has_function_privilege(r, 'mdsync.request_steward_action(text, bigint[], text,"
                " jsonb, text, text, text)', 'EXECUTE')"),
            "f");
  EXPECT_EQ(may(service, "has_table_privilege(r, 'mdsync.audit', 'INSERT')"), "t");
  EXPECT_EQ(may(service, "has_table_privilege(r, 'mdsync.audit', 'UPDATE')"), "f");
  EXPECT_EQ(may(service, "has_table_privilege(r, 'mdsync.audit', 'DELETE')"), "f");
  EXPECT_EQ(may(service, "has_table_privilege(r, 'mdsync.golden', 'UPDATE')"), "t");
  EXPECT_EQ(may(viewer, "has_column_privilege(r, 'mdsync.store_identity', 'secret', 'SELECT')"),
            "f");
  EXPECT_EQ(s.control("SELECT tableowner FROM pg_tables WHERE schemaname = 'mdsync'"
                      " AND tablename = 'audit'"),
            owner);
  // A second init changes no privilege and creates no role.
  const RunResult again = run(s, {"--config", config, "init"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out.find("created role"), std::string::npos) << again.out;
}

}  // namespace
}  // namespace mdsync::e2e
