// Trust tests (issue 10, points 6-8), with real roles on the real cluster: an application role
// writes the mapped tables through SECURITY DEFINER capture and can neither read, forge nor
// suppress captures; the engine's own writes are recognized by a per-side secret; `init
// --print-grants` lets a DBA set up what init would otherwise need CREATEROLE for; an older
// install is upgraded; a side belongs to one control store (stamp, `--adopt-side`); and one
// engine works per control store (the lease), a second one stands by.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <thread>

#include "e2e_harness.hpp"
#include "fault_harness.hpp"

namespace mdsync::e2e {
namespace {

using nlohmann::json;
using namespace fault;

// The engine lease's advisory lock key (engine/store/src/engine_lease.cpp).
constexpr long long kEngineLease = 0x6d6473796e634c45;

// An application's login role with privileges on the demo tables only, not on schema mdsync.
std::string make_app_role(Scenario& s) {
  const std::string app = s.create_role("app", "LOGIN");
  s.erp_exec("GRANT USAGE ON SCHEMA erp TO " + q(app) +
             "; GRANT SELECT, INSERT, UPDATE, DELETE ON erp.customers TO " + q(app) +
             "; GRANT USAGE ON SEQUENCE erp.customers_account_num_seq TO " + q(app));
  s.crm_exec("GRANT USAGE ON SCHEMA crm TO " + q(app) +
             "; GRANT SELECT, INSERT, UPDATE, DELETE ON crm.accounts TO " + q(app));
  return app;
}

// The session holding the engine lease on the scenario's control store, or "<none>".
std::string lease_holder(const Scenario& s) {
  return s.control(
      "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
      " AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname ="
      " current_database()) AND l.classid = (" +
      std::to_string(kEngineLease) + "::bigint >> 32)::oid AND l.objid = (" +
      std::to_string(kEngineLease) + "::bigint & 4294967295)::oid");
}

std::size_t count_with(const std::vector<json>& events, const std::string& text) {
  std::size_t n = 0;
  for (const json& e : events) n += e.value("error", "").find(text) != std::string::npos ? 1 : 0;
  return n;
}

// Point 6 and 7: an application role writes the mapped tables without any privilege on schema
// mdsync; its writes are captured and synced; it cannot read, write or call anything of mdsync;
// and no value of mdsync.origin (the old 'engine', the hash the trigger holds) makes its write
// pass uncaptured: an ERP-owned credit limit changed on the CRM that way is reverted and audited.
TEST(SecurityTest, ApplicationRoleIsCapturedAndCannotForgeOrSuppressCapture) {
  Scenario s("sec_app");
  s.write_config();
  run_ok(s, {"init"});
  const std::string app = make_app_role(s);
  const std::string erp_app = s.dsn_as(s.erp_db(), app), crm_app = s.dsn_as(s.crm_db(), app);

  sql_exec(erp_app,
           "INSERT INTO erp.customers (cust_name, credit_lim, segment_code) VALUES"
           " ('Acme', 100, 'smb'), ('Gone', 5, 'smb')");
  sql_exec(crm_app, "INSERT INTO crm.accounts (\"accountName\", phone) VALUES ('Beta', '+32 1')");
  EXPECT_EQ(s.erp("SELECT count(*) FROM mdsync.capture"), "2");
  EXPECT_EQ(s.crm("SELECT count(*) FROM mdsync.capture"), "1");
  run_ok(s, {"run", "--once"});
  sql_exec(erp_app, "UPDATE erp.customers SET credit_lim = 250 WHERE cust_name = 'Acme'");
  sql_exec(erp_app, "DELETE FROM erp.customers WHERE cust_name = 'Gone'");
  sql_exec(crm_app, "UPDATE crm.accounts SET phone = '+32 2' WHERE \"accountName\" = 'Beta'");
  run_ok(s, {"run", "--once"});
  EXPECT_EQ(s.crm("SELECT credit_limit FROM crm.accounts WHERE \"accountName\" = 'Acme'"),
            "250.0000");
  EXPECT_EQ(s.crm("SELECT active FROM crm.accounts WHERE \"accountName\" = 'Gone'"), "f");
  EXPECT_EQ(s.erp("SELECT phone_no FROM erp.customers WHERE cust_name = 'Beta'"), "+32 2");
  // No echo: the engine's writes on both sides (inserts, updates, a deactivation) were not
  // captured; every capture the control store reconciled is one of the users' 7 changes.
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.capture_done WHERE side = 'erp'"), "4");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.capture_done WHERE side = 'crm'"), "2");

