#include "mdsync/store/side_store.hpp"

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "field_transforms.hpp"
#include "mdsync/log/event_log.hpp"
#include "mdsync/store/crash_points.hpp"
#include "mdsync/store/db_connection.hpp"
#include "mdsync/store/grants.hpp"
#include "mdsync/store/pg_arrays.hpp"
#include "savepoint.hpp"
#include "side_table_sql.hpp"

namespace mdsync::store {

namespace {

std::string first_line(const std::string& s) {
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

std::string table_name(pqxx::connection_base& c, const config::SideMapping& m) {
  return c.quote_name(m.schema) + "." + c.quote_name(m.table);
}

// A json_path as a text[] literal of quoted elements, never spliced text.
std::string path_array(pqxx::connection_base& c, const std::vector<std::string>& path) {
  std::string s = "ARRAY[";
  for (std::size_t i = 0; i < path.size(); ++i) s += (i ? ", " : "") + c.quote(path[i]);
  return s + "]::text[]";
}

std::string lookup_table(pqxx::connection_base& c, const config::SideMapping& m,
                         const mapping::Lookup& l) {
  return c.quote_name(l.schema.empty() ? m.schema : l.schema) + "." + c.quote_name(l.table);
}

// ["en_US"], for messages.
std::string path_array_text(const std::vector<std::string>& path) {
  std::string s;
  for (const std::string& p : path) s += (s.empty() ? "" : ", ") + ("\"" + p + "\"");
  return "[" + s + "]";
}

// The looked-up value of lookup row `alias` as text: its column, or the text at its
// value_path when the column holds translations ({"en_US": "Belgium"}).
std::string lookup_value(pqxx::connection_base& c, const mapping::Lookup& l,
                         const std::string& alias) {
  const std::string col = alias + "." + c.quote_name(l.value);
  if (l.value_path.empty()) return col + "::text";
  return "(" + col + " #>> " + path_array(c, l.value_path) + ")";
}

// "erp.res_country", for messages.
std::string lookup_name(const config::SideMapping& m, const mapping::Lookup& l) {
  return (l.schema.empty() ? m.schema : l.schema) + "." + l.table;
}

// What a capture trigger records for a field of row `row` (NEW or OLD): the column (a zoned
// timestamp as the instant it means), or the text at a jsonb path. A lookup field records the
// foreign key itself; read_capture looks it up, so the trigger stays one column read and an
// unknown key can be reported.
std::string captured_expr(pqxx::connection_base& c, const SideTableSql& sql,
                          const mapping::FieldMapping& fm, const std::string& row) {
  if (!fm.json_path.empty())
    return row + "." + c.quote_name(fm.column) + " #>> " + path_array(c, fm.json_path);
  return sql.captured_column(fm.field, row, fm.column);
}

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

// Every field of row `row` as the jsonb object a capture row holds. jsonb_build_object takes
// at most 100 arguments: built in chunks of 50 fields.
std::string full_row_expr(pqxx::connection_base& c, const SideTableSql& sql,
                          const std::string& row) {
  const config::SideMapping& m = sql.mapping();
  std::string all;
  for (std::size_t i = 0; i < m.fields.size(); i += 50) {
    if (i) all += " || ";
    all += "jsonb_build_object(";
    for (std::size_t k = i; k < m.fields.size() && k < i + 50; ++k) {
      if (k > i) all += ", ";
      all += c.quote(m.fields[k].field) + ", " + captured_expr(c, sql, m.fields[k], row);
    }
    all += ")";
  }
  return all;
}

// Whether a field changed between rows `now` and `before`, as the capture trigger asks it.
// `as_text`: the column's type has no equality operator in pg_catalog (hstore, an extension's
// type), where the trigger's fixed search_path finds operators; its values compare as text.
std::string field_changed(pqxx::connection_base& c, const SideTableSql& sql,
                          const mapping::FieldMapping& fm, const std::string& now_row,
                          const std::string& before_row, bool as_text) {
  std::string now = now_row + "." + c.quote_name(fm.column),
              before = before_row + "." + c.quote_name(fm.column);
  if (!fm.json_path.empty()) {
    now += " #> " + path_array(c, fm.json_path);
    before += " #> " + path_array(c, fm.json_path);
  }
  if (as_text)
    return sql.as_text(fm.column, now) + " IS DISTINCT FROM " + sql.as_text(fm.column, before);
  return sql.comparable(fm.column, now) + " IS DISTINCT FROM " + sql.comparable(fm.column, before);
}

// The search_path the capture functions run with (SECURITY DEFINER): nothing a user can
// create objects in, so no operator or function of the body can be replaced under it.
constexpr const char* kCaptureSearchPath = "pg_catalog, pg_temp";

// The columns a capture row cannot be made without: the key, the scope's and the soft
// delete's. Without one of them the trigger captures nothing (and the side's write goes on).
std::vector<std::string> structural_columns(const config::SideMapping& m) {
  std::vector<std::string> cols = m.key_columns;
  for (const mapping::Predicate& p : m.scope) cols.push_back(p.column);
  if (m.soft_delete) cols.push_back(m.soft_delete->column);
  std::sort(cols.begin(), cols.end());
  cols.erase(std::unique(cols.begin(), cols.end()), cols.end());
  return cols;
}

// Every column the capture trigger reads, once each.
std::vector<std::string> read_columns(const config::SideMapping& m) {
  std::vector<std::string> cols = structural_columns(m);
  for (const mapping::FieldMapping& fm : m.fields) cols.push_back(fm.column);
  std::sort(cols.begin(), cols.end());
  cols.erase(std::unique(cols.begin(), cols.end()), cols.end());
  return cols;
}

// {"a","b"} as a text[] literal for the trigger body.
std::string text_array_literal(pqxx::connection_base& c, const std::vector<std::string>& items) {
  std::string out = "ARRAY[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + c.quote(items[i]);
  return out + "]::text[]";
}

// The trigger's reads of fields when a mapped column may be gone (dropped or renamed since
// init): PL/pgSQL fails a statement naming NEW.col when col is gone, even in a CASE branch not
// taken, so each field whose column is still there is read by EXECUTE, which parses only what
// runs. `diff`: only the fields that changed between NEW and OLD. Appends to d.
std::string drifted_reads(pqxx::connection_base& c, const SideTableSql& sql,
                          const std::set<std::string>& text_compared, bool diff) {
  std::ostringstream b;
  for (const mapping::FieldMapping& fm : sql.mapping().fields) {
    const std::string value = "jsonb_build_object($3, " + captured_expr(c, sql, fm, "($1)") + ")";
    const std::string query =
        diff ? "SELECT CASE WHEN " +
                   field_changed(c, sql, fm, "($1)", "($2)", text_compared.count(fm.column) > 0) +
                   " THEN " + value + " ELSE '{}'::jsonb END"
             : "SELECT " + value;
    b << "      IF " << c.quote(fm.column) << " = ANY(cols) THEN EXECUTE " << c.quote(query)
      << " INTO part USING NEW, " << (diff ? "OLD" : "NULL::text") << ", " << c.quote(fm.field)
      << "; d := d || part; END IF;\n";
  }
  return b.str();
}

// Builds the row trigger body for one entity's table. Field names (config-checked) key the
// captured jsonb; identifiers are quoted by the server's rules, literals escaped. A field at a
// jsonb path is compared and captured at its path only: an edit of another key of the same
// object is no change of the field, so it costs the side no capture row and the engine no
// work (the engine still reads only the key, as it would after extracting it itself).
//
// The engine's sessions carry their side secret in mdsync.origin; the body holds only its
// sha256 (pg_proc.prosrc is readable by anyone), and any other value is captured as usual.
// A session that sets nothing pays one current_setting.
//
// A row is "present" while it is in the scope and not soft-deleted. Only present rows are
// captured: a row that becomes present is captured whole, like an insert; one that stops
// being present is captured as 'D' when it was soft-deleted and as 'L' when it left the scope
// (the engine stops syncing it, and deletes nothing); edits of rows that are not present are
// not the engine's business. A changed key is the old row's end and a new row's start.
std::string trigger_body(pqxx::connection_base& c, const config::EntityConfig& entity,
                         const SideTableSql& sql, const std::string& origin_sha256,
                         const std::set<std::string>& text_compared) {
  const std::string ent = c.quote(entity.name);
  const config::SideMapping& m = sql.mapping();
  std::ostringstream diff;
  for (const mapping::FieldMapping& fm : m.fields)
    diff << "    IF " << field_changed(c, sql, fm, "NEW", "OLD", text_compared.count(fm.column) > 0)
         << " THEN d := d || "
         << "jsonb_build_object(" << c.quote(fm.field) << ", " << captured_expr(c, sql, fm, "NEW")
         << "); END IF;\n";
  const std::vector<std::string> read = read_columns(m);
  std::ostringstream b;
  b << "DECLARE o text := current_setting('mdsync.origin', true); d jsonb := '{}'::jsonb;"
       " was_in boolean := false; now_in boolean := false; cols text[]; part jsonb;\n"
       "BEGIN\n"
       "  IF o <> '' AND encode(sha256(convert_to(o, 'UTF8')), 'hex') = "
    << c.quote(origin_sha256)
    << " THEN RETURN NULL; END IF;\n"
       // The side's schema may have moved since init: a column the mapping reads that is gone
       // must never fail the application's write. The engine reports the drift (status).
       "  SELECT coalesce(array_agg(a.attname::text), '{}') INTO cols FROM pg_attribute a"
       " WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped"
       " AND a.attname = ANY("
    << text_array_literal(c, read)
    << ");\n"
       "  IF NOT cols @> "
    << text_array_literal(c, structural_columns(m))
    << " THEN RETURN NULL; END IF;\n"
       "  IF TG_OP <> 'INSERT' THEN was_in := "
    << sql.present("OLD")
    << "; END IF;\n  IF TG_OP <> 'DELETE' THEN now_in := " << sql.present("NEW")
    << "; END IF;\n"
       "  IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND ("
    << sql.key_columns("NEW") << ") IS DISTINCT FROM (" << sql.key_columns("OLD")
    << ")) THEN\n"
       "    IF was_in THEN INSERT INTO mdsync.capture (entity, op, row_key) VALUES ("
    << ent << ", 'D', " << sql.key_text("OLD")
    << "); END IF;\n"
       "    IF TG_OP = 'DELETE' THEN RETURN NULL; END IF;\n"
       "    was_in := false;\n"
       "  END IF;\n"
       "  IF NOT now_in THEN\n"
       "    IF was_in THEN INSERT INTO mdsync.capture (entity, op, row_key) VALUES ("
    << ent << ", CASE WHEN " << sql.live("NEW") << " THEN 'L' ELSE 'D' END, " << sql.key_text("NEW")
    << "); END IF;\n"
       "    RETURN NULL;\n"
       "  END IF;\n"
       "  IF NOT was_in THEN\n"
       "    IF cardinality(cols) = "
    << read.size() << " THEN\n      d := " << full_row_expr(c, sql, "NEW") << ";\n    ELSE\n"
    << drifted_reads(c, sql, text_compared, false)
    << "    END IF;\n"
       "  ELSIF cardinality(cols) = "
    << read.size() << " THEN\n"
    << diff.str() << "  ELSE\n"
    << drifted_reads(c, sql, text_compared, true)
    << "  END IF;\n"
       "  IF was_in AND d = '{}'::jsonb THEN RETURN NULL; END IF;\n"
       "  INSERT INTO mdsync.capture (entity, op, row_key, changed) VALUES ("
    << ent << ", 'U', " << sql.key_text("NEW")
    << ", d);\n"
       "  RETURN NULL;\n"
       "END";
  return b.str();
}

// Parses `exprs` over the table (as `t`) under the capture functions' search_path, as the
// trigger will: PREPARE resolves every operator and function without reading the table (or
// needing SELECT on it). Returns the error, empty when everything resolves.
std::string resolve_error(pqxx::work& tx, const SideTableSql& sql, const std::string& exprs) {
  // exec_params: in libpqxx 6.4 a failing exec() aborts the whole transaction (savepoint.hpp).
  Savepoint savepoint(tx, "capture_search_path");  // never released: undoes the SET LOCAL
  try {
    tx.exec_params(std::string("SET LOCAL search_path = ") + kCaptureSearchPath);
    tx.exec_params("PREPARE mdsync_capture_probe AS SELECT " + exprs + " FROM " + sql.table() +
                   " t");
    tx.exec_params("DEALLOCATE mdsync_capture_probe");  // not transactional
    return "";
  } catch (const pqxx::sql_error& e) {
    if (e.sqlstate() != "42883" && e.sqlstate() != "42725") throw;  // not an operator lookup
    return first_line(e.what());
  }
}

// The columns whose change the trigger must compare as text (see field_changed); throws
// MappingError when something else in the trigger does not resolve under its search_path (a
// scope predicate on such a column).
std::set<std::string> text_compared_columns(pqxx::work& tx, pqxx::connection_base& c,
                                            const config::EntityConfig& entity,
                                            const std::string& side, const SideTableSql& sql) {
  const config::SideMapping& m = sql.mapping();
  std::set<std::string> as_text;
  std::string all = sql.present("t") + ", " + full_row_expr(c, sql, "t") + ", " + sql.key_text("t");
  for (const mapping::FieldMapping& fm : m.fields)
    all += ", " + field_changed(c, sql, fm, "t", "t", false);
  if (resolve_error(tx, sql, all).empty()) return as_text;
  // Something does not resolve: find the comparisons that need text, then try again.
  all = sql.present("t") + ", " + full_row_expr(c, sql, "t") + ", " + sql.key_text("t");
  for (const mapping::FieldMapping& fm : m.fields) {
    const bool text = !resolve_error(tx, sql, field_changed(c, sql, fm, "t", "t", false)).empty();
    if (text) as_text.insert(fm.column);
    all += ", " + field_changed(c, sql, fm, "t", "t", text);
  }
  if (const std::string why = resolve_error(tx, sql, all); !why.empty())
    throw MappingError("side " + side + ": table " + m.schema + "." + m.table + " of " +
                       entity.name + ": the capture trigger runs with search_path " +
                       kCaptureSearchPath +
                       " and cannot evaluate its scope or soft_delete: " + why);
  return as_text;
}

// One (key, value) row of jsonb_each_text over a captured row's fields; a capture without
// fields (a delete) has a NULL key.
void add_field(CapturedRow& row, const pqxx::field& key, const pqxx::field& value) {
  if (key.is_null()) return;
  row.values[key.as<std::string>()] =
      value.is_null() ? core::Value{} : core::Value{value.as<std::string>()};
}

// A table that is gone yields no types rather than an error that would abort the side
// transaction; its writes then take the row-by-row path and fail one by one.
ColumnTypes column_types(pqxx::transaction_base& tx, const std::string& table) {
  ColumnTypes types;
  for (const auto& row : tx.exec_params(
           "SELECT a.attname, format_type(a.atttypid, NULL), format_type(a.atttypid, a.atttypmod),"
           " ty.typnamespace <> 'pg_catalog'::regnamespace"
           " FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid"
           " WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
           table))
    types[row[0].as<std::string>()] = {row[1].as<std::string>(), row[2].as<std::string>(),
                                       row[3].as<bool>()};
  return types;
}

// Held shared by the engine's writing transactions on a side and exclusively by `init
// --adopt-side`, so nothing is written to a side for a store that no longer owns it. Any
// fixed number works: "mdsyncOW".
constexpr long long kOwnerLock = 0x6d6473796e634f57;

// A side's mdsync.owner row: the control store it belongs to.
struct Stamp {
  std::string store_id, control, stamped_at;
};

std::optional<Stamp> read_stamp(pqxx::transaction_base& tx) {
  if (!tx.exec1("SELECT to_regclass('mdsync.owner') IS NOT NULL")[0].as<bool>())
    return std::nullopt;
  const pqxx::result r = tx.exec(
      "SELECT store_id::text, control,"
      " to_char(stamped_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC'"
      " FROM mdsync.owner");
  if (r.empty()) return std::nullopt;
  return Stamp{r[0][0].as<std::string>(), r[0][1].as<std::string>(), r[0][2].as<std::string>()};
}

std::string describe(const Stamp& s) {
  return "store " + s.store_id + ", " + s.control + ", stamped " + s.stamped_at;
}

}  // namespace

SideStore::SideStore(const config::Config& config, const config::SideConfig& side)
    : config_(config), side_(side), transforms_(std::make_unique<FieldTransforms>(config)) {}

SideStore::~SideStore() = default;

namespace {

// The columns the capture trigger reads (key, scope, soft delete, mapped fields) that the
// side's table no longer has. Empty when the table itself is gone: that is not drift of a
// column, and every write to it fails with the side's own error.
std::set<std::string> drifted_columns(pqxx::transaction_base& tx, const config::SideMapping& m) {
  std::set<std::string> have;
  for (const auto& row :
       tx.exec_params("SELECT a.attname FROM pg_attribute a WHERE a.attrelid = to_regclass($1)"
                      " AND a.attnum > 0 AND NOT a.attisdropped",
                      table_name(tx.conn(), m)))
    have.insert(row[0].as<std::string>());
  std::set<std::string> gone;
  if (have.empty()) return gone;
  for (const std::string& col : read_columns(m))
    if (!have.count(col)) gone.insert(col);
  return gone;
}

}  // namespace

std::vector<std::string> SideStore::mapping_drift(pqxx::transaction_base& tx) {
  std::vector<std::string> out;
  for (const config::EntityConfig& entity : config_.entities) {
    const config::SideMapping* m = entity.mapping_for(side_.name);
    if (m == nullptr) continue;
    const std::set<std::string> gone = drifted_columns(tx, *m);
    if (gone.empty()) continue;
    const std::vector<std::string> structural = structural_columns(*m);
    for (const std::string& col : gone) {
      std::string what;
      for (const auto& [field, column] : m->columns)
        if (column == col) what += (what.empty() ? "" : ", ") + entity.name + "." + field;
      const bool whole = std::find(structural.begin(), structural.end(), col) != structural.end();
      out.push_back("side " + side_.name + ": column '" + col + "' of " + m->schema + "." +
                    m->table + " is gone (dropped or renamed since init)" +
                    (whole ? "; nothing of the table is captured"
                           : ": " + what + " is neither captured nor written") +
                    "; fix the side or the mapping (" + config_.path + ") and rerun `mdsync init`");
    }
  }
  return out;
}

std::vector<std::string> SideStore::mapping_drift() {
  pqxx::read_transaction tx(conn());
  return mapping_drift(tx);
}

pqxx::connection_base& SideStore::conn() {
  if (conn_ && conn_->is_open()) return *conn_;
  // The mark is set per writing transaction (apply_once), not for the session: a session
  // setting would outlive the engine's writes (a connection pooler hands the server session to
  // other clients) and be readable by any code the session runs meanwhile.
  PgConnection fresh = connect(side_.dsn, "side " + side_.name);
  if (bound_) {
    // One statement per connection: the side must be stamped for this engine's store.
    pqxx::read_transaction tx(*fresh);
    const std::optional<Stamp> stamp = read_stamp(tx);
    require_owner(stamp ? stamp->store_id : std::string(), stamp ? describe(*stamp) : "");
  }
  conn_ = std::move(fresh);
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
    // The table's columns with their types, in one read; a view or anything else that is not
    // a table counts as missing (capture triggers need a table).
    ColumnTypes types;
    for (const auto& row :
         tx.exec_params("SELECT a.attname, format_type(a.atttypid, NULL), format_type(a.atttypid, "
                        "a.atttypmod),"
                        " ty.typnamespace <> 'pg_catalog'::regnamespace"
                        " FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid"
                        " JOIN pg_type ty ON ty.oid = a.atttypid"
                        " JOIN pg_namespace n ON n.oid = t.relnamespace"
                        " WHERE n.nspname = $1 AND t.relname = $2 AND t.relkind IN ('r', 'p')"
                        " AND a.attnum > 0 AND NOT a.attisdropped",
                        m->schema, m->table))
      types[row[0].as<std::string>()] = {row[1].as<std::string>(), row[2].as<std::string>(),
                                         row[3].as<bool>()};
    if (types.empty()) {
      problems.push_back("side " + side_.name + ": table " + m->schema + "." + m->table +
                         " does not exist (" + where + ".table in " + config_.path + ")");
      continue;
    }
    const std::string tbl = "side " + side_.name + ": table " + m->schema + "." + m->table;
    const std::size_t problems_before = problems.size();
    auto require = [&](const std::string& column, const std::string& what) {
      if (types.count(column)) return true;
      problems.push_back(tbl + " has no column '" + column + "' (" + what + ")");
      return false;
    };
    for (const std::string& k : m->key_columns) require(k, where + ".key");
    for (const auto& [field, column] : m->columns) {
      if (!require(column, "mapped to " + entity.name + "." + field + " in " + where + ".columns"))
        continue;
      // A local time means an instant only in a zone; without one every value read would be
      // wrong by the side's offset, so the zone must be declared.
      if (entity.type_of(field) == core::FieldType::kTimestamptz && m->timezone.empty() &&
          types.at(column).base == "timestamp without time zone")
        problems.push_back(tbl + " column '" + column + "' is a timestamp without time zone, " +
                           "mapped to the timestamptz field " + entity.name + "." + field +
                           ": declare the zone its local times are in (\"timezone\": " +
                           "\"Europe/Brussels\" in " + where + " or sides." + side_.name + ")");
    }
    for (std::size_t i = 0; i < m->scope.size(); ++i)
      require(m->scope[i].column, where + ".scope.where[" + std::to_string(i) + "]");
    if (m->soft_delete && require(m->soft_delete->column, where + ".soft_delete")) {
      const std::string& type = types.at(m->soft_delete->column).base;
      const bool flag = m->soft_delete->kind == mapping::SoftDeleteKind::kFlag;
      if (flag && type != "boolean")
        problems.push_back(tbl + " column '" + m->soft_delete->column + "' is " + type +
                           "; a soft_delete flag must be boolean (" + where + ".soft_delete)");
      if (!flag && type.rfind("timestamp", 0) != 0 && type != "date")
        problems.push_back(tbl + " column '" + m->soft_delete->column + "' is " + type +
                           "; a soft_delete timestamp must be a timestamp or date (" + where +
                           ".soft_delete)");
    }
    for (std::size_t i = 0; i < m->delete_guards.size(); ++i) {
      const mapping::DeleteGuard& g = m->delete_guards[i];
      const std::string at = where + ".delete_guard" +
                             (m->delete_guards.size() > 1 ? "[" + std::to_string(i) + "]" : "");
      const std::string schema = g.schema.empty() ? m->schema : g.schema;
      const ColumnTypes guard =
          column_types(tx, conn().quote_name(schema) + "." + conn().quote_name(g.table));
      if (guard.empty()) {
        problems.push_back("side " + side_.name + ": delete guard table " + schema + "." + g.table +
                           " does not exist (" + at + ")");
        continue;
      }
      auto guard_has = [&](const std::string& column, const std::string& what) {
        if (!guard.count(column))
          problems.push_back("side " + side_.name + ": delete guard table " + schema + "." +
                             g.table + " has no column '" + column + "' (" + what + ")");
      };
      for (const auto& [guard_col, row_col] : g.on) {
        guard_has(guard_col, at + ".on");
        require(row_col, at + ".on." + guard_col);
      }
      for (const mapping::Predicate& p : g.where) guard_has(p.column, at + ".where");
    }
    // The zone converts inside the trigger too: it must be one the side's server knows.
    if (!m->timezone.empty()) {
      try {
        Savepoint savepoint(tx, "check_zone");
        tx.exec_params("SELECT now() AT TIME ZONE $1", m->timezone);
        savepoint.release();
      } catch (const pqxx::sql_error& e) {
        problems.push_back("side " + side_.name + ": the server does not know the time zone '" +
                           m->timezone + "' of " + where + ": " + first_line(e.what()));
      }
    }
    // The scope and the guards run inside the side's own writes (the trigger) and deletes: a
    // literal the column's type cannot take ('abc' for an integer id) would make every write to
    // the table fail, so they are tried on the live table first. Planned, not run: LIMIT 0.
    if (problems.size() == problems_before &&
        (!m->scope.empty() || m->soft_delete || !m->delete_guards.empty())) {
      const SideTableSql sql(conn(), entity, *m, types);
      std::string guards;
      for (const mapping::DeleteGuard& g : m->delete_guards)
        guards += (guards.empty() ? "" : " OR ") + sql.guard_vetoes("t", g);
      try {
        Savepoint savepoint(tx, "check_scope");
        tx.exec("SELECT 1 FROM " + sql.table() + " t WHERE " + sql.present("t") +
                (guards.empty() ? "" : " AND (" + guards + ")") + " LIMIT 0");
        savepoint.release();
      } catch (const pqxx::sql_error& e) {
        problems.push_back(tbl + ": the scope, soft_delete or delete_guard of " + where +
                           " cannot be evaluated: " + first_line(e.what()));
      }
    }
    for (const mapping::FieldMapping& fm : m->fields) {
      if (!fm.lookup) continue;
      const mapping::Lookup& l = *fm.lookup;
      const std::string schema = l.schema.empty() ? m->schema : l.schema;
      const std::string at = where + ".columns." + fm.field + ".lookup in " + config_.path;
      std::map<std::string, std::string> has;  // column -> type
      for (const auto& row : tx.exec_params(
               "SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a"
               " JOIN pg_class t ON t.oid = a.attrelid "
               "JOIN pg_namespace n ON n.oid = t.relnamespace "
               "WHERE n.nspname = $1 AND t.relname = $2 AND t.relkind IN ('r', 'p', 'v', 'm') "
               "AND a.attnum > 0 AND NOT a.attisdropped",
               schema, l.table))
        has[row[0].as<std::string>()] = row[1].as<std::string>();
      if (has.empty()) {
        problems.push_back("side " + side_.name + ": lookup table " + schema + "." + l.table +
                           " of " + entity.name + "." + fm.field + " does not exist (" + at + ")");
        continue;
      }
      std::vector<std::pair<std::string, std::string>> needed = {{l.key, "key"},
                                                                 {l.value, "value"}};
      for (const auto& [lookup_column, field] : l.within)
        needed.emplace_back(lookup_column, "within, for field " + field);
      for (const auto& [col, what] : needed)
        if (!has.count(col))
          problems.push_back("side " + side_.name + ": lookup table " + schema + "." + l.table +
                             " has no column '" + col + "' (" + what + " of " + entity.name + "." +
                             fm.field + " in " + at + ")");
      if (!l.value_path.empty() && has.count(l.value) && has.at(l.value) != "jsonb" &&
          has.at(l.value) != "json")
        problems.push_back("side " + side_.name + ": lookup table " + schema + "." + l.table +
                           " column '" + l.value + "' is " + has.at(l.value) +
                           "; a value_path reads into a jsonb column (" + at + ")");
    }
  }
  if (!problems.empty()) {
    std::string msg;
    for (const auto& p : problems) msg += (msg.empty() ? "" : "\n") + p;
    throw MappingError(msg);
  }
}

namespace {

const char* const kGrantsHint =
    "; have a DBA run, as a superuser, the script `mdsync init --print-grants` prints, then run "
    "`mdsync init` again";

// The capture role exists and mdsync's own role may use it (it creates the capture functions
// and then hands them to it). Creating the role needs CREATEROLE; a DBA can do it instead.
void ensure_capture_role(pqxx::work& tx, const std::string& side, const std::string& role_name,
                         std::vector<std::string>& changed) {
  const pqxx::row me = tx.exec1(
      "SELECT current_user, rolsuper, rolcreaterole FROM pg_roles"
      " WHERE rolname = current_user");
  const std::string user = me[0].as<std::string>();
  const bool super = me[1].as<bool>(), createrole = me[2].as<bool>();
  const std::string role = tx.quote_name(role_name);
  if (tx.exec_params("SELECT 1 FROM pg_roles WHERE rolname = $1", role_name).empty()) {
    if (!super && !createrole)
      throw CapturePrivilegeError("side " + side + ": the capture role " + role_name +
                                  " does not exist, and " + user +
                                  ", the role mdsync connects as, may not create roles"
                                  " (CREATEROLE)" +
                                  kGrantsHint);
    Savepoint savepoint(tx, "create_capture_role");
    try {
      tx.exec_params("CREATE ROLE " + role + " NOLOGIN");  // exec_params: see resolve_error
      savepoint.release();
      changed.push_back("created role " + role_name);
    } catch (const pqxx::sql_error& e) {
      // Roles are cluster-wide: another init (another side on this cluster) made it just now.
      if (e.sqlstate() != "42710" && e.sqlstate() != "23505") throw;
    }
  }
  if (!super &&
      !tx.exec_params1("SELECT pg_has_role(current_user, $1, 'USAGE')", role_name)[0].as<bool>()) {
    Savepoint savepoint(tx, "join_capture_role");
    try {
      tx.exec_params("GRANT " + role + " TO " + tx.quote_name(user));
      savepoint.release();
      changed.push_back("granted role " + role_name + " to " + user);
    } catch (const pqxx::insufficient_privilege&) {
      throw CapturePrivilegeError("side " + side + ": " + user +
                                  ", the role mdsync connects as, is not a member of the capture"
                                  " role " +
                                  role_name + " and may not make itself one" + kGrantsHint);
    }
  }
}

}  // namespace

void SideStore::bind(const StoreIdentity& store, const SideKey& key) {
  if (bound_ && store.store_id == store_.store_id && key.secret == key_.secret) return;
  store_ = store;
  key_ = key;
  bound_ = true;
  conn_.reset();  // the next connection carries the new mark
}

void SideStore::require_owner(const std::string& owner, const std::string& owner_text) const {
  if (owner == store_.store_id) return;
  if (owner.empty())
    throw SideOwnershipError("side " + side_.name + " is not stamped for any control store;" +
                             " run `mdsync init` to install capture and stamp it for this one" +
                             " (store " + store_.store_id + ")");
  throw SideOwnershipError(
      "side " + side_.name + " belongs to another control store (" +
      (owner_text.empty() ? "store " + owner : owner_text) + "), not to this one (store " +
      store_.store_id + ", " + store_.description +
      "): nothing is read from or written to it. To sync it from this store, stop the other "
      "store's service and run `mdsync init --adopt-side " +
      side_.name + "` with this config; otherwise remove the side from this config");
}

void SideStore::hold_ownership(pqxx::transaction_base& tx) {
  if (!bound_) return;
  tx.exec_params("SELECT pg_advisory_xact_lock_shared($1::bigint)", kOwnerLock);
  const std::optional<Stamp> stamp = read_stamp(tx);
  require_owner(stamp ? stamp->store_id : std::string(), stamp ? describe(*stamp) : "");
}

std::vector<std::string> SideStore::install_capture(const StoreIdentity& store, const SideKey& key,
                                                    bool adopt) {
  std::vector<std::string> changed;
  pqxx::connection_base& c = conn();
  pqxx::work tx(c);
  try {
    // Serializes concurrent `mdsync init` runs against the same side.
    tx.exec("SELECT pg_advisory_xact_lock(hashtext('mdsync.install_capture'))");
    // The stamp first: a side that belongs to another store is left exactly as it is.
    const std::optional<Stamp> stamp = read_stamp(tx);
    const bool adopting = stamp && stamp->store_id != store.store_id;
    if (adopting && !adopt)
      throw SideOwnershipError(
          "side " + side_.name + " belongs to another mdsync control store (" + describe(*stamp) +
          "); init changed nothing on it. To move it to this control store (store " +
          store.store_id + ", " + store.description +
          "), stop the other store's service and run `mdsync init --adopt-side " + side_.name +
          "` with this config: that re-stamps the side, gives its capture a new epoch and clears "
          "its write-back idempotency keys (mdsync.applied)");
    const std::string& capture_role = config_.roles.capture;
    ensure_capture_role(tx, side_.name, capture_role, changed);
    const std::string role = c.quote_name(capture_role);

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
    // A withdrawn write-back's id, recorded so that it is never applied (control migration
    // 0004).
    if (tx.exec1("SELECT count(*) FROM pg_attribute WHERE attrelid = 'mdsync.applied'::regclass"
                 " AND attname = 'cancelled' AND NOT attisdropped")[0]
            .as<int>() == 0) {
      tx.exec("ALTER TABLE mdsync.applied ADD COLUMN cancelled boolean NOT NULL DEFAULT false");
      changed.push_back("added column mdsync.applied.cancelled");
    }
    if (!tx.exec1("SELECT to_regclass('mdsync.owner') IS NOT NULL")[0].as<bool>()) {
      tx.exec(
          "CREATE TABLE mdsync.owner ("
          " singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),"
          " store_id uuid NOT NULL, control text NOT NULL,"
          " stamped_at timestamptz NOT NULL DEFAULT now())");
      changed.push_back("created table mdsync.owner");
    }
    if (!tx.exec1("SELECT to_regclass('mdsync.wake') IS NOT NULL")[0].as<bool>()) {
      // Whether the engine is waiting for a NOTIFY (set by the service when a pass finds
      // nothing, cleared when one finds work). A transaction that NOTIFYs commits under a global
      // lock, one flush after another; notifying only while the engine waits keeps a busy
      // side's commits from queueing behind each other.
      tx.exec(
          "CREATE TABLE mdsync.wake ("
          " singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),"
          " engine_waiting boolean NOT NULL DEFAULT false)");
      tx.exec("INSERT INTO mdsync.wake DEFAULT VALUES");
      changed.push_back("created table mdsync.wake");
    }
    if (!stamp) {
      tx.exec_params("INSERT INTO mdsync.owner (store_id, control) VALUES ($1, $2)", store.store_id,
                     store.description);
      changed.push_back("stamped for control store " + store.store_id + " (" + store.description +
                        ")");
    } else if (adopting) {
      // Waits for the old store's engine to finish a write in progress; after this commits,
      // that engine finds the new stamp and refuses the side.
      tx.exec_params("SELECT pg_advisory_xact_lock($1::bigint)", kOwnerLock);
      tx.exec_params("UPDATE mdsync.owner SET store_id = $1, control = $2, stamped_at = now()",
                     store.store_id, store.description);
      // The other store's capture bookkeeping (done markers by epoch and sequence) and its
      // outbox ids mean nothing here: a new epoch keeps its sequences apart from ours, and its
      // idempotency keys would collide with this store's outbox ids.
      tx.exec("UPDATE mdsync.capture_epoch SET epoch = gen_random_uuid()::text");
      const auto cleared = tx.exec("DELETE FROM mdsync.applied").affected_rows();
      const auto pending = tx.exec1("SELECT count(*) FROM mdsync.capture")[0].as<std::int64_t>();
      changed.push_back(
          "adopted from " + describe(*stamp) + ": stamped for control store " + store.store_id +
          " (" + store.description + "); new capture epoch; cleared " + std::to_string(cleared) +
          " write-back idempotency keys (mdsync.applied); " + std::to_string(pending) +
          " captured changes not yet reconciled are kept for this store");
    } else if (stamp->control != store.description) {
      tx.exec_params("UPDATE mdsync.owner SET control = $1", store.description);
      changed.push_back("stamp: control store now reached as " + store.description);
    }

    // The capture functions run as the capture role, whatever role writes the table, so an
    // application role needs no privilege on schema mdsync (and gets none).
    auto ensure_function = [&](const std::string& name, const std::string& body) {
      const pqxx::result r = tx.exec_params(
          "SELECT p.prosrc, p.prosecdef, coalesce(array_to_string(p.proconfig, ';'), ''),"
          " pg_get_userbyid(p.proowner) FROM pg_proc p"
          " JOIN pg_namespace n ON n.oid = p.pronamespace"
          " WHERE n.nspname = 'mdsync' AND p.proname = $1",
          name);
      const std::string fn = "mdsync." + c.quote_name(name) + "()";
      const bool same_body = !r.empty() && r[0][0].as<std::string>() == body;
      const bool same_attributes =
          !r.empty() && r[0][1].as<bool>() &&
          r[0][2].as<std::string>() == std::string("search_path=") + kCaptureSearchPath;
      if (!same_body || !same_attributes) {
        tx.exec("CREATE OR REPLACE FUNCTION " + fn +
                " RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = " +
                kCaptureSearchPath + " AS " + c.quote(body));
        changed.push_back(r.empty() ? "created function mdsync." + name
                          : !same_body
                              ? "updated function mdsync." + name
                              : "made function mdsync." + name +
                                    " SECURITY DEFINER with search_path " + kCaptureSearchPath);
      }
      if (r.empty() || r[0][3].as<std::string>() != capture_role) {
        // A new owner needs CREATE on the function's schema: lent for the change only.
        tx.exec("GRANT CREATE ON SCHEMA mdsync TO " + role);
        tx.exec("ALTER FUNCTION " + fn + " OWNER TO " + role);
        tx.exec("REVOKE CREATE ON SCHEMA mdsync FROM " + role);
        changed.push_back("made role " + capture_role + " the owner of function mdsync." + name);
      }
    };
    auto trigger_exists = [&](const std::string& table_oid_expr, const std::string& name) {
      return !tx.exec_params("SELECT 1 FROM pg_trigger WHERE tgrelid = " + table_oid_expr +
                                 " AND tgname = $1",
                             name)
                  .empty();
    };

    ensure_function("notify_capture",
                    "BEGIN IF EXISTS (SELECT FROM mdsync.wake WHERE engine_waiting) THEN"
                    " PERFORM pg_notify('mdsync_capture', ''); END IF; RETURN NULL; END");
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
      const std::string table = table_name(c, *m);
      const ColumnTypes types = column_types(tx, table);
      const SideTableSql sql(c, entity, *m, types);
      const std::set<std::string> as_text = text_compared_columns(tx, c, entity, side_.name, sql);
      ensure_function(function, trigger_body(c, entity, sql, key.secret_sha256, as_text));
      const std::string trigger = "mdsync_capture_" + entity.name;
      if (!trigger_exists(c.quote(table) + "::regclass", trigger)) {
        tx.exec("CREATE TRIGGER " + c.quote_name(trigger) +
                " AFTER INSERT OR UPDATE OR DELETE ON " + table +
                " FOR EACH ROW EXECUTE FUNCTION mdsync." + c.quote_name(function) + "()");
        changed.push_back("created capture trigger on " + m->schema + "." + m->table);
      }
    }

    // Nothing on schema mdsync for PUBLIC, only capture rows for the capture role. Compared
    // before and after, so a second init reports nothing.
    const std::string acls =
        "SELECT coalesce(string_agg(x, ';' ORDER BY x), '') FROM ("
        " SELECT 'schema:' || coalesce(nspacl::text, '') FROM pg_namespace"
        "  WHERE nspname = 'mdsync'"
        " UNION ALL SELECT 'rel:' || relname || ':' || coalesce(relacl::text, '') FROM pg_class"
        "  WHERE relnamespace = 'mdsync'::regnamespace"
        " UNION ALL SELECT 'fn:' || proname || ':' || coalesce(proacl::text, '') FROM pg_proc"
        "  WHERE pronamespace = 'mdsync'::regnamespace) s(x)";
    const std::string acls_before = tx.exec1(acls)[0].as<std::string>();
    const std::string sequence =
        tx.exec1("SELECT pg_get_serial_sequence('mdsync.capture', 'seq')")[0].as<std::string>();
    for (const std::string& statement : side_capture_privileges(config_.roles, sequence))
      tx.exec(statement);
    if (tx.exec1(acls)[0].as<std::string>() != acls_before)
      changed.push_back("set privileges on schema mdsync: none for PUBLIC; role " + capture_role +
                        " may insert capture rows and read mdsync.wake only");
  } catch (const pqxx::insufficient_privilege& e) {
    throw CapturePrivilegeError("side " + side_.name + ": " + first_line(e.what()) + kGrantsHint);
  }
  // An install that changed nothing writes nothing (not even a catalog row rewritten in place).
  if (changed.empty())
    tx.abort();
  else
    tx.commit();
  return changed;
}

