#include "mdsync/store/side_store.hpp"

#include <map>
#include <pqxx/pqxx>
#include <sstream>

#include "mdsync/store/crash_points.hpp"
#include "mdsync/store/db_connection.hpp"
#include "mdsync/store/pg_arrays.hpp"
#include "savepoint.hpp"

namespace mdsync::store {

namespace {

std::string first_line(const std::string& s) {
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

// Builds the row trigger body for one entity's table. Field names (config-checked) key the
// captured jsonb; identifiers are quoted by the server's rules, literals escaped.
std::string trigger_body(pqxx::connection_base& c, const config::EntityConfig& entity,
                         const config::SideMapping& m) {
  const std::string ent = c.quote(entity.name);
  const std::string key = c.quote_name(m.key_column);
  std::ostringstream all, diff;
  // jsonb_build_object takes at most 100 arguments: build in chunks of 50 fields.
  for (std::size_t i = 0; i < m.columns.size(); i += 50) {
    if (i) all << " || ";
    all << "jsonb_build_object(";
    for (std::size_t k = i; k < m.columns.size() && k < i + 50; ++k) {
      if (k > i) all << ", ";
      all << c.quote(m.columns[k].first) << ", NEW." << c.quote_name(m.columns[k].second);
    }
    all << ")";
  }
  for (const auto& [field, column] : m.columns) {
    const std::string col = c.quote_name(column);
    diff << "    IF NEW." << col << " IS DISTINCT FROM OLD." << col << " THEN d := d || "
         << "jsonb_build_object(" << c.quote(field) << ", NEW." << col << "); END IF;\n";
  }
  std::ostringstream b;
  b << "DECLARE d jsonb := '{}'::jsonb;\n"
       "BEGIN\n"
       "  IF current_setting('mdsync.origin', true) = 'engine' THEN RETURN NULL; END IF;\n"
       "  IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND NEW."
    << key << " IS DISTINCT FROM OLD." << key
    << ") THEN\n"
       "    INSERT INTO mdsync.capture (entity, op, row_key) VALUES ("
    << ent << ", 'D', OLD." << key
    << "::text);\n"
       "    IF TG_OP = 'DELETE' THEN RETURN NULL; END IF;\n"
       "  END IF;\n"
       "  IF TG_OP = 'INSERT' OR NEW."
    << key << " IS DISTINCT FROM OLD." << key << " THEN\n    d := " << all.str() << ";\n  ELSE\n"
    << diff.str()
    << "    IF d = '{}'::jsonb THEN RETURN NULL; END IF;\n"
       "  END IF;\n"
       "  INSERT INTO mdsync.capture (entity, op, row_key, changed) VALUES ("
    << ent << ", 'U', NEW." << key
    << "::text, d);\n"
       "  RETURN NULL;\n"
       "END";
  return b.str();
}

std::string table_name(pqxx::connection_base& c, const config::SideMapping& m) {
  return c.quote_name(m.schema) + "." + c.quote_name(m.table);
}

}  // namespace

SideStore::SideStore(const config::Config& config, const config::SideConfig& side)
    : config_(config), side_(side) {}

SideStore::~SideStore() = default;

pqxx::connection_base& SideStore::conn() {
  if (!conn_ || !conn_->is_open()) conn_ = connect(side_.dsn, Role::kSide, "side " + side_.name);
  return *conn_;
}

void SideStore::reset() {
  conn_.reset();
}

void SideStore::check_mappings() {
  std::vector<std::string> problems;
  pqxx::read_transaction tx(conn());
  for (const config::EntityConfig& entity : config_.entities) {
    const config::SideMapping* m = entity.mapping_for(side_.name);
    if (m == nullptr) continue;
    const std::string where = "entities." + entity.name + ".sides." + side_.name;
    const pqxx::result cols = tx.exec_params(
        "SELECT a.attname FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE n.nspname = $1 AND t.relname = $2 AND t.relkind IN ('r', 'p') "
        "AND a.attnum > 0 AND NOT a.attisdropped",
        m->schema, m->table);
    if (cols.empty()) {
      problems.push_back("side " + side_.name + ": table " + m->schema + "." + m->table +
                         " does not exist (" + where + ".table in " + config_.path + ")");
      continue;
    }
    std::map<std::string, bool> present;
    for (const auto& row : cols) present[row[0].as<std::string>()] = true;
    if (!present.count(m->key_column))
      problems.push_back("side " + side_.name + ": table " + m->schema + "." + m->table +
                         " has no column '" + m->key_column + "' (" + where + ".key)");
    for (const auto& [field, column] : m->columns)
      if (!present.count(column))
        problems.push_back("side " + side_.name + ": table " + m->schema + "." + m->table +
                           " has no column '" + column + "' (mapped to " + entity.name + "." +
                           field + " in " + where + ".columns)");
  }
  if (!problems.empty()) {
    std::string msg;
    for (const auto& p : problems) msg += (msg.empty() ? "" : "\n") + p;
    throw MappingError(msg);
  }
}

std::vector<std::string> SideStore::install_capture() {
  std::vector<std::string> changed;
  pqxx::connection_base& c = conn();
  pqxx::work tx(c);
  // Serializes concurrent `mdsync init` runs against the same side.
  tx.exec("SELECT pg_advisory_xact_lock(hashtext('mdsync.install_capture'))");
  if (!tx.exec1("SELECT to_regnamespace('mdsync') IS NOT NULL")[0].as<bool>()) {
    tx.exec("CREATE SCHEMA mdsync");
    changed.push_back("created schema mdsync");
  }
  if (!tx.exec1("SELECT to_regclass('mdsync.capture') IS NOT NULL")[0].as<bool>()) {
    tx.exec(
        "CREATE TABLE mdsync.capture ("
        " seq bigserial PRIMARY KEY, entity text NOT NULL, op \"char\" NOT NULL,"
        " row_key text, changed jsonb NOT NULL DEFAULT '{}',"
        " captured_at timestamptz NOT NULL DEFAULT clock_timestamp())");
    changed.push_back("created table mdsync.capture");
  }
  if (!tx.exec1("SELECT to_regclass('mdsync.capture_row') IS NOT NULL")[0].as<bool>()) {
    // Write-backs ask whether a row has changes still to reconcile.
    tx.exec("CREATE INDEX capture_row ON mdsync.capture (entity, row_key)");
    changed.push_back("created index mdsync.capture_row");
  }
  if (!tx.exec1("SELECT to_regclass('mdsync.capture_epoch') IS NOT NULL")[0].as<bool>()) {
    tx.exec("CREATE TABLE mdsync.capture_epoch AS SELECT gen_random_uuid()::text AS epoch");
    changed.push_back("created table mdsync.capture_epoch");
  }
  if (!tx.exec1("SELECT to_regclass('mdsync.applied') IS NOT NULL")[0].as<bool>()) {
    tx.exec(
        "CREATE TABLE mdsync.applied ("
        " outbox_id bigint PRIMARY KEY, row_key text,"
        " applied_at timestamptz NOT NULL DEFAULT now())");
    changed.push_back("created table mdsync.applied");
  }

  auto ensure_function = [&](const std::string& name, const std::string& body) {
    const pqxx::result r = tx.exec_params(
        "SELECT p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 'mdsync' AND p.proname = $1",
        name);
    if (!r.empty() && r[0][0].as<std::string>() == body) return;
    tx.exec("CREATE OR REPLACE FUNCTION mdsync." + c.quote_name(name) +
            "() RETURNS trigger LANGUAGE plpgsql AS " + c.quote(body));
    changed.push_back((r.empty() ? "created function mdsync." : "updated function mdsync.") + name);
  };
  auto trigger_exists = [&](const std::string& table_oid_expr, const std::string& name) {
    return !tx.exec_params(
                  "SELECT 1 FROM pg_trigger WHERE tgrelid = " + table_oid_expr + " AND tgname = $1",
                  name)
                .empty();
  };

  ensure_function("notify_capture",
                  "BEGIN PERFORM pg_notify('mdsync_capture', ''); RETURN NULL; END");
  const bool has_notify = trigger_exists("'mdsync.capture'::regclass", "mdsync_notify");
  if (side_.notify && !has_notify) {
    tx.exec(
        "CREATE TRIGGER mdsync_notify AFTER INSERT ON mdsync.capture "
        "FOR EACH STATEMENT EXECUTE FUNCTION mdsync.notify_capture()");
    changed.push_back("created NOTIFY trigger on mdsync.capture");
  } else if (!side_.notify && has_notify) {
    tx.exec("DROP TRIGGER mdsync_notify ON mdsync.capture");
    changed.push_back("dropped NOTIFY trigger (notify is off for this side)");
  }

  for (const config::EntityConfig& entity : config_.entities) {
    const config::SideMapping* m = entity.mapping_for(side_.name);
    if (m == nullptr) continue;
    const std::string function = "capture_" + entity.name;
    ensure_function(function, trigger_body(c, entity, *m));
    const std::string table = table_name(c, *m);
    const std::string trigger = "mdsync_capture_" + entity.name;
    if (!trigger_exists(c.quote(table) + "::regclass", trigger)) {
      tx.exec("CREATE TRIGGER " + c.quote_name(trigger) + " AFTER INSERT OR UPDATE OR DELETE ON " +
              table + " FOR EACH ROW EXECUTE FUNCTION mdsync." + c.quote_name(function) + "()");
      changed.push_back("created capture trigger on " + m->schema + "." + m->table);
    }
  }
  tx.commit();
  return changed;
}

CaptureBatch SideStore::read_capture(int limit) {
  CaptureBatch batch;
  std::vector<CapturedRow>& rows = batch.rows;
  pqxx::read_transaction tx(conn());
  const pqxx::result epoch = tx.exec("SELECT epoch FROM mdsync.capture_epoch");
  if (epoch.size() != 1)
    throw std::runtime_error("side " + side_.name +
                             ": mdsync.capture_epoch must hold one row; run `mdsync init`");
  batch.epoch = epoch[0][0].as<std::string>();
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
      c.op = row[2].as<std::string>() == "D" ? core::Op::kDelete : core::Op::kUpsert;
      c.row_key = row[3].is_null() ? std::string() : row[3].as<std::string>();
      c.captured_at_us = row[4].as<std::int64_t>();
      rows.push_back(std::move(c));
    }
    if (!row[5].is_null())
      rows.back().values[row[5].as<std::string>()] =
          row[6].is_null() ? core::Value{} : core::Value{row[6].as<std::string>()};
  }
  return batch;
}

