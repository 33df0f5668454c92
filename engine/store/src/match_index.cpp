#include "match_index.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "mdsync/store/pg_arrays.hpp"

namespace mdsync::store {

namespace {

// The spec as stored in mdsync.match_spec: any change of keys, fields, order or normalizers
// gives another text, and so a rebuild.
std::string spec_text(const mapping::MatchSpec& spec) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto* list : {&spec.keys, &spec.fuzzy})
    for (const mapping::MatchKeySpec& k : *list) {
      nlohmann::json norm = nlohmann::json::array();
      for (mapping::Normalizer n : k.normalize) norm.push_back(mapping::to_string(n));
      out.push_back({{"fields", k.fields}, {"normalize", norm}, {"fuzzy", list == &spec.fuzzy}});
    }
  // "sides": keys are built from what each side holds too (record_keys); an index built before
  // that is rebuilt once.
  return nlohmann::json{{"keys", out}, {"from", "golden and sides"}}.dump();
}

// Inserts the keys of many records in one statement per 5000 keys.
void insert_keys(
    pqxx::transaction_base& tx,
    const std::vector<std::tuple<std::string, std::int64_t, mapping::MatchKey>>& rows) {
  constexpr std::size_t kChunk = 5000;
  for (std::size_t from = 0; from < rows.size(); from += kChunk) {
    std::vector<std::string> entities, names, values, fuzzy;
    std::vector<std::int64_t> ids;
    for (std::size_t i = from; i < rows.size() && i < from + kChunk; ++i) {
      const auto& [entity, gid, key] = rows[i];
      entities.push_back(entity);
      ids.push_back(gid);
      names.push_back(key.name);
      values.push_back(key.value);
      fuzzy.push_back(key.fuzzy ? "true" : "false");
    }
    tx.exec_params(
        "INSERT INTO mdsync.match_key (entity, golden_id, name, value, fuzzy)"
        " SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::boolean[])"
        " ON CONFLICT DO NOTHING",
        pg_text_array(entities), pg_bigint_array(ids), pg_text_array(names), pg_text_array(values),
        pg_text_array(fuzzy));
  }
}

bool same_key(const mapping::MatchKey& a, const mapping::MatchKey& b) {
  return a.fuzzy == b.fuzzy && a.name == b.name && a.value == b.value;
}

std::string join_names(const std::vector<std::int64_t>& ids, const NameOf& name_of) {
  std::string out;
  for (std::int64_t id : ids) out += (out.empty() ? "" : ", ") + name_of(id);
  return out;
}

// "key website 'acme.com' finds record 12"; a composite key's parts are shown with " / ".
std::string describe(const mapping::KeyHits& h, const NameOf& name_of) {
  std::string shown;
  for (char c : h.key.value) shown += c == '\x1f' ? std::string(" / ") : std::string(1, c);
  std::vector<std::int64_t> ids;
  for (const std::string& r : h.records) ids.push_back(std::stoll(r));
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return std::string(h.key.fuzzy ? "fuzzy key " : "key ") + h.key.name + " '" + shown + "' finds " +
         join_names(ids, name_of);
}

std::string describe_all(const std::vector<mapping::KeyHits>& hits, bool fuzzy,
                         const NameOf& name_of) {
  std::string out;
  for (const mapping::KeyHits& h : hits)
    if (h.key.fuzzy == fuzzy && !h.records.empty())
      out += (out.empty() ? "" : "; ") + describe(h, name_of);
  return out;
}

}  // namespace

std::string record_name(std::int64_t golden_id) {
  return "record " + std::to_string(golden_id);
}

void MatchIndex::ensure_current(const config::EntityConfig& entity) {
  if (!checked_.insert(entity.name).second) return;
  const std::string spec = spec_text(entity.match);
  const pqxx::result r =
      tx_.exec_params("SELECT spec FROM mdsync.match_spec WHERE entity = $1", entity.name);
  if (!r.empty() && r[0][0].as<std::string>() == spec) return;
  // Built with another spec, or never: every live record's keys again, from golden and from
  // what each linked side holds.
  tx_.exec_params("DELETE FROM mdsync.match_key WHERE entity = $1", entity.name);
  std::vector<std::tuple<std::string, std::int64_t, mapping::MatchKey>> rows;
  auto values_of = [](const nlohmann::json& values) {
    core::FieldValues fv;
    for (auto it = values.begin(); it != values.end(); ++it)
      fv[it.key()] = it->is_null() ? core::Value{} : core::Value{it->get<std::string>()};
    return fv;
  };
  for (const auto& g : tx_.exec_params(
           "SELECT g.id, g.\"values\"::text, (SELECT coalesce(jsonb_object_agg(x.side, x.base),"
           " '{}') FROM mdsync.crosswalk x WHERE x.golden_id = g.id AND x.state = 'linked')::text"
           " FROM mdsync.golden g WHERE g.entity = $1 AND NOT g.deleted",
           entity.name)) {
    const std::int64_t gid = g[0].as<std::int64_t>();
    if (changed_.count(gid)) continue;  // flush() writes these
    core::RecordState state;
    state.exists = true;
    state.golden = values_of(nlohmann::json::parse(g[1].as<std::string>()));
    const nlohmann::json bases = nlohmann::json::parse(g[2].as<std::string>());
    for (auto it = bases.begin(); it != bases.end(); ++it) state.bases[it.key()] = values_of(*it);
    for (mapping::MatchKey& k : record_keys(entity.match, state))
      rows.emplace_back(entity.name, gid, std::move(k));
  }
  insert_keys(tx_, rows);
  tx_.exec_params(
      "INSERT INTO mdsync.match_spec (entity, spec) VALUES ($1, $2)"
      " ON CONFLICT (entity) DO UPDATE SET spec = $2, built_at = now()",
      entity.name, spec);
}

