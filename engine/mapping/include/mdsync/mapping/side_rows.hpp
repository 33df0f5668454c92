// Which rows of a side's table take part in an entity, and what stands for a deleted row:
// a scope of structured predicates, a soft-delete column, delete guards that veto a
// propagated delete. Plain data, never SQL text: the store renders it with quoted identifiers
// and parameters, so nothing a config says can inject SQL.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "mdsync/core/value.hpp"

namespace mdsync::mapping {

// A literal of a predicate. The text is a string's text, a number's source digits, or
// "true"/"false"; NULL has no text. The kind lets the store cast it to the column's type.
struct Literal {
  enum class Kind { kNull, kString, kNumber, kBoolean };
  Kind kind = Kind::kNull;
  core::Value value;  // nullopt for kNull
};

enum class PredicateOp { kEq, kNe, kIn, kNotIn };

// `column op literal`. NULL is a value like any other: eq and ne mean IS NOT DISTINCT FROM
// and IS DISTINCT FROM, so {"column": "parent_id", "eq": null} selects rows without a
// parent, and {"column": "id", "ne": 1} keeps rows whose id is NULL. in and not_in are the
// same comparisons against each listed literal.
struct Predicate {
  std::string column;
  PredicateOp op = PredicateOp::kEq;
  std::vector<Literal> values;  // one for eq and ne, one or more for in and not_in
};

const char* to_string(PredicateOp op);
// "is_company = true", "id <> 1", "state in ('draft', 'open')": for messages and `show`.
std::string describe(const Predicate& p);

// A row whose soft-delete column says "deleted" counts as deleted. kTimestamp: the column is
// set (not NULL) when deleted, and a delete written to the side sets it to the time of the
// delete. kFlag: the boolean column equals `deleted_value` when deleted (false for an
// `active` flag, true for an `is_deleted` flag).
enum class SoftDeleteKind { kTimestamp, kFlag };
struct SoftDelete {
  std::string column;
  SoftDeleteKind kind = SoftDeleteKind::kTimestamp;
  bool deleted_value = false;  // kFlag only
};

// A delete propagated to this side is vetoed when a row exists in `table` whose `on` columns
// equal the side row's columns and that satisfies every `where` predicate (unpaid invoices
// of the customer). The veto restores the record on the side that deleted it and opens a
// foreign_delete conflict naming `reason`.
struct DeleteGuard {
  std::string schema;  // empty: the mapping's own schema
  std::string table;
  std::vector<std::pair<std::string, std::string>> on;  // guard table column -> side row column
  std::vector<Predicate> where = {};
  std::string reason;
};

}  // namespace mdsync::mapping
