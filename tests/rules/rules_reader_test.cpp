#include "mdsync/rules/rules_reader.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace mdsync::rules {
namespace {

using core::FieldType;

RulesContext test_context() {
  RulesContext ctx;
  ctx.sides = {"erp", "crm"};
  ctx.entities["customer"] = {{"name", FieldType::kText},    {"email", FieldType::kText},
                              {"phone", FieldType::kText},   {"credit_limit", FieldType::kNumeric},
                              {"segment", FieldType::kText}, {"street", FieldType::kText},
                              {"city", FieldType::kText},    {"zip", FieldType::kText},
                              {"country", FieldType::kText}, {"active", FieldType::kBoolean},
                              {"status", FieldType::kText}};
  return ctx;
}

const char* const kFullExample = R"({ "entity": "customer",
  "priority": ["erp", "crm"],
  "create": ["erp", "crm"],
  "delete": {"owner": "erp", "propagate": "deactivate:active"},
  "default": {"owner": "erp", "on_foreign_write": "revert"},
  "groups": {"address": ["street", "city", "zip", "country"]},
  "fields": {
    "credit_limit": {"owner": "erp", "validate": {"min": "0.10", "max": 1000000.00}},
    "email": {"owner": "crm", "compare": "case_insensitive", "validate": {"max_length": 120, "pattern": "^[^@]+@[^@]+$"}},
    "address": {"owner": "shared", "on_conflict": "quarantine"},
    "segment": {"owner": "shared", "on_conflict": "last_writer_wins", "validate": {"one_of": ["smb", "enterprise"]}},
    "name": {"owner": "crm", "on_foreign_write": "quarantine", "validate": {"required": true}},
    "status": {"owner": "erp", "default": "prospect"} } }
)";

core::Ruleset check_one(const std::string& text, const std::string& dir = "") {
  return check_rules({{"customer.json", text}}, test_context(), dir);
}

core::EntityRules customer(const std::string& text) {
  return check_one(text).entities.at("customer");
}

// Every diagnostic of a check, as "file:line:col: message" lines.
std::vector<std::string> diagnostics_of(const RuleTexts& texts, const std::string& dir = "") {
  try {
    check_rules(texts, test_context(), dir);
  } catch (const CheckError& e) {
    std::vector<std::string> out;
    for (const Diagnostic& d : e.diagnostics()) out.push_back(d.to_string());
    return out;
  }
  return {};
}

TEST(RulesReader, FullExample) {
  const core::Ruleset ruleset = check_one(kFullExample);
  EXPECT_EQ(ruleset.version, 0);
  ASSERT_EQ(ruleset.entities.size(), 1u);
  const core::EntityRules& r = ruleset.entities.at("customer");
  EXPECT_EQ(r.entity, "customer");
  EXPECT_EQ(r.fields, test_context().entities.at("customer"));
  EXPECT_EQ(r.priority, (std::vector<std::string>{"erp", "crm"}));
  EXPECT_EQ(r.create, (std::vector<std::string>{"erp", "crm"}));
  ASSERT_EQ(r.delete_policy.sides.size(), 1u);
  EXPECT_EQ(r.delete_policy.sides[0].side, "erp");
  EXPECT_EQ(r.delete_policy.sides[0].propagate, core::DeletePropagation::kDeactivate);
  EXPECT_EQ(r.delete_policy.sides[0].deactivate_field, "active");
  EXPECT_EQ(r.default_policy.owner, "erp");

  std::vector<std::string> names;
  for (const core::Unit& u : r.units) names.push_back(u.name);
  EXPECT_EQ(names, (std::vector<std::string>{"name", "email", "phone", "credit_limit", "segment",
                                             "address", "active", "status"}));

  const core::Unit* address = r.unit_named("address");
  ASSERT_NE(address, nullptr);
  EXPECT_TRUE(address->is_group());
  EXPECT_EQ(address->members, (std::vector<std::string>{"street", "city", "zip", "country"}));
  EXPECT_TRUE(address->policy.is_shared());
  EXPECT_EQ(address->policy.on_conflict, core::OnConflict::kQuarantine);
  EXPECT_EQ(r.unit_of_field("city"), address);

  const core::Unit* limit = r.unit_named("credit_limit");
  ASSERT_NE(limit, nullptr);
  EXPECT_FALSE(limit->is_group());
  EXPECT_EQ(limit->policy.owner, "erp");
  EXPECT_EQ(limit->policy.validate.min, "0.1");  // exact decimal, never a double
  EXPECT_EQ(limit->policy.validate.max, "1000000");

  const core::Unit* email = r.unit_named("email");
  EXPECT_EQ(email->policy.owner, "crm");
  EXPECT_EQ(email->policy.compare, core::Compare::kCaseInsensitive);
  EXPECT_EQ(email->policy.validate.max_length, 120u);
  EXPECT_EQ(email->policy.validate.pattern, "^[^@]+@[^@]+$");

  const core::Unit* segment = r.unit_named("segment");
  EXPECT_EQ(segment->policy.on_conflict, core::OnConflict::kLastWriterWins);
  EXPECT_EQ(segment->policy.validate.one_of, (std::vector<std::string>{"smb", "enterprise"}));

  const core::Unit* name = r.unit_named("name");
  EXPECT_EQ(name->policy.on_foreign_write, core::ForeignWrite::kQuarantine);
  EXPECT_TRUE(name->policy.validate.required);

  // Not named in "fields": the default policy.
  for (const char* field : {"phone", "active"}) {
    const core::Unit* u = r.unit_named(field);
    ASSERT_NE(u, nullptr) << field;
    EXPECT_EQ(u->policy.owner, "erp");
    EXPECT_EQ(u->policy.on_foreign_write, core::ForeignWrite::kRevert);
    EXPECT_TRUE(u->policy.validate.empty());
  }
  EXPECT_EQ(r.unit_named("status")->policy.default_value, "prospect");
  EXPECT_FALSE(r.unit_named("phone")->policy.default_value.has_value());
}

TEST(RulesReader, MinimalFileTakesTheContextDefaults) {
  const core::EntityRules r = customer(R"({"entity": "customer"})");
  EXPECT_EQ(r.priority, (std::vector<std::string>{"erp", "crm"}));
  EXPECT_EQ(r.create, (std::vector<std::string>{"erp", "crm"}));
  EXPECT_TRUE(r.delete_policy.sides.empty());
  EXPECT_EQ(r.default_policy.owner, "erp");
  EXPECT_EQ(r.default_policy.on_foreign_write, core::ForeignWrite::kRevert);
  ASSERT_EQ(r.units.size(), 11u);
  for (std::size_t i = 0; i < r.units.size(); ++i) {
    EXPECT_EQ(r.units[i].name, r.fields[i].first);
    EXPECT_FALSE(r.units[i].is_group());
    EXPECT_EQ(r.units[i].policy.owner, "erp");
  }
}

