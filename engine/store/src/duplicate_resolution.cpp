#include "mdsync/store/duplicate_resolution.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "field_transforms.hpp"
#include "match_index.hpp"
#include "mdsync/core/reconciler.hpp"
#include "mdsync/store/conflict_queue.hpp"
#include "mdsync/store/record_repository.hpp"
#include "mdsync/store/ruleset_store.hpp"
#include "mdsync/store/steward_actions.hpp"

namespace mdsync::store {

using nlohmann::json;

namespace {

// The golden id SIDE:ROWKEY is linked to, or the golden id given, of this entity.
std::int64_t target_record(pqxx::transaction_base& tx, RecordRepository& repo,
                           const config::Config& config, const std::string& entity,
                           const std::string& target) {
  const bool number = !target.empty() && std::all_of(target.begin(), target.end(), [](char c) {
    return c >= '0' && c <= '9';
  }) && target.size() < 19;
  if (number) {
    const std::int64_t gid = std::stoll(target);
    const pqxx::result r = tx.exec_params("SELECT entity FROM mdsync.golden WHERE id = $1", gid);
    if (r.empty() || r[0][0].as<std::string>() != entity)
      throw StewardError("there is no " + entity + " record " + target);
    return gid;
  }
  const auto colon = target.find(':');
  if (colon == std::string::npos)
    throw StewardError(
        "--link takes SIDE:ROWKEY (a row linked to the record) or a golden id, not '" + target +
        "'");
  const std::string side = target.substr(0, colon), key = target.substr(colon + 1);
  if (config.side(side) == nullptr) {
    std::string sides;
    for (const auto& n : config.side_names()) sides += (sides.empty() ? "" : ", ") + n;
    throw StewardError("'" + side + "' is not a side (sides: " + sides + ")");
  }
  const auto gid = repo.find_by_key(entity, side, key);
  if (!gid)
    throw StewardError("no " + entity + " record is linked to " + side + " row '" + key +
                       "' (see `mdsync records show " + entity + " " + side + ":KEY`)");
  return *gid;
}

// The held values are canonical as read without a base; a value the side holds in another
// spelling of the golden value (a host for a URL under a normalizer) is the golden value, as
// when the engine links a row by its match keys.
core::FieldValues read_against(const FieldTransforms& transforms, const std::string& entity,
                               const std::string& side, core::FieldValues values,
                               const core::FieldValues& golden) {
  for (auto& [field, value] : values) {
    const mapping::FieldTransform* t = transforms.find(entity, side, field);
    auto g = golden.find(field);
    if (t == nullptr || g == golden.end() || !value) continue;
    const mapping::Converted side_text = t->to_side(value);
    if (side_text.ok() && t->side_holds(side_text.value(), g->second)) value = g->second;
  }
  return values;
}

// An open conflict that holds a row with no record (possible_duplicate, unauthorized_create),
// locked.
struct HeldConflict {
  std::string entity, kind, status, side, row_key;
  core::FieldValues held;  // the values that opened it, then each later capture attached
  std::int64_t opened_us = 0;
};

HeldConflict lock_conflict(pqxx::transaction_base& tx, std::int64_t id) {
  const pqxx::result r = tx.exec_params(
      "SELECT entity, kind, status, side, row_key, \"values\"::text, attached::text,"
      " (extract(epoch FROM opened_at) * 1000000)::bigint FROM mdsync.conflict"
      " WHERE id = $1 FOR UPDATE",
      id);
  if (r.empty()) throw StewardError("no conflict with id " + std::to_string(id));
  HeldConflict c;
  c.entity = r[0][0].as<std::string>();
  c.kind = r[0][1].as<std::string>();
  c.status = r[0][2].as<std::string>();
  c.side = r[0][3].as<std::string>();
  c.row_key = r[0][4].is_null() ? std::string() : r[0][4].as<std::string>();
  c.held = held_row_values(c.side, r[0][5].as<std::string>(), r[0][6].as<std::string>());
  c.opened_us = r[0][7].as<std::int64_t>();
  return c;
}

// The conflict's row as a change of its side. Its values are as old as the conflict: a shared
// last_writer_wins field that changed since is not overwritten by them.
core::Change held_change(const HeldConflict& c) {
  core::Change change;
  change.side = c.side;
  change.entity = c.entity;
  change.row_key = c.row_key;
  change.op = core::Op::kUpsert;
  change.commit_time_us = c.opened_us;
  change.values = c.held;
  return change;
}

// Links the conflict's row to record `gid` (`state`: the record as the caller has it, with no
// row on that side) and reconciles the held values against it as the engine reconciles a row
// linked by a match key: as a side with no base yet.
core::Plan link_row(RecordRepository& repo, const FieldTransforms& transforms,
                    const core::EntityRules& rules, std::int64_t version, const HeldConflict& c,
                    std::int64_t gid, core::RecordState& state) {
  state.bases[c.side] = {};
  // A side whose deactivating delete detached it holds a row of the record again.
  state.detached.erase(std::remove(state.detached.begin(), state.detached.end(), c.side),
                       state.detached.end());
  core::Change change = held_change(c);
  change.values = read_against(transforms, c.entity, c.side, c.held, state.golden);
  core::Plan plan = core::reconcile_in_place(rules, version, state, change);
  repo.save_golden(gid, state);
  repo.link(c.entity, c.side, c.row_key, gid, state.bases[c.side]);
  repo.cancel_pending(gid, c.side, {"insert"}, kLinkedNotInserted);
  return plan;
}

// Closes conflict `id` with `plan`: an audited resolution (`what`, under `plan.source`) of the
// record unit, and the conflict names the record its row now belongs to.
void close_held(pqxx::transaction_base& tx, RecordRepository& repo, const HeldConflict& c,
                std::int64_t id, std::int64_t gid, const std::string& rule, const std::string& what,
                core::Plan& plan, core::RecordState& state) {
  core::UnitDecision& d = plan.decisions.emplace_back();
  d.unit = core::kRecordUnit;
  d.outcome = core::Outcome::kResolve;
  d.proposed = c.held;
  d.rule = std::make_shared<const std::string>(rule);
  d.why = what;
  plan.closed.push_back(id);
  repo.persist_plan(c.entity, gid, c.side, c.row_key, plan, state);
  tx.exec_params("UPDATE mdsync.conflict SET golden_id = $2 WHERE id = $1", id, gid);
}

// The other records the conflict named were held back from its side; they go now (unless
// another open conflict still holds them: MatchIndex::flush()).
void release_candidates(pqxx::transaction_base& tx, RecordRepository& repo,
                        const core::EntityRules& rules, const config::Config& config,
                        std::int64_t id, std::int64_t gid) {
  for (std::int64_t other : duplicate_candidates(tx, id)) {
    if (other == gid) continue;
    if (auto s = repo.load(other); s && !s->deleted)
      repo.plan_and_enqueue(rules, config.side_names(), other, *s);
  }
}

}  // namespace

std::string resolve_duplicate(pqxx::connection_base& conn, const config::Config& config,
                              std::int64_t id, const DuplicateResolution& resolution) {
  const core::Ruleset rs = load_ruleset(conn, config);
  pqxx::work tx(conn);
  std::string plan = resolve_duplicate_in(tx, config, rs, id, resolution);
  notify_engine(tx, "resolve");
  tx.commit();
  return plan;
}

std::string resolve_duplicate_in(pqxx::transaction_base& tx, const config::Config& config,
                                 const core::Ruleset& rs, std::int64_t id,
                                 const DuplicateResolution& resolution) {
  const FieldTransforms transforms(config);
  const HeldConflict c = lock_conflict(tx, id);
  const std::string& entity = c.entity;
  const std::string& side = c.side;
  const std::string& row_key = c.row_key;
  // An unauthorized_create holds a row the same way: the steward creates the record anyway,
  // or says which record the row is.
  const bool unauthorized = c.kind == "unauthorized_create";
  if (c.kind != "possible_duplicate" && !unauthorized)
    throw StewardError("conflict " + std::to_string(id) + " is a " + c.kind +
                       " conflict; --link and --create resolve possible_duplicate and "
                       "unauthorized_create conflicts only (use --take or --value)");
  if (c.status != "open")
    throw StewardError("conflict " + std::to_string(id) + " is already " + c.status);
  const config::EntityConfig* ecfg = config.entity(entity);
  const core::EntityRules* rules = rs.find(entity);
  if (ecfg == nullptr || rules == nullptr)
    throw StewardError("entity " + entity + " is not in the config or the ruleset in force");
  RecordRepository repo(tx);
  if (auto linked = repo.find_by_key(entity, side, row_key))
    throw StewardError(side + " row '" + row_key + "' is already linked to record " +
                       std::to_string(*linked));

  const std::string who = resolution.steward.empty() ? "steward" : resolution.steward;
  std::int64_t gid = 0;
  core::RecordState state;
  core::Plan plan;
  std::string what;
  if (resolution.kind == DuplicateResolution::Kind::kLink) {
    gid = target_record(tx, repo, config, entity, resolution.target);
    auto loaded = repo.load(gid);
    if (!loaded) throw StewardError("record " + std::to_string(gid) + " is missing");
    if (loaded->deleted)
      throw StewardError("record " + std::to_string(gid) + " is deleted; link to a live record");
    if (loaded->bases.count(side))
      throw StewardError("record " + std::to_string(gid) + " is already linked to " + side +
                         " row '" + repo.row_keys(gid)[side] + "'; a record has one row per " +
                         "side (link to another record, or --create)");
    state = std::move(*loaded);
    plan = link_row(repo, transforms, *rules, rs.version, c, gid, state);
    what = who + " linked " + side + " row '" + row_key + "' to record " + std::to_string(gid);
  } else {
    if (!unauthorized && !rules->may_create(side))
      throw StewardError(side + " may not create " + entity +
                         " records (the rules' create list); link the row with --link instead");
    const core::Change change = held_change(c);
    plan = unauthorized ? core::create_allowed_by_steward(*rules, rs.version, state, change, who)
                        : core::reconcile_in_place(*rules, rs.version, state, change);
    gid = repo.create_golden(entity, state);
    repo.link(entity, side, row_key, gid, state.bases[side]);
    what =
        who + " created record " + std::to_string(gid) + " from " + side + " row '" + row_key + "'";
  }
  if (!resolution.note.empty()) what += " (" + resolution.note + ")";
  plan.source = "steward:" + who;
  close_held(tx, repo, c, id, gid, entity + (unauthorized ? ".create" : ".match"), what, plan,
             state);
  repo.plan_and_enqueue(*rules, config.side_names(), gid, state);
  release_candidates(tx, repo, *rules, config, id, gid);
  MatchIndex index(tx, !ecfg->match.empty());
  if (!ecfg->match.empty()) {
    index.changed(*ecfg, gid, state);
    index.held_changed(*ecfg, id);  // closed: no longer a candidate
  }
  index.flush();
  return plan.to_text();
}

LinkedRow link_held_row(pqxx::transaction_base& tx, const config::Config& config,
                        const core::Ruleset& rs, const FieldTransforms& transforms,
                        std::int64_t conflict_id, std::int64_t golden_id, core::RecordState& state,
                        const std::string& source, const std::string& matched_by) {
  const HeldConflict c = lock_conflict(tx, conflict_id);
  const core::EntityRules* rules = rs.find(c.entity);
  const std::string held =
      c.side + " row '" + c.row_key + "' (conflict " + std::to_string(conflict_id) + ")";
  if (c.status != "open" || (c.kind != "possible_duplicate" && c.kind != "unauthorized_create"))
    throw std::runtime_error("cannot link " + held + " to record " + std::to_string(golden_id) +
                             ": its conflict is a " + c.kind + ", " + c.status);
  if (rules == nullptr)
    throw std::runtime_error("entity " + c.entity + " has no rules in the ruleset in force");
  if (state.bases.count(c.side))
    throw std::runtime_error("cannot link " + held + " to record " + std::to_string(golden_id) +
                             ", which already has a " + c.side + " row");
  RecordRepository repo(tx);
  core::Plan plan = link_row(repo, transforms, *rules, rs.version, c, golden_id, state);
  plan.source = source;
  const std::string what = "matched: " + c.side + " row '" + c.row_key + "' is record " +
                           std::to_string(golden_id) + ", which " + source + " created (" +
                           matched_by + "); linked, not inserted on " + c.side;
  close_held(tx, repo, c, conflict_id, golden_id, c.entity + ".match", what, plan, state);
  release_candidates(tx, repo, *rules, config, conflict_id, golden_id);
  return LinkedRow{c.side, c.row_key};
}

}  // namespace mdsync::store
