// The config's mapping options: each one loads into the mapping types, every existing config
// stays valid, and every contradiction is an error naming file, line and column. Positions
// are marked in the test texts with '§', so a test says where its error is, not a number.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "config_errors.hpp"
#include "mdsync/config/config.hpp"
#include "mdsync/mapping/field_transform.hpp"

namespace mdsync::config {
namespace {

using core::FieldType;

// A text with '§' marks removed, and where each mark stood ("line:column", code points).
struct Marked {
  std::string text;
  std::vector<std::string> marks;
};

Marked mark(const std::string& with_marks) {
  static const std::string kMark = "\u00A7";
  Marked out;
  int line = 1, column = 1;
  for (std::size_t i = 0; i < with_marks.size();) {
    if (with_marks.compare(i, kMark.size(), kMark) == 0) {
      out.marks.push_back(std::to_string(line) + ":" + std::to_string(column));
      i += kMark.size();
      continue;
    }
    const char c = with_marks[i++];
    out.text += c;
    if (c == '\n') {
      ++line;
      column = 1;
    } else if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) {
      ++column;
    }
  }
  return out;
}

const std::vector<std::pair<std::string, std::string>> kFields = {
    {"name", "text"},        {"website", "text"}, {"credit_limit", "numeric"},
    {"country", "text"},     {"vat", "text"},     {"active", "boolean"},
    {"customer_no", "text"}, {"qty", "integer"},  {"updated", "timestamptz"},
    {"meta", "json"}};

// One side's mapping: plain columns named like the fields unless `columns` says otherwise,
// then `options` (more keys of the side's mapping, with a trailing comma). The key is "id"
// unless `options` has one.
std::string side(const std::string& options, const std::map<std::string, std::string>& columns) {
  const bool own_key = options.find("\"key\"") != std::string::npos;
  std::string out = std::string("{ \"table\": \"t\",") + (own_key ? "" : " \"key\": \"id\",") +
                    "\n" + options + "\n  \"columns\": {\n";
  for (std::size_t i = 0; i < kFields.size(); ++i) {
    const std::string& f = kFields[i].first;
    const auto it = columns.find(f);
    out += "    \"" + f + "\": " + (it != columns.end() ? it->second : "\"" + f + "\"") +
           (i + 1 < kFields.size() ? ",\n" : "\n");
  }
  return out + "  } }";
}

// A config whose crm side is `crm`, with `entity_extra` (more keys of the entity, with a
// trailing comma) and `side_extra` (more keys of sides.crm, with a leading comma).
std::string config(const std::string& crm, const std::string& entity_extra = "",
                   const std::string& side_extra = "") {
  std::string fields;
  for (const auto& [f, t] : kFields)
    fields += std::string(fields.empty() ? "" : ", ") + "\"" + f + "\": \"" + t + "\"";
  return "{\n\"control\": \"dbname=control\",\n"
         "\"sides\": {\"erp\": {\"dsn\": \"dbname=erp\"}, \"crm\": {\"dsn\": \"dbname=crm\"" +
         side_extra + "}},\n\"entities\": {\"customer\": {\n\"fields\": {" + fields + "},\n" +
         entity_extra + "\n\"sides\": {\n\"erp\": " + side("", {}) + ",\n\"crm\": " + crm +
         "\n}}}}\n";
}

const SideMapping& crm_of(const Config& cfg) {
  return *cfg.entity("customer")->mapping_for("crm");
}

TEST(ConfigMapping, DemoConfigStillLoadsAsPlainMappings) {
  setenv("MDSYNC_DEMO_PGHOST", "/tmp", 1);
  setenv("MDSYNC_DEMO_PGPORT", "5432", 1);
  const Config cfg = load_config(std::string(MDSYNC_SOURCE_DIR) + "/tools/demo_data/mdsync.json");
  const EntityConfig& customer = *cfg.entity("customer");
  EXPECT_TRUE(customer.match.empty());
  for (const SideMapping& m : customer.mappings) {
    EXPECT_TRUE(m.features().empty()) << m.side;
    EXPECT_EQ(m.key_columns, std::vector<std::string>{m.key_column});
    ASSERT_EQ(m.fields.size(), m.columns.size());
    for (std::size_t i = 0; i < m.fields.size(); ++i) {
      EXPECT_TRUE(m.fields[i].plain());
      EXPECT_EQ(m.fields[i].field, m.columns[i].first);
      EXPECT_EQ(m.fields[i].column, m.columns[i].second);
    }
    EXPECT_TRUE(m.timezone.empty());
    EXPECT_TRUE(m.scope.empty());
    EXPECT_FALSE(m.soft_delete);
    EXPECT_TRUE(m.delete_guards.empty());
  }
  EXPECT_EQ(*customer.mapping_for("crm")->column_of("name"), "accountName");
}

TEST(ConfigMapping, EveryOptionLoads) {
  const std::string crm = R"({ "schema": "CRM", "table": "Company", "key": ["workspaceId", "id"],
    "timezone": "Europe/Brussels",
    "scope": { "where": [ {"column": "isCompany", "eq": true}, {"column": "id", "ne": 1},
                          {"column": "stage", "in": ["lead", "customer", null]},
                          {"column": "parentId", "eq": null},
                          {"column": "score", "not_in": [0, -1.5]} ] },
    "soft_delete": { "column": "deletedAt", "kind": "timestamp" },
    "delete_guard": { "table": "invoice", "on": {"companyId": "id"},
                      "where": [{"column": "state", "in": ["open", "partial"]}],
                      "reason": "the company has unpaid invoices" },
    "columns": {
      "name": "accountName",
      "website": { "column": "domainName", "normalize": ["trim", "url_host"] },
      "credit_limit": { "column": "creditLimitMicros", "scale": 6 },
      "country": { "column": "country_id",
                   "lookup": { "table": "res_country", "key": "id", "value": "code" } },
      "vat": { "column": "company_data", "json_path": ["tax", "vat"] },
      "active": { "column": "status", "map": {"true": "ACTIVE", "false": "INACTIVE"} },
      "customer_no": { "column": "company_data", "json_path": ["customer_no"] },
      "qty": "qty",
      "updated": "updatedAt",
      "meta": { "column": "company_data2" } } })";
  const std::string match = R"("match": {
    "keys": [ {"field": "website", "normalize": ["url_host"]}, {"field": "customer_no"},
              {"fields": ["country", "vat"], "normalize": ["trim"]} ],
    "fuzzy": [ {"field": "name", "normalize": ["company_name"]} ] },)";
  const Config cfg = parse_config(config(crm, match), "mdsync.json");
  const SideMapping& m = crm_of(cfg);
  EXPECT_EQ(m.schema, "CRM");
  EXPECT_EQ(m.key_columns, (std::vector<std::string>{"workspaceId", "id"}));
  EXPECT_EQ(m.key_column, "") << "a composite key has no single key column";
  EXPECT_EQ(m.timezone, "Europe/Brussels");

  ASSERT_EQ(m.scope.size(), 5u);
  EXPECT_EQ(mapping::describe(m.scope[0]), "isCompany = true");
  EXPECT_EQ(mapping::describe(m.scope[1]), "id <> 1");
  EXPECT_EQ(mapping::describe(m.scope[2]), "stage in ('lead', 'customer', null)");
  EXPECT_EQ(mapping::describe(m.scope[3]), "parentId = null");
  EXPECT_EQ(mapping::describe(m.scope[4]), "score not in (0, -1.5)");
  EXPECT_EQ(m.scope[0].values[0].kind, mapping::Literal::Kind::kBoolean);
  EXPECT_EQ(m.scope[1].values[0].kind, mapping::Literal::Kind::kNumber);
  EXPECT_EQ(m.scope[3].values[0].kind, mapping::Literal::Kind::kNull);

  ASSERT_TRUE(m.soft_delete);
  EXPECT_EQ(m.soft_delete->column, "deletedAt");
  EXPECT_EQ(m.soft_delete->kind, mapping::SoftDeleteKind::kTimestamp);
  ASSERT_EQ(m.delete_guards.size(), 1u);
  EXPECT_EQ(m.delete_guards[0].table, "invoice");
  EXPECT_EQ(m.delete_guards[0].on,
            (std::vector<std::pair<std::string, std::string>>{{"companyId", "id"}}));
  EXPECT_EQ(mapping::describe(m.delete_guards[0].where[0]), "state in ('open', 'partial')");
  EXPECT_EQ(m.delete_guards[0].reason, "the company has unpaid invoices");

  ASSERT_EQ(m.fields.size(), kFields.size());
  EXPECT_TRUE(m.field_mapping("name")->plain());
  EXPECT_EQ(m.field_mapping("website")->normalize,
            (std::vector<mapping::Normalizer>{mapping::Normalizer::kTrim,
                                              mapping::Normalizer::kUrlHost}));
  EXPECT_EQ(m.field_mapping("credit_limit")->scale, 6);
  const auto& lookup = m.field_mapping("country")->lookup;
  ASSERT_TRUE(lookup);
  EXPECT_EQ(lookup->schema, "");
  EXPECT_EQ(lookup->table, "res_country");
  EXPECT_EQ(lookup->key, "id");
  EXPECT_EQ(lookup->value, "code");
  EXPECT_EQ(m.field_mapping("vat")->json_path, (std::vector<std::string>{"tax", "vat"}));
  EXPECT_EQ(m.field_mapping("active")->value_map.size(), 2u);
  EXPECT_TRUE(m.field_mapping("meta")->plain());
  EXPECT_EQ(*m.column_of("vat"), "company_data");
  EXPECT_EQ(*m.column_of("country"), "country_id");

  EXPECT_EQ(m.features(), (std::vector<std::string>{
                              "composite key", "timezone", "scope", "soft_delete", "delete_guard",
                              "website: normalize", "credit_limit: scale", "country: lookup",
                              "vat: json_path", "active: map", "customer_no: json_path"}));

  const mapping::MatchSpec& spec = cfg.entity("customer")->match;
  ASSERT_EQ(spec.keys.size(), 3u);
  EXPECT_EQ(spec.keys[0].name(), "website");
  EXPECT_EQ(spec.keys[2].name(), "country+vat");
  ASSERT_EQ(spec.fuzzy.size(), 1u);
  EXPECT_EQ(spec.fuzzy[0].normalize,
            std::vector<mapping::Normalizer>{mapping::Normalizer::kCompanyName});
  EXPECT_EQ(spec.fuzzy[0].threshold_permille, mapping::kDefaultFuzzyThresholdPermille);

  // The loaded mapping builds its transforms.
  const mapping::FieldTransform micros(FieldType::kNumeric, *m.field_mapping("credit_limit"));
  EXPECT_EQ(*micros.to_side(std::string("12.5")).value(), "12500000");
}

