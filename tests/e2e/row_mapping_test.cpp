// End-to-end tests of the row-level mapping options (engine/mapping/MAPPING.md, "Rows"):
// scope filters, soft deletes both ways, delete guards, composite keys and declared time
// zones, between the Odoo-like ERP and the Twenty-like CRM of tests/e2e/fixtures.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "e2e_harness.hpp"

namespace mdsync::e2e {
namespace {

std::string fixture(const std::string& name) {
  return read_file(std::string(MDSYNC_E2E_FIXTURES) + "/" + name);
}

// `erp_extra` and `crm_extra` are inserted into the sides' mappings (scope, soft_delete, ...).
std::string entities(const std::string& erp_extra, const std::string& crm_extra) {
  return R"({"company": {
    "fields": {"name": "text", "customer_no": "text", "updated": "timestamptz"},
    "sides": {
      "erp": {"schema": "erp", "table": "res_partner", "key": "id", "timezone": "Europe/Brussels",
              )" +
         erp_extra + R"(
              "columns": {"name": "name", "customer_no": "ref", "updated": "write_date"}},
      "crm": {"schema": "Workspace", "table": "company", "key": "id", )" +
         crm_extra + R"(
              "columns": {"name": "name", "customer_no": "customerNumber",
                          "updated": "updatedAt"}}}}})";
}

const char* const kScope =
    R"("scope": {"where": [{"column": "is_company", "eq": true}, {"column": "id", "ne": 1}]},)";
const char* const kErpArchive = R"("soft_delete": {"column": "active", "kind": "flag"},)";
const char* const kCrmSoftDelete =
    R"("soft_delete": {"column": "deletedAt", "kind": "timestamp"},)";
const char* const kUnpaidGuard = R"("delete_guard": {"table": "account_move",
    "on": {"partner_id": "id"}, "where": [{"column": "state", "in": ["posted", "partial"]}],
    "reason": "the customer has unpaid invoices"},)";

std::string rules(const std::string& delete_owner) {
  return R"({"entity": "company", "priority": ["erp", "crm"], "create": ["erp", "crm"],
    "delete": {"owner": ")" +
         delete_owner + R"(", "propagate": "delete"},
    "default": {"owner": "shared", "on_conflict": "last_writer_wins"}, "fields": {}})";
}

class RowMappingTest : public ::testing::Test {
 protected:
  RowMappingTest() : s_(::testing::UnitTest::GetInstance()->current_test_info()->name()) {}
  void start(const std::string& erp_extra, const std::string& crm_extra,
             const std::string& delete_owner = "erp") {
    s_.erp_exec(fixture("erp_partners.sql"));
    s_.crm_exec(fixture("crm_companies.sql"));
    s_.write_config_entities(entities(erp_extra, crm_extra), {{"company", rules(delete_owner)}});
    s_.mdsync_ok({"init"});
  }
  void run() { s_.mdsync_ok({"run", "--once"}); }
  std::string erp_count() const { return s_.erp("SELECT count(*) FROM erp.res_partner"); }
  std::string crm_count() const { return s_.crm("SELECT count(*) FROM \"Workspace\".company"); }
  std::string crm_of(const std::string& column, const std::string& name) const {
    return s_.crm("SELECT \"" + column + "\"::text FROM \"Workspace\".company WHERE name = '" +
                  name + "'");
  }
  std::string erp_of(const std::string& column, const std::string& name) const {
    return s_.erp("SELECT " + column + "::text FROM erp.res_partner WHERE name = '" + name + "'");
  }
  std::string open_conflicts() const {
    return s_.control(
        "SELECT coalesce(string_agg(kind || ' ' || unit, ', ' ORDER BY id), '')"
        " FROM mdsync.conflict WHERE status = 'open'");
  }
  Scenario s_;
};

