// End-to-end tests of the rule options real ERP/CRM pairs need (ownership_rules/FORMAT.md):
// create seeding (`on_create: accept`), deletes that count on several sides each with its own
// propagation and the other side's delete guard, and a field only one side maps, between the
// Odoo-like ERP and the Twenty-like CRM of tests/e2e/fixtures, through `mdsync`.
#include <gtest/gtest.h>

#include <string>

#include "e2e_harness.hpp"

namespace mdsync::e2e {
namespace {

std::string fixture(const std::string& name) {
  return read_file(std::string(MDSYNC_E2E_FIXTURES) + "/" + name);
}

// `erp_extra` and `crm_extra` are inserted into the sides' mappings (soft_delete, guards).
std::string entities(const std::string& erp_extra, const std::string& crm_extra) {
  return R"({"company": {
    "fields": {"name": "text", "website": "text", "email": "text", "vat": "text"},
    "sides": {
      "erp": {"schema": "erp", "table": "res_partner", "key": "id", )" +
         erp_extra + R"(
              "columns": {"name": "name", "website": "website", "email": "email",
                          "vat": {"column": "company_data", "json_path": ["vat"]}}},
      "crm": {"schema": "Workspace", "table": "company", "key": "id", )" +
         crm_extra + R"(
              "columns": {"name": "name", "website": "domainName", "email": "emails",
                          "vat": null}}}}})";
}

const char* const kErpArchive = R"("soft_delete": {"column": "active", "kind": "flag"},)";
const char* const kCrmSoftDelete =
    R"("soft_delete": {"column": "deletedAt", "kind": "timestamp"},)";
const char* const kUnpaidGuard = R"("delete_guard": {"table": "account_move",
    "on": {"partner_id": "id"}, "where": [{"column": "state", "in": ["posted", "partial"]}],
    "reason": "the customer has unpaid invoices"},)";

// The ERP owns the name and the VAT number (which the CRM does not hold), the CRM the web
// domain and the e-mail; a new ERP company's domain seeds golden, its e-mail does not, and a
// new CRM company's name seeds golden (the ERP's name is NOT NULL).
std::string rules(const std::string& del) {
  return R"({"entity": "company", "priority": ["erp", "crm"], "create": ["erp", "crm"],
    "delete": )" +
         del + R"(,
    "default": {"owner": "erp", "on_foreign_write": "revert"},
    "fields": {"name": {"owner": "erp", "on_create": "accept"},
               "website": {"owner": "crm", "on_create": "accept"},
               "email": {"owner": "crm"}}})";
}

// The ERP's archive is authoritative everywhere; a CRM delete counts too, but reaches the ERP
// as an archive its guard may veto.
const char* const kBothDelete =
    R"({"erp": {"propagate": "delete"}, "crm": {"propagate": "delete"}})";

class RuleOptionsTest : public ::testing::Test {
 protected:
  RuleOptionsTest() : s_(::testing::UnitTest::GetInstance()->current_test_info()->name()) {}
  void start(const std::string& del, const std::string& erp_extra = "",
             const std::string& crm_extra = "") {
    s_.erp_exec(fixture("erp_partners.sql"));
    s_.crm_exec(fixture("crm_companies.sql"));
    s_.write_config_entities(entities(erp_extra, crm_extra), {{"company", rules(del)}});
    s_.mdsync_ok({"init"});
  }
  void run() { s_.mdsync_ok({"run", "--once"}); }
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
  std::string unfinished_writes() const {
    return s_.control("SELECT count(*) FROM mdsync.outbox WHERE status <> 'done'");
  }
  Scenario s_;
};

// A new ERP company's web domain (the CRM's field, on_create accept) seeds golden and reaches
// the CRM; the ERP keeps it. Its e-mail (the CRM's, no on_create) is reverted as before. The
// CRM's first value of the domain then wins, and an ERP edit of it is reverted.
TEST_F(RuleOptionsTest, AnErpCreateSeedsTheCrmsDomainAndTheCrmsFirstValueWins) {
  start(R"({"owner": "erp"})");
  s_.erp_exec(
      "INSERT INTO erp.res_partner (name, is_company, website, email)"
      " VALUES ('Acme', true, 'acme.example', 'info@acme.example')");
  run();
  EXPECT_EQ(crm_of("domainName", "Acme"), "acme.example");
  EXPECT_EQ(erp_of("website", "Acme"), "acme.example");  // not wiped
  EXPECT_EQ(crm_of("emails", "Acme"), "<null>");
  EXPECT_EQ(erp_of("email", "Acme"), "<null>");  // reverted to the default: not seeded
  EXPECT_EQ(s_.control("SELECT provenance->'website'->>'seeded' FROM mdsync.golden"), "true");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.audit WHERE decision = 'seed'"), "1");

  s_.crm_exec("UPDATE \"Workspace\".company SET \"domainName\" = 'acme.com' WHERE name = 'Acme'");
  run();
  EXPECT_EQ(erp_of("website", "Acme"), "acme.com");
  EXPECT_EQ(s_.control("SELECT coalesce(provenance->'website'->>'seeded', 'gone')"
                       " FROM mdsync.golden"),
            "gone");
  s_.erp_exec("UPDATE erp.res_partner SET website = 'other.example' WHERE name = 'Acme'");
  run();
  EXPECT_EQ(erp_of("website", "Acme"), "acme.com");  // a foreign write now: reverted
  EXPECT_EQ(open_conflicts(), "");
  EXPECT_EQ(unfinished_writes(), "0");
}

