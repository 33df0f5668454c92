#include "write_chunk.hpp"

#include <algorithm>
#include <map>
#include <pqxx/pqxx>
#include <set>
#include <stdexcept>

#include "field_transforms.hpp"
#include "mdsync/store/crash_points.hpp"
#include "mdsync/store/pg_arrays.hpp"
#include "savepoint.hpp"
#include "trigger_side_sql.hpp"

namespace mdsync::store {

namespace {

// A row the batched INSERT returned does not match the request at its position: the side
// rewrote the values (a trigger), or RETURNING did not come back in insert order. Either way
// the keys cannot be told apart, so the chunk is rolled back and written row by row.
class InsertOrderMismatch : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

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

// One chunk of a group on its way through apply_chunk's stages: the rows it names, the
// requests it writes (after the check of mapped fields, those whose row does not hold the
// values already), their results, and the parameters of the statement being built, numbered
// in the order they are added.
struct ChunkWrite {
  pqxx::transaction_base& tx;
  pqxx::connection_base& c;
  const config::EntityConfig& entity;
  const WriteGroup& g;
  const SideTableSql& sql;
  std::vector<std::string> all_keys;  // the key of every request of the chunk
  // Rows of the chunk: the side's rows whose keys the chunk names (u.k), for joins.
  std::string rows_of_chunk;
  std::vector<const Prepared*> reqs;
  std::vector<WriteResult*> out;
  std::vector<std::vector<bool>> held;  // per written request, per group field
  std::vector<std::int64_t> ids;        // of reqs
  std::vector<std::string> keys;        // of reqs
  std::vector<std::string> params;

