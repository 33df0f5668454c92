#include "mdsync/store/record_repository.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "jsonb_text.hpp"
#include "mdsync/store/pg_arrays.hpp"
#include "prepared_statement.hpp"
#include "record_write_buffer.hpp"

namespace mdsync::store {

using nlohmann::json;

namespace {

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::strict);
}

json values_json(const core::FieldValues& values) {
  json j = json::object();
  for (const auto& [field, value] : values) j[field] = value ? json(*value) : json(nullptr);
  return j;
}

// The rows as three parallel arrays, for unnest.
void columns_of(const std::set<RecordRepository::RowRef>& rows, std::vector<std::string>& entities,
                std::vector<std::string>& sides, std::vector<std::string>& keys) {
  for (const auto& [entity, side, key] : rows) {
    entities.push_back(entity);
    sides.push_back(side);
    keys.push_back(key);
  }
}

bool all_null(const core::FieldValues& values) {
  for (const auto& [field, value] : values)
    if (value) return false;
  return true;
}

}  // namespace

RecordRepository::RecordRepository(pqxx::transaction_base& tx, Mode mode)
    : tx_(tx), buffer_(mode == Mode::kBuffered ? std::make_unique<RecordWriteBuffer>() : nullptr) {}

RecordRepository::~RecordRepository() = default;

void RecordRepository::flush() {
  if (buffer_) buffer_->flush(tx_);
}

std::optional<std::int64_t> RecordRepository::find_by_key(const std::string& entity,
                                                          const std::string& side,
                                                          const std::string& row_key) {
  flush();
  const pqxx::result r = tx_.exec_params(
      "SELECT golden_id FROM mdsync.crosswalk WHERE entity = $1 AND side = $2 AND row_key = $3",
      entity, side, row_key);
  if (r.empty()) return std::nullopt;
  return r[0][0].as<std::int64_t>();
}

std::map<RecordRepository::RowRef, std::int64_t> RecordRepository::find_by_keys(
    const std::set<RowRef>& rows, std::map<RowRef, std::string>* states) {
  flush();
  std::map<RowRef, std::int64_t> found;
  if (rows.empty()) return found;
  std::vector<std::string> entities, sides, keys;
  columns_of(rows, entities, sides, keys);
  for (const auto& row : tx_.exec_params(
           "SELECT x.entity, x.side, x.row_key, x.golden_id, x.state"
           " FROM unnest($1::text[], $2::text[], $3::text[]) AS u(entity, side, row_key)"
           " JOIN mdsync.crosswalk x"
           "  ON x.entity = u.entity AND x.side = u.side AND x.row_key = u.row_key",
           pg_text_array(entities), pg_text_array(sides), pg_text_array(keys))) {
    const RowRef ref{row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>()};
    found[ref] = row[3].as<std::int64_t>();
    if (states) (*states)[ref] = row[4].as<std::string>();
  }
  return found;
}

std::optional<core::RecordState> RecordRepository::load(std::int64_t id) {
  auto loaded = load_many({id});
  if (loaded.empty()) return std::nullopt;
  return std::move(loaded.begin()->second);
}

