// How one side's table is addressed in SQL: its quoted name, its row key (one column or a
// composite) as text and as a match, which rows take part (scope, soft delete), and how a
// timestamptz field is read from and written to a timestamp-without-time-zone column. Every
// identifier is quoted and every literal escaped here, so the SQL of capture triggers, reads
// and write-backs says these things one way.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "mdsync/config/config.hpp"

namespace pqxx {
class connection_base;
}

namespace mdsync::store {

// A column's type as the catalog names it: without its modifier, for casts that must behave
// like a parameter of that type (numeric(12,2) does not round an expected value before it is
// compared; assignment still applies the modifier), and with it, for comparing with what the
// side stored.
struct ColumnType {
  std::string base, full;
  // A type made outside pg_catalog (an enum, a domain, a composite): its owner may define
  // casts from it, and the capture trigger, which runs as the capture role, must never run a
  // user's function. Such a column is turned into text by its type's output function only.
  bool user_type = false;
};
using ColumnTypes = std::map<std::string, ColumnType>;  // by column name

class SideTableSql {
 public:
  // `types` may be empty where only the row-level predicates are rendered (a trigger body
  // built before the types are known renders time zones only when given them).
  SideTableSql(pqxx::connection_base& c, const config::EntityConfig& entity,
               const config::SideMapping& m, const ColumnTypes& types);

  const config::SideMapping& mapping() const { return m_; }
  std::string table() const;  // "schema"."table"
  // The column's type; throws naming the column when the table lacks it (an out-of-date
  // mapping), so a chunk that needs it falls back to row-by-row writes that report it.
  const ColumnType& column_type(const std::string& column) const;

  // The row key of `row` (NEW, OLD, t) as the text the crosswalk keeps: the column as text,
  // or for a composite key a JSON array of the columns' texts (["7", "BE"]).
  std::string key_text(const std::string& row) const;
  // `row`'s key equals the key text `k` (an SQL text expression), cast to the key's types.
  std::string key_equals(const std::string& row, const std::string& k) const;
  // The key columns of `row`, for ORDER BY and IS DISTINCT FROM: "t.a, t.b".
  std::string key_columns(const std::string& row) const;
  bool composite_key() const { return m_.key_columns.size() > 1; }

  // True (as SQL) when `row` takes part: every scope predicate holds. "true" without a scope.
  std::string in_scope(const std::string& row) const;
  // True when `row` is not soft-deleted. "true" without a soft delete.
  std::string live(const std::string& row) const;
  // in_scope and live: the row is one the engine syncs.
  std::string present(const std::string& row) const;
  // SET items that soft-delete a row, and that undo it (empty without a soft delete).
  std::string soft_delete_set() const;
  std::string soft_delete_clear() const;
  // Columns and SQL values an inserted row gets so that it falls in the scope: the literal of
  // each `eq` predicate (the first of an `in` list) on a column that is not a field or key.
  std::vector<std::pair<std::string, std::string>> scope_defaults() const;
  std::string describe_scope() const;  // "is_company = true and id <> 1", for messages
  // True when a row of the guard's table refers to `row` and meets the guard's predicates:
  // the guard vetoes deleting `row`.
  std::string guard_vetoes(const std::string& row, const mapping::DeleteGuard& g) const;
  // The guard's reason, or "rows in <table> refer to it".
  std::string guard_reason(const mapping::DeleteGuard& g) const;

  // The declared zone when `column` is a timestamp without time zone holding a timestamptz
  // field, else empty.
  std::string zone_of(const std::string& field, const std::string& column) const;
  // What the capture trigger records for a plain column of `row`: the column, or for a
  // zoned timestamp the instant it means (to_jsonb writes it with its offset).
  std::string captured_column(const std::string& field, const std::string& row,
                              const std::string& column) const;
  // The SQL value for `column` of the field's text `text` (an SQL text expression): cast to
  // the column's type, or for a zoned timestamp the local time of the instant.
  std::string column_value(const std::string& field, const std::string& column,
                           const std::string& text) const;
  // `expr`, a value of `column`'s type, in a form `IS NOT DISTINCT FROM` can compare: json has
  // no equality operator, so json values compare as jsonb (which also ignores formatting).
  std::string comparable(const std::string& column, const std::string& expr) const;
  bool is_json(const std::string& column) const;
  // `expr`, a value of `column`, as text: a cast, or for a user's type its output function
  // (format('%s')), which no user can replace, where a cast to text may be the user's function.
  std::string as_text(const std::string& column, const std::string& expr) const;

 private:
  std::string literal(const mapping::Literal& l) const;
  std::string predicate(const std::string& row, const mapping::Predicate& p) const;

  pqxx::connection_base& c_;
  const config::EntityConfig& entity_;
  const config::SideMapping& m_;
  const ColumnTypes& types_;
};

}  // namespace mdsync::store