  // Nothing of schema mdsync is the application's: no capture rows to read or forge, no
  // capture function to call, no stamp to read.
  for (const std::string& dsn : {erp_app, crm_app}) {
    for (const std::string& sql :
         {std::string("SELECT count(*) FROM mdsync.capture"),
          std::string("INSERT INTO mdsync.capture (entity, op, row_key, changed) VALUES"
                      " ('customer', 'U', '1', '{\"credit_limit\": \"1\"}')"),
          std::string("SELECT mdsync.capture_customer()"),
          std::string("SELECT * FROM mdsync.owner"), std::string("SELECT * FROM mdsync.applied")}) {
      const std::string error = error_of(dsn, sql);
      EXPECT_NE(error.find("permission denied"), std::string::npos) << sql << ": " << error;
    }
  }

  // The old mark, in the session and in a transaction, and the hash the trigger holds
  // (pg_proc.prosrc is readable by anyone): every one of these writes is captured.
  sql_exec(crm_app,
           "SET mdsync.origin = 'engine'; UPDATE crm.accounts SET credit_limit = 999999"
           " WHERE \"accountName\" = 'Acme'");
  sql_exec(crm_app,
           "BEGIN; SET LOCAL mdsync.origin = 'engine'; UPDATE crm.accounts SET credit_limit ="
           " 888888 WHERE \"accountName\" = 'Acme'; COMMIT");
  const std::string hash =
      sql1(crm_app,
           "SELECT substring(prosrc from '''([0-9a-f]{64})''') FROM pg_proc WHERE proname ="
           " 'capture_customer'");
  ASSERT_EQ(hash.size(), 64u) << hash;
  {
    pqxx::connection c(crm_app);
    pqxx::nontransaction tx(c);
    tx.exec_params("SELECT set_config('mdsync.origin', $1, false)", hash);
    tx.exec("UPDATE crm.accounts SET credit_limit = 777777 WHERE \"accountName\" = 'Beta'");
  }
  EXPECT_EQ(s.crm("SELECT count(*) FROM mdsync.capture"), "3");
  const std::string audit_before = s.control("SELECT coalesce(max(id), 0) FROM mdsync.audit");
  run_ok(s, {"run", "--once"});
  EXPECT_EQ(s.crm("SELECT credit_limit FROM crm.accounts WHERE \"accountName\" = 'Acme'"),
            "250.0000");
  EXPECT_EQ(s.crm("SELECT credit_limit FROM crm.accounts WHERE \"accountName\" = 'Beta'"),
            "0.0000");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.audit WHERE id > " + audit_before +
                      " AND unit = 'credit_limit' AND decision = 'revert' AND source LIKE 'crm#%'"),
            "3");
  EXPECT_EQ(s.crm("SELECT count(*) FROM mdsync.capture"), "0");
}

