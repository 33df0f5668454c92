#include "mdsync/mapping/side_rows.hpp"

namespace mdsync::mapping {

namespace {

std::string literal_text(const Literal& l) {
  if (l.kind == Literal::Kind::kNull || !l.value) return "null";
  if (l.kind != Literal::Kind::kString) return *l.value;
  std::string out = "'";
  for (char c : *l.value) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

}  // namespace

const char* to_string(PredicateOp op) {
  switch (op) {
    case PredicateOp::kEq:
      return "eq";
    case PredicateOp::kNe:
      return "ne";
    case PredicateOp::kIn:
      return "in";
    case PredicateOp::kNotIn:
      return "not_in";
  }
  return "?";
}

std::string describe(const Predicate& p) {
  std::string out = p.column;
  switch (p.op) {
    case PredicateOp::kEq:
      out += " = ";
      break;
    case PredicateOp::kNe:
      out += " <> ";
      break;
    case PredicateOp::kIn:
      out += " in ";
      break;
    case PredicateOp::kNotIn:
      out += " not in ";
      break;
  }
  if (p.op == PredicateOp::kEq || p.op == PredicateOp::kNe)
    return out + (p.values.empty() ? std::string("null") : literal_text(p.values.front()));
  std::string list;
  for (const Literal& l : p.values) list += (list.empty() ? "" : ", ") + literal_text(l);
  return out + "(" + list + ")";
}

}  // namespace mdsync::mapping
