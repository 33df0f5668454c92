// End-to-end tests of matching at first contact (issue 11) between an Odoo-like ERP and a
// Twenty-like CRM (tests/e2e/fixtures) with a unique index on the CRM's domain, under the
// policy a steward would write: only the ERP creates companies (the CRM's prospects stay
// CRM-only, held as unauthorized_create), the ERP owns the name and the customer number, the
// CRM owns the web domain.
// - A prospect becomes a customer: when the ERP creates the same company (same domain), the
//   prospect is linked to the ERP's new record, not inserted a second time on the CRM, and its
//   conflict is closed, audited, with no steward; also through `sync --initial`.
// - Two held rows matching one ERP row are a possible_duplicate; the steward's answers never
//   put a second company on the CRM.
// - Fuzzy keys compare by similarity: "Acme" ~ "Acme Holdings, Inc." (0.862) is proposed above
//   the threshold, not below it, and never linked.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "e2e_harness.hpp"

namespace mdsync::e2e {
namespace {

std::string fixture(const std::string& name) {
  return read_file(std::string(MDSYNC_E2E_FIXTURES) + "/" + name);
}

// The fuzzy key's threshold is THRESHOLD.
const char* const kEntities = R"({"company": {
    "fields": {"name": "text", "website": "text", "country": "text", "customer_no": "text"},
    "match": {"keys": [{"field": "website", "normalize": ["url_host"]},
                       {"field": "customer_no", "normalize": ["trim"]}],
              "fuzzy": [{"field": "name", "normalize": ["company_name"], "threshold": THRESHOLD}]},
    "sides": {
      "erp": {"schema": "erp", "table": "res_partner", "key": "id", "columns": {
        "name": "name",
        "website": {"column": "website", "normalize": ["trim", "url_host"]},
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

// PRIORITY, CREATE and NAME (the name's policy) are filled in per test.
const char* const kRules = R"({
  "entity": "company", "priority": PRIORITY, "create": CREATE,
  "delete": {"owner": "erp", "propagate": "delete"},
  "default": {"owner": "erp"},
  "fields": {"website": {"owner": "crm"}, "name": NAME,
             "country": {"owner": "shared", "on_conflict": "priority"}}
})";

std::string replaced(std::string text, const std::string& what, const std::string& with) {
  text.replace(text.find(what), what.size(), with);
  return text;
}

class FirstContactMatchTest : public ::testing::Test {
 protected:
  FirstContactMatchTest() : s_(::testing::UnitTest::GetInstance()->current_test_info()->name()) {}
  void load_fixtures() {
    s_.erp_exec(fixture("erp_partners.sql"));
    s_.crm_exec(fixture("crm_companies.sql"));
    // Twenty keeps one company per domain: a second insert of a prospect's company fails here.
    s_.crm_exec(
        "CREATE UNIQUE INDEX company_domain_unique ON \"Workspace\".company (\"domainName\")");
  }
  void start(const std::string& threshold = "0.85",
             const std::string& priority = R"(["erp", "crm"])",
             const std::string& create = R"(["erp"])",
             const std::string& name = R"({"owner": "erp"})") {
    const std::string rules =
        replaced(replaced(replaced(kRules, "PRIORITY", priority), "CREATE", create), "NAME", name);
    s_.write_config_entities(replaced(kEntities, "THRESHOLD", threshold), {{"company", rules}});
    s_.mdsync_ok({"init"});
  }
  void erp_company(const std::string& name, const std::string& website, const std::string& ref) {
    s_.erp_exec("INSERT INTO erp.res_partner (name, is_company, website, ref) VALUES (" +
                sql(name) + ", true, " + sql(website) + ", " + sql(ref) + ")");
  }
  void crm_company(const std::string& name, const std::string& domain, const std::string& number,
                   const std::string& country = "") {
    s_.crm_exec(
        "INSERT INTO \"Workspace\".company (name, \"domainName\", \"customerNumber\","
        " \"addressAddressCountry\") VALUES (" +
        sql(name) + ", " + sql(domain) + ", " + sql(number) + ", " + sql(country) + ")");
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
  std::string conflict_of(const std::string& side, const std::string& row_key) const {
    return s_.control("SELECT id FROM mdsync.conflict WHERE side = '" + side +
                      "' AND row_key = " + sql(row_key) + " ORDER BY id DESC LIMIT 1");
  }
  // Inserts the engine ever queued into the CRM, and writes a side refused (the CRM's unique
  // domain index refuses a second company with a prospect's domain).
  std::string crm_inserts() const {
    return s_.control("SELECT count(*) FROM mdsync.outbox WHERE side = 'crm' AND kind = 'insert'");
  }
  std::string failed_writes() const {
    return s_.control("SELECT count(*) FROM mdsync.outbox WHERE status = 'failed'");
  }
  static std::string join(const std::vector<std::string>& rows) {
    std::string out;
    for (const auto& r : rows) out += (out.empty() ? "" : ", ") + r;
    return out;
  }
  Scenario s_;
};

// A CRM prospect (the CRM may not create companies) is held; its domain arrives in a later
// edit, which attaches to the conflict. When the ERP creates the company with that domain, the
// prospect is linked to the ERP's record: no second company on the CRM (its unique domain index
// is never hit), the prospect's values reconciled under the rules (the ERP's name and customer
// number reach it, its country reaches the ERP), and its conflict closed with an audited
// resolution naming the match, with no steward.
TEST_F(FirstContactMatchTest, ProspectIsLinkedWhenTheErpCreatesTheSameCompany) {
  load_fixtures();
  start();
  crm_company("Acme", "", "");
  s_.mdsync_ok({"run", "--once"});
  const std::string prospect = crm_id("Acme");
  EXPECT_EQ(open_conflicts(), "unauthorized_create *record* crm");
  const std::string cid = conflict_of("crm", prospect);
  s_.crm_exec(
      "UPDATE \"Workspace\".company SET \"domainName\" = 'https://www.Acme.example/',"
      " \"addressAddressCountry\" = 'Belgium' WHERE name = 'Acme'");
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(erp_names(), "Our Own Company NV");

  erp_company("Acme Holdings", "acme.example", "C-100");
  s_.mdsync_ok({"run", "--once"});
  s_.mdsync_ok({"run", "--once"});

  const std::string record = golden_of("erp", erp_id("Acme Holdings"));
  ASSERT_NE(record, "<none>");
  EXPECT_EQ(golden_of("crm", prospect), record);
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.golden"), "1");
  EXPECT_EQ(crm_names(), "Acme Holdings");
  EXPECT_EQ(s_.crm("SELECT id FROM \"Workspace\".company"), prospect);
  EXPECT_EQ(crm_inserts(), "0");
  EXPECT_EQ(failed_writes(), "0");
  // Reconciled as a linked row: the ERP's name and number, the CRM's domain, the country the
  // prospect's later edit brought.
  EXPECT_EQ(s_.crm("SELECT \"customerNumber\" || ' ' || \"domainName\" FROM \"Workspace\".company"),
            "C-100 https://www.Acme.example/");
  EXPECT_EQ(s_.control("SELECT \"values\"->>'website' FROM mdsync.golden WHERE id = " + record),
            "acme.example");
  EXPECT_EQ(s_.erp("SELECT c.code FROM erp.res_partner p JOIN erp.res_country c"
                   " ON c.id = p.country_id WHERE p.name = 'Acme Holdings'"),
            "BE");
  // Closed, naming the record and the match, under the ERP change that matched.
  EXPECT_EQ(open_conflicts(), "");
  EXPECT_EQ(s_.control("SELECT status || ' ' || golden_id || ' ' || (resolved_by LIKE 'erp#%')"
                       " FROM mdsync.conflict WHERE id = " +
                       cid),
            "resolved " + record + " true");
  const std::string reason = s_.control(
      "SELECT reason FROM mdsync.audit WHERE decision = 'resolve' AND unit = '*record*'"
      " AND golden_id = " +
      record);
  EXPECT_NE(reason.find("matched: crm row '" + prospect + "' is record " + record),
            std::string::npos)
      << reason;
  EXPECT_NE(reason.find("key website 'acme.example' finds crm row '" + prospect +
                        "' (held by conflict " + cid + ")"),
            std::string::npos)
      << reason;
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.held_match_key"), "0");

  // Settled: nothing more to do.
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.outbox WHERE status IN ('pending', "
                       "'cancelling')"),
            "0");
  EXPECT_EQ(crm_names(), "Acme Holdings");
}

// The same through `sync --initial` on sides that are already full: the CRM's rows are taken
// in first (its prospects are held), then the ERP's, whose companies link the prospects with
// the same domain instead of inserting them a second time. A CRM-only prospect stays held; an
// ERP-only company reaches the CRM.
TEST_F(FirstContactMatchTest, InitialSyncLinksProspectsTakenInFirst) {
  load_fixtures();
  erp_company("Acme Holdings", "https://www.acme.example/", "C-100");
  erp_company("Globex", "globex.example", "C-200");
  erp_company("Initech", "initech.example", "C-300");
  crm_company("Acme", "acme.example", "");
  crm_company("Globex Corporation", "GLOBEX.example", "", "Netherlands");
  crm_company("Umbrella", "umbrella.example", "");
  const std::string acme = crm_id("Acme"), globex = crm_id("Globex Corporation");
  start("0.85", R"(["crm", "erp"])");
  const std::string out = s_.mdsync_ok({"sync", "--initial", "--accept-overwrites"});

  EXPECT_EQ(golden_of("crm", acme), golden_of("erp", erp_id("Acme Holdings"))) << out;
  EXPECT_EQ(golden_of("crm", globex), golden_of("erp", erp_id("Globex"))) << out;
  EXPECT_NE(golden_of("crm", acme), "<none>");
  // One company per domain on the CRM: the prospects (renamed by the ERP, which owns names),
  // the held Umbrella, and the ERP's two companies the CRM did not have.
  EXPECT_EQ(crm_names(), "Acme Holdings, Globex, Initech, Our Own Company NV, Umbrella") << out;
  EXPECT_EQ(erp_names(), "Acme Holdings, Globex, Initech, Our Own Company NV") << out;
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.golden"), "4");
  EXPECT_EQ(failed_writes(), "0");
  EXPECT_EQ(crm_inserts(), "2");
  EXPECT_EQ(s_.erp("SELECT c.code FROM erp.res_partner p JOIN erp.res_country c"
                   " ON c.id = p.country_id WHERE p.name = 'Globex'"),
            "NL");
  EXPECT_EQ(open_conflicts(), "unauthorized_create *record* crm");
  EXPECT_EQ(s_.control("SELECT row_key FROM mdsync.conflict WHERE status = 'open'"),
            crm_id("Umbrella"));
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.conflict WHERE status = 'resolved'"
                       " AND resolved_by LIKE 'erp#%' AND golden_id IS NOT NULL"),
            "2");