// A fuzzy key's threshold loads in thousandths, exactly as written (no float on the way).
TEST(ConfigMapping, FuzzyThresholdLoadsExactly) {
  for (const auto& [text, permille] : std::vector<std::pair<std::string, int>>{
           {"0.85", 850}, {"0.9", 900}, {"1", 1000}, {"1.0", 1000}, {"0.001", 1}, {"0.862", 862}}) {
    const Config cfg =
        parse_config(config(side("", {}), R"("match": {"fuzzy": [{"field": "name", "threshold": )" +
                                              text + "}]},"),
                     "mdsync.json");
    EXPECT_EQ(cfg.entity("customer")->match.fuzzy.at(0).threshold_permille, permille) << text;
  }
}

// A lookup into a jsonb column of translations, one keyed within another field, and a
// write template load into the mapping.
TEST(ConfigMapping, TranslatedLookupWithinLookupAndWriteAsLoad) {
  const Config cfg = parse_config(
      config(side("", {{"country", R"({"column": "country_id", "lookup": {"table": "res_country",
                          "key": "id", "value": "name", "value_path": ["en_US"]}})"},
                       {"vat", R"({"column": "state_id", "lookup": {"schema": "ref",
                          "table": "res_country_state", "key": "id", "value": "code",
                          "within": {"country_id": "country"}}})"},
                       {"website", R"({"column": "domainName", "normalize": ["url_host"],
                          "write_as": "https://{value}"})"}})),
      "mdsync.json");
  const SideMapping& m = crm_of(cfg);
  const auto& country = m.field_mapping("country")->lookup;
  ASSERT_TRUE(country);
  EXPECT_EQ(country->value, "name");
  EXPECT_EQ(country->value_path, std::vector<std::string>{"en_US"});
  EXPECT_TRUE(country->within.empty());
  const auto& state = m.field_mapping("vat")->lookup;
  ASSERT_TRUE(state);
  EXPECT_EQ(state->schema, "ref");
  EXPECT_TRUE(state->value_path.empty());
  EXPECT_EQ(state->within,
            (std::vector<std::pair<std::string, std::string>>{{"country_id", "country"}}));
  EXPECT_EQ(m.field_mapping("website")->write_as, "https://{value}");
  const mapping::FieldTransform host(FieldType::kText, *m.field_mapping("website"));
  EXPECT_EQ(*host.to_side(std::string("WWW.Example.com")).value(), "https://example.com");
}

