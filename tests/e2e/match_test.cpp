// End-to-end tests of match keys and `sync --initial` (engine/mapping/MAPPING.md, "Matching
// existing records") between an Odoo-like ERP and a Twenty-like CRM that already hold rows:
// rows found by a normalized website host or a customer number are linked, not duplicated;
// an ambiguous or only fuzzy match is a possible_duplicate for the steward, who links the row
// (`--link`) or creates a new record (`--create`).
#include <gtest/gtest.h>
#include <csignal>

#include <string>
#include <vector>

#include "e2e_harness.hpp"

namespace mdsync::e2e {
namespace {

std::string fixture(const std::string& name) {
  return read_file(std::string(MDSYNC_E2E_FIXTURES) + "/" + name);
}

const char* const kEntities = R"({"company": {
    "fields": {"name": "text", "website": "text", "country": "text", "customer_no": "text"},
    "match": {"keys": [{"field": "website", "normalize": ["url_host"]},
                       {"field": "customer_no", "normalize": ["trim"]}],
              "fuzzy": [{"field": "name", "normalize": ["company_name"]}]},
    "sides": {
      "erp": {"schema": "erp", "table": "res_partner", "key": "id", "columns": {
        "name": "name", "website": "website",
        "country": {"column": "country_id",
                    "lookup": {"table": "res_country", "key": "id", "value": "code"}},
        "customer_no": "ref"}},
      "crm": {"schema": "Workspace", "table": "company", "key": "id", "columns": {
        "name": "name",
        "website": {"column": "domainName", "normalize": ["trim", "url_host"]},
        "country": {"column": "addressAddressCountry",
                    "map": {"BE": "Belgium", "NL": "Netherlands", "DE": "Germany",
                            "FR": "France", "US": "United States", "JP": "Japan"}},
        "customer_no": "customerNumber"}}}}})";

// The ERP owns customer numbers; the rest is shared, and the ERP's value wins where both
// sides hold a different one.
const char* const kRules = R"({
  "entity": "company", "priority": ["erp", "crm"], "create": ["erp", "crm"],
  "delete": {"owner": "erp", "propagate": "delete"},
  "default": {"owner": "shared", "on_conflict": "priority"},
  "fields": {"customer_no": {"owner": "erp"}}
})";