std::int64_t SideStore::highest_applied_id() {
  pqxx::read_transaction tx(conn());
  return tx.exec1("SELECT coalesce(max(outbox_id), 0) FROM mdsync.applied")[0].as<std::int64_t>();
}

CaptureBatch SideStore::read_capture(int limit) {
  return read_capture(limit, {});
}

CaptureBatch SideStore::read_capture(int limit,
                                     const std::function<void(pqxx::transaction_base&)>& also) {
  CaptureBatch batch;
  // Repeatable read: the stamp and epoch in the same snapshot as the rows, so a side adopted
  // by another store since this connection was made is refused before anything of it is
  // reconciled here.
  pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only> tx(
      conn());
  batch = read_capture_in(tx, limit);
  if (also) also(tx);
  return batch;
}

CaptureBatch SideStore::read_capture_in(pqxx::transaction_base& tx, int limit) {
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

void SideStore::resolve_lookups(pqxx::transaction_base& tx, std::vector<CapturedRow>& rows) {
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

void SideStore::forget_capture(const std::vector<std::int64_t>& seqs) {
  if (seqs.empty()) return;
  pqxx::work tx(conn());
  // A side adopted since these rows were read keeps them: the new owner reconciles them.
  hold_ownership(tx);
  tx.exec_params("DELETE FROM mdsync.capture WHERE seq = ANY($1::bigint[])", pg_bigint_array(seqs));
  tx.commit();
}

void SideStore::set_engine_waiting(bool waiting) {
  pqxx::work tx(conn());
  tx.exec_params("UPDATE mdsync.wake SET engine_waiting = $1 WHERE engine_waiting <> $1", waiting);
  tx.commit();
}

std::int64_t SideStore::capture_backlog() {
  pqxx::read_transaction tx(conn());
  return tx.exec1("SELECT count(*) FROM mdsync.capture")[0].as<std::int64_t>();
}

namespace {

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

std::vector<WriteResult> SideStore::apply(const std::vector<WriteRequest>& requests) {
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

void SideStore::classify_refusal(pqxx::transaction_base& tx, const WriteRequest& req,
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

std::vector<WriteResult> SideStore::apply_once(const std::vector<WriteRequest>& requests) {
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

// ---- sync --initial: the rows a side already holds ----------------------------------------

namespace {

const config::SideMapping& mapping_of(const config::EntityConfig& entity, const std::string& side) {
  const config::SideMapping* m = entity.mapping_for(side);
  if (m == nullptr)
    throw std::runtime_error("entity " + entity.name + " has no mapping on side " + side);
  return *m;
}

}  // namespace

std::string SideStore::recapture_row(const config::EntityConfig& entity,
                                     const std::string& row_key) {
  const config::SideMapping& m = mapping_of(entity, side_.name);
  pqxx::connection_base& c = conn();
  pqxx::work tx(c);
  const ColumnTypes types = column_types(tx, table_name(c, m));
  const SideTableSql sql(c, entity, m, types);
  // The same SQL as the trigger: presence, liveness, the full row.
  // FOR SHARE: a change of the row in flight commits (and is captured) first.
  const pqxx::row r = tx.exec_params1(
      "WITH cur AS (SELECT " + sql.present("t") + " AS p, " + sql.live("t") + " AS l, " +
          full_row_expr(c, sql, "t") + " AS j FROM " + sql.table() + " t WHERE " +
          sql.key_equals("t", "$2::text") +
          " FOR SHARE OF t)"
          " INSERT INTO mdsync.capture (entity, op, row_key, changed)"
          " SELECT $1, CASE WHEN cur.p THEN 'U' WHEN cur.l THEN 'L' ELSE 'D' END, $2::text,"
          "  CASE WHEN cur.p THEN cur.j ELSE '{}'::jsonb END"
          " FROM (VALUES (1)) one LEFT JOIN cur ON true RETURNING op",
      entity.name, row_key);
  tx.commit();
  return r[0].as<std::string>();
}

namespace {

// Rows of current_rows_sql (one result row per field, in row order) added to `rows`; the first
// fields may continue the last row there.
void append_current_rows(const pqxx::result& r, const std::string& entity,
                         std::vector<CapturedRow>& rows) {
  for (const auto& row : r) {
    const auto n = row[0].as<std::int64_t>();
    if (rows.empty() || rows.back().seq != n) {
      CapturedRow cr;
      cr.seq = n;
      cr.entity = entity;
      cr.row_key = row[1].is_null() ? std::string() : row[1].as<std::string>();
      rows.push_back(std::move(cr));
    }
    add_field(rows.back(), row[2], row[3]);
  }
}

}  // namespace

std::string SideStore::current_rows_sql(pqxx::transaction_base& tx,
                                        const config::EntityConfig& entity) {
  const config::SideMapping& m = mapping_of(entity, side_.name);
  pqxx::connection_base& c = conn();
  const ColumnTypes types = column_types(tx, table_name(c, m));
  const SideTableSql sql(c, entity, m, types);
  return "SELECT s.n, s.k, e.key, e.value FROM (SELECT " + sql.key_text("t") + " AS k, " +
         full_row_expr(c, sql, "t") + " AS j, row_number() OVER (ORDER BY " + sql.key_columns("t") +
         ") AS n FROM " + sql.table() + " t WHERE " + sql.present("t") +
         ") s LEFT JOIN LATERAL jsonb_each_text(s.j) e ON true ORDER BY s.n";
}

std::vector<CapturedRow> SideStore::current_rows(pqxx::transaction_base& tx,
                                                 const config::EntityConfig& entity) {
  std::vector<CapturedRow> rows;
  append_current_rows(tx.exec(current_rows_sql(tx, entity)), entity.name, rows);
  resolve_lookups(tx, rows);
  return rows;
}

std::vector<CapturedRow> SideStore::read_current_rows(const config::EntityConfig& entity) {
  pqxx::read_transaction tx(conn());
  return current_rows(tx, entity);
}

std::unique_ptr<SideSnapshotReader> SideStore::open_snapshot() {
  return std::unique_ptr<SideSnapshotReader>(new SideSnapshotReader(*this));
}

SideSnapshotReader::SideSnapshotReader(SideStore& side) : side_(side) {
  // One snapshot for the capture table and the rows: a capture row is either older than what
  // the rows show (its change is in them) or not visible here at all (it comes after).
  tx_ = std::make_unique<
      pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only>>(
      side_.conn());
  captures_ = side_.read_capture_in(*tx_, std::numeric_limits<int>::max());
}

SideSnapshotReader::~SideSnapshotReader() = default;

std::int64_t SideSnapshotReader::count(const config::EntityConfig& entity) {
  const config::SideMapping& m = mapping_of(entity, side_.side_.name);
  pqxx::connection_base& c = side_.conn();
  const ColumnTypes types = column_types(*tx_, table_name(c, m));  // sql keeps a reference
  const SideTableSql sql(c, entity, m, types);
  return tx_->exec1("SELECT count(*) FROM " + sql.table() + " t WHERE " + sql.present("t"))[0]
      .as<std::int64_t>();
}

std::set<std::string> SideSnapshotReader::present(const config::EntityConfig& entity,
                                                  const std::vector<std::string>& keys) {
  std::set<std::string> out;
  if (keys.empty()) return out;
  const config::SideMapping& m = mapping_of(entity, side_.side_.name);
  pqxx::connection_base& c = side_.conn();
  const ColumnTypes types = column_types(*tx_, table_name(c, m));  // sql keeps a reference
  const SideTableSql sql(c, entity, m, types);
  for (const auto& row :
       tx_->exec_params("SELECT k FROM (SELECT " + sql.key_text("t") + " AS k FROM " + sql.table() +
                            " t WHERE " + sql.present("t") + ") s WHERE k = ANY($1::text[])",
                        pg_text_array(keys)))
    out.insert(row[0].as<std::string>());
  return out;
}

std::vector<CapturedRow> SideSnapshotReader::next(const config::EntityConfig& entity,
                                                  std::size_t max_rows) {
  if (cursor_entity_ != entity.name) {
    if (!cursor_entity_.empty()) tx_->exec("CLOSE mdsync_snapshot");
    tx_->exec("DECLARE mdsync_snapshot NO SCROLL CURSOR FOR " +
              side_.current_rows_sql(*tx_, entity));
    cursor_entity_ = entity.name;
    carry_.reset();
    cursor_done_ = false;
  }
  std::vector<CapturedRow> rows;
  if (carry_) {
    rows.push_back(std::move(*carry_));
    carry_.reset();
  }
  // A row has one result row per mapped field, so a fetch of max_rows times that ends on a
  // row's last field; should it not, the last row is carried into the next chunk, where its
  // remaining fields arrive.
  const std::size_t fields =
      std::max<std::size_t>(1, mapping_of(entity, side_.side_.name).fields.size());
  const std::size_t want = std::max<std::size_t>(1, max_rows) * fields;
  while (!cursor_done_ && rows.size() <= 1) {
    const pqxx::result r =
        tx_->exec("FETCH FORWARD " + std::to_string(want) + " FROM mdsync_snapshot");
    if (r.size() < want) cursor_done_ = true;
    append_current_rows(r, entity.name, rows);
  }
  if (!cursor_done_ && !rows.empty()) {
    carry_ = std::move(rows.back());
    rows.pop_back();
  }
  side_.resolve_lookups(*tx_, rows);
  return rows;
}

}  // namespace mdsync::store