// Contact persons and the ERP's own company are outside the scope: they make no capture rows
// and never reach the CRM; a company does, and a CRM company reaches the ERP as a company.
TEST_F(RowMappingTest, ScopeKeepsContactPersonsAndTheOwnCompanyOut) {
  start(kScope, "");
  s_.erp_exec(
      "INSERT INTO erp.res_partner (name, is_company, ref) VALUES ('Acme', true, 'C-1');"
      "INSERT INTO erp.res_partner (name, is_company, parent_id) VALUES"
      " ('Jane Doe', false, (SELECT id FROM erp.res_partner WHERE name = 'Acme'));"
      "UPDATE erp.res_partner SET ref = 'SELF-2' WHERE id = 1");
  EXPECT_EQ(s_.erp("SELECT count(*) FROM mdsync.capture"), "1");
  run();
  EXPECT_EQ(crm_count(), "1");
  EXPECT_EQ(crm_of("customerNumber", "Acme"), "C-1");

  s_.crm_exec(
      "INSERT INTO \"Workspace\".company (name, \"customerNumber\") VALUES ('Globex', 'C-2')");
  run();
  EXPECT_EQ(erp_of("is_company", "Globex"), "true");
  EXPECT_EQ(erp_of("ref", "Globex"), "C-2");
  EXPECT_EQ(open_conflicts(), "");
}

// A row that leaves the scope stops syncing (nothing is deleted or re-created anywhere); when
// it comes back it is synced again from where it left, and gets what changed meanwhile.
TEST_F(RowMappingTest, RowLeavingTheScopeStopsSyncingAndComesBackWhereItLeft) {
  start(kScope, "");
  s_.erp_exec("INSERT INTO erp.res_partner (name, is_company, ref) VALUES ('Acme', true, 'C-1')");
  run();
  ASSERT_EQ(crm_of("customerNumber", "Acme"), "C-1");

  s_.erp_exec("UPDATE erp.res_partner SET is_company = false WHERE name = 'Acme'");
  run();
  EXPECT_EQ(s_.control("SELECT state FROM mdsync.crosswalk WHERE side = 'erp'"), "out_of_scope");
  const std::string shown =
      s_.mdsync_ok({"records", "show", "company", "crm:" + crm_of("id", "Acme")});
  EXPECT_NE(shown.find("(out_of_scope, not synced)"), std::string::npos) << shown;
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.audit WHERE decision = 'left_scope'"), "1");
  s_.crm_exec("UPDATE \"Workspace\".company SET \"customerNumber\" = 'C-9' WHERE name = 'Acme'");
  s_.erp_exec("UPDATE erp.res_partner SET ref = 'ERP-ONLY' WHERE name = 'Acme'");
  run();
  EXPECT_EQ(erp_of("ref", "Acme"), "ERP-ONLY");  // not written while out of scope
  EXPECT_EQ(erp_count(), "2");                   // and not re-created either
  EXPECT_EQ(crm_of("customerNumber", "Acme"), "C-9");

  // Back in scope: the ERP's edit made meanwhile is a change like any other (last writer).
  s_.erp_exec("UPDATE erp.res_partner SET is_company = true WHERE name = 'Acme'");
  run();
  EXPECT_EQ(s_.control("SELECT state FROM mdsync.crosswalk WHERE side = 'erp'"), "linked");
  EXPECT_EQ(crm_of("customerNumber", "Acme"), "ERP-ONLY");
  EXPECT_EQ(erp_of("ref", "Acme"), "ERP-ONLY");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.golden"), "1");
  EXPECT_EQ(open_conflicts(), "");
}

// sync --initial reads only the rows in scope: the ERP's own company and its contact persons
// stay out, and a soft-deleted CRM row is not taken in either.
TEST_F(RowMappingTest, InitialSyncReadsOnlyRowsInScopeAndNotSoftDeleted) {
  s_.erp_exec(fixture("erp_partners.sql"));
  s_.crm_exec(fixture("crm_companies.sql"));
  s_.erp_exec(
      "INSERT INTO erp.res_partner (name, is_company, ref) VALUES ('Acme', true, 'C-1');"
      "INSERT INTO erp.res_partner (name, is_company) VALUES ('Jane Doe', false)");
  s_.crm_exec(
      "INSERT INTO \"Workspace\".company (name, \"customerNumber\", \"deletedAt\") VALUES"
      " ('Gone Inc', 'C-8', now()), ('Globex', 'C-2', NULL)");
  s_.write_config_entities(entities(kScope, kCrmSoftDelete), {{"company", rules("erp")}});
  s_.mdsync_ok({"init"});
  s_.mdsync_ok({"sync", "--initial"});
  run();
  EXPECT_EQ(s_.crm("SELECT string_agg(name, ', ' ORDER BY name) FROM \"Workspace\".company"),
            "Acme, Globex, Gone Inc");
  EXPECT_EQ(s_.erp("SELECT string_agg(name, ', ' ORDER BY name) FROM erp.res_partner"),
            "Acme, Globex, Jane Doe, Our Own Company NV");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.golden"), "2");
}