class MatchTest : public ::testing::Test {
 protected:
  MatchTest() : s_(::testing::UnitTest::GetInstance()->current_test_info()->name()) {}
  void load_fixtures() {
    s_.erp_exec(fixture("erp_partners.sql"));
    s_.crm_exec(fixture("crm_companies.sql"));
  }
  void start() {
    s_.write_config_entities(kEntities, {{"company", kRules}});
    s_.mdsync_ok({"init"});
  }
  void erp_company(const std::string& name, const std::string& website, const std::string& ref) {
    s_.erp_exec("INSERT INTO erp.res_partner (name, is_company, website, ref) VALUES (" +
                sql(name) + ", true, " + sql(website) + ", " + sql(ref) + ")");
  }
  void crm_company(const std::string& name, const std::string& domain, const std::string& number) {
    s_.crm_exec(
        "INSERT INTO \"Workspace\".company (name, \"domainName\", \"customerNumber\")"
        " VALUES (" +
        sql(name) + ", " + sql(domain) + ", " + sql(number) + ")");
  }
  static std::string sql(const std::string& v) {
    if (v.empty()) return "NULL";
    std::string out = "'";
    for (char c : v) out += c == '\'' ? std::string("''") : std::string(1, c);
    return out + "'";
  }
  std::string erp_id(const std::string& name) const {
    return s_.erp("SELECT id FROM erp.res_partner WHERE name = " + sql(name));
  }
  std::string crm_id(const std::string& name) const {
    return s_.crm("SELECT id FROM \"Workspace\".company WHERE name = " + sql(name));
  }
  std::string golden_of(const std::string& side, const std::string& key) const {
    return s_.control("SELECT golden_id FROM mdsync.crosswalk WHERE side = '" + side +
                      "' AND row_key = " + sql(key));
  }
  std::string crm_names() const {
    return join(s_.rows(s_.crm_db(), "SELECT name FROM \"Workspace\".company ORDER BY name"));
  }
  std::string erp_names() const {
    return join(s_.rows(s_.erp_db(), "SELECT name FROM erp.res_partner ORDER BY name"));
  }
  std::string open_conflicts() const {
    return s_.control(
        "SELECT coalesce(string_agg(kind || ' ' || unit || ' ' || side, ', ' ORDER BY id), '')"
        " FROM mdsync.conflict WHERE status = 'open'");
  }
  // Everything sync could change, as one text: control tables' row counts, the sides' rows
  // (every column) and capture tables, and the tables that exist.
  std::string fingerprint() const {
    std::string f;
    for (const char* t : {"golden", "crosswalk", "conflict", "audit", "outbox", "match_key",
                          "match_spec", "duplicate_candidate", "capture_done", "capture_error"})
      f += std::string(t) + "=" + s_.control(std::string("SELECT count(*) FROM mdsync.") + t) + " ";
    f += "erp=" + s_.erp(
                      "SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY id), ''))"
                      " FROM erp.res_partner t");
    f += " crm=" + s_.crm(
                       "SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY id::text), ''))"
                       " FROM \"Workspace\".company t");
    f += " captures=" + s_.erp("SELECT count(*) FROM mdsync.capture") + "+" +
         s_.crm("SELECT count(*) FROM mdsync.capture");
    f += " capture_seq=" + s_.erp("SELECT last_value FROM mdsync.capture_seq_seq") + "+" +
         s_.crm("SELECT last_value FROM mdsync.capture_seq_seq");
    for (const std::string& db : {s_.erp_db(), s_.crm_db(), s_.control_db()})
      f += " tables=" + join(s_.rows(db,
                                     "SELECT count(*) FROM pg_class c JOIN pg_namespace n"
                                     " ON n.oid = c.relnamespace WHERE n.nspname NOT IN"
                                     " ('pg_catalog', 'information_schema', 'pg_toast')"));
    return f;
  }
  static std::string join(const std::vector<std::string>& rows) {
    std::string out;
    for (const auto& r : rows) out += (out.empty() ? "" : ", ") + r;
    return out;
  }
  // The rows both sides already hold before mdsync starts.
  void existing_rows() {
    load_fixtures();
    erp_company("Acme GmbH", "HTTPS://WWW.Acme.com/", "C-100");
    erp_company("Globex", "", "C-200");
    erp_company("Initech", "https://initech.example", "C-300");
    crm_company("Acme", "acme.com", "");
    crm_company("Globex Corporation", "globex.example", " C-200 ");
    crm_company("Umbrella", "umbrella.example", "C-400");
  }
  Scenario s_;
};

// Rows on both sides are linked by the website's host and by the customer number; the
// others are created on the other side. The owner's values win, formatting-only differences
// write nothing, and every record has exactly one row on each side.
TEST_F(MatchTest, InitialSyncLinksExistingRowsByHostAndCustomerNumber) {
  existing_rows();
  start();
  const std::string out = s_.mdsync_ok({"sync", "--initial", "--accept-overwrites"});
  EXPECT_NE(out.find("company on erp: 4 rows: 0 already linked, 0 linked, 4 created, "
                     "0 possible duplicates"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("company on crm: 3 rows: 0 already linked, 2 linked, 1 created, "
                     "0 possible duplicates"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("summary: 2 linked, 5 created, 0 possible duplicates"), std::string::npos)
      << out;

  EXPECT_EQ(golden_of("erp", erp_id("Acme GmbH")), golden_of("crm", crm_id("Acme GmbH")));
  EXPECT_EQ(golden_of("erp", erp_id("Globex")), golden_of("crm", crm_id("Globex")));
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.golden"), "5");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.crosswalk"), "10");
  // The ERP's names win over the CRM's. No company exists twice anywhere.
  EXPECT_EQ(erp_names(), "Acme GmbH, Globex, Initech, Our Own Company NV, Umbrella");
  EXPECT_EQ(crm_names(), "Acme GmbH, Globex, Initech, Our Own Company NV, Umbrella");
  // A URL and its host are one website: neither side is rewritten for it.
  EXPECT_EQ(s_.erp("SELECT website FROM erp.res_partner WHERE name = 'Acme GmbH'"),
            "HTTPS://WWW.Acme.com/");
  EXPECT_EQ(s_.crm("SELECT \"domainName\" FROM \"Workspace\".company WHERE name = 'Acme GmbH'"),
            "acme.com");
  // A website only the CRM had reaches the ERP.
  EXPECT_EQ(s_.erp("SELECT website FROM erp.res_partner WHERE name = 'Globex'"), "globex.example");
  EXPECT_EQ(s_.crm("SELECT \"customerNumber\" FROM \"Workspace\".company WHERE name = 'Globex'"),
            "C-200");
  EXPECT_EQ(open_conflicts(), "");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.outbox WHERE status = 'pending'"), "0");
  // The engine's own index holds the records' keys.
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.match_key WHERE name = 'website'"
                       " AND value = 'acme.com'"),
            "1");

  // Idempotent: a second run links and creates nothing and writes nothing anywhere.
  const std::string before = fingerprint();
  const std::string again = s_.mdsync_ok({"sync", "--initial"});
  EXPECT_NE(again.find("company on erp: 5 rows: 5 already linked, 0 linked, 0 created"),
            std::string::npos)
      << again;
  EXPECT_NE(again.find("company on crm: 5 rows: 5 already linked, 0 linked, 0 created"),
            std::string::npos)
      << again;
  std::string after = fingerprint();
  // Only the capture bookkeeping moves: the enqueued rows were reconciled and marked done.
  auto without_capture = [](std::string f) {
    for (const char* k : {"capture_done=", "capture_seq="}) {
      const auto at = f.find(k);
      f.erase(at, f.find(' ', at) - at);
    }
    return f;
  };
  EXPECT_EQ(without_capture(after), without_capture(before));
}

