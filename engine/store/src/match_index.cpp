#include "match_index.hpp"

#include "prepared_statement.hpp"

#include <algorithm>
#include <iterator>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "mdsync/mapping/similarity.hpp"
#include "mdsync/store/pg_arrays.hpp"
#include "mdsync/store/record_repository.hpp"
#include "prepared_statement.hpp"

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
      nlohmann::json key = {
          {"fields", k.fields}, {"normalize", norm}, {"fuzzy", list == &spec.fuzzy}};
      // A fuzzy key is stored under its blocking keys (the way they are cut is part of it).
      if (list == &spec.fuzzy) key["blocks"] = "word3x4";
      out.push_back(std::move(key));
    }
  // "sides": keys are built from what each side holds too (record_keys); an index built before
  // that is rebuilt once.
  return nlohmann::json{{"keys", out}, {"from", "golden and sides"}}.dump();
}

// Inserts the keys of many records in one statement per 5000 rows. A fuzzy key is one row per
// blocking key (mapping::fuzzy_blocks), each with the value to compare in `compared`.
void insert_keys(
    pqxx::transaction_base& tx,
    const std::vector<std::tuple<std::string, std::int64_t, mapping::MatchKey>>& keys) {
  std::vector<std::string> entities, names, values, fuzzy;
  std::vector<std::optional<std::string>> compared;
  std::vector<std::int64_t> ids;
  auto send = [&] {
    if (ids.empty()) return;
    tx.exec_params(
        "INSERT INTO mdsync.match_key (entity, golden_id, name, value, fuzzy, compared)"
        " SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::boolean[],"
        " $6::text[]) ON CONFLICT DO NOTHING",
        pg_text_array(entities), pg_bigint_array(ids), pg_text_array(names), pg_text_array(values),
        pg_text_array(fuzzy), pg_nullable_text_array(compared));
    entities.clear(), names.clear(), values.clear(), fuzzy.clear(), compared.clear(), ids.clear();
  };
  auto add = [&](const std::string& entity, std::int64_t gid, const std::string& name,
                 const std::string& value, bool is_fuzzy, std::optional<std::string> full) {
    entities.push_back(entity);
    ids.push_back(gid);
    names.push_back(name);
    values.push_back(value);
    fuzzy.push_back(is_fuzzy ? "true" : "false");
    compared.push_back(std::move(full));
    if (ids.size() >= 5000) send();
  };
  for (const auto& [entity, gid, key] : keys) {
    if (!key.fuzzy) {
      add(entity, gid, key.name, key.value, false, std::nullopt);
      continue;
    }
    for (const std::string& block : mapping::fuzzy_blocks(key.value))
      add(entity, gid, key.name, block, true, key.value);
  }
  send();
}

// Inserts the exact keys of held rows (by conflict id) in one statement per 5000 keys.
void insert_held_keys(
    pqxx::transaction_base& tx,
    const std::vector<std::tuple<std::int64_t, std::string, std::string, mapping::MatchKey>>&
        rows) {
  constexpr std::size_t kChunk = 5000;
  for (std::size_t from = 0; from < rows.size(); from += kChunk) {
    std::vector<std::string> entities, sides, names, values;
    std::vector<std::int64_t> ids;
    for (std::size_t i = from; i < rows.size() && i < from + kChunk; ++i) {
      const auto& [cid, entity, side, key] = rows[i];
      ids.push_back(cid);
      entities.push_back(entity);
      sides.push_back(side);
      names.push_back(key.name);
      values.push_back(key.value);
    }
    tx.exec_params(
        "INSERT INTO mdsync.held_match_key (conflict_id, entity, side, name, value)"
        " SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])"
        " ON CONFLICT DO NOTHING",
        pg_bigint_array(ids), pg_text_array(entities), pg_text_array(sides), pg_text_array(names),
        pg_text_array(values));
  }
}

// The exact keys of a held row's values: a held row is linked by an exact key only.
std::vector<mapping::MatchKey> exact_keys(const mapping::MatchSpec& spec,
                                          const core::FieldValues& values) {
  std::vector<mapping::MatchKey> out = mapping::match_keys(spec, values);
  out.erase(
      std::remove_if(out.begin(), out.end(), [](const mapping::MatchKey& k) { return k.fuzzy; }),
      out.end());
  return out;
}