// Scope literals and identifiers from the config are data: a literal carrying SQL is compared
// as text, and a column name with quotes is a column that does not exist.
TEST_F(RowMappingTest, ScopeLiteralsAndColumnsCannotInjectSql) {
  start(
      R"("scope": {"where": [{"column": "name", "not_in": ["x'); DROP TABLE erp.res_partner; --"]}]},)",
      "");
  s_.erp_exec("INSERT INTO erp.res_partner (name, is_company) VALUES ('Acme', true)");
  run();
  EXPECT_EQ(crm_count(), "1");
  EXPECT_EQ(erp_count(), "2");

  std::string e = entities(
      R"("scope": {"where": [{"column": "x\"; DROP TABLE erp.res_partner; --", "eq": 1}]},)", "");
  s_.write_config_entities(e, {{"company", rules("erp")}});
  const RunResult r = s_.mdsync({"init"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("has no column 'x\"; DROP TABLE erp.res_partner; --'"), std::string::npos)
      << r.err;
  EXPECT_EQ(erp_count(), "2");

  // A literal the column cannot take would break every write to the table: init refuses it.
  s_.write_config_entities(entities(R"("scope": {"where": [{"column": "id", "ne": "abc"}]},)", ""),
                           {{"company", rules("erp")}});
  const RunResult bad = s_.mdsync({"init"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("cannot be evaluated"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("invalid input syntax for type integer"), std::string::npos) << bad.err;
}

// A new row the scope would not see is refused with the reason, and nothing is inserted.
TEST_F(RowMappingTest, InsertTheScopeWouldNotSeeIsRefusedWithTheReason) {
  start(R"("scope": {"where": [{"column": "email", "ne": null}]},)", "");
  s_.crm_exec("INSERT INTO \"Workspace\".company (name) VALUES ('Initech')");
  // The refused insert is a failed write-back: the drain exits 1 and names it.
  const RunResult r = s_.mdsync({"run", "--once"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("1 write-back failed"), std::string::npos) << r.err;
  EXPECT_EQ(erp_count(), "1");
  const std::string error = s_.control("SELECT last_error FROM mdsync.outbox WHERE side = 'erp'");
  EXPECT_NE(error.find("would not be synced"), std::string::npos) << error;
  EXPECT_NE(error.find("email <> null"), std::string::npos) << error;
}

// The CRM owns deletes: setting deletedAt archives the ERP row (active = false), the same
// row, and nothing is hard-deleted anywhere.
TEST_F(RowMappingTest, CrmSoftDeleteBecomesAnErpArchive) {
  start(kErpArchive, kCrmSoftDelete, "crm");
  s_.crm_exec(
      "INSERT INTO \"Workspace\".company (name, \"customerNumber\") VALUES ('Acme', 'C-1')");
  run();
  ASSERT_EQ(erp_of("active", "Acme"), "true");
  s_.crm_exec("UPDATE \"Workspace\".company SET \"deletedAt\" = now() WHERE name = 'Acme'");
  run();
  EXPECT_EQ(erp_of("active", "Acme"), "false");
  EXPECT_EQ(erp_count(), "2");
  EXPECT_EQ(s_.control("SELECT deleted FROM mdsync.golden"), "t");
  EXPECT_EQ(s_.control("SELECT string_agg(side || ' ' || state, ', ' ORDER BY side)"
                       " FROM mdsync.crosswalk"),
            "crm deleted, erp deleted");
  // Edits of an archived row are not synced.
  s_.erp_exec("UPDATE erp.res_partner SET ref = 'X' WHERE name = 'Acme'");
  EXPECT_EQ(s_.erp("SELECT count(*) FROM mdsync.capture"), "0");
}

// An ERP archive is a foreign delete when the CRM owns deletes: the same ERP row is
// un-archived (no second row), with the golden values.
TEST_F(RowMappingTest, ForeignArchiveIsUndoneOnTheSameRow) {
  start(kErpArchive, kCrmSoftDelete, "crm");
  s_.erp_exec("INSERT INTO erp.res_partner (name, is_company, ref) VALUES ('Acme', true, 'C-1')");
  run();
  const std::string id = erp_of("id", "Acme");
  s_.erp_exec("UPDATE erp.res_partner SET active = false WHERE name = 'Acme'");
  run();
  EXPECT_EQ(erp_of("active", "Acme"), "true");
  EXPECT_EQ(erp_of("id", "Acme"), id);
  EXPECT_EQ(erp_count(), "2");
  EXPECT_EQ(s_.crm("SELECT \"deletedAt\" IS NULL FROM \"Workspace\".company"), "t");
  EXPECT_EQ(s_.control("SELECT state FROM mdsync.crosswalk WHERE side = 'erp'"), "linked");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.audit WHERE decision = 'restore'"), "1");
}

// The ERP refuses to archive a customer with unpaid invoices: the CRM's delete is undone
// (the same CRM row comes back), and a foreign_delete conflict names the reason. Once the
// invoice is paid, the steward accepts the delete and it goes through.
TEST_F(RowMappingTest, DeleteGuardVetoRestoresTheRowAndOpensAConflictWithTheReason) {
  start(std::string(kErpArchive) + kUnpaidGuard, kCrmSoftDelete, "crm");
  s_.erp_exec(
      "INSERT INTO erp.res_partner (name, is_company, ref) VALUES ('Acme', true, 'C-1');"
      "INSERT INTO erp.account_move (partner_id, amount_residual, state)"
      " SELECT id, 120.00, 'posted' FROM erp.res_partner WHERE name = 'Acme'");
  run();
  const std::string crm_id = crm_of("id", "Acme");
  s_.crm_exec("UPDATE \"Workspace\".company SET \"deletedAt\" = now() WHERE name = 'Acme'");
  run();
  EXPECT_EQ(erp_of("active", "Acme"), "true");
  EXPECT_EQ(s_.crm("SELECT \"deletedAt\" IS NULL FROM \"Workspace\".company"), "t");
  EXPECT_EQ(crm_of("id", "Acme"), crm_id);
  EXPECT_EQ(crm_count(), "1");
  EXPECT_EQ(open_conflicts(), "foreign_delete *record*");
  const std::string reason = s_.control("SELECT reason FROM mdsync.conflict");
  EXPECT_NE(reason.find("the customer has unpaid invoices"), std::string::npos) << reason;
  EXPECT_EQ(s_.control("SELECT side FROM mdsync.conflict"), "crm");
  EXPECT_EQ(s_.control("SELECT status FROM mdsync.outbox WHERE kind = 'delete'"), "vetoed");
  EXPECT_EQ(s_.control("SELECT deleted FROM mdsync.golden"), "f");

  s_.erp_exec("UPDATE erp.account_move SET state = 'paid'");
  const std::string id = s_.control("SELECT id FROM mdsync.conflict");
  s_.mdsync_ok({"conflicts", "resolve", id, "--take", "crm"});
  run();
  EXPECT_EQ(erp_of("active", "Acme"), "false");
  EXPECT_EQ(s_.crm("SELECT \"deletedAt\" IS NOT NULL FROM \"Workspace\".company"), "t");
  EXPECT_EQ(open_conflicts(), "");
}

// A timestamp without time zone holds Brussels local time: 12:00 in July is 10:00 UTC, both
// ways, and a value that did not change makes no write.
TEST_F(RowMappingTest, DeclaredZoneReadsAndWritesLocalTimes) {
  start("", "");
  s_.erp_exec(
      "INSERT INTO erp.res_partner (name, is_company, write_date)"
      " VALUES ('Acme', true, '2024-07-01 12:00:00')");
  run();
  EXPECT_EQ(s_.crm("SELECT \"updatedAt\" AT TIME ZONE 'UTC' FROM \"Workspace\".company"),
            "2024-07-01 10:00:00");
  s_.crm_exec("UPDATE \"Workspace\".company SET \"updatedAt\" = '2024-01-15 08:30:00+00'");
  run();
  EXPECT_EQ(erp_of("write_date", "Acme"), "2024-01-15 09:30:00");  // winter: UTC+1
  EXPECT_EQ(s_.erp("SELECT count(*) FROM mdsync.capture"), "0");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.outbox WHERE status <> 'done'"), "0");
}

// Without a declared zone, init refuses a timestamptz field on a local-time column.
TEST_F(RowMappingTest, InitRefusesALocalTimeColumnWithoutADeclaredZone) {
  s_.erp_exec(fixture("erp_partners.sql"));
  s_.crm_exec(fixture("crm_companies.sql"));
  std::string e = entities("", "");
  e.replace(e.find(R"("timezone": "Europe/Brussels",)"), 30, "");
  s_.write_config_entities(e, {{"company", rules("erp")}});
  const RunResult r = s_.mdsync({"init"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("column 'write_date' is a timestamp without time zone"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("declare the zone"), std::string::npos) << r.err;
}

// A composite key (company, code) on the ERP side: created from either side, updated and
// deleted by the whole key; a changed key is the old row's delete and a new row.
TEST_F(RowMappingTest, CompositeKeyIsMatchedByAllItsColumns) {
  s_.erp_exec(
      "CREATE SCHEMA IF NOT EXISTS erp; CREATE SEQUENCE erp.code_seq;"
      "CREATE TABLE erp.price (company_id integer NOT NULL DEFAULT 1,"
      " code text NOT NULL DEFAULT 'P' || nextval('erp.code_seq'),"
      " label text, amount numeric(12, 2), PRIMARY KEY (company_id, code));"
      "INSERT INTO erp.price VALUES (2, 'A', 'other company', 5)");
  s_.crm_exec(
      "CREATE TABLE public.\"Price\" (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
      " \"label\" text, \"amount\" numeric)");
  s_.write_config_entities(R"({"price": {"fields": {"label": "text", "amount": "numeric"},
    "sides": {
      "erp": {"schema": "erp", "table": "price", "key": ["company_id", "code"],
              "columns": {"label": "label", "amount": "amount"}},
      "crm": {"table": "Price", "key": "id", "columns": {"label": "label", "amount": "amount"}}}}})",
                           {{"price", R"({"entity": "price", "create": ["erp", "crm"],
    "delete": {"owner": "erp", "propagate": "delete"},
    "default": {"owner": "shared", "on_conflict": "last_writer_wins"}, "fields": {}})"}});
  s_.mdsync_ok({"init"});
  s_.erp_exec("INSERT INTO erp.price VALUES (1, 'A', 'list', 10)");
  s_.crm_exec("INSERT INTO public.\"Price\" (label, amount) VALUES ('promo', 7.5)");
  run();
  EXPECT_EQ(s_.control("SELECT string_agg(row_key, ' ' ORDER BY row_key) FROM mdsync.crosswalk"
                       " WHERE side = 'erp'"),
            R"(["1", "A"] ["1", "P1"])");
  EXPECT_EQ(s_.erp("SELECT amount FROM erp.price WHERE code = 'P1'"), "7.50");

  s_.crm_exec("UPDATE public.\"Price\" SET amount = 12 WHERE label = 'list'");
  run();
  EXPECT_EQ(s_.erp("SELECT amount FROM erp.price WHERE company_id = 1 AND code = 'A'"), "12.00");
  EXPECT_EQ(s_.erp("SELECT amount FROM erp.price WHERE company_id = 2 AND code = 'A'"), "5.00");

  s_.erp_exec("UPDATE erp.price SET code = 'B' WHERE company_id = 1 AND code = 'A'");
  run();
  EXPECT_EQ(s_.crm("SELECT count(*) FROM public.\"Price\" WHERE label = 'list'"), "1");
  s_.erp_exec("DELETE FROM erp.price WHERE company_id = 1 AND code = 'B'");
  run();
  EXPECT_EQ(s_.crm("SELECT count(*) FROM public.\"Price\" WHERE label = 'list'"), "0");
  EXPECT_EQ(s_.erp("SELECT count(*) FROM erp.price"), "2");
  EXPECT_EQ(open_conflicts(), "");
}

// A json field held in a jsonb column on one side and a json column (no equality operator)
// on the other: updates both ways, the write-back condition comparing json as jsonb.
TEST_F(RowMappingTest, JsonFieldSyncsBetweenJsonbAndJsonColumns) {
  s_.erp_exec(
      "CREATE SCHEMA IF NOT EXISTS erp;"
      "CREATE TABLE erp.doc (id serial PRIMARY KEY, title text, meta jsonb)");
  s_.crm_exec(
      "CREATE TABLE public.\"Doc\" (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
      " title text, meta json)");
  s_.write_config_entities(R"({"doc": {"fields": {"title": "text", "meta": "json"},
    "sides": {
      "erp": {"schema": "erp", "table": "doc", "key": "id",
              "columns": {"title": "title", "meta": "meta"}},
      "crm": {"table": "Doc", "key": "id", "columns": {"title": "title", "meta": "meta"}}}}})",
                           {{"doc", R"({"entity": "doc", "create": ["erp", "crm"],
    "default": {"owner": "shared", "on_conflict": "last_writer_wins"}, "fields": {}})"}});
  s_.mdsync_ok({"init"});
  s_.erp_exec("INSERT INTO erp.doc (title, meta) VALUES ('spec', '{\"a\": 1}')");
  run();
  EXPECT_EQ(s_.crm("SELECT meta::jsonb::text FROM public.\"Doc\""), R"({"a": 1})");
  s_.crm_exec("UPDATE public.\"Doc\" SET meta = '{\"b\": [1, 2]}'");
  run();
  EXPECT_EQ(s_.erp("SELECT meta::text FROM erp.doc"), R"({"b": [1, 2]})");
  s_.erp_exec("UPDATE erp.doc SET meta = '{\"c\": \"é\"}', title = 'spec 2'");
  run();
  EXPECT_EQ(s_.crm("SELECT meta::jsonb::text || ' ' || title FROM public.\"Doc\""),
            R"({"c": "é"} spec 2)");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.outbox WHERE status <> 'done'"), "0");
  EXPECT_EQ(open_conflicts(), "");
}

// `verify --repair` on rows that left without a captured change (session_replication_role =
// replica skips the capture trigger): a CRM row soft-deleted that way is restored, the same
// row and not a second one (the CRM's deletes do not count), and an ERP row that left the
// scope is captured again, so the engine stops syncing it as it would have.
TEST_F(RowMappingTest, VerifyRestoresARowSoftDeletedUncapturedAndCapturesAScopeExit) {
  start(kScope, kCrmSoftDelete);
  s_.erp_exec(
      "INSERT INTO erp.res_partner (name, is_company, ref) VALUES ('Acme', true, 'C-1'),"
      " ('Globex', true, 'C-2')");
  run();
  ASSERT_EQ(crm_count(), "2");
  const std::string acme_crm = crm_of("id", "Acme");
  s_.crm_exec(
      "SET LOCAL session_replication_role = replica;"
      " UPDATE \"Workspace\".company SET \"deletedAt\" = now() WHERE name = 'Acme'");
  s_.erp_exec(
      "SET LOCAL session_replication_role = replica;"
      " UPDATE erp.res_partner SET is_company = false WHERE name = 'Globex'");

  const RunResult r = s_.mdsync({"verify", "--repair"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("crm company " + acme_crm), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("repair: re-created from golden (insert queued)"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("repair: outside the scope: captured again, the engine stops syncing it"),
            std::string::npos)
      << r.out;
  run();
  EXPECT_EQ(crm_count(), "2") << "restored, not duplicated";
  EXPECT_EQ(crm_of("id", "Acme"), acme_crm);
  EXPECT_EQ(crm_of("deletedAt", "Acme"), "<null>");
  EXPECT_EQ(s_.control("SELECT state FROM mdsync.crosswalk WHERE side = 'erp' AND row_key = ("
                       "SELECT row_key FROM mdsync.crosswalk WHERE side = 'erp' ORDER BY"
                       " row_key::int DESC LIMIT 1)"),
            "out_of_scope");
  const RunResult again = s_.mdsync({"verify"});
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_EQ(open_conflicts(), "");
}

}  // namespace
}  // namespace mdsync::e2e