TEST(RulesReader, DefaultOwnerFollowsPriorityAndEmptyCreate) {
  const core::EntityRules r = customer(
      R"({"entity": "customer", "priority": ["crm", "erp"], "create": [],
          "delete": {"owner": "crm"}, "fields": {"email": {"owner": "erp"}}})");
  EXPECT_EQ(r.default_policy.owner, "crm");
  EXPECT_EQ(r.unit_named("phone")->policy.owner, "crm");
  EXPECT_EQ(r.unit_named("email")->policy.owner, "erp");
  EXPECT_TRUE(r.create.empty());
  ASSERT_EQ(r.delete_policy.sides.size(), 1u);
  EXPECT_EQ(r.delete_policy.sides[0].side, "crm");
  EXPECT_EQ(r.delete_policy.sides[0].propagate, core::DeletePropagation::kDelete);
}

TEST(RulesReader, FieldsInheritUnspecifiedKeysFromDefault) {
  const core::EntityRules r = customer(R"({"entity": "customer",
    "default": {"owner": "crm", "on_foreign_write": "quarantine", "on_conflict": "priority",
                "compare": "trim"},
    "fields": {"email": {"validate": {"max_length": 5}},
               "segment": {"owner": "shared"},
               "name": {"owner": "erp", "compare": "exact"}}})");
  const core::FieldPolicy& email = r.unit_named("email")->policy;
  EXPECT_EQ(email.owner, "crm");
  EXPECT_EQ(email.on_foreign_write, core::ForeignWrite::kQuarantine);
  EXPECT_EQ(email.compare, core::Compare::kTrim);
  EXPECT_EQ(email.validate.max_length, 5u);
  const core::FieldPolicy& segment = r.unit_named("segment")->policy;
  EXPECT_TRUE(segment.is_shared());
  EXPECT_EQ(segment.on_conflict, core::OnConflict::kPriority);
  const core::FieldPolicy& name = r.unit_named("name")->policy;
  EXPECT_EQ(name.owner, "erp");
  EXPECT_EQ(name.compare, core::Compare::kExact);
  EXPECT_EQ(r.unit_named("phone")->policy.compare, core::Compare::kTrim);
}

TEST(RulesReader, GroupStandsAtItsEarliestMember) {
  const core::EntityRules r = customer(R"({"entity": "customer",
    "groups": {"contact": ["phone", "email"], "place": ["country", "city"]}})");
  std::vector<std::string> names;
  for (const core::Unit& u : r.units) names.push_back(u.name);
  EXPECT_EQ(names, (std::vector<std::string>{"name", "contact", "credit_limit", "segment", "street",
                                             "place", "zip", "active", "status"}));
  EXPECT_EQ(r.unit_named("contact")->members, (std::vector<std::string>{"phone", "email"}));
  EXPECT_EQ(r.unit_named("place")->members, (std::vector<std::string>{"country", "city"}));
}

TEST(RulesReader, DefaultValuesAreCanonicalValueText) {
  const core::EntityRules r = customer(R"({"entity": "customer", "fields": {
    "credit_limit": {"owner": "erp", "default": "0100.50"},
    "active": {"owner": "erp", "default": true},
    "phone": {"owner": "erp", "default": null},
    "segment": {"owner": "erp", "default": "smb", "validate": {"one_of": ["smb"]}},
    "status": {"owner": "erp", "default": 7}}})");
  EXPECT_EQ(r.unit_named("credit_limit")->policy.default_value, "100.5");
  EXPECT_EQ(r.unit_named("active")->policy.default_value, "true");
  EXPECT_FALSE(r.unit_named("phone")->policy.default_value.has_value());
  EXPECT_EQ(r.unit_named("segment")->policy.default_value, "smb");
  EXPECT_EQ(r.unit_named("status")->policy.default_value, "7");
}

TEST(RulesReader, SeveralFilesAndEntities) {
  RulesContext ctx = test_context();
  ctx.entities["product"] = {{"sku", FieldType::kText}, {"price", FieldType::kNumeric}};
  const core::Ruleset rs =
      check_rules({{"customer.json", R"({"entity": "customer"})"},
                   {"product.json", R"({"entity": "product", "default": {"owner": "shared"}})"}},
                  ctx, "rules");
  ASSERT_EQ(rs.entities.size(), 2u);
  EXPECT_TRUE(rs.find("product")->unit_named("price")->policy.is_shared());
}

// ---- checks: each broken text and every diagnostic it gives ----

struct CheckCase {
  const char* name;
  std::string text;  // the content of customer.json
  std::vector<std::string> expected;
};

class RulesChecks : public ::testing::TestWithParam<CheckCase> {};

TEST_P(RulesChecks, ReportsEveryProblemWithPosition) {
  const CheckCase& c = GetParam();
  const std::vector<std::string> got = diagnostics_of({{"customer.json", c.text}});
  ASSERT_EQ(got.size(), c.expected.size()) << ::testing::PrintToString(got);
  for (std::size_t i = 0; i < got.size(); ++i) {
    const std::string& want = c.expected[i];
    // An expectation ending in "..." is a prefix (for messages from the standard library).
    if (want.size() > 3 && want.compare(want.size() - 3, 3, "...") == 0)
      EXPECT_EQ(got[i].substr(0, want.size() - 3), want.substr(0, want.size() - 3));
    else
      EXPECT_EQ(got[i], want);
  }
}

const std::string kTopKeys = "entity, priority, create, delete, default, groups, fields";
const std::string kPolicyKeys =
    "owner, on_foreign_write, on_conflict, compare, validate, default, on_create";

