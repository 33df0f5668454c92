// First contact (issue 11): `mdsync sync --initial` between an Odoo-shaped ERP and a
// Twenty-shaped CRM that both start full (tests/e2e/fixtures/odoo_partners.sql,
// twenty_companies.sql): 30 companies in scope on each side, 20 of them on both (12 identical,
// 8 differing in one field), 10 only on the ERP, 10 CRM-only prospects; contact persons and the
// ERP's own company out of scope. The web domain is owned by the CRM and is the match key.
//
// The fixtures' differences, which the expectations below count:
//   pair  1-11 (ERP 2-12, CRM ...01-...11): identical (the website only differs in spelling)
//   pair 12 (ERP 13, CRM ...12): the CRM has no address (shared group: the ERP's reaches it)
//   pair 13-16 (ERP 14-17): the CRM's name differs (the ERP owns names)
//   pair 17-18 (ERP 18-19): the ERP's phone differs (the CRM owns phones)
//   pair 19 (ERP 20, CRM ...19): the CRM's city differs (shared group, `priority` decides)
//   pair 20 (ERP 21): the ERP has no phone, the CRM has one
//   ERP 22-31: only on the ERP, no website and no phone (the CRM owns both)
//   CRM ...101-...110: prospects, only on the CRM (`create` is the ERP's alone: held)
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "e2e_harness.hpp"

