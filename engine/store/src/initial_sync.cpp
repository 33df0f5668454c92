#include "mdsync/store/initial_sync.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <pqxx/pqxx>

#include "captured_change.hpp"
#include "field_transforms.hpp"
#include "match_index.hpp"
#include "mdsync/core/reconciler.hpp"
#include "mdsync/store/db_connection.hpp"
#include "mdsync/store/engine_lease.hpp"
#include "mdsync/store/record_repository.hpp"
#include "mdsync/store/ruleset_store.hpp"
#include "mdsync/store/side_store.hpp"

namespace mdsync::store {

namespace {

std::int64_t last_conflict_id(pqxx::connection_base& conn) {
  pqxx::read_transaction tx(conn);
  return tx.exec1("SELECT coalesce(max(id), 0) FROM mdsync.conflict")[0].as<std::int64_t>();
}

// The possible duplicates an entity's rows on a side opened since conflict `after`.
std::vector<std::string> duplicates_since(pqxx::connection_base& conn, std::int64_t after,
                                          const std::string& entity, const std::string& side) {
  std::vector<std::string> lines;
  pqxx::read_transaction tx(conn);
  for (const auto& r : tx.exec_params(
           "SELECT id, row_key, reason FROM mdsync.conflict WHERE id > $1 AND entity = $2"
           " AND side = $3 AND kind = 'possible_duplicate' ORDER BY id",
           after, entity, side))
    lines.push_back("conflict " + r[0].as<std::string>() + ": " + side + " row " +
                    r[1].as<std::string>() + ": " + r[2].as<std::string>());
  return lines;
}

// The sides holding an entity, in the order their rows are taken in: the rules' `priority`
// first (the most trusted side's rows create the records, the others' rows are matched to
// them), then the other sides in config order.
std::vector<const config::SideConfig*> side_order(const config::Config& config,
                                                  const config::EntityConfig& entity,
                                                  const core::Ruleset& rs) {
  std::vector<const config::SideConfig*> out;
  const core::EntityRules* rules = rs.find(entity.name);
  if (rules == nullptr)
    throw std::runtime_error("entity " + entity.name + " has no rules in the ruleset in force");
  for (const std::string& name : rules->priority)
    if (const config::SideConfig* s = config.side(name); s && entity.mapping_for(name))
      out.push_back(s);
  for (const config::SideConfig& s : config.sides)
    if (entity.mapping_for(s.name) && std::find(out.begin(), out.end(), &s) == out.end())
      out.push_back(&s);
  return out;
}

InitialSyncReport run(const config::Config& config, std::uint64_t seed) {
  InitialSyncReport report;
  // A service reconciling and writing back meanwhile would see half-taken-in sides, and its
  // write-backs would race the rows being matched: sync --initial runs alone, holding the
  // engine lease for the whole run.
  SyncEngine engine(config, seed);
  try {
    engine.connect_control();
  } catch (const LeaseHeld& e) {
    throw std::runtime_error(std::string(e.what()) +
                             ". sync --initial runs alone: stop the service before `sync "
                             "--initial`, and start it again afterwards");
  }
  PgConnection control = connect(config.control_dsn, "control store");
  const core::Ruleset rs = load_ruleset(*control, config);
  for (const config::EntityConfig& entity : config.entities) {
    for (const config::SideConfig* side_ptr : side_order(config, entity, rs)) {
      const config::SideConfig& side = *side_ptr;
      SideStore& store = engine.side_store(side.name);
      InitialSyncStep step;
      step.entity = entity.name;
      step.side = side.name;
      const std::int64_t before = last_conflict_id(*control);
      step.rows = store.enqueue_current_rows(entity);
      const PassResult r = engine.reconcile_side(side.name);
      step.created = r.created;
      step.linked = r.linked_by_match;
      step.possible_duplicates = r.possible_duplicates;
      step.other = r.held + r.change_errors;
      step.already_linked =
          std::max(0, r.captured - r.created - r.linked_by_match - r.possible_duplicates - r.held);
      step.duplicates = duplicates_since(*control, before, entity.name, side.name);
      report.steps.push_back(std::move(step));
    }
  }
  report.writeback = engine.drain(std::chrono::seconds(30));
  return report;
}

// The dry run: the rows each side holds, decided in order as the engine would decide them,
// against the control store as it is plus what the earlier rows would have done. The control
// transaction is rolled back; the sides are only read.
InitialSyncReport preview(const config::Config& config) {
  InitialSyncReport report;
  report.dry_run = true;
  PgConnection control = connect(config.control_dsn, "control store");
  const core::Ruleset rs = load_ruleset(*control, config);
  const FieldTransforms transforms(config);
  pqxx::work tx(*control);
  RecordRepository repo(tx);
  MatchIndex index(tx);

  // Records as the rows decided so far would leave them; records a row would create get
  // negative ids.
  std::map<std::int64_t, core::RecordState> records;
  std::map<std::int64_t, std::string> created_by;  // simulated id -> "erp row 7"
  std::map<RecordRepository::RowRef, std::int64_t> links;
  std::int64_t next_new = -1;
  // The conflicts rows would be held by: negative, in the order they would be opened.
  std::int64_t next_held = std::numeric_limits<std::int64_t>::min() / 2;
  const StateOf state_of = [&](std::int64_t id) -> const core::RecordState* {
    auto it = records.find(id);
    if (it == records.end()) {
      if (id < 0) return nullptr;
      auto loaded = repo.load(id);
      if (!loaded) return nullptr;
      it = records.emplace(id, std::move(*loaded)).first;
    }
    return &it->second;
  };
  const NameOf name_of = [&](std::int64_t id) {
    auto it = created_by.find(id);
    return it == created_by.end() ? record_name(id) : "the record " + it->second + " would create";
  };

  for (const config::EntityConfig& entity : config.entities) {
    for (const config::SideConfig* side_ptr : side_order(config, entity, rs)) {
      const config::SideConfig& side = *side_ptr;
      SideStore store(config, side);
      const core::EntityRules* rules = rs.find(entity.name);
      InitialSyncStep step;
      step.entity = entity.name;
      step.side = side.name;
      const std::vector<CapturedRow> rows = store.read_current_rows(entity);
      step.rows = static_cast<std::int64_t>(rows.size());
      std::set<RecordRepository::RowRef> refs;
      for (const CapturedRow& row : rows) refs.emplace(entity.name, side.name, row.row_key);
      for (const auto& [ref, gid] : repo.find_by_keys(refs)) links.emplace(ref, gid);

      for (const CapturedRow& row : rows) {
        const std::string who = side.name + " row " + row.row_key;
        if (row.row_key.empty()) {
          ++step.other;
          step.others.push_back(side.name + " row with a NULL key: cannot be linked");
          continue;
        }
        const RecordRepository::RowRef ref{entity.name, side.name, row.row_key};
        if (links.count(ref)) {
          ++step.already_linked;
          continue;
        }
        if (auto held = repo.open_create_conflict(entity.name, side.name, row.row_key)) {
          ++step.other;
          step.others.push_back(who + ": held by open conflict " + std::to_string(*held));
          continue;
        }
        core::Change change = captured_change(row, side.name, entity, transforms, {});
        std::int64_t gid = 0;
        core::RecordState state;
        RowMatch m;
        if (!entity.match.empty()) {
          m = match_row(index, entity, side.name, change.values, state_of, name_of);
          if (m.outcome == mapping::MatchOutcome::kPossibleDuplicate) {
            ++step.possible_duplicates;
            std::string names;
            for (std::int64_t id : m.candidates) names += (names.empty() ? "" : ", ") + name_of(id);
            for (const auto& [held, values] : m.held_candidates)
              names += (names.empty() ? "" : ", ") + held_row_name(held);
            step.duplicates.push_back(who + ": possible duplicate of " + names + ": " + m.reason);
            // Held by its possible_duplicate: a match candidate for the other sides' rows.
            index.held_simulated(entity, next_held++, side.name, row.row_key, change.values);
            continue;
          }
          if (m.outcome == mapping::MatchOutcome::kLink) {
            gid = m.target;
            state = *state_of(gid);
            state.bases[side.name] = {};
            change = captured_change(row, side.name, entity, transforms, state.golden);
          }
        }
        const core::Plan plan = core::reconcile_in_place(*rules, rs.version, state, change);
        if (gid != 0) {
          ++step.linked;
        } else if (state.exists) {
          gid = next_new--;
          created_by[gid] = who;
          ++step.created;
          if (m.held_link != 0) {
            // The row another side holds back is linked to the new record, not inserted there.
            const MatchIndex::HeldRow& held = m.held_link_row;
            state.bases[held.side] = {};
            links[RecordRepository::RowRef{entity.name, held.side, held.row_key}] = gid;
            index.held_simulated(entity, m.held_link, held.side, held.row_key, {});
          }
        } else {
          // Held by an unauthorized_create: a match candidate for the other sides' rows.
          if (!entity.match.empty())
            index.held_simulated(entity, next_held++, side.name, row.row_key, change.values);
          ++step.other;
          step.others.push_back(who + ": " + side.name + " may not create " + entity.name +
                                " records (unauthorized_create)");
          continue;
        }
        links[ref] = gid;
        if (plan_changes_keys(entity.match, plan)) index.changed(entity, gid, state);
        records[gid] = std::move(state);
      }
      report.steps.push_back(std::move(step));
    }
  }
  tx.abort();
  return report;
}

}  // namespace

InitialSyncReport initial_sync(const config::Config& config, bool dry_run, std::uint64_t seed) {
  return dry_run ? preview(config) : run(config, seed);
}

}  // namespace mdsync::store