INSTANTIATE_TEST_SUITE_P(
    All, RulesChecks,
    ::testing::Values(
        CheckCase{"MalformedJson",
                  "{\"entity\": \"customer\",\n}",
                  {"customer.json:1:22: trailing comma before '}' is not allowed"}},
        CheckCase{"NotAnObject",
                  "\n  [\"customer\"]",
                  {"customer.json:2:3: a rules file must be a JSON object ({ \"entity\": ... }), "
                   "found array"}},
        CheckCase{
            "UnknownTopKey",
            "{\"entity\": \"customer\",\n \"ownr\": 1}",
            {"customer.json:2:2: unknown key 'ownr' at the top level; allowed keys: " + kTopKeys}},
        CheckCase{"UnknownTopKeySuggestion",
                  "{\"entity\": \"customer\",\n \"feilds\": {}}",
                  {"customer.json:2:2: unknown key 'feilds' at the top level (did you mean "
                   "'fields'?); allowed keys: " +
                   kTopKeys}},
        CheckCase{"UnknownPolicyKey",
                  "{\"entity\": \"customer\", \"default\": {\"owner\": \"erp\"},\n"
                  "\"fields\": {\"email\": {\"ownr\": \"crm\"}}}",
                  {"customer.json:2:22: unknown key 'ownr' in fields.email (did you mean "
                   "'owner'?); allowed keys: " +
                   kPolicyKeys}},
        CheckCase{"UnknownValidateKey",
                  "{\"entity\": \"customer\",\n"
                  "\"fields\": {\"email\": {\"owner\": \"crm\", \"validate\": {\"maxlen\": 3}}}}",
                  {"customer.json:2:51: unknown key 'maxlen' in validate; allowed keys: required, "
                   "max_length, pattern, min, max, one_of"}},
        CheckCase{"UnknownDeleteKey",
                  "{\"entity\": \"customer\",\n\"delete\": {\"owner\": \"erp\", \"mode\": 1}}",
                  {"customer.json:2:28: unknown key 'mode' in delete; allowed keys: owner, "
                   "propagate, on_foreign_delete, or side names (erp, crm) each with its own "
                   "{\"propagate\": ...}"}},
        CheckCase{"UnknownForeignDeleteWord",
                  "{\"entity\": \"customer\",\n\"delete\": {\"owner\": \"erp\", "
                  "\"on_foreign_delete\": \"ignore\"}}",
                  {"customer.json:2:49: on_foreign_delete: 'ignore' is not one of restore, "
                   "quarantine"}},
        CheckCase{"ValidateNotAllowedInDefault",
                  "{\"entity\": \"customer\",\n\"default\": {\"validate\": {}}}",
                  {"customer.json:2:13: unknown key 'validate' in default; allowed keys: owner, "
                   "on_foreign_write, on_conflict, compare, on_create"}},
        CheckCase{"WrongTypes",
                  "{\"entity\": \"customer\",\n"
                  "\"priority\": \"erp\",\n"
                  "\"create\": [\"erp\", 2],\n"
                  "\"groups\": [],\n"
                  "\"fields\": {\"email\": \"crm\", \"name\": {\"owner\": 1}}}",
                  {"customer.json:2:13: 'priority' must be an array of side names, found string "
                   "\"erp\"",
                   "customer.json:3:19: 'create' lists side names, found number 2",
                   "customer.json:4:11: 'groups' must be an object (group name -> array of field "
                   "names), found array",
                   "customer.json:5:21: 'email' must be an object (a field policy), found string "
                   "\"crm\"",
                   "customer.json:5:46: 'owner' must be a side name or \"shared\", found number "
                   "1"}},
        CheckCase{"ValidateWrongTypes",
                  "{\"entity\": \"customer\", \"default\": {\"owner\": \"erp\"}, \"fields\": {\n"
                  "\"name\": {\"validate\": {\"required\": \"yes\",\n"
                  "  \"pattern\": 5,\n"
                  "  \"one_of\": \"a\"}},\n"
                  "\"email\": {\"validate\": []}}}",
                  {"customer.json:2:35: 'required' must be true or false, found string \"yes\"",
                   "customer.json:3:14: 'pattern' must be a string (a regular expression), found "
                   "number 5",
                   "customer.json:4:13: 'one_of' must be an array of strings, found string \"a\"",
                   "customer.json:5:23: 'validate' must be an object, found array"}},
        CheckCase{"EntityMissing",
                  "{\"priority\": [\"erp\"]}",
                  {"customer.json:1:1: missing key 'entity' (it must be \"customer\", as the file "
                   "name customer.json says)"}},
        CheckCase{"EntityNotAString",
                  "{\"entity\": null}",
                  {"customer.json:1:12: 'entity' must be a string, found null"}},
        CheckCase{"EntityMismatch",
                  "{\"entity\": \"product\"}",
                  {"customer.json:1:12: entity 'product' does not match the file name "
                   "customer.json; it must be \"customer\""}},
        CheckCase{"UnknownOwner",
                  "{\"entity\": \"customer\",\n\"fields\": {\"email\": {\"owner\": \"sap\"}}}",
                  {"customer.json:2:31: owner 'sap' is not a side; known sides: erp, crm (or "
                   "\"shared\")"}},
        CheckCase{"OwnerTypo",
                  "{\"entity\": \"customer\",\n\"default\": {\"owner\": \"shard\"}}",
                  {"customer.json:2:22: owner 'shard' is not a side (did you mean 'shared'?); "
                   "known sides: erp, crm (or \"shared\")"}},
        CheckCase{"NoSuchField",
                  "{\"entity\": \"customer\",\n\"fields\": {\"fax\": {\"owner\": \"erp\"}}}",
                  {"customer.json:2:12: entity customer has no field 'fax'"}},
        CheckCase{"NoSuchFieldSuggestion",
                  "{\"entity\": \"customer\",\n\"fields\": {\"emial\": {\"owner\": \"erp\"}}}",
                  {"customer.json:2:12: entity customer has no field 'emial' (did you mean "
                   "'email'?)"}},
        CheckCase{"UnknownPolicyWords",
                  "{\"entity\": \"customer\", \"fields\": {\n"
                  "\"segment\": {\"owner\": \"shared\", \"on_conflict\": \"newest\"},\n"
                  "\"name\": {\"owner\": \"crm\", \"on_foreign_write\": \"ignore\"},\n"
                  "\"email\": {\"owner\": \"crm\", \"compare\": \"lower\"}}}",
                  {"customer.json:2:47: on_conflict: 'newest' is not one of quarantine, "
                   "last_writer_wins, priority",
                   "customer.json:3:46: on_foreign_write: 'ignore' is not one of revert, "
                   "quarantine",
                   "customer.json:4:38: compare: 'lower' is not one of exact, trim, "
                   "case_insensitive"}},
        CheckCase{"PolicyWordNotAString",
                  "{\"entity\": \"customer\",\n"
                  "\"fields\": {\"segment\": {\"owner\": \"shared\", \"on_conflict\": 1}}}",
                  {"customer.json:2:58: 'on_conflict' must be one of quarantine, "
                   "last_writer_wins, priority, found number 1"}},
        CheckCase{"FieldInTwoGroups",
                  "{\"entity\": \"customer\", \"groups\": {\n"
                  "\"address\": [\"street\", \"city\"],\n"
                  "\"billing\": [\"city\", \"zip\"]}}",
                  {"customer.json:3:13: field 'city' is in groups 'address' and 'billing'"}},
        CheckCase{"GroupMemberNotAField",
                  "{\"entity\": \"customer\",\n\"groups\": {\"address\": [\"stret\", 4]}}",
                  {"customer.json:2:24: group 'address': entity customer has no field 'stret' "
                   "(did you mean 'street'?)",
                   "customer.json:2:33: group 'address' lists field names, found number 4"}},
        CheckCase{"GroupMemberTwice",
                  "{\"entity\": \"customer\",\n\"groups\": {\"address\": [\"zip\", \"zip\"]}}",
                  {"customer.json:2:31: field 'zip' is listed twice in group 'address'"}},
        CheckCase{"EmptyGroup",
                  "{\"entity\": \"customer\",\n\"groups\": {\"address\": []},\n"
                  "\"fields\": {\"address\": {\"owner\": \"shared\"}}}",
                  {"customer.json:2:23: group 'address' is empty"}},
        CheckCase{"GroupNamedLikeAField",
                  "{\"entity\": \"customer\",\n\"groups\": {\"name\": [\"street\"]}}",
                  {"customer.json:2:12: group 'name' has the name of a field of customer; give "
                   "the group another name"}},
        CheckCase{"GroupMemberNamedInFields",
                  "{\"entity\": \"customer\", \"groups\": {\"address\": [\"street\", \"city\"]},\n"
                  "\"fields\": {\"city\": {\"owner\": \"erp\"}}}",
                  {"customer.json:2:12: field 'city' is in group 'address'; give its policy on "
                   "the group instead"}},
        CheckCase{"UnknownSides",
                  "{\"entity\": \"customer\",\n"
                  "\"priority\": [\"erp\", \"sap\"],\n"
                  "\"create\": [\"crn\"],\n"
                  "\"delete\": {\"owner\": \"shared\"}}",
                  {"customer.json:2:21: unknown side 'sap' in priority; known sides: erp, crm",
                   "customer.json:3:12: unknown side 'crn' in create (did you mean 'crm'?); known "
                   "sides: erp, crm",
                   "customer.json:4:21: delete owner 'shared' is not a side; known sides: erp, "
                   "crm"}},
        CheckCase{"SideTwiceInPriority",
                  "{\"entity\": \"customer\",\n\"priority\": [\"erp\", \"crm\", \"erp\"]}",
                  {"customer.json:2:28: side 'erp' is listed twice in priority"}},
        CheckCase{"EmptyPriority",
                  "{\"entity\": \"customer\",\n\"priority\": []}",
                  {"customer.json:2:13: priority must list at least one side"}},
        CheckCase{"DeleteWithoutOwner",
                  "{\"entity\": \"customer\",\n\"delete\": {\"propagate\": \"delete\"}}",
                  {"customer.json:2:11: missing key 'owner' in delete (the side whose delete is "
                   "authoritative), or list the sides whose delete counts: {\"erp\": "
                   "{\"propagate\": \"delete\"}, ...}"}},
        CheckCase{
            "PatternDoesNotCompile",
            "{\"entity\": \"customer\",\n"
            "\"fields\": {\"email\": {\"owner\": \"crm\", \"validate\": {\"pattern\": \"[a-\"}}}}",
            {"customer.json:2:62: pattern does not compile: ..."}},
        CheckCase{
            "PatternWithNestedRepetition",
            "{\"entity\": \"customer\",\n"
            "\"fields\": {\"email\": {\"owner\": \"crm\", \"validate\": {\"pattern\": "
            "\"^(\\\\w+\\\\s?)+@x$\"}}}}",
            {"customer.json:2:62: pattern: a repeated group holds a repetition (^(\\w+\\s?)+...): "
             "matching can take exponential time on a hostile value; write it without nesting"}},
        CheckCase{
            "MinGreaterThanMax",
            "{\"entity\": \"customer\",\n"
            "\"fields\": {\"credit_limit\": {\"owner\": \"erp\", \"validate\": {\"min\": 10.5, "
            "\"max\": \"9.99\"}}}}",
            {"customer.json:2:65: min 10.5 is greater than max 9.99"}},
        CheckCase{
            "MinMaxNotDecimal",
            "{\"entity\": \"customer\",\n"
            "\"fields\": {\"credit_limit\": {\"owner\": \"erp\", \"validate\": {\"min\": 1e3, "
            "\"max\": \"lots\"}}}}",
            {"customer.json:2:65: min must be a plain decimal such as 0, -5 or "
             "\"1000.00\", found number 1e3",
             "customer.json:2:77: max must be a plain decimal such as 0, -5 or "
             "\"1000.00\", found string \"lots\""}},
        CheckCase{"MinMaxWrongType",
                  "{\"entity\": \"customer\",\n"
                  "\"fields\": {\"credit_limit\": {\"owner\": \"erp\", \"validate\": {\"min\": "
                  "true}}}}",
                  {"customer.json:2:65: 'min' must be a decimal number (a JSON number or a string "
                   "such as \"0.10\"), found true"}},
        CheckCase{"MinOnTextField",
                  "{\"entity\": \"customer\",\n"
                  "\"fields\": {\"name\": {\"owner\": \"crm\", \"validate\": {\"min\": 0}}}}",
                  {"customer.json:2:57: min applies to numeric and integer fields only; 'name' is "
                   "text"}},
        CheckCase{"MaxOnGroup",
                  "{\"entity\": \"customer\", \"groups\": {\"address\": [\"street\", \"zip\"]},\n"
                  "\"fields\": {\"address\": {\"owner\": \"erp\", \"validate\": {\"max\": 5}}}}",
                  {"customer.json:2:60: max applies to numeric and integer fields only; group "
                   "'address' has text field 'street'"}},
        CheckCase{"MaxLengthOnNumericField",
                  "{\"entity\": \"customer\",\n"
                  "\"fields\": {\"credit_limit\": {\"owner\": \"erp\", \"validate\": "
                  "{\"max_length\": 3}}}}",
                  {"customer.json:2:72: max_length applies to text fields only; 'credit_limit' "
                   "is numeric"}},
        CheckCase{"PatternOnBooleanField",
                  "{\"entity\": \"customer\",\n"
                  "\"fields\": {\"active\": {\"owner\": \"erp\", \"validate\": {\"pattern\": "
                  "\"t\"}}}}",
                  {"customer.json:2:63: pattern applies to text fields only; 'active' is "
                   "boolean"}},
        CheckCase{"MaxLengthNotANonNegativeInteger",
                  "{\"entity\": \"customer\", \"default\": {\"owner\": \"erp\"}, \"fields\": {\n"
                  "\"name\": {\"validate\": {\"max_length\": -1}},\n"
                  "\"email\": {\"validate\": {\"max_length\": 2.5}},\n"
                  "\"phone\": {\"validate\": {\"max_length\": \"9\"}}}}",
                  {"customer.json:2:37: max_length must be a non-negative integer, found number "
                   "-1",
                   "customer.json:3:38: max_length must be a non-negative integer, found number "
                   "2.5",
                   "customer.json:4:38: max_length must be a non-negative integer, found string "
                   "\"9\""}},
        CheckCase{"OneOfProblems",
                  "{\"entity\": \"customer\", \"default\": {\"owner\": \"erp\"}, \"fields\": {\n"
                  "\"segment\": {\"validate\": {\"one_of\": []}},\n"
                  "\"status\": {\"validate\": {\"one_of\": [\"a\", 1]}}}}",
                  {"customer.json:2:36: one_of must list at least one value",
                   "customer.json:3:41: one_of lists strings, found number 1"}},
        CheckCase{"DeactivateMissingField",
                  "{\"entity\": \"customer\",\n"
                  "\"delete\": {\"owner\": \"erp\", \"propagate\": \"deactivate:enabled\"}}",
                  {"customer.json:2:41: propagate 'deactivate:enabled': entity customer has no "
                   "field 'enabled'"}},
        CheckCase{"DeactivateNonBooleanField",
                  "{\"entity\": \"customer\",\n"
                  "\"delete\": {\"owner\": \"erp\", \"propagate\": \"deactivate:status\"}}",
                  {"customer.json:2:41: propagate 'deactivate:status': field 'status' is text, "
                   "not boolean"}},
        CheckCase{"PropagateUnknownWord",
                  "{\"entity\": \"customer\",\n"
                  "\"delete\": {\"owner\": \"erp\", \"propagate\": \"archive\"}}",
                  {"customer.json:2:41: propagate: 'archive' is not one of delete, "
                   "deactivate:<field>"}},
        CheckCase{"OnConflictOnOwnedField",
                  "{\"entity\": \"customer\",\n"
                  "\"fields\": {\"email\": {\"owner\": \"crm\", \"on_conflict\": \"priority\"}}}",
                  {"customer.json:2:53: on_conflict applies to shared fields only; 'email' is "
                   "owned by crm (use on_foreign_write)"}},
        CheckCase{"OnConflictOnInheritedOwner",
                  "{\"entity\": \"customer\", \"default\": {\"owner\": \"erp\"},\n"
                  "\"fields\": {\"email\": {\"on_conflict\": \"priority\"}}}",
                  {"customer.json:2:37: on_conflict applies to shared fields only; 'email' is "
                   "owned by erp (use on_foreign_write)"}},
        CheckCase{"OnForeignWriteOnSharedGroup",
                  "{\"entity\": \"customer\", \"groups\": {\"address\": [\"street\"]},\n"
                  "\"fields\": {\"address\": {\"owner\": \"shared\", \"on_foreign_write\": "
                  "\"revert\"}}}",
                  {"customer.json:2:63: on_foreign_write applies to owned fields only; group "
                   "'address' is shared (use on_conflict)"}},
        CheckCase{"CompareOnNumericField",
                  "{\"entity\": \"customer\",\n"
                  "\"fields\": {\"credit_limit\": {\"owner\": \"erp\", \"compare\": \"trim\"}}}",
                  {"customer.json:2:56: compare 'trim' applies to text fields only; "
                   "'credit_limit' has none (numbers always compare by value)"}},
        CheckCase{"OwnerRequiredWithoutDefault",
                  "{\"entity\": \"customer\",\n\"fields\": {\"email\": {\"compare\": \"trim\"}}}",
                  {"customer.json:2:21: missing key 'owner' in fields.email (no \"default\" "
                   "policy gives one)"}},
        CheckCase{"OwnerRequiredWhenDefaultHasNone",
                  "{\"entity\": \"customer\", \"default\": {\"compare\": \"trim\"},\n"
                  "\"fields\": {\"email\": {}}}",
                  {"customer.json:2:21: missing key 'owner' in fields.email (no \"default\" "
                   "policy gives one)"}},
        CheckCase{"BadDefaultValues",
                  "{\"entity\": \"customer\", \"groups\": {\"address\": [\"street\"]},\n"
                  "\"default\": {\"owner\": \"erp\"}, \"fields\": {\n"
                  "\"credit_limit\": {\"default\": \"abc\"},\n"
                  "\"address\": {\"default\": \"x\"},\n"
                  "\"segment\": {\"default\": \"smb\", \"validate\": {\"one_of\": [\"ent\"]}},\n"
                  "\"active\": {\"default\": \"maybe\"},\n"
                  "\"status\": {\"default\": [1]}}}",
                  {"customer.json:3:29: default string \"abc\" is not a valid numeric value for "
                   "'credit_limit'",
                   "customer.json:4:24: a default value applies to a single field, not to group "
                   "'address'",
                   "customer.json:5:24: default string \"smb\" fails the validate rules of "
                   "'segment': it is not one of ent",
                   "customer.json:6:23: default string \"maybe\" is not a valid boolean value for "
                   "'active'",
                   "customer.json:7:23: 'default' must be a string, a number, true, false or null, "
                   "found array"}},
        CheckCase{"ManyProblemsInOrder",
                  "{\"entity\": \"client\",\n"
                  "  \"priority\": [\"erp\", \"erp\"],\n"
                  "  \"fields\": {\"fax\": {\"owner\": \"sap\"},\n"
                  "             \"email\": {\"owner\": \"crm\", \"on_conflict\": \"newest\"}}}",
                  {"customer.json:1:12: entity 'client' does not match the file name "
                   "customer.json; it must be \"customer\"",
                   "customer.json:2:23: side 'erp' is listed twice in priority",
                   "customer.json:3:14: entity customer has no field 'fax'",
                   "customer.json:4:55: on_conflict: 'newest' is not one of quarantine, "
                   "last_writer_wins, priority",
                   "customer.json:4:55: on_conflict applies to shared fields only; 'email' is "
                   "owned by crm (use on_foreign_write)"}}),
    [](const ::testing::TestParamInfo<CheckCase>& info) { return std::string(info.param.name); });

