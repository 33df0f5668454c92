// The config's `roles` (the PostgreSQL role names mdsync creates and grants) and the reading of
// a DSN's connection parameters without connecting (for the DBA's grants script). No database.
#include <gtest/gtest.h>

#include <string>

#include "mdsync/config/config.hpp"

namespace mdsync::config {
namespace {

std::string with_roles(const std::string& roles) {
  return R"({"control": "dbname=c", "sides": {"erp": {"dsn": "dbname=e"}, "crm": {"dsn": "dbname=c"}},
  "entities": {"customer": {"fields": {"name": "text"},
    "sides": {"erp": {"table": "t", "key": "id", "columns": {"name": "n"}},
              "crm": {"table": "t", "key": "id", "columns": {"name": "n"}}}}})" +
         roles + "}";
}

std::string first_error(const std::string& text) {
  try {
    parse_config(text, "mdsync.json");
  } catch (const rules::CheckError& e) {
    return e.diagnostics().front().to_string();
  }
  return "";
}

TEST(ConfigRoles, DefaultsAndOverrides) {
  const Config plain = parse_config(with_roles(""), "mdsync.json");
  EXPECT_EQ(plain.roles.capture, "mdsync_capture");
  EXPECT_EQ(plain.roles.service, "mdsync_service");
  EXPECT_EQ(plain.roles.steward, "mdsync_steward");
  EXPECT_EQ(plain.roles.viewer, "mdsync_viewer");
  const Config named =
      parse_config(with_roles(R"(, "roles": {"capture": "acme_capture", "viewer": "acme_viewer"})"),
                   "mdsync.json");
  EXPECT_EQ(named.roles.capture, "acme_capture");
  EXPECT_EQ(named.roles.service, "mdsync_service");
  EXPECT_EQ(named.roles.viewer, "acme_viewer");
}

TEST(ConfigRoles, BadNamesAreErrorsWithPosition) {
  const std::string bad = first_error(with_roles(R"(, "roles": {"capture": "Capture; DROP"})"));
  EXPECT_EQ(bad.rfind("mdsync.json:4:", 0), 0u) << bad;
  EXPECT_NE(bad.find(": roles.capture: 'Capture; DROP' must be lower-case letters, digits and _"
                     " (at most 63, not starting with pg_)"),
            std::string::npos)
      << bad;
  EXPECT_NE(first_error(with_roles(R"(, "roles": {"capture": "pg_monitor"})"))
                .find("not starting with pg_"),
            std::string::npos);
  EXPECT_NE(first_error(with_roles(R"(, "roles": {"capturer": "x"})"))
                .find("unknown key 'capturer' in roles"),
            std::string::npos);
  EXPECT_NE(first_error(with_roles(R"(, "roles": {"service": "mdsync_capture"})"))
                .find("'mdsync_capture' is named for two roles"),
            std::string::npos);
}

TEST(DsnParameter, KeyValueAndUriForms) {
  const std::string kv = "host='/tmp/my dir' port=5433 user=app_init password='p w' dbname=erp";
  EXPECT_EQ(dsn_parameter(kv, "host"), "/tmp/my dir");
  EXPECT_EQ(dsn_parameter(kv, "port"), "5433");
  EXPECT_EQ(dsn_parameter(kv, "user"), "app_init");
  EXPECT_EQ(dsn_parameter(kv, "dbname"), "erp");
  EXPECT_EQ(dsn_parameter(R"(dbname='a\'b')", "dbname"), "a'b");
  EXPECT_EQ(dsn_parameter("dbname=erp", "user"), std::nullopt);

  const std::string uri = "postgresql://app%40x:secret@db.example:6543/crm%20db?sslmode=require";
  EXPECT_EQ(dsn_parameter(uri, "user"), "app@x");
  EXPECT_EQ(dsn_parameter(uri, "host"), "db.example");
  EXPECT_EQ(dsn_parameter(uri, "port"), "6543");
  EXPECT_EQ(dsn_parameter(uri, "dbname"), "crm db");
  EXPECT_EQ(dsn_parameter(uri, "sslmode"), "require");
  EXPECT_EQ(dsn_parameter("postgres://[::1]:5432/x?user=q", "user"), "q");
  EXPECT_EQ(dsn_parameter("postgres://[::1]:5432/x", "host"), "::1");
  EXPECT_EQ(dsn_parameter("postgresql:///x", "host"), std::nullopt);
}

}  // namespace
}  // namespace mdsync::config
