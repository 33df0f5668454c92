#include "steward_commands.hpp"

#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <pqxx/pqxx>

#include "mdsync/rules/located_json.hpp"
#include "mdsync/store/audit_chain.hpp"
#include "mdsync/store/db_connection.hpp"
#include "mdsync/store/duplicate_resolution.hpp"

namespace mdsync::cli {

using nlohmann::json;

namespace {

store::PgConnection control(const config::Config& config) {
  return store::connect(config.control_dsn, store::Role::kControl, "control store");
}

std::string shown(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// {"crm": {"segment": "smb"}} -> crm: segment="smb"
std::string values_line(const json& values) {
  std::string s;
  for (auto it = values.begin(); it != values.end(); ++it) {
    s += (s.empty() ? "" : "   ") + it.key() + ":";
    for (auto f = it.value().begin(); f != it.value().end(); ++f)
      s += " " + f.key() + "=" + shown(f.value());
  }
  return s;
}

std::string steward_name() {
  for (const char* var : {"MDSYNC_STEWARD", "USER", "LOGNAME"})
    if (const char* v = std::getenv(var); v && *v) return v;
  return "steward";
}

// Reads --value: a JSON object {field: value} or, for a one-field unit, a bare value.
// Numbers keep their text (money never becomes a double).
core::FieldValues parse_value(const std::string& text) {
  const rules::JsonNode node = rules::parse_located_json(text, "--value");
  auto scalar = [](const rules::JsonNode& n) -> core::Value {
    if (n.is_null()) return std::nullopt;
    if (n.is_object() || n.is_array())
      throw store::StewardError(
          "--value: a field's value must be a string, number, boolean or null");
    return n.text;
  };
  core::FieldValues out;
  if (node.is_object()) {
    for (const auto& m : node.members) out[m.key] = scalar(m.value);
  } else {
    out[""] = scalar(node);  // the unit's only field
  }
  return out;
}

}  // namespace

int cmd_conflicts_list(const config::Config& config, const store::ConflictFilter& filter,
                       bool as_json) {
  auto conn = control(config);
  const json list = store::list_conflicts(*conn, filter);
  if (as_json) {
    std::cout << list.dump(2) << "\n";
    return 0;
  }
  if (list.empty()) {
    std::cout << "no " << (filter.status == "all" ? "" : filter.status + " ") << "conflicts\n";
    return 0;
  }
  std::cout << std::left << std::setw(6) << "ID" << std::setw(12) << "ENTITY" << std::setw(8)
            << "RECORD" << std::setw(16) << "UNIT" << std::setw(20) << "KIND" << std::setw(10)
            << "STATUS"
            << "REASON\n";
  for (const json& c : list) {
    std::cout << std::left << std::setw(6) << c["id"].get<std::int64_t>() << std::setw(12)
              << c["entity"].get<std::string>() << std::setw(8)
              << (c["golden_id"].is_null() ? std::string("-")
                                           : std::to_string(c["golden_id"].get<std::int64_t>()))
              << std::setw(16) << c["unit"].get<std::string>() << std::setw(20)
              << c["kind"].get<std::string>() << std::setw(10) << c["status"].get<std::string>()
              << c["reason"].get<std::string>() << "\n"
              << "      " << values_line(c["values"]) << "\n";
  }
  return 0;
}

int cmd_conflicts_show(const config::Config& config, std::int64_t id, bool as_json) {
  auto conn = control(config);
  const json c = store::show_conflict(*conn, id);
  if (as_json) {
    std::cout << c.dump(2) << "\n";
    return 0;
  }
  std::cout << "conflict " << id << " (" << c["kind"].get<std::string>() << ", "
            << c["status"].get<std::string>() << ")\n"
            << "  record:  " << c["entity"].get<std::string>() << " "
            << (c["golden_id"].is_null() ? std::string("(none)")
                                         : std::to_string(c["golden_id"].get<std::int64_t>()))
            << ", from " << c["side"].get<std::string>() << ":" << c["row_key"].get<std::string>()
            << "\n"
            << "  unit:    " << c["unit"].get<std::string>() << "\n"
            << "  reason:  " << c["reason"].get<std::string>() << "\n"
            << "  opened:  " << shown(c["opened_at"]) << " by " << c["source"].get<std::string>()
            << " under ruleset v" << c["ruleset_version"].get<std::int64_t>() << "\n"
            << "  values:  " << values_line(c["values"]) << "\n";
  if (c.contains("golden")) std::cout << "  golden:  " << shown(c["golden"]) << "\n";
  for (const json& a : c["attached"])
    std::cout << "  later:   " << a["source"].get<std::string>() << " " << shown(a["values"])
              << "\n";
  if (!c["resolved_by"].is_null())
    std::cout << "  closed:  " << shown(c["resolved_at"]) << " by "
              << c["resolved_by"].get<std::string>() << " " << shown(c["resolution"]) << "\n";
  return 0;
}

int cmd_conflicts_resolve(const config::Config& config, const ResolveRequest& req) {
  auto conn = control(config);
  if (req.link || req.create) {
    store::DuplicateResolution d;
    d.kind = req.link ? store::DuplicateResolution::Kind::kLink
                      : store::DuplicateResolution::Kind::kCreate;
    d.target = req.link.value_or("");
    d.steward = steward_name();
    d.note = req.note.value_or("");
    try {
      std::cout << store::resolve_duplicate(*conn, config, req.ids.front(), d);
    } catch (const store::StewardError& e) {
      std::cerr << "mdsync: conflict " << req.ids.front() << ": " << e.what() << "\n";
      return 1;
    }
    return 0;
  }
  std::vector<std::int64_t> ids = req.ids;
  if (req.all) {
    store::ConflictFilter f;
    f.entity = req.entity;
    f.field = req.field;
    for (const json& c : store::list_conflicts(*conn, f))
      ids.push_back(c["id"].get<std::int64_t>());
    if (ids.empty()) {
      std::cout << "no open conflicts match\n";
      return 0;
    }
  }
  core::Resolution r;
  r.steward = steward_name();
  r.note = req.note.value_or("");
  if (req.dismiss) {
    r.kind = core::Resolution::Kind::kDismiss;
  } else if (req.take_side) {
    r.kind = core::Resolution::Kind::kTakeSide;
    r.side = *req.take_side;
  } else {
    r.kind = core::Resolution::Kind::kValue;
    r.values = parse_value(*req.value_json);
  }
  int failures = 0;
  for (std::int64_t id : ids) {
    try {
      std::cout << store::resolve_conflict(*conn, config, id, r);
    } catch (const store::StewardError& e) {
      std::cerr << "mdsync: conflict " << id << ": " << e.what() << "\n";
      ++failures;
    }
  }
  return failures == 0 ? 0 : 1;
}

int cmd_records_show(const config::Config& config, const std::string& entity, const std::string& id,
                     bool history, bool as_json) {
  auto conn = control(config);
  const json r = store::show_record(*conn, config, entity, id, history);
  if (as_json) {
    std::cout << r.dump(2) << "\n";
    return 0;
  }
  std::cout << entity << " " << r["golden_id"].get<std::int64_t>()
            << (r["deleted"].get<bool>() ? " (deleted)" : "") << "\n";
  const config::EntityConfig* e = config.entity(entity);
  for (const auto& [field, type] : e->fields) {
    (void)type;
    std::cout << "  " << std::left << std::setw(20) << field
              << (r["values"].contains(field) ? shown(r["values"][field]) : "null") << "\n";
  }
  for (auto it = r["sides"].begin(); it != r["sides"].end(); ++it) {
    const std::string state = it.value().value("state", "linked");
    std::cout << "  on " << it.key() << ": " << shown(it.value()["row_key"])
              << (state == "linked" ? std::string() : " (" + state + ", not synced)") << "\n";
  }
  for (const json& c : r["open_conflicts"])
    std::cout << "  open conflict " << c["id"].get<std::int64_t>() << " on "
              << c["unit"].get<std::string>() << " (" << c["kind"].get<std::string>() << ")\n";
  if (r["pending_writebacks"].get<std::int64_t>() > 0)
    std::cout << "  write-backs pending: " << r["pending_writebacks"].get<std::int64_t>() << "\n";
  if (history)
    for (const json& a : r["history"])
      std::cout << "  " << a["at"].get<std::string>() << " " << a["unit"].get<std::string>() << " "
                << a["decision"].get<std::string>() << " " << shown(a["old"]) << " -> "
                << shown(a["new"]) << " by " << a["source"].get<std::string>() << " (v"
                << a["ruleset_version"].get<std::int64_t>() << ": "
                << a["reason"].get<std::string>() << ")\n";
  return 0;
}

int cmd_audit(const config::Config& config, const store::AuditFilter& filter, bool as_json) {
  auto conn = control(config);
  const json rows = store::audit_log(*conn, filter);
  if (as_json) {
    std::cout << rows.dump(2) << "\n";
    return 0;
  }
  for (const json& a : rows)
    std::cout << a["at"].get<std::string>() << " " << a["entity"].get<std::string>() << " "
              << shown(a["golden_id"]) << " " << a["unit"].get<std::string>() << " "
              << a["decision"].get<std::string>() << " " << shown(a["old"]) << " -> "
              << shown(a["new"]) << " by " << a["source"].get<std::string>() << " ["
              << a["rule"].get<std::string>() << " v" << a["ruleset_version"].get<std::int64_t>()
              << "] " << a["reason"].get<std::string>() << "\n";
  return 0;
}

int cmd_audit_verify(const config::Config& config, bool as_json) {
  auto conn = control(config);
  const store::AuditChainReport report = store::verify_audit_chain(*conn);
  if (as_json) {
    std::cout << report.to_json().dump(2) << "\n";
  } else {
    std::cout << "audit chain: " << report.rows << " rows, "
              << (report.intact() ? "intact" : "BROKEN") << "\n";
    if (report.head_seq)
      std::cout << "head: chain_seq " << *report.head_seq << ", hash " << report.head_hash
                << " (keep a copy elsewhere: a later head must extend it)\n";
  }
  if (report.intact()) return 0;
  const store::AuditChainBreak& b = *report.first_broken;
  std::cerr << "mdsync: the audit chain is broken at "
            << (b.id ? "audit row " + std::to_string(*b.id) +
                           (b.chain_seq ? " (chain_seq " + std::to_string(*b.chain_seq) + ")" : "")
                : b.chain_seq ? "chain_seq " + std::to_string(*b.chain_seq)
                              : std::string("its head"))
            << ": " << b.problem << "\n";
  return 1;
}

int cmd_status(const config::Config& config, bool as_json) {
  auto conn = control(config);
  const json s = store::status_report(*conn, config);
  if (as_json) {
    std::cout << s.dump(2) << "\n";
    return 0;
  }
  std::cout << "ruleset: "
            << (s["ruleset_version"].is_null() ? std::string("none applied")
                                               : "v" + shown(s["ruleset_version"]))
            << "\n";
  for (auto it = s["sides"].begin(); it != s["sides"].end(); ++it) {
    const json& v = it.value();
    std::cout << "side " << it.key() << ": "
              << (v["reachable"].get<bool>() ? "reachable" : "UNREACHABLE") << ", capture backlog "
              << shown(v["capture_backlog"]) << ", write-backs pending "
              << v["writeback_pending"].get<std::int64_t>() << " (oldest "
              << v["writeback_lag_seconds"].get<std::int64_t>() << " s), failed "
              << v["writeback_failed"].get<std::int64_t>() << ", changes not reconciled "
              << v["capture_errors"].get<std::int64_t>() << "\n";
    if (v["writeback_stuck"].get<std::int64_t>() > 0)
      std::cout << "  " << v["writeback_stuck"].get<std::int64_t>()
                << " row(s) whose write-backs keep being superseded with no change captured: "
                   "they back off (see `mdsync records show`, and the outbox note)\n";
    if (!v["last_error"].is_null())
      std::cout << "  last error " << shown(v["last_error_at"]) << ": "
                << v["last_error"].get<std::string>()
                << (v["consecutive_failures"].get<int>() > 0
                        ? " (" + std::to_string(v["consecutive_failures"].get<int>()) + " in a row)"
                        : std::string(" (recovered since)"))
                << "\n";
  }
  std::cout << "open conflicts: "
            << (s["open_conflicts"].empty() ? "none" : shown(s["open_conflicts"])) << "\n";
  return 0;
}

}  // namespace mdsync::cli
