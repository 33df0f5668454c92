// Write-backs to a trigger side: one side transaction per attempt, retried on deadlock; the
// idempotency keys, the values in the side's terms, and each group of requests written a
// chunk at a time by set-based statements, a refused chunk redone row by row.

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <thread>
#include <tuple>

#include "field_transforms.hpp"
#include "mdsync/store/crash_points.hpp"
#include "mdsync/store/pg_arrays.hpp"
#include "savepoint.hpp"
#include "side_table_sql.hpp"
#include "trigger_side.hpp"
#include "trigger_side_sql.hpp"

namespace mdsync::store {

std::int64_t TriggerSide::highest_applied_id() {
  pqxx::read_transaction tx(conn());
  return tx.exec1("SELECT coalesce(max(outbox_id), 0) FROM mdsync.applied")[0].as<std::int64_t>();
}

namespace {

// The side's text of a field in the side row aliased `t`, for the write-back condition: the
// column as text, the text at a jsonb path, or the looked-up value.
std::string current_expr(pqxx::connection_base& c, const config::SideMapping& m,
                         const mapping::FieldMapping& fm) {
  const std::string col = "t." + c.quote_name(fm.column);
  if (!fm.json_path.empty()) return col + " #>> " + path_array(c, fm.json_path);
  // A key the lookup table does not hold reads as the key itself: it then holds only a base
  // that is that same text (the value the engine could not read), never a looked-up value.
  if (fm.lookup)
    return "coalesce((SELECT " + lookup_value(c, *fm.lookup, "l") + " FROM " +
           lookup_table(c, m, *fm.lookup) + " l WHERE l." + c.quote_name(fm.lookup->key) + " = " +
           col + "), " + col + "::text)";
  return col + "::text";
}

// Rows per batched statement: large enough that a pass's writes to one table take a handful
// of statements, small enough that one refused row sends only this many to the row-by-row path.
constexpr std::size_t kChunkRows = 1000;

// A row the batched INSERT returned does not match the request at its position: the side
// rewrote the values (a trigger), or RETURNING did not come back in insert order. Either way
// the keys cannot be told apart, so the chunk is rolled back and written row by row.
class InsertOrderMismatch : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Writes one request on its own, as a statement or two in a savepoint: the path of a chunk
// whose batched statement the side refused, so that the refused row fails alone.
void apply_one(pqxx::work& tx, pqxx::connection_base& c, const config::SideMapping& m,
               const WriteRequest& req, WriteResult& res) {
  const std::string table = table_name(c, m);
  const std::string key = c.quote_name(m.key_column);
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
        const std::string* col = m.column_of(field);
        if (col == nullptr) continue;
        set += (set.empty() ? "" : ", ") + c.quote_name(*col) + " = " + param(value);
        auto exp = req.expected.find(field);
        where += " AND " + c.quote_name(*col) + " IS NOT DISTINCT FROM " +
                 param(exp == req.expected.end() ? core::Value{} : exp->second);
      }
      // See the batched update (apply_chunk) for why a row with unreconciled captured
      // changes is not written.
      where +=
          " AND NOT EXISTS (SELECT 1 FROM mdsync.capture c WHERE c.entity = " + param(req.entity) +
          " AND c.row_key = " + param(req.row_key) + ")";
      sql = "UPDATE " + table + " SET " + set + " WHERE " + where;
      break;
    }
    case core::RowWrite::Kind::kInsert: {
      std::string cols, vals;
      for (const auto& [field, column] : m.columns) {
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
      // As in apply_chunk: a row with unreconciled captured changes waits for them.
      sql =
          "DELETE FROM " + table + " WHERE " + key + " = " + param(req.row_key) +
          " AND NOT EXISTS (SELECT 1 FROM mdsync.capture c WHERE c.entity = " + param(req.entity) +
          " AND c.row_key = " + param(req.row_key) + ")";
      break;
  }
  try {
    Savepoint savepoint(tx, "writeback");
    if (req.kind != core::RowWrite::Kind::kInsert)
      tx.exec_params("SELECT 1 FROM " + table + " WHERE " + key + " = $1 FOR UPDATE", req.row_key);
    if (req.kind == core::RowWrite::Kind::kDelete &&
        tx.exec_params1("SELECT EXISTS (SELECT 1 FROM mdsync.capture c WHERE c.entity = $1"
                        " AND c.row_key = $2)",
                        req.entity, req.row_key)[0]
            .as<bool>())
      res.status = WriteResult::Status::kSuperseded;
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
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const pqxx::transaction_rollback&) {
    throw;  // a deadlock with a user's transaction: the whole side transaction is retried
  } catch (const pqxx::sql_error& e) {
    res.status = WriteResult::Status::kFailed;
    res.error = first_line(e.what());
    res.sqlstate = e.sqlstate();
  }
}

// A request as this side is written: its values in the side's terms (transforms applied,
// lookups resolved to the referenced keys). The request keeps the canonical values and the
// canonical expected base, which the condition of mapped fields is checked against.
struct Prepared {
  const WriteRequest* req = nullptr;
  core::FieldValues side;
};

// Requests of one entity, one kind and one set of columns: they share one statement.
struct WriteGroup {
  const config::SideMapping* mapping = nullptr;
  core::RowWrite::Kind kind = core::RowWrite::Kind::kUpdate;
  std::vector<std::string> fields;   // update: fields to set; insert: fields given; delete: none
  std::vector<std::size_t> members;  // indexes into the requests, in request order
  bool mapped = false;               // some field is not a plain column
  // The mapping uses row-level options (a composite key, a scope, a soft delete, a time zone,
  // delete guards) that only apply_chunk renders, so a refused chunk is redone through it one
  // row at a time rather than through apply_one.
  bool row_options = false;
  // Inserts that bring back a soft-deleted row of the record (its key is known): the row is
  // un-deleted and given the golden values instead of a new row being inserted.
  bool restore = false;
};

// How a jsonb value is made from a field's text: numbers and booleans as JSON numbers and
// booleans, everything else as a JSON string.
std::string json_cast(core::FieldType type) {
  switch (type) {
    case core::FieldType::kInteger:
    case core::FieldType::kNumeric:
      return "numeric";
    case core::FieldType::kBoolean:
      return "boolean";
    default:
      return "text";
  }
}

// `object` with the value `v` (SQL text of a field's side text) set at `path`, creating
// missing parent objects on the way, every other key untouched. Each level reads its object
// once through a sub-select, so the expression grows linearly with the path and the fields.
std::string json_set(pqxx::connection_base& c, std::string object,
                     const std::vector<std::string>& path, const std::string& v,
                     core::FieldType type) {
  for (std::size_t d = 1; d < path.size(); ++d) {
    const std::string p = path_array(c, std::vector<std::string>(path.begin(), path.begin() + d));
    object = "(SELECT jsonb_set(s.j, " + p + ", coalesce(s.j #> " + p +
             ", '{}'::jsonb), true) FROM (SELECT " + object + ") s(j))";
  }
  // A NULL value is JSON null at the path: jsonb_set with a NULL value would empty the column.
  return "jsonb_set(" + object + ", " + path_array(c, path) + ", coalesce(to_jsonb(" + v +
         "::" + json_cast(type) + "), 'null'::jsonb), true)";
}

// Writes one chunk of a group in a few set-based statements inside a savepoint; fills the
// chunk's results. Throws (the savepoint rolled back, nothing of the chunk written) when the
// side refuses any row of it.
void apply_chunk(pqxx::work& tx, pqxx::connection_base& c, const config::EntityConfig& entity,
                 const FieldTransforms& transforms, const std::string& side, const WriteGroup& g,
                 const ColumnTypes& types, const std::vector<const Prepared*>& all,
                 const std::vector<WriteResult*>& res) {
  const config::SideMapping& m = *g.mapping;
  const SideTableSql sql(c, entity, m, types);
  const std::string table = sql.table();
  auto field_type = [&](const std::string& field) {
    return entity.type_of(field).value_or(core::FieldType::kText);
  };
  std::vector<std::string> all_keys;
  for (const Prepared* p : all) all_keys.push_back(p->req->row_key);
  // Rows of the chunk: the side's rows whose keys the chunk names (u.k), for joins.
  const std::string rows_of_chunk =
      table + " t JOIN unnest($1::text[]) u(k) ON " + sql.key_equals("t", "u.k");

  Savepoint savepoint(tx, "writeback_chunk");
  const bool writes_rows = g.kind == core::RowWrite::Kind::kUpdate || g.restore ||
                           g.kind == core::RowWrite::Kind::kDelete;
  if (writes_rows) {
    // The rows are locked first, in a statement of their own, so that later statements'
    // snapshots (taken after any transaction that held one of them has committed) see the
    // capture rows those transactions wrote, and a guard's check stays true until the delete.
    // Taken in key order, as every batch takes them.
    tx.exec_params(
        "SELECT 1 FROM " + rows_of_chunk + " ORDER BY " + sql.key_columns("t") + " FOR UPDATE OF t",
        pg_text_array(all_keys));
  }

  // Which requests are written by the set-based statement. For mapped fields (a transform, a
  // jsonb key, a lookup) the side's text may differ from the canonical base and still hold it
  // ("HTTPS://WWW.Example.com/" holds "example.com"), and only FieldTransform::side_holds says
  // so: comparing in SQL with to_side(base) would find such a row changed on every attempt,
  // supersede the write and plan it again forever. So their condition is checked here, in
  // C++, on the rows locked above (held until the side transaction commits, so what is read
  // is what the update overwrites), with one read for the whole chunk; plain columns keep
  // their typed SQL condition in the update itself. Storing the side's raw text as the base
  // was the other way, but it would make bases differ per side for the core, which diffs
  // captured values against them in canonical terms.
  std::vector<const Prepared*> reqs;
  std::vector<WriteResult*> out;
  std::vector<std::vector<bool>> held;  // per written request, per group field
  if (g.kind == core::RowWrite::Kind::kUpdate && !g.restore && g.mapped) {
    std::string sel = "SELECT u.k, EXISTS (SELECT 1 FROM mdsync.capture c" +
                      std::string(" WHERE c.entity = $2 AND c.row_key = u.k)");
    for (const std::string& field : g.fields) {
      const mapping::FieldMapping& fm = *m.field_mapping(field);
      sel += ", " + (fm.plain() ? std::string("NULL") : current_expr(c, m, fm));
    }
    sel += " FROM " + rows_of_chunk;
    const pqxx::result cur = tx.exec_params(sel, pg_text_array(all_keys), entity.name);
    std::map<std::string, pqxx::result::size_type> row_of;
    for (pqxx::result::size_type r = 0; r < cur.size(); ++r)
      row_of[cur[r][0].as<std::string>()] = r;
    for (std::size_t k = 0; k < all.size(); ++k) {
      const WriteRequest& req = *all[k]->req;
      auto r = row_of.find(req.row_key);
      if (r == row_of.end() || cur[r->second][1].as<bool>()) {
        // Gone, or changed by a user with changes still to reconcile: see below.
        res[k]->status = WriteResult::Status::kSuperseded;
        continue;
      }
      bool holds_base = true, all_held = true;
      std::vector<bool> h(g.fields.size(), false);
      for (std::size_t i = 0; i < g.fields.size(); ++i) {
        const mapping::FieldTransform* t = transforms.find(entity.name, side, g.fields[i]);
        if (t == nullptr) {
          all_held = false;  // a plain column: written, under its SQL condition
          continue;
        }
        const pqxx::field f = cur[r->second][static_cast<int>(i) + 2];
        const core::Value raw = f.is_null() ? core::Value{} : core::Value{f.as<std::string>()};
        auto e = req.expected.find(g.fields[i]);
        const core::Value expected = e == req.expected.end() ? core::Value{} : e->second;
        auto v = req.values.find(g.fields[i]);
        const core::Value value = v == req.values.end() ? core::Value{} : v->second;
        // A base the transform cannot write (a value it refused) is held by the same text.
        if (!t->side_holds(raw, expected) && raw != expected) holds_base = false;
        h[i] = t->side_holds(raw, value);
      }
      // A lookup within another field holds its value only while that field stays: in another
      // country the same state code is another row.
      for (std::size_t i = 0; i < g.fields.size(); ++i) {
        const mapping::FieldMapping& fm = *m.field_mapping(g.fields[i]);
        if (!h[i] || !fm.lookup) continue;
        for (const auto& [lookup_column, other] : fm.lookup->within) {
          (void)lookup_column;
          auto j = std::find(g.fields.begin(), g.fields.end(), other);
          if (j != g.fields.end() && !h[static_cast<std::size_t>(j - g.fields.begin())])
            h[i] = false;
        }
      }
      for (std::size_t i = 0; i < g.fields.size(); ++i) all_held = all_held && h[i];
      if (!holds_base) {
        res[k]->status = WriteResult::Status::kSuperseded;
      } else if (!all_held) {
        reqs.push_back(all[k]);
        out.push_back(res[k]);
        held.push_back(std::move(h));
      }
      // Else the row already holds every value: nothing is written (no tuple, no trigger);
      // the write counts as applied, so the base becomes the golden value. It is not recorded
      // in mdsync.applied: doing nothing again on a retry is as harmless.
    }
  } else {
    reqs = all;
    out = res;
    held.assign(all.size(), std::vector<bool>(g.fields.size(), false));
  }

  std::vector<std::int64_t> ids;
  std::vector<std::string> keys;
  for (const Prepared* p : reqs) {
    ids.push_back(p->req->outbox_id);
    keys.push_back(p->req->row_key);
  }
  std::vector<std::string> params;
  auto param = [&](std::string array) {
    params.push_back(std::move(array));
    return "$" + std::to_string(params.size());
  };
  auto values_of = [&](const std::string& field, bool expected) {
    std::vector<core::Value> column;
    for (const Prepared* p : reqs) {
      const core::FieldValues& from = expected ? p->req->expected : p->side;
      auto it = from.find(field);
      column.push_back(it == from.end() ? core::Value{} : it->second);
    }
    return pg_nullable_text_array(column);
  };
  auto held_of = [&](std::size_t i) {
    std::vector<std::string> column;
    for (const auto& h : held) column.push_back(h[i] ? "t" : "f");
    return pg_text_array(column);
  };

  // A restore is an update of the soft-deleted row that sets every field and un-deletes it.
  switch (g.restore ? core::RowWrite::Kind::kUpdate : g.kind) {
    case core::RowWrite::Kind::kUpdate: {
      if (reqs.empty()) break;
      std::string cols = "u(id, k", arrays = param(pg_bigint_array(ids)) + "::bigint[], " +
                                             param(pg_text_array(keys)) + "::text[]";
      std::string set, cond;
      // Fields at jsonb paths are set into their column's object, one assignment per column.
      std::vector<std::string> json_columns;
      std::map<std::string, std::string> json_value;
      for (std::size_t i = 0; i < g.fields.size(); ++i) {
        const mapping::FieldMapping& fm = *m.field_mapping(g.fields[i]);
        const std::string col = fm.column;
        const std::string& type = sql.column_type(col).base;
        const std::string n = "n" + std::to_string(i), e = "e" + std::to_string(i),
                          h = "h" + std::to_string(i);
        if (fm.plain()) {
          cols += ", " + n + ", " + e;
          arrays += ", " + param(values_of(g.fields[i], false)) + "::text[], " +
                    param(values_of(g.fields[i], true)) + "::text[]";
          set += (set.empty() ? "" : ", ") + c.quote_name(col) + " = " +
                 sql.column_value(g.fields[i], col, "u." + n);
          // A restored row has no base: the engine last saw it deleted.
          if (!g.restore)
            cond += " AND " + sql.comparable(col, "t." + c.quote_name(col)) +
                    " IS NOT DISTINCT FROM " +
                    sql.comparable(col, sql.column_value(g.fields[i], col, "u." + e));
        } else if (!fm.json_path.empty()) {
          cols += ", " + n;
          arrays += ", " + param(values_of(g.fields[i], false)) + "::text[]";
          if (!json_value.count(col)) {
            json_columns.push_back(col);
            json_value[col] = "coalesce(t." + c.quote_name(col) + ", '{}'::jsonb)";
          }
          json_value[col] =
              json_set(c, json_value[col], fm.json_path, "u." + n, field_type(g.fields[i]));
        } else {
          // A field the row already holds keeps its text ("HTTPS://WWW.Example.com/" is not
          // rewritten as "example.com" because another field of the row changed).
          cols += ", " + n + ", " + h;
          arrays += ", " + param(values_of(g.fields[i], false)) + "::text[], " + param(held_of(i)) +
                    "::boolean[]";
          set += (set.empty() ? "" : ", ") + c.quote_name(col) + " = CASE WHEN u." + h +
                 " THEN t." + c.quote_name(col) + " ELSE u." + n + "::" + type + " END";
        }
      }
      for (const std::string& col : json_columns)
        set += (set.empty() ? "" : ", ") + c.quote_name(col) + " = " + json_value[col];
      if (g.restore) set += (set.empty() ? "" : ", ") + sql.soft_delete_clear();
      // A row is written only where the side still holds the base (guarantee 4) and has no
      // captured change the engine has not reconciled yet: its value may equal the base again
      // (A -> B -> A) while those changes are still to come, and they would then be judged
      // against a base they never saw. Such a write is superseded and planned again once they
      // are reconciled. The applied rows' outbox ids are recorded in the same statement.
      const std::string ent = param(entity.name);
      std::string q = "WITH u AS (SELECT * FROM unnest(" + arrays + ") AS " + cols + ")),";
      q += " w AS (UPDATE " + table + " t SET " + set;
      q += " FROM u WHERE " + sql.key_equals("t", "u.k") + cond;
      q += " AND NOT EXISTS (SELECT 1 FROM mdsync.capture c WHERE c.entity = " + ent;
      q += " AND c.row_key = u.k) RETURNING u.id, u.k),";
      q += " a AS (INSERT INTO mdsync.applied (outbox_id, row_key) SELECT id, k FROM w)";
      q += " SELECT id FROM w";
      const pqxx::result r = tx.exec_params(q, pqxx::prepare::make_dynamic_params(params));
      std::set<std::int64_t> written;
      for (const auto& row : r) written.insert(row[0].as<std::int64_t>());
      std::vector<std::string> unwritten;
      for (std::size_t k = 0; k < reqs.size(); ++k)
        if (!written.count(reqs[k]->req->outbox_id)) {
          out[k]->status = WriteResult::Status::kSuperseded;
          unwritten.push_back(reqs[k]->req->row_key);
        }
      // A row to restore that is gone altogether (deleted for real since) is reported with
      // no key: the engine forgets it and inserts a new row. One that is there has changes
      // still to reconcile, and waits for them like any superseded write.
      if (g.restore && !unwritten.empty()) {
        std::set<std::string> there;
        for (const auto& row :
             tx.exec_params("SELECT u.k FROM " + rows_of_chunk, pg_text_array(unwritten)))
          there.insert(row[0].as<std::string>());
        for (std::size_t k = 0; k < reqs.size(); ++k)
          if (out[k]->status == WriteResult::Status::kSuperseded &&
              !there.count(reqs[k]->req->row_key))
            out[k]->row_key.clear();
      }
      break;
    }
    case core::RowWrite::Kind::kInsert: {
      // RETURNING gives no way to name the input row a key belongs to, so the rows go in in
      // request order and the keys are taken in the order they come back, which is the order
      // PostgreSQL inserts them; each returned row is checked against its request's values,
      // and any difference sends the chunk to the row-by-row path.
      std::string cols = "u(id", arrays = param(pg_bigint_array(ids)) + "::bigint[]";
      std::vector<std::string> order;  // columns, in order of first appearance
      std::map<std::string, std::string> select, sent;
      for (std::size_t i = 0; i < g.fields.size(); ++i) {
        const mapping::FieldMapping& fm = *m.field_mapping(g.fields[i]);
        const std::string& col = fm.column;
        const ColumnType& type = sql.column_type(col);
        const std::string v = "v" + std::to_string(i);
        cols += ", " + v;
        arrays += ", " + param(values_of(g.fields[i], false)) + "::text[]";
        if (!select.count(col)) order.push_back(col);
        if (!fm.json_path.empty()) {
          if (!select.count(col)) select[col] = "'{}'::jsonb";
          select[col] = json_set(c, select[col], fm.json_path, "u." + v, field_type(g.fields[i]));
          sent[col] = select[col];
        } else {
          select[col] = sql.column_value(g.fields[i], col, "u." + v);
          sent[col] =
              sql.zone_of(g.fields[i], col).empty() ? "u." + v + "::" + type.full : select[col];
        }
      }
      std::string names, sel, returned, sent_row;
      for (std::size_t i = 0; i < order.size(); ++i) {
        const std::string sep = i ? ", " : "";
        names += sep + c.quote_name(order[i]);
        sel += sep + select[order[i]];
        returned += sep + "t." + c.quote_name(order[i]);
        sent_row += sep + sent[order[i]];
      }
      // Columns the scope fixes (is_company = true) are set, so a new row is one the engine
      // syncs; the row must then be present, or the insert is refused (below).
      for (const auto& [col, literal] : sql.scope_defaults()) {
        names += ", " + c.quote_name(col);
        sel += ", " + literal;
      }
      std::string q = "WITH u AS (SELECT * FROM unnest(" + arrays + ") WITH ORDINALITY AS ";
      q += cols + ", ord)),";
      q += " i AS (INSERT INTO " + table + " AS t (" + names + ") SELECT " + sel;
      q += " FROM u ORDER BY u.ord";
      q += " RETURNING " + sql.key_text("t") + " AS k, ROW(" + returned + ")::text AS r, ";
      q += sql.present("t") + " AS p),";
      q += " n AS (SELECT k, r, p, row_number() OVER () AS ord FROM i),";
      q += " a AS (INSERT INTO mdsync.applied (outbox_id, row_key)";
      q += " SELECT u.id, n.k FROM n JOIN u ON u.ord = n.ord)";
      q += " SELECT n.ord, n.k, n.r IS NOT DISTINCT FROM ROW(" + sent_row + ")::text, n.p";
      q += " FROM n JOIN u ON u.ord = n.ord ORDER BY n.ord";
      const pqxx::result r = tx.exec_params(q, pqxx::prepare::make_dynamic_params(params));
      if (r.size() != reqs.size())
        throw InsertOrderMismatch("batched insert returned " + std::to_string(r.size()) +
                                  " rows for " + std::to_string(reqs.size()));
      for (std::size_t k = 0; k < reqs.size(); ++k) {
        if (r[k][0].as<std::size_t>() != k + 1 || !r[k][2].as<bool>())
          throw InsertOrderMismatch("batched insert: returned row " + std::to_string(k + 1) +
                                    " does not match its request");
        // A row the engine would not see again (outside the scope, or soft-deleted by the
        // table's defaults) would be a copy nobody syncs: refused, so nothing is inserted.
        if (!r[k][3].as<bool>())
          throw std::runtime_error(
              "the new row would not be synced: " + m.schema + "." + m.table +
              (m.scope.empty() ? std::string()
                               : " takes part only where " + sql.describe_scope() + ",") +
              (m.soft_delete ? " and counts as deleted by " + m.soft_delete->column + "," : "") +
              " and the row as inserted is not; give the table defaults that make a new row "
              "take part");
        out[k]->row_key = r[k][1].as<std::string>();
      }
      break;
    }
    case core::RowWrite::Kind::kDelete: {
      // A delete guard vetoes deleting a row some other row still needs (unpaid invoices):
      // that row is not deleted, and the engine restores the record where it was deleted.
      std::map<std::string, std::string> vetoed;  // row key -> reason
      for (const mapping::DeleteGuard& guard : m.delete_guards)
        for (const auto& row : tx.exec_params(
                 "SELECT u.k FROM " + rows_of_chunk + " WHERE " + sql.guard_vetoes("t", guard),
                 pg_text_array(all_keys)))
          vetoed.emplace(row[0].as<std::string>(), sql.guard_reason(guard));
      std::vector<std::int64_t> del_ids;
      std::vector<std::string> del_keys;
      for (std::size_t k = 0; k < reqs.size(); ++k) {
        auto v = vetoed.find(reqs[k]->req->row_key);
        if (v == vetoed.end()) {
          del_ids.push_back(ids[k]);
          del_keys.push_back(keys[k]);
        } else {
          out[k]->status = WriteResult::Status::kVetoed;
          out[k]->error = v->second;
        }
      }
      if (del_ids.empty()) break;
      // The record is gone by the delete owner's word, so a delete does not depend on the
      // row's values; but a row with captured changes the engine has not reconciled yet waits
      // for them (superseded, planned again once they are): deleted first, they would be
      // changes of a row the engine no longer knows, read as a new record. A row already gone
      // is deleted as far as the record is concerned. A side that deletes softly gets its
      // soft-delete column set instead.
      const std::string waiting =
          "EXISTS (SELECT 1 FROM mdsync.capture c WHERE c.entity = $3"
          " AND c.row_key = u.k)";
      std::string q = "WITH u AS (SELECT * FROM unnest($1::bigint[], $2::text[]) AS u(id, k)),";
      if (m.soft_delete)
        q += " d AS (UPDATE " + table + " t SET " + sql.soft_delete_set() + " FROM u WHERE " +
             sql.key_equals("t", "u.k") + " AND NOT " + waiting + "),";
      else
        q += " d AS (DELETE FROM " + table + " t USING u WHERE " + sql.key_equals("t", "u.k") +
             " AND NOT " + waiting + "),";
      q += " a AS (INSERT INTO mdsync.applied (outbox_id, row_key) SELECT id, k FROM u";
      q += "  WHERE NOT " + waiting + " RETURNING outbox_id)";
      q += " SELECT outbox_id FROM a";
      std::set<std::int64_t> deleted;
      for (const auto& row :
           tx.exec_params(q, pg_bigint_array(del_ids), pg_text_array(del_keys), entity.name))
        deleted.insert(row[0].as<std::int64_t>());
      for (std::size_t k = 0; k < reqs.size(); ++k)
        if (out[k]->status != WriteResult::Status::kVetoed && !deleted.count(ids[k]))
          out[k]->status = WriteResult::Status::kSuperseded;
      break;
    }
  }
  savepoint.release();
}

}  // namespace