// --dry-run prints what would happen and changes nothing: no control row, no side row, no
// capture row or sequence value, no table.
TEST_F(MatchTest, DryRunPrintsThePlanAndWritesNothing) {
  existing_rows();
  crm_company("Acme Corp", "", "");  // only a fuzzy match with Acme GmbH
  start();
  const std::string before = fingerprint();
  const std::string out = s_.mdsync_ok({"sync", "--initial", "--dry-run"});
  EXPECT_EQ(fingerprint(), before);
  EXPECT_NE(out.find("dry run"), std::string::npos) << out;
  EXPECT_NE(out.find("company on erp: 4 rows: 0 already linked, 0 would link, 4 would create, "
                     "0 possible duplicates"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("company on crm: 4 rows: 0 already linked, 2 would link, 1 would create, "
                     "1 possible duplicate"),
            std::string::npos)
      << out;
  // Named by rows: the dry run's record and conflict ids are rolled back.
  EXPECT_NE(out.find("possible duplicate: crm row " + crm_id("Acme Corp") + ": "),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("only a fuzzy match: name 'Acme Corp' ~ 'Acme GmbH' 1.000"), std::string::npos)
      << out;
  EXPECT_NE(out.find("candidates: record "), std::string::npos) << out;
  EXPECT_NE(out.find("erp row " + erp_id("Acme GmbH") + ")"), std::string::npos) << out;

  // What it announced is what the sync does.
  const std::string real = s_.mdsync_ok({"sync", "--initial", "--accept-overwrites"});
  EXPECT_NE(real.find("company on crm: 4 rows: 0 already linked, 2 linked, 1 created, "
                      "1 possible duplicate"),
            std::string::npos)
      << real;
  // After the sync, a dry run finds everything linked (and the held row held).
  const std::string settled = s_.mdsync_ok({"sync", "--initial", "--dry-run"});
  EXPECT_NE(settled.find("company on crm: 6 rows: 5 already linked, 0 would link, 0 would "
                         "create, 0 possible duplicates, 1 held"),
            std::string::npos)
      << settled;
}

// Two records found by exact keys (the customer number finds one, the website another) is
// ambiguous: a possible_duplicate, nothing created, nothing inserted where the row may be one
// of them. The steward links the row to one of them; the other then reaches the CRM.
TEST_F(MatchTest, AmbiguousExactMatchIsAPossibleDuplicateThenLinkedBySteward) {
  load_fixtures();
  erp_company("Alpha One", "alpha.example", "A-1");
  erp_company("Alpha Two", "alpha-two.example", "A-2");
  crm_company("Alpha", "https://alpha-two.example/", "A-1");
  start();
  const std::string out = s_.mdsync_ok({"sync", "--initial", "--accept-overwrites"});
  const std::string row = crm_id("Alpha");
  const std::string one = golden_of("erp", erp_id("Alpha One"));
  const std::string two = golden_of("erp", erp_id("Alpha Two"));
  EXPECT_NE(out.find("1 possible duplicate"), std::string::npos) << out;
  EXPECT_EQ(open_conflicts(), "possible_duplicate *record* crm");
  const std::string cid = s_.control("SELECT id FROM mdsync.conflict WHERE status = 'open'");
  EXPECT_EQ(s_.control("SELECT golden_id IS NULL FROM mdsync.conflict WHERE id = " + cid), "t");
  const std::string reason = s_.control("SELECT reason FROM mdsync.conflict WHERE id = " + cid);
  EXPECT_NE(reason.find("ambiguous match: key website 'alpha-two.example' finds record " + two),
            std::string::npos)
      << reason;
  EXPECT_NE(reason.find("key customer_no 'A-1' finds record " + one), std::string::npos) << reason;
  EXPECT_EQ(
      s_.control("SELECT \"values\" ? 'crm' AND \"values\" ? 'record " + one +
                 "' AND \"values\" ? 'record " + two + "' FROM mdsync.conflict WHERE id = " + cid),
      "t");
  // Nothing created for the row, and neither candidate inserted into the CRM.
  EXPECT_EQ(golden_of("crm", row), "<none>");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.golden"), "3");
  EXPECT_EQ(crm_names(), "Alpha, Our Own Company NV");
  EXPECT_EQ(erp_names(), "Alpha One, Alpha Two, Our Own Company NV");

  // A later edit of the held row joins the conflict; still nothing is created.
  s_.crm_exec(
      "UPDATE \"Workspace\".company SET \"addressAddressCountry\" = 'Belgium'"
      " WHERE name = 'Alpha'");
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(
      s_.control("SELECT jsonb_array_length(attached) FROM mdsync.conflict WHERE id = " + cid),
      "1");
  EXPECT_EQ(crm_names(), "Alpha, Our Own Company NV");
  // A candidate changed on the ERP meanwhile still stays out of the CRM.
  s_.erp_exec("UPDATE erp.res_partner SET website = 'alpha2.example' WHERE name = 'Alpha Two'");
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(crm_names(), "Alpha, Our Own Company NV");

  // Usage and request errors are clear and change nothing.
  RunResult bad = s_.mdsync({"conflicts", "resolve", cid, "--link", "erp:999999"});
  EXPECT_EQ(bad.exit_code, 1) << bad.err;
  EXPECT_NE(bad.err.find("no company record is linked to erp row '999999'"), std::string::npos)
      << bad.err;
  bad = s_.mdsync({"conflicts", "resolve", cid, "--link", "sap:1"});
  EXPECT_EQ(bad.exit_code, 1) << bad.err;
  EXPECT_NE(bad.err.find("'sap' is not a side"), std::string::npos) << bad.err;
  bad = s_.mdsync({"conflicts", "resolve", cid, "--link", "erp:1", "--take", "erp"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  bad = s_.mdsync({"conflicts", "resolve", cid, "--take", "erp"});
  EXPECT_EQ(bad.exit_code, 1) << bad.err;
  EXPECT_NE(bad.err.find("--link SIDE:ROWKEY"), std::string::npos) << bad.err;
  EXPECT_EQ(open_conflicts(), "possible_duplicate *record* crm");

  // The steward links the row to Alpha One, named by its ERP row.
  s_.mdsync_ok({"conflicts", "resolve", cid, "--link", "erp:" + erp_id("Alpha One"), "--note",
                "same customer number"});
  EXPECT_EQ(golden_of("crm", row), one);
  EXPECT_EQ(open_conflicts(), "");
  EXPECT_EQ(s_.control("SELECT status || ' ' || golden_id || ' ' || resolved_by"
                       " FROM mdsync.conflict WHERE id = " +
                       cid),
            "resolved " + one + " " + steward_source());
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.audit WHERE unit = '*record*'"
                       " AND decision = 'resolve' AND source = " +
                       steward_source_sql() + " AND golden_id = " + one +
                       " AND reason LIKE '%linked crm row%same customer number%'"),
            "1");
  s_.mdsync_ok({"run", "--once"});
  // The ERP's name wins; the country held by the conflict arrives; Alpha Two reaches the CRM.
  EXPECT_EQ(crm_names(), "Alpha One, Alpha Two, Our Own Company NV");
  EXPECT_EQ(erp_names(), "Alpha One, Alpha Two, Our Own Company NV");
  EXPECT_EQ(s_.erp("SELECT c.code FROM erp.res_partner p JOIN erp.res_country c"
                   " ON c.id = p.country_id WHERE p.name = 'Alpha One'"),
            "BE");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.crosswalk"), "6");

  // Resolving it again, or linking onto a record that has a CRM row already, is refused.
  bad = s_.mdsync({"conflicts", "resolve", cid, "--create"});
  EXPECT_EQ(bad.exit_code, 1) << bad.err;
  EXPECT_NE(bad.err.find("already resolved"), std::string::npos) << bad.err;
}

// A match by the fuzzy key alone (the company name without its legal form) only asks; the
// steward decides it is another company and creates it.
TEST_F(MatchTest, FuzzyOnlyMatchIsAPossibleDuplicateThenCreatedBySteward) {
  load_fixtures();
  erp_company("Acme GmbH", "acme.de", "C-1");
  crm_company("ACME", "acme.fr", "");
  start();
  s_.mdsync_ok({"sync", "--initial", "--accept-overwrites"});
  EXPECT_EQ(open_conflicts(), "possible_duplicate *record* crm");
  const std::string cid = s_.control("SELECT id FROM mdsync.conflict WHERE status = 'open'");
  const std::string acme = golden_of("erp", erp_id("Acme GmbH"));
  EXPECT_EQ(s_.control("SELECT reason FROM mdsync.conflict WHERE id = " + cid),
            "possible duplicate of record " + acme +
                ": only a fuzzy match: name 'ACME' ~ 'Acme GmbH' 1.000 (record " + acme + ")");
  EXPECT_EQ(crm_names(), "ACME, Our Own Company NV");

  // --create and --link together are a usage error.
  const RunResult usage = s_.mdsync({"conflicts", "resolve", cid, "--create", "--link", "erp:2"});
  EXPECT_EQ(usage.exit_code, 2) << usage.err;

  s_.mdsync_ok({"conflicts", "resolve", cid, "--create"});
  const std::string created = golden_of("crm", crm_id("ACME"));
  EXPECT_NE(created, "<none>");
  EXPECT_NE(created, acme);
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(crm_names(), "ACME, Acme GmbH, Our Own Company NV");
  EXPECT_EQ(erp_names(), "ACME, Acme GmbH, Our Own Company NV");
  EXPECT_EQ(s_.erp("SELECT website FROM erp.res_partner WHERE name = 'ACME'"), "acme.fr");
  EXPECT_EQ(open_conflicts(), "");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.audit WHERE decision = 'resolve'"
                       " AND golden_id = " +
                       created + " AND reason LIKE '% as e2e created record%'"),
            "1");

  // --link and --create resolve possible duplicates only.
  s_.erp_exec("UPDATE erp.res_partner SET website = 'acme.at' WHERE name = 'ACME'");
  s_.crm_exec("UPDATE \"Workspace\".company SET \"domainName\" = 'acme.ch' WHERE name = 'ACME'");
  s_.write_config_entities(kEntities, {{"company", R"({
    "entity": "company", "priority": ["erp", "crm"], "create": ["erp", "crm"],
    "delete": {"owner": "erp", "propagate": "delete"},
    "default": {"owner": "shared", "on_conflict": "quarantine"},
    "fields": {"customer_no": {"owner": "erp"}}})"}});
  s_.mdsync_ok({"rules", "apply"});
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(open_conflicts(), "concurrent_edit website crm");
  const std::string edit = s_.control("SELECT id FROM mdsync.conflict WHERE status = 'open'");
  const RunResult wrong = s_.mdsync({"conflicts", "resolve", edit, "--link", "erp:1"});
  EXPECT_EQ(wrong.exit_code, 1) << wrong.err;
  EXPECT_NE(wrong.err.find("is a concurrent_edit conflict; --link and --create resolve "
                           "possible_duplicate and unauthorized_create conflicts only"),
            std::string::npos)
      << wrong.err;
}