// Point 6 without CREATEROLE: init as a plain login role fails naming what is missing and the
// flag to use; the script `init --print-grants` prints, run by a superuser in each side's
// database, is all init (and then the engine) needs.
TEST(SecurityTest, PrintGrantsLetsInitRunWithoutCreateRole) {
  Scenario s("sec_grants");
  const std::string init_role = s.create_role("init", "LOGIN");
  const json patch = {{"sides",
                       {{"erp", {{"dsn", s.dsn_as(s.erp_db(), init_role)}}},
                        {"crm", {{"dsn", s.dsn_as(s.crm_db(), init_role)}}}}}};
  s.write_config(default_rules(), patch.dump());
  const std::string capture = s.role("capture");

  const RunResult refused = s.mdsync({"init"});
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("the capture role " + capture + " does not exist, and " + init_role +
                             ", the role mdsync connects as, may not create roles (CREATEROLE)"),
            std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("`mdsync init --print-grants`"), std::string::npos) << refused.err;
  EXPECT_EQ(s.erp("SELECT to_regnamespace('mdsync') IS NULL"), "t");

  // One section per side, each to run in its side's database.
  const std::string script = s.mdsync_ok({"init", "--print-grants"});
  const std::size_t erp_at = script.find("\n-- side erp:"), crm_at = script.find("\n-- side crm:");
  ASSERT_NE(erp_at, std::string::npos) << script;
  ASSERT_NE(crm_at, std::string::npos) << script;
  auto section = [&](std::size_t at) {
    const std::size_t other = at == erp_at ? crm_at : erp_at;
    return script.substr(at, other > at ? other - at : std::string::npos);
  };
  s.erp_exec(section(erp_at));
  s.crm_exec(section(crm_at));

  const std::string out = s.mdsync_ok({"init"});
  EXPECT_NE(out.find("side erp: created capture trigger on erp.customers"), std::string::npos)
      << out;
  EXPECT_EQ(
      s.erp("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = '" + init_role + "'"),
      "f");
  for (const std::string& db : {s.erp_db(), s.crm_db()})
    EXPECT_EQ(sql1(s.dsn(db),
                   "SELECT string_agg(proname || ' ' || pg_get_userbyid(proowner) || ' ' ||"
                   " prosecdef, ', ' ORDER BY proname) FROM pg_proc WHERE pronamespace ="
                   " 'mdsync'::regnamespace"),
              "capture_customer " + capture + " true, notify_capture " + capture + " true");
  const std::string again = s.mdsync_ok({"init"});
  EXPECT_NE(again.find("side erp: capture already installed"), std::string::npos) << again;
  EXPECT_NE(again.find("side crm: capture already installed"), std::string::npos) << again;

  // The engine, connecting as the same role, syncs both ways (inserts use the side's
  // sequences).
  s.erp_exec("INSERT INTO erp.customers (cust_name, credit_lim) VALUES ('From ERP', 10)");
  s.crm_exec("INSERT INTO crm.accounts (\"accountName\", phone) VALUES ('From CRM', '+1')");
  run_ok(s, {"run", "--once"});
  EXPECT_EQ(s.crm("SELECT count(*) FROM crm.accounts WHERE \"accountName\" = 'From ERP'"), "1");
  EXPECT_EQ(s.erp("SELECT phone_no FROM erp.customers WHERE cust_name = 'From CRM'"), "+1");
  EXPECT_EQ(s.erp("SELECT count(*) FROM mdsync.capture"), "0");
  EXPECT_EQ(s.crm("SELECT count(*) FROM mdsync.capture"), "0");
}

