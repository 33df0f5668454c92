#include "admin_commands.hpp"

#include <algorithm>
#include <iostream>
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
#include "mdsync/store/side_store.hpp"
#include "mdsync/store/store_identity.hpp"

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
      store::SideStore(config, side).check_mappings();
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
    store::SideStore store(config, side);
    std::vector<std::string> changes;
    try {
      changes =
          store.install_capture(identity, keys.at(side.name), options.adopt_side == side.name);
    } catch (const store::SideOwnershipError& e) {
      refused.push_back(e.what());
      continue;
    } catch (const std::exception&) {
      store::rethrow_for_steward("side " + side.name, "");
    }
    if (changes.empty()) std::cout << "side " << side.name << ": capture already installed\n";
    for (const auto& c : changes) std::cout << "side " << side.name << ": " << c << "\n";
    highest_applied = std::max(highest_applied, store.highest_applied_id());
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

int cmd_sync_initial(const config::Config& config, bool dry_run, std::uint64_t seed) {
  const store::InitialSyncReport report = store::initial_sync(config, dry_run, seed);
  const char* link = dry_run ? "would link" : "linked";
  const char* create = dry_run ? "would create" : "created";
  if (dry_run) std::cout << "dry run: nothing is changed on any side or in the control store\n";
  int linked = 0, created = 0, duplicates = 0, already = 0, other = 0;
  for (const store::InitialSyncStep& s : report.steps) {
    std::cout << s.entity << " on " << s.side << ": " << s.rows << " rows: " << s.already_linked
              << " already linked, " << s.linked << " " << link << ", " << s.created << " "
              << create << ", " << s.possible_duplicates << " possible duplicate"
              << (s.possible_duplicates == 1 ? "" : "s");
    if (s.other > 0) std::cout << ", " << s.other << " held";
    std::cout << "\n";
    for (const std::string& line : s.duplicates)
      std::cout << "  possible duplicate: " << line << "\n";
    for (const std::string& line : s.others) std::cout << "  held: " << line << "\n";
    linked += s.linked;
    created += s.created;
    duplicates += s.possible_duplicates;
    already += s.already_linked;
    other += s.other;
  }
  std::cout << "summary: " << linked << " " << link << ", " << created << " " << create << ", "
            << duplicates << " possible duplicate" << (duplicates == 1 ? "" : "s") << ", "
            << already << " already linked";
  if (other > 0) std::cout << ", " << other << " held";
  if (!dry_run)
    std::cout << "; write-backs applied " << report.writeback.writes_applied << ", failed "
              << report.writeback.writes_failed;
  std::cout << "\n";
  if (duplicates > 0)
    std::cout << "resolve possible duplicates with `mdsync conflicts resolve ID --link "
                 "SIDE:ROWKEY` (the same record) or `--create` (a new one)"
              << (dry_run ? " once the sync has run" : "") << "\n";
  if (!dry_run && (report.writeback.writes_failed > 0 || report.writeback.side_errors > 0)) {
    std::cerr << "mdsync: some write-backs failed or a side could not be reached; see `mdsync "
                 "status`\n";
    return 1;
  }
  return 0;
}

}  // namespace mdsync::cli