TEST(RulesReader, MissingFileForAnEntity) {
  EXPECT_EQ(
      diagnostics_of({}),
      (std::vector<std::string>{
          "customer.json:1:1: no rules file for entity 'customer' (expected customer.json)"}));
  EXPECT_EQ(diagnostics_of({}, "rules"),
            (std::vector<std::string>{"rules/customer.json:1:1: no rules file for entity "
                                      "'customer' (expected customer.json)"}));
}

TEST(RulesReader, FileThatNamesNoEntity) {
  EXPECT_EQ(diagnostics_of({{"customer.json", R"({"entity": "customer"})"},
                            {"custmer.json", R"({"entity": "customer"})"},
                            {"notes.txt", "{"}},
                           "/etc/mdsync/rules"),
            (std::vector<std::string>{
                "/etc/mdsync/rules/custmer.json:1:1: file name 'custmer.json' names no entity of "
                "the config (did you mean 'customer'?); rules files are named <entity>.json, for "
                "entities: customer",
                "/etc/mdsync/rules/notes.txt:1:1: file name 'notes.txt' names no entity of the "
                "config; rules files are named <entity>.json, for entities: customer",
                "/etc/mdsync/rules/notes.txt:1:2: expected a member name in double quotes, found "
                "end of file"}));
}