std::map<std::int64_t, core::RecordState> RecordRepository::load_many(
    const std::vector<std::int64_t>& ids) {
  flush();
  std::map<std::int64_t, core::RecordState> out;
  if (ids.empty()) return out;
  // One statement for the batch's records: part 0 is a record (locked in id order, the order
  // every batch uses, so two transactions that lock several records do not deadlock on each
  // other), part 1 a base, part 2 an open conflict. Bases as rows of their own, not gathered
  // per record into a jsonb object by a subquery: that cost half the statement's time.
  const pqxx::result rows = tx_.exec_params(
      "WITH g AS (SELECT g.id, g.\"values\", g.provenance, g.deleted, g.detached"
      "  FROM mdsync.golden g WHERE g.id = ANY($1::bigint[]) ORDER BY g.id FOR UPDATE OF g)"
      " SELECT 0, g.id, g.deleted, g.\"values\"::text, g.provenance::text, g.detached::text,"
      "  NULL::text, NULL::text FROM g"
      " UNION ALL SELECT 1, x.golden_id, NULL, x.side::text, x.base::text, NULL, NULL, NULL"
      "  FROM mdsync.crosswalk x WHERE x.golden_id = ANY($1::bigint[]) AND x.state = 'linked'"
      " UNION ALL SELECT 2, c.golden_id, NULL, c.id::text, c.unit::text, c.kind::text,"
      "  c.side::text, coalesce(c.vetoed_by, '') FROM mdsync.conflict c"
      "  WHERE c.golden_id = ANY($1::bigint[]) AND c.status = 'open'",
      pg_bigint_array(ids));
  auto text = [](const pqxx::field& f) { return std::string_view(f.c_str(), f.size()); };
  std::map<std::int64_t, std::map<std::string, core::FieldValues>> bases;
  std::map<std::int64_t, std::vector<core::OpenConflict>> conflicts;
  for (const auto& row : rows) {
    const auto id = row[1].as<std::int64_t>();
    switch (row[0].as<int>()) {
      case 0: {
        core::RecordState s;
        s.exists = true;
        s.deleted = row[2].as<bool>();
        s.golden = values_from_json(text(row[3]));
        s.provenance = provenance_from_json_text(text(row[4]));
        auto arr = row[5].as_array();
        for (auto item = arr.get_next(); item.first != pqxx::array_parser::done;
             item = arr.get_next())
          if (item.first == pqxx::array_parser::string_value) s.detached.push_back(item.second);
        out.emplace(id, std::move(s));
        break;
      }
      case 1:
        bases[id].emplace(row[3].as<std::string>(), values_from_json(text(row[4])));
        break;
      default: {
        core::OpenConflict oc;
        oc.id = row[3].as<std::int64_t>();
        oc.unit = row[4].as<std::string>();
        oc.kind = core::conflict_kind_from_string(row[5].as<std::string>())
                      .value_or(core::ConflictKind::kConcurrentEdit);
        oc.side = row[6].as<std::string>();
        oc.vetoed_by = row[7].as<std::string>();
        conflicts[id].push_back(std::move(oc));
      }
    }
  }
  // Bases and conflicts go to the records found; those of an id with no golden row are dropped.
  for (auto& [id, state] : out) {
    if (auto b = bases.find(id); b != bases.end()) state.bases = std::move(b->second);
    if (auto c = conflicts.find(id); c != conflicts.end()) {
      std::sort(
          c->second.begin(), c->second.end(),
          [](const core::OpenConflict& a, const core::OpenConflict& b) { return a.id < b.id; });
      state.open_conflicts = std::move(c->second);
    }
  }
  return out;
}

std::map<std::string, std::string> RecordRepository::row_keys(std::int64_t id) {
  flush();
  std::map<std::string, std::string> keys;
  for (const auto& row :
       tx_.exec_params("SELECT side, row_key FROM mdsync.crosswalk WHERE golden_id = $1", id))
    keys[row[0].as<std::string>()] = row[1].as<std::string>();
  return keys;
}

std::int64_t RecordRepository::create_golden(const std::string& entity,
                                             const core::RecordState& s) {
  if (buffer_) {
    RecordWriteBuffer::Golden g{
        buffer_->next_golden_id(tx_),       entity,    values_to_json(s.golden),
        provenance_json_text(s.provenance), s.deleted, pg_text_array(s.detached)};
    const std::int64_t id = g.id;
    buffer_->insert_golden(std::move(g));
    if (buffer_->full()) flush();
    return id;
  }
  return tx_
      .exec_params1(
          "INSERT INTO mdsync.golden (entity, \"values\", provenance, deleted, detached) "
          "VALUES ($1, $2::jsonb, $3::jsonb, $4, $5::text[]) RETURNING id",
          entity, values_to_json(s.golden), provenance_json_text(s.provenance), s.deleted,
          pg_text_array(s.detached))[0]
      .as<std::int64_t>();
}

void RecordRepository::save_golden(std::int64_t id, const core::RecordState& s) {
  if (buffer_) {
    buffer_->update_golden(RecordWriteBuffer::Golden{id, "", values_to_json(s.golden),
                                                     provenance_json_text(s.provenance), s.deleted,
                                                     pg_text_array(s.detached)});
    if (buffer_->full()) flush();
    return;
  }
  tx_.exec_params(
      "UPDATE mdsync.golden SET \"values\" = $2::jsonb, provenance = $3::jsonb, deleted = $4,"
      " detached = $5::text[], updated_at = now() WHERE id = $1",
      id, values_to_json(s.golden), provenance_json_text(s.provenance), s.deleted,
      pg_text_array(s.detached));
}