// During normal running, the same company created on both sides before either reached the
// other is linked, not duplicated; a second CRM row matching a record that already has one is
// a possible duplicate, never a second link.
TEST_F(MatchTest, RecordCreatedOnBothSidesDuringRunningIsLinkedNotDuplicated) {
  load_fixtures();
  start();
  s_.mdsync_ok({"run", "--once"});  // nothing yet: no capture (rows predate init) ...
  s_.mdsync_ok({"sync", "--initial",
                "--accept-overwrites"});  // ... the ERP's own company is created on the CRM
  EXPECT_EQ(crm_names(), "Our Own Company NV");

  erp_company("Hooli", "https://www.hooli.example/", "H-1");
  crm_company("Hooli Inc", "hooli.example", "");
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(crm_names(), "Hooli, Our Own Company NV");
  EXPECT_EQ(erp_names(), "Hooli, Our Own Company NV");
  EXPECT_EQ(golden_of("erp", erp_id("Hooli")), golden_of("crm", crm_id("Hooli")));
  EXPECT_EQ(open_conflicts(), "");

  // The ERP's record reaches the CRM first; the CRM's own copy, created before it saw it,
  // then matches a record that already has a CRM row.
  erp_company("Pied Piper", "piedpiper.example", "P-1");
  s_.mdsync_ok({"run", "--once"});
  crm_company("Pied Piper Inc", "piedpiper.example", "");
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(open_conflicts(), "possible_duplicate *record* crm");
  EXPECT_NE(s_.control("SELECT reason FROM mdsync.conflict WHERE status = 'open'")
                .find("which another crm row is already linked to"),
            std::string::npos);
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.golden"), "3");
  EXPECT_EQ(erp_names(), "Hooli, Our Own Company NV, Pied Piper");
  const std::string cid = s_.control("SELECT id FROM mdsync.conflict WHERE status = 'open'");
  const RunResult taken =
      s_.mdsync({"conflicts", "resolve", cid, "--link", "erp:" + erp_id("Pied Piper")});
  EXPECT_EQ(taken.exit_code, 1) << taken.err;
  EXPECT_NE(taken.err.find("is already linked to crm row"), std::string::npos) << taken.err;
}