constexpr const char* kHeldPrefix = "held:";

bool is_held(const std::string& id) {
  return id.rfind(kHeldPrefix, 0) == 0;
}

std::int64_t held_id(const std::string& id) {
  return std::stoll(id.substr(std::string(kHeldPrefix).size()));
}

// The values a key is looked up and stored under: an exact key's value, a fuzzy key's blocks.
std::vector<std::string> indexed_values(const mapping::MatchKey& k) {
  return k.fuzzy ? mapping::fuzzy_blocks(k.value) : std::vector<std::string>{k.value};
}

bool shares_block(const std::string& a, const std::string& b) {
  const std::vector<std::string> x = mapping::fuzzy_blocks(a), y = mapping::fuzzy_blocks(b);
  return std::any_of(x.begin(), x.end(), [&](const std::string& v) {
    return std::find(y.begin(), y.end(), v) != y.end();
  });
}

bool same_key(const mapping::MatchKey& a, const mapping::MatchKey& b) {
  return a.fuzzy == b.fuzzy && a.name == b.name && a.value == b.value;
}

std::string join_names(const std::vector<std::int64_t>& ids, const NameOf& name_of) {
  std::string out;
  for (std::int64_t id : ids) out += (out.empty() ? "" : ", ") + name_of(id);
  return out;
}

std::string shown_key(const std::string& value) {
  std::string shown;
  for (char c : value) shown += c == '\x1f' ? std::string(" / ") : std::string(1, c);
  return shown;
}

// What a key's fields hold in `values`, as a steward reads them ("Acme Holdings, Inc."; a
// composite key's parts with " / "); `fallback` when a field is missing.
std::string raw_key(const mapping::MatchKey& key, const core::FieldValues& values,
                    const std::string& fallback) {
  std::string out;
  std::size_t from = 0;
  bool first = true;
  while (from <= key.name.size()) {
    const std::size_t plus = key.name.find('+', from);
    const std::string field = key.name.substr(from, plus == std::string::npos ? plus : plus - from);
    const auto it = values.find(field);
    if (it == values.end() || !it->second) return fallback;
    out += (first ? "" : " / ") + *it->second;
    first = false;
    if (plus == std::string::npos) break;
    from = plus + 1;
  }
  return out;
}

// How the batch names what a key found: a record by name_of, a held row by its side and key.
struct Namer {
  const MatchIndex::Found& found;
  const NameOf& name_of;
  std::string operator()(const std::string& id) const {
    if (!is_held(id)) return name_of(std::stoll(id));
    auto it = found.held.find(held_id(id));
    return it == found.held.end() ? "a held row" : held_row_name(it->second);
  }
};

// "key website 'acme.com' finds record 12"; a composite key's parts are shown with " / ".
std::string describe_exact(const mapping::KeyHits& h, const Namer& namer) {
  std::vector<std::string> ids(h.records.begin(), h.records.end());
  std::sort(ids.begin(), ids.end(), [](const std::string& a, const std::string& b) {
    // Records first, by id; then held rows, by conflict id.
    if (is_held(a) != is_held(b)) return !is_held(a);
    const std::int64_t x = is_held(a) ? held_id(a) : std::stoll(a);
    const std::int64_t y = is_held(b) ? held_id(b) : std::stoll(b);
    return x < y;
  });
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::string out;
  for (const std::string& id : ids) out += (out.empty() ? "" : ", ") + namer(id);
  return "key " + h.key.name + " '" + shown_key(h.key.value) + "' finds " + out;
}

// "name 'Acme' ~ 'Acme Holdings, Inc.' 0.862 (record 12)": what the row and each record hold
// as written, the similarity of their normalized keys, nearest first.
std::string describe_fuzzy(const mapping::KeyHits& h, const core::FieldValues& row,
                           const StateOf& state_of, const Namer& namer) {
  std::vector<std::pair<std::string, mapping::Near>> near(h.near.begin(), h.near.end());
  std::sort(near.begin(), near.end(), [](const auto& a, const auto& b) {
    if (a.second.similarity_permille != b.second.similarity_permille)
      return a.second.similarity_permille > b.second.similarity_permille;
    return std::stoll(a.first) < std::stoll(b.first);
  });
  std::string out;
  const std::string mine = raw_key(h.key, row, shown_key(h.key.value));
  for (const auto& [id, n] : near) {
    const core::RecordState* s = state_of(std::stoll(id));
    const std::string theirs =
        s == nullptr ? shown_key(n.value) : raw_key(h.key, s->golden, shown_key(n.value));
    out += (out.empty() ? "" : "; ") + h.key.name + " '" + mine + "' ~ '" + theirs + "' " +
           mapping::permille_text(n.similarity_permille) + " (" + namer(id) + ")";
  }
  return out;
}

