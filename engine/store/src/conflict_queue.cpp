#include "mdsync/store/conflict_queue.hpp"

#include <algorithm>
#include <pqxx/pqxx>

#include "match_index.hpp"
#include "mdsync/store/record_repository.hpp"
#include "mdsync/store/ruleset_store.hpp"
#include "mdsync/store/steward_actions.hpp"

namespace mdsync::store {

using nlohmann::json;

StewardRefusals::StewardRefusals(std::vector<std::string> problems)
    : StewardError([&] {
        std::string s;
        for (const auto& p : problems) s += (s.empty() ? "" : "; ") + p;
        return s;
      }()),
      problems_(std::move(problems)) {}

namespace {

constexpr const char* kConflictColumns =
    "c.id, c.entity, c.golden_id, c.side, c.row_key, c.unit, c.kind, c.status,"
    " c.\"values\"::text, c.attached::text, c.reason, c.source, c.ruleset_version,"
    " to_char(c.opened_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    " to_char(c.resolved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    " c.resolved_by, c.resolution::text, c.note";

json conflict_json(const pqxx::row& r) {
  auto text = [&](int i) { return r[i].is_null() ? json(nullptr) : json(r[i].as<std::string>()); };
  json j;
  j["id"] = r[0].as<std::int64_t>();
  j["entity"] = r[1].as<std::string>();
  j["golden_id"] = r[2].is_null() ? json(nullptr) : json(r[2].as<std::int64_t>());
  j["side"] = r[3].as<std::string>();
  j["row_key"] = r[4].as<std::string>();
  j["unit"] = r[5].as<std::string>();
  j["kind"] = r[6].as<std::string>();
  j["status"] = r[7].as<std::string>();
  j["values"] = json::parse(r[8].as<std::string>());
  j["attached"] = json::parse(r[9].as<std::string>());
  j["reason"] = r[10].as<std::string>();
  j["source"] = r[11].as<std::string>();
  j["ruleset_version"] = r[12].as<std::int64_t>();
  j["opened_at"] = text(13);
  j["resolved_at"] = text(14);
  j["resolved_by"] = text(15);
  j["resolution"] = r[16].is_null() ? json(nullptr) : json::parse(r[16].as<std::string>());
  j["note"] = text(17);
  return j;
}

}  // namespace

json list_conflicts(pqxx::connection_base& conn, const ConflictFilter& f) {
  pqxx::read_transaction tx(conn);
  // A field filter matches the field itself or the group that holds it.
  const pqxx::result r =
      tx.exec_params(std::string("SELECT ") + kConflictColumns +
                         " FROM mdsync.conflict c WHERE ($1::text IS NULL OR c.entity = $1)"
                         " AND ($2::text IS NULL OR c.unit = $2 OR EXISTS (SELECT 1 FROM"
                         "  jsonb_each(c.\"values\") v WHERE v.value ? $2))"
                         " AND ($3::text IS NULL OR c.kind = $3) AND ($4 = 'all' OR c.status = $4)"
                         " ORDER BY c.id",
                     f.entity, f.field, f.kind, f.status);
  json out = json::array();
  for (const auto& row : r) out.push_back(conflict_json(row));
  return out;
}

json show_conflict(pqxx::connection_base& conn, std::int64_t id) {
  pqxx::read_transaction tx(conn);
  const pqxx::result r = tx.exec_params(
      std::string("SELECT ") + kConflictColumns + " FROM mdsync.conflict c WHERE c.id = $1", id);
  if (r.empty()) throw StewardError("no conflict with id " + std::to_string(id));
  json j = conflict_json(r[0]);
  if (!j["golden_id"].is_null()) {
    const auto g = tx.exec_params("SELECT \"values\"::text FROM mdsync.golden WHERE id = $1",
                                  j["golden_id"].get<std::int64_t>());
    if (!g.empty()) j["golden"] = json::parse(g[0][0].as<std::string>());
  }
  return j;
}

namespace {

// Resolves one open conflict inside the caller's transaction. Every check comes before the
// first write, so a refused id leaves the transaction as it was.
std::string resolve_one(pqxx::transaction_base& tx, const config::Config& config,
                        const core::Ruleset& rs, std::int64_t id,
                        const core::Resolution& resolution) {
  // The record is locked before its conflict, in the order the engine's batches lock them
  // (records, then their conflicts): the other order could deadlock with a batch.
  const pqxx::result g = tx.exec_params("SELECT golden_id FROM mdsync.conflict WHERE id = $1", id);
  if (!g.empty() && !g[0][0].is_null())
    tx.exec_params("SELECT 1 FROM mdsync.golden WHERE id = $1 FOR UPDATE",
                   g[0][0].as<std::int64_t>());
  const pqxx::result r = tx.exec_params(
      "SELECT entity, golden_id, unit, kind, status, side, row_key FROM mdsync.conflict"
      " WHERE id = $1 FOR UPDATE",
      id);
  if (r.empty()) throw StewardError("no conflict with id " + std::to_string(id));
  const std::string entity = r[0][0].as<std::string>();
  const std::string status = r[0][4].as<std::string>();
  if (status != "open")
    throw StewardError("conflict " + std::to_string(id) + " is already " + status);
  if (r[0][3].as<std::string>() == "possible_duplicate")
    throw StewardError("conflict " + std::to_string(id) +
                       " is a possible_duplicate: link its row with --link SIDE:ROWKEY (or a "
                       "golden id), or make it a new record with --create");
  if (r[0][1].is_null())
    throw StewardError("conflict " + std::to_string(id) + " (" + r[0][3].as<std::string>() +
                       ") has no golden record to resolve into; this kind is not yet resolvable "
                       "from the CLI");
  const std::int64_t gid = r[0][1].as<std::int64_t>();
  const core::EntityRules* rules = rs.find(entity);
  if (rules == nullptr) throw StewardError("entity " + entity + " has no rules in force");
  RecordRepository repo(tx);
  auto state = repo.load(gid);
  if (!state) throw StewardError("golden record " + std::to_string(gid) + " is missing");
  const core::OpenConflict* open = nullptr;
  for (const auto& c : state->open_conflicts)
    if (c.id == id) open = &c;
  if (open == nullptr) throw StewardError("conflict " + std::to_string(id) + " is not open");
  if (resolution.kind == core::Resolution::Kind::kTakeSide && !config.side(resolution.side))
    throw StewardError("'" + resolution.side + "' is not a side (sides: " + [&] {
      std::string s;
      for (const auto& n : config.side_names()) s += (s.empty() ? "" : ", ") + n;
      return s;
    }() + ")");
  core::Resolution chosen = resolution;
  // The steward's decision time comes from the control store's clock (the capture times it
  // is compared with come from the sides' database clocks): now, or when a steward who
  // asked through mdsync.request_steward_action asked.
  if (chosen.time_us == 0)
    chosen.time_us = tx.exec1("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint")[0]
                         .as<std::int64_t>();
  if (chosen.kind == core::Resolution::Kind::kValue && chosen.values.count("")) {
    const core::Unit* unit = rules->unit_named(open->unit);
    if (unit == nullptr || unit->members.size() != 1)
      throw StewardError("conflict " + std::to_string(id) + " is on group " + open->unit +
                         "; give --value as an object with every member field");
    chosen.values = {{unit->members.front(), chosen.values[""]}};
  }
  core::Reconciliation rec;
  try {
    rec = core::resolve(*rules, rs.version, *state, *open, chosen);
  } catch (const core::ResolutionError& e) {
    throw StewardError(e.what());
  }
  repo.save_golden(gid, rec.after);
  repo.persist_plan(entity, gid, r[0][5].as<std::string>(), r[0][6].as<std::string>(), rec.plan,
                    rec.after);
  repo.plan_and_enqueue(*rules, config.side_names(), gid, rec.after);
  // A steward's value of a match key's field moves the record's keys; and a record a
  // possible_duplicate names stays out of that conflict's side.
  if (const config::EntityConfig* e = config.entity(entity); e != nullptr && !e->match.empty()) {
    MatchIndex index(tx);
    if (plan_changes_keys(e->match, rec.plan)) index.changed(*e, gid, rec.after);
    index.flush();
  }
  return rec.plan.to_text();
}

}  // namespace

std::string resolve_conflicts_in(pqxx::transaction_base& tx, const config::Config& config,
                                 const core::Ruleset& rs, const std::vector<std::int64_t>& given,
                                 const core::Resolution& resolution) {
  std::vector<std::int64_t> ids;
  for (std::int64_t id : given)
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  std::string plans;
  std::vector<std::string> problems;
  for (std::int64_t id : ids) {
    try {
      plans += resolve_one(tx, config, rs, id, resolution);
    } catch (const StewardError& e) {
      problems.push_back("conflict " + std::to_string(id) + ": " + e.what());
    }
  }
  if (!problems.empty()) throw StewardRefusals(std::move(problems));
  return plans;
}

std::string resolve_conflicts(pqxx::connection_base& conn, const config::Config& config,
                              const std::vector<std::int64_t>& ids,
                              const core::Resolution& resolution) {
  const core::Ruleset rs = load_ruleset(conn, config);
  pqxx::work tx(conn);
  std::string plans = resolve_conflicts_in(tx, config, rs, ids, resolution);
  notify_engine(tx, "resolve");
  tx.commit();
  return plans;
}

}  // namespace mdsync::store
