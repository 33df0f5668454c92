#include "side_table_sql.hpp"

#include <pqxx/pqxx>
#include <stdexcept>

namespace mdsync::store {

SideTableSql::SideTableSql(pqxx::connection_base& c, const config::EntityConfig& entity,
                           const config::SideMapping& m, const ColumnTypes& types)
    : c_(c), entity_(entity), m_(m), types_(types) {}

std::string SideTableSql::table() const {
  return c_.quote_name(m_.schema) + "." + c_.quote_name(m_.table);
}

const ColumnType& SideTableSql::column_type(const std::string& column) const {
  auto it = types_.find(column);
  if (it == types_.end())  // the mapping is out of date; the caller reports the side's error
    throw std::runtime_error("side table " + table() + " has no column " + column);
  return it->second;
}

std::string SideTableSql::key_text(const std::string& row) const {
  auto column = [&](const std::string& k) { return as_text(k, row + "." + c_.quote_name(k)); };
  if (!composite_key()) return column(m_.key_columns.front());
  std::string s = "jsonb_build_array(";
  for (std::size_t i = 0; i < m_.key_columns.size(); ++i)
    s += (i ? ", " : "") + column(m_.key_columns[i]);
  return s + ")::text";
}

std::string SideTableSql::as_text(const std::string& column, const std::string& expr) const {
  auto it = types_.find(column);
  if (it == types_.end() || !it->second.user_type) return "(" + expr + ")::text";
  // In parentheses: PL/pgSQL reads an IF's condition up to the first THEN outside them.
  return "(CASE WHEN (" + expr + ") IS NULL THEN NULL ELSE pg_catalog.format('%s', " + expr +
         ") END)";
}

std::string SideTableSql::key_equals(const std::string& row, const std::string& k) const {
  if (!composite_key())
    return row + "." + c_.quote_name(m_.key_columns.front()) + " = (" + k +
           ")::" + column_type(m_.key_columns.front()).base;
  // A key text that is not the array the engine wrote matches nothing rather than failing.
  std::string lhs = "(", rhs = "(";
  for (std::size_t i = 0; i < m_.key_columns.size(); ++i) {
    const std::string& col = m_.key_columns[i];
    lhs += (i ? ", " : "") + row + "." + c_.quote_name(col);
    rhs += std::string(i ? ", " : "") + "((" + k + ")::jsonb ->> " + std::to_string(i) +
           ")::" + column_type(col).base;
  }
  return lhs + ") = " + rhs + ")";
}

std::string SideTableSql::key_columns(const std::string& row) const {
  std::string s;
  for (std::size_t i = 0; i < m_.key_columns.size(); ++i)
    s += (i ? ", " : "") + row + "." + c_.quote_name(m_.key_columns[i]);
  return s;
}

// Literals are sent as quoted, untyped constants: PostgreSQL gives them the column's type, so
// 'true' compares with a boolean, '1' with an integer or a text, and nothing in a config can
// become SQL.
std::string SideTableSql::literal(const mapping::Literal& l) const {
  if (l.kind == mapping::Literal::Kind::kNull || !l.value) return "NULL";
  return c_.quote(*l.value);
}

std::string SideTableSql::predicate(const std::string& row, const mapping::Predicate& p) const {
  const std::string col = row + "." + c_.quote_name(p.column);
  std::string any;
  for (const mapping::Literal& l : p.values)
    any += (any.empty() ? "" : " OR ") + col + " IS NOT DISTINCT FROM " + literal(l);
  switch (p.op) {
    case mapping::PredicateOp::kEq:
    case mapping::PredicateOp::kIn:
      return "(" + any + ")";
    case mapping::PredicateOp::kNe:
    case mapping::PredicateOp::kNotIn:
      return "NOT (" + any + ")";
  }
  return "false";
}

std::string SideTableSql::in_scope(const std::string& row) const {
  if (m_.scope.empty()) return "true";
  std::string s;
  for (const mapping::Predicate& p : m_.scope) s += (s.empty() ? "" : " AND ") + predicate(row, p);
  return "(" + s + ")";
}

std::string SideTableSql::live(const std::string& row) const {
  if (!m_.soft_delete) return "true";
  const std::string col = row + "." + c_.quote_name(m_.soft_delete->column);
  if (m_.soft_delete->kind == mapping::SoftDeleteKind::kTimestamp) return "(" + col + " IS NULL)";
  return "(" + col + " IS DISTINCT FROM " + (m_.soft_delete->deleted_value ? "true" : "false") +
         ")";
}

std::string SideTableSql::present(const std::string& row) const {
  if (m_.scope.empty()) return live(row);
  if (!m_.soft_delete) return in_scope(row);
  return "(" + in_scope(row) + " AND " + live(row) + ")";
}

std::string SideTableSql::soft_delete_set() const {
  if (!m_.soft_delete) return "";
  const std::string col = c_.quote_name(m_.soft_delete->column);
  if (m_.soft_delete->kind == mapping::SoftDeleteKind::kTimestamp) {
    // A local-time column gets the local time of the side's declared zone.
    auto it = types_.find(m_.soft_delete->column);
    const bool local = it != types_.end() && it->second.base == "timestamp without time zone";
    const std::string now = local && !m_.timezone.empty()
                                ? "(now() AT TIME ZONE " + c_.quote(m_.timezone) + ")"
                                : std::string("now()");
    return col + " = coalesce(" + col + ", " + now + ")";
  }
  return col + " = " + (m_.soft_delete->deleted_value ? "true" : "false");
}

std::string SideTableSql::soft_delete_clear() const {
  if (!m_.soft_delete) return "";
  const std::string col = c_.quote_name(m_.soft_delete->column);
  if (m_.soft_delete->kind == mapping::SoftDeleteKind::kTimestamp) return col + " = NULL";
  return col + " = " + (m_.soft_delete->deleted_value ? "false" : "true");
}

std::vector<std::pair<std::string, std::string>> SideTableSql::scope_defaults() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const mapping::Predicate& p : m_.scope) {
    if (p.op != mapping::PredicateOp::kEq && p.op != mapping::PredicateOp::kIn) continue;
    bool taken = false;
    for (const auto& [field, column] : m_.columns) taken = taken || column == p.column;
    for (const std::string& k : m_.key_columns) taken = taken || k == p.column;
    for (const auto& [col, value] : out) taken = taken || col == p.column;
    if (taken || p.values.empty()) continue;
    out.emplace_back(p.column, literal(p.values.front()));
  }
  return out;
}