// Init twice changes nothing (functions, owners, privileges); an install made by an older
// mdsync (functions owned by the init user, SECURITY INVOKER, the engine known by the word
// 'engine', schema open to PUBLIC, no stamp) is upgraded in place, and is then no longer
// fooled by that word.
TEST(SecurityTest, InitTwiceChangesNothingAndUpgradesAnOlderInstall) {
  Scenario s("sec_upgrade");
  s.write_config();
  run_ok(s, {"init"});
  const std::string capture = s.role("capture");
  const std::string catalog =
      "SELECT string_agg(x, E'\\n' ORDER BY x) FROM ("
      " SELECT 'schema ' || pg_get_userbyid(nspowner) || ' ' || coalesce(nspacl::text, '-')"
      "  FROM pg_namespace WHERE nspname = 'mdsync'"
      " UNION ALL SELECT 'rel ' || relname || ' ' || coalesce(relacl::text, '-') FROM pg_class"
      "  WHERE relnamespace = 'mdsync'::regnamespace"
      " UNION ALL SELECT 'fn ' || proname || ' ' || pg_get_userbyid(proowner) || ' ' || prosecdef"
      "  || ' ' || coalesce(proconfig::text, '-') || ' ' || coalesce(proacl::text, '-') || ' ' ||"
      "  md5(prosrc) FROM pg_proc WHERE pronamespace = 'mdsync'::regnamespace"
      " UNION ALL SELECT 'trigger ' || tgname || ' ' || oid FROM pg_trigger"
      "  WHERE tgname LIKE 'mdsync%') s(x)";
  const std::string erp_before = s.erp(catalog), crm_before = s.crm(catalog);
  const std::string second = s.mdsync_ok({"init"});
  EXPECT_NE(second.find("side erp: capture already installed"), std::string::npos) << second;
  EXPECT_NE(second.find("side crm: capture already installed"), std::string::npos) << second;
  EXPECT_EQ(s.erp(catalog), erp_before);
  EXPECT_EQ(s.crm(catalog), crm_before);

  // Made old: what an older mdsync installed.
  const std::string old_install =
      "DO $$ DECLARE b text; BEGIN"
      " SELECT regexp_replace(prosrc, 'IF o <> .*? THEN RETURN NULL; END IF;',"
      "  'IF current_setting(''mdsync.origin'', true) = ''engine'' THEN RETURN NULL; END IF;')"
      "  INTO b FROM pg_proc WHERE proname = 'capture_customer';"
      " EXECUTE format('CREATE OR REPLACE FUNCTION mdsync.capture_customer() RETURNS trigger"
      "  LANGUAGE plpgsql AS %L', b);"
      " END $$;"
      "CREATE OR REPLACE FUNCTION mdsync.notify_capture() RETURNS trigger LANGUAGE plpgsql AS"
      " 'BEGIN PERFORM pg_notify(''mdsync_capture'', ''''); RETURN NULL; END';"
      "ALTER FUNCTION mdsync.capture_customer() OWNER TO postgres;"
      "ALTER FUNCTION mdsync.notify_capture() OWNER TO postgres;"
      "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA mdsync TO PUBLIC;"
      "GRANT USAGE ON SCHEMA mdsync TO PUBLIC; GRANT INSERT ON mdsync.capture TO PUBLIC;"
      "GRANT USAGE ON ALL SEQUENCES IN SCHEMA mdsync TO PUBLIC;"
      "DROP TABLE mdsync.owner";
  s.erp_exec(old_install);
  s.crm_exec(old_install);
  const std::string app = make_app_role(s);
  const std::string crm_app = s.dsn_as(s.crm_db(), app);
  sql_exec(crm_app, "INSERT INTO crm.accounts (\"accountName\") VALUES ('Captured')");
  sql_exec(crm_app,
           "SET mdsync.origin = 'engine';"
           " INSERT INTO crm.accounts (\"accountName\") VALUES ('Fooled the old install')");
  ASSERT_EQ(s.crm("SELECT count(*) FROM mdsync.capture"), "1");

  const std::string upgrade = s.mdsync_ok({"init"});
  for (const std::string side : {"erp", "crm"}) {
    for (const std::string& line : std::vector<std::string>{
             "updated function mdsync.capture_customer",
             "made role " + capture + " the owner of function mdsync.capture_customer",
             "made role " + capture + " the owner of function mdsync.notify_capture",
             "created table mdsync.owner", "stamped for control store ",
             "updated function mdsync.notify_capture",
             "set privileges on schema mdsync: none for PUBLIC; role " + capture +
                 " may insert capture rows and read mdsync.wake only"})
      EXPECT_NE(upgrade.find("side " + side + ": " + line), std::string::npos)
          << side << ": " << line << "\n"
          << upgrade;
  }
  for (const std::string& db : {s.erp_db(), s.crm_db()}) {
    const std::string dsn = s.dsn(db);
    EXPECT_EQ(sql1(dsn,
                   "SELECT string_agg(proname || ' ' || pg_get_userbyid(proowner) || ' ' ||"
                   " prosecdef || ' ' || proconfig::text, ', ' ORDER BY proname) FROM pg_proc"
                   " WHERE pronamespace = 'mdsync'::regnamespace"),
              "capture_customer " + capture +
                  " true {\"search_path=pg_catalog, pg_temp\"}, notify_capture " + capture +
                  " true {\"search_path=pg_catalog, pg_temp\"}");
    // PUBLIC has nothing; the capture role exactly what the capture functions do.
    EXPECT_EQ(sql1(dsn,
                   "SELECT has_schema_privilege('public', 'mdsync', 'USAGE')::text ||"
                   " has_table_privilege('public', 'mdsync.capture', 'INSERT')::text ||"
                   " has_table_privilege('public', 'mdsync.capture', 'SELECT')::text ||"
                   " has_sequence_privilege('public', 'mdsync.capture_seq_seq', 'USAGE')::text ||"
                   " has_function_privilege('public', 'mdsync.capture_customer()', 'EXECUTE')"
                   "::text || has_function_privilege('public', 'mdsync.notify_capture()',"
                   " 'EXECUTE')::text"),
              "falsefalsefalsefalsefalsefalse");
    EXPECT_EQ(sql1(dsn,
                   "SELECT string_agg(c.relname || ':' || p.privilege_type, ' ' ORDER BY"
                   " c.relname, p.privilege_type) FROM pg_class c, aclexplode(c.relacl) p"
                   " WHERE c.relnamespace = 'mdsync'::regnamespace AND p.grantee = '" +
                       capture + "'::regrole"),
              "capture:INSERT capture_seq_seq:USAGE wake:SELECT");
    EXPECT_EQ(sql1(dsn,
                   "SELECT string_agg(p.privilege_type, ' ') FROM pg_namespace n,"
                   " aclexplode(n.nspacl) p WHERE n.nspname = 'mdsync' AND p.grantee = '" +
                       capture + "'::regrole"),
              "USAGE");
  }
  const std::string erp_upgraded = s.erp(catalog);
  const std::string third = s.mdsync_ok({"init"});
  EXPECT_NE(third.find("side erp: capture already installed"), std::string::npos) << third;
  EXPECT_EQ(s.erp(catalog), erp_upgraded);

  sql_exec(crm_app,
           "SET mdsync.origin = 'engine';"
           " INSERT INTO crm.accounts (\"accountName\") VALUES ('Captured now')");
  EXPECT_EQ(s.crm("SELECT count(*) FROM mdsync.capture"), "2");
}