// The ERP's delete deactivates the record elsewhere and detaches the ERP (its row is gone). A
// new ERP row with the same customer number is linked to the record by the key: the ERP holds
// a row of it again and is synced again, not left detached with a row nothing is written to.
// The same when a steward links a held row to the record.
TEST_F(MatchTest, ARowLinkedByItsKeyAfterItsSidesDeactivatingDeleteIsSyncedAgain) {
  load_fixtures();
  s_.crm_exec("ALTER TABLE \"Workspace\".company ADD COLUMN active boolean");
  s_.write_config_entities(R"({"company": {
    "fields": {"name": "text", "customer_no": "text", "active": "boolean"},
    "match": {"keys": [{"field": "customer_no", "normalize": ["trim"]}],
              "fuzzy": [{"field": "name", "normalize": ["company_name"]}]},
    "sides": {
      "erp": {"schema": "erp", "table": "res_partner", "key": "id", "columns": {
        "name": "name", "customer_no": "ref", "active": "active"}},
      "crm": {"schema": "Workspace", "table": "company", "key": "id", "columns": {
        "name": "name", "customer_no": "customerNumber", "active": "active"}}}}})",
                           {{"company", R"({
    "entity": "company", "priority": ["erp", "crm"], "create": ["erp", "crm"],
    "delete": {"owner": "erp", "propagate": "deactivate:active"},
    "default": {"owner": "shared", "on_conflict": "priority"},
    "fields": {"customer_no": {"owner": "erp"}, "active": {"owner": "erp"}}})"}});
  s_.mdsync_ok({"init"});
  erp_company("Acme", "", "C-1");
  s_.mdsync_ok({"run", "--once"});
  ASSERT_EQ(crm_names(), "Acme");
  s_.erp_exec("DELETE FROM erp.res_partner WHERE ref = 'C-1'");
  s_.mdsync_ok({"run", "--once"});
  ASSERT_EQ(s_.control("SELECT detached::text FROM mdsync.golden"), "{erp}");
  ASSERT_EQ(s_.crm("SELECT active FROM \"Workspace\".company"), "f");

  erp_company("Acme Again", "", "C-1");
  s_.mdsync_ok({"run", "--once"});
  const std::string again = s_.erp("SELECT id FROM erp.res_partner WHERE ref = 'C-1'");
  const std::string crm_row =
      s_.crm("SELECT id FROM \"Workspace\".company WHERE \"customerNumber\" = 'C-1'");
  EXPECT_EQ(golden_of("erp", again), golden_of("crm", crm_row));
  EXPECT_EQ(s_.control("SELECT detached::text FROM mdsync.golden"), "{}");
  s_.crm_exec("UPDATE \"Workspace\".company SET name = 'Acme Renamed' WHERE id = '" + crm_row +
              "'");
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s_.erp("SELECT name FROM erp.res_partner WHERE id = " + again), "Acme Renamed");
  EXPECT_EQ(open_conflicts(), "");

  // The same through a steward's --link: a new ERP row only the name finds is held as a
  // possible duplicate, and linked to the record by the steward.
  s_.erp_exec("DELETE FROM erp.res_partner WHERE id = " + again);
  s_.mdsync_ok({"run", "--once"});
  ASSERT_EQ(s_.control("SELECT detached::text FROM mdsync.golden"), "{erp}");
  erp_company("Acme Renamed", "", "");
  s_.mdsync_ok({"run", "--once"});
  ASSERT_EQ(open_conflicts(), "possible_duplicate *record* erp");
  const std::string cid = s_.control("SELECT id FROM mdsync.conflict WHERE status = 'open'");
  s_.mdsync_ok({"conflicts", "resolve", cid, "--link", "crm:" + crm_row});
  s_.mdsync_ok({"run", "--once"});
  const std::string third = s_.erp("SELECT id FROM erp.res_partner WHERE name = 'Acme Renamed'");
  EXPECT_EQ(golden_of("erp", third), golden_of("crm", crm_row));
  EXPECT_EQ(s_.control("SELECT detached::text FROM mdsync.golden"), "{}");
  s_.crm_exec("UPDATE \"Workspace\".company SET name = 'Acme Final' WHERE id = '" + crm_row + "'");
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s_.erp("SELECT name FROM erp.res_partner WHERE id = " + third), "Acme Final");
  EXPECT_EQ(open_conflicts(), "");
}

