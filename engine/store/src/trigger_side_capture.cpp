// Capture read and acknowledge on a trigger side: the capture rows in seq order with their
// lookups resolved, forgetting those the engine reconciled, the backlog, and the wake flag
// that makes capture NOTIFY only while the engine waits.

#include <map>
#include <pqxx/pqxx>

#include "mdsync/log/event_log.hpp"
#include "mdsync/store/pg_arrays.hpp"
#include "trigger_side.hpp"
#include "trigger_side_sql.hpp"

namespace mdsync::store {

CaptureBatch TriggerSide::read_capture(int limit) {
  // Repeatable read: the stamp and epoch in the same snapshot as the rows, so a side adopted
  // by another store since this connection was made is refused before anything of it is
  // reconciled here.
  pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only> tx(
      conn());
  return read_capture_in(tx, limit);
}

CaptureBatch TriggerSide::read_capture_in(pqxx::transaction_base& tx, int limit) {
  CaptureBatch batch;
  std::vector<CapturedRow>& rows = batch.rows;
  const pqxx::result epoch = tx.exec(
      "SELECT e.epoch, o.store_id::text, 'store ' || o.store_id || ', ' || o.control ||"
      " ', stamped ' || to_char(o.stamped_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') ||"
      " ' UTC' FROM mdsync.capture_epoch e LEFT JOIN mdsync.owner o ON true");
  if (epoch.size() != 1)
    throw std::runtime_error("side " + side_.name +
                             ": mdsync.capture_epoch must hold one row; run `mdsync init`");
  if (bound_ && epoch[0][1].is_null()) require_owner("");
  if (bound_) require_owner(epoch[0][1].as<std::string>(), epoch[0][2].as<std::string>());
  batch.epoch = epoch[0][0].as<std::string>();
  // Reported once per process and column: the trigger goes on without the column meanwhile.
  for (const std::string& drift : mapping_drift(tx))
    if (drift_logged_.insert(drift).second)
      log::warn("mapping_drift", {{"side", side_.name}, {"problem", drift}});
  const pqxx::result r = tx.exec_params(
      "SELECT c.seq, c.entity, c.op, c.row_key,"
      " (extract(epoch FROM c.captured_at) * 1000000)::bigint, e.key, e.value "
      "FROM (SELECT * FROM mdsync.capture ORDER BY seq LIMIT $1) c "
      "LEFT JOIN LATERAL jsonb_each_text(c.changed) e ON true ORDER BY c.seq",
      limit);
  for (const auto& row : r) {
    const auto seq = row[0].as<std::int64_t>();
    if (rows.empty() || rows.back().seq != seq) {
      CapturedRow c;
      c.seq = seq;
      c.entity = row[1].as<std::string>();
      const std::string op = row[2].as<std::string>();
      c.op = op == "U" ? core::Op::kUpsert : core::Op::kDelete;
      c.left_scope = op == "L";
      c.row_key = row[3].is_null() ? std::string() : row[3].as<std::string>();
      c.captured_at_us = row[4].as<std::int64_t>();
      rows.push_back(std::move(c));
    }
    add_field(rows.back(), row[5], row[6]);
  }
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