std::string SideTableSql::describe_scope() const {
  std::string s;
  for (const mapping::Predicate& p : m_.scope)
    s += (s.empty() ? "" : " and ") + mapping::describe(p);
  return s;
}

std::string SideTableSql::guard_vetoes(const std::string& row,
                                       const mapping::DeleteGuard& g) const {
  std::string s = "EXISTS (SELECT 1 FROM " +
                  c_.quote_name(g.schema.empty() ? m_.schema : g.schema) + "." +
                  c_.quote_name(g.table) + " g WHERE true";
  for (const auto& [guard_col, row_col] : g.on)
    s += " AND g." + c_.quote_name(guard_col) + " = " + row + "." + c_.quote_name(row_col);
  for (const mapping::Predicate& p : g.where) s += " AND " + predicate("g", p);
  return s + ")";
}

std::string SideTableSql::guard_reason(const mapping::DeleteGuard& g) const {
  if (!g.reason.empty()) return g.reason;
  return "rows in " + (g.schema.empty() ? m_.schema : g.schema) + "." + g.table + " refer to it";
}

std::string SideTableSql::zone_of(const std::string& field, const std::string& column) const {
  if (m_.timezone.empty() || entity_.type_of(field) != core::FieldType::kTimestamptz) return "";
  auto it = types_.find(column);
  if (it == types_.end() || it->second.base != "timestamp without time zone") return "";
  return m_.timezone;
}

bool SideTableSql::is_json(const std::string& column) const {
  auto it = types_.find(column);
  return it != types_.end() && it->second.base == "json";
}

std::string SideTableSql::comparable(const std::string& column, const std::string& expr) const {
  return is_json(column) ? "(" + expr + ")::jsonb" : expr;
}

std::string SideTableSql::captured_column(const std::string& field, const std::string& row,
                                          const std::string& column) const {
  const std::string col = row + "." + c_.quote_name(column);
  const std::string zone = zone_of(field, column);
  if (!zone.empty()) return "(" + col + " AT TIME ZONE " + c_.quote(zone) + ")";
  // jsonb_build_object would call a cast to json the type's owner may have written.
  auto it = types_.find(column);
  if (it != types_.end() && it->second.user_type) return as_text(column, col);
  return col;
}

std::string SideTableSql::column_value(const std::string& field, const std::string& column,
                                       const std::string& text) const {
  const std::string zone = zone_of(field, column);
  if (zone.empty()) return text + "::" + column_type(column).base;
  return "(" + text + "::timestamptz AT TIME ZONE " + c_.quote(zone) + ")";
}

}  // namespace mdsync::store