std::string describe_all(const std::vector<mapping::KeyHits>& hits, bool fuzzy,
                         const core::FieldValues& row, const StateOf& state_of,
                         const Namer& namer) {
  std::string out;
  for (const mapping::KeyHits& h : hits)
    if (h.key.fuzzy == fuzzy && !h.records.empty())
      out += (out.empty() ? "" : "; ") +
             (fuzzy ? describe_fuzzy(h, row, state_of, namer) : describe_exact(h, namer));
  return out;
}

}  // namespace

std::string record_name(std::int64_t golden_id) {
  return "record " + std::to_string(golden_id);
}

std::string held_row_name(const MatchIndex::HeldRow& row) {
  return row.side + " row '" + row.row_key + "' (held by conflict " +
         std::to_string(row.conflict_id) + ")";
}

core::FieldValues held_row_values(const std::string& side, const std::string& values_json,
                                  const std::string& attached_json) {
  core::FieldValues held;
  const nlohmann::json values = nlohmann::json::parse(values_json);
  if (values.contains(side)) held = values_from_json(values[side].dump());
  for (const nlohmann::json& a : nlohmann::json::parse(attached_json))
    if (a.value("side", "") == side && a.contains("values"))
      for (const auto& [f, v] : values_from_json(a["values"].dump())) held[f] = v;
  return held;
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
  // And every held row's, from the values its conflict holds.
  tx_.exec_params("DELETE FROM mdsync.held_match_key WHERE entity = $1", entity.name);
  std::vector<std::tuple<std::int64_t, std::string, std::string, mapping::MatchKey>> held;
  for (const auto& c :
       tx_.exec_params("SELECT id, side, \"values\"::text, attached::text FROM mdsync.conflict"
                       " WHERE entity = $1 AND status = 'open' AND golden_id IS NULL"
                       " AND kind IN ('unauthorized_create', 'possible_duplicate')",
                       entity.name)) {
    const std::int64_t cid = c[0].as<std::int64_t>();
    if (held_rows_.count(cid)) continue;  // flush() writes these
    const std::string side = c[1].as<std::string>();
    for (mapping::MatchKey& k : exact_keys(
             entity.match, held_row_values(side, c[2].as<std::string>(), c[3].as<std::string>())))
      held.emplace_back(cid, entity.name, side, std::move(k));
  }
  insert_held_keys(tx_, held);
  tx_.exec_params(
      "INSERT INTO mdsync.match_spec (entity, spec) VALUES ($1, $2)"
      " ON CONFLICT (entity) DO UPDATE SET spec = $2, built_at = now()",
      entity.name, spec);
}