// The capture functions' fixed search_path holds no operator of an extension's type: a mapped
// column of such a type (hstore here) is compared as text, so the side's own writes still work
// and are captured instead of failing with "operator does not exist".
TEST(SecurityTest, ColumnWithoutPgCatalogEqualityIsComparedAsText) {
  Scenario s("sec_hstore");
  s.crm_exec("CREATE EXTENSION hstore; ALTER TABLE crm.accounts ADD COLUMN tags hstore");
  s.erp_exec("ALTER TABLE erp.customers ADD COLUMN tags text");
  s.write_config(default_rules(), R"({"entities": {"customer": {
      "fields": {"tags": "text"},
      "sides": {"erp": {"columns": {"tags": "tags"}}, "crm": {"columns": {"tags": "tags"}}}}}})");
  run_ok(s, {"init"});
  s.erp_exec(
      "INSERT INTO erp.customers (cust_name, credit_lim, tags) VALUES ('Tagged', 1, 'a=>1')");
  run_ok(s, {"run", "--once"});
  EXPECT_EQ(s.crm("SELECT tags -> 'a' FROM crm.accounts WHERE \"accountName\" = 'Tagged'"), "1");
  s.crm_exec("UPDATE crm.accounts SET phone = '+32 9' WHERE \"accountName\" = 'Tagged'");
  s.erp_exec("UPDATE erp.customers SET tags = 'a=>2' WHERE cust_name = 'Tagged'");
  run_ok(s, {"run", "--once"});
  EXPECT_EQ(s.erp("SELECT phone_no FROM erp.customers WHERE cust_name = 'Tagged'"), "+32 9");
  EXPECT_EQ(s.crm("SELECT tags -> 'a' FROM crm.accounts WHERE \"accountName\" = 'Tagged'"), "2");
}