  core::FieldType field_type(const std::string& field) const {
    return entity.type_of(field).value_or(core::FieldType::kText);
  }
  std::string param(std::string array) {
    params.push_back(std::move(array));
    return "$" + std::to_string(params.size());
  }
  // The text[] of the field's side values (or canonical expected bases) of the written requests.
  std::string values_of(const std::string& field, bool expected) const {
    std::vector<core::Value> column;
    for (const Prepared* p : reqs) {
      const core::FieldValues& from = expected ? p->req->expected : p->side;
      auto it = from.find(field);
      column.push_back(it == from.end() ? core::Value{} : it->second);
    }
    return pg_nullable_text_array(column);
  }
  // Whether each written request's row already holds group field `i` (t/f).
  std::string held_of(std::size_t i) const {
    std::vector<std::string> column;
    for (const auto& h : held) column.push_back(h[i] ? "t" : "f");
    return pg_text_array(column);
  }
};

// The rows are locked first, in a statement of their own, so that later statements'
// snapshots (taken after any transaction that held one of them has committed) see the
// capture rows those transactions wrote, and a guard's check stays true until the delete.
// Taken in key order, as every batch takes them.
void lock_rows(ChunkWrite& w) {
  w.tx.exec_params("SELECT 1 FROM " + w.rows_of_chunk + " ORDER BY " + w.sql.key_columns("t") +
                       " FOR UPDATE OF t",
                   pg_text_array(w.all_keys));
}

// What a locked row holds of one request's mapped fields, as FieldTransform::side_holds
// judges it: whether it still holds the base, and which fields hold the value to write.
struct Holding {
  bool base = true;
  bool all_values = true;
  std::vector<bool> values;  // per group field; false for a plain column
};

// `cur` is the request's row of check_mapped_bases' read: key, waiting capture, then the side's
// text of each group field.
Holding holding(const ChunkWrite& w, const FieldTransforms& transforms, const std::string& side,
                const WriteRequest& req, const pqxx::row& cur) {
  const std::vector<std::string>& fields = w.g.fields;
  Holding out;
  std::vector<bool>& h = out.values;
  h.assign(fields.size(), false);
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const mapping::FieldTransform* t = transforms.find(w.entity.name, side, fields[i]);
    if (t == nullptr) {
      out.all_values = false;  // a plain column: written, under its SQL condition
      continue;
    }
    const pqxx::field f = cur[static_cast<int>(i) + 2];
    const core::Value raw = f.is_null() ? core::Value{} : core::Value{f.as<std::string>()};
    auto e = req.expected.find(fields[i]);
    const core::Value expected = e == req.expected.end() ? core::Value{} : e->second;
    auto v = req.values.find(fields[i]);
    const core::Value value = v == req.values.end() ? core::Value{} : v->second;
    // A base the transform cannot write (a value it refused) is held by the same text.
    if (!t->side_holds(raw, expected) && raw != expected) out.base = false;
    h[i] = t->side_holds(raw, value);
  }
  // A lookup within another field holds its value only while that field stays: in another
  // country the same state code is another row.
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const mapping::FieldMapping& fm = *w.g.mapping->field_mapping(fields[i]);
    if (!h[i] || !fm.lookup) continue;
    for (const auto& [lookup_column, other] : fm.lookup->within) {
      (void)lookup_column;
      auto j = std::find(fields.begin(), fields.end(), other);
      if (j != fields.end() && !h[static_cast<std::size_t>(j - fields.begin())]) h[i] = false;
    }
  }
  for (std::size_t i = 0; i < fields.size(); ++i) out.all_values = out.all_values && h[i];
  return out;
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
void check_mapped_bases(ChunkWrite& w, const FieldTransforms& transforms, const std::string& side,
                        const std::vector<const Prepared*>& all,
                        const std::vector<WriteResult*>& res) {
  const config::SideMapping& m = *w.g.mapping;
  std::string sel = "SELECT u.k, EXISTS (SELECT 1 FROM mdsync.capture c" +
                    std::string(" WHERE c.entity = $2 AND c.row_key = u.k)");
  for (const std::string& field : w.g.fields) {
    const mapping::FieldMapping& fm = *m.field_mapping(field);
    sel += ", " + (fm.plain() ? std::string("NULL") : current_expr(w.c, m, fm));
  }
  sel += " FROM " + w.rows_of_chunk;
  const pqxx::result cur = w.tx.exec_params(sel, pg_text_array(w.all_keys), w.entity.name);
  std::map<std::string, pqxx::result::size_type> row_of;
  for (pqxx::result::size_type r = 0; r < cur.size(); ++r) row_of[cur[r][0].as<std::string>()] = r;
  for (std::size_t k = 0; k < all.size(); ++k) {
    const WriteRequest& req = *all[k]->req;
    auto r = row_of.find(req.row_key);
    if (r == row_of.end() || cur[r->second][1].as<bool>()) {
      // Gone, or changed by a user with changes still to reconcile: see write_updates.
      res[k]->status = WriteResult::Status::kSuperseded;
      continue;
    }
    Holding h = holding(w, transforms, side, req, cur[r->second]);
    if (!h.base) {
      res[k]->status = WriteResult::Status::kSuperseded;
    } else if (!h.all_values) {
      w.reqs.push_back(all[k]);
      w.out.push_back(res[k]);
      w.held.push_back(std::move(h.values));
    }
    // Else the row already holds every value: nothing is written (no tuple, no trigger);
    // the write counts as applied, so the base becomes the golden value. It is not recorded
    // in mdsync.applied: doing nothing again on a retry is as harmless.
  }
}

// The update's unnest columns and arrays (u(id, k, ...)), SET list and condition on the
// base of plain columns, for the group's fields.
struct UpdateParts {
  std::string cols, arrays, set, cond;
};

UpdateParts update_parts(ChunkWrite& w) {
  const config::SideMapping& m = *w.g.mapping;
  pqxx::connection_base& c = w.c;
  const SideTableSql& sql = w.sql;
  UpdateParts u;
  u.cols = "u(id, k";
  u.arrays = w.param(pg_bigint_array(w.ids)) + "::bigint[], " + w.param(pg_text_array(w.keys)) +
             "::text[]";
  // Fields at jsonb paths are set into their column's object, one assignment per column.
  std::vector<std::string> json_columns;
  std::map<std::string, std::string> json_value;
  for (std::size_t i = 0; i < w.g.fields.size(); ++i) {
    const std::string& field = w.g.fields[i];
    const mapping::FieldMapping& fm = *m.field_mapping(field);
    const std::string col = fm.column;
    const std::string& type = sql.column_type(col).base;
    const std::string n = "n" + std::to_string(i), e = "e" + std::to_string(i),
                      h = "h" + std::to_string(i);
    if (fm.plain()) {
      u.cols += ", " + n + ", " + e;
      u.arrays += ", " + w.param(w.values_of(field, false)) + "::text[], " +
                  w.param(w.values_of(field, true)) + "::text[]";
      u.set += (u.set.empty() ? "" : ", ") + c.quote_name(col) + " = " +
               sql.column_value(field, col, "u." + n);
      // A restored row has no base: the engine last saw it deleted.
      if (!w.g.restore)
        u.cond += " AND " + sql.comparable(col, "t." + c.quote_name(col)) +
                  " IS NOT DISTINCT FROM " +
                  sql.comparable(col, sql.column_value(field, col, "u." + e));
    } else if (!fm.json_path.empty()) {
      u.cols += ", " + n;
      u.arrays += ", " + w.param(w.values_of(field, false)) + "::text[]";
      if (!json_value.count(col)) {
        json_columns.push_back(col);
        json_value[col] = "coalesce(t." + c.quote_name(col) + ", '{}'::jsonb)";
      }
      json_value[col] = json_set(c, json_value[col], fm.json_path, "u." + n, w.field_type(field));
    } else {
      // A field the row already holds keeps its text ("HTTPS://WWW.Example.com/" is not
      // rewritten as "example.com" because another field of the row changed).
      u.cols += ", " + n + ", " + h;
      u.arrays += ", " + w.param(w.values_of(field, false)) + "::text[], " + w.param(w.held_of(i)) +
                  "::boolean[]";
      u.set += (u.set.empty() ? "" : ", ") + c.quote_name(col) + " = CASE WHEN u." + h +
               " THEN t." + c.quote_name(col) + " ELSE u." + n + "::" + type + " END";
    }
  }
  for (const std::string& col : json_columns)
    u.set += (u.set.empty() ? "" : ", ") + c.quote_name(col) + " = " + json_value[col];
  if (w.g.restore) u.set += (u.set.empty() ? "" : ", ") + sql.soft_delete_clear();
  return u;
}

// A row to restore that is gone altogether (deleted for real since) is reported with no key:
// the engine forgets it and inserts a new row. One that is there has changes still to
// reconcile, and waits for them like any superseded write.
void forget_gone_restores(ChunkWrite& w, const std::vector<std::string>& unwritten) {
  std::set<std::string> there;
  for (const auto& row :
       w.tx.exec_params("SELECT u.k FROM " + w.rows_of_chunk, pg_text_array(unwritten)))
    there.insert(row[0].as<std::string>());
  for (std::size_t k = 0; k < w.reqs.size(); ++k)
    if (w.out[k]->status == WriteResult::Status::kSuperseded &&
        !there.count(w.reqs[k]->req->row_key))
      w.out[k]->row_key.clear();
}

// Updates (and restores: an update of the soft-deleted row that sets every field and
// un-deletes it).
void write_updates(ChunkWrite& w) {
  if (w.reqs.empty()) return;
  const UpdateParts u = update_parts(w);
  // A row is written only where the side still holds the base (guarantee 4) and has no
  // captured change the engine has not reconciled yet: its value may equal the base again
  // (A -> B -> A) while those changes are still to come, and they would then be judged
  // against a base they never saw. Such a write is superseded and planned again once they
  // are reconciled. The applied rows' outbox ids are recorded in the same statement.
  const std::string ent = w.param(w.entity.name);
  std::string q = "WITH u AS (SELECT * FROM unnest(" + u.arrays + ") AS " + u.cols + ")),";
  q += " w AS (UPDATE " + w.sql.table() + " t SET " + u.set;
  q += " FROM u WHERE " + w.sql.key_equals("t", "u.k") + u.cond;
  q += " AND NOT EXISTS (SELECT 1 FROM mdsync.capture c WHERE c.entity = " + ent;
  q += " AND c.row_key = u.k) RETURNING u.id, u.k),";
  q += " a AS (INSERT INTO mdsync.applied (outbox_id, row_key) SELECT id, k FROM w)";
  q += " SELECT id FROM w";
  const pqxx::result r = w.tx.exec_params(q, pqxx::prepare::make_dynamic_params(w.params));
  std::set<std::int64_t> written;
  for (const auto& row : r) written.insert(row[0].as<std::int64_t>());
  std::vector<std::string> unwritten;
  for (std::size_t k = 0; k < w.reqs.size(); ++k)
    if (!written.count(w.reqs[k]->req->outbox_id)) {
      w.out[k]->status = WriteResult::Status::kSuperseded;
      unwritten.push_back(w.reqs[k]->req->row_key);
    }
  if (w.g.restore && !unwritten.empty()) forget_gone_restores(w, unwritten);
}

// The batched INSERT: the rows go in in request order (u.ord); it returns, per row in the
// order inserted, its ordinal, its key, whether it holds what was sent, and whether it takes
// part. The idempotency keys are recorded in the same statement.
std::string insert_statement(ChunkWrite& w) {
  const config::SideMapping& m = *w.g.mapping;
  pqxx::connection_base& c = w.c;
  const SideTableSql& sql = w.sql;
  std::string cols = "u(id", arrays = w.param(pg_bigint_array(w.ids)) + "::bigint[]";
  std::vector<std::string> order;  // columns, in order of first appearance
  std::map<std::string, std::string> select, sent;
  for (std::size_t i = 0; i < w.g.fields.size(); ++i) {
    const std::string& field = w.g.fields[i];
    const mapping::FieldMapping& fm = *m.field_mapping(field);
    const std::string& col = fm.column;
    const ColumnType& type = sql.column_type(col);
    const std::string v = "v" + std::to_string(i);
    cols += ", " + v;
    arrays += ", " + w.param(w.values_of(field, false)) + "::text[]";
    if (!select.count(col)) order.push_back(col);
    if (!fm.json_path.empty()) {
      if (!select.count(col)) select[col] = "'{}'::jsonb";
      select[col] = json_set(c, select[col], fm.json_path, "u." + v, w.field_type(field));
      sent[col] = select[col];
    } else {
      select[col] = sql.column_value(field, col, "u." + v);
      sent[col] = sql.zone_of(field, col).empty() ? "u." + v + "::" + type.full : select[col];
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
  // syncs; the row must then be present, or the insert is refused (write_inserts).
  for (const auto& [col, literal] : sql.scope_defaults()) {
    names += ", " + c.quote_name(col);
    sel += ", " + literal;
  }
  std::string q = "WITH u AS (SELECT * FROM unnest(" + arrays + ") WITH ORDINALITY AS ";
  q += cols + ", ord)),";
  q += " i AS (INSERT INTO " + sql.table() + " AS t (" + names + ") SELECT " + sel;
  q += " FROM u ORDER BY u.ord";
  q += " RETURNING " + sql.key_text("t") + " AS k, ROW(" + returned + ")::text AS r, ";
  q += sql.present("t") + " AS p),";
  q += " n AS (SELECT k, r, p, row_number() OVER () AS ord FROM i),";
  q += " a AS (INSERT INTO mdsync.applied (outbox_id, row_key)";
  q += " SELECT u.id, n.k FROM n JOIN u ON u.ord = n.ord)";
  q += " SELECT n.ord, n.k, n.r IS NOT DISTINCT FROM ROW(" + sent_row + ")::text, n.p";
  q += " FROM n JOIN u ON u.ord = n.ord ORDER BY n.ord";
  return q;
}

// RETURNING gives no way to name the input row a key belongs to, so the rows go in in
// request order and the keys are taken in the order they come back, which is the order
// PostgreSQL inserts them; each returned row is checked against its request's values, and
// any difference sends the chunk to the row-by-row path.
void write_inserts(ChunkWrite& w) {
  const config::SideMapping& m = *w.g.mapping;
  const std::string q = insert_statement(w);
  const pqxx::result r = w.tx.exec_params(q, pqxx::prepare::make_dynamic_params(w.params));
  if (r.size() != w.reqs.size())
    throw InsertOrderMismatch("batched insert returned " + std::to_string(r.size()) + " rows for " +
                              std::to_string(w.reqs.size()));
  for (std::size_t k = 0; k < w.reqs.size(); ++k) {
    if (r[k][0].as<std::size_t>() != k + 1 || !r[k][2].as<bool>())
      throw InsertOrderMismatch("batched insert: returned row " + std::to_string(k + 1) +
                                " does not match its request");
    // A row the engine would not see again (outside the scope, or soft-deleted by the
    // table's defaults) would be a copy nobody syncs: refused, so nothing is inserted.
    if (!r[k][3].as<bool>())
      throw std::runtime_error(
          "the new row would not be synced: " + m.schema + "." + m.table +
          (m.scope.empty() ? std::string()
                           : " takes part only where " + w.sql.describe_scope() + ",") +
          (m.soft_delete ? " and counts as deleted by " + m.soft_delete->column + "," : "") +
          " and the row as inserted is not; give the table defaults that make a new row "
          "take part");
    w.out[k]->row_key = r[k][1].as<std::string>();
  }
}

// A delete guard vetoes deleting a row some other row still needs (unpaid invoices): that
// row is not deleted, and the engine restores the record where it was deleted.
void write_deletes(ChunkWrite& w) {
  const config::SideMapping& m = *w.g.mapping;
  const SideTableSql& sql = w.sql;
  std::map<std::string, std::string> vetoed;  // row key -> reason
  for (const mapping::DeleteGuard& guard : m.delete_guards)
    for (const auto& row : w.tx.exec_params(
             "SELECT u.k FROM " + w.rows_of_chunk + " WHERE " + sql.guard_vetoes("t", guard),
             pg_text_array(w.all_keys)))
      vetoed.emplace(row[0].as<std::string>(), sql.guard_reason(guard));
  std::vector<std::int64_t> del_ids;
  std::vector<std::string> del_keys;
  for (std::size_t k = 0; k < w.reqs.size(); ++k) {
    auto v = vetoed.find(w.reqs[k]->req->row_key);
    if (v == vetoed.end()) {
      del_ids.push_back(w.ids[k]);
      del_keys.push_back(w.keys[k]);
    } else {
      w.out[k]->status = WriteResult::Status::kVetoed;
      w.out[k]->error = v->second;
    }
  }
  if (del_ids.empty()) return;
  // The record is gone by the delete owner's word, so a delete does not depend on the
  // row's values; but a row with captured changes the engine has not reconciled yet waits
  // for them (superseded, planned again once they are): deleted first, they would be
  // changes of a row the engine no longer knows, read as a new record. A row already gone
  // is deleted as far as the record is concerned. A side that deletes softly gets its
  // soft-delete column set instead.
  const std::string waiting =
      "EXISTS (SELECT 1 FROM mdsync.capture c WHERE c.entity = $3"
      " AND c.row_key = u.k)";
  const std::string table = sql.table();
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
       w.tx.exec_params(q, pg_bigint_array(del_ids), pg_text_array(del_keys), w.entity.name))
    deleted.insert(row[0].as<std::int64_t>());
  for (std::size_t k = 0; k < w.reqs.size(); ++k)
    if (w.out[k]->status != WriteResult::Status::kVetoed && !deleted.count(w.ids[k]))
      w.out[k]->status = WriteResult::Status::kSuperseded;
}

}  // namespace

void apply_chunk(pqxx::transaction_base& tx, pqxx::connection_base& c,
                 const config::EntityConfig& entity, const FieldTransforms& transforms,
                 const std::string& side, const WriteGroup& g, const ColumnTypes& types,
                 const std::vector<const Prepared*>& all, const std::vector<WriteResult*>& res) {
  const SideTableSql sql(c, entity, *g.mapping, types);
  ChunkWrite w{tx, c, entity, g, sql, {}, {}, {}, {}, {}, {}, {}, {}};
  for (const Prepared* p : all) w.all_keys.push_back(p->req->row_key);
  w.rows_of_chunk =
      sql.table() + " t JOIN unnest($1::text[]) u(k) ON " + sql.key_equals("t", "u.k");

  Savepoint savepoint(tx, "writeback_chunk");
  if (g.kind == core::RowWrite::Kind::kUpdate || g.restore ||
      g.kind == core::RowWrite::Kind::kDelete)
    lock_rows(w);
  if (g.kind == core::RowWrite::Kind::kUpdate && !g.restore && g.mapped) {
    check_mapped_bases(w, transforms, side, all, res);
  } else {
    w.reqs = all;
    w.out = res;
    w.held.assign(all.size(), std::vector<bool>(g.fields.size(), false));
  }
  for (const Prepared* p : w.reqs) {
    w.ids.push_back(p->req->outbox_id);
    w.keys.push_back(p->req->row_key);
  }
  if (g.restore || g.kind == core::RowWrite::Kind::kUpdate)
    write_updates(w);
  else if (g.kind == core::RowWrite::Kind::kInsert)
    write_inserts(w);
  else
    write_deletes(w);
  savepoint.release();
}

void apply_one(pqxx::transaction_base& tx, pqxx::connection_base& c, const config::SideMapping& m,
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
      // See the batched update (write_updates) for why a row with unreconciled captured
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
      // As in write_deletes: a row with unreconciled captured changes waits for them.
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

}  // namespace mdsync::store
