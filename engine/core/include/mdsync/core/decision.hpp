// The core's output: a plan of decisions for one change or one steward resolution. Each
// decision names the rule and ruleset version that made it and says why in one line; the
// whole plan prints as text, so a failing test or an audit query shows the full reasoning.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mdsync/core/reason.hpp"
#include "mdsync/core/record_state.hpp"
#include "mdsync/core/unit_values.hpp"
#include "mdsync/core/value.hpp"

namespace mdsync::core {

enum class Outcome {
  kNoChange,      // the side's value equals its base: it did not change the unit
  kAgree,         // the side's value equals golden: only its base moves
  kAccept,        // the side's value becomes golden
  kRevert,        // a foreign write: golden kept, the owner's value goes back to the side
  kKeepGolden,    // a concurrent edit the rule decided for the golden value
  kQuarantine,    // a conflict was opened for a steward
  kAttach,        // the unit is held by an open conflict; the value joins it
  kInvalid,       // the value failed validation; an invalid_value conflict holds it
  kCreate,        // a new golden record from this side
  kSeed,          // at a create, the side's value of a unit another side owns (on_create)
  kRejectCreate,  // the side may not create records: unauthorized_create
  kDelete,        // a side whose delete counts deleted the record
  kRestore,       // a foreign delete: the row is re-created on the side
  kResolve,       // a steward resolved a conflict
  kDismiss,       // a steward dismissed a conflict, keeping golden
  kRepair,        // verify found a side differing from golden uncaptured; golden goes back
};
const char* to_string(Outcome o);

struct UnitDecision {
  // User-provided, so a new decision is not first zeroed whole (as value-initializing a class
  // with an implicit constructor does) before its members initialize themselves.
  UnitDecision() {}  // NOLINT(modernize-use-equals-default)

  std::string unit;
  Outcome outcome = Outcome::kNoChange;
  UnitValues before;    // golden values of the unit's members before
  UnitValues after;     // golden values after (equal to before unless golden changed)
  UnitValues proposed;  // what the side (or steward) proposed
  std::shared_ptr<const std::string> rule;  // "customer.credit_limit owner=erp ..." (shared)
  Reason why;                               // rendered by reason()
  const std::string& rule_text() const {
    static const std::string kNone;
    return rule ? *rule : kNone;
  }
  bool golden_changed() const { return before != after; }
  // One line for the audit trail and the CLI.
  std::string reason() const { return why.render(unit); }
};

struct ConflictOpened {
  std::string unit;
  ConflictKind kind = ConflictKind::kConcurrentEdit;
  std::map<std::string, FieldValues> values;  // by side (and "golden"): the competing values
  std::string reason;
  std::string vetoed_by = {};  // see OpenConflict::vetoed_by
};

struct ConflictAttached {
  std::int64_t conflict_id = 0;
  std::string side;
  FieldValues values;
};

struct Plan {
  std::string entity;
  std::string source;  // "crm#42" for a change, "steward:alice" for a resolution
  std::int64_t ruleset_version = 0;
  std::vector<UnitDecision> decisions;
  std::vector<ConflictOpened> opened;
  std::vector<ConflictAttached> attached;
  std::vector<std::int64_t> closed;  // conflicts a resolution closed
  bool unlink_source = false;        // the source side's row is gone: drop its crosswalk link

  std::string to_text() const;
};

}  // namespace mdsync::core