std::vector<mapping::KeyHits> MatchIndex::find(const config::EntityConfig& entity,
                                               const std::vector<mapping::MatchKey>& keys) {
  std::vector<mapping::KeyHits> hits;
  if (keys.empty()) return hits;
  ensure_current(entity);
  std::vector<std::string> names, values, fuzzy;
  for (const mapping::MatchKey& k : keys) {
    names.push_back(k.name);
    values.push_back(k.value);
    fuzzy.push_back(k.fuzzy ? "true" : "false");
    hits.push_back(mapping::KeyHits{k, {}});
  }
  for (const auto& row : tx_.exec_params(
           "SELECT u.i, k.golden_id FROM unnest($2::text[], $3::text[], $4::boolean[])"
           "  WITH ORDINALITY AS u(name, value, fuzzy, i)"
           " JOIN mdsync.match_key k ON k.entity = $1 AND k.name = u.name"
           "  AND k.value = u.value AND k.fuzzy = u.fuzzy ORDER BY u.i, k.golden_id",
           entity.name, pg_text_array(names), pg_text_array(values), pg_text_array(fuzzy))) {
    const std::int64_t gid = row[1].as<std::int64_t>();
    if (changed_.count(gid)) continue;  // its keys as of this batch are below
    hits[row[0].as<std::size_t>() - 1].records.push_back(std::to_string(gid));
  }
  for (mapping::KeyHits& h : hits) {
    auto found = changed_keys_.find(ChangedKey{entity.name, h.key.name, h.key.value, h.key.fuzzy});
    if (found == changed_keys_.end()) continue;
    for (std::int64_t gid : found->second) h.records.push_back(std::to_string(gid));
  }
  return hits;
}

std::vector<mapping::MatchKey> record_keys(const mapping::MatchSpec& spec,
                                           const core::RecordState& state) {
  std::vector<mapping::MatchKey> keys;
  if (!state.exists || state.deleted) return keys;
  auto add = [&](const core::FieldValues& values) {
    for (mapping::MatchKey& k : mapping::match_keys(spec, values))
      if (std::none_of(keys.begin(), keys.end(),
                       [&](const mapping::MatchKey& have) { return same_key(have, k); }))
        keys.push_back(std::move(k));
  };
  add(state.golden);
  for (const auto& [side, base] : state.bases) add(base);
  return keys;
}

void MatchIndex::changed(const config::EntityConfig& entity, std::int64_t golden_id,
                         const core::RecordState& now) {
  Current& c = changed_[golden_id];
  for (const mapping::MatchKey& k : c.keys) {
    auto it = changed_keys_.find(ChangedKey{c.entity, k.name, k.value, k.fuzzy});
    if (it == changed_keys_.end()) continue;
    it->second.erase(golden_id);
    if (it->second.empty()) changed_keys_.erase(it);
  }
  c.entity = entity.name;
  c.keys = record_keys(entity.match, now);
  for (const mapping::MatchKey& k : c.keys)
    changed_keys_[ChangedKey{c.entity, k.name, k.value, k.fuzzy}].insert(golden_id);
}

void MatchIndex::hold_inserts(std::int64_t conflict_id, const std::string& side,
                              const std::vector<std::int64_t>& candidates) {
  held_.push_back(Held{conflict_id, side, candidates});
}

std::vector<std::int64_t> duplicate_candidates(pqxx::transaction_base& tx,
                                               std::int64_t conflict_id) {
  std::vector<std::int64_t> out;
  for (const auto& r : tx.exec_params(
           "SELECT golden_id FROM mdsync.duplicate_candidate WHERE conflict_id = $1 ORDER BY 1",
           conflict_id))
    out.push_back(r[0].as<std::int64_t>());
  return out;
}