// The capture trigger runs as the capture role, which may insert capture rows: it must never run
// a function a user wrote. The owner of a mapped column's type (here an enum the application
// role owns) can define a cast from it to json, which jsonb_build_object would call inside the
// trigger: the cast's function inserted a forged capture row. A user's type is now turned into
// text by its output function only, which no user can replace.
TEST(SecurityTest, ACastOnAUsersTypeRunsNothingInsideTheCaptureTrigger) {
  Scenario s("sec_cast");
  const std::string app = make_app_role(s);
  s.crm_exec("CREATE TYPE crm.tier AS ENUM ('bronze', 'gold'); ALTER TYPE crm.tier OWNER TO " +
             q(app) + "; ALTER TABLE crm.accounts ADD COLUMN tier crm.tier");
  s.erp_exec("ALTER TABLE erp.customers ADD COLUMN tier text");
  s.write_config(default_rules(), R"({"entities": {"customer": {
      "fields": {"tier": "text"},
      "sides": {"erp": {"columns": {"tier": "tier"}}, "crm": {"columns": {"tier": "tier"}}}}}})");
  run_ok(s, {"init"});
  s.erp_exec(
      "INSERT INTO erp.customers (cust_name, credit_lim, tier) VALUES ('Acme', 1, 'bronze')");
  run_ok(s, {"run", "--once"});
  ASSERT_EQ(s.crm("SELECT tier FROM crm.accounts"), "bronze");

  // The application role, owner of the type, writes a cast whose function forges a capture.
  const std::string crm_app = s.dsn_as(s.crm_db(), app);
  s.crm_exec("GRANT CREATE ON SCHEMA crm TO " + q(app));
  sql_exec(crm_app,
           "CREATE FUNCTION crm.forge(crm.tier) RETURNS json LANGUAGE plpgsql AS $$ BEGIN"
           " INSERT INTO mdsync.capture (entity, op, row_key, changed) VALUES ('customer', 'U',"
           " 'forged', '{\"credit_limit\": \"999999\"}'); RETURN '\"x\"'::json; END $$;"
           " CREATE CAST (crm.tier AS json) WITH FUNCTION crm.forge(crm.tier)");
  sql_exec(crm_app, "UPDATE crm.accounts SET tier = 'gold'");
  EXPECT_EQ(s.crm("SELECT count(*) FROM mdsync.capture WHERE row_key = 'forged'"), "0");
  EXPECT_EQ(s.crm("SELECT changed->>'tier' FROM mdsync.capture"), "gold");
  // The real change is reconciled: the ERP owns the field, so the CRM's write is reverted.
  run_ok(s, {"run", "--once"});
  EXPECT_EQ(s.crm("SELECT tier FROM crm.accounts"), "bronze");
  EXPECT_EQ(s.control("SELECT count(*) FROM mdsync.audit WHERE unit = 'tier' AND decision ="
                      " 'revert' AND proposed->>'tier' = 'gold'"),
            "1");
}