// VAT is mapped on the ERP only: init accepts the config, the CRM insert carries no VAT and
// the CRM's creates none, the ERP's VAT edits make no write to the CRM, and a CRM create gets
// the default (no VAT on the ERP).
TEST_F(RuleOptionsTest, AFieldOnlyTheErpMapsIsNeverWrittenToTheCrm) {
  start(R"({"owner": "erp"})");
  EXPECT_NE(s_.mdsync_ok({"rules", "check"}).find("ok: company"), std::string::npos);
  const std::string shown = s_.mdsync_ok({"rules", "show", "--entity", "company"});
  EXPECT_NE(shown.find("unmapped on crm"), std::string::npos) << shown;
  s_.erp_exec(
      "INSERT INTO erp.res_partner (name, is_company, company_data)"
      " VALUES ('Acme', true, '{\"vat\": \"BE0123456789\"}')");
  run();
  EXPECT_EQ(crm_of("name", "Acme"), "Acme");
  EXPECT_EQ(crm_of("taxId", "Acme"), "<null>");
  EXPECT_EQ(s_.control("SELECT \"values\"->>'vat' FROM mdsync.golden"), "BE0123456789");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.outbox WHERE \"values\" ? 'vat'"), "0");
  const std::string writes = s_.control("SELECT count(*) FROM mdsync.outbox");

  s_.erp_exec(
      "UPDATE erp.res_partner SET company_data = '{\"vat\": \"BE0999999999\"}'"
      " WHERE name = 'Acme'");
  run();
  EXPECT_EQ(s_.control("SELECT \"values\"->>'vat' FROM mdsync.golden"), "BE0999999999");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.outbox"), writes);  // nothing to write

  s_.crm_exec("INSERT INTO \"Workspace\".company (name, \"taxId\") VALUES ('Globex', 'X-1')");
  run();
  EXPECT_EQ(erp_of("name", "Globex"), "Globex");
  EXPECT_EQ(erp_of("company_data->>'vat' IS NULL", "Globex"), "true");
  EXPECT_EQ(open_conflicts(), "");
  EXPECT_EQ(unfinished_writes(), "0");
}

// sync --initial over rows both sides already hold, matched by the web domain: the pair is
// linked, the ERP keeps its VAT (the CRM has none to give nor to take), the CRM's e-mail
// reaches the ERP; a CRM-only company reaches the ERP with its name seeded (the ERP owns names,
// and its name column refuses NULL), and no write to the CRM carries the VAT.
TEST_F(RuleOptionsTest, AnInitialSyncLinksPairsAndSeedsCreatesWithAFieldOnlyTheErpMaps) {
  s_.erp_exec(fixture("erp_partners.sql"));
  s_.crm_exec(fixture("crm_companies.sql"));
  std::string e = entities("", "");
  const std::string tail = "}}}}";
  ASSERT_EQ(e.compare(e.size() - tail.size(), tail.size(), tail), 0);
  e.insert(e.size() - 2, R"(, "match": {"keys": [{"field": "website"}]})");
  s_.write_config_entities(e, {{"company", rules(R"({"owner": "erp"})")}});
  s_.mdsync_ok({"init"});
  s_.erp_exec(
      "INSERT INTO erp.res_partner (name, is_company, website, company_data)"
      " VALUES ('Acme', true, 'acme.example', '{\"vat\": \"BE0123456789\"}')");
  s_.crm_exec(
      "INSERT INTO \"Workspace\".company (name, \"domainName\", emails, \"taxId\") VALUES"
      " ('Acme', 'acme.example', 'info@acme.example', 'CRM-TAX'),"
      " ('Globex', 'globex.example', NULL, NULL)");
  s_.mdsync_ok({"sync", "--initial", "--accept-overwrites"});
  run();
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.golden"), "3");  // own company, Acme, Globex
  EXPECT_EQ(s_.crm("SELECT count(*) FROM \"Workspace\".company WHERE name = 'Acme'"), "1");
  EXPECT_EQ(erp_of("company_data->>'vat'", "Acme"), "BE0123456789");
  EXPECT_EQ(crm_of("taxId", "Acme"), "CRM-TAX");  // not the engine's to write
  EXPECT_EQ(erp_of("email", "Acme"), "info@acme.example");
  EXPECT_EQ(erp_of("website", "Globex"), "globex.example");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.outbox WHERE side = 'crm'"
                       " AND (\"values\" ? 'vat' OR expected ? 'vat')"),
            "0");
  EXPECT_EQ(open_conflicts(), "");
  EXPECT_EQ(unfinished_writes(), "0");
}