void MatchIndex::flush() {
  for (const Held& h : held_)
    tx_.exec_params(
        "INSERT INTO mdsync.duplicate_candidate (conflict_id, golden_id)"
        " SELECT $1, unnest($2::bigint[]) ON CONFLICT DO NOTHING",
        h.conflict_id, pg_bigint_array(h.candidates));
  held_.clear();
  if (matching_)
    // The row on the conflict's side may be one of its candidates: inserting them there could
    // make the very duplicate the steward is asked about. The steward's answer plans them.
    tx_.exec(
        "UPDATE mdsync.outbox o SET status = 'cancelling', not_before = NULL,"
        " last_error = 'held: possible_duplicate conflict ' || c.id || ' names this record'"
        " FROM mdsync.duplicate_candidate d JOIN mdsync.conflict c ON c.id = d.conflict_id"
        " WHERE c.status = 'open' AND c.kind = 'possible_duplicate'"
        " AND o.golden_id = d.golden_id AND o.side = c.side AND o.kind = 'insert'"
        " AND o.status = 'pending'");
  if (changed_.empty()) return;
  std::vector<std::int64_t> ids;
  std::vector<std::tuple<std::string, std::int64_t, mapping::MatchKey>> rows;
  for (const auto& [gid, current] : changed_) {
    if (gid <= 0) continue;  // a dry run's simulated record: nothing to store
    ids.push_back(gid);
    for (const mapping::MatchKey& k : current.keys) rows.emplace_back(current.entity, gid, k);
  }
  if (!ids.empty())
    tx_.exec_params("DELETE FROM mdsync.match_key WHERE golden_id = ANY($1::bigint[])",
                    pg_bigint_array(ids));
  insert_keys(tx_, rows);
  changed_.clear();
}

bool plan_changes_keys(const mapping::MatchSpec& spec, const core::Plan& plan) {
  if (spec.empty()) return false;
  for (const core::UnitDecision& d : plan.decisions) {
    if (d.outcome == core::Outcome::kCreate || d.outcome == core::Outcome::kDelete) return true;
    if (!d.golden_changed()) continue;
    for (const auto* list : {&spec.keys, &spec.fuzzy})
      for (const mapping::MatchKeySpec& k : *list)
        for (const std::string& f : k.fields)
          if (d.after.find(f) != nullptr) return true;
  }
  return false;
}

RowMatch match_row(MatchIndex& index, const config::EntityConfig& entity, const std::string& side,
                   const core::FieldValues& values, const StateOf& state_of,
                   const NameOf& name_of) {
  RowMatch out;
  std::vector<mapping::KeyHits> hits =
      index.find(entity, mapping::match_keys(entity.match, values));
  // A record deleted in this batch, or gone, is no candidate.
  for (mapping::KeyHits& h : hits)
    h.records.erase(std::remove_if(h.records.begin(), h.records.end(),
                                   [&](const std::string& id) {
                                     const core::RecordState* s = state_of(std::stoll(id));
                                     return s == nullptr || !s->exists || s->deleted;
                                   }),
                    h.records.end());
  const mapping::MatchDecision d = mapping::decide_match(hits);
  out.outcome = d.outcome;
  for (const std::string& id : d.candidates) out.candidates.push_back(std::stoll(id));
  std::sort(out.candidates.begin(), out.candidates.end());
  switch (d.outcome) {
    case mapping::MatchOutcome::kCreate:
      break;
    case mapping::MatchOutcome::kLink: {
      out.target = out.candidates.front();
      const core::RecordState* s = state_of(out.target);
      if (s->bases.count(side)) {
        // Two rows of one side are never linked to one record.
        out.outcome = mapping::MatchOutcome::kPossibleDuplicate;
        out.reason = describe_all(hits, false, name_of) + ", which another " + side +
                     " row is already linked to";
        out.target = 0;
      }
      break;
    }
    case mapping::MatchOutcome::kPossibleDuplicate: {
      const bool exact = std::any_of(hits.begin(), hits.end(), [](const mapping::KeyHits& h) {
        return !h.key.fuzzy && !h.records.empty();
      });
      out.reason = exact ? "ambiguous match: " + describe_all(hits, false, name_of)
                         : "only a fuzzy match: " + describe_all(hits, true, name_of);
      break;
    }
  }
  return out;
}

core::Plan duplicate_plan(const std::string& entity, const std::string& side,
                          const std::string& source, std::int64_t ruleset_version,
                          const core::FieldValues& values, const RowMatch& match,
                          const StateOf& state_of, const NameOf& name_of) {
  core::Plan plan;
  plan.entity = entity;
  plan.source = source;
  plan.ruleset_version = ruleset_version;
  std::map<std::string, core::FieldValues> competing{{side, values}};
  for (std::int64_t id : match.candidates)
    if (const core::RecordState* s = state_of(id)) competing[name_of(id)] = s->golden;
  const std::string reason =
      "possible duplicate of " + join_names(match.candidates, name_of) + ": " + match.reason;
  plan.opened.push_back(core::ConflictOpened{
      core::kRecordUnit, core::ConflictKind::kPossibleDuplicate, std::move(competing), reason});
  core::UnitDecision& d = plan.decisions.emplace_back();
  d.unit = core::kRecordUnit;
  d.outcome = core::Outcome::kQuarantine;
  d.proposed = values;
  d.rule = std::make_shared<const std::string>(entity + ".match");
  d.why = reason + "; nothing is created until a steward links or creates it";
  return plan;
}

}  // namespace mdsync::store