void RecordRepository::link(const std::string& entity, const std::string& side,
                            const std::string& row_key, std::int64_t id,
                            const core::FieldValues& base) {
  if (buffer_) {
    buffer_->link(tx_, RecordWriteBuffer::Link{entity, side, row_key, id, values_to_json(base)});
    if (buffer_->full()) flush();
    return;
  }
  tx_.exec_params(
      "DELETE FROM mdsync.crosswalk WHERE golden_id = $1 AND side = $2 AND state <> 'linked'"
      " AND row_key <> $3",
      id, side, row_key);
  const pqxx::result r = tx_.exec_params(
      "INSERT INTO mdsync.crosswalk (entity, side, row_key, golden_id, base)"
      " VALUES ($1, $2, $3, $4, $5::jsonb)"
      " ON CONFLICT (entity, side, row_key) DO UPDATE SET golden_id = EXCLUDED.golden_id,"
      "  base = EXCLUDED.base, state = 'linked', linked_at = now(), superseded_streak = 0"
      " WHERE mdsync.crosswalk.state <> 'linked' OR mdsync.crosswalk.golden_id = "
      "EXCLUDED.golden_id",
      entity, side, row_key, id, values_to_json(base));
  if (r.affected_rows() != 1)
    throw std::runtime_error("side " + side + " row " + row_key + " of " + entity +
                             " is already linked to another record");
}

void RecordRepository::retire(std::int64_t id, const std::string& side, const std::string& state) {
  flush();
  tx_.exec_params("UPDATE mdsync.crosswalk SET state = $3 WHERE golden_id = $1 AND side = $2", id,
                  side, state);
  cancel_pending(id, side, {"insert", "update", "delete"});
}

core::FieldValues RecordRepository::revive(std::int64_t id, const std::string& side) {
  flush();
  const pqxx::result r = tx_.exec_params(
      "UPDATE mdsync.crosswalk SET state = 'linked' WHERE golden_id = $1 AND side = $2"
      " RETURNING base::text",
      id, side);
  return r.empty() ? core::FieldValues{} : values_from_json(r[0][0].as<std::string>());
}

void RecordRepository::cancel_pending(std::int64_t id, const std::string& side,
                                      const std::vector<std::string>& kinds,
                                      const std::string& why) {
  if (buffer_) {
    buffer_->withdraw(tx_, id, side, pg_text_array(kinds), why);
    if (buffer_->full()) flush();
    return;
  }
  tx_.exec_params(
      "UPDATE mdsync.outbox SET status = 'cancelling', not_before = NULL,"
      " last_error = coalesce(nullif($4, ''), last_error)"
      " WHERE golden_id = $1 AND side = $2 AND status = 'pending' AND kind = ANY($3::text[])",
      id, side, pg_text_array(kinds), why);
}

void RecordRepository::unlink(std::int64_t id, const std::string& side) {
  if (buffer_) {
    buffer_->unlink(tx_, id, side);
    if (buffer_->full()) flush();
    return;
  }
  tx_.exec_params("DELETE FROM mdsync.crosswalk WHERE golden_id = $1 AND side = $2", id, side);
}

void RecordRepository::save_base(std::int64_t id, const std::string& side,
                                 const core::FieldValues& base) {
  // A change of the row was reconciled: the engine knows again what the side holds.
  if (buffer_) {
    buffer_->save_base(id, side, values_to_json(base));
    if (buffer_->full()) flush();
    return;
  }
  tx_.exec_params(
      "UPDATE mdsync.crosswalk SET base = $3::jsonb, superseded_streak = 0"
      " WHERE golden_id = $1 AND side = $2",
      id, side, values_to_json(base));
}

