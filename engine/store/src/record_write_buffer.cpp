#include "record_write_buffer.hpp"

#include <algorithm>
#include <map>
#include <pqxx/pqxx>
#include <stdexcept>
#include <tuple>

#include "mdsync/store/pg_arrays.hpp"
#include "prepared_statement.hpp"

namespace mdsync::store {

namespace {

std::vector<std::optional<std::string>> ids_or_null(
    const std::vector<std::optional<std::int64_t>>& ids) {
  std::vector<std::optional<std::string>> out;
  out.reserve(ids.size());
  for (const auto& id : ids)
    out.push_back(id ? std::optional<std::string>(std::to_string(*id)) : std::nullopt);
  return out;
}

}  // namespace

std::int64_t RecordWriteBuffer::take(pqxx::transaction_base& tx, const char* table,
                                     std::vector<std::int64_t>& pool, std::size_t& block) {
  if (pool.empty()) {
    // Kept in reverse so the batch uses them in increasing order; a batch that keeps creating
    // takes larger blocks, up to a bound on the ids one batch can leave unused.
    const pqxx::result r = exec_prepared(
        tx, "mdsync_take_ids",
        "SELECT nextval(pg_get_serial_sequence($1, 'id')) FROM generate_series(1, $2)", table,
        static_cast<std::int64_t>(block));
    for (auto row = r.rbegin(); row != r.rend(); ++row)
      pool.push_back((*row)[0].as<std::int64_t>());
    block = std::min<std::size_t>(block * 2, 512);
  }
  const std::int64_t id = pool.back();
  pool.pop_back();
  return id;
}

std::int64_t RecordWriteBuffer::next_golden_id(pqxx::transaction_base& tx) {
  return take(tx, "mdsync.golden", golden_pool_, golden_block_);
}

std::int64_t RecordWriteBuffer::next_conflict_id(pqxx::transaction_base& tx) {
  return take(tx, "mdsync.conflict", conflict_pool_, conflict_block_);
}

void RecordWriteBuffer::link(pqxx::transaction_base& tx, Link l) {
  const std::pair<std::int64_t, std::string> row{l.golden_id, l.side};
  // One statement cannot upsert a crosswalk row twice, and a base kept for it must not be
  // sent after the link that replaces it.
  if (linked_.count(row) || based_.count(row) || unlinked_.count(row) ||
      link_keys_.count({l.entity, l.side, l.row_key}))
    flush(tx);
  linked_.insert(row);
  link_keys_.emplace(l.entity, l.side, l.row_key);
  links_.push_back(std::move(l));
  grew();
}

void RecordWriteBuffer::unlink(pqxx::transaction_base& tx, std::int64_t golden_id,
                               const std::string& side) {
  std::pair<std::int64_t, std::string> row{golden_id, side};
  if (linked_.count(row)) flush(tx);
  if (unlinked_.insert(std::move(row)).second) grew();
}

void RecordWriteBuffer::save_base(std::int64_t golden_id, const std::string& side,
                                  std::string base) {
  based_.emplace(golden_id, side);
  bases_.emplace_back(golden_id, side, std::move(base));
  grew();
}

void RecordWriteBuffer::withdraw(pqxx::transaction_base& tx, std::int64_t golden_id,
                                 const std::string& side, std::string kinds, std::string why) {
  // A withdrawal applies to the writes queued before it: none of the batch's may wait.
  if (!outbox_.empty()) flush(tx);
  withdrawals_.push_back(Withdrawal{golden_id, side, std::move(kinds), std::move(why)});
  grew();
}

void RecordWriteBuffer::flush(pqxx::transaction_base& tx) {
  if (rows_ == 0) return;
  // Golden: a record inserted and updated by the same batch is inserted as it was left; one
  // updated several times is updated once, to what it was left.
  {
    std::map<std::int64_t, std::size_t> inserted;
    for (std::size_t i = 0; i < golden_inserts_.size(); ++i) inserted[golden_inserts_[i].id] = i;
    std::map<std::int64_t, const Golden*> updated;
    for (const Golden& g : golden_updates_) {
      if (auto it = inserted.find(g.id); it != inserted.end()) {
        Golden& ins = golden_inserts_[it->second];
        ins.values = g.values;
        ins.provenance = g.provenance;
        ins.deleted = g.deleted;
        ins.detached = g.detached;
      } else {
        updated[g.id] = &g;
      }
    }
    if (!golden_inserts_.empty()) {
      std::vector<std::int64_t> ids;
      std::vector<std::string> entities, values, provenance, deleted, detached;
      for (const Golden& g : golden_inserts_) {
        ids.push_back(g.id);
        entities.push_back(g.entity);
        values.push_back(g.values);
        provenance.push_back(g.provenance);
        deleted.push_back(g.deleted ? "t" : "f");
        detached.push_back(g.detached);
      }
      exec_prepared(tx, "mdsync_golden_insert",
                    "INSERT INTO mdsync.golden (id, entity, \"values\", provenance, deleted,"
                    " detached)"
                    " SELECT u.id, u.entity, u.v::jsonb, u.p::jsonb, u.d, u.det::text[]"
                    " FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],"
                    "  $5::boolean[], $6::text[]) AS u(id, entity, v, p, d, det)",
                    pg_bigint_array(ids), pg_text_array(entities), pg_text_array(values),
                    pg_text_array(provenance), pg_text_array(deleted), pg_text_array(detached));
    }
    if (!updated.empty()) {
      std::vector<std::int64_t> ids;
      std::vector<std::string> values, provenance, deleted, detached;
      for (const auto& [id, g] : updated) {
        ids.push_back(id);
        values.push_back(g->values);
        provenance.push_back(g->provenance);
        deleted.push_back(g->deleted ? "t" : "f");
        detached.push_back(g->detached);
      }
      exec_prepared(tx, "mdsync_golden_update",
                    "UPDATE mdsync.golden g SET \"values\" = u.v::jsonb, provenance = u.p::jsonb,"
                    " deleted = u.d, detached = u.det::text[], updated_at = now()"
                    " FROM unnest($1::bigint[], $2::text[], $3::text[], $4::boolean[],"
                    "  $5::text[]) AS u(id, v, p, d, det) WHERE g.id = u.id",
                    pg_bigint_array(ids), pg_text_array(values), pg_text_array(provenance),
                    pg_text_array(deleted), pg_text_array(detached));
    }
  }
  if (!unlinked_.empty()) {
    std::vector<std::int64_t> ids;
    std::vector<std::string> sides;
    for (const auto& [id, side] : unlinked_) {
      ids.push_back(id);
      sides.push_back(side);
    }
    exec_prepared(tx, "mdsync_unlink",
                  "DELETE FROM mdsync.crosswalk x"
                  " USING unnest($1::bigint[], $2::text[]) AS u(gid, side)"
                  " WHERE x.golden_id = u.gid AND x.side = u.side",
                  pg_bigint_array(ids), pg_text_array(sides));
  }
  if (!links_.empty()) {
    std::vector<std::int64_t> ids;
    std::vector<std::string> entities, sides, keys, bases;
    for (const Link& l : links_) {
      ids.push_back(l.golden_id);
      entities.push_back(l.entity);
      sides.push_back(l.side);
      keys.push_back(l.row_key);
      bases.push_back(l.base);
    }
    // As RecordRepository::link, for every link at once: a retired link of the record on the
    // side is replaced; a row linked to another record is refused (fewer rows upserted).
    exec_prepared(tx, "mdsync_link_replace",
                  "DELETE FROM mdsync.crosswalk x"
                  " USING unnest($1::bigint[], $2::text[], $3::text[]) AS u(gid, side, k)"
                  " WHERE x.golden_id = u.gid AND x.side = u.side AND x.state <> 'linked'"
                  " AND x.row_key <> u.k",
                  pg_bigint_array(ids), pg_text_array(sides), pg_text_array(keys));
    const pqxx::result r = exec_prepared(
        tx, "mdsync_link_upsert",
        "INSERT INTO mdsync.crosswalk (entity, side, row_key, golden_id, base)"
        " SELECT u.entity, u.side, u.k, u.gid, u.b::jsonb"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[])"
        "  AS u(entity, side, k, gid, b)"
        " ON CONFLICT (entity, side, row_key) DO UPDATE SET golden_id = EXCLUDED.golden_id,"
        "  base = EXCLUDED.base, state = 'linked', linked_at = now(), superseded_streak = 0"
        " WHERE mdsync.crosswalk.state <> 'linked' OR mdsync.crosswalk.golden_id ="
        " EXCLUDED.golden_id",
        pg_text_array(entities), pg_text_array(sides), pg_text_array(keys), pg_bigint_array(ids),
        pg_text_array(bases));
    if (r.affected_rows() != links_.size())
      throw std::runtime_error("a side row of this batch is already linked to another record");
  }
  if (!bases_.empty()) {
    std::map<std::pair<std::int64_t, std::string>, const std::string*> last;
    for (const auto& [id, side, base] : bases_) last[{id, side}] = &base;
    std::vector<std::int64_t> ids;
    std::vector<std::string> sides, bases;
    for (const auto& [key, base] : last) {
      ids.push_back(key.first);
      sides.push_back(key.second);
      bases.push_back(*base);
    }
    exec_prepared(tx, "mdsync_base_update",
                  "UPDATE mdsync.crosswalk x SET base = u.b::jsonb, superseded_streak = 0"
                  " FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(gid, side, b)"
                  " WHERE x.golden_id = u.gid AND x.side = u.side",
                  pg_bigint_array(ids), pg_text_array(sides), pg_text_array(bases));
  }
  if (!withdrawals_.empty()) {
    std::vector<std::int64_t> ids;
    std::vector<std::string> sides, kinds, whys;
    for (const Withdrawal& w : withdrawals_) {
      ids.push_back(w.golden_id);
      sides.push_back(w.side);
      kinds.push_back(w.kinds);
      whys.push_back(w.why);
    }
    // As RecordRepository::cancel_pending, for every withdrawal at once. The writes are found
    // by one probe of outbox_queued_by_record per record (OFFSET 0: see pending_writes_of),
    // never by a join the planner would price on statistics taken while the queue was empty.
    // The row updated must still have the status the probe saw (a row another session changed
    // meanwhile is checked again as it is now); asked as a join clause, which no partial index's
    // predicate follows from, so the update cannot be planned as a scan of one.
    exec_prepared(tx, "mdsync_outbox_withdraw_kinds",
                  "UPDATE mdsync.outbox o SET status = 'cancelling', not_before = NULL,"
                  " last_error = coalesce(nullif(q.why, ''), o.last_error)"
                  " FROM (SELECT w.id, w.status, u.why"
                  "  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])"
                  "   AS u(gid, side, kinds, why)"
                  "  CROSS JOIN LATERAL (SELECT id, status FROM mdsync.outbox w"
                  "   WHERE w.golden_id = u.gid AND w.side = u.side AND w.status = 'pending'"
                  "   AND w.kind = ANY(u.kinds::text[]) OFFSET 0) w) q"
                  " WHERE o.id = q.id AND o.status = q.status",
                  pg_bigint_array(ids), pg_text_array(sides), pg_text_array(kinds),
                  pg_text_array(whys));
  }
  if (!conflicts_.empty()) {
    std::vector<std::int64_t> ids, versions;
    std::vector<std::optional<std::int64_t>> golden_ids;
    std::vector<std::string> entities, sides, keys, units, kinds, values, reasons, sources;
    std::vector<std::optional<std::string>> vetoed;
    for (const Conflict& c : conflicts_) {
      ids.push_back(c.id);
      entities.push_back(c.entity);
      golden_ids.push_back(c.golden_id);
      sides.push_back(c.side);
      keys.push_back(c.row_key);
      units.push_back(c.unit);
      kinds.push_back(c.kind);
      values.push_back(c.values);
      reasons.push_back(c.reason);
      sources.push_back(c.source);
      versions.push_back(c.ruleset_version);
      vetoed.push_back(c.vetoed_by.empty() ? std::nullopt
                                           : std::optional<std::string>(c.vetoed_by));
    }
    exec_prepared(tx, "mdsync_conflict_insert",
                  "INSERT INTO mdsync.conflict (id, entity, golden_id, side, row_key, unit, kind,"
                  " \"values\", reason, source, ruleset_version, vetoed_by)"
                  " SELECT u.id, u.entity, u.gid, u.side, u.k, u.unit, u.kind, u.v::jsonb,"
                  "  u.reason, u.source, u.rv, u.vetoed"
                  " FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[],"
                  "  $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[],"
                  "  $12::text[])"
                  "  AS u(id, entity, gid, side, k, unit, kind, v, reason, source, rv, vetoed)",
                  pg_bigint_array(ids), pg_text_array(entities),
                  pg_nullable_text_array(ids_or_null(golden_ids)), pg_text_array(sides),
                  pg_text_array(keys), pg_text_array(units), pg_text_array(kinds),
                  pg_text_array(values), pg_text_array(reasons), pg_text_array(sources),
                  pg_bigint_array(versions), pg_nullable_text_array(vetoed));
  }
  if (!audits_.empty()) {
    // COPY, not INSERT ... SELECT FROM unnest: a batch writes an audit row per field it
    // decides, and the server takes them three times faster this way (22,000 rows: 142 ms
    // against 441 ms). Rows go in the order they were made, and their ids follow it. The
    // nullable columns go as const char* (null: SQL NULL); they hold digits or JSON text, which
    // has no NUL byte to cut them short.
    pqxx::stream_to copy(tx, "mdsync.audit",
                         std::vector<std::string>{"entity", "golden_id", "unit", "decision",
                                                  "old_value", "new_value", "proposed", "source",
                                                  "rule", "ruleset_version", "reason"});
    auto text_or_null = [](const std::optional<std::string>& v) -> const char* {
      return v ? v->c_str() : nullptr;
    };
    for (const Audit& a : audits_) {
      const std::string gid = a.golden_id ? std::to_string(*a.golden_id) : std::string();
      copy << std::make_tuple(a.entity, a.golden_id ? gid.c_str() : nullptr, a.unit, a.decision,
                              text_or_null(a.old_value), text_or_null(a.new_value),
                              text_or_null(a.proposed), a.source, a.rule,
                              std::to_string(a.ruleset_version), a.reason);
    }
    copy.complete();
  }
  if (!outbox_.empty()) {
    std::vector<std::int64_t> ids, delays;
    std::vector<std::string> sides, entities, kinds, values, expected;
    for (const Outbox& o : outbox_) {
      sides.push_back(o.side);
      entities.push_back(o.entity);
      ids.push_back(o.golden_id);
      kinds.push_back(o.kind);
      values.push_back(o.values);
      expected.push_back(o.expected);
      delays.push_back(o.delay_ms);
    }
    // In the order they were queued: a record's writes to a side apply in id order.
    exec_prepared(tx, "mdsync_outbox_insert",
                  "INSERT INTO mdsync.outbox (side, entity, golden_id, kind, \"values\","
                  " expected, not_before)"
                  " SELECT u.side, u.entity, u.gid, u.kind, u.v::jsonb, u.e::jsonb,"
                  "  CASE WHEN u.delay > 0 THEN now() + u.delay * interval '1 millisecond' END"
                  " FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],"
                  "  $6::text[], $7::bigint[]) WITH ORDINALITY"
                  "  AS u(side, entity, gid, kind, v, e, delay, i)"
                  " ORDER BY u.i",
                  pg_text_array(sides), pg_text_array(entities), pg_bigint_array(ids),
                  pg_text_array(kinds), pg_text_array(values), pg_text_array(expected),
                  pg_bigint_array(delays));
  }
  golden_inserts_.clear();
  golden_updates_.clear();
  links_.clear();
  linked_.clear();
  unlinked_.clear();
  link_keys_.clear();
  bases_.clear();
  based_.clear();
  withdrawals_.clear();
  conflicts_.clear();
  audits_.clear();
  outbox_.clear();
  rows_ = 0;
}

}  // namespace mdsync::store
