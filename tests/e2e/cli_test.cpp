// End-to-end tests of the CLI surface: help and usage errors (exit 2 with a one-line hint),
// and the checks of broken rules and config files (exit 1, naming file, line and column).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "e2e_harness.hpp"

namespace mdsync::e2e {
namespace {

std::size_t line_count(const std::string& s) {
  std::size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TEST(CliTest, EveryCommandHasHelp) {
  Scenario s("cli_help");
  const std::vector<std::vector<std::string>> commands = {
      {},
      {"init"},
      {"rules"},
      {"rules", "check"},
      {"rules", "apply"},
      {"rules", "show"},
      {"rules", "diff"},
      {"run"},
      {"status"},
      {"conflicts"},
      {"conflicts", "list"},
      {"conflicts", "show"},
      {"conflicts", "resolve"},
      {"conflicts", "dismiss"},
      {"records", "show"},
      {"audit"},
      {"verify"},
      {"pause"},
      {"resume"},
  };
  for (auto args : commands) {
    std::string name = "mdsync";
    for (const auto& a : args) name += " " + a;
    args.push_back("--help");
    const RunResult r = s.mdsync(args);
    EXPECT_EQ(r.exit_code, 0) << name << "\n" << r.err;
    EXPECT_NE(r.out.find("Usage:"), std::string::npos) << name << " --help:\n" << r.out;
  }
  for (const auto& [args, expected] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--help"}, "conflicts"}, {{"run", "--help"}, "--once"}}) {
    const RunResult r = s.mdsync(args);
    EXPECT_EQ(r.exit_code, 0) << args.front() << ": " << r.err;
    EXPECT_NE(r.out.find(expected), std::string::npos) << r.out;
  }
}

TEST(CliTest, VersionNamesTheControlSchemaThisBinaryCarries) {
  Scenario s("cli_version");
  const RunResult r = s.mdsync({"--version"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The highest migration in schema/control, which `init` brings a control store up to.
  int latest = 0;
  for (const auto& entry : std::filesystem::directory_iterator(MDSYNC_SCHEMA_DIR))
    latest = std::max(latest, std::stoi(entry.path().filename().string().substr(0, 4)));
  EXPECT_EQ(r.out,
            "mdsync " MDSYNC_PROJECT_VERSION " (control schema " + std::to_string(latest) + ")\n");
}

TEST(CliTest, UsageErrorsExitTwoWithOneLineHint) {
  Scenario s("cli_usage");
  s.write_config();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--bogus"}, "--bogus"},
      {{}, "a command is required"},
      {{"rules"}, "rules needs a command: check, apply, show or diff"},
      {{"frobnicate"}, "frobnicate"},
      {{"conflicts", "list", "--kind", "nonsense"}, "nonsense"},
      {{"conflicts", "list", "--nope"}, "--nope"},
      {{"conflicts", "resolve", "1"}, "needs --take SIDE or --value JSON"},
      {{"conflicts", "resolve", "1", "--take", "erp", "--value", "\"x\""}, "excludes"},
      {{"conflicts", "resolve", "--take", "erp"}, "give conflict ids or --all"},
      {{"conflicts", "show"}, "ID"},
      {{"records", "show", "customer"}, "ID"},
  };
  for (const auto& [args, needle] : cases) {
    std::string name = "mdsync";
    for (const auto& a : args) name += " " + a;
    const RunResult r = s.mdsync(args);
    EXPECT_EQ(r.exit_code, 2) << name << "\n" << r.err;
    EXPECT_EQ(line_count(r.err), 1u) << name << ":\n" << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << name << ":\n" << r.err;
    EXPECT_NE(r.err.find("--help"), std::string::npos) << name << ":\n" << r.err;
  }
}

TEST(CliTest, MissingConfigFileIsAClearError) {
  Scenario s("cli_noconfig");
  const RunResult r = s.mdsync({"--config", "/nonexistent/mdsync.json", "rules", "check"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot read config file '/nonexistent/mdsync.json'"), std::string::npos)
      << r.err;
}

struct BrokenRules {
  const char* what;
  const char* text;
  const char* expected;  // "customer.json:LINE:COL: message start"
};

class BrokenRulesTest : public ::testing::TestWithParam<BrokenRules> {};

TEST_P(BrokenRulesTest, RulesCheckNamesFileLineAndColumn) {
  Scenario s("rules_broken");
  s.write_config(GetParam().text);
  const RunResult r = s.mdsync({"rules", "check"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.err.find(s.dir() + "/rules/" + GetParam().expected), std::string::npos)
      << GetParam().what << ":\n"
      << r.err;
  // A broken file never becomes a ruleset: apply refuses it too and nothing is stored.
  const RunResult apply = s.mdsync({"rules", "apply"});
  EXPECT_EQ(apply.exit_code, 1);
}

INSTANTIATE_TEST_SUITE_P(
    Checks, BrokenRulesTest,
    ::testing::Values(
        BrokenRules{"malformed JSON",
                    "{\n  \"entity\": \"customer\",\n  \"fields\": {\n    \"phone\": {\"owner\": "
                    "\"crm\"}\n    \"email\": {}\n  }\n}\n",
                    "customer.json:5:5: "},
        BrokenRules{"owner not a side",
                    "{\n  \"entity\": \"customer\",\n  \"fields\": {\n    \"phone\": {\"owner\": "
                    "\"sap\"}\n  }\n}\n",
                    "customer.json:4:24: owner 'sap' is not a side"},
        BrokenRules{"field the entity lacks",
                    "{\n  \"entity\": \"customer\",\n  \"fields\": {\n    \"fax\": {\"owner\": "
                    "\"crm\"}\n  }\n}\n",
                    "customer.json:4:5: entity customer has no field 'fax'"},
        BrokenRules{"unknown policy word",
                    "{\n  \"entity\": \"customer\",\n  \"fields\": {\n    \"segment\": {\"owner\": "
                    "\"shared\", \"on_conflict\": \"newest\"}\n  }\n}\n",
                    "customer.json:4:51: on_conflict: 'newest' is not one of"},
        BrokenRules{"field in two groups",
                    "{\n  \"entity\": \"customer\",\n  \"groups\": {\n    \"a\": [\"street\", "
                    "\"city\"],\n    \"b\": [\"city\", \"zip\"]\n  }\n}\n",
                    "customer.json:5:11: field 'city' is in groups 'a' and 'b'"}),
    [](const ::testing::TestParamInfo<BrokenRules>& info) {
      std::string name = info.param.what;
      for (char& c : name)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      return name;
    });

TEST(CliTest, BrokenConfigNamesFileLineAndColumn) {
  Scenario s("config_broken");
  s.write_config();
  write_file(s.config_path(), "{\n  \"control\": \"dbname=x\",\n  \"sidez\": {}\n}\n");
  const RunResult r = s.mdsync({"rules", "check"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(s.config_path() + ":3:3: unknown key 'sidez' in the config"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("the config needs \"sides\""), std::string::npos) << r.err;
}

TEST(CliTest, BadVerifySettingsNameTheKey) {
  Scenario s("config_verify");
  s.write_config(default_rules(),
                 R"({"service": {"verify_interval_s": 0, "verify_repair": "yes"}})");
  const RunResult r = s.mdsync({"rules", "check"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("verify_interval_s"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("service.verify_repair must be true or false"), std::string::npos) << r.err;
}

// Until the store applies them, mapping options must stop init and run rather than sync raw
// side values (micros as if they were amounts, country ids as if they were codes).
TEST(CliTest, RulesCheckAcceptsTheDemoRules) {
  Scenario s("rules_ok");
  s.write_config();
  const RunResult r = s.mdsync({"rules", "check"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "ok: customer (7 units, 10 fields)\n");
}

}  // namespace
}  // namespace mdsync::e2e