// A record's keys are built from golden and from what each side holds: once a new website is
// written back to the other side, no side holds the old one and it finds the record no more.
// A write that names no key field leaves the keys as they are.
TEST_F(MatchTest, KeysFollowWhatTheWriteBackLeavesOnTheSides) {
  load_fixtures();
  start();
  s_.mdsync_ok({"sync", "--initial", "--accept-overwrites"});
  erp_company("Hooli", "https://www.hooli.example/", "H-1");
  s_.mdsync_ok({"run", "--once"});
  const std::string gid = golden_of("erp", erp_id("Hooli"));
  ASSERT_EQ(gid, golden_of("crm", crm_id("Hooli")));
  auto keys = [&] {
    return s_.control(
        "SELECT string_agg(name || '=' || value, ', ' ORDER BY name, value) FROM mdsync.match_key"
        " WHERE NOT fuzzy AND golden_id = " +
        gid);
  };
  EXPECT_EQ(keys(), "customer_no=H-1, website=hooli.example");

  s_.erp_exec(
      "UPDATE erp.res_partner SET website = 'https://hooli.example.org'"
      " WHERE name = 'Hooli'");
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s_.crm("SELECT \"domainName\" FROM \"Workspace\".company WHERE name = 'Hooli'"),
            "hooli.example.org");
  EXPECT_EQ(keys(), "customer_no=H-1, website=hooli.example.org");

  s_.erp_exec("UPDATE erp.res_partner SET name = 'Hooli XYZ' WHERE name = 'Hooli'");
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(crm_names(), "Hooli XYZ, Our Own Company NV");
  EXPECT_EQ(keys(), "customer_no=H-1, website=hooli.example.org");
}