// The complete example of engine/mapping/MAPPING.md loads, so the reference cannot drift
// from the loader.
TEST(ConfigMapping, ReferenceExampleLoads) {
  std::ifstream in(std::string(MDSYNC_SOURCE_DIR) + "/engine/mapping/MAPPING.md");
  ASSERT_TRUE(in);
  std::stringstream doc;
  doc << in.rdbuf();
  const std::string text = doc.str();
  const std::size_t section = text.find("## A complete example");
  ASSERT_NE(section, std::string::npos);
  const std::size_t begin = text.find("```json\n", section);
  const std::size_t end = text.find("```", begin + 8);
  ASSERT_NE(end, std::string::npos);
  const std::string entity = text.substr(begin + 8, end - begin - 8);
  const Config cfg = parse_config(
      "{\"control\": \"dbname=c\", \"sides\": {\"erp\": {\"dsn\": \"dbname=e\"}, "
      "\"crm\": {\"dsn\": \"dbname=m\"}},\n\"entities\": {\n" +
          entity + "}}",
      "MAPPING.md");
  const EntityConfig& customer = *cfg.entity("customer");
  EXPECT_EQ(customer.match.keys.size(), 2u);
  EXPECT_EQ(customer.mapping_for("erp")->features(),
            (std::vector<std::string>{"timezone", "scope", "soft_delete", "delete_guard",
                                      "country: lookup", "vat: json_path", "segment: map"}));
  EXPECT_EQ(customer.mapping_for("crm")->features(),
            (std::vector<std::string>{"soft_delete", "website: normalize", "credit_limit: scale"}));
}