std::vector<WriteResult> TriggerSide::apply(const std::vector<WriteRequest>& requests) {
  // A deadlock with a user's transaction that locks the same rows in another order (or a
  // serialization failure) aborts the side transaction: nothing of it took effect, so it is
  // simply run again. Users' transactions come and go; a few attempts get through.
  for (int attempt = 1;; ++attempt) {
    try {
      return apply_once(requests);
    } catch (const pqxx::statement_completion_unknown&) {
      throw;  // the outcome is unknown: the idempotency keys settle it on the next pass
    } catch (const pqxx::transaction_rollback& e) {
      ++contention_retries_;
      if (attempt >= kContentionAttempts)
        throw SideContention("side " + side_.name +
                             ": write-backs kept deadlocking with other "
                             "transactions (" +
                             std::to_string(attempt) + " attempts): " + first_line(e.what()));
      std::this_thread::sleep_for(std::chrono::milliseconds(20 * attempt));
    }
  }
}

namespace {

// The text between the double quotes after `marker` in a server message ("constraint \"x\"").
std::optional<std::string> quoted_after(const std::string& message, const std::string& marker) {
  const std::size_t at = message.find(marker + "\"");
  if (at == std::string::npos) return std::nullopt;
  const std::size_t from = at + marker.size() + 1;
  const std::size_t to = message.find('"', from);
  if (to == std::string::npos) return std::nullopt;
  return message.substr(from, to - from);
}

}  // namespace