void RecordRepository::persist_plan(const std::string& entity, std::optional<std::int64_t> id,
                                    const std::string& side, const std::string& row_key,
                                    const core::Plan& plan, core::RecordState& after) {
  std::size_t next_new = 0;
  for (const core::ConflictOpened& c : plan.opened) {
    json values = json::object();
    for (const auto& [who, v] : c.values) values[who] = values_json(v);
    std::int64_t cid = 0;
    if (buffer_) {
      cid = buffer_->next_conflict_id(tx_);
      buffer_->open_conflict(RecordWriteBuffer::Conflict{
          cid, entity, id, side, row_key, c.unit, std::string(core::to_string(c.kind)),
          dump(values), c.reason, plan.source, plan.ruleset_version, c.vetoed_by});
    } else {
      cid = tx_.exec_params1(
                   "INSERT INTO mdsync.conflict (entity, golden_id, side, row_key, unit, kind,"
                   " \"values\", reason, source, ruleset_version, vetoed_by)"
                   " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, nullif($11, ''))"
                   " RETURNING id",
                   entity, id, side, row_key, c.unit, std::string(core::to_string(c.kind)),
                   dump(values), c.reason, plan.source, plan.ruleset_version, c.vetoed_by)[0]
                .as<std::int64_t>();
    }
    for (; next_new < after.open_conflicts.size(); ++next_new) {
      if (after.open_conflicts[next_new].id == 0 && after.open_conflicts[next_new].unit == c.unit) {
        after.open_conflicts[next_new++].id = cid;
        break;
      }
    }
  }
  // Attaching and closing update conflicts that may have been opened by this batch.
  if (!plan.attached.empty() || !plan.closed.empty()) flush();
  for (const core::ConflictAttached& a : plan.attached) {
    const json item = {
        {"side", a.side}, {"source", plan.source}, {"values", values_json(a.values)}};
    tx_.exec_params(
        "UPDATE mdsync.conflict SET attached = attached || jsonb_build_array($2::jsonb)"
        " WHERE id = $1",
        a.conflict_id, dump(item));
  }
  for (std::int64_t closed : plan.closed) {
    const bool dismissed =
        !plan.decisions.empty() && plan.decisions.back().outcome == core::Outcome::kDismiss;
    const std::string note =
        plan.decisions.empty() ? std::string() : plan.decisions.back().reason();
    const json resolution = {
        {"decision", dismissed ? "dismiss" : "resolve"},
        {"values",
         plan.decisions.empty() ? json::object() : values_json(plan.decisions.back().after)}};
    tx_.exec_params(
        "UPDATE mdsync.conflict SET status = $2, resolved_at = now(), resolved_by = $3,"
        " resolution = $4::jsonb, note = $5 WHERE id = $1",
        closed, std::string(dismissed ? "dismissed" : "resolved"), plan.source, dump(resolution),
        note);
  }
  for (const core::UnitDecision& d : plan.decisions) {
    if (d.outcome == core::Outcome::kNoChange || d.outcome == core::Outcome::kAgree) continue;
    // A side's value not taken where golden has none and keeps none ("revert null -> null",
    // e.g. a non-owner's values on the row that creates the record) changes no golden value:
    // no audit row (DESIGN.md guarantee 8 audits golden changes). The write-back it causes is
    // in the outbox; a revert of a value golden holds is kept as the trace of a foreign edit.
    if (d.outcome == core::Outcome::kRevert && all_null(d.before) && all_null(d.after)) continue;
    if (buffer_) {
      buffer_->audit(RecordWriteBuffer::Audit{
          entity, id, d.unit, std::string(core::to_string(d.outcome)), values_to_json(d.before),
          values_to_json(d.after), values_to_json(d.proposed), plan.source, d.rule_text(),
          plan.ruleset_version, d.reason()});
      continue;
    }
    tx_.exec_params(
        "INSERT INTO mdsync.audit (entity, golden_id, unit, decision, old_value, new_value,"
        " proposed, source, rule, ruleset_version, reason)"
        " VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7::jsonb, $8, $9, $10, $11)",
        entity, id, d.unit, std::string(core::to_string(d.outcome)), values_to_json(d.before),
        values_to_json(d.after), values_to_json(d.proposed), plan.source, d.rule_text(),
        plan.ruleset_version, d.reason());
  }
}

void RecordRepository::audit_event(const std::string& entity, std::optional<std::int64_t> id,
                                   const std::string& decision, const std::string& source,
                                   std::int64_t ruleset_version, const std::string& reason) {
  if (buffer_) {
    buffer_->audit(RecordWriteBuffer::Audit{entity, id, std::string(core::kRecordUnit), decision,
                                            std::nullopt, std::nullopt, std::nullopt, source, "",
                                            ruleset_version, reason});
    if (buffer_->full()) flush();
    return;
  }
  tx_.exec_params(
      "INSERT INTO mdsync.audit (entity, golden_id, unit, decision, source, rule,"
      " ruleset_version, reason) VALUES ($1, $2, $3, $4, $5, '', $6, $7)",
      entity, id, std::string(core::kRecordUnit), decision, source, ruleset_version, reason);
}

