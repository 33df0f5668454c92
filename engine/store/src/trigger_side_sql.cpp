#include "trigger_side_sql.hpp"

#include <algorithm>
#include <pqxx/pqxx>
#include <stdexcept>

namespace mdsync::store {

std::string first_line(const std::string& s) {
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

std::string table_name(pqxx::connection_base& c, const config::SideMapping& m) {
  return c.quote_name(m.schema) + "." + c.quote_name(m.table);
}

std::string path_array(pqxx::connection_base& c, const std::vector<std::string>& path) {
  std::string s = "ARRAY[";
  for (std::size_t i = 0; i < path.size(); ++i) s += (i ? ", " : "") + c.quote(path[i]);
  return s + "]::text[]";
}

std::string lookup_table(pqxx::connection_base& c, const config::SideMapping& m,
                         const mapping::Lookup& l) {
  return c.quote_name(l.schema.empty() ? m.schema : l.schema) + "." + c.quote_name(l.table);
}

std::string path_array_text(const std::vector<std::string>& path) {
  std::string s;
  for (const std::string& p : path) s += (s.empty() ? "" : ", ") + ("\"" + p + "\"");
  return "[" + s + "]";
}

std::string lookup_value(pqxx::connection_base& c, const mapping::Lookup& l,
                         const std::string& alias) {
  const std::string col = alias + "." + c.quote_name(l.value);
  if (l.value_path.empty()) return col + "::text";
  return "(" + col + " #>> " + path_array(c, l.value_path) + ")";
}

std::string lookup_name(const config::SideMapping& m, const mapping::Lookup& l) {
  return (l.schema.empty() ? m.schema : l.schema) + "." + l.table;
}

std::string captured_expr(pqxx::connection_base& c, const SideTableSql& sql,
                          const mapping::FieldMapping& fm, const std::string& row) {
  if (!fm.json_path.empty())
    return row + "." + c.quote_name(fm.column) + " #>> " + path_array(c, fm.json_path);
  return sql.captured_column(fm.field, row, fm.column);
}

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

std::vector<std::string> structural_columns(const config::SideMapping& m) {
  std::vector<std::string> cols = m.key_columns;
  for (const mapping::Predicate& p : m.scope) cols.push_back(p.column);
  if (m.soft_delete) cols.push_back(m.soft_delete->column);
  std::sort(cols.begin(), cols.end());
  cols.erase(std::unique(cols.begin(), cols.end()), cols.end());
  return cols;
}

std::vector<std::string> read_columns(const config::SideMapping& m) {
  std::vector<std::string> cols = structural_columns(m);
  for (const mapping::FieldMapping& fm : m.fields) cols.push_back(fm.column);
  std::sort(cols.begin(), cols.end());
  cols.erase(std::unique(cols.begin(), cols.end()), cols.end());
  return cols;
}

void add_field(CapturedRow& row, const pqxx::field& key, const pqxx::field& value) {
  if (key.is_null()) return;
  row.values[key.as<std::string>()] =
      value.is_null() ? core::Value{} : core::Value{value.as<std::string>()};
}

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

std::set<std::string> drifted_columns(const ColumnTypes& types, const config::SideMapping& m) {
  std::set<std::string> gone;
  if (types.empty()) return gone;
  for (const std::string& col : read_columns(m))
    if (!types.count(col)) gone.insert(col);
  return gone;
}

std::set<std::string> drifted_columns(pqxx::transaction_base& tx, const config::SideMapping& m) {
  return drifted_columns(column_types(tx, table_name(tx.conn(), m)), m);
}

const config::SideMapping& mapping_of(const config::EntityConfig& entity, const std::string& side) {
  const config::SideMapping* m = entity.mapping_for(side);
  if (m == nullptr)
    throw std::runtime_error("entity " + entity.name + " has no mapping on side " + side);
  return *m;
}

}  // namespace mdsync::store