void TriggerSide::classify_refusal(pqxx::transaction_base& tx, const WriteRequest& req,
                                   const core::FieldValues& side_values, WriteResult& res) {
  const std::string& state = res.sqlstate;
  // Integrity constraints (class 23) and a trigger's RAISE EXCEPTION (P0001).
  if (state.compare(0, 2, "23") != 0 && state != "P0001") return;
  if (req.kind == core::RowWrite::Kind::kDelete || req.cancel) return;
  const config::EntityConfig* entity = config_.entity(req.entity);
  const config::SideMapping* m = entity ? entity->mapping_for(side_.name) : nullptr;
  if (m == nullptr) return;
  // The columns the refusal names: NOT NULL names its column; a constraint or unique index
  // its columns (in the table's order).
  std::vector<std::string> columns;
  std::string what;
  if (state == "23502") {
    if (auto col = quoted_after(res.error, "column ")) columns.push_back(*col);
    what = "NOT NULL";
  } else if (auto name = quoted_after(res.error, "constraint ")) {
    what = "constraint " + *name;
    for (const auto& row : tx.exec_params(
             "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = to_regclass($1)"
             " AND a.attnum IN (SELECT unnest(k.conkey) FROM pg_constraint k"
             "  WHERE k.conrelid = to_regclass($1) AND k.conname = $2"
             "  UNION SELECT unnest(i.indkey::int2[]) FROM pg_index i JOIN pg_class ic"
             "  ON ic.oid = i.indexrelid WHERE i.indrelid = to_regclass($1) AND ic.relname = $2)"
             " ORDER BY a.attnum",
             table_name(tx.conn(), *m), *name))
      columns.push_back(row[0].as<std::string>());
  } else {
    what = "a trigger";
  }
  // The field it is about: the first one this write sets in those columns; a refusal that
  // names no column (a trigger) is about the write's field when it sets only one.
  std::string field;
  for (const std::string& col : columns)
    for (const auto& [f, v] : req.values) {
      (void)v;
      const std::string* c = m->column_of(f);
      if (field.empty() && c != nullptr && *c == col) field = f;
    }
  if (field.empty() && columns.empty() && req.values.size() == 1) field = req.values.begin()->first;
  if (field.empty()) return;  // stays a failed write-back, an error item (mdsync errors)
  const auto written = side_values.find(field);
  res.status = WriteResult::Status::kUnwritable;
  res.refused = true;
  res.field = field;
  res.error = side_.name + "'s database refused " + *m->column_of(field) + " = " +
              (written == side_values.end() ? std::string("NULL") : core::show(written->second)) +
              " on " + m->schema + "." + m->table + " (" + what + "): " + res.error;
}

