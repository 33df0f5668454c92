#include "mdsync/store/database_errors.hpp"

#include <exception>
#include <pqxx/pqxx>
#include <regex>

namespace mdsync::store {

namespace {

// libpq's text: "ERROR:  permission denied for table conflict\nCONTEXT: ...". The first line
// names the cause; the rest can hold parameter values and internal statement text.
std::string cause(const std::string& what) {
  std::string s = what.substr(0, what.find('\n'));
  for (const char* prefix : {"ERROR:  ", "FATAL:  ", "ERROR: ", "FATAL: "})
    if (s.rfind(prefix, 0) == 0) s = s.substr(std::string(prefix).size());
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

// The role as an SQL identifier for a GRANT the steward can paste.
std::string role_sql(const std::string& role) {
  static const std::regex plain("[a-z_][a-z0-9_$]*");
  if (std::regex_match(role, plain)) return role;
  std::string q = "\"";
  for (char c : role) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string privilege_hint(const std::string& why, const std::string& database,
                           const std::string& role) {
  const bool control = database == "control store";
  const std::string who = role.empty() ? (control ? std::string("the role of the `control` DSN")
                                                  : "the role of " + database + "'s DSN")
                                       : role_sql(role);
  // "permission denied for table conflict", "... for schema mdsync", "... for sequence x_id_seq"
  static const std::regex object(
      "permission denied for (table|relation|schema|sequence|function) (.+)");
  std::smatch m;
  std::string grant;
  if (std::regex_search(why, m, object)) {
    const std::string kind = m[1], name = m[2];
    if (kind == "schema")
      grant = "GRANT USAGE ON SCHEMA " + name + " TO " + who;
    else if (kind == "sequence")
      grant = "GRANT USAGE, SELECT ON SEQUENCE " + name + " TO " + who;
    else if (kind == "function")
      grant = "GRANT EXECUTE ON FUNCTION " + name + " TO " + who;
    else if (control)
      grant = "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA mdsync TO " + who +
              "; GRANT USAGE ON ALL SEQUENCES IN SCHEMA mdsync TO " + who;
    else
      grant = "GRANT SELECT, INSERT, UPDATE, DELETE ON " + name + " TO " + who;
  } else {
    grant = "GRANT the privileges it needs to " + who;
  }
  return database + ": " + why + (role.empty() ? "" : " (connected as " + role_sql(role) + ")") +
         "; a database owner can fix it: " + grant;
}

}  // namespace

std::string steward_message(const std::exception& e, const std::string& database,
                            const std::string& role) {
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    const std::string why = cause(sql->what());
    // libpqxx 6.4 keeps the SQLSTATE only on errors it has no class for; the ones it has a
    // class for (insufficient_privilege, undefined_table, ...) are told by their class.
    const std::string& state = sql->sqlstate();
    if (state == "42501" || dynamic_cast<const pqxx::insufficient_privilege*>(sql) != nullptr)
      return privilege_hint(why, database, role);
    // undefined_table, undefined_schema, undefined_function, undefined_column: on mdsync's
    // own objects that means `init` never ran there, or ran with an older mdsync.
    const bool undefined = state == "42P01" || state == "3F000" || state == "42883" ||
                           state == "42703" ||
                           dynamic_cast<const pqxx::undefined_table*>(sql) != nullptr ||
                           dynamic_cast<const pqxx::undefined_function*>(sql) != nullptr ||
                           dynamic_cast<const pqxx::undefined_column*>(sql) != nullptr;
    if (undefined && (database == "control store" || why.find("mdsync") != std::string::npos))
      return database + " is not initialized for this mdsync (" + why + "): run `mdsync init`";
    return database + ": " + why;
  }
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr)
    return database + ": the connection was lost: " + cause(e.what());
  if (dynamic_cast<const pqxx::failure*>(&e) != nullptr ||
      dynamic_cast<const pqxx::usage_error*>(&e) != nullptr)
    return database + ": " + cause(e.what());
  return e.what();
}

void rethrow_for_steward(const std::string& database, const std::string& role) {
  try {
    throw;
  } catch (const pqxx::failure& e) {
    throw DatabaseError(steward_message(e, database, role));
  }
}

}  // namespace mdsync::store