void SideStore::forget_capture(const std::vector<std::int64_t>& seqs) {
  if (seqs.empty()) return;
  pqxx::work tx(conn());
  tx.exec_params("DELETE FROM mdsync.capture WHERE seq = ANY($1::bigint[])", pg_bigint_array(seqs));
  tx.commit();
}

std::int64_t SideStore::capture_backlog() {
  pqxx::read_transaction tx(conn());
  return tx.exec1("SELECT count(*) FROM mdsync.capture")[0].as<std::int64_t>();
}

std::vector<WriteResult> SideStore::apply(const std::vector<WriteRequest>& requests) {
  std::vector<WriteResult> results;
  pqxx::connection_base& c = conn();
  pqxx::work tx(c);
  for (const WriteRequest& req : requests) {
    WriteResult res;
    res.row_key = req.row_key;
    const pqxx::result done =
        tx.exec_params("SELECT row_key FROM mdsync.applied WHERE outbox_id = $1", req.outbox_id);
    if (!done.empty()) {  // an earlier attempt committed here; its control update was lost
      if (!done[0][0].is_null()) res.row_key = done[0][0].as<std::string>();
      results.push_back(res);
      continue;
    }
    const config::EntityConfig* entity = config_.entity(req.entity);
    const config::SideMapping* m = entity ? entity->mapping_for(side_.name) : nullptr;
    if (m == nullptr) {
      res.status = WriteResult::Status::kFailed;
      res.error = "entity " + req.entity + " is not mapped on side " + side_.name;
      results.push_back(res);
      continue;
    }
    const std::string table = table_name(c, *m);
    const std::string key = c.quote_name(m->key_column);
    std::vector<core::Value> params;
    std::string sql;
    auto param = [&](const core::Value& v) {
      params.push_back(v);
      return "$" + std::to_string(params.size());
    };
    switch (req.kind) {
      case core::RowWrite::Kind::kUpdate: {
        std::string set, where = key + " = " + param(req.row_key);
        for (const auto& [field, value] : req.values) {
          const std::string* col = m->column_of(field);
          if (col == nullptr) continue;
          set += (set.empty() ? "" : ", ") + c.quote_name(*col) + " = " + param(value);
          auto exp = req.expected.find(field);
          where += " AND " + c.quote_name(*col) + " IS NOT DISTINCT FROM " +
                   param(exp == req.expected.end() ? core::Value{} : exp->second);
        }
        // A row with captured changes the engine has not reconciled yet is not written: its
        // value may equal the base again (A -> B -> A) while those changes are still to come,
        // and they would then be judged against a base they never saw. The write is superseded
        // and planned again once they are reconciled. The row is locked first (below), so this
        // statement's snapshot sees the capture rows of any transaction that held it.
        where += " AND NOT EXISTS (SELECT 1 FROM mdsync.capture c WHERE c.entity = " +
                 param(req.entity) + " AND c.row_key = " + param(req.row_key) + ")";
        sql = "UPDATE " + table + " SET " + set + " WHERE " + where;
        break;
      }
      case core::RowWrite::Kind::kInsert: {
        std::string cols, vals;
        for (const auto& [field, column] : m->columns) {
          auto it = req.values.find(field);
          if (it == req.values.end()) continue;
          cols += (cols.empty() ? "" : ", ") + c.quote_name(column);
          vals += (vals.empty() ? "" : ", ") + param(it->second);
        }
        sql = "INSERT INTO " + table + " (" + cols + ") VALUES (" + vals + ") RETURNING " + key +
              "::text";
        break;
      }
      case core::RowWrite::Kind::kDelete:
        sql = "DELETE FROM " + table + " WHERE " + key + " = " + param(req.row_key);
        break;
    }
    try {
      Savepoint savepoint(tx, "writeback");
      if (req.kind == core::RowWrite::Kind::kUpdate)
        tx.exec_params("SELECT 1 FROM " + table + " WHERE " + key + " = $1 FOR UPDATE",
                       req.row_key);
      const pqxx::result r = tx.exec_params(sql, pqxx::prepare::make_dynamic_params(params));
      if (req.kind == core::RowWrite::Kind::kInsert) {
        res.row_key = r[0][0].as<std::string>();
      } else if (req.kind == core::RowWrite::Kind::kUpdate && r.affected_rows() == 0) {
        res.status = WriteResult::Status::kSuperseded;
      }
      if (res.status == WriteResult::Status::kApplied)
        tx.exec_params("INSERT INTO mdsync.applied (outbox_id, row_key) VALUES ($1, $2)",
                       req.outbox_id, res.row_key);
      savepoint.release();
      crash_point("writeback.mid_side");
    } catch (const pqxx::sql_error& e) {
      res.status = WriteResult::Status::kFailed;
      res.error = first_line(e.what());
    }
    results.push_back(res);
  }
  tx.commit();
  return results;
}

}  // namespace mdsync::store