namespace mdsync::e2e {
namespace {

const char* const kCrmSchema = "workspace_1wgvd1injqtife6y4rvfbu3h5";
const char* const kCrmTable = "\"workspace_1wgvd1injqtife6y4rvfbu3h5\".company";

std::string fixture(const std::string& name) {
  return read_file(std::string(MDSYNC_E2E_FIXTURES) + "/" + name);
}

// The CRM row key of fixture row n (pairs 1-20, prospects 101-110).
std::string crm_key(int n) {
  std::string digits = std::to_string(n);
  return "00000000-0000-4000-a000-" + std::string(12 - digits.size(), '0') + digits;
}
const char* const kFixtureKeyPrefix = "00000000-0000-4000-a000-";

// `extra_fields`, `erp_extra` and `crm_extra` add fields (canonical type and each side's column).
std::string entities(const std::string& extra_fields = "", const std::string& erp_extra = "",
                     const std::string& crm_extra = "") {
  return std::string(R"({"company": {
    "fields": {"name": "text", "website": "text", "phone": "text", "city": "text",
               "country": "text")") +
         extra_fields + R"(},
    "match": {"keys": [{"field": "website", "normalize": ["url_host"]}]},
    "sides": {
      "erp": {"schema": "public", "table": "res_partner", "key": "id",
              "scope": {"where": [{"column": "is_company", "eq": true}, {"column": "id", "ne": 1}]},
              "soft_delete": {"column": "active", "kind": "flag"},
              "delete_guard": {"table": "account_move", "on": {"partner_id": "id"},
                               "where": [{"column": "payment_state", "in": ["not_paid", "partial"]}],
                               "reason": "the customer has unpaid invoices"},
              "columns": {"name": "name",
                          "website": {"column": "website", "normalize": ["trim", "url_host"]},
                          "phone": "phone", "city": "city",
                          "country": {"column": "country_id",
                                      "lookup": {"table": "res_country", "key": "id",
                                                 "value": "code"}})" +
         erp_extra + R"(}},
      "crm": {"schema": ")" +
         kCrmSchema + R"(", "table": "company", "key": "id",
              "soft_delete": {"column": "deletedAt", "kind": "timestamp"},
              "columns": {"name": "name",
                          "website": {"column": "domainNamePrimaryLinkUrl",
                                      "normalize": ["trim", "url_host"]},
                          "phone": "phonesPrimaryPhoneNumber", "city": "addressAddressCity",
                          "country": {"column": "addressAddressCountry",
                                      "map": {"BE": "Belgium", "NL": "Netherlands",
                                              "DE": "Germany", "FR": "France",
                                              "US": "United States", "JP": "Japan"}})" +
         crm_extra + R"(}}}}})";
}

// The steward's policy of issue 11: the ERP owns names (and everything not listed), the CRM
// owns the web domain and the phone, the address is a shared group; only the ERP creates
// customers (the CRM's prospects stay CRM-only) and only its deletes count.
std::string rules(const std::string& priority, const std::string& extra_fields = "") {
  return R"({"entity": "company", "priority": )" + priority + R"(, "create": ["erp"],
    "delete": {"owner": "erp", "propagate": "delete"},
    "default": {"owner": "erp"},
    "groups": {"address": ["city", "country"]},
    "fields": {"website": {"owner": "crm"}, "phone": {"owner": "crm"},
               "address": {"owner": "shared", "on_conflict": "priority"})" +
         extra_fields + "}}";
}
const char* const kErpFirst = R"(["erp", "crm"])";
const char* const kCrmFirst = R"(["crm", "erp"])";

std::string join(const std::vector<std::string>& rows, const char* sep = "\n") {
  std::string out;
  for (const auto& r : rows) out += (out.empty() ? "" : sep) + r;
  return out;
}

// One scenario's ERP, CRM and control store, loaded with the fixtures.
class Pair {
 public:
  explicit Pair(const std::string& name) : s(name) {
    s.erp_exec(fixture("odoo_partners.sql"));
    s.crm_exec(fixture("twenty_companies.sql"));
  }
  void start(const std::string& rules_json, const std::string& extra_fields = "",
             const std::string& erp_extra = "", const std::string& crm_extra = "") {
    s.write_config_entities(entities(extra_fields, erp_extra, crm_extra),
                            {{"company", rules_json}});
    s.mdsync_ok({"init"});
  }
  // Merges `patch` into mdsync.json.
  void patch_config(const std::string& patch) const {
    nlohmann::json config = nlohmann::json::parse(read_file(s.config_path()));
    config.merge_patch(nlohmann::json::parse(patch));
    write_file(s.config_path(), config.dump(2));
  }
  nlohmann::json dry_run_json() const {
    const std::string out = s.mdsync_ok({"sync", "--initial", "--dry-run", "--json"});
    return nlohmann::json::parse(out);
  }

  // The sides' rows as the sync sees and writes them (every mapped column and the scope's,
  // archive and soft-delete columns); a CRM row mdsync inserted is named by its name.
  std::vector<std::string> erp_rows() const {
    return s.rows(s.erp_db(),
                  "SELECT id, name, website, phone, city, country_id, is_company, active,"
                  " parent_id FROM public.res_partner ORDER BY id");
  }
  std::vector<std::string> crm_rows() const {
    return s.rows(s.crm_db(),
                  std::string("SELECT CASE WHEN id::text LIKE '") + kFixtureKeyPrefix +
                      "%' THEN id::text ELSE 'new' END, name, \"domainNamePrimaryLinkUrl\","
                      " \"phonesPrimaryPhoneNumber\", \"addressAddressCity\","
                      " \"addressAddressCountry\", \"deletedAt\" IS NOT NULL FROM " +
                      kCrmTable + " ORDER BY name, id");
  }
  // Every column of every row of the sides' tables (timestamps included): any write shows.
  std::string side_tables_md5() const {
    return s.erp("SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM public.res_partner t") +
           "/" +
           s.crm(std::string("SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM ") + kCrmTable +
                 " t") +
           "/" +
           s.erp("SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM public.account_move t");
  }
  // Everything a run could change: the control store's tables (row counts and content of the
  // records, links, conflicts and outbox), the sides' tables, their capture tables.
  std::string fingerprint() const {
    std::string f;
    for (const char* t : {"golden", "crosswalk", "conflict", "audit", "outbox", "match_key",
                          "duplicate_candidate", "capture_done", "capture_error"})
      f += std::string(t) + "=" + s.control(std::string("SELECT count(*) FROM mdsync.") + t) + " ";
    f += "golden_md5=" + s.control(
                             "SELECT md5(coalesce(string_agg(\"values\"::text || deleted::text,"
                             " ',' ORDER BY id), '')) FROM mdsync.golden");
    f += " crosswalk_md5=" + s.control(
                                 "SELECT md5(coalesce(string_agg(side || row_key || golden_id ||"
                                 " base::text, ',' ORDER BY side, row_key), ''))"
                                 " FROM mdsync.crosswalk");
    f += " outbox_md5=" + s.control(
                              "SELECT md5(coalesce(string_agg(id || status || \"values\"::text,"
                              " ',' ORDER BY id), '')) FROM mdsync.outbox");
    f += " sides=" + side_tables_md5();
    f += " captures=" + s.erp("SELECT count(*) FROM mdsync.capture") + "+" +
         s.crm("SELECT count(*) FROM mdsync.capture");
    return f;
  }

  // The state an initial sync ends in, independent of generated ids: each record as its
  // rows (ERP id, CRM fixture key or the inserted row's name) with its golden values, the
  // open conflicts by kind and row, the sides' rows, and what is still queued.
  std::string state() const {
    std::string out = "records:\n";
    out += join(s.rows(s.control_db(),
                       "SELECT coalesce(string_agg(x.side || ':' || CASE WHEN x.side = 'crm'"
                       " AND x.row_key NOT LIKE '" +
                           std::string(kFixtureKeyPrefix) +
                           "%' THEN 'new' ELSE x.row_key END || '(' || x.state || ')', ' '"
                           " ORDER BY x.side), '-') || ' ' || g.\"values\"::text || ' deleted='"
                           " || g.deleted FROM mdsync.golden g LEFT JOIN mdsync.crosswalk x"
                           " ON x.golden_id = g.id GROUP BY g.id ORDER BY 1"));
    out += "\nconflicts:\n" +
           join(s.rows(s.control_db(),
                       "SELECT kind || ' ' || unit || ' ' || side || ' ' || CASE WHEN side ="
                       " 'crm' AND row_key NOT LIKE '" +
                           std::string(kFixtureKeyPrefix) +
                           "%' THEN 'new' ELSE row_key END || ' ' || status"
                           " FROM mdsync.conflict ORDER BY 1"));
    out += "\nerp:\n" + join(erp_rows()) + "\ncrm:\n" + join(crm_rows());
    out += "\npending writes: " +
           s.control("SELECT count(*) FROM mdsync.outbox WHERE status = 'pending'");
    return out;
  }

  // The records linked to a fixture row on both sides, as "ERP id=CRM key" lines.
  std::string fixture_pairs() const {
    return join(s.rows(s.control_db(),
                       "SELECT e.row_key || '=' || c.row_key FROM mdsync.crosswalk e JOIN"
                       " mdsync.crosswalk c ON c.golden_id = e.golden_id AND c.side = 'crm'"
                       " WHERE e.side = 'erp' AND c.row_key LIKE '" +
                           std::string(kFixtureKeyPrefix) + "%' ORDER BY e.row_key::int"));
  }
  // What fixture_pairs() is when every pair is linked.
  static std::string all_pairs() {
    std::vector<std::string> out;
    for (int i = 1; i <= 20; ++i) out.push_back(std::to_string(i + 1) + "=" + crm_key(i));
    return join(out);
  }
  std::string crm_of(const std::string& column, int n) const {
    return s.crm("SELECT \"" + column + "\" FROM " + kCrmTable + " WHERE id = '" + crm_key(n) +
                 "'");
  }
  std::string erp_of(const std::string& column, int id) const {
    return s.erp("SELECT " + column + " FROM public.res_partner WHERE id = " + std::to_string(id));
  }
  std::string conflicts(const std::string& status = "open") const {
    return s.control(
        "SELECT coalesce(string_agg(kind, ',' ORDER BY kind), '') FROM (SELECT kind || '=' ||"
        " count(*) AS kind FROM mdsync.conflict WHERE status = '" +
        status + "' GROUP BY kind) k");
  }

  Scenario s;
};

// The lines of `after` not in `before`.
std::vector<std::string> changed_rows(const std::vector<std::string>& before,
                                      const std::vector<std::string>& after) {
  std::vector<std::string> out;
  const std::set<std::string> old(before.begin(), before.end());
  for (const auto& r : after)
    if (!old.count(r)) out.push_back(r);
  return out;
}

// The dry run's writes, one line each: side kind row field: old -> new (generated record ids
// left out: a dry run's ids are rolled back).
std::vector<std::string> write_lines(const nlohmann::json& report) {
  std::vector<std::string> out;
  for (const auto& w : report.at("writes")) {
    std::string line = w.at("side").get<std::string>() + " " + w.at("kind").get<std::string>();
    if (w.at("kind") != "insert") line += " " + w.at("row_key").get<std::string>();
    if (w.contains("field")) {
      auto v = [](const nlohmann::json& j) {
        return j.is_null() ? std::string("NULL") : "\"" + j.get<std::string>() + "\"";
      };
      line +=
          " " + w.at("field").get<std::string>() + ": " + v(w.at("old")) + " -> " + v(w.at("new"));
    }
    if (w.at("queued_before").get<bool>()) line += " [queued before]";
    out.push_back(line);
  }
  std::sort(out.begin(), out.end());
  return out;
}

class InitialSyncTest : public ::testing::Test {
 protected:
  static std::string test_name() {
    return ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }
};

// The writes the ERP-first policy makes on the fixtures: only owners' values, each once.
std::vector<std::string> erp_first_writes() {
  std::vector<std::string> w = {
      // The ERP owns names.
      "crm update " + crm_key(13) + " name: \"Massive Dynamic (CRM)\" -> \"Massive Dynamic\"",
      "crm update " + crm_key(14) + " name: \"Oscorp Chemicals (CRM)\" -> \"Oscorp Chemicals\"",
      "crm update " + crm_key(15) + " name: \"Gringotts Finance (CRM)\" -> \"Gringotts Finance\"",
      "crm update " + crm_key(16) + " name: \"Duff Brewing (CRM)\" -> \"Duff Brewing\"",
      // The shared address: the CRM had none; the ERP's (first in priority) wins a difference.
      "crm update " + crm_key(12) + " city: NULL -> \"Antwerp\"",
      "crm update " + crm_key(12) + " country: NULL -> \"BE\"",
      "crm update " + crm_key(19) + " city: \"Leuven\" -> \"Lyon\"",
      // A group is written whole: the country goes with the city (the same value).
      "crm update " + crm_key(19) + " country: \"FR\" -> \"FR\"",
      // The CRM owns phones.
      "erp update 18 phone: \"+32 2 999 0017\" -> \"+32 2 555 0017\"",
      "erp update 19 phone: \"+32 2 999 0018\" -> \"+32 2 555 0018\"",
      "erp update 21 phone: NULL -> \"+32 2 555 0020\"",
  };
  // The ERP-only companies reach the CRM.
  for (int i = 0; i < 10; ++i) w.push_back("crm insert");
  std::sort(w.begin(), w.end());
  return w;
}

// The match key (the web domain) is owned by the CRM, the second side in `priority`: every
// pair is linked by what both rows hold, no website is blanked, the ERP's names reach the CRM,
// and exactly the owners' differing values are written: the dry run lists them (text and
// JSON) and changes nothing, the real run makes exactly those writes and no more, and a
// second run writes nothing.
TEST_F(InitialSyncTest, KeyOwnedByTheSecondSideLinksEveryPairAndWritesOnlyOwnersValues) {
  Pair p(test_name());
  p.start(rules(kErpFirst));
  const std::string untouched = p.fingerprint();
  const std::vector<std::string> erp_before = p.erp_rows(), crm_before = p.crm_rows();

  // The dry run: the plan, every write listed, nothing changed.
  const nlohmann::json plan = p.dry_run_json();
  EXPECT_EQ(p.fingerprint(), untouched);
  EXPECT_EQ(join(write_lines(plan)), join(erp_first_writes()));
  ASSERT_EQ(plan.at("steps").size(), 2u) << plan.dump(2);
  EXPECT_EQ(plan["steps"][0]["side"], "erp");
  EXPECT_EQ(plan["steps"][0]["rows"], 30);
  EXPECT_EQ(plan["steps"][0]["created"], 30);
  EXPECT_EQ(plan["steps"][1]["side"], "crm");
  EXPECT_EQ(plan["steps"][1]["rows"], 30);
  EXPECT_EQ(plan["steps"][1]["linked"], 20);
  EXPECT_EQ(plan["steps"][1]["created"], 0);
  EXPECT_EQ(plan["steps"][1]["possible_duplicates"], 0);
  EXPECT_EQ(plan["steps"][1]["held"], 10);  // the prospects
  for (const auto& side : plan.at("sides")) {
    if (side["side"] == "crm") {
      EXPECT_EQ(side["inserts"], 10);
      EXPECT_EQ(side["updates"], 6);
      EXPECT_EQ(side["fields"], 8);
      EXPECT_EQ(side["overwrites"], 5);
      EXPECT_EQ(side["blanks"], 0);
      EXPECT_EQ(side["non_empty_values"], 148);
    } else {
      EXPECT_EQ(side["inserts"], 0);
      EXPECT_EQ(side["updates"], 3);
      EXPECT_EQ(side["fields"], 3);
      EXPECT_EQ(side["overwrites"], 2);
      EXPECT_EQ(side["blanks"], 0);
      EXPECT_EQ(side["non_empty_values"], 129);
    }
  }

  const std::string text = p.s.mdsync_ok({"sync", "--initial", "--dry-run"});
  EXPECT_EQ(p.fingerprint(), untouched);
  EXPECT_NE(text.find("company on erp: 30 rows: 0 already linked, 0 would link, 30 would "
                      "create, 0 possible duplicates"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("company on crm: 30 rows: 0 already linked, 20 would link, 0 would "
                      "create, 0 possible duplicates, 10 held"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("company.name: 4 (4 overwriting)"), std::string::npos) << text;
  EXPECT_NE(text.find("company.city: 2 (1 overwriting)"), std::string::npos) << text;
  EXPECT_NE(text.find("company.phone: 3 (2 overwriting)"), std::string::npos) << text;
  // Each write is a line: `side entity update row K (record N) field: "old" -> "new"`.
  int listed = 0;
  for (const auto& w : plan.at("writes")) {
    const std::string head =
        "  " + w["side"].get<std::string>() + " company " + w["kind"].get<std::string>() +
        (w["kind"] == "insert" ? std::string(" (record ")
                               : " row " + w["row_key"].get<std::string>() + " (record ");
    std::string tail;
    if (w.contains("field"))
      tail = ") " + w["field"].get<std::string>() + ": " +
             (w["old"].is_null() ? std::string("NULL") : w["old"].dump()) + " -> " +
             (w["new"].is_null() ? std::string("NULL") : w["new"].dump()) + "\n";
    std::size_t at = text.find(head);
    bool found = false;
    for (; at != std::string::npos && !found; at = text.find(head, at + 1))
      found = tail.empty() || text.compare(text.find(')', at), tail.size(), tail) == 0;
    EXPECT_TRUE(found) << head << "..." << tail << " not in\n" << text;
    ++listed;
  }
  EXPECT_EQ(listed, 21);

  // The real run: 5 of the CRM's 148 non-empty values overwritten (3.4%), 2 of the ERP's 129.
  // A configured share of 3% refuses it; 4% lets it run without --accept-overwrites.
  p.patch_config(R"({"initial_sync": {"max_overwrite_share": 0.03}})");
  const nlohmann::json strict = p.dry_run_json();
  EXPECT_EQ(strict["refused_sides"], nlohmann::json::array({"crm"})) << strict["sides"].dump();
  p.patch_config(R"({"initial_sync": {"max_overwrite_share": 0.04}})");
  const std::string out = p.s.mdsync_ok({"sync", "--initial"});
  EXPECT_NE(out.find("summary: 20 linked, 30 created, 0 possible duplicates, 0 already linked, "
                     "10 held; write-backs applied 19, failed 0"),
            std::string::npos)
      << out;
  // Every pair is linked by the CRM-owned domain; the prospects are held, nothing is flagged.
  EXPECT_EQ(p.fixture_pairs(), Pair::all_pairs());
  EXPECT_EQ(p.s.control("SELECT count(*) FROM mdsync.golden"), "30");
  EXPECT_EQ(p.s.control("SELECT count(*) FROM mdsync.crosswalk WHERE side = 'erp'"), "30");
  EXPECT_EQ(p.s.control("SELECT count(*) FROM mdsync.crosswalk WHERE side = 'crm'"), "30");
  EXPECT_EQ(p.conflicts(), "unauthorized_create=10");
  // Contact persons, the own company and the archived company stay out.
  EXPECT_EQ(p.s.control("SELECT count(*) FROM mdsync.crosswalk WHERE side = 'erp' AND"
                        " (row_key::int = 1 OR row_key::int > 31)"),
            "0");
  EXPECT_EQ(p.s.crm(std::string("SELECT count(*) FROM ") + kCrmTable +
                    " WHERE name IN ('Our Own Company NV', 'Jane Doe', 'Archived Old Customer')"),
            "0");

  // Exactly the announced writes: the ERP's phones, the CRM's names and addresses, and the
  // ERP-only companies inserted; not one other row touched, no website blanked.
  EXPECT_EQ(join(changed_rows(erp_before, p.erp_rows())),
            "18|Pied Piper|http://pied.example/|+32 2 555 0017|Munich|3|t|t|<null>\n"
            "19|Bluth Homes|bluth.example|+32 2 555 0018|Paris|4|t|t|<null>\n"
            "21|Prestige Worldwide|https://www.prestige.example|+32 2 555 0020|Boston|5|t|t|"
            "<null>");
  const std::vector<std::string> crm_changed = changed_rows(crm_before, p.crm_rows());
  EXPECT_EQ(crm_changed.size(), 16u) << join(crm_changed);
  for (const char* row : {"Massive Dynamic|https://massive.example|+32 2 555 0013|Ghent|Belgium",
                          "Oscorp Chemicals|www.oscorp.example|+32 2 555 0014|Amsterdam|",
                          "Gringotts Finance|gringotts.example|+32 2 555 0015|Rotterdam|",
                          "Duff Brewing|duff.example|+32 2 555 0016|Berlin|Germany|f",
                          "Wonka Confectionery|wonka.example|+32 2 555 0012|Antwerp|Belgium|",
                          "Dunder Paper|dunder.example|+32 2 555 0019|Lyon|France|f",
                          "new|Nakatomi Trading|<null>|<null>|Rotterdam|Netherlands|f",
                          "new|Zorg Industries|<null>|<null>|Ghent|Belgium|f"})
    EXPECT_NE(join(crm_changed).find(row), std::string::npos) << row << "\n" << join(crm_changed);
  EXPECT_EQ(p.s.erp("SELECT count(*) FROM public.res_partner WHERE website IS NULL AND id"
                    " BETWEEN 2 AND 21"),
            "0");
  EXPECT_EQ(p.s.control("SELECT count(*) FROM mdsync.outbox WHERE status = 'done'"), "19");
  EXPECT_EQ(p.s.control("SELECT count(*) FROM mdsync.outbox WHERE status <> 'done'"), "0");

  // Run again: everything already linked, nothing written anywhere.
  const std::string settled = p.fingerprint();
  const std::string second = p.s.mdsync_ok({"sync", "--initial", "--json"});
  const nlohmann::json r2 = nlohmann::json::parse(second);
  EXPECT_EQ(r2.at("writes").size(), 0u) << second;
  EXPECT_EQ(r2["steps"][0]["already_linked"], 30) << second;
  EXPECT_EQ(r2["steps"][1]["rows"], 40) << second;
  EXPECT_EQ(r2["steps"][1]["already_linked"], 30) << second;
  EXPECT_EQ(r2["steps"][1]["held"], 10) << second;
  EXPECT_EQ(p.fingerprint(), settled);
}

// The other order: the CRM first in `priority`. The same pairs are linked, and no NULL is
// written over a name the ERP owns; the shared address now takes the CRM's value.
TEST_F(InitialSyncTest, CrmFirstInPriorityLinksTheSamePairsAndBlanksNoName) {
  Pair p(test_name());
  p.start(rules(kCrmFirst));
  const nlohmann::json plan = p.dry_run_json();
  std::vector<std::string> expected = {
      "crm update " + crm_key(13) + " name: \"Massive Dynamic (CRM)\" -> \"Massive Dynamic\"",
      "crm update " + crm_key(14) + " name: \"Oscorp Chemicals (CRM)\" -> \"Oscorp Chemicals\"",
      "crm update " + crm_key(15) + " name: \"Gringotts Finance (CRM)\" -> \"Gringotts Finance\"",
      "crm update " + crm_key(16) + " name: \"Duff Brewing (CRM)\" -> \"Duff Brewing\"",
      "crm update " + crm_key(12) + " city: NULL -> \"Antwerp\"",
      "crm update " + crm_key(12) + " country: NULL -> \"BE\"",
      "erp update 20 city: \"Lyon\" -> \"Leuven\"",
      // The address is a group: written whole, its unchanged member included.
      "erp update 20 country: \"FR\" -> \"FR\"",
      "erp update 18 phone: \"+32 2 999 0017\" -> \"+32 2 555 0017\"",
      "erp update 19 phone: \"+32 2 999 0018\" -> \"+32 2 555 0018\"",
      "erp update 21 phone: NULL -> \"+32 2 555 0020\"",
  };
  for (int i = 0; i < 10; ++i) expected.push_back("crm insert");
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(join(write_lines(plan)), join(expected));

  p.s.mdsync_ok({"sync", "--initial"});
  EXPECT_EQ(p.fixture_pairs(), Pair::all_pairs());
  EXPECT_EQ(p.s.control("SELECT count(*) FROM mdsync.golden"), "30");
  EXPECT_EQ(p.conflicts(), "unauthorized_create=10");
  EXPECT_EQ(p.s.crm(std::string("SELECT count(*) FROM ") + kCrmTable + " WHERE name IS NULL"), "0");
  EXPECT_EQ(p.crm_of("name", 13), "Massive Dynamic");
  EXPECT_EQ(p.crm_of("name", 1), "Acme Industries");
  EXPECT_EQ(p.s.crm(std::string("SELECT count(*) FROM ") + kCrmTable), "41");
  EXPECT_EQ(p.s.erp("SELECT count(*) FROM public.res_partner WHERE website IS NULL AND id"
                    " BETWEEN 2 AND 21"),
            "0");
  EXPECT_EQ(p.s.control("SELECT count(*) FROM mdsync.outbox WHERE status <> 'done'"), "0");
}

// Sides that already agree (the fixtures with their differences made equal, the one-sided
// companies archived or soft-deleted): every pair is linked and nothing at all is written.
TEST_F(InitialSyncTest, SidesThatAlreadyAgreeGetNoWrite) {
  Pair p(test_name());
  p.s.crm_exec(std::string("UPDATE ") + kCrmTable +
               " SET name = replace(name, ' (CRM)', ''),"
               " \"addressAddressCity\" = CASE id::text WHEN '" +
               crm_key(12) + "' THEN 'Antwerp' WHEN '" + crm_key(19) +
               "' THEN 'Lyon' ELSE \"addressAddressCity\" END,"
               " \"addressAddressCountry\" = CASE id::text WHEN '" +
               crm_key(12) +
               "' THEN 'Belgium' ELSE \"addressAddressCountry\" END,"
               " \"deletedAt\" = CASE WHEN name IN ('Aperture Labs', 'Black Mesa', 'Buy n Large',"
               " 'Weyland Yutani', 'Abstergo', 'Rekall', 'Omni Consumer', 'Gekko and Co',"
               " 'Sirius Cybernetics', 'Planet Express') THEN now() ELSE \"deletedAt\" END");
  p.s.erp_exec(
      "UPDATE public.res_partner SET phone = '+32 2 555 00' || (id - 1) WHERE id IN (18, 19, 21);"
      "UPDATE public.res_partner SET active = false WHERE id BETWEEN 22 AND 31");
  p.start(rules(kErpFirst));
  const std::string before = p.fingerprint();
  const std::string tables = p.side_tables_md5();
  const nlohmann::json plan = p.dry_run_json();
  EXPECT_EQ(plan.at("writes").size(), 0u) << plan.dump(2);
  EXPECT_EQ(p.fingerprint(), before);

  const nlohmann::json r = nlohmann::json::parse(p.s.mdsync_ok({"sync", "--initial", "--json"}));
  EXPECT_EQ(r.at("writes").size(), 0u) << r.dump(2);
  EXPECT_EQ(r["steps"][1]["linked"], 20) << r.dump(2);
  EXPECT_EQ(r["steps"][1]["possible_duplicates"], 0) << r.dump(2);
  EXPECT_EQ(r["writeback"]["applied"], 0) << r.dump(2);
  EXPECT_EQ(p.s.control("SELECT count(*) FROM mdsync.outbox"), "0");
  EXPECT_EQ(p.side_tables_md5(), tables);
  EXPECT_EQ(p.s.control("SELECT count(*) FROM mdsync.crosswalk"), "40");
  EXPECT_EQ(p.conflicts(), "");
}

// A policy that blanks a big share of one side's values (the CRM owns e-mail addresses and
// holds none, the ERP holds 30) is refused: exit 1, the side and the counts named, the hint
// --accept-overwrites, nothing changed; a configured share below it refuses too, one above it
// lets it through, and --accept-overwrites runs it.
TEST_F(InitialSyncTest, OverwritingABigShareOfASideIsRefusedUnlessAcceptedOrAllowed) {
  Pair p(test_name());
  p.start(rules(kErpFirst, R"(, "email": {"owner": "crm"})"), R"(, "email": "text")",
          R"(, "email": "email")", R"(, "email": "emailsPrimaryEmail")");
  const std::string before = p.fingerprint();
  const RunResult r = p.s.mdsync({"sync", "--initial"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("refused: nothing was changed"), std::string::npos) << r.err;
  // In scope on the ERP: 30 names, cities, countries and e-mails, 20 websites, 19 phones; the
  // run would blank the 30 e-mails and overwrite 2 phones.
  EXPECT_NE(r.err.find("erp: 32 of its 159 non-empty values would be overwritten (30 of them "
                       "blanked), more than initial_sync.max_overwrite_share = 0.1"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("crm:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--accept-overwrites"), std::string::npos) << r.err;
  EXPECT_EQ(p.fingerprint(), before);

  // The configured share: 0.2 still refuses (32 of 159), 0.25 would not.
  p.patch_config(R"({"initial_sync": {"max_overwrite_share": 0.2}})");
  const RunResult below = p.s.mdsync({"sync", "--initial"});
  EXPECT_EQ(below.exit_code, 1) << below.out << below.err;
  EXPECT_NE(below.err.find("more than initial_sync.max_overwrite_share = 0.2"), std::string::npos)
      << below.err;
  EXPECT_EQ(p.fingerprint(), before);
  p.patch_config(R"({"initial_sync": {"max_overwrite_share": 0.25}})");
  const nlohmann::json allowed = p.dry_run_json();
  EXPECT_EQ(allowed["refused_sides"], nlohmann::json::array()) << allowed["sides"].dump();
  p.patch_config(R"({"initial_sync": {"max_overwrite_share": 0.2}})");
  const nlohmann::json refused = p.dry_run_json();
  EXPECT_EQ(refused["refused_sides"], nlohmann::json::array({"erp"})) << refused["sides"].dump();
  EXPECT_EQ(p.fingerprint(), before);

  const std::string out = p.s.mdsync_ok({"sync", "--initial", "--accept-overwrites"});
  EXPECT_NE(out.find("write-backs applied 46, failed 0"), std::string::npos) << out;
  EXPECT_EQ(p.s.erp("SELECT count(*) FROM public.res_partner WHERE email IS NOT NULL"
                    " AND is_company AND active AND id <> 1"),
            "0");
  EXPECT_EQ(p.erp_of("email", 1), "info@our-company.example");  // out of scope
  EXPECT_EQ(p.erp_of("email", 33), "jane@example.org");
}

// Killed (kill -9) at each point of an initial sync and run again: the end state equals an
// uninterrupted run's on the same fixtures, and another run changes nothing. One scenario is
// killed four times in a row, each rerun meeting what the kill before left: before the control
// commit (nothing changed), right after it (the write-backs queued, none applied), in the middle
// of a side's write-back (the side's transaction lost), right after a side committed its
// write-backs (the control store not told yet); the fifth run completes.
TEST_F(InitialSyncTest, KilledAtAnyPointAndRunAgainEndsAsAnUninterruptedRun) {
  std::string reference;
  {
    Pair p(test_name());
    p.start(rules(kErpFirst));
    p.s.mdsync_ok({"sync", "--initial", "--accept-overwrites"});
    reference = p.state();
  }
  EXPECT_NE(reference.find("pending writes: 0"), std::string::npos) << reference;
  Pair p(test_name());
  p.start(rules(kErpFirst));
  const std::string untouched = p.fingerprint();
  const std::string tables = p.side_tables_md5();
  auto killed_at = [&](const char* point, const char* after) {
    ::setenv("MDSYNC_CRASH_AT", point, 1);
    ::setenv("MDSYNC_CRASH_AFTER", after, 1);
    const RunResult r = p.s.mdsync({"sync", "--initial", "--accept-overwrites"});
    ::unsetenv("MDSYNC_CRASH_AT");
    ::unsetenv("MDSYNC_CRASH_AFTER");
    EXPECT_EQ(r.exit_code, 128 + SIGKILL) << point << "\n" << r.out << r.err;
  };
  auto pending = [&] {
    return p.s.control("SELECT count(*) FROM mdsync.outbox WHERE status = 'pending'");
  };
  killed_at("initial.before_commit", "1");
  EXPECT_EQ(p.fingerprint(), untouched);
  killed_at("initial.after_commit", "1");
  EXPECT_EQ(p.s.control("SELECT count(*) FROM mdsync.golden"), "30");
  EXPECT_EQ(pending(), "19");
  EXPECT_EQ(p.side_tables_md5(), tables);
  killed_at("writeback.mid_side", "4");
  EXPECT_EQ(p.s.control("SELECT count(*) FROM mdsync.golden"), "30");
  EXPECT_EQ(pending(), "19");
  EXPECT_EQ(p.side_tables_md5(), tables);
  killed_at("writeback.after_side_commit", "1");
  EXPECT_EQ(p.s.control("SELECT count(*) FROM mdsync.golden"), "30");
  EXPECT_EQ(pending(), "19");  // a side has them, the control store does not know yet
  EXPECT_NE(p.side_tables_md5(), tables);

  p.s.mdsync_ok({"sync", "--initial", "--accept-overwrites"});
  EXPECT_EQ(p.state(), reference);
  const std::string settled = p.fingerprint();
  const nlohmann::json again =
      nlohmann::json::parse(p.s.mdsync_ok({"sync", "--initial", "--json"}));
  EXPECT_EQ(again.at("writes").size(), 0u) << again.dump(2);
  EXPECT_EQ(p.fingerprint(), settled);
}

// Changes made after `init` and before `sync --initial` (captures pending): the rows are taken
// as they are now, a row gone is handled, and nothing is replayed afterwards; the end state
// equals that of an initial sync over the same data made before `init`. Then the same after a
// completed initial sync: edits, an ERP archive (the delete owner) and a CRM soft delete of
// linked rows, pending when sync --initial runs again.
TEST_F(InitialSyncTest, ChangesPendingBeforeTheInitialSyncAreTakenFromTheCurrentRows) {
  const std::string edits_erp =
      "UPDATE public.res_partner SET name = 'Acme Industries NV' WHERE id = 2;"
      "UPDATE public.res_partner SET name = 'Initech Europe' WHERE id = 4;"
      "UPDATE public.res_partner SET name = 'Initech Europe BV' WHERE id = 4;"
      "UPDATE public.res_partner SET city = 'Utrecht' WHERE id = 5;"
      "DELETE FROM public.res_partner WHERE id = 31;";
  const std::string edits_crm = std::string("UPDATE ") + kCrmTable +
                                " SET \"phonesPrimaryPhoneNumber\" = '+32 2 777 0002'" +
                                " WHERE id = '" + crm_key(2) + "';" + "UPDATE " + kCrmTable +
                                " SET \"deletedAt\" = now() WHERE id = '" + crm_key(110) + "';" +
                                "DELETE FROM " + kCrmTable + " WHERE id = '" + crm_key(109) + "';";
  std::string expected;
  {
    Pair p(test_name());
    p.s.erp_exec(edits_erp);
    p.s.crm_exec(edits_crm);
    p.start(rules(kErpFirst));
    p.s.mdsync_ok({"sync", "--initial"});
    expected = p.state();
  }
  Pair p(test_name());
  p.start(rules(kErpFirst));
  p.s.erp_exec(edits_erp);
  p.s.crm_exec(edits_crm);
  ASSERT_NE(p.s.erp("SELECT count(*) FROM mdsync.capture"), "0");
  ASSERT_NE(p.s.crm("SELECT count(*) FROM mdsync.capture"), "0");
  const nlohmann::json r = nlohmann::json::parse(p.s.mdsync_ok({"sync", "--initial", "--json"}));
  EXPECT_EQ(r["captures_applied"].get<int>() + r["captures_subsumed"].get<int>(), 8) << r.dump(2);
  EXPECT_EQ(p.state(), expected);
  EXPECT_EQ(p.crm_of("name", 1), "Acme Industries NV");
  EXPECT_EQ(p.crm_of("name", 3), "Initech Europe BV");
  EXPECT_EQ(p.crm_of("addressAddressCity", 4), "Utrecht");
  EXPECT_EQ(p.erp_of("phone", 3), "+32 2 777 0002");
  EXPECT_EQ(
      p.s.crm(std::string("SELECT count(*) FROM ") + kCrmTable + " WHERE name = 'Zorg Industries'"),
      "0");
  EXPECT_EQ(p.s.erp("SELECT count(*) FROM mdsync.capture"), "0");
  EXPECT_EQ(p.s.crm("SELECT count(*) FROM mdsync.capture"), "0");
  // Nothing is left to replay.
  std::string settled = p.fingerprint();
  p.s.mdsync_ok({"run", "--once"});
  EXPECT_EQ(p.fingerprint(), settled);

  // Linked rows now: an ERP edit, the ERP archiving a company (its delete counts: the CRM row
  // is soft-deleted), the CRM soft-deleting a linked company (not the delete owner: restored).
  p.s.erp_exec(
      "UPDATE public.res_partner SET name = 'Hooli XYZ' WHERE id = 8;"
      "UPDATE public.res_partner SET active = false WHERE id = 11;");
  p.s.crm_exec(std::string("UPDATE ") + kCrmTable + " SET \"deletedAt\" = now() WHERE id = '" +
               crm_key(9) + "';" + "UPDATE " + kCrmTable +
               " SET \"addressAddressCity\" = 'Cambridge' WHERE id = '" + crm_key(9) + "';");
  ASSERT_NE(p.s.erp("SELECT count(*) FROM mdsync.capture"), "0");
  p.s.mdsync_ok({"sync", "--initial"});
  EXPECT_EQ(p.crm_of("name", 7), "Hooli XYZ");
  EXPECT_NE(p.crm_of("deletedAt", 10), "<null>");  // archived on the ERP
  EXPECT_EQ(p.erp_of("active", 11), "f");
  EXPECT_EQ(p.erp_of("active", 10), "t");  // the CRM's delete does not count
  EXPECT_EQ(p.s.crm(std::string("SELECT count(*) FROM ") + kCrmTable +
                    " WHERE name = 'Soylent Foods' AND \"deletedAt\" IS NULL"),
            "1");
  settled = p.fingerprint();
  p.s.mdsync_ok({"run", "--once"});
  EXPECT_EQ(p.fingerprint(), settled);
}

}  // namespace
}  // namespace mdsync::e2e