void MatchIndex::read_stored(const config::EntityConfig& entity, const std::string& side,
                             const std::vector<mapping::MatchKey>& keys) {
  // One row per exact key, one per blocking key of a fuzzy key, each read once.
  std::vector<std::string> names, values, fuzzy;
  std::vector<std::int64_t> positions;
  std::vector<StoredKey> asked;
  for (const mapping::MatchKey& k : keys)
    for (const std::string& v : indexed_values(k)) {
      StoredKey key{entity.name, side, k.name, v, k.fuzzy};
      if (stored_.count(key)) continue;
      stored_[key];  // read now: found nothing unless a row below says otherwise
      names.push_back(k.name);
      values.push_back(v);
      fuzzy.push_back(k.fuzzy ? "true" : "false");
      positions.push_back(static_cast<std::int64_t>(asked.size()));
      asked.push_back(std::move(key));
    }
  if (asked.empty()) return;
  // Records by the index (exact value, or a shared block), and rows held on other sides by
  // open conflicts (exact keys only), in one statement.
  for (const auto& row : exec_prepared(
           tx_, "mdsync_match_find",
           "WITH u AS (SELECT * FROM unnest($2::text[], $3::text[], $4::boolean[], $5::bigint[])"
           "  AS u(name, value, fuzzy, i))"
           " SELECT u.i, false, k.golden_id, k.compared, NULL, NULL FROM u"
           " JOIN mdsync.match_key k ON k.entity = $1 AND k.name = u.name"
           "  AND k.value = u.value AND k.fuzzy = u.fuzzy"
           " UNION ALL"
           " SELECT u.i, true, h.conflict_id, NULL, h.side, c.row_key FROM u"
           " JOIN mdsync.held_match_key h ON h.entity = $1 AND h.name = u.name"
           "  AND h.value = u.value AND h.side <> $6"
           " JOIN mdsync.conflict c ON c.id = h.conflict_id AND c.status = 'open'"
           " WHERE NOT u.fuzzy ORDER BY 1, 2, 3",
           entity.name, pg_text_array(names), pg_text_array(values), pg_text_array(fuzzy),
           pg_bigint_array(positions), side)) {
    Stored hit;
    hit.held = row[1].as<bool>();
    hit.id = row[2].as<std::int64_t>();
    if (!row[3].is_null()) hit.compared = row[3].as<std::string>();
    if (!row[4].is_null()) hit.side = row[4].as<std::string>();
    if (!row[5].is_null()) hit.row_key = row[5].as<std::string>();
    stored_[asked[row[0].as<std::size_t>()]].push_back(std::move(hit));
  }
}

std::vector<std::int64_t> MatchIndex::prefetch(const config::EntityConfig& entity,
                                               const std::string& side,
                                               const std::vector<mapping::MatchKey>& keys) {
  std::vector<std::int64_t> found;
  if (keys.empty()) return found;
  ensure_current(entity);
  read_stored(entity, side, keys);
  for (const mapping::MatchKey& k : keys)
    for (const std::string& v : indexed_values(k))
      for (const Stored& hit : stored_[StoredKey{entity.name, side, k.name, v, k.fuzzy}])
        if (!hit.held) found.push_back(hit.id);
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end()), found.end());
  return found;
}

MatchIndex::Found MatchIndex::find(const config::EntityConfig& entity, const std::string& side,
                                   const std::vector<mapping::MatchKey>& keys) {
  Found out;
  if (keys.empty()) return out;
  ensure_current(entity);
  read_stored(entity, side, keys);
  for (const mapping::MatchKey& k : keys) out.hits.push_back(mapping::KeyHits{k, {}});
  auto found_record = [&](mapping::KeyHits& h, std::int64_t gid, const std::string& compared) {
    const std::string id = std::to_string(gid);
    if (!h.key.fuzzy) {
      if (std::find(h.records.begin(), h.records.end(), id) == h.records.end())
        h.records.push_back(id);
      return;
    }
    // A record may hold several values (golden's, each side's) and be found through several
    // blocks: the nearest counts.
    const std::optional<int> sim = mapping::near_enough(h.key, compared);
    if (!sim) return;
    auto it = h.near.find(id);
    if (it == h.near.end()) {
      h.records.push_back(id);
      h.near[id] = mapping::Near{compared, *sim};
    } else if (*sim > it->second.similarity_permille) {
      it->second = mapping::Near{compared, *sim};
    }
  };
  auto found_held = [&](mapping::KeyHits& h, const HeldRow& row) {
    const std::string id = kHeldPrefix + std::to_string(row.conflict_id);
    if (std::find(h.records.begin(), h.records.end(), id) == h.records.end())
      h.records.push_back(id);
    out.held[row.conflict_id] = row;
  };
  // What the store holds, records before held rows, each by id (the order of the statement
  // this replaces); records and held rows this batch changed are as of now, below.
  for (mapping::KeyHits& h : out.hits) {
    std::vector<const Stored*> hits;
    for (const std::string& v : indexed_values(h.key))
      for (const Stored& s : stored_[StoredKey{entity.name, side, h.key.name, v, h.key.fuzzy}])
        hits.push_back(&s);
    std::stable_sort(hits.begin(), hits.end(), [](const Stored* a, const Stored* b) {
      return std::make_pair(a->held, a->id) < std::make_pair(b->held, b->id);
    });
    for (const Stored* s : hits) {
      if (!s->held) {
        if (changed_.count(s->id)) continue;  // its keys as of this batch are below
        found_record(h, s->id, s->compared);
      } else {
        if (held_rows_.count(s->id)) continue;  // as of this batch: below
        found_held(h, HeldRow{s->id, s->side, s->row_key});
      }
    }
  }
  // Records this batch changed, by their keys as of now (a fuzzy key through a shared block).
  for (mapping::KeyHits& h : out.hits) {
    std::set<std::int64_t> gids;
    for (const std::string& v : indexed_values(h.key)) {
      auto f = changed_keys_.find(ChangedKey{entity.name, h.key.name, v, h.key.fuzzy});
      if (f != changed_keys_.end()) gids.insert(f->second.begin(), f->second.end());
    }
    for (std::int64_t gid : gids) {
      if (!h.key.fuzzy) {
        found_record(h, gid, h.key.value);
        continue;
      }
      for (const mapping::MatchKey& k : changed_[gid].keys)
        if (k.fuzzy && k.name == h.key.name && shares_block(h.key.value, k.value))
          found_record(h, gid, k.value);
    }
  }
  // Rows this batch held, by their exact keys.
  for (mapping::KeyHits& h : out.hits) {
    if (h.key.fuzzy) continue;
    auto f = held_keys_.find(ChangedKey{entity.name, h.key.name, h.key.value, false});
    if (f == held_keys_.end()) continue;
    for (std::int64_t cid : f->second) {
      const Held& held = held_rows_.at(cid);
      if (held.side != side) found_held(h, HeldRow{cid, held.side, held.row_key});
    }
  }
  return out;
}