// Both sides' deletes count. An ERP archive soft-deletes the CRM row (with the old one-owner
// rule {"owner": "crm"} it was undone); a CRM soft delete archives the ERP row.
TEST_F(RuleOptionsTest, EachSidesDeleteCountsAndPropagates) {
  start(kBothDelete, kErpArchive, kCrmSoftDelete);
  s_.erp_exec(
      "INSERT INTO erp.res_partner (name, is_company) VALUES ('Acme', true), ('Globex', true)");
  run();
  ASSERT_EQ(s_.crm("SELECT count(*) FROM \"Workspace\".company WHERE \"deletedAt\" IS NULL"), "2");

  s_.erp_exec("UPDATE erp.res_partner SET active = false WHERE name = 'Acme'");
  s_.crm_exec("UPDATE \"Workspace\".company SET \"deletedAt\" = now() WHERE name = 'Globex'");
  run();
  EXPECT_EQ(erp_of("active", "Acme"), "false");  // the archive stays
  EXPECT_EQ(s_.crm("SELECT \"deletedAt\" IS NOT NULL FROM \"Workspace\".company"
                   " WHERE name = 'Acme'"),
            "t");
  EXPECT_EQ(erp_of("active", "Globex"), "false");
  EXPECT_EQ(s_.control("SELECT string_agg(deleted::text, ',') FROM mdsync.golden"), "true,true");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.audit WHERE decision = 'restore'"), "0");
  EXPECT_EQ(open_conflicts(), "");
  EXPECT_EQ(unfinished_writes(), "0");
}

// A CRM delete of a customer with unpaid invoices is a request the ERP's guard vetoes: the CRM
// row comes back and a foreign_delete conflict names the reason; the ERP's own archive of the
// same customer then goes through everywhere.
TEST_F(RuleOptionsTest, TheErpsGuardVetoesACrmDeleteButNotItsOwnArchive) {
  start(kBothDelete, std::string(kErpArchive) + kUnpaidGuard, kCrmSoftDelete);
  s_.erp_exec(
      "INSERT INTO erp.res_partner (name, is_company) VALUES ('Acme', true);"
      "INSERT INTO erp.account_move (partner_id, amount_residual, state)"
      " SELECT id, 120.00, 'posted' FROM erp.res_partner WHERE name = 'Acme'");
  run();
  s_.crm_exec("UPDATE \"Workspace\".company SET \"deletedAt\" = now() WHERE name = 'Acme'");
  run();
  EXPECT_EQ(erp_of("active", "Acme"), "true");
  EXPECT_EQ(s_.crm("SELECT \"deletedAt\" IS NULL FROM \"Workspace\".company"), "t");
  EXPECT_EQ(open_conflicts(), "foreign_delete *record*");
  const std::string reason = s_.control("SELECT reason FROM mdsync.conflict");
  EXPECT_NE(reason.find("the customer has unpaid invoices"), std::string::npos) << reason;
  EXPECT_EQ(s_.control("SELECT side FROM mdsync.conflict"), "crm");
  EXPECT_EQ(s_.control("SELECT deleted FROM mdsync.golden"), "f");

  // The steward dismisses the CRM's request; later the ERP archives the customer itself.
  s_.mdsync_ok({"conflicts", "dismiss", s_.control("SELECT id FROM mdsync.conflict")});
  run();
  s_.erp_exec("UPDATE erp.res_partner SET active = false WHERE name = 'Acme'");
  run();
  EXPECT_EQ(erp_of("active", "Acme"), "false");
  EXPECT_EQ(s_.crm("SELECT \"deletedAt\" IS NOT NULL FROM \"Workspace\".company"), "t");
  EXPECT_EQ(s_.control("SELECT deleted FROM mdsync.golden"), "t");
  EXPECT_EQ(open_conflicts(), "");
}

// The old one-owner form still reads, and a rule naming a delete propagation per side is
// refused with a message when it names an unknown side.
TEST_F(RuleOptionsTest, RulesCheckReadsBothDeleteFormsAndNamesAnUnknownSide) {
  start(R"({"owner": "crm", "propagate": "delete"})", kErpArchive, kCrmSoftDelete);
  EXPECT_NE(s_.mdsync_ok({"rules", "check"}).find("ok"), std::string::npos);
  s_.write_config_entities(entities(kErpArchive, kCrmSoftDelete),
                           {{"company", rules(R"({"erp": {}, "sap": {"propagate": "delete"}})")}});
  const RunResult r = s_.mdsync({"rules", "check"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown key 'sap' in delete"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mdsync::e2e
