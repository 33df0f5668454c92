#include "mdsync/store/grants.hpp"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <set>
#include <sstream>

namespace mdsync::store {

namespace {

std::string quote_literal(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
  return q + "'";
}

std::string table_ref(const std::string& schema, const std::string& table) {
  return quote_ident(schema) + "." + quote_ident(table);
}

// Text for a comment line: a config value with a line break must not end the comment and
// become a statement of a script a superuser runs.
std::string comment_text(const std::string& s) {
  std::string out;
  for (char c : s) out += static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?' : c;
  return out;
}

// A dollar-quote tag that `body` does not contain.
std::string dollar_tag(const std::string& body) {
  std::string tag = "$mdsync$";
  for (int n = 1; body.find(tag) != std::string::npos; ++n)
    tag = "$mdsync" + std::to_string(n) + "$";
  return tag;
}

}  // namespace

std::string quote_ident(const std::string& name) {
  std::string q = "\"";
  for (char c : name) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::vector<std::string> side_capture_privileges(const config::RolesConfig& roles,
                                                 const std::string& capture_sequence) {
  const std::string capture = quote_ident(roles.capture);
  return {
      "REVOKE ALL ON SCHEMA mdsync FROM PUBLIC",
      "REVOKE ALL ON ALL TABLES IN SCHEMA mdsync FROM PUBLIC",
      "REVOKE ALL ON ALL SEQUENCES IN SCHEMA mdsync FROM PUBLIC",
      // Trigger functions are never called directly; nobody needs EXECUTE to fire them.
      "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA mdsync FROM PUBLIC",
      // Exactly what the capture functions do as this role: insert a capture row (its seq
      // from the serial's sequence), and read whether the engine waits for a NOTIFY.
      "REVOKE ALL ON SCHEMA mdsync FROM " + capture,
      "REVOKE ALL ON ALL TABLES IN SCHEMA mdsync FROM " + capture,
      "REVOKE ALL ON ALL SEQUENCES IN SCHEMA mdsync FROM " + capture,
      "GRANT USAGE ON SCHEMA mdsync TO " + capture,
      "GRANT INSERT ON mdsync.capture TO " + capture,
      "GRANT SELECT ON mdsync.wake TO " + capture,
      "GRANT USAGE ON SEQUENCE " + capture_sequence + " TO " + capture,
  };
}

std::vector<std::string> control_privileges(const config::RolesConfig& roles) {
  const std::string service = quote_ident(roles.service), steward = quote_ident(roles.steward),
                    viewer = quote_ident(roles.viewer);
  const std::string all = viewer + ", " + steward + ", " + service;
  std::vector<std::string> out = {
      "REVOKE ALL ON SCHEMA mdsync FROM PUBLIC",
      "REVOKE ALL ON ALL TABLES IN SCHEMA mdsync FROM PUBLIC",
      "REVOKE ALL ON ALL SEQUENCES IN SCHEMA mdsync FROM PUBLIC",
      "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA mdsync FROM PUBLIC",
      // From nothing: a privilege an older mdsync or a person granted does not linger.
      "REVOKE ALL ON ALL TABLES IN SCHEMA mdsync FROM " + all,
      "REVOKE ALL ON ALL SEQUENCES IN SCHEMA mdsync FROM " + all,
      "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA mdsync FROM " + all,
      "GRANT USAGE ON SCHEMA mdsync TO " + all,
  };
  // What everybody may read: every table but the one that holds the engine's secret, of which
  // only the store's identity is readable.
  static const char* const kTables[] = {
      "ruleset",        "golden",           "crosswalk",  "conflict",
      "audit",          "audit_chain",      "audit_head", "capture_done",
      "capture_error",  "outbox",           "side_state", "side_event",
      "match_key",      "held_match_key",   "match_spec", "duplicate_candidate",
      "steward_action", "schema_migrations"};
  std::string tables;
  for (const char* t : kTables)
    tables += (tables.empty() ? "mdsync." : ", mdsync.") + std::string(t);
  out.push_back("GRANT SELECT ON " + tables + " TO " + all);
  out.push_back("GRANT SELECT (store_id, created_at) ON mdsync.store_identity TO " + viewer + ", " +
                steward);
  // Stewards decide through functions that record who asked (the session user).
  out.push_back(
      "GRANT EXECUTE ON FUNCTION mdsync.request_steward_action(text, bigint[], text, jsonb,"
      " text, text, text), mdsync.apply_ruleset(jsonb) TO " +
      steward);
  // The engine: the secret, the record tables, an append-only audit, the stewards' queue.
  out.push_back("GRANT SELECT ON mdsync.store_identity TO " + service);
  static const std::pair<const char*, const char*> kWrites[] = {
      {"golden", "INSERT, UPDATE"},
      {"crosswalk", "INSERT, UPDATE, DELETE"},
      {"conflict", "INSERT, UPDATE"},
      {"audit", "INSERT"},
      {"capture_done", "INSERT, DELETE"},
      {"capture_error", "INSERT, UPDATE"},
      {"outbox", "INSERT, UPDATE"},
      {"side_state", "INSERT, UPDATE"},
      {"side_event", "INSERT"},
      {"match_key", "INSERT, DELETE"},
      {"match_spec", "INSERT, UPDATE"},
      {"duplicate_candidate", "INSERT"},
      {"steward_action", "UPDATE"},
      {"held_match_key", "INSERT, DELETE"},
      {"planning_queue", "SELECT, INSERT, DELETE"},
  };
  for (const auto& [table, privileges] : kWrites)
    out.push_back(std::string("GRANT ") + privileges + " ON mdsync." + table + " TO " + service);
  out.push_back("GRANT USAGE ON ALL SEQUENCES IN SCHEMA mdsync TO " + service);
  return out;
}

std::string side_login_role(const config::SideConfig& side) {
  if (auto user = config::dsn_parameter(side.dsn, "user"); user && !user->empty()) return *user;
  if (const char* env = std::getenv("PGUSER"); env && *env) return env;
  if (const passwd* pw = ::getpwuid(::geteuid())) return pw->pw_name;
  return "postgres";
}

std::string grants_script(const config::Config& config) {
  std::ostringstream out;
  out << "-- mdsync: roles and grants for `mdsync init` (" << comment_text(config.path) << ").\n"
      << "-- Run each side's section as a superuser in that side's database; roles are\n"
      << "-- cluster-wide, so running a role's part twice on one cluster changes nothing.\n"
      << "-- Afterwards `mdsync init` needs neither CREATEROLE nor CREATE on the database.\n";
  {
    const std::string login = [&] {
      if (auto user = config::dsn_parameter(config.control_dsn, "user"); user && !user->empty())
        return *user;
      if (const char* env = std::getenv("PGUSER"); env && *env) return std::string(env);
      if (const passwd* pw = ::getpwuid(::geteuid())) return std::string(pw->pw_name);
      return std::string("postgres");
    }();
    auto param = [&](const char* key, const char* fallback) {
      auto v = config::dsn_parameter(config.control_dsn, key);
      return v && !v->empty() ? *v : std::string(fallback);
    };
    out << "\n-- control store: in database "
        << comment_text(param("dbname", "(the DSN's default)")) << " (host "
        << comment_text(param("host", "(default)")) << ", port "
        << comment_text(param("port", "5432")) << "); mdsync init connects as "
        << comment_text(login) << "\n"
        << "-- the roles people and the engine are given (GRANT ROLE TO a login): the engine's\n"
        << "-- login gets the service role, stewards the steward role, readers the viewer role\n";
    for (const std::string* role :
         {&config.roles.service, &config.roles.steward, &config.roles.viewer}) {
      const std::string create = "BEGIN CREATE ROLE " + quote_ident(*role) +
                                 " NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END";
      const std::string tag = dollar_tag(create);
      out << "DO " << tag << " " << create << " " << tag << ";\n";
    }
    out << "CREATE SCHEMA IF NOT EXISTS mdsync AUTHORIZATION " << quote_ident(login) << ";\n"
        << "-- `mdsync init` then grants each role what it may do on the schema's objects.\n";
  }
  const std::string capture = quote_ident(config.roles.capture);
  for (const config::SideConfig& side : config.sides) {
    const std::string login = side_login_role(side);
    const std::string who = quote_ident(login);
    auto param = [&](const char* key, const char* fallback) {
      auto v = config::dsn_parameter(side.dsn, key);
      return v && !v->empty() ? *v : std::string(fallback);
    };
    out << "\n-- side " << side.name << ": in database "
        << comment_text(param("dbname", "(the DSN's default)")) << " (host "
        << comment_text(param("host", "(default)")) << ", port "
        << comment_text(param("port", "5432")) << "); mdsync connects as " << comment_text(login)
        << "\n";
    const std::string create_role =
        "BEGIN CREATE ROLE " + capture + " NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END";
    const std::string tag = dollar_tag(create_role);
    out << "-- the capture role owns the capture functions, which run as it (SECURITY DEFINER)\n"
        << "DO " << tag << " " << create_role << " " << tag << ";\n"
        << "-- mdsync's role makes it the owner of the functions it creates, so it is a member\n"
        << "GRANT " << capture << " TO " << who << ";\n"
        << "CREATE SCHEMA IF NOT EXISTS mdsync AUTHORIZATION " << who << ";\n";
    // The mapped tables (capture triggers, reads, write-backs), and the tables only read
    // (lookups, delete guards).
    std::set<std::string> schemas, written, read;
    std::vector<std::string> written_order, read_order;
    auto add = [&](std::set<std::string>& set, std::vector<std::string>& order,
                   const std::string& schema, const std::string& table) {
      schemas.insert(schema);
      if (set.insert(table_ref(schema, table)).second) order.push_back(table_ref(schema, table));
    };
    for (const config::EntityConfig& entity : config.entities) {
      const config::SideMapping* m = entity.mapping_for(side.name);
      if (m == nullptr) continue;
      add(written, written_order, m->schema, m->table);
      for (const mapping::FieldMapping& fm : m->fields)
        if (fm.lookup)
          add(read, read_order, fm.lookup->schema.empty() ? m->schema : fm.lookup->schema,
              fm.lookup->table);
      for (const mapping::DeleteGuard& g : m->delete_guards)
        add(read, read_order, g.schema.empty() ? m->schema : g.schema, g.table);
    }
    for (const std::string& schema : schemas)
      out << "GRANT USAGE ON SCHEMA " << quote_ident(schema) << " TO " << who << ";\n";
    for (const std::string& t : written_order)
      out << "GRANT SELECT, INSERT, UPDATE, DELETE, TRIGGER ON " << t << " TO " << who << ";\n";
    for (const std::string& t : read_order)
      if (!written.count(t)) out << "GRANT SELECT ON " << t << " TO " << who << ";\n";
    if (!written_order.empty()) {
      // Inserts of records created elsewhere take the side's generated keys: the sequences
      // behind the mapped tables' serial or identity columns.
      std::string tables;
      for (const std::string& t : written_order)
        tables += (tables.empty() ? "" : ", ") + quote_literal(t) + "::regclass";
      const std::string body =
          "DECLARE s regclass; BEGIN FOR s IN SELECT DISTINCT d.objid::regclass FROM pg_depend d"
          " JOIN pg_class c ON c.oid = d.objid AND c.relkind = 'S' WHERE d.classid ="
          " 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid IN (" +
          tables +
          ") AND d.deptype IN ('a', 'i') LOOP EXECUTE format('GRANT USAGE ON SEQUENCE"
          " %s TO %I', s, " +
          quote_literal(login) + "); END LOOP; END";
      const std::string seq_tag = dollar_tag(body);
      out << "DO " << seq_tag << " " << body << " " << seq_tag << ";\n";
    }
  }
  return out.str();
}

}  // namespace mdsync::store