void MatchIndex::held_changed(const config::EntityConfig& entity, std::int64_t conflict_id,
                              bool gone) {
  const pqxx::result r = tx_.exec_params(
      "SELECT side, row_key, status = 'open' AND golden_id IS NULL"
      " AND kind IN ('unauthorized_create', 'possible_duplicate'),"
      " \"values\"::text, attached::text FROM mdsync.conflict WHERE id = $1",
      conflict_id);
  if (r.empty()) return;
  Held& h = held_rows_[conflict_id];
  for (const mapping::MatchKey& k : h.keys) {
    auto it = held_keys_.find(ChangedKey{h.entity, k.name, k.value, false});
    if (it == held_keys_.end()) continue;
    it->second.erase(conflict_id);
    if (it->second.empty()) held_keys_.erase(it);
  }
  h.entity = entity.name;
  h.side = r[0][0].as<std::string>();
  h.row_key = r[0][1].is_null() ? std::string() : r[0][1].as<std::string>();
  h.values = held_row_values(h.side, r[0][3].as<std::string>(), r[0][4].as<std::string>());
  h.keys = r[0][2].as<bool>() && !gone ? exact_keys(entity.match, h.values)
                                       : std::vector<mapping::MatchKey>{};
  for (const mapping::MatchKey& k : h.keys)
    held_keys_[ChangedKey{h.entity, k.name, k.value, false}].insert(conflict_id);
}

void MatchIndex::held_row_gone(const config::EntityConfig& entity, const std::string& side,
                               const std::string& row_key) {
  for (const auto& r :
       tx_.exec_params("SELECT id FROM mdsync.conflict WHERE entity = $1 AND side = $2"
                       " AND row_key = $3 AND status = 'open' AND golden_id IS NULL"
                       " AND kind IN ('unauthorized_create', 'possible_duplicate')",
                       entity.name, side, row_key))
    held_changed(entity, r[0].as<std::int64_t>(), true);
}

