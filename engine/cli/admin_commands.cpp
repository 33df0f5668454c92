#include "admin_commands.hpp"

#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <stdexcept>

#include "control_session.hpp"
#include "mdsync/rules/rules_reader.hpp"
#include "mdsync/store/control_roles.hpp"
#include "mdsync/store/control_schema.hpp"
#include "mdsync/store/database_errors.hpp"
#include "mdsync/store/db_connection.hpp"
#include "mdsync/store/engine_lease.hpp"
#include "mdsync/store/grants.hpp"
#include "mdsync/store/initial_sync.hpp"
#include "mdsync/store/ruleset_store.hpp"
#include "mdsync/store/side.hpp"
#include "mdsync/store/store_identity.hpp"
#include "progress_display.hpp"

namespace mdsync::cli {

namespace {

core::Ruleset checked_folder(const config::Config& config, rules::RuleTexts* texts_out) {
  rules::RuleTexts texts = rules::read_rules_dir(config.rules_dir);
  core::Ruleset rs = rules::check_rules(texts, config.rules_context(), config.rules_dir);
  if (texts_out) *texts_out = std::move(texts);
  return rs;
}

// Commands other than init need the control schema: open_control says to run init.
store::PgConnection control(const config::Config& config, bool need_schema = true) {
  return open_control(config, need_schema).conn;
}

}  // namespace

int cmd_init(const config::Config& config, const InitOptions& options) {
  if (options.print_grants) {
    std::cout << store::grants_script(config);
    return 0;
  }
  if (options.adopt_side && config.side(*options.adopt_side) == nullptr) {
    std::string sides;
    for (const std::string& s : config.side_names()) sides += (sides.empty() ? "" : ", ") + s;
    std::cerr << "mdsync: --adopt-side: '" << *options.adopt_side << "' is not a side of "
              << config.path << " (sides: " << sides << ") (see 'mdsync init --help')\n";
    return 2;
  }
  auto conn = control(config, false);
  try {
    store::take_engine_lease(*conn);
  } catch (const store::LeaseHeld& e) {
    throw std::runtime_error(std::string(e.what()) +
                             ". init runs alone: stop the service, run init, start it again");
  }
  const auto applied = store::migrate_control(*conn);
  if (applied.empty())
    std::cout << "control store: schema up to date (version "
              << store::control_schema_version(*conn) << ")\n";
  for (const auto& name : applied) std::cout << "control store: applied migration " << name << "\n";
  for (const auto& line : store::install_control_roles(*conn, config.roles))
    std::cout << "control store: " << line << "\n";
  const store::StoreIdentity identity = store::load_store_identity(*conn);
  const auto keys = store::load_side_keys(*conn, config.side_names());

  // Every side's mapping is checked before anything is installed anywhere, and every
  // mismatch is reported at once.
  std::string mismatches;
  for (const config::SideConfig& side : config.sides) {
    try {
      store::make_side(config, side)->check_mappings();
    } catch (const store::MappingError& e) {
      mismatches += (mismatches.empty() ? "" : "\n") + std::string(e.what());
    } catch (const std::exception&) {
      store::rethrow_for_steward("side " + side.name, "");
    }
  }
  if (!mismatches.empty()) throw store::MappingError(mismatches);
  // A side that belongs to another store is refused alone; the others are installed.
  std::vector<std::string> refused;
  std::int64_t highest_applied = 0;
  for (const config::SideConfig& side : config.sides) {
    const std::unique_ptr<store::Side> target = store::make_side(config, side);
    std::vector<std::string> changes;
    try {
      changes =
          target->install_capture(identity, keys.at(side.name), options.adopt_side == side.name);
    } catch (const store::SideOwnershipError& e) {
      refused.push_back(e.what());
      continue;
    } catch (const std::exception&) {
      store::rethrow_for_steward("side " + side.name, "");
    }
    if (changes.empty()) std::cout << "side " << side.name << ": capture already installed\n";
    for (const auto& c : changes) std::cout << "side " << side.name << ": " << c << "\n";
    highest_applied = std::max(highest_applied, target->highest_applied_id());
  }
  // Outbox ids the sides have seen must never be handed out again (a control store restored
  // from a backup would otherwise take its new writes for ones a side already applied).
  {
    pqxx::work tx(*conn);
    const pqxx::result moved = tx.exec_params(
        "SELECT setval('mdsync.outbox_id_seq', $1) WHERE $1 > (SELECT CASE WHEN is_called THEN"
        " last_value ELSE last_value - 1 END FROM mdsync.outbox_id_seq)",
        highest_applied);
    tx.commit();
    if (!moved.empty())
      std::cout << "control store: outbox ids moved past " << highest_applied
                << ", which a side has already seen (was the control store restored from a "
                   "backup?)\n";
  }

  if (auto version = store::latest_ruleset_version(*conn)) {
    std::cout << "ruleset v" << *version << " in force (change it with `mdsync rules apply`)\n";
  } else {
    rules::RuleTexts texts;
    checked_folder(config, &texts);
    bool created = false;
    const auto v = store::apply_ruleset(*conn, texts, &created);
    std::cout << "ruleset v" << v << " applied from " << config.rules_dir << "\n";
  }
  for (const std::string& r : refused) std::cerr << "mdsync: " << r << "\n";
  return refused.empty() ? 0 : 1;
}

int cmd_rules_check(const config::Config& config) {
  const core::Ruleset rs = checked_folder(config, nullptr);
  for (const auto& [name, entity] : rs.entities)
    std::cout << "ok: " << name << " (" << entity.units.size() << " units, " << entity.fields.size()
              << " fields)\n";
  return 0;
}

int cmd_rules_apply(const config::Config& config) {
  rules::RuleTexts texts;
  checked_folder(config, &texts);
  auto conn = control(config);
  bool created = false;
  const auto v = store::apply_ruleset(*conn, texts, &created);
  if (created)
    std::cout << "ruleset v" << v << " applied from " << config.rules_dir << "\n";
  else
    std::cout << "unchanged: ruleset v" << v << " already holds these rules\n";
  return 0;
}

int cmd_rules_show(const config::Config& config, const std::optional<std::string>& entity) {
  auto conn = control(config);
  const core::Ruleset rs = store::load_ruleset(*conn, config);
  if (entity && !rs.entities.count(*entity)) {
    std::string names;
    for (const auto& [name, rules] : rs.entities) names += (names.empty() ? "" : ", ") + name;
    throw UsageError("'" + *entity + "' is not an entity of the ruleset (entities: " + names + ")",
                     "rules show");
  }
  std::cout << "ruleset v" << rs.version << "\n";
  for (const auto& [name, rules] : rs.entities)
    if (!entity || *entity == name) std::cout << "\n" << rules::describe(rules);
  return 0;
}

int cmd_rules_diff(const config::Config& config) {
  const core::Ruleset folder = checked_folder(config, nullptr);
  auto conn = control(config);
  const core::Ruleset in_force = store::load_ruleset(*conn, config);
  const auto lines = rules::diff_rules(in_force, folder);
  if (lines.empty()) {
    std::cout << "no differences between ruleset v" << in_force.version << " and "
              << config.rules_dir << "\n";
    return 0;
  }
  std::cout << "ruleset v" << in_force.version << " -> " << config.rules_dir << ":\n";
  for (const auto& l : lines) std::cout << "  " << l << "\n";
  return 0;
}

namespace {

std::string shown(const std::optional<std::string>& v) {
  return v ? nlohmann::json(*v).dump() : std::string("NULL");
}

nlohmann::json report_json(const store::InitialSyncReport& report) {
  nlohmann::json out;
  out["dry_run"] = report.dry_run;
  out["committed"] = !report.dry_run && report.refused.empty();
  out["max_overwrite_share"] = report.max_overwrite_share;
  out["refused_sides"] = report.refused;
  out["captures_applied"] = report.captures_applied;
  out["captures_subsumed"] = report.captures_subsumed;
  out["steps"] = nlohmann::json::array();
  for (const store::InitialSyncStep& s : report.steps)
    out["steps"].push_back({{"entity", s.entity},
                            {"side", s.side},
                            {"rows", s.rows},
                            {"already_linked", s.already_linked},
                            {"linked", s.linked},
                            {"created", s.created},
                            {"possible_duplicates", s.possible_duplicates},
                            {"held", s.other},
                            {"errors", s.errors},
                            {"duplicates", s.duplicates}});
  out["sides"] = nlohmann::json::array();
  for (const store::SideWrites& s : report.sides)
    out["sides"].push_back({{"side", s.side},
                            {"inserts", s.inserts},
                            {"updates", s.updates},
                            {"deletes", s.deletes},
                            {"fields", s.fields},
                            {"overwrites", s.overwrites},
                            {"blanks", s.blanks},
                            {"non_empty_values", s.non_empty}});
  out["writes"] = nlohmann::json::array();
  for (const store::PlannedWrite& w : report.writes) {
    nlohmann::json j{{"side", w.side}, {"entity", w.entity},   {"golden_id", w.golden_id},
                     {"kind", w.kind}, {"row_key", w.row_key}, {"queued_before", w.queued_before}};
    if (!w.field.empty()) {
      j["field"] = w.field;
      j["old"] = w.old_value ? nlohmann::json(*w.old_value) : nlohmann::json();
      j["new"] = w.new_value ? nlohmann::json(*w.new_value) : nlohmann::json();
    }
    out["writes"].push_back(std::move(j));
  }
  if (!report.dry_run && report.refused.empty())
    out["writeback"] = {{"applied", report.writeback.writes_applied},
                        {"failed", report.writeback.writes_failed},
                        {"side_errors", report.writeback.side_errors}};
  return out;
}

}  // namespace

int cmd_sync_initial(const config::Config& config, store::InitialSyncOptions options, bool json) {
  // A real run lists no writes unless asked to (--json): it only counts them.
  options.list_writes = json || options.dry_run;
  ProgressDisplay progress(stderr, isatty(fileno(stderr)) == 1);
  options.progress = [&](const store::InitialSyncProgress& p) { progress.update(p); };
  const store::InitialSyncReport report = store::initial_sync(config, options);
  const bool dry_run = report.dry_run;
  const bool refused = !dry_run && !report.refused.empty();
  const bool failed = !dry_run && !refused &&
                      (report.writeback.writes_failed > 0 || report.writeback.side_errors > 0);
  auto refusal_hint = [&](std::ostream& out) {
    for (const store::SideWrites& s : report.sides)
      if (std::find(report.refused.begin(), report.refused.end(), s.side) != report.refused.end())
        out << "  " << s.side << ": " << s.overwrites << " of its " << s.non_empty
            << " non-empty values would be overwritten (" << s.blanks << " of them blanked), more "
            << "than initial_sync.max_overwrite_share = " << report.max_overwrite_share << "\n";
    out << "check them with `mdsync sync --initial --dry-run` (--json lists every write); if "
           "they are what the rules mean, run again with --accept-overwrites\n";
  };
  if (json) {
    std::cout << report_json(report).dump(2) << "\n";
    if (refused) {
      std::cerr << "mdsync: sync --initial refused: nothing was changed\n";
      refusal_hint(std::cerr);
    }
    return refused || failed ? 1 : 0;
  }

  const char* link = dry_run ? "would link" : "linked";
  const char* create = dry_run ? "would create" : "created";
  if (dry_run) std::cout << "dry run: nothing is changed on any side or in the control store\n";
  int linked = 0, created = 0, duplicates = 0, already = 0, other = 0, errors = 0;
  for (const store::InitialSyncStep& s : report.steps) {
    std::cout << s.entity << " on " << s.side << ": " << s.rows << " rows: " << s.already_linked
              << " already linked, " << s.linked << " " << link << ", " << s.created << " "
              << create << ", " << s.possible_duplicates << " possible duplicate"
              << (s.possible_duplicates == 1 ? "" : "s");
    if (s.other > 0) std::cout << ", " << s.other << " held";
    if (s.errors > 0) std::cout << ", " << s.errors << " kept as errors";
    std::cout << "\n";
    for (const std::string& line : s.duplicates)
      std::cout << "  possible duplicate: " << line << "\n";
    linked += s.linked;
    created += s.created;
    duplicates += s.possible_duplicates;
    already += s.already_linked;
    other += s.other;
    errors += s.errors;
  }
  if (report.captures_applied > 0)
    std::cout << "captured changes of rows no longer there, decided first: "
              << report.captures_applied << "\n";
  // The writes, per side and field, then (dry run) each of them.
  for (const store::SideWrites& s : report.sides) {
    std::cout << "writes " << (dry_run ? "it would queue" : "queued") << " on " << s.side << ": "
              << s.inserts << " insert" << (s.inserts == 1 ? "" : "s") << ", " << s.updates
              << " update" << (s.updates == 1 ? "" : "s") << " (" << s.fields << " field value"
              << (s.fields == 1 ? "" : "s") << ", " << s.overwrites << " overwriting a non-empty "
              << "value, " << s.blanks << " blanking one), " << s.deletes << " delete"
              << (s.deletes == 1 ? "" : "s") << "\n";
    std::map<std::string, std::pair<int, int>> per_field;  // field -> writes, overwrites
    for (const store::PlannedWrite& w : report.writes)
      if (w.side == s.side && !w.queued_before && !w.field.empty()) {
        auto& [n, over] = per_field[w.entity + "." + w.field];
        ++n;
        if (w.old_value && !w.old_value->empty() && w.old_value != w.new_value) ++over;
      }
    for (const auto& [field, counts] : per_field)
      std::cout << "  " << field << ": " << counts.first << " (" << counts.second
                << " overwriting)\n";
  }
  if (dry_run)
    for (const store::PlannedWrite& w : report.writes) {
      std::cout << "  " << w.side << " " << w.entity << " ";
      if (w.kind == "insert")
        std::cout << "insert (record " << w.golden_id << ")";
      else
        std::cout << w.kind << " row " << w.row_key << " (record " << w.golden_id << ")";
      if (!w.field.empty())
        std::cout << " " << w.field << ": " << shown(w.old_value) << " -> " << shown(w.new_value);
      if (w.queued_before) std::cout << " [queued by an earlier run]";
      std::cout << "\n";
    }
  std::cout << "summary: " << linked << " " << link << ", " << created << " " << create << ", "
            << duplicates << " possible duplicate" << (duplicates == 1 ? "" : "s") << ", "
            << already << " already linked";
  if (other > 0) std::cout << ", " << other << " held";
  if (!dry_run && !refused)
    std::cout << "; write-backs applied " << report.writeback.writes_applied << ", failed "
              << report.writeback.writes_failed;
  std::cout << "\n";
  if (duplicates > 0)
    std::cout << "resolve possible duplicates with `mdsync conflicts resolve ID --link "
                 "SIDE:ROWKEY` (the same record) or `--create` (a new one)"
              << (dry_run ? " once the sync has run" : "") << "\n";
  if (dry_run && !report.refused.empty()) {
    std::cout << "the real run would refuse without --accept-overwrites:\n";
    refusal_hint(std::cout);
  }
  if (refused) {
    std::cerr << "mdsync: sync --initial refused: nothing was changed\n";
    refusal_hint(std::cerr);
    return 1;
  }
  if (errors > 0 && !refused) {
    std::cerr << "mdsync: sync --initial: " << errors << (errors == 1 ? " row was" : " rows were")
              << " kept as errors and not synced; see `mdsync errors list`\n";
    if (!dry_run) return 1;
  }
  if (failed) {
    std::cerr << "mdsync: some write-backs failed or a side could not be reached; see `mdsync "
                 "status`\n";
    return 1;
  }
  return 0;
}

}  // namespace mdsync::cli
