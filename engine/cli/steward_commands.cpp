#include "steward_commands.hpp"

#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <pqxx/pqxx>
#include <sstream>

#include "control_session.hpp"
#include "mdsync/rules/located_json.hpp"
#include "mdsync/store/audit_chain.hpp"
#include "mdsync/store/db_connection.hpp"
#include "mdsync/store/duplicate_resolution.hpp"
#include "mdsync/store/record_view.hpp"
#include "mdsync/store/steward_actions.hpp"
#include "text_table.hpp"

namespace mdsync::cli {

using nlohmann::json;

namespace {

std::string shown(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// A time, id or count as people read it: a string without its quotes, null as "-".
std::string plain(const json& j) {
  if (j.is_null()) return "-";
  return j.is_string() ? j.get<std::string>() : shown(j);
}

// {"street": "Main 1", "city": null} -> city=NULL street="Main 1" (values keep their quotes, so
// an empty string and NULL read apart)
std::string fields_line(const json& values) {
  if (!values.is_object()) return shown(values);
  std::string s;
  for (auto f = values.begin(); f != values.end(); ++f)
    s += (s.empty() ? "" : " ") + f.key() + "=" + (f.value().is_null() ? "NULL" : shown(f.value()));
  return s;
}

// {"customer": {"concurrent_edit": 1, "foreign_write": 2}} -> customer: 1 concurrent_edit, 2
// foreign_write
std::string counts_line(const json& by_entity) {
  std::string s;
  for (auto e = by_entity.begin(); e != by_entity.end(); ++e) {
    s += (s.empty() ? "" : "; ") + e.key() + ":";
    std::string kinds;
    for (auto k = e.value().begin(); k != e.value().end(); ++k)
      kinds += (kinds.empty() ? " " : ", ") + plain(k.value()) + " " + k.key();
    s += kinds;
  }
  return s;
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

// Reads --value: a JSON object {field: value} or, for a one-field unit, a bare value.
// Numbers keep their text (money never becomes a double). Malformed JSON is a usage error.
core::FieldValues parse_value(const std::string& text) {
  constexpr const char* kCommand = "conflicts resolve";
  rules::JsonNode node;
  try {
    node = rules::parse_located_json(text, "--value");
  } catch (const rules::CheckError& e) {
    const std::string why =
        e.diagnostics().empty() ? std::string(e.what()) : e.diagnostics().front().to_string();
    throw UsageError("--value is not valid JSON: " + why.substr(0, why.find('\n')) +
                         " (a string needs its quotes: '\"smb\"')",
                     kCommand);
  }
  auto scalar = [&](const rules::JsonNode& n) -> core::Value {
    if (n.is_null()) return std::nullopt;
    if (n.is_object() || n.is_array())
      throw UsageError("--value: a field's value must be a string, number, boolean or null",
                       kCommand);
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

// A record's golden id with its name beside it ("12 Acme Ltd"), "-" for no record.
std::string record_cell(const json& golden_id, const std::map<std::int64_t, std::string>& labels) {
  if (golden_id.is_null()) return "-";
  const std::int64_t id = golden_id.get<std::int64_t>();
  const auto label = labels.find(id);
  return std::to_string(id) + (label == labels.end() ? "" : " " + cell_text(label->second, 32));
}

}  // namespace

int cmd_conflicts_list(const config::Config& config, const store::ConflictFilter& filter,
                       bool as_json) {
  if (filter.entity) check_entity(config, *filter.entity, "conflicts list");
  ControlSession session = open_control(config);
  if (filter.field) check_field(config, session, filter.entity, *filter.field, "conflicts list");
  const json list = store::list_conflicts(*session.conn, filter);
  if (as_json) {
    std::cout << list.dump(2) << "\n";
    return 0;
  }
  if (list.empty()) {
    std::cout << "no " << (filter.status == "all" ? "" : filter.status + " ") << "conflicts\n";
    return 0;
  }
  std::vector<std::int64_t> gids;
  for (const json& c : list)
    if (!c["golden_id"].is_null()) gids.push_back(c["golden_id"].get<std::int64_t>());
  const std::map<std::int64_t, std::string> labels =
      store::record_labels(*session.conn, config, gids);
  TextTable table({"ID", "ENTITY", "RECORD", "UNIT", "KIND", "STATUS", "REASON"});
  for (const json& c : list) {
    table.add({std::to_string(c["id"].get<std::int64_t>()), c["entity"].get<std::string>(),
               record_cell(c["golden_id"], labels), c["unit"].get<std::string>(),
               c["kind"].get<std::string>(), c["status"].get<std::string>(),
               c["reason"].get<std::string>()});
    table.note(values_line(c["values"]));
  }
  table.print(std::cout);
  return 0;
}

int cmd_conflicts_show(const config::Config& config, std::int64_t id, bool as_json) {
  ControlSession session = open_control(config);
  const json c = store::show_conflict(*session.conn, id);
  if (as_json) {
    std::cout << c.dump(2) << "\n";
    return 0;
  }
  std::cout << "conflict " << id << " (" << c["kind"].get<std::string>() << ", "
            << c["status"].get<std::string>() << ")\n"
            << "  record:  " << c["entity"].get<std::string>() << " "
            << (c["golden_id"].is_null()
                    ? std::string("(none)")
                    : record_cell(c["golden_id"],
                                  store::record_labels(*session.conn, config,
                                                       {c["golden_id"].get<std::int64_t>()})))
            << ", from " << c["side"].get<std::string>() << ":" << c["row_key"].get<std::string>()
            << "\n"
            << "  unit:    " << c["unit"].get<std::string>() << "\n"
            << "  reason:  " << c["reason"].get<std::string>() << "\n"
            << "  opened:  " << plain(c["opened_at"]) << " by " << c["source"].get<std::string>()
            << " under ruleset v" << c["ruleset_version"].get<std::int64_t>() << "\n"
            << "  values:  " << values_line(c["values"]) << "\n";
  if (c.contains("golden")) std::cout << "  golden:  " << fields_line(c["golden"]) << "\n";
  for (const json& a : c["attached"])
    std::cout << "  later:   " << a["source"].get<std::string>() << ": " << fields_line(a["values"])
              << "\n";
  if (!c["resolved_by"].is_null()) {
    const json& res = c["resolution"];
    std::cout << "  closed:  " << plain(c["resolved_at"]) << " by "
              << c["resolved_by"].get<std::string>();
    if (res.is_object() && res.contains("decision"))
      std::cout << ": " << plain(res["decision"])
                << (res.contains("values") && !res["values"].empty()
                        ? " " + fields_line(res["values"])
                        : std::string());
    std::cout << "\n";
  }
  return 0;
}

namespace {

// A steward without write access: the decision is recorded through mdsync's function, which
// names the session user, and the engine applies it at its next pass; this waits for it.
int request_of_engine(const config::Config& config, ControlSession& session,
                      const ResolveRequest& req, const core::Resolution& r) {
  store::StewardRequest q;
  q.conflict_ids = req.ids;
  if (req.all) {
    store::ConflictFilter f;
    f.entity = req.entity;
    f.field = req.field;
    for (const json& c : store::list_conflicts(*session.conn, f))
      q.conflict_ids.push_back(c["id"].get<std::int64_t>());
    if (q.conflict_ids.empty()) {
      std::cout << "no open conflicts match\n";
      return 0;
    }
  }
  q.note = req.note.value_or("");
  q.display_as = display_name() == session.session_user ? std::string() : display_name();
  if (req.link) {
    q.kind = store::StewardRequest::Kind::kLink;
    q.link_target = *req.link;
  } else if (req.create) {
    q.kind = store::StewardRequest::Kind::kCreate;
  } else if (r.kind == core::Resolution::Kind::kDismiss) {
    q.kind = store::StewardRequest::Kind::kDismiss;
  } else if (r.kind == core::Resolution::Kind::kTakeSide) {
    q.kind = store::StewardRequest::Kind::kTake;
    q.take_side = r.side;
  } else {
    q.kind = store::StewardRequest::Kind::kValue;
    q.values = r.values;
  }
  const std::int64_t id = store::request_steward_action(*session.conn, q);
  const store::StewardActionState state =
      store::wait_for_steward_action(*session.conn, id, std::chrono::seconds(req.wait_seconds));
  if (state.status == "applied") {
    std::cout << state.result;
    return 0;
  }
  if (state.status == "refused")
    throw store::StewardError("steward action " + std::to_string(id) +
                              " was refused, nothing changed: " + state.result);
  (void)config;
  std::cout << "steward action " << id << " is queued: the engine (`mdsync run`) applies it at "
            << "its next pass, as " << session.session_user << " asked it at "
            << "this moment; `mdsync conflicts show ID` shows when it is done\n";
  return 0;
}

}  // namespace

int cmd_conflicts_resolve(const config::Config& config, const ResolveRequest& req) {
  const std::string command = req.dismiss ? "conflicts dismiss" : "conflicts resolve";
  // Usage first: nothing is read or changed for a request that names what does not exist.
  core::Resolution r;
  r.note = req.note.value_or("");
  if (req.dismiss) {
    r.kind = core::Resolution::Kind::kDismiss;
  } else if (req.take_side) {
    check_side(config, *req.take_side, command);
    r.kind = core::Resolution::Kind::kTakeSide;
    r.side = *req.take_side;
  } else if (req.value_json) {
    r.kind = core::Resolution::Kind::kValue;
    r.values = parse_value(*req.value_json);
  }
  if (req.entity) check_entity(config, *req.entity, command);
  ControlSession session = open_control(config);
  if (req.field) check_field(config, session, req.entity, *req.field, command);
  auto& conn = session.conn;
  r.steward = steward_identity(session);
  const store::ControlAccess access = store::control_access(*conn);
  if (access == store::ControlAccess::kRead)
    throw store::StewardError(session.session_user +
                              " may read the conflict queue but not decide on it: a steward's "
                              "login needs the steward role (" +
                              config.roles.steward +
                              ", config `roles`), an "
                              "operator's the service role (" +
                              config.roles.service + ")");
  if (access == store::ControlAccess::kRequest) return request_of_engine(config, session, req, r);
  if (req.link || req.create) {
    store::DuplicateResolution d;
    d.kind = req.link ? store::DuplicateResolution::Kind::kLink
                      : store::DuplicateResolution::Kind::kCreate;
    d.target = req.link.value_or("");
    d.steward = r.steward;
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
  // All or nothing: any id refused throws store::StewardRefusals, which main() reports.
  std::cout << store::resolve_conflicts(*conn, config, ids, r);
  return 0;
}

int cmd_records_show(const config::Config& config, const std::string& entity, const std::string& id,
                     bool history, bool as_json) {
  check_entity(config, entity, "records show");
  if (const auto colon = id.find(':'); colon != std::string::npos)
    check_side(config, id.substr(0, colon), "records show");
  ControlSession session = open_control(config);
  const json r = store::show_record(*session.conn, config, entity, id, history);
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
  if (filter.entity) check_entity(config, *filter.entity, "audit");
  if (filter.since) check_time(*filter.since, "--since", "audit");
  ControlSession session = open_control(config);
  const json rows = store::audit_log(*session.conn, filter);
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
  ControlSession session = open_control(config);
  const store::AuditChainReport report = store::verify_audit_chain(*session.conn);
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

namespace {

// --check NAME=VALUE: the thresholds `status` holds the system to (errors and failed default to
// 0; the others apply only when given).
struct StatusChecks {
  std::optional<std::int64_t> lag, backlog, conflicts;
  std::int64_t failed = 0, errors = 0, stuck = 0;
};

StatusChecks parse_checks(const std::vector<std::string>& given) {
  StatusChecks c;
  for (const std::string& g : given) {
    const auto eq = g.find('=');
    const std::string name = g.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : g.substr(eq + 1);
    if (value.empty() || value.size() > 15 ||
        value.find_first_not_of("0123456789") != std::string::npos)
      throw UsageError("--check " + g + ": give NAME=N with N a whole number >= 0 (lag=300)",
                       "status");
    const std::int64_t n = std::stoll(value);
    if (name == "lag")
      c.lag = n;
    else if (name == "backlog")
      c.backlog = n;
    else if (name == "conflicts")
      c.conflicts = n;
    else if (name == "failed")
      c.failed = n;
    else if (name == "errors")
      c.errors = n;
    else if (name == "stuck")
      c.stuck = n;
    else
      throw UsageError(
          "--check: '" + name +
              "' is not a check (checks: lag, backlog, conflicts, failed, errors, stuck)",
          "status");
  }
  return c;
}

// What makes `status` exit 1, one entry per problem.
json status_problems(const json& s, const StatusChecks& checks) {
  json problems = json::array();
  auto add = [&](const std::string& check, const json& side, std::int64_t value,
                 std::optional<std::int64_t> limit, const std::string& message) {
    problems.push_back({{"check", check},
                        {"side", side},
                        {"value", value},
                        {"limit", limit ? json(*limit) : json(nullptr)},
                        {"message", message}});
  };
  for (auto it = s["sides"].begin(); it != s["sides"].end(); ++it) {
    const std::string side = it.key();
    const json& v = it.value();
    if (!v["reachable"].get<bool>())
      add("reachable", side, 0, std::nullopt,
          "side " + side + " is unreachable: " + v.value("reach_error", std::string("unknown")));
    // A column the mapping reads is gone: always a problem, the field no longer syncs.
    for (const json& drift : v["mapping_drift"])
      add("drift", side, 1, std::nullopt, drift.get<std::string>());
    const auto errors = v["capture_errors"].get<std::int64_t>();
    if (errors > checks.errors)
      add("errors", side, errors, checks.errors,
          "side " + side + ": " + std::to_string(errors) + " change(s) kept as errors (limit " +
              std::to_string(checks.errors) + "); see `mdsync errors list --side " + side + "`");
    const auto failed = v["writeback_failed"].get<std::int64_t>();
    if (failed > checks.failed)
      add("failed", side, failed, checks.failed,
          "side " + side + ": " + std::to_string(failed) + " failed write-back(s) (limit " +
              std::to_string(checks.failed) + "); see `mdsync errors list --side " + side + "`");
    const auto lag = v["writeback_lag_seconds"].get<std::int64_t>();
    if (checks.lag && lag > *checks.lag)
      add("lag", side, lag, checks.lag,
          "side " + side + ": the oldest pending write-back waits " + std::to_string(lag) +
              " s (limit " + std::to_string(*checks.lag) + ")");
    if (checks.backlog && v["capture_backlog"].is_number() &&
        v["capture_backlog"].get<std::int64_t>() > *checks.backlog)
      add("backlog", side, v["capture_backlog"].get<std::int64_t>(), checks.backlog,
          "side " + side + ": " + shown(v["capture_backlog"]) + " captured changes wait (limit " +
              std::to_string(*checks.backlog) + ")");
    const auto stuck = v["writeback_stuck"].get<std::int64_t>();
    if (stuck > checks.stuck)
      add("stuck", side, stuck, checks.stuck,
          "side " + side + ": " + std::to_string(stuck) +
              " row(s) whose write-backs keep being superseded with no change captured (limit " +
              std::to_string(checks.stuck) + "); they back off, see the outbox note");
  }
  if (checks.conflicts) {
    std::int64_t open = 0;
    for (const auto& [entity, kinds] : s["open_conflicts"].items()) {
      (void)entity;
      for (const auto& [kind, n] : kinds.items()) {
        (void)kind;
        open += n.get<std::int64_t>();
      }
    }
    if (open > *checks.conflicts)
      add("conflicts", nullptr, open, checks.conflicts,
          std::to_string(open) + " open conflict(s) (limit " + std::to_string(*checks.conflicts) +
              "); see `mdsync conflicts list`");
  }
  return problems;
}

}  // namespace

int cmd_status(const config::Config& config, bool as_json, const std::vector<std::string>& checks) {
  const StatusChecks limits = parse_checks(checks);
  ControlSession session = open_control(config);
  json s = store::status_report(*session.conn, config);
  const json problems = status_problems(s, limits);
  if (as_json) {
    s["problems"] = problems;
    std::cout << s.dump(2) << "\n";
  } else {
    std::cout << "ruleset: "
              << (s["ruleset_version"].is_null() ? std::string("none applied")
                                                 : "v" + shown(s["ruleset_version"]))
              << "\n";
    // One aligned row per side; what needs more than a cell follows under the side's name.
    TextTable table({"SIDE", "REACHABLE", "CAPTURE BACKLOG", "WRITE-BACKS PENDING", "OLDEST",
                     "FAILED", "KEPT AS ERRORS", "CIRCUIT"});
    for (auto it = s["sides"].begin(); it != s["sides"].end(); ++it) {
      const json& v = it.value();
      table.add(
          {it.key(), v["reachable"].get<bool>() ? "yes" : "NO",
           v["capture_backlog"].is_null() ? std::string("unknown") : plain(v["capture_backlog"]),
           std::to_string(v["writeback_pending"].get<std::int64_t>()),
           std::to_string(v["writeback_lag_seconds"].get<std::int64_t>()) + " s",
           std::to_string(v["writeback_failed"].get<std::int64_t>()),
           std::to_string(v["capture_errors"].get<std::int64_t>()), plain(v["circuit"])});
    }
    table.print(std::cout);
    for (auto it = s["sides"].begin(); it != s["sides"].end(); ++it) {
      const json& v = it.value();
      std::ostringstream details;
      if (v["paused"].get<bool>())
        details << "  PAUSED since " << v["paused_at"].get<std::string>() << " by "
                << v["paused_by"].get<std::string>()
                << (v["pause_note"].is_null() ? ""
                                              : " (" + v["pause_note"].get<std::string>() + ")")
                << ": capture goes on, nothing is written to it until `mdsync resume " << it.key()
                << "`\n";
      if (v["circuit"] == "open")
        details << "  circuit OPEN since " << plain(v["circuit_opened_at"]) << " ("
                << v["consecutive_failures"].get<int>()
                << " failures in a row): the engine leaves the side alone until "
                << plain(v["circuit_retry_at"]) << ", then probes it once\n";
      else if (v["circuit"] == "half_open")
        details << "  circuit HALF-OPEN since " << plain(v["circuit_opened_at"]) << " ("
                << v["consecutive_failures"].get<int>()
                << " failures in a row): the engine is probing the side\n";
      if (!v["max_writes_per_s"].is_null())
        details << "  write-backs limited to " << v["max_writes_per_s"].get<int>() << "/s"
                << (v["throttled"].get<bool>()
                        ? ": THROTTLED since " + plain(v["throttled_since"]) +
                              " (queued write-backs wait for the limit)"
                        : std::string(": not throttling"))
                << "\n";
      for (const json& drift : v["mapping_drift"])
        details << "  mapping drift: " << drift.get<std::string>() << "\n";
      if (v["writeback_stuck"].get<std::int64_t>() > 0)
        details << "  " << v["writeback_stuck"].get<std::int64_t>()
                << " row(s) whose write-backs keep being superseded with no change captured:"
                   " they back off (the outbox note says why)\n";
      if (v["contention_retries"].get<std::int64_t>() > 0)
        details << "  write-backs retried after deadlocks with other transactions: "
                << v["contention_retries"].get<std::int64_t>() << "\n";
      if (!v["last_error"].is_null())
        details << "  error since " << plain(v["last_error_at"]) << ": "
                << v["last_error"].get<std::string>() << " ("
                << v["consecutive_failures"].get<int>() << " in a row)\n";
      int shown_events = 0;
      for (const json& e : v["recent_errors"]) {
        if (++shown_events > 3) break;
        details << "  " << (shown_events == 1 ? "history: " : "         ")
                << e["at"].get<std::string>() << " " << e["event"].get<std::string>() << ": "
                << e["message"].get<std::string>() << "\n";
      }
      if (!details.str().empty()) std::cout << "side " << it.key() << ":\n" << details.str();
    }
    std::cout << "open conflicts: "
              << (s["open_conflicts"].empty() ? "none" : counts_line(s["open_conflicts"])) << "\n";
  }
  for (const json& p : problems) std::cerr << "mdsync: " << p["message"].get<std::string>() << "\n";
  return problems.empty() ? 0 : 1;
}

}  // namespace mdsync::cli