  // Again: links and creates nothing, and the held prospect stays held.
  const std::string again = s_.mdsync_ok({"sync", "--initial", "--accept-overwrites"});
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.golden"), "4") << again;
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.crosswalk"), "8") << again;
  EXPECT_EQ(crm_names(), "Acme Holdings, Globex, Initech, Our Own Company NV, Umbrella");
  EXPECT_EQ(failed_writes(), "0");
}

// `sync --initial --dry-run` announces what the sync then does with prospects taken in first:
// the rows it would hold are match candidates for the ERP's rows that follow, so an ERP row
// matching two of them is announced as a possible duplicate naming both, and one matching one
// of them as a create (the prospect is linked to it), as the real run then decides.
TEST_F(FirstContactMatchTest, DryRunSeesTheProspectsItWouldHold) {
  load_fixtures();
  crm_company("Acme", "acme.example", "");
  crm_company("Acme Europe", "acme-europe.example", "C-1");
  crm_company("Globex Corporation", "globex.example", "");
  erp_company("Acme Holdings", "https://acme.example", "C-1");
  erp_company("Globex", "globex.example", "C-2");
  const std::string p1 = crm_id("Acme"), p2 = crm_id("Acme Europe");
  const std::string p3 = crm_id("Globex Corporation");
  start("0.85", R"(["crm", "erp"])");
  const std::string dry = s_.mdsync_ok({"sync", "--initial", "--dry-run"});
  EXPECT_NE(dry.find("company on crm: 3 rows: 0 already linked, 0 would link, 0 would create, "
                     "0 possible duplicates, 3 held"),
            std::string::npos)
      << dry;
  EXPECT_NE(dry.find("company on erp: 3 rows: 0 already linked, 0 would link, 2 would create, "
                     "1 possible duplicate"),
            std::string::npos)
      << dry;
  // The held rows are named in the order the CRM's rows are read (by key).
  EXPECT_NE(dry.find("possible duplicate: erp row " + erp_id("Acme Holdings") +
                     ": possible duplicate of crm row '"),
            std::string::npos)
      << dry;
  EXPECT_NE(dry.find("ambiguous match: key website 'acme.example' finds crm row '" + p1 +
                     "' (held by conflict "),
            std::string::npos)
      << dry;
  EXPECT_NE(dry.find("key customer_no 'C-1' finds crm row '" + p2 + "' (held by conflict "),
            std::string::npos)
      << dry;

  const std::string real = s_.mdsync_ok({"sync", "--initial", "--accept-overwrites"});
  EXPECT_NE(real.find("company on crm: 3 rows: 0 already linked, 0 linked, 0 created, "
                      "0 possible duplicates, 3 held"),
            std::string::npos)
      << real;
  EXPECT_NE(real.find("company on erp: 3 rows: 0 already linked, 0 linked, 2 created, "
                      "1 possible duplicate"),
            std::string::npos)
      << real;
  EXPECT_EQ(golden_of("crm", p3), golden_of("erp", erp_id("Globex")));
  EXPECT_EQ(crm_names(), "Acme, Acme Europe, Globex, Our Own Company NV");
  EXPECT_EQ(open_conflicts(),
            "unauthorized_create *record* crm, unauthorized_create *record* crm, "
            "possible_duplicate *record* erp");
}

// One ERP company whose website is one prospect's domain and whose customer number another
// prospect carries: ambiguous, a possible_duplicate naming both held rows, and nothing created.
// The steward creates the record anyway: it is not inserted into the CRM while a prospect it
// may be is held. Linking one prospect to it leaves the other held, and the CRM never gets a
// third company.
TEST_F(FirstContactMatchTest, TwoHeldRowsMatchingOneErpRowAreAPossibleDuplicate) {
  load_fixtures();
  start();
  crm_company("Acme", "acme.example", "");
  crm_company("Acme Europe", "acme-europe.example", "C-1");
  s_.mdsync_ok({"run", "--once"});
  const std::string p1 = crm_id("Acme"), p2 = crm_id("Acme Europe");
  const std::string c1 = conflict_of("crm", p1), c2 = conflict_of("crm", p2);
  EXPECT_EQ(open_conflicts(), "unauthorized_create *record* crm, unauthorized_create *record* crm");

  erp_company("Acme Holdings", "https://acme.example", "C-1");
  s_.mdsync_ok({"run", "--once"});
  const std::string row = erp_id("Acme Holdings");
  EXPECT_EQ(open_conflicts(),
            "unauthorized_create *record* crm, unauthorized_create *record* crm, "
            "possible_duplicate *record* erp");
  const std::string pd = conflict_of("erp", row);
  const std::string reason = s_.control("SELECT reason FROM mdsync.conflict WHERE id = " + pd);
  EXPECT_NE(reason.find("ambiguous match: key website 'acme.example' finds crm row '" + p1 +
                        "' (held by conflict " + c1 + "); key customer_no 'C-1' finds crm row '" +
                        p2 + "' (held by conflict " + c2 + ")"),
            std::string::npos)
      << reason;
  EXPECT_EQ(s_.control("SELECT \"values\" ? ('crm row ''" + p1 + "'' (held by conflict " + c1 +
                       ")') FROM mdsync.conflict WHERE id = " + pd),
            "t");
  EXPECT_EQ(golden_of("erp", row), "<none>");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.golden"), "0");
  EXPECT_EQ(crm_names(), "Acme, Acme Europe");

  // The steward says it is a new company: created, but held back from the CRM.
  s_.mdsync_ok({"conflicts", "resolve", pd, "--create"});
  s_.mdsync_ok({"run", "--once"});
  const std::string record = golden_of("erp", row);
  ASSERT_NE(record, "<none>");
  EXPECT_EQ(crm_names(), "Acme, Acme Europe");
  EXPECT_EQ(failed_writes(), "0");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.outbox WHERE side = 'crm' AND kind = 'insert'"
                       " AND status = 'done'"),
            "0");

  // Then that the first prospect is that company: linked; the other stays held.
  s_.mdsync_ok({"conflicts", "resolve", c1, "--link", "erp:" + row});
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(golden_of("crm", p1), record);
  EXPECT_EQ(crm_names(), "Acme Europe, Acme Holdings");
  EXPECT_EQ(open_conflicts(), "unauthorized_create *record* crm");
  EXPECT_EQ(s_.control("SELECT row_key FROM mdsync.conflict WHERE status = 'open'"), p2);
  EXPECT_EQ(failed_writes(), "0");
}