// Key values are data: quotes, SQL and odd Unicode in a key are matched as text (NFC-equal
// spellings included), never executed, and linking still works.
TEST_F(MatchTest, InjectionAndOddUnicodeInKeysAreHarmless) {
  load_fixtures();
  const std::string evil = "X'); DROP TABLE mdsync.golden; --";
  erp_company("Caf\xC3\xA9 \xE2\x80\x8F\xF0\x9F\x98\x80 Ltd", "", evil);  // é, RLM, emoji
  erp_company("Zeta", "", "Z\xC3\xA9-1");                                 // composed é
  crm_company("Bobby", "", evil);
  crm_company("Yotta Zeta", "", "Ze\xCC\x81-1");  // e + combining acute: another spelling
  start();
  const std::string out = s_.mdsync_ok({"sync", "--initial", "--accept-overwrites"});
  EXPECT_NE(out.find("company on crm: 2 rows: 0 already linked, 1 linked, 1 created"),
            std::string::npos)
      << out;
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.golden"), "4");
  EXPECT_EQ(golden_of("crm", crm_id("Caf\xC3\xA9 \xE2\x80\x8F\xF0\x9F\x98\x80 Ltd")),
            golden_of("erp", erp_id("Caf\xC3\xA9 \xE2\x80\x8F\xF0\x9F\x98\x80 Ltd")));
  EXPECT_EQ(s_.crm("SELECT \"customerNumber\" FROM \"Workspace\".company WHERE name = 'Bobby'"),
            "<none>");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.match_key WHERE value = " + sql(evil)), "1");
  // trim keeps bytes: a differently composed customer number is another key.
  EXPECT_EQ(s_.crm("SELECT count(*) FROM \"Workspace\".company WHERE name LIKE '%Zeta'"), "2");
  EXPECT_EQ(open_conflicts(), "");
}

}  // namespace
}  // namespace mdsync::e2e