TEST(RulesReader, ProblemsOfEveryFileAreCollected) {
  RulesContext ctx = test_context();
  ctx.entities["product"] = {{"sku", FieldType::kText}};
  try {
    check_rules({{"customer.json", "{\"entity\": \"customer\", \"ownr\": 1}"},
                 {"product.json", "{\"entity\": \"product\",\n \"fields\": {\"sku\": 1}}"}},
                ctx, "r");
    FAIL() << "no CheckError";
  } catch (const CheckError& e) {
    EXPECT_EQ(
        std::string(e.what()),
        "r/customer.json:1:24: unknown key 'ownr' at the top level; allowed keys: " + kTopKeys +
            "\n"
            "r/product.json:2:20: 'sku' must be an object (a field policy), found number 1");
  }
}

// ---- read_rules_dir ----

TEST(RulesReader, ReadRulesDir) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / "mdsync_rules_dir_test";
  fs::remove_all(dir);
  fs::create_directories(dir / "nested.json");
  std::ofstream(dir / "customer.json") << R"({"entity": "customer"})";
  std::ofstream(dir / "notes.txt") << "not rules";
  std::ofstream(dir / "customer.json~") << "backup";
  const RuleTexts texts = read_rules_dir(dir.string());
  ASSERT_EQ(texts.size(), 1u);
  EXPECT_EQ(texts.at("customer.json"), R"({"entity": "customer"})");
  fs::remove_all(dir);

  try {
    read_rules_dir(dir.string());
    FAIL() << "no error for a missing folder";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "cannot read rules folder '" + dir.string() + "': No such file or directory");
  }
}