std::string RecordRepository::deleting_side(std::int64_t id) {
  flush();
  // A side's change is audited with the source "side#seq"; a steward's acceptance of a
  // foreign delete names the side in its conflict.
  const pqxx::result r = tx_.exec_params(
      "SELECT CASE WHEN a.source LIKE 'steward:%' THEN (SELECT c.side FROM mdsync.conflict c"
      "  WHERE c.golden_id = a.golden_id AND c.unit = a.unit AND c.kind = 'foreign_delete'"
      "  ORDER BY c.resolved_at DESC NULLS LAST, c.id DESC LIMIT 1)"
      " ELSE split_part(a.source, '#', 1) END"
      " FROM mdsync.audit a WHERE a.golden_id = $1 AND a.unit = $2"
      " AND a.decision IN ('delete', 'resolve') ORDER BY a.id DESC LIMIT 1",
      id, std::string(core::kRecordUnit));
  return r.empty() || r[0][0].is_null() ? std::string() : r[0][0].as<std::string>();
}

std::optional<std::int64_t> RecordRepository::open_create_conflict(const std::string& entity,
                                                                   const std::string& side,
                                                                   const std::string& row_key) {
  flush();
  const pqxx::result r = tx_.exec_params(
      "SELECT id FROM mdsync.conflict WHERE entity = $1 AND side = $2 AND row_key = $3"
      " AND kind IN ('unauthorized_create', 'possible_duplicate') AND status = 'open'"
      " ORDER BY id LIMIT 1",
      entity, side, row_key);
  if (r.empty()) return std::nullopt;
  return r[0][0].as<std::int64_t>();
}

std::map<RecordRepository::RowRef, std::int64_t> RecordRepository::open_create_conflicts(
    const std::set<RowRef>& rows) {
  flush();
  std::map<RowRef, std::int64_t> found;
  if (rows.empty()) return found;
  std::vector<std::string> entities, sides, keys;
  columns_of(rows, entities, sides, keys);
  for (const auto& row : exec_prepared(
           tx_, "mdsync_open_create_conflicts",
           "SELECT DISTINCT ON (c.entity, c.side, c.row_key) c.entity, c.side, c.row_key, c.id"
           " FROM unnest($1::text[], $2::text[], $3::text[]) AS u(entity, side, row_key)"
           " JOIN mdsync.conflict c"
           "  ON c.entity = u.entity AND c.side = u.side AND c.row_key = u.row_key"
           " WHERE c.kind IN ('unauthorized_create', 'possible_duplicate') AND c.status = 'open'"
           " ORDER BY c.entity, c.side, c.row_key, c.id",
           pg_text_array(entities), pg_text_array(sides), pg_text_array(keys)))
    found[RowRef{row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>()}] =
        row[3].as<std::int64_t>();
  return found;
}

std::vector<core::PendingWrite> RecordRepository::pending_writes(std::int64_t id) {
  return std::move(pending_writes_of({id})[id]);
}

std::map<std::int64_t, std::vector<core::PendingWrite>> RecordRepository::pending_writes_of(
    const std::vector<std::int64_t>& ids) {
  flush();
  std::map<std::int64_t, std::vector<core::PendingWrite>> pending;
  // One index probe per record, whatever the statistics say. As `golden_id = ANY($1)` the
  // planner, without statistics of the outbox (sync --initial fills it in one transaction,
  // which no ANALYZE sees), took 1,000 ids to match every row and read every queued write
  // through the queue's index, matching each against the array: 0.1-0.6 s a call at
  // N = 1,000,000, once per 1,000 records. OFFSET 0 keeps the planner from pulling the
  // subquery up into a join that reads the whole queue in golden_id order (a merge join); the
  // probe has one index it can use (outbox_queued_by_record, see 0020).
  for (const auto& row : exec_prepared(
           tx_, "mdsync_pending_writes",
           "SELECT g.id, o.id, o.side, o.kind, o.\"values\"::text, o.status = 'cancelling',"
           " o.expected::text FROM (SELECT DISTINCT unnest($1::bigint[])) AS g(id)"
           " CROSS JOIN LATERAL (SELECT * FROM mdsync.outbox w WHERE w.golden_id = g.id"
           " AND w.status IN ('pending', 'cancelling') OFFSET 0) o ORDER BY g.id, o.id",
           pg_bigint_array(ids))) {
    core::PendingWrite w;
    w.id = row[1].as<std::int64_t>();
    w.side = row[2].as<std::string>();
    w.kind = core::row_write_kind_from_string(row[3].as<std::string>())
                 .value_or(core::RowWrite::Kind::kUpdate);
    w.values = values_from_json(row[4].as<std::string>());
    w.withdrawn = row[5].as<bool>();
    w.expected = values_from_json(row[6].as<std::string>());
    pending[row[0].as<std::int64_t>()].push_back(std::move(w));
  }
  return pending;
}