core::FieldValues MatchIndex::held_values(std::int64_t conflict_id) {
  if (auto it = held_rows_.find(conflict_id); it != held_rows_.end()) return it->second.values;
  const pqxx::result r = tx_.exec_params(
      "SELECT side, \"values\"::text, attached::text FROM mdsync.conflict WHERE id = $1",
      conflict_id);
  if (r.empty()) return {};
  return held_row_values(r[0][0].as<std::string>(), r[0][1].as<std::string>(),
                         r[0][2].as<std::string>());
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

bool same_keys(const std::vector<mapping::MatchKey>& a, const std::vector<mapping::MatchKey>& b) {
  auto within = [](const std::vector<mapping::MatchKey>& x,
                   const std::vector<mapping::MatchKey>& y) {
    return std::all_of(x.begin(), x.end(), [&](const mapping::MatchKey& k) {
      return std::any_of(y.begin(), y.end(),
                         [&](const mapping::MatchKey& have) { return same_key(have, k); });
    });
  };
  return within(a, b) && within(b, a);
}

void MatchIndex::changed(const config::EntityConfig& entity, std::int64_t golden_id,
                         const core::RecordState& now) {
  changed(entity, golden_id, record_keys(entity.match, now));
}

void MatchIndex::changed(const config::EntityConfig& entity, std::int64_t golden_id,
                         std::vector<mapping::MatchKey> keys) {
  Current& c = changed_[golden_id];
  for (const mapping::MatchKey& k : c.keys)
    for (const std::string& v : indexed_values(k)) {
      auto it = changed_keys_.find(ChangedKey{c.entity, k.name, v, k.fuzzy});
      if (it == changed_keys_.end()) continue;
      it->second.erase(golden_id);
      if (it->second.empty()) changed_keys_.erase(it);
    }
  c.entity = entity.name;
  c.keys = std::move(keys);
  for (const mapping::MatchKey& k : c.keys)
    for (const std::string& v : indexed_values(k))
      changed_keys_[ChangedKey{c.entity, k.name, v, k.fuzzy}].insert(golden_id);
}

void MatchIndex::hold_inserts(std::int64_t conflict_id, const std::string& side,
                              const std::vector<std::int64_t>& candidates) {
  held_.push_back(HeldInserts{conflict_id, side, candidates});
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
  stored_.clear();  // the store's keys change below: read them again
  for (const HeldInserts& h : held_)
    tx_.exec_params(
        "INSERT INTO mdsync.duplicate_candidate (conflict_id, golden_id)"
        " SELECT $1, unnest($2::bigint[]) ON CONFLICT DO NOTHING",
        h.conflict_id, pg_bigint_array(h.candidates));
  held_.clear();
  std::vector<std::int64_t> ids;
  if (!changed_.empty()) {
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
    changed_keys_.clear();
  }
  if (!held_rows_.empty()) {
    std::vector<std::int64_t> cids;
    std::vector<std::tuple<std::int64_t, std::string, std::string, mapping::MatchKey>> rows;
    for (const auto& [cid, held] : held_rows_) {
      cids.push_back(cid);
      for (const mapping::MatchKey& k : held.keys)
        rows.emplace_back(cid, held.entity, held.side, k);
    }
    tx_.exec_params("DELETE FROM mdsync.held_match_key WHERE conflict_id = ANY($1::bigint[])",
                    pg_bigint_array(cids));
    insert_held_keys(tx_, rows);
    held_rows_.clear();
    held_keys_.clear();
  }
  if (!ids.empty())
    // A record whose exact key finds a row held on a side where it has no row yet may be that
    // row: inserting it there would make the duplicate (or hit the side's unique index) that
    // the held row's conflict is about. It waits for the steward's answer, as a candidate.
    tx_.exec_params(
        "INSERT INTO mdsync.duplicate_candidate (conflict_id, golden_id)"
        " SELECT DISTINCT h.conflict_id, k.golden_id FROM mdsync.match_key k"
        " JOIN mdsync.held_match_key h ON h.entity = k.entity AND h.name = k.name"
        "  AND h.value = k.value"
        " JOIN mdsync.conflict c ON c.id = h.conflict_id AND c.status = 'open'"
        " WHERE k.golden_id = ANY($1::bigint[]) AND NOT k.fuzzy AND NOT EXISTS"
        "  (SELECT 1 FROM mdsync.crosswalk x WHERE x.golden_id = k.golden_id AND x.side = h.side)"
        " ON CONFLICT DO NOTHING",
        pg_bigint_array(ids));
  if (matching_)
    // The row on the conflict's side may be one of its candidates: inserting them there could
    // make the very duplicate the steward is asked about. The steward's answer plans them.
    tx_.exec(
        "UPDATE mdsync.outbox o SET status = 'cancelling', not_before = NULL,"
        " last_error = 'held: ' || c.kind || ' conflict ' || c.id || ' holds a row of this side"
        " that may be this record'"
        " FROM mdsync.duplicate_candidate d JOIN mdsync.conflict c ON c.id = d.conflict_id"
        " WHERE c.status = 'open' AND c.kind IN ('possible_duplicate', 'unauthorized_create')"
        " AND o.golden_id = d.golden_id AND o.side = c.side AND o.kind = 'insert'"
        " AND o.status = 'pending'");
}

bool plan_changes_keys(const mapping::MatchSpec& spec, const core::Plan& plan) {
  if (spec.empty()) return false;
  for (const core::UnitDecision& d : plan.decisions) {
    if (d.outcome == core::Outcome::kCreate || d.outcome == core::Outcome::kDelete) return true;
    if (!d.golden_changed()) continue;
    for (const auto& [field, value] : d.after)
      if (spec.reads(field)) return true;
  }
  return false;
}

RowMatch match_row(MatchIndex& index, const config::EntityConfig& entity, const std::string& side,
                   const core::FieldValues& values, const StateOf& state_of,
                   const NameOf& name_of) {
  RowMatch out;
  MatchIndex::Found found = index.find(entity, side, mapping::match_keys(entity.match, values));
  std::vector<mapping::KeyHits>& hits = found.hits;
  // A record deleted in this batch, or gone, is no candidate. Nor is a record a fuzzy key finds
  // that already has a row on this side, unless its value is the same (1.000): the side itself
  // keeps rows with different names apart ("Alpha One" and "Alpha Two" on the ERP are two
  // customers), and a fuzzy key looks for the row's counterpart on the other sides.
  for (mapping::KeyHits& h : hits) {
    h.records.erase(std::remove_if(h.records.begin(), h.records.end(),
                                   [&](const std::string& id) {
                                     if (is_held(id)) return false;
                                     const core::RecordState* s = state_of(std::stoll(id));
                                     if (s == nullptr || !s->exists || s->deleted) return true;
                                     const auto n = h.near.find(id);
                                     return h.key.fuzzy && s->bases.count(side) &&
                                            n != h.near.end() &&
                                            n->second.similarity_permille < 1000;
                                   }),
                    h.records.end());
    for (auto n = h.near.begin(); n != h.near.end();)
      n = std::find(h.records.begin(), h.records.end(), n->first) == h.records.end()
              ? h.near.erase(n)
              : std::next(n);
  }
  const Namer namer{found, name_of};
  const mapping::MatchDecision d = mapping::decide_match(hits);
  out.outcome = d.outcome;
  std::vector<std::int64_t> held;
  for (const std::string& id : d.candidates) {
    if (is_held(id))
      held.push_back(held_id(id));
    else
      out.candidates.push_back(std::stoll(id));
  }
  std::sort(out.candidates.begin(), out.candidates.end());
  std::sort(held.begin(), held.end());
  switch (d.outcome) {
    case mapping::MatchOutcome::kCreate:
      break;
    case mapping::MatchOutcome::kLink: {
      if (!held.empty()) {
        // The only candidate is a row another side holds back: this row makes the record, and
        // that row is linked to it.
        out.outcome = mapping::MatchOutcome::kCreate;
        out.held_link = held.front();
        out.held_link_row = found.held.at(held.front());
        out.held_link_reason = describe_all(hits, false, values, state_of, namer);
        break;
      }
      out.target = out.candidates.front();
      const core::RecordState* s = state_of(out.target);
      if (s->bases.count(side)) {
        // Two rows of one side are never linked to one record.
        out.outcome = mapping::MatchOutcome::kPossibleDuplicate;
        out.reason = describe_all(hits, false, values, state_of, namer) + ", which another " +
                     side + " row is already linked to";
        out.target = 0;
      }
      break;
    }
    case mapping::MatchOutcome::kPossibleDuplicate: {
      const bool exact = std::any_of(hits.begin(), hits.end(), [](const mapping::KeyHits& h) {
        return !h.key.fuzzy && !h.records.empty();
      });
      out.reason = exact
                       ? "ambiguous match: " + describe_all(hits, false, values, state_of, namer)
                       : "only a fuzzy match: " + describe_all(hits, true, values, state_of, namer);
      for (std::int64_t cid : held)
        out.held_candidates.emplace_back(found.held.at(cid), index.held_values(cid));
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
  std::string names = join_names(match.candidates, name_of);
  for (const auto& [row, held] : match.held_candidates) {
    competing[held_row_name(row)] = held;
    names += (names.empty() ? "" : ", ") + held_row_name(row);
  }
  const std::string reason = "possible duplicate of " + names + ": " + match.reason;
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