// ---- diff_rules ----

core::Ruleset ruleset_of(const std::string& text) {
  return check_one(text);
}

TEST(RulesDiff, SameRulesGiveNoLines) {
  EXPECT_TRUE(diff_rules(ruleset_of(kFullExample), ruleset_of(kFullExample)).empty());
  // Spelled differently, deciding alike.
  EXPECT_TRUE(diff_rules(ruleset_of(R"({"entity": "customer"})"),
                         ruleset_of(R"({"entity": "customer", "priority": ["erp", "crm"],
                                        "default": {"owner": "erp", "on_conflict": "priority"}})"))
                  .empty());
}

TEST(RulesDiff, ReportsEachChangeInOrder) {
  const core::Ruleset from = ruleset_of(kFullExample);
  const core::Ruleset to = ruleset_of(R"({ "entity": "customer",
  "priority": ["crm", "erp"],
  "create": ["erp"],
  "delete": {"owner": "erp"},
  "default": {"owner": "erp", "on_foreign_write": "revert"},
  "groups": {"address": ["street", "city", "zip"]},
  "fields": {
    "credit_limit": {"owner": "erp", "validate": {"min": "0.2", "max": 1000000.00}},
    "email": {"owner": "erp", "compare": "case_insensitive", "validate": {"max_length": 100, "pattern": "^[^@]+@[^@]+$"}},
    "address": {"owner": "shared", "on_conflict": "quarantine"},
    "segment": {"owner": "shared", "on_conflict": "quarantine", "validate": {"one_of": ["smb"]}},
    "name": {"owner": "shared"},
    "status": {"owner": "erp"} } })");
  const std::vector<std::string> expected = {
      "customer: priority [erp, crm] -> [crm, erp]",
      "customer: create [erp, crm] -> [erp]",
      "customer: delete owner=erp propagate=deactivate:active -> owner=erp propagate=delete",
      "customer.name: owner crm -> shared, on_conflict=quarantine",
      "customer.name: validate.required true -> false",
      "customer.email: owner crm -> erp",
      "customer.email: validate.max_length 120 -> 100",
      "customer.credit_limit: validate.min 0.1 -> 0.2",
      "customer.segment: on_conflict last_writer_wins -> quarantine",
      "customer.segment: validate.one_of [smb, enterprise] -> [smb]",
      "customer.address: group members [street, city, zip, country] -> [street, city, zip]",
      "customer.country: added: owner=erp on_foreign_write=revert compare=exact",
      "customer.status: default \"prospect\" -> (none)",
  };
  EXPECT_EQ(diff_rules(from, to), expected);
  EXPECT_EQ(diff_rules(from, to), diff_rules(from, to));
}

TEST(RulesDiff, GroupsAndEntitiesAddedAndRemoved) {
  RulesContext ctx = test_context();
  ctx.entities["product"] = {{"sku", FieldType::kText}};
  const core::Ruleset with_product = check_rules({{"customer.json", R"({"entity": "customer"})"},
                                                  {"product.json", R"({"entity": "product"})"}},
                                                 ctx);
  const core::Ruleset grouped =
      ruleset_of(R"({"entity": "customer", "groups": {"contact": ["email", "phone"]}})");
  EXPECT_EQ(diff_rules(with_product, grouped),
            (std::vector<std::string>{
                "customer.contact: group [email, phone] added: owner=erp on_foreign_write=revert "
                "compare=exact",
                "customer.email: removed", "customer.phone: removed", "product: entity removed"}));
  EXPECT_EQ(diff_rules(grouped, with_product),
            (std::vector<std::string>{
                "customer.email: added: owner=erp on_foreign_write=revert compare=exact",
                "customer.phone: added: owner=erp on_foreign_write=revert compare=exact",
                "customer.contact: group removed", "product: entity added"}));
}

// ---- describe ----

TEST(RulesDescribe, FullExample) {
  const std::string expected =
      "entity customer\n"
      "priority: erp, crm\n"
      "create: erp, crm\n"
      "delete: owner=erp propagate=deactivate:active\n"
      "default: owner=erp on_foreign_write=revert compare=exact\n"
      "name                    owner=crm on_foreign_write=quarantine compare=exact "
      "validate{required}\n"
      "email                   owner=crm on_foreign_write=revert compare=case_insensitive "
      "validate{max_length=120 pattern=\"^[^@]+@[^@]+$\"}\n"
      "phone                   owner=erp on_foreign_write=revert compare=exact\n"
      "credit_limit            owner=erp on_foreign_write=revert compare=exact "
      "validate{min=0.1 max=1000000}\n"
      "segment                 owner=shared on_conflict=last_writer_wins compare=exact "
      "validate{one_of=[smb, enterprise]}\n"
      "address                 owner=shared on_conflict=quarantine compare=exact "
      "members=[street, city, zip, country]\n"
      "active                  owner=erp on_foreign_write=revert compare=exact\n"
      "status                  owner=erp on_foreign_write=revert compare=exact "
      "default=\"prospect\"\n";
  const core::Ruleset rs = ruleset_of(kFullExample);
  EXPECT_EQ(describe(rs.entities.at("customer")), expected);
  EXPECT_EQ(describe(ruleset_of(kFullExample).entities.at("customer")), expected);
}