// "Acme" on the ERP and "Acme Holdings, Inc." on the CRM (normalized "acme" ~ "acme holdings",
// similarity 0.862), with no exact key in common. THRESHOLD 0.85: proposed as a
// possible_duplicate whose reason names the similarity, never linked, in `sync --initial` (the
// ERP's rows are taken in before the CRM's) and in a capture batch holding both rows
// (`run --once`); a later ERP row is compared with the stored index.
TEST_F(FirstContactMatchTest, NearNamesAreProposedAboveTheThresholdNeverLinked) {
  load_fixtures();
  erp_company("Initech", "initech.example", "");
  crm_company("Initech Systems Ltd", "initech-systems.example", "");
  start("0.85", R"(["erp", "crm"])", R"(["erp", "crm"])");
  s_.mdsync_ok({"sync", "--initial", "--accept-overwrites"});
  erp_company("Acme", "acme.example", "");
  crm_company("Acme Holdings, Inc.", "acme-holdings.example", "");
  s_.mdsync_ok({"run", "--once"});  // both in one batch

  EXPECT_EQ(open_conflicts(), "possible_duplicate *record* crm, possible_duplicate *record* crm");
  const std::string acme = golden_of("erp", erp_id("Acme"));
  const std::string initech = golden_of("erp", erp_id("Initech"));
  EXPECT_EQ(s_.control("SELECT reason FROM mdsync.conflict WHERE row_key = '" +
                       crm_id("Acme Holdings, Inc.") + "'"),
            "possible duplicate of record " + acme +
                ": only a fuzzy match: name 'Acme Holdings, Inc.' ~ 'Acme' 0.862 (record " + acme +
                ")");
  EXPECT_EQ(s_.control("SELECT reason FROM mdsync.conflict WHERE row_key = '" +
                       crm_id("Initech Systems Ltd") + "'"),
            "possible duplicate of record " + initech +
                ": only a fuzzy match: name 'Initech Systems Ltd' ~ 'Initech' 0.893 (record " +
                initech + ")");
  // Never linked, nothing created for them, and the candidates are not inserted where the
  // rows may be them.
  EXPECT_EQ(golden_of("crm", crm_id("Acme Holdings, Inc.")), "<none>");
  EXPECT_EQ(golden_of("crm", crm_id("Initech Systems Ltd")), "<none>");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.golden"), "3");
  EXPECT_EQ(crm_names(), "Acme Holdings, Inc., Initech Systems Ltd, Our Own Company NV");
  EXPECT_EQ(erp_names(), "Acme, Initech, Our Own Company NV");

  // A near name of a record that already has a row on the new row's side is not proposed: the
  // side keeps its two rows apart (the ERP's "Acme" and "Acme Holdings" are two customers). The
  // same name after normalization is (found in the stored index: the record is older).
  erp_company("Acme Holdings", "acme-holdings.example.com", "");
  s_.mdsync_ok({"run", "--once"});
  EXPECT_NE(golden_of("erp", erp_id("Acme Holdings")), "<none>");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.golden"), "4");
  EXPECT_EQ(open_conflicts(), "possible_duplicate *record* crm, possible_duplicate *record* crm");
  erp_company("ACME N.V.", "acme.example.net", "");
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(golden_of("erp", erp_id("ACME N.V.")), "<none>");
  EXPECT_EQ(s_.control("SELECT reason FROM mdsync.conflict WHERE side = 'erp' AND row_key = '" +
                       erp_id("ACME N.V.") + "'"),
            "possible duplicate of record " + acme +
                ": only a fuzzy match: name 'ACME N.V.' ~ 'Acme' 1.000 (record " + acme + ")");
}

// The same names under THRESHOLD 0.87: 0.862 is below it, so the CRM's company is another
// company: created, and each side gets the other's (the name is shared here, so the CRM's
// create keeps its name).
TEST_F(FirstContactMatchTest, NearNamesBelowTheThresholdAreDifferentCompanies) {
  load_fixtures();
  start("0.87", R"(["erp", "crm"])", R"(["erp", "crm"])",
        R"({"owner": "shared", "on_conflict": "priority"})");
  erp_company("Acme", "acme.example", "");
  crm_company("Acme Holdings, Inc.", "acme-holdings.example", "");
  s_.mdsync_ok({"run", "--once"});
  s_.mdsync_ok({"run", "--once"});
  EXPECT_EQ(open_conflicts(), "");
  EXPECT_EQ(s_.control("SELECT count(*) FROM mdsync.golden"), "2");
  EXPECT_NE(golden_of("crm", crm_id("Acme Holdings, Inc.")), golden_of("erp", erp_id("Acme")));
  EXPECT_EQ(crm_names(), "Acme, Acme Holdings, Inc.");
  EXPECT_EQ(erp_names(), "Acme, Acme Holdings, Inc., Our Own Company NV");
}

}  // namespace
}  // namespace mdsync::e2e
