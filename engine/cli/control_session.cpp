#include "control_session.hpp"

#include <pqxx/pqxx>
#include <regex>
#include <set>

#include "mdsync/store/conflict_queue.hpp"
#include "mdsync/store/control_schema.hpp"
#include "mdsync/store/ruleset_store.hpp"
#include "mdsync/store/steward_actions.hpp"

namespace mdsync::cli {

namespace {

std::string& role_slot() {
  static std::string role;
  return role;
}

std::string& display_slot() {
  static std::string name;
  return name;
}

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

ControlSession open_control(const config::Config& config, bool need_schema) {
  ControlSession s;
  s.conn = store::connect(config.control_dsn, "control store");
  {
    pqxx::read_transaction tx(*s.conn);
    s.session_user = tx.exec1("SELECT session_user")[0].as<std::string>();
  }
  role_slot() = s.session_user;
  if (need_schema) store::require_control_schema(*s.conn);
  return s;
}

const std::string& control_role() {
  return role_slot();
}

void set_display_name(const std::string& name) {
  display_slot() = name;
}

const std::string& display_name() {
  return display_slot();
}

std::string steward_identity(const ControlSession& session) {
  const std::string& as = display_slot();
  if (as.empty() || as == session.session_user) return session.session_user;
  return session.session_user + " as " + as;
}

void check_entity(const config::Config& config, const std::string& entity,
                  const std::string& command) {
  if (config.entity(entity) != nullptr) return;
  std::vector<std::string> names;
  for (const auto& e : config.entities) names.push_back(e.name);
  throw UsageError("'" + entity + "' is not an entity (entities: " + joined(names) + ")", command);
}

void check_side(const config::Config& config, const std::string& side, const std::string& command) {
  if (config.side(side) != nullptr) return;
  throw UsageError("'" + side + "' is not a side (sides: " + joined(config.side_names()) + ")",
                   command);
}

void check_field(const config::Config& config, ControlSession& session,
                 const std::optional<std::string>& entity, const std::string& field,
                 const std::string& command) {
  std::set<std::string> valid;
  for (const auto& e : config.entities) {
    if (entity && e.name != *entity) continue;
    for (const auto& [name, type] : e.fields) {
      (void)type;
      valid.insert(name);
    }
  }
  if (valid.count(field)) return;
  // Group names come from the ruleset in force (none applied yet: fields only).
  if (store::latest_ruleset_version(*session.conn)) {
    const core::Ruleset rs = store::load_ruleset(*session.conn, config);
    for (const auto& [name, rules] : rs.entities) {
      if (entity && name != *entity) continue;
      for (const core::Unit& u : rules.units) valid.insert(u.name);
    }
  }
  if (valid.count(field)) return;
  throw UsageError("'" + field + "' is not a field or group of " +
                       (entity ? "entity " + *entity : std::string("any entity")) + " (" +
                       joined(std::vector<std::string>(valid.begin(), valid.end())) + ")",
                   command);
}

void check_time(const std::string& text, const std::string& option, const std::string& command) {
  // Calendar ranges are checked here; PostgreSQL checks the rest (Feb 30) and says so.
  static const std::regex iso(
      "(\\d{4})-(\\d{2})-(\\d{2})"
      "([T ](\\d{2}):(\\d{2})(:(\\d{2})(\\.\\d{1,6})?)?(Z|[+-]\\d{2}(:?\\d{2})?)?)?");
  std::smatch m;
  bool ok = std::regex_match(text, m, iso);
  if (ok) {
    const int month = std::stoi(m[2]), day = std::stoi(m[3]);
    ok = month >= 1 && month <= 12 && day >= 1 && day <= 31;
    if (ok && m[4].matched)
      ok = std::stoi(m[5]) < 24 && std::stoi(m[6]) < 60 && (!m[8].matched || std::stoi(m[8]) < 60);
  }
  if (!ok)
    throw UsageError(option + ": '" + text +
                         "' is not an ISO 8601 time (e.g. 2024-05-01 or 2024-05-01T12:00:00Z)",
                     command);
}

void require_service_role(const ControlSession& session, const config::Config& config,
                          const std::string& refusal) {
  if (store::control_access(*session.conn) != store::ControlAccess::kWrite)
    throw store::StewardError(session.session_user + " may not " + refusal +
                              " as the service role (" + config.roles.service +
                              ", config `roles`)");
}

}  // namespace mdsync::cli
