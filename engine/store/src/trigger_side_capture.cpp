// Capture read and acknowledge on a trigger side: the capture rows in seq order with their
// lookups resolved, forgetting those the engine reconciled, the backlog, and the wake flag
// that makes capture NOTIFY only while the engine waits.

#include <map>
#include <pqxx/pqxx>
#include <set>

#include "mdsync/log/event_log.hpp"
#include "mdsync/store/pg_arrays.hpp"
#include "trigger_side.hpp"
#include "trigger_side_sql.hpp"

namespace mdsync::store {

namespace {

bool has_lookups(const config::Config& config, const std::string& side) {
  for (const config::EntityConfig& entity : config.entities)
    if (const config::SideMapping* m = entity.mapping_for(side))
      for (const mapping::FieldMapping& fm : m->fields)
        if (fm.lookup) return true;
  return false;
}

}  // namespace

CaptureBatch TriggerSide::read_capture(int limit) {
  // One statement reads the stamp, the epoch, the drift and the rows in one snapshot, so a side
  // adopted by another store since this connection was made is refused before anything of it
  // is reconciled here. Outside a transaction block: BEGIN, SET TRANSACTION and ROLLBACK were
  // three more round trips per side and pass. Lookups are read by further statements, which a
  // repeatable read transaction keeps in the rows' snapshot.
  if (has_lookups(config_, side_.name)) {
    pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only> tx(
        conn());
    return read_capture_in(tx, limit);
  }
  pqxx::nontransaction tx(conn());
  return read_capture_in(tx, limit);
}

CaptureBatch TriggerSide::read_capture_in(pqxx::transaction_base& tx, int limit) {
  // The columns whose drift is checked, as (entity, table, column) triples.
  std::vector<std::string> entities, tables, columns;
  for (const config::EntityConfig& entity : config_.entities) {
    const config::SideMapping* m = entity.mapping_for(side_.name);
    if (m == nullptr) continue;
    const std::string table = table_name(tx.conn(), *m);
    for (const std::string& col : read_columns(*m)) {
      entities.push_back(entity.name);
      tables.push_back(table);
      columns.push_back(col);
    }
  }
  // Part 0: the epoch with the stamp (one row, or the side is not set up); part 1: each column
  // the trigger reads that its table (still there) no longer has; part 2: the capture rows,
  // one result row per field.
  const pqxx::result r = tx.exec_params(
      "SELECT 0, NULL::bigint, e.epoch::text, o.store_id::text,"
      " 'store ' || o.store_id || ', ' || o.control || ', stamped ' ||"
      " to_char(o.stamped_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC',"
      " NULL::bigint, NULL::text, NULL::text"
      " FROM mdsync.capture_epoch e LEFT JOIN mdsync.owner o ON true "
      "UNION ALL SELECT 1, NULL, u.entity, u.col, NULL, NULL, NULL, NULL"
      " FROM unnest($2::text[], $3::text[], $4::text[]) AS u(entity, tbl, col)"
      " WHERE to_regclass(u.tbl) IS NOT NULL AND NOT EXISTS (SELECT FROM pg_attribute a"
      "  WHERE a.attrelid = to_regclass(u.tbl) AND a.attname = u.col AND a.attnum > 0"
      "  AND NOT a.attisdropped) "
      "UNION ALL SELECT 2, c.seq, c.entity::text, c.op::text, c.row_key::text,"
      " (extract(epoch FROM c.captured_at) * 1000000)::bigint, e.key, e.value"
      " FROM (SELECT * FROM mdsync.capture ORDER BY seq LIMIT $1) c"
      " LEFT JOIN LATERAL jsonb_each_text(c.changed) e ON true "
      "ORDER BY 1, 2",
      limit, pg_text_array(entities), pg_text_array(tables), pg_text_array(columns));
  CaptureBatch batch;
  std::vector<CapturedRow>& rows = batch.rows;
  std::size_t epochs = 0;
  std::string owner, owner_text;
  std::map<std::string, std::set<std::string>> gone;  // entity -> columns
  for (const auto& row : r) {
    const int part = row[0].as<int>();
    if (part == 0) {
      ++epochs;
      batch.epoch = row[2].as<std::string>();
      owner = row[3].is_null() ? std::string() : row[3].as<std::string>();
      owner_text = row[4].is_null() ? std::string() : row[4].as<std::string>();
      continue;
    }
    if (part == 1) {
      gone[row[2].as<std::string>()].insert(row[3].as<std::string>());
      continue;
    }
    const auto seq = row[1].as<std::int64_t>();
    if (rows.empty() || rows.back().seq != seq) {
      CapturedRow c;
      c.seq = seq;
      c.entity = row[2].as<std::string>();
      const std::string op = row[3].as<std::string>();
      c.op = op == "U" ? core::Op::kUpsert : core::Op::kDelete;
      c.left_scope = op == "L";
      c.row_key = row[4].is_null() ? std::string() : row[4].as<std::string>();
      c.captured_at_us = row[5].as<std::int64_t>();
      rows.push_back(std::move(c));
    }
    add_field(rows.back(), row[6], row[7]);
  }
  if (epochs != 1)
    throw std::runtime_error("side " + side_.name +
                             ": mdsync.capture_epoch must hold one row; run `mdsync init`");
  if (bound_) require_owner(owner, owner_text);
  // Reported once per process and column: the trigger goes on without the column meanwhile.
  for (const std::string& drift : drift_messages(gone))
    if (drift_logged_.insert(drift).second)
      log::warn("mapping_drift", {{"side", side_.name}, {"problem", drift}});
  resolve_lookups(tx, rows);
  return batch;
}

void TriggerSide::resolve_lookups(pqxx::transaction_base& tx, std::vector<CapturedRow>& rows) {
  // A lookup field was captured as its foreign key; each is read as the referenced row's value,
  // one statement per lookup field for the whole batch. A key the table does not hold cannot
  // be read: it becomes an invalid_value for that field, and the rest of the row syncs.
  pqxx::connection_base& c = conn();
  for (const config::EntityConfig& entity : config_.entities) {
    const config::SideMapping* m = entity.mapping_for(side_.name);
    if (m == nullptr) continue;
    for (const mapping::FieldMapping& fm : m->fields) {
      if (!fm.lookup) continue;
      std::vector<std::string> wanted;
      for (const CapturedRow& row : rows) {
        if (row.entity != entity.name) continue;
        auto v = row.values.find(fm.field);
        if (v != row.values.end() && v->second) wanted.push_back(*v->second);
      }
      if (wanted.empty()) continue;
      // Compared as text, so the statement does not depend on the key's type; lookup tables
      // are reference tables (countries, currencies), small enough for that.
      std::map<std::string, core::Value> found;
      for (const auto& r : tx.exec_params(
               "SELECT l." + c.quote_name(fm.lookup->key) + "::text, " +
                   lookup_value(c, *fm.lookup, "l") + " FROM " + lookup_table(c, *m, *fm.lookup) +
                   " l WHERE l." + c.quote_name(fm.lookup->key) + "::text = ANY($1::text[])",
               pg_text_array(wanted)))
        found[r[0].as<std::string>()] =
            r[1].is_null() ? core::Value{} : core::Value{r[1].as<std::string>()};
      for (CapturedRow& row : rows) {
        if (row.entity != entity.name) continue;
        auto v = row.values.find(fm.field);
        if (v == row.values.end() || !v->second) continue;
        auto f = found.find(*v->second);
        if (f != found.end()) {
          v->second = f->second;
        } else {
          row.invalid[fm.field] = "side value " + fm.column + " = " + *v->second + " is not in " +
                                  (fm.lookup->schema.empty() ? m->schema : fm.lookup->schema) +
                                  "." + fm.lookup->table + "." + fm.lookup->key + " (lookup)";
        }
      }
    }
  }
}

void TriggerSide::forget_capture(const std::vector<std::int64_t>& seqs) {
  if (seqs.empty()) return;
  pqxx::work tx(conn());
  // A side adopted since these rows were read keeps them: the new owner reconciles them.
  hold_ownership(tx);
  tx.exec_params("DELETE FROM mdsync.capture WHERE seq = ANY($1::bigint[])", pg_bigint_array(seqs));
  tx.commit();
}

void TriggerSide::set_engine_waiting(bool waiting) {
  pqxx::work tx(conn());
  tx.exec_params("UPDATE mdsync.wake SET engine_waiting = $1 WHERE engine_waiting <> $1", waiting);
  tx.commit();
}

std::int64_t TriggerSide::capture_backlog() {
  pqxx::read_transaction tx(conn());
  return tx.exec1("SELECT count(*) FROM mdsync.capture")[0].as<std::int64_t>();
}

}  // namespace mdsync::store