// Point 8: a second control store's init on the same sides is refused, naming the owner and
// `--adopt-side`; adopting moves a side (new stamp and epoch, idempotency keys cleared); the
// first store's running engine then refuses that side with the same advice and keeps
// reconciling its other side.
TEST(SecurityTest, SideBelongsToOneControlStoreUntilAdopted) {
  Scenario s("sec_stores");
  s.write_config();
  run_ok(s, {"init"});
  s.erp_exec("INSERT INTO erp.customers (cust_name, credit_lim) VALUES ('Shared', 1), ('Two', 2)");
  run_ok(s, {"run", "--once"});
  const std::string store1 = s.control("SELECT store_id FROM mdsync.store_identity");
  const std::string applied = s.crm("SELECT count(*) FROM mdsync.applied");
  ASSERT_EQ(applied, "2");
  const std::string epoch1 = s.crm("SELECT epoch FROM mdsync.capture_epoch");

  const std::string control2 = s.dsn(s.create_database("ctl2"));
  json config2 = json::parse(read_file(s.config_path()));
  config2["control"] = control2;
  const std::string path2 = s.dir() + "/mdsync2.json";
  write_file(path2, config2.dump(2));

  Service svc(s, "store1");
  ASSERT_NE(wait_until([&] { return lease_holder(s) == "<none>" ? "no" : "yes"; }, "yes", 60), "no")
      << svc.log();

  const std::string crm_before = s.crm(
      "SELECT md5(prosrc) || (SELECT store_id::text FROM mdsync.owner) FROM pg_proc WHERE proname"
      " = 'capture_customer'");
  const RunResult refused = s.mdsync({"--config", path2, "init"});
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  const std::string store2 = sql1(control2, "SELECT store_id FROM mdsync.store_identity");
  ASSERT_NE(store2, store1);
  for (const std::string side : {"erp", "crm"}) {
    EXPECT_NE(refused.err.find("side " + side + " belongs to another mdsync control store (store " +
                               store1 + ", host="),
              std::string::npos)
        << refused.err;
    EXPECT_NE(refused.err.find("run `mdsync init --adopt-side " + side + "` with this config"),
              std::string::npos)
        << refused.err;
  }
  EXPECT_EQ(s.crm("SELECT md5(prosrc) || (SELECT store_id::text FROM mdsync.owner) FROM pg_proc"
                  " WHERE proname = 'capture_customer'"),
            crm_before);

  const RunResult adopted = s.mdsync({"--config", path2, "init", "--adopt-side", "crm"});
  EXPECT_EQ(adopted.exit_code, 1) << adopted.out << adopted.err;  // the ERP is still store 1's
  EXPECT_NE(adopted.out.find("side crm: adopted from store " + store1), std::string::npos)
      << adopted.out;
  EXPECT_NE(adopted.out.find("new capture epoch; cleared " + applied +
                             " write-back idempotency keys (mdsync.applied)"),
            std::string::npos)
      << adopted.out;
  EXPECT_NE(adopted.err.find("side erp belongs to another mdsync control store"), std::string::npos)
      << adopted.err;
  EXPECT_EQ(s.crm("SELECT store_id FROM mdsync.owner"), store2);
  EXPECT_EQ(s.crm("SELECT count(*) FROM mdsync.applied"), "0");
  EXPECT_NE(s.crm("SELECT epoch FROM mdsync.capture_epoch"), epoch1);
  EXPECT_EQ(s.erp("SELECT store_id FROM mdsync.owner"), store1);

  // Store 1's service: the CRM is refused, the ERP still reconciled.
  s.crm_exec("UPDATE crm.accounts SET phone = '+1 crm' WHERE \"accountName\" = 'Two'");
  s.erp_exec("UPDATE erp.customers SET credit_lim = 42 WHERE cust_name = 'Shared'");
  const std::string refusal = "side crm belongs to another control store (store " + store2;
  EXPECT_EQ(wait_until(
                [&] {
                  return count_with(events(svc.log(), "side_unavailable"), refusal) > 0 ? "yes"
                                                                                        : "no";
                },
                "yes", 60),
            "yes")
      << svc.log();
  EXPECT_EQ(count_with(events(svc.log(), "side_unavailable"), "mdsync init --adopt-side crm"),
            count_with(events(svc.log(), "side_unavailable"), refusal))
      << svc.log();
  EXPECT_EQ(wait_until(
                [&] {
                  return s.control(
                      "SELECT count(*) FROM mdsync.golden WHERE (\"values\"->>'credit_limit')"
                      "::numeric = 42");
                },
                "1", 60),
            "1")
      << svc.log();
  EXPECT_EQ(wait_until([&] { return s.erp("SELECT count(*) FROM mdsync.capture"); }, "0", 60), "0");
  // Nothing of the CRM was read or written by store 1.
  EXPECT_EQ(s.crm("SELECT count(*) FROM mdsync.capture"), "1");
  EXPECT_EQ(s.crm("SELECT credit_limit FROM crm.accounts WHERE \"accountName\" = 'Shared'"),
            "1.0000");
  EXPECT_EQ(svc.stop(), 0) << svc.log();
}

