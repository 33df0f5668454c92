#include "mdsync/core/decision.hpp"

#include <sstream>

#include "mdsync/core/change.hpp"

namespace mdsync::core {

const char* to_string(Op op) {
  return op == Op::kUpsert ? "upsert" : "delete";
}

const char* to_string(ConflictKind k) {
  switch (k) {
    case ConflictKind::kConcurrentEdit:
      return "concurrent_edit";
    case ConflictKind::kForeignWrite:
      return "foreign_write";
    case ConflictKind::kInvalidValue:
      return "invalid_value";
    case ConflictKind::kUnauthorizedCreate:
      return "unauthorized_create";
    case ConflictKind::kForeignDelete:
      return "foreign_delete";
    case ConflictKind::kPossibleDuplicate:
      return "possible_duplicate";
    case ConflictKind::kWriteRefused:
      return "write_refused";
    case ConflictKind::kUncapturedValue:
      return "uncaptured_value";
  }
  return "?";
}

std::optional<ConflictKind> conflict_kind_from_string(std::string_view w) {
  for (ConflictKind k : {ConflictKind::kConcurrentEdit, ConflictKind::kForeignWrite,
                         ConflictKind::kInvalidValue, ConflictKind::kUnauthorizedCreate,
                         ConflictKind::kForeignDelete, ConflictKind::kPossibleDuplicate,
                         ConflictKind::kWriteRefused, ConflictKind::kUncapturedValue})
    if (w == to_string(k)) return k;
  return std::nullopt;
}

const OpenConflict* RecordState::conflict_on(const std::string& unit) const {
  for (const OpenConflict& c : open_conflicts)
    if (c.unit == unit) return &c;
  return nullptr;
}

const char* to_string(Outcome o) {
  switch (o) {
    case Outcome::kNoChange:
      return "no_change";
    case Outcome::kAgree:
      return "agree";
    case Outcome::kAccept:
      return "accept";
    case Outcome::kRevert:
      return "revert";
    case Outcome::kKeepGolden:
      return "keep_golden";
    case Outcome::kQuarantine:
      return "quarantine";
    case Outcome::kAttach:
      return "attach";
    case Outcome::kInvalid:
      return "invalid";
    case Outcome::kCreate:
      return "create";
    case Outcome::kSeed:
      return "seed";
    case Outcome::kRejectCreate:
      return "reject_create";
    case Outcome::kDelete:
      return "delete";
    case Outcome::kRestore:
      return "restore";
    case Outcome::kResolve:
      return "resolve";
    case Outcome::kDismiss:
      return "dismiss";
    case Outcome::kRepair:
      return "repair";
  }
  return "?";
}

namespace {

// Groups print sorted by field name, as a field map does, so plans read the same whichever
// way their values were gathered.
std::string show_values(const UnitValues& v) {
  return show(static_cast<FieldValues>(v));
}

}  // namespace

std::string Plan::to_text() const {
  std::ostringstream out;
  out << "plan " << entity << " from " << source << " under ruleset v" << ruleset_version << "\n";
  for (const UnitDecision& d : decisions) {
    out << "  " << d.unit << ": " << to_string(d.outcome);
    if (d.golden_changed())
      out << " golden " << show_values(d.before) << " -> " << show_values(d.after);
    else if (!d.proposed.empty())
      out << " proposed " << show_values(d.proposed) << ", golden stays " << show_values(d.before);
    out << "  [" << d.rule_text() << "] " << d.reason() << "\n";
  }
  for (const ConflictOpened& c : opened) {
    out << "  open " << to_string(c.kind) << " on " << c.unit << ":";
    for (const auto& [who, v] : c.values) out << " " << who << "=" << show(v);
    out << "\n";
  }
  for (const ConflictAttached& a : attached)
    out << "  attach to conflict " << a.conflict_id << ": " << a.side << "=" << show(a.values)
        << "\n";
  for (std::int64_t id : closed) out << "  close conflict " << id << "\n";
  if (unlink_source) out << "  unlink source row\n";
  return out.str();
}

}  // namespace mdsync::core