TEST(RulesDescribe, NoDeleteNoCreateAndLongNames) {
  RulesContext ctx;
  ctx.sides = {"a", "b"};
  ctx.entities["item"] = {{"a_rather_long_field_name_here", FieldType::kInteger}};
  const core::Ruleset rs = check_rules(
      {{"item.json", R"({"entity": "item", "create": [], "default": {"owner": "shared"}})"}}, ctx);
  EXPECT_EQ(describe(rs.entities.at("item")),
            "entity item\n"
            "priority: a, b\n"
            "create: (none)\n"
            "delete: no side may delete\n"
            "default: owner=shared on_conflict=quarantine compare=exact\n"
            "a_rather_long_field_name_here owner=shared on_conflict=quarantine compare=exact\n");
}

}  // namespace
}  // namespace mdsync::rules

namespace mdsync::rules {
namespace {

TEST(RulesDelete, OnForeignDeleteQuarantineIsReadAndDescribed) {
  RulesContext ctx;
  ctx.sides = {"erp", "crm"};
  ctx.entities["customer"] = {{"name", core::FieldType::kText}};
  const core::Ruleset rs = check_rules(
      {{"customer.json",
        R"({"entity": "customer", "delete": {"owner": "erp", "on_foreign_delete": "quarantine"}})"}},
      ctx);
  const core::EntityRules& rules = rs.entities.at("customer");
  EXPECT_EQ(rules.delete_policy.on_foreign_delete, core::ForeignDelete::kQuarantine);
  EXPECT_NE(describe(rules).find("delete: owner=erp propagate=delete on_foreign_delete=quarantine"),
            std::string::npos)
      << describe(rules);
}

}  // namespace
}  // namespace mdsync::rules

// ---- issue 11: delete policies per side, on_create, fields a side does not map ----

namespace mdsync::rules {
namespace {

std::vector<std::string> problems(const std::string& text, const RulesContext& ctx) {
  try {
    check_rules({{"customer.json", text}}, ctx);
  } catch (const CheckError& e) {
    std::vector<std::string> out;
    for (const Diagnostic& d : e.diagnostics()) out.push_back(d.to_string());
    return out;
  }
  return {};
}

TEST(RulesDeletePerSide, EachListedSideWithItsOwnPropagationInPriorityOrder) {
  const core::EntityRules r = customer(R"({"entity": "customer", "priority": ["erp", "crm"],
    "delete": {"crm": {"propagate": "delete"}, "erp": {"propagate": "deactivate:active"},
               "on_foreign_delete": "quarantine"}})");
  ASSERT_EQ(r.delete_policy.sides.size(), 2u);
  EXPECT_EQ(r.delete_policy.sides[0].side, "erp");
  EXPECT_EQ(r.delete_policy.sides[0].propagate, core::DeletePropagation::kDeactivate);
  EXPECT_EQ(r.delete_policy.sides[0].deactivate_field, "active");
  EXPECT_EQ(r.delete_policy.sides[1].side, "crm");
  EXPECT_EQ(r.delete_policy.sides[1].propagate, core::DeletePropagation::kDelete);
  EXPECT_EQ(r.delete_policy.on_foreign_delete, core::ForeignDelete::kQuarantine);
  EXPECT_NE(describe(r).find("delete: erp propagate=deactivate:active, crm propagate=delete "
                             "on_foreign_delete=quarantine\n"),
            std::string::npos)
      << describe(r);
  // An empty entry propagates as a delete.
  const core::EntityRules plain = customer(R"({"entity": "customer", "delete": {"crm": {}}})");
  ASSERT_EQ(plain.delete_policy.sides.size(), 1u);
  EXPECT_EQ(plain.delete_policy.sides[0].propagate, core::DeletePropagation::kDelete);
}

TEST(RulesDeletePerSide, OneListedSideDecidesAsTheOwnerForm) {
  EXPECT_TRUE(diff_rules(ruleset_of(R"({"entity": "customer",
                           "delete": {"owner": "erp", "propagate": "deactivate:active"}})"),
                         ruleset_of(R"({"entity": "customer",
                           "delete": {"erp": {"propagate": "deactivate:active"}}})"))
                  .empty());
  EXPECT_EQ(diff_rules(ruleset_of(R"({"entity": "customer", "delete": {"owner": "erp"}})"),
                       ruleset_of(R"({"entity": "customer",
                         "delete": {"erp": {"propagate": "delete"}, "crm": {}}})")),
            (std::vector<std::string>{"customer: delete owner=erp propagate=delete -> erp "
                                      "propagate=delete, crm propagate=delete"}));
}

INSTANTIATE_TEST_SUITE_P(
    DeletePerSide, RulesChecks,
    ::testing::Values(
        CheckCase{"OwnerMixedWithSides",
                  "{\"entity\": \"customer\",\n"
                  "\"delete\": {\"owner\": \"erp\", \"crm\": {}}}",
                  {"customer.json:2:12: 'owner' cannot be mixed with side entries in delete; "
                   "give each side whose delete counts its own entry, such as \"erp\": "
                   "{\"propagate\": \"delete\"}"}},
        CheckCase{"UnknownKeyAmongSides",
                  "{\"entity\": \"customer\",\n"
                  "\"delete\": {\"erp\": {}, \"shop\": {}}}",
                  {"customer.json:2:23: unknown key 'shop' in delete; it lists sides (erp, crm) "
                   "whose delete counts, and on_foreign_delete"}},
        CheckCase{"SideEntryNotAnObject",
                  "{\"entity\": \"customer\",\n"
                  "\"delete\": {\"erp\": \"delete\"}}",
                  {"customer.json:2:19: 'erp' must be an object such as {\"propagate\": "
                   "\"delete\"}, found string \"delete\""}},
        CheckCase{"SideEntryUnknownKeyAndWord",
                  "{\"entity\": \"customer\",\n"
                  "\"delete\": {\"erp\": {\"guard\": 1},\n"
                  "  \"crm\": {\"propagate\": \"archive\"}}}",
                  {"customer.json:2:20: unknown key 'guard' in delete.erp; allowed keys: "
                   "propagate",
                   "customer.json:3:24: propagate: 'archive' is not one of delete, "
                   "deactivate:<field>"}},
        CheckCase{"SideDeactivatesATextField",
                  "{\"entity\": \"customer\",\n"
                  "\"delete\": {\"crm\": {\"propagate\": \"deactivate:status\"}}}",
                  {"customer.json:2:33: propagate 'deactivate:status': field 'status' is text, "
                   "not boolean"}},
        CheckCase{"OnCreateOnASharedField",
                  "{\"entity\": \"customer\",\n"
                  "\"fields\": {\"segment\": {\"owner\": \"shared\", \"on_create\": \"accept\"}}}",
                  {"customer.json:2:56: on_create applies to owned fields only; 'segment' is "
                   "shared (a create already takes it from the creating side)"}},
        CheckCase{"OnCreateUnknownWord",
                  "{\"entity\": \"customer\",\n"
                  "\"default\": {\"on_create\": \"seed\"}}",
                  {"customer.json:2:26: on_create: 'seed' is not one of default, accept"}}));

