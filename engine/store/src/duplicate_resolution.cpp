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

}  // namespace

std::string resolve_duplicate(pqxx::connection_base& conn, const config::Config& config,
                              std::int64_t id, const DuplicateResolution& resolution) {
  const core::Ruleset rs = load_ruleset(conn, config);
  pqxx::work tx(conn);
  std::string plan = resolve_duplicate_in(tx, config, rs, id, resolution);
  tx.commit();
  return plan;
}

std::string resolve_duplicate_in(pqxx::transaction_base& tx, const config::Config& config,
                                 const core::Ruleset& rs, std::int64_t id,
                                 const DuplicateResolution& resolution) {
  const FieldTransforms transforms(config);
  const pqxx::result r = tx.exec_params(
      "SELECT entity, kind, status, side, row_key, \"values\"::text, attached::text,"
      " (extract(epoch FROM opened_at) * 1000000)::bigint FROM mdsync.conflict"
      " WHERE id = $1 FOR UPDATE",
      id);
  if (r.empty()) throw StewardError("no conflict with id " + std::to_string(id));
  const std::string entity = r[0][0].as<std::string>(), kind = r[0][1].as<std::string>(),
                    status = r[0][2].as<std::string>(), side = r[0][3].as<std::string>(),
                    row_key = r[0][4].as<std::string>();
  // An unauthorized_create holds a row the same way: the steward creates the record anyway,
  // or says which record the row is.
  const bool unauthorized = kind == "unauthorized_create";
  if (kind != "possible_duplicate" && !unauthorized)
    throw StewardError("conflict " + std::to_string(id) + " is a " + kind +
                       " conflict; --link and --create resolve possible_duplicate and "
                       "unauthorized_create conflicts only (use --take or --value)");
  if (status != "open")
    throw StewardError("conflict " + std::to_string(id) + " is already " + status);
  const config::EntityConfig* ecfg = config.entity(entity);
  const core::EntityRules* rules = rs.find(entity);
  if (ecfg == nullptr || rules == nullptr)
    throw StewardError("entity " + entity + " is not in the config or the ruleset in force");
  RecordRepository repo(tx);
  if (auto linked = repo.find_by_key(entity, side, row_key))
    throw StewardError(side + " row '" + row_key + "' is already linked to record " +
                       std::to_string(*linked));

  // The row's values: those that opened the conflict, then each later capture of the row.
  core::FieldValues held;
  const json values = json::parse(r[0][5].as<std::string>());
  if (values.contains(side)) held = values_from_json(values[side].dump());
  for (const json& a : json::parse(r[0][6].as<std::string>()))
    if (a.value("side", "") == side && a.contains("values"))
      for (const auto& [f, v] : values_from_json(a["values"].dump())) held[f] = v;

  const std::string who = resolution.steward.empty() ? "steward" : resolution.steward;
  core::Change change;
  change.side = side;
  change.entity = entity;
  change.row_key = row_key;
  change.op = core::Op::kUpsert;
  // The row's values are as old as the conflict: a shared last_writer_wins field that changed
  // since is not overwritten by them.
  change.commit_time_us = r[0][7].as<std::int64_t>();

  std::int64_t gid = 0;
  core::RecordState state;
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
    state.bases[side] = {};
    change.values = read_against(transforms, entity, side, held, state.golden);
    what = who + " linked " + side + " row '" + row_key + "' to record " + std::to_string(gid);
  } else {
    if (!unauthorized && !rules->may_create(side))
      throw StewardError(side + " may not create " + entity +
                         " records (the rules' create list); link the row with --link instead");
    change.values = held;
  }
  core::Plan plan = unauthorized && gid == 0
                        ? core::create_allowed_by_steward(*rules, rs.version, state, change, who)
                        : core::reconcile_in_place(*rules, rs.version, state, change);
  if (gid != 0) {
    repo.save_golden(gid, state);
    repo.link(entity, side, row_key, gid, state.bases[side]);
    repo.cancel_pending(gid, side, {"insert"}, kLinkedNotInserted);
  } else {
    gid = repo.create_golden(entity, state);
    repo.link(entity, side, row_key, gid, state.bases[side]);
    what =
        who + " created record " + std::to_string(gid) + " from " + side + " row '" + row_key + "'";
  }
  if (!resolution.note.empty()) what += " (" + resolution.note + ")";
  plan.source = "steward:" + who;
  core::UnitDecision& d = plan.decisions.emplace_back();
  d.unit = core::kRecordUnit;
  d.outcome = core::Outcome::kResolve;
  d.proposed = held;
  d.rule = std::make_shared<const std::string>(entity + (unauthorized ? ".create" : ".match"));
  d.why = what;
  plan.closed.push_back(id);
  repo.persist_plan(entity, gid, side, row_key, plan, state);
  // The conflict names the record its row now belongs to.
  tx.exec_params("UPDATE mdsync.conflict SET golden_id = $2 WHERE id = $1", id, gid);
  repo.plan_and_enqueue(*rules, config.side_names(), gid, state);
  // The other records the conflict named were held back from this side; they go now (unless
  // another open possible_duplicate still holds them: flush() below).
  for (std::int64_t other : duplicate_candidates(tx, id)) {
    if (other == gid) continue;
    if (auto s = repo.load(other); s && !s->deleted)
      repo.plan_and_enqueue(*rules, config.side_names(), other, *s);
  }
  MatchIndex index(tx, !ecfg->match.empty());
  if (!ecfg->match.empty()) index.changed(*ecfg, gid, state);
  index.flush();
  return plan.to_text();
}

}  // namespace mdsync::store
