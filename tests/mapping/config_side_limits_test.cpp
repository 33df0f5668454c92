// A side's operating limits in the config: `circuit_breaker` (failures, open_s, max_open_s) and
// `max_writes_per_s`, their defaults, and every bad value an error naming the key with its
// file, line and column. No database.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config_errors.hpp"
#include "mdsync/config/config.hpp"

namespace mdsync::config {
namespace {

// A config whose crm side has `crm_extra` (more keys of sides.crm, with a leading comma).
std::string with_crm(const std::string& crm_extra) {
  return R"({"control": "dbname=c",
  "sides": {"erp": {"dsn": "dbname=e"},
            "crm": {"dsn": "dbname=c")" +
         crm_extra + R"(}},
  "entities": {"customer": {"fields": {"name": "text"},
    "sides": {"erp": {"table": "t", "key": "id", "columns": {"name": "n"}},
              "crm": {"table": "t", "key": "id", "columns": {"name": "n"}}}}}})";
}

std::string only_error(const std::string& crm_extra) {
  const std::vector<std::string> errors = errors_of(with_crm(crm_extra));
  if (errors.size() != 1) {
    std::string all;
    for (const std::string& e : errors) all += e + "\n";
    return "expected one error, got " + std::to_string(errors.size()) + ":\n" + all;
  }
  return errors.front();
}

TEST(ConfigSideLimits, DefaultsAreABreakerAfterFiveFailuresAndNoRateLimit) {
  const Config cfg = parse_config(with_crm(""), "mdsync.json");
  for (const SideConfig& side : cfg.sides) {
    EXPECT_EQ(side.circuit_breaker.failures, 5) << side.name;
    EXPECT_EQ(side.circuit_breaker.open_s, 30) << side.name;
    EXPECT_EQ(side.circuit_breaker.max_open_s, 300) << side.name;
    EXPECT_FALSE(side.max_writes_per_s) << side.name;
  }
}

TEST(ConfigSideLimits, EverySettingLoads) {
  const Config cfg =
      parse_config(with_crm(R"(, "circuit_breaker": {"failures": 3, "open_s": 2, "max_open_s": 60},
                  "max_writes_per_s": 250)"),
                   "mdsync.json");
  const SideConfig& crm = *cfg.side("crm");
  EXPECT_EQ(crm.circuit_breaker.failures, 3);
  EXPECT_EQ(crm.circuit_breaker.open_s, 2);
  EXPECT_EQ(crm.circuit_breaker.max_open_s, 60);
  ASSERT_TRUE(crm.max_writes_per_s);
  EXPECT_EQ(*crm.max_writes_per_s, 250);
  const SideConfig& erp = *cfg.side("erp");
  EXPECT_EQ(erp.circuit_breaker.failures, 5);
  EXPECT_FALSE(erp.max_writes_per_s);
}

TEST(ConfigSideLimits, AnOpenTimeAboveTheDefaultMaximumRaisesTheMaximum) {
  const Config cfg =
      parse_config(with_crm(R"(, "circuit_breaker": {"open_s": 900})"), "mdsync.json");
  EXPECT_EQ(cfg.side("crm")->circuit_breaker.max_open_s, 900);
}

TEST(ConfigSideLimits, BadValuesAreErrorsNamingTheKeyAndWhereItIs) {
  EXPECT_EQ(only_error(R"(, "circuit_breaker": {"failures": 0})"),
            "mdsync.json:3:72: sides.crm.circuit_breaker.failures must be a positive whole number");
  EXPECT_EQ(only_error(R"(, "circuit_breaker": {"open_s": 1.5})"),
            "mdsync.json:3:70: sides.crm.circuit_breaker.open_s must be a positive whole number");
  EXPECT_EQ(only_error(R"(, "circuit_breaker": {"max_open_s": "60"})"),
            "mdsync.json:3:74: sides.crm.circuit_breaker.max_open_s must be a positive whole "
            "number");
  EXPECT_EQ(only_error(R"(, "circuit_breaker": {"open_s": 60, "max_open_s": 10})"),
            "mdsync.json:3:88: sides.crm.circuit_breaker.max_open_s (10) must be at least open_s "
            "(60): re-openings only get longer");
  EXPECT_EQ(only_error(R"(, "circuit_breaker": true)"),
            "mdsync.json:3:59: sides.crm.circuit_breaker must be an object, not boolean");
  EXPECT_EQ(only_error(R"(, "max_writes_per_s": -5)"),
            "mdsync.json:3:60: sides.crm.max_writes_per_s must be a positive whole number");
  EXPECT_EQ(only_error(R"(, "max_writes_per_s": 0)"),
            "mdsync.json:3:60: sides.crm.max_writes_per_s must be a positive whole number");
}

TEST(ConfigSideLimits, UnknownKeysAreErrorsListingTheAllowedOnes) {
  EXPECT_EQ(only_error(R"(, "circuit_breaker": {"failure": 3})"),
            "mdsync.json:3:60: unknown key 'failure' in sides.crm.circuit_breaker (allowed: "
            "failures, open_s, max_open_s)");
  const std::string e = only_error(R"(, "max_writes": 10)");
  EXPECT_NE(e.find("unknown key 'max_writes' in sides.crm (allowed: dsn, capture, notify, "
                   "timezone, circuit_breaker, max_writes_per_s)"),
            std::string::npos)
      << e;
}

}  // namespace
}  // namespace mdsync::config