namespace mdsync::e2e {
namespace {

// The CRM may not create companies: its new row is an unauthorized_create that holds the row,
// attaching later edits. The steward creates the record anyway (--create: the ERP gets the row,
// with the latest held values) or says which record a row is (--link).
TEST_F(MatchTest, UnauthorizedCreateIsCreatedOrLinkedByTheSteward) {
  load_fixtures();
  std::string rules = kRules;
  rules.replace(rules.find(R"("create": ["erp", "crm"])"), 24, R"("create": ["erp"])");
  s_.write_config_entities(kEntities, {{"company", rules}});
  s_.mdsync_ok({"init"});
  erp_company("Acme", "https://acme.example", "C-1");
  s_.mdsync_ok({"run", "--once"});
  crm_company("Globex", "globex.example", "");
  s_.mdsync_ok({"run", "--once"});
  s_.crm_exec(
      "UPDATE \"Workspace\".company SET \"domainName\" = 'globex.example.org'"
      " WHERE name = 'Globex'");
  crm_company("Initech", "initech.example", "");
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s_.control("SELECT string_agg(row_key, ',' ORDER BY id) FROM mdsync.conflict"
                       " WHERE kind = 'unauthorized_create' AND status = 'open'"),
            crm_id("Globex") + "," + crm_id("Initech"));
  EXPECT_EQ(s_.erp("SELECT count(*) FROM erp.res_partner WHERE name IN ('Globex', 'Initech')"),
            "0");

  const std::string globex =
      s_.control("SELECT id FROM mdsync.conflict WHERE row_key = '" + crm_id("Globex") + "'");
  s_.mdsync_ok({"conflicts", "resolve", globex, "--create", "--note", "approved by sales"});
  const std::string initech =
      s_.control("SELECT id FROM mdsync.conflict WHERE row_key = '" + crm_id("Initech") + "'");
  const RunResult wrong = s_.mdsync({"conflicts", "resolve", initech, "--link", "crm:nope"});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("no company record is linked to crm row 'nope'"), std::string::npos)
      << wrong.err;
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s_.erp("SELECT website FROM erp.res_partner WHERE name = 'Globex'"),
            "globex.example.org");
  EXPECT_EQ(s_.control("SELECT status FROM mdsync.conflict WHERE id = " + globex), "resolved");
  // Every unit is created under the steward's name; customer_no is the ERP's, so it takes
  // its rule's default.
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.audit WHERE source = " + steward_source_sql() +
                       " AND decision = 'create'"),
            "4");
  EXPECT_EQ(s_.control("SELECT string_agg(kind || ' ' || unit || ' ' || row_key, ', ' ORDER BY id)"
                       " FROM mdsync.conflict WHERE status = 'open'"),
            "unauthorized_create *record* " + crm_id("Initech"));
}

}  // namespace
}  // namespace mdsync::e2e

namespace mdsync::e2e {
namespace {

// sync --initial runs alone: while `mdsync run` holds the engine lease on the control store
// it refuses, naming the service, and changes nothing; once the service is stopped it runs.
TEST_F(MatchTest, InitialSyncRefusesWhileTheServiceRuns) {
  load_fixtures();
  start();
  erp_company("Acme", "https://acme.example", "C-1");
  const std::string log = s_.dir() + "/service.log";
  const int pid = s_.spawn_mdsync({"run"}, log);
  ASSERT_GT(pid, 0);
  EXPECT_EQ(wait_until(
                [&] {
                  return s_.control(
                      "SELECT count(*) > 0 FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                      " WHERE l.locktype = 'advisory' AND l.granted AND a.application_name ="
                      " 'mdsync run' AND a.datname = current_database()");
                },
                "t", 60),
            "t");
  const RunResult refused = s_.mdsync({"sync", "--initial"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("another mdsync engine holds this control store's lease (server pid "),
            std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("application_name 'mdsync run'"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("stop the service before `sync --initial`"), std::string::npos)
      << refused.err;
  ::kill(pid, SIGTERM);
  const int code = wait_exit(pid, 60);
  if (code == -1) ::kill(pid, SIGKILL);
  EXPECT_EQ(code, 0) << read_file(log);
  const std::string out = s_.mdsync_ok({"sync", "--initial", "--accept-overwrites"});
  EXPECT_NE(out.find("summary:"), std::string::npos) << out;
}

}  // namespace
}  // namespace mdsync::e2e