TEST(ConfigMapping, SideTimezoneIsTheDefaultOfItsMappings) {
  const Config cfg = parse_config(
      config(side("\"timezone\": \"UTC\",", {}), "", ", \"timezone\": \"America/New_York\""),
      "mdsync.json");
  EXPECT_EQ(cfg.side("crm")->timezone, "America/New_York");
  EXPECT_EQ(crm_of(cfg).timezone, "UTC");
  const Config inherit =
      parse_config(config(side("", {}), "", ", \"timezone\": \"America/New_York\""), "mdsync.json");
  EXPECT_EQ(crm_of(inherit).timezone, "America/New_York");
}

TEST(ConfigMapping, FlagSoftDeleteAndGuardList) {
  const Config cfg = parse_config(
      config(side(R"("soft_delete": {"column": "is_deleted", "kind": "flag", "deleted_when": true},
        "delete_guard": [{"schema": "acc", "table": "move", "on": {"partner_id": "id"}},
                         {"table": "order", "on": {"partner_id": "id", "company_id": "company_id"}}],)",
                  {})),
      "mdsync.json");
  const SideMapping& m = crm_of(cfg);
  EXPECT_EQ(m.soft_delete->kind, mapping::SoftDeleteKind::kFlag);
  EXPECT_TRUE(m.soft_delete->deleted_value);
  ASSERT_EQ(m.delete_guards.size(), 2u);
  EXPECT_EQ(m.delete_guards[0].schema, "acc");
  EXPECT_EQ(m.delete_guards[0].reason, "rows in move refer to it");
  EXPECT_EQ(m.delete_guards[1].on.size(), 2u);
  const Config active =
      parse_config(config(side(R"("soft_delete": {"column": "is_active", "kind": "flag"},)", {})),
                   "mdsync.json");
  EXPECT_FALSE(crm_of(active).soft_delete->deleted_value);
}

// One contradiction in the crm side (or the entity's match, or the side), one error, where
// the mark is.
struct ErrorCase {
  const char* name;
  std::string options;                         // more keys of sides.crm's mapping
  std::map<std::string, std::string> columns;  // overridden columns of sides.crm
  std::string message;
  std::string entity_extra = "";
  std::string side_extra = "";
};

void PrintTo(const ErrorCase& c, std::ostream* os) {
  *os << c.name;
}

class ConfigMappingErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ConfigMappingErrors, NamesFileLineAndColumn) {
  const ErrorCase& c = GetParam();
  const Marked m = mark(config(side(c.options, c.columns), c.entity_extra, c.side_extra));
  ASSERT_EQ(m.marks.size(), 1u) << "a case marks exactly one position";
  EXPECT_EQ(errors_of(m.text),
            std::vector<std::string>{"mdsync.json:" + m.marks[0] + ": " + c.message})
      << m.text;
}

const std::string kCol = "entities.customer.sides.crm.columns.";