std::vector<WriteResult> TriggerSide::apply_once(const std::vector<WriteRequest>& requests) {
  std::vector<WriteResult> results(requests.size());
  pqxx::connection_base& c = conn();
  pqxx::work tx(c);
  hold_ownership(tx);
  // The engine's writes are this transaction's: the capture trigger skips exactly them.
  if (bound_) tx.exec_params("SELECT set_config('mdsync.origin', $1, true)", key_.secret);

  // Idempotency keys of the whole batch in one statement: a request found here was written
  // by an earlier attempt that committed on this side while its control update was lost.
  std::vector<std::int64_t> ids;
  for (const WriteRequest& req : requests) ids.push_back(req.outbox_id);
  // A request found cancelled was withdrawn by an earlier attempt of its cancellation.
  struct Done {
    std::optional<std::string> row_key;
    bool cancelled = false;
  };
  std::map<std::int64_t, Done> done;
  if (!ids.empty())
    for (const auto& row : tx.exec_params("SELECT outbox_id, row_key, cancelled FROM mdsync.applied"
                                          " WHERE outbox_id = ANY($1::bigint[])",
                                          pg_bigint_array(ids)))
      done[row[0].as<std::int64_t>()] = Done{
          row[1].is_null() ? std::nullopt : std::optional<std::string>(row[1].as<std::string>()),
          row[2].as<bool>()};
  // Withdrawn writes not applied before are recorded as cancelled, in this transaction: the
  // id can then never be applied by a late retry of the write itself.
  std::vector<std::int64_t> cancelled;
  for (std::size_t k = 0; k < requests.size(); ++k) {
    auto d = done.find(requests[k].outbox_id);
    if (d != done.end() && d->second.cancelled) {
      results[k].status = WriteResult::Status::kCancelled;
    } else if (requests[k].cancel && d == done.end()) {
      results[k].status = WriteResult::Status::kCancelled;
      cancelled.push_back(requests[k].outbox_id);
    }
  }
  if (!cancelled.empty()) {
    std::set<std::int64_t> recorded;
    for (const auto& row :
         tx.exec_params("INSERT INTO mdsync.applied (outbox_id, row_key, cancelled)"
                        " SELECT unnest($1::bigint[]), NULL, true"
                        " ON CONFLICT DO NOTHING RETURNING outbox_id",
                        pg_bigint_array(cancelled)))
      recorded.insert(row[0].as<std::int64_t>());
    // An id not recorded was applied after all, by an earlier attempt whose transaction
    // committed only now (its session outlived a broken connection): reported applied.
    if (recorded.size() != cancelled.size())
      for (const auto& row :
           tx.exec_params("SELECT outbox_id, row_key, cancelled FROM mdsync.applied"
                          " WHERE outbox_id = ANY($1::bigint[])",
                          pg_bigint_array(cancelled))) {
        const auto id = row[0].as<std::int64_t>();
        if (recorded.count(id) || row[2].as<bool>()) continue;
        done[id] = Done{
            row[1].is_null() ? std::nullopt : std::optional<std::string>(row[1].as<std::string>()),
            false};
        for (std::size_t k = 0; k < requests.size(); ++k)
          if (requests[k].outbox_id == id) results[k].status = WriteResult::Status::kApplied;
      }
  }

  // Each value in the side's terms. A golden value this side cannot hold (outside its value
  // map, more decimals than its scale, a code its lookup table lacks) fails this row's write
  // alone, with the reason, and the golden value stays: the value was valid where it came
  // from, so it is not the source's change that is wrong, and writing anything else (NULL, a
  // rounded number) would be a wrong value on this side. The steward sees the failed write in
  // the outbox and the log; the other rows and sides go on.
  std::vector<Prepared> prepared(requests.size());
  std::vector<bool> skip(requests.size(), false);
  auto fail = [&](std::size_t k, const std::string& field, const std::string& why) {
    skip[k] = true;
    results[k].status = WriteResult::Status::kUnwritable;
    results[k].field = field;
    results[k].error = why;
  };
  std::map<std::string, std::set<std::string>> drifted;  // entity -> its mapped columns gone
  // Lookups to resolve: (entity, field) -> side values wanted.
  std::map<std::pair<std::string, std::string>, std::set<std::string>> lookups;
  for (std::size_t k = 0; k < requests.size(); ++k) {
    const WriteRequest& req = requests[k];
    prepared[k].req = &req;
    if (results[k].status == WriteResult::Status::kCancelled) continue;
    results[k].row_key = req.row_key;
    prepared[k].side = req.values;
    if (done.count(req.outbox_id) || req.cancel || req.kind == core::RowWrite::Kind::kDelete)
      continue;
    const config::EntityConfig* entity = config_.entity(req.entity);
    const config::SideMapping* m = entity ? entity->mapping_for(side_.name) : nullptr;
    if (m == nullptr) continue;
    // A column dropped or renamed since init is not written (the capture trigger no longer
    // reads it either) until the mapping and the side agree again.
    auto gone = drifted.find(req.entity);
    if (gone == drifted.end()) gone = drifted.emplace(req.entity, drifted_columns(tx, *m)).first;
    for (const auto& [field, value] : prepared[k].side) {
      (void)value;
      const std::string* column = m->column_of(field);
      if (column == nullptr || !gone->second.count(*column)) continue;
      fail(k, field,
           "column '" + *column + "' of " + m->schema + "." + m->table +
               " is gone (dropped or renamed since init: mapping drift); not written, the golden "
               "value stays. Fix the side or the mapping and rerun `mdsync init`");
      break;
    }
    if (skip[k]) continue;
    for (auto& [field, value] : prepared[k].side) {
      const mapping::FieldTransform* t = transforms_->find(req.entity, side_.name, field);
      if (t == nullptr) continue;
      const mapping::Converted s = t->to_side(value);
      if (!s.ok()) {
        fail(k, field, s.reason());
        break;
      }
      value = s.value();
      const mapping::FieldMapping* fm = m->field_mapping(field);
      if (fm && fm->lookup && value) lookups[{req.entity, field}].insert(*value);
    }
  }
  // A lookup within another field (a state's code within the row's country) is resolved after
  // the others: its context is that field's side value, which may be a key just looked up.
  for (const bool within_round : {false, true})
    for (const auto& [what, wanted] : lookups) {
      const config::EntityConfig& entity = *config_.entity(what.first);
      const config::SideMapping& m = *entity.mapping_for(side_.name);
      const mapping::Lookup& l = *m.field_mapping(what.second)->lookup;
      if (l.within.empty() == within_round) continue;
      // The context of each request: the within fields' side values as the write sets them,
      // else (an update that does not set them) as the row holds them now.
      std::map<std::size_t, std::vector<core::Value>> context;
      std::map<std::size_t, std::vector<bool>> from_row;
      std::vector<std::string> rows_to_read;
      for (std::size_t k = 0; k < requests.size() && within_round; ++k) {
        if (skip[k] || requests[k].entity != what.first) continue;
        auto v = prepared[k].side.find(what.second);
        if (v == prepared[k].side.end() || !v->second) continue;
        for (const auto& [lookup_column, other] : l.within) {
          (void)lookup_column;
          auto o = prepared[k].side.find(other);
          const bool read = o == prepared[k].side.end() &&
                            requests[k].kind == core::RowWrite::Kind::kUpdate &&
                            !requests[k].row_key.empty();
          context[k].push_back(o == prepared[k].side.end() ? core::Value{} : o->second);
          from_row[k].push_back(read);
          if (read) rows_to_read.push_back(requests[k].row_key);
        }
      }
      if (!rows_to_read.empty()) {
        const ColumnTypes types = column_types(tx, table_name(c, m));
        const SideTableSql sql(c, entity, m, types);
        std::string sel = "SELECT u.k";
        for (const auto& [lookup_column, other] : l.within) {
          (void)lookup_column;
          sel += ", t." + c.quote_name(*m.column_of(other)) + "::text";
        }
        std::map<std::string, pqxx::row> now;
        const pqxx::result r =
            tx.exec_params(sel + " FROM " + sql.table() + " t JOIN unnest($1::text[]) u(k) ON " +
                               sql.key_equals("t", "u.k"),
                           pg_text_array(rows_to_read));
        for (const auto& row : r) now.emplace(row[0].as<std::string>(), row);
        for (auto& [k, ctx] : context) {
          auto row = now.find(requests[k].row_key);
          for (std::size_t i = 0; i < ctx.size(); ++i)
            if (from_row[k][i] && row != now.end() &&
                !row->second[static_cast<int>(i) + 1].is_null())
              ctx[i] = row->second[static_cast<int>(i) + 1].as<std::string>();
        }
      }
      // value -> the rows holding it: their keys and within columns, as text.
      std::map<std::string, std::vector<std::pair<std::string, std::vector<core::Value>>>> rows;
      std::string sel =
          "SELECT " + lookup_value(c, l, "l") + ", l." + c.quote_name(l.key) + "::text";
      for (const auto& [lookup_column, other] : l.within) {
        (void)other;
        sel += ", l." + c.quote_name(lookup_column) + "::text";
      }
      std::vector<std::string> values(wanted.begin(), wanted.end());
      for (const auto& r : tx.exec_params(sel + " FROM " + lookup_table(c, m, l) + " l WHERE " +
                                              lookup_value(c, l, "l") + " = ANY($1::text[])",
                                          pg_text_array(values))) {
        std::vector<core::Value> within;
        for (std::size_t i = 0; i < l.within.size(); ++i) {
          const pqxx::field f = r[static_cast<int>(i) + 2];
          within.push_back(f.is_null() ? core::Value{} : core::Value{f.as<std::string>()});
        }
        rows[r[0].as<std::string>()].emplace_back(r[1].as<std::string>(), std::move(within));
      }
      const std::string where = lookup_name(m, l);
      const std::string value_name =
          l.value + (l.value_path.empty() ? "" : " " + path_array_text(l.value_path));
      for (std::size_t k = 0; k < requests.size(); ++k) {
        if (skip[k] || requests[k].entity != what.first) continue;
        auto v = prepared[k].side.find(what.second);
        if (v == prepared[k].side.end() || !v->second) continue;
        std::vector<std::string> found;
        std::string within_text;
        if (auto f = rows.find(*v->second); f != rows.end())
          for (const auto& [key, within] : f->second)
            if (!within_round ||
                (within == context[k] && std::none_of(within.begin(), within.end(),
                                                      [](const core::Value& w) { return !w; })))
              found.push_back(key);
        for (std::size_t i = 0; within_round && i < l.within.size(); ++i)
          within_text += std::string(i ? " and " : " with ") + l.within[i].first + " = " +
                         core::show(context[k][i]);
        if (found.empty())
          fail(k, what.second,
               "'" + *v->second + "' is not a " + value_name + " of " + where + within_text +
                   " (lookup)");
        else if (found.size() > 1)
          fail(k, what.second,
               "'" + *v->second + "' is the " + value_name + " of " + std::to_string(found.size()) +
                   " rows of " + where + within_text + "; the lookup cannot tell which one");
        else
          v->second = found.front();
      }
    }

  // The rest, grouped by entity, kind and columns (in order of first appearance): each group
  // is written with a few statements per chunk instead of a few per row. The writes of one
  // pass are of distinct records; grouping only reorders them inside the one side transaction.
  std::vector<WriteGroup> groups;
  std::map<std::tuple<std::string, int, std::vector<std::string>>, std::size_t> group_of;
  for (std::size_t k = 0; k < requests.size(); ++k) {
    const WriteRequest& req = requests[k];
    WriteResult& res = results[k];
    if (skip[k] || res.status == WriteResult::Status::kCancelled) continue;
    if (auto d = done.find(req.outbox_id); d != done.end()) {
      if (d->second.row_key) res.row_key = *d->second.row_key;
      continue;
    }
    // A withdrawn write not found applied was recorded as cancelled above; one found applied
    // is reported applied, so the engine takes in what the side holds.
    if (req.cancel) continue;
    // The row this update or delete was for is no longer linked (its link went after the write
    // was queued): nothing to write; the record is planned again.
    if (req.kind != core::RowWrite::Kind::kInsert && req.row_key.empty()) {
      res.status = WriteResult::Status::kSuperseded;
      continue;
    }
    const config::EntityConfig* entity = config_.entity(req.entity);
    const config::SideMapping* m = entity ? entity->mapping_for(side_.name) : nullptr;
    if (m == nullptr) {
      res.status = WriteResult::Status::kFailed;
      res.error = "entity " + req.entity + " is not mapped on side " + side_.name;
      continue;
    }
    std::vector<std::string> fields;
    const bool restore =
        req.kind == core::RowWrite::Kind::kInsert && !req.row_key.empty() && m->soft_delete;
    if (req.kind == core::RowWrite::Kind::kUpdate) {
      for (const auto& [field, value] : req.values)
        if (m->column_of(field) != nullptr) fields.push_back(field);
    } else if (req.kind == core::RowWrite::Kind::kInsert) {
      for (const auto& [field, column] : m->columns)
        if (req.values.count(field)) fields.push_back(field);
    }
    bool mapped = false;
    for (const std::string& f : fields) mapped = mapped || !m->field_mapping(f)->plain();
    const bool row_options = m->key_columns.size() > 1 || !m->timezone.empty() ||
                             !m->scope.empty() || m->soft_delete || !m->delete_guards.empty();
    auto [it, added] = group_of.emplace(
        std::make_tuple(req.entity, static_cast<int>(req.kind) * 2 + (restore ? 1 : 0), fields),
        groups.size());
    if (added)
      groups.push_back(
          WriteGroup{m, req.kind, std::move(fields), {}, mapped, row_options, restore});
    groups[it->second].members.push_back(k);
  }

  std::map<std::string, ColumnTypes> types;  // by table, read once per batch
  for (const WriteGroup& g : groups) {
    const std::string table = table_name(c, *g.mapping);
    const config::EntityConfig& entity = *config_.entity(requests[g.members.front()].entity);
    auto t = types.find(table);
    if (t == types.end()) t = types.emplace(table, column_types(tx, table)).first;
    // An update with nothing to set or an insert of no column is malformed: the row-by-row
    // path reports the side's error for it.
    const bool batchable = g.kind == core::RowWrite::Kind::kDelete || !g.fields.empty();
    // apply_one compares with untyped parameters, which json (no equality operator) refuses;
    // a group with a json column is redone through apply_chunk, which compares it as jsonb.
    bool has_json_column = false;
    for (const std::string& f : g.fields) {
      auto col = t->second.find(g.mapping->field_mapping(f)->column);
      has_json_column = has_json_column || (col != t->second.end() && col->second.base == "json");
    }
    std::size_t next = 0;
    while (next < g.members.size()) {
      // A chunk holds each row key once: two writes of one row in one UPDATE ... FROM would
      // let only one of them take effect.
      std::vector<const Prepared*> reqs;
      std::vector<WriteResult*> res;
      std::set<std::string> keys;
      for (; next < g.members.size() && reqs.size() < kChunkRows; ++next) {
        const Prepared& p = prepared[g.members[next]];
        if (g.kind != core::RowWrite::Kind::kInsert && !keys.insert(p.req->row_key).second) break;
        reqs.push_back(&p);
        res.push_back(&results[g.members[next]]);
      }
      bool batched = false;
      if (batchable) {
        try {
          apply_chunk(tx, c, entity, *transforms_, side_.name, g, t->second, reqs, res);
          batched = true;
        } catch (const pqxx::broken_connection&) {
          throw;
        } catch (const pqxx::transaction_rollback&) {
          throw;
        } catch (const std::runtime_error&) {
          // The side refused a row (pqxx::sql_error), the insert order did not hold, or the
          // mapping names a column the table lacks: the savepoint undid the whole chunk.
        }
      }
      if (!batched) {
        // Row by row, each in its own savepoint: a row the side refuses fails alone. Mapped
        // fields take the same statements as a chunk of one row, so their condition and
        // their jsonb and lookup writes have one implementation.
        for (std::size_t k = 0; k < reqs.size(); ++k) {
          *res[k] = WriteResult{WriteResult::Status::kApplied, reqs[k]->req->row_key, ""};
          if ((!g.mapped && !g.row_options && !has_json_column) || !batchable) {
            apply_one(tx, c, *g.mapping, *reqs[k]->req, *res[k]);
            continue;
          }
          try {
            apply_chunk(tx, c, entity, *transforms_, side_.name, g, t->second, {reqs[k]}, {res[k]});
            crash_point("writeback.mid_side");
          } catch (const pqxx::broken_connection&) {
            throw;
          } catch (const pqxx::transaction_rollback&) {
            throw;
          } catch (const pqxx::sql_error& e) {
            *res[k] = WriteResult{WriteResult::Status::kFailed, reqs[k]->req->row_key,
                                  first_line(e.what())};
            res[k]->sqlstate = e.sqlstate();
          } catch (const std::runtime_error& e) {
            *res[k] = WriteResult{WriteResult::Status::kFailed, reqs[k]->req->row_key,
                                  first_line(e.what())};
          }
        }
        continue;
      }
      // One crash-point hit per row, as on the row-by-row path, so MDSYNC_CRASH_AFTER=N still
      // means "killed after the Nth write": here after the statement that made it, with the
      // side transaction still open.
      for (std::size_t k = 0; k < res.size(); ++k) crash_point("writeback.mid_side");
    }
  }

  // A row the side's database refused (a unique index, a CHECK, a NOT NULL, a trigger) is a
  // write_refused conflict for the steward when the refusal names a field this write sets.
  for (std::size_t k = 0; k < requests.size(); ++k)
    if (results[k].status == WriteResult::Status::kFailed && !results[k].sqlstate.empty())
      classify_refusal(tx, requests[k], prepared[k].side, results[k]);

  // Which superseded rows have captured changes still to reconcile (they explain the
  // difference): one statement for the whole batch, asked only when something was superseded.
  std::vector<std::size_t> superseded;
  std::vector<std::string> sup_entities, sup_keys;
  for (std::size_t k = 0; k < requests.size(); ++k)
    if (results[k].status == WriteResult::Status::kSuperseded && !results[k].row_key.empty()) {
      superseded.push_back(k);
      sup_entities.push_back(requests[k].entity);
      sup_keys.push_back(results[k].row_key);
    }
  if (!superseded.empty()) {
    const pqxx::result r = tx.exec_params(
        "SELECT u.i, EXISTS (SELECT 1 FROM mdsync.capture c WHERE c.entity = u.e"
        " AND c.row_key = u.k) FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(e, k, i)"
        " ORDER BY u.i",
        pg_text_array(sup_entities), pg_text_array(sup_keys));
    for (const auto& row : r)
      results[superseded[row[0].as<std::size_t>() - 1]].unreconciled_capture = row[1].as<bool>();
  }
  tx.commit();
  return results;
}

}  // namespace mdsync::store