TEST(RulesOnCreate, ReadFromDefaultAndFieldsDescribedAndDiffed) {
  const core::EntityRules r = customer(R"({"entity": "customer",
    "default": {"owner": "erp", "on_create": "accept"},
    "fields": {"email": {"owner": "crm", "on_create": "default"}, "name": {"owner": "crm"},
               "segment": {"owner": "shared"}}})");
  EXPECT_EQ(r.unit_named("name")->policy.on_create, core::OnCreate::kAccept);
  EXPECT_EQ(r.unit_named("email")->policy.on_create, core::OnCreate::kDefault);
  EXPECT_EQ(r.unit_named("phone")->policy.on_create, core::OnCreate::kAccept);
  EXPECT_NE(describe(r).find("name                    owner=crm on_foreign_write=revert "
                             "compare=exact on_create=accept\n"),
            std::string::npos)
      << describe(r);
  // A shared unit inherits the word but is not seeded: nothing to show.
  EXPECT_NE(describe(r).find("segment                 owner=shared on_conflict=quarantine "
                             "compare=exact\n"),
            std::string::npos)
      << describe(r);
  EXPECT_EQ(r.unit_named("name")->rule_text != nullptr ? *r.unit_named("name")->rule_text : "",
            "customer.name owner=crm on_foreign_write=revert on_create=accept");
  EXPECT_EQ(diff_rules(ruleset_of(R"({"entity": "customer"})"), ruleset_of(R"({"entity": "customer",
                         "fields": {"name": {"owner": "erp", "on_create": "accept"}}})")),
            (std::vector<std::string>{"customer.name: on_create default -> accept"}));
}

// customer's config leaves credit_limit and the address's city unmapped on crm.
RulesContext crm_lacks(std::vector<std::string> fields) {
  RulesContext ctx = test_context();
  ctx.unmapped["customer"]["crm"] = std::move(fields);
  return ctx;
}

TEST(RulesUnmapped, FieldsASideDoesNotMapAreKeptAndDescribed) {
  const core::Ruleset rs =
      check_rules({{"customer.json", R"({"entity": "customer", "default": {"owner": "erp"},
                      "fields": {"credit_limit": {"owner": "erp"}}})"}},
                  crm_lacks({"credit_limit"}));
  const core::EntityRules& r = rs.entities.at("customer");
  EXPECT_FALSE(r.holds("crm", "credit_limit"));
  EXPECT_TRUE(r.holds("erp", "credit_limit"));
  EXPECT_TRUE(r.holds("crm", "name"));
  EXPECT_NE(describe(r).find("credit_limit            owner=erp on_foreign_write=revert "
                             "compare=exact unmapped on crm\n"),
            std::string::npos)
      << describe(r);
}

TEST(RulesUnmapped, AnOwnerMustMapItsFieldWhereverItsOwnerIsSaid) {
  // Named in fields: the owner's position.
  EXPECT_EQ(problems("{\"entity\": \"customer\",\n"
                     "\"fields\": {\"credit_limit\": {\"owner\": \"crm\"}}}",
                     crm_lacks({"credit_limit"})),
            (std::vector<std::string>{
                "customer.json:2:38: owner 'crm' of 'credit_limit' has no column for "
                "credit_limit (the config leaves it unmapped there); an owner must hold its "
                "field: give it to erp"}));
  // From default: default's owner.
  EXPECT_EQ(problems("{\"entity\": \"customer\",\n"
                     "\"default\": {\"owner\": \"crm\"}}",
                     crm_lacks({"credit_limit"})),
            (std::vector<std::string>{
                "customer.json:2:22: owner 'crm' (from default) of 'credit_limit' has no column "
                "for credit_limit (the config leaves it unmapped there); an owner must hold its "
                "field: give it to erp in fields.credit_limit"}));
  // From priority's first side, when nothing names an owner.
  EXPECT_EQ(problems("{\"entity\": \"customer\",\n"
                     "\"priority\": [\"crm\", \"erp\"]}",
                     crm_lacks({"credit_limit"})),
            (std::vector<std::string>{
                "customer.json:2:14: owner 'crm' (from default) of 'credit_limit' has no column "
                "for credit_limit (the config leaves it unmapped there); an owner must hold its "
                "field: give it to erp in fields.credit_limit"}));
}

TEST(RulesUnmapped, AGroupIsMappedWholeOrNotAtAll) {
  EXPECT_EQ(problems("{\"entity\": \"customer\",\n"
                     "\"groups\": {\"address\": [\"street\", \"city\"]},\n"
                     "\"fields\": {\"address\": {\"owner\": \"shared\"}}}",
                     crm_lacks({"city"})),
            (std::vector<std::string>{
                "customer.json:2:12: group 'address': crm maps street but not city; a group is "
                "written whole, so a side maps all of its fields or none"}));
}

TEST(RulesUnmapped, ADeactivationNeedsTheFlagOnTheOtherSides) {
  EXPECT_EQ(problems("{\"entity\": \"customer\",\n"
                     "\"delete\": {\"erp\": {\"propagate\": \"deactivate:active\"}}}",
                     crm_lacks({"active"})),
            (std::vector<std::string>{
                "customer.json:2:33: propagate 'deactivate:active' of erp: crm has no column for "
                "'active' (the config leaves it unmapped there), so the record could not be "
                "deactivated on crm; propagate \"delete\" instead, or map the field on crm"}));
  // crm's own delete detaches crm: it needs no flag there.
  EXPECT_TRUE(
      problems("{\"entity\": \"customer\", \"fields\": {\"active\": {\"owner\": \"erp\"}},\n"
               "\"delete\": {\"crm\": {\"propagate\": \"deactivate:active\"}}}",
               crm_lacks({"active"}))
          .empty());
}

}  // namespace
}  // namespace mdsync::rules