void RecordRepository::enqueue(const std::string& entity, std::int64_t id, const core::RowWrite& w,
                               std::int64_t delay_ms) {
  if (buffer_) {
    buffer_->enqueue(
        RecordWriteBuffer::Outbox{w.side, entity, id, std::string(core::to_string(w.kind)),
                                  values_to_json(w.values), values_to_json(w.expected), delay_ms});
    if (buffer_->full()) flush();
    return;
  }
  tx_.exec_params(
      "INSERT INTO mdsync.outbox (side, entity, golden_id, kind, \"values\", expected, not_before)"
      " VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb,"
      "  CASE WHEN $7::bigint > 0 THEN now() + $7::bigint * interval '1 millisecond' END)",
      w.side, entity, id, std::string(core::to_string(w.kind)), values_to_json(w.values),
      values_to_json(w.expected), delay_ms);
}

void RecordRepository::plan_and_enqueue(const core::EntityRules& rules,
                                        const std::vector<std::string>& sides,
                                        std::int64_t golden_id, const core::RecordState& state,
                                        const std::map<std::string, std::int64_t>& delays_ms) {
  const core::WritebackPlan plan =
      core::plan_writebacks(rules, state, sides, pending_writes(golden_id));
  enqueue_planned(rules.entity, golden_id, plan, delays_ms);
}

void RecordRepository::enqueue_planned(const std::string& entity, std::int64_t golden_id,
                                       const core::WritebackPlan& plan,
                                       const std::map<std::string, std::int64_t>& delays_ms) {
  if (!plan.cancel.empty()) {
    flush();
    exec_prepared(tx_, "mdsync_outbox_withdraw",
                  "UPDATE mdsync.outbox SET status = 'cancelling', not_before = NULL,"
                  " last_error = 'withdrawn: the record no longer needs this write'"
                  " WHERE id = ANY($1::bigint[]) AND status = 'pending'",
                  pg_bigint_array(plan.cancel));
  }
  for (const core::RowWrite& w : plan.writes) {
    auto delay = delays_ms.find(w.side);
    enqueue(entity, golden_id, w, delay == delays_ms.end() ? 0 : delay->second);
  }
}

void RecordRepository::plan_and_enqueue_many(const std::vector<Planned>& records,
                                             const std::vector<std::string>& sides) {
  if (records.empty()) return;
  std::vector<std::int64_t> ids;
  for (const Planned& p : records) ids.push_back(p.golden_id);
  std::map<std::int64_t, std::vector<core::PendingWrite>> pending = pending_writes_of(ids);
  // Every record's withdrawals in one statement, then its writes (kept, in record order).
  core::WritebackPlan all;
  std::vector<std::pair<const Planned*, core::WritebackPlan>> plans;
  for (const Planned& p : records) {
    core::WritebackPlan plan =
        core::plan_writebacks(*p.rules, *p.state, sides, pending[p.golden_id]);
    all.cancel.insert(all.cancel.end(), plan.cancel.begin(), plan.cancel.end());
    plan.cancel.clear();
    plans.emplace_back(&p, std::move(plan));
  }
  std::sort(all.cancel.begin(), all.cancel.end());
  enqueue_planned("", 0, all, {});
  for (const auto& [p, plan] : plans) enqueue_planned(p->rules->entity, p->golden_id, plan, {});
}

}  // namespace mdsync::store