// Point 8: one engine per control store. While a service holds the lease, a second `run` and
// `run --once` exit 1 naming it, `sync --initial` and `init` refuse; steward commands work.
TEST(SecurityTest, SecondEngineOnAStoreIsRefusedNamingTheHolder) {
  Scenario s("sec_lease");
  s.write_config();
  run_ok(s, {"init"});
  Service svc(s, "first");
  ASSERT_NE(wait_until([&] { return lease_holder(s) == "<none>" ? "no" : "yes"; }, "yes", 60), "no")
      << svc.log();
  const std::string pid = lease_holder(s);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"run"}, std::vector<std::string>{"run", "--once"},
        std::vector<std::string>{"sync", "--initial"}, std::vector<std::string>{"init"}}) {
    const RunResult r = run(s, args);
    EXPECT_EQ(r.exit_code, 1) << args.front() << "\n" << r.err;
    EXPECT_NE(
        r.err.find("another mdsync engine holds this control store's lease (server pid " + pid +
                   ", application_name 'mdsync run', from local socket, connected"
                   " since "),
        std::string::npos)
        << r.err;
  }
  EXPECT_EQ(lease_holder(s), pid);
  run_ok(s, {"status"});
  run_ok(s, {"conflicts", "list"});
  run_ok(s, {"audit"});
  EXPECT_EQ(svc.stop(), 0) << svc.log();
  run_ok(s, {"run", "--once"});
}

// A service whose control connection is lost while another session takes the lease does no
// work: each pass fails naming the holder and is retried with backoff; once the lease is free
// again, the service takes it and catches up.
TEST(SecurityTest, ServiceThatLosesTheLeaseStandsBy) {
  Scenario s("sec_standby");
  s.write_config(default_rules(), R"({"service": {"writeback_backoff_max_ms": 1000}})");
  run_ok(s, {"init"});
  s.erp_exec("INSERT INTO erp.customers (cust_name, credit_lim) VALUES ('Standby', 1)");
  Service svc(s, "service");
  ASSERT_EQ(wait_until([&] { return s.crm("SELECT count(*) FROM crm.accounts"); }, "1", 60), "1")
      << svc.log();
  const std::string service_pid = lease_holder(s);
  ASSERT_NE(service_pid, "<none>");

  // Another session queues for the lease, then the service's session ends: the lease passes
  // to the queued session, ahead of the service's reconnect.
  pqxx::connection other(s.dsn(s.control_db()));
  const std::string other_pid = std::to_string(other.backendpid());
  std::string take_error;
  std::thread take([&] {
    try {
      pqxx::nontransaction tx(other);
      tx.exec("SELECT pg_advisory_lock(" + std::to_string(kEngineLease) + "::bigint)");
    } catch (const std::exception& e) {
      take_error = e.what();
    }
  });
  const std::string queued = wait_until(
      [&] {
        return s.control("SELECT count(*) FROM pg_locks WHERE pid = " + other_pid +
                         " AND locktype = 'advisory' AND NOT granted");
      },
      "1", 60);
  if (queued == "1")
    s.control("SELECT pg_terminate_backend(" + service_pid + ")");
  else
    s.control("SELECT pg_cancel_backend(" + other_pid + ")");
  take.join();
  ASSERT_EQ(queued, "1");
  ASSERT_EQ(take_error, "");
  ASSERT_EQ(lease_holder(s), other_pid);

  const std::string held = "holds this control store's lease (server pid " + other_pid;
  ASSERT_EQ(
      wait_until(
          [&] { return count_with(events(svc.log(), "pass_failed"), held) > 0 ? "yes" : "no"; },
          "yes", 60),
      "yes")
      << svc.log();
  s.erp_exec("UPDATE erp.customers SET cust_name = 'Standby 2' WHERE cust_name = 'Standby'");
  // Two more failed passes: the second began after the change, and did nothing.
  const std::size_t failures = count_with(events(svc.log(), "pass_failed"), held);
  ASSERT_EQ(wait_until(
                [&] {
                  return count_with(events(svc.log(), "pass_failed"), held) >= failures + 2 ? "yes"
                                                                                            : "no";
                },
                "yes", 60),
            "yes")
      << svc.log();
  EXPECT_EQ(s.erp("SELECT count(*) FROM mdsync.capture"), "1");
  EXPECT_EQ(s.crm("SELECT \"accountName\" FROM crm.accounts"), "Standby");
  EXPECT_TRUE(svc.running());

  other.disconnect();
  EXPECT_EQ(wait_until([&] { return s.crm("SELECT \"accountName\" FROM crm.accounts"); },
                       "Standby 2", 60),
            "Standby 2")
      << svc.log();
  EXPECT_EQ(svc.stop(), 0) << svc.log();
}

}  // namespace
}  // namespace mdsync::e2e