INSTANTIATE_TEST_SUITE_P(
    All, ConfigMappingErrors,
    ::testing::Values(
        ErrorCase{"ScaleOnText",
                  "",
                  {{"name", R"({"column": "n", "scale": §6})"}},
                  kCol + "name: scale applies to numeric and integer fields; name is text"},
        ErrorCase{"ScaleOnBoolean",
                  "",
                  {{"active", R"({"column": "a", "scale": §2})"}},
                  kCol + "active: scale applies to numeric and integer fields; active is boolean"},
        ErrorCase{"ScaleNotWhole",
                  "",
                  {{"credit_limit", R"({"column": "c", "scale": §2.5})"}},
                  kCol + "credit_limit.scale must be a whole number from -18 to 18 (6: the side "
                         "stores millionths)"},
        ErrorCase{"ScaleTooLarge",
                  "",
                  {{"credit_limit", R"({"column": "c", "scale": §60})"}},
                  kCol + "credit_limit.scale must be a whole number from -18 to 18 (6: the side "
                         "stores millionths)"},
        ErrorCase{"ScaleAndMap",
                  "",
                  {{"credit_limit", R"({"column": "c", "map": {"1": "one"}, "scale": §2})"}},
                  kCol + "credit_limit: a field cannot have both a value map and a scale"},
        ErrorCase{"MapNotOneToOne",
                  "",
                  {{"country", R"({"column": "c", "map": §{"BE": "Belgium", "BX": "Belgium"}})"}},
                  kCol + "country: value map is not one-to-one: 'BE' and 'BX' both become side "
                         "value 'Belgium', which could not be read back"},
        ErrorCase{"MapNotOneToOneAfterNormalizers",
                  "",
                  {{"country", R"({"column": "c", "normalize": ["lower"],
                                   "map": §{"BE": "Belgium", "BX": "BELGIUM"}})"}},
                  kCol + "country: value map is not one-to-one: 'BE' and 'BX' both become side "
                         "value 'belgium', which could not be read back"},
        ErrorCase{"MapKeyNotOfTheType",
                  "",
                  {{"active", R"({"column": "a", "map": §{"yes": "Y"}})"}},
                  kCol + "active: value map: 'yes' is not a boolean value"},
        ErrorCase{"MapValueNotAValue",
                  "",
                  {{"country", R"({"column": "c", "map": {"BE": §["Belgium"]}})"}},
                  kCol + "country.map.BE must be the side's value (a string, number or boolean), "
                         "not array"},
        ErrorCase{"MapEmpty",
                  "",
                  {{"country", R"({"column": "c", "map": §{}})"}},
                  kCol + "country.map must be an object of canonical value -> side value, such "
                         "as {\"BE\": \"Belgium\"}"},
        ErrorCase{"MapOnJson",
                  "",
                  {{"meta", R"({"column": "m", "map": §{"{}": "none"}})"}},
                  kCol + "meta: a value map does not apply to json fields"},
        ErrorCase{"JsonPathMappedTwice",
                  "",
                  {{"vat", R"({"column": "data", "json_path": ["vat"]})"},
                   {"customer_no", R"({"column": §"data", "json_path": ["vat"]})"}},
                  "json_path [\"vat\"] of column 'data' is mapped twice (fields vat and "
                  "customer_no)"},
        ErrorCase{"JsonPathsOverlap",
                  "",
                  {{"vat", R"({"column": "data", "json_path": ["tax"]})"},
                   {"customer_no", R"({"column": §"data", "json_path": ["tax", "no"]})"}},
                  "json_path [\"tax\", \"no\"] of column 'data' overlaps field vat's [\"tax\"]: "
                  "writing one would overwrite the other"},
        ErrorCase{
            "JsonColumnAlsoWhole",
            "",
            {{"vat", R"({"column": "data", "json_path": ["vat"]})"}, {"customer_no", R"(§"data")"}},
            "column 'data' holds field vat at a json_path, so it cannot also hold field "
            "customer_no as a whole"},
        ErrorCase{"JsonPathEmpty",
                  "",
                  {{"vat", R"({"column": "data", "json_path": §[]})"}},
                  kCol + "vat.json_path must list the keys leading to the value, such as "
                         "[\"vat\"]"},
        ErrorCase{"PlainColumnTwice",
                  "",
                  {{"customer_no", R"({"column": §"name"})"}},
                  "column 'name' is mapped twice"},
        ErrorCase{"UnknownNormalizer",
                  "",
                  {{"website", R"({"column": "w", "normalize": ["trim", §"upper"]})"}},
                  "unknown normalizer 'upper' in " + kCol +
                      "website.normalize (known: trim, lower, nfc, url_host, company_name)"},
        ErrorCase{"NormalizerOnNumber",
                  "",
                  {{"credit_limit", R"({"column": "c", "normalize": §["trim"]})"}},
                  kCol + "credit_limit: normalizers apply to text fields; credit_limit is numeric"},
        ErrorCase{"UnknownColumnOption",
                  "",
                  {{"credit_limit", R"({"column": "c", §"scael": 6})"}},
                  "unknown key 'scael' in " + kCol +
                      "credit_limit (allowed: column, json_path, lookup, map, scale, normalize, "
                      "write_as)"},
        ErrorCase{"ColumnObjectWithoutColumn",
                  "",
                  {{"credit_limit", R"(§{"scale": 6})"}},
                  kCol + "credit_limit needs \"column\""},
        ErrorCase{"ColumnNameTooLong",
                  "",
                  {{"name", "§\"" + std::string(64, 'x') + "\""}},
                  kCol + "name: '" + std::string(64, 'x') +
                      "' is longer than 63 bytes, which PostgreSQL would cut short"},
        ErrorCase{"ColumnNameWithNul",
                  "",
                  {{"name", R"({"column": §"a\u0000b"})"}},
                  kCol + "name.column: a name cannot hold a NUL character"},
        ErrorCase{"LookupAndJsonPath",
                  "",
                  {{"country", R"({"column": "data", "json_path": ["c"],
                                   "lookup": §{"table": "c", "key": "id", "value": "code"}})"}},
                  kCol + "country: a lookup reads a foreign-key column, so it cannot also have "
                         "a json_path"},
        ErrorCase{
            "LookupWithoutValue",
            "",
            {{"country", R"({"column": "country_id", "lookup": §{"table": "c", "key": "id"}})"}},
            kCol + "country.lookup needs \"value\""},
        ErrorCase{"SoftDeleteColumnIsAField",
                  R"("soft_delete": {"column": §"active", "kind": "flag"},)",
                  {},
                  "soft_delete column 'active' is also mapped as field 'active': a column either "
                  "marks deletion or holds a field"},
        ErrorCase{"SoftDeleteColumnIsAJsonColumn",
                  R"("soft_delete": {"column": §"data", "kind": "timestamp"},)",
                  {{"vat", R"({"column": "data", "json_path": ["vat"]})"}},
                  "soft_delete column 'data' is also mapped as field 'vat': a column either "
                  "marks deletion or holds a field"},
        ErrorCase{"SoftDeleteColumnIsTheKey",
                  R"("soft_delete": {"column": §"id", "kind": "timestamp"},)",
                  {},
                  "soft_delete column 'id' is the row key"},
        ErrorCase{"SoftDeleteUnknownKind",
                  R"("soft_delete": {"column": "gone", "kind": §"boolean"},)",
                  {},
                  "entities.customer.sides.crm.soft_delete.kind: 'boolean' is not a kind "
                  "(timestamp: set when deleted; flag: a boolean column)"},
        ErrorCase{
            "SoftDeleteDeletedWhenOnTimestamp",
            R"("soft_delete": {"column": "gone", "kind": "timestamp", "deleted_when": §true},)",
            {},
            "entities.customer.sides.crm.soft_delete.deleted_when applies to a flag; a "
            "timestamp marks deletion by being set"},
        ErrorCase{"ScopeAsSqlText",
                  R"("scope": {"where": §"is_company = true; DROP TABLE t"},)",
                  {},
                  "entities.customer.sides.crm.scope.where must list predicates such as "
                  "[{\"column\": \"is_company\", \"eq\": true}]"},
        ErrorCase{"ScopePredicateWithTwoOperators",
                  R"("scope": {"where": [§{"column": "a", "eq": 1, "ne": 2}]},)",
                  {},
                  "entities.customer.sides.crm.scope.where[0] needs exactly one of eq, ne, in, "
                  "not_in, as in {\"column\": \"is_company\", \"eq\": true}"},
        ErrorCase{"ScopePredicateWithSqlKey",
                  R"("scope": {"where": [{"column": "a", "eq": 1, §"sql": "1=1"}]},)",
                  {},
                  "unknown key 'sql' in entities.customer.sides.crm.scope.where[0] (allowed: "
                  "column, eq, ne, in, not_in)"},
        ErrorCase{"ScopeLiteralObject",
                  R"x("scope": {"where": [{"column": "a", "eq": §{"raw": "now()"}}]},)x",
                  {},
                  "entities.customer.sides.crm.scope.where[0].eq must be a string, a number, "
                  "true, false or null, not object"},
        ErrorCase{"ScopeExponentNumber",
                  R"("scope": {"where": [{"column": "a", "in": [1, §1e5]}]},)",
                  {},
                  "entities.customer.sides.crm.scope.where[0].in: write the number 1e5 as plain "
                  "digits (such as 100000 or 0.5)"},
        ErrorCase{"ScopeEmptyIn",
                  R"("scope": {"where": [{"column": "a", "not_in": §[]}]},)",
                  {},
                  "entities.customer.sides.crm.scope.where[0].not_in must list one or more "
                  "values"},
        ErrorCase{"CompositeKeyTwice",
                  R"("key": ["company_id", §"company_id"],)",
                  {},
                  "key column 'company_id' is listed twice"},
        ErrorCase{"CompositeKeyColumnIsAField",
                  R"("key": ["company_id", "code"],)",
                  {{"customer_no", R"(§"code")"}},
                  "column 'code' is the row key; the key is not a field"},
        ErrorCase{"UnknownTimezone",
                  R"("timezone": §"Mars/Olympus_Mons",)",
                  {},
                  "entities.customer.sides.crm.timezone must be an IANA time zone such as "
                  "\"Europe/Brussels\" or \"UTC\", not 'Mars/Olympus_Mons'"},
        ErrorCase{"AbbreviatedTimezone",
                  "",
                  {},
                  "sides.crm.timezone must be an IANA time zone such as \"Europe/Brussels\" or "
                  "\"UTC\", not 'CET'",
                  "",
                  R"(, "timezone": §"CET")"},
        ErrorCase{"DeleteGuardWithoutOn",
                  R"("delete_guard": §{"table": "invoice"},)",
                  {},
                  "entities.customer.sides.crm.delete_guard needs \"on\": which of its columns "
                  "refer to the row, such as {\"partner_id\": \"id\"}"},
        ErrorCase{"DeleteGuardWhereNotPredicates",
                  R"("delete_guard": {"table": "invoice", "on": {"cid": "id"},
                                      "where": [§"state = 'open'"]},)",
                  {},
                  "entities.customer.sides.crm.delete_guard.where[0] must be an object such as "
                  "{\"column\": \"is_company\", \"eq\": true}"},
        ErrorCase{"MatchUnknownField",
                  "",
                  {},
                  "entity customer has no field 'domain'",
                  R"("match": {"keys": [{"field": §"domain"}]},)"},
        ErrorCase{"MatchUnknownNormalizer",
                  "",
                  {},
                  "unknown normalizer 'soundex' in entities.customer.match.fuzzy[0].normalize "
                  "(known: trim, lower, nfc, url_host, company_name)",
                  R"("match": {"fuzzy": [{"field": "name", "normalize": [§"soundex"]}]},)"},
        ErrorCase{"MatchNormalizerOnNumber",
                  "",
                  {},
                  "entities.customer.match.keys[0]: normalizers apply to text fields only",
                  R"("match": {"keys": [{"field": "qty", "normalize": §["trim"]}]},)"},
        ErrorCase{"LookupValuePathNotAList",
                  "",
                  {{"country", R"({"column": "country_id", "lookup": {"table": "c", "key": "id",
                                  "value": "name", "value_path": §"en_US"}})"}},
                  kCol + "country.lookup.value_path must list the keys leading to the value, "
                         "such as [\"en_US\"]"},
        ErrorCase{"LookupWithinNotAnObject",
                  "",
                  {{"vat", R"({"column": "state_id", "lookup": {"table": "s", "key": "id",
                              "value": "code", "within": §["country"]}})"}},
                  kCol + "vat.lookup.within must map lookup-table columns to fields of this "
                         "entity, such as {\"country_id\": \"country\"}"},
        ErrorCase{"LookupWithinAnUnmappedField",
                  "",
                  {{"vat", R"({"column": §"state_id", "lookup": {"table": "s", "key": "id",
                              "value": "code", "within": {"country_id": "region"}}})"}},
                  kCol + "vat.lookup.within.country_id: 'region' is not a field this side maps"},
        ErrorCase{"LookupWithinItself",
                  "",
                  {{"vat", R"({"column": §"state_id", "lookup": {"table": "s", "key": "id",
                              "value": "code", "within": {"country_id": "vat"}}})"}},
                  kCol + "vat.lookup.within.country_id: a lookup cannot be within its own field"},
        ErrorCase{"LookupWithinAJsonPathField",
                  "",
                  {{"vat", R"({"column": §"state_id", "lookup": {"table": "s", "key": "id",
                              "value": "code", "within": {"country_id": "customer_no"}}})"},
                   {"customer_no", R"({"column": "data", "json_path": ["no"]})"}},
                  kCol + "vat.lookup.within.country_id: field customer_no is at a json_path; "
                         "within needs a field held in a column of its own"},
        ErrorCase{"WriteAsNotText",
                  "",
                  {{"website", R"({"column": "w", "normalize": ["url_host"], "write_as": §1})"}},
                  kCol + "website.write_as must be a text such as \"https://{value}\""},
        ErrorCase{"WriteAsWithoutValue",
                  "",
                  {{"website",
                    R"({"column": "w", "normalize": ["url_host"], "write_as": §"https://x"})"}},
                  kCol + "website: write_as must hold {value} exactly once, as in "
                         "'https://{value}'"},
        ErrorCase{"MatchFieldAndFields",
                  "",
                  {},
                  "entities.customer.match.keys[0] needs either \"field\" or \"fields\" (a "
                  "composite key)",
                  R"("match": {"keys": [§{"field": "vat", "fields": ["vat"]}]},)"},
        ErrorCase{
            "MatchKeyTwice",
            "",
            {},
            "match key website is listed twice",
            R"("match": {"keys": [{"field": "website"}], "fuzzy": [§{"field": "website"}]},)"},
        ErrorCase{"FuzzyThresholdAboveOne",
                  "",
                  {},
                  "entities.customer.match.fuzzy[0].threshold must be a similarity above 0 and at "
                  "most 1, such as 0.85 (1.5 would never propose anything)",
                  R"("match": {"fuzzy": [{"field": "name", "threshold": §1.5}]},)"},
        ErrorCase{"FuzzyThresholdZero",
                  "",
                  {},
                  "entities.customer.match.fuzzy[0].threshold must be a similarity above 0 and at "
                  "most 1, such as 0.85 (0.000 would propose every record)",
                  R"("match": {"fuzzy": [{"field": "name", "threshold": §0.000}]},)"},
        ErrorCase{"FuzzyThresholdNotANumber",
                  "",
                  {},
                  "entities.customer.match.fuzzy[0].threshold must be a similarity above 0 and at "
                  "most 1, with at most 3 decimals, such as 0.85",
                  R"("match": {"fuzzy": [{"field": "name", "threshold": §"0.9"}]},)"},
        ErrorCase{"FuzzyThresholdTooPrecise",
                  "",
                  {},
                  "entities.customer.match.fuzzy[0].threshold must be a similarity above 0 and at "
                  "most 1, with at most 3 decimals, such as 0.85",
                  R"("match": {"fuzzy": [{"field": "name", "threshold": §0.8625}]},)"},
        ErrorCase{"ThresholdOnExactKey",
                  "",
                  {},
                  "entities.customer.match.keys[0]: a threshold applies to fuzzy keys only (an "
                  "exact key links on equal values)",
                  R"("match": {"keys": [{"field": "website", "threshold": §0.9}]},)"},
        ErrorCase{"MatchEmpty",
                  "",
                  {},
                  "entities.customer.match needs \"keys\" (exact match keys) or \"fuzzy\" (or "
                  "both)",
                  R"("match": §{},)"},
        ErrorCase{"LabelNotAField",
                  "",
                  {},
                  "entities.customer.label: 'nom' is not a field of the entity",
                  R"("label": §"nom",)"}),
    [](const ::testing::TestParamInfo<ErrorCase>& info) { return std::string(info.param.name); });

TEST(ConfigMapping, EveryProblemIsReportedInOneRun) {
  const Marked m = mark(config(side(R"("timezone": §"CET",)",
                                    {{"name", R"({"column": "n", "scale": §6})"},
                                     {"website", R"({"column": "w", "normalize": [§"upper"]})"}})));
  ASSERT_EQ(m.marks.size(), 3u);
  const auto errors = errors_of(m.text);
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].substr(0, 12 + m.marks[0].size()), "mdsync.json:" + m.marks[0]);
  EXPECT_EQ(errors[1].substr(0, 12 + m.marks[1].size()), "mdsync.json:" + m.marks[1]);
  EXPECT_EQ(errors[2].substr(0, 12 + m.marks[2].size()), "mdsync.json:" + m.marks[2]);
}

}  // namespace
}  // namespace mdsync::config
