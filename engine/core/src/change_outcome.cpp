#include "mdsync/core/change_outcome.hpp"

namespace mdsync::core {

ChangeOutcome change_outcome(const Plan& plan) {
  bool applied = false;
  bool reverted = false;
  bool quarantined = !plan.opened.empty() || !plan.attached.empty();
  for (const UnitDecision& d : plan.decisions) {
    switch (d.outcome) {
      case Outcome::kQuarantine:
      case Outcome::kAttach:
      case Outcome::kInvalid:
      case Outcome::kRejectCreate:
        quarantined = true;
        break;
      case Outcome::kRevert:
      case Outcome::kKeepGolden:
      case Outcome::kRestore:
      case Outcome::kRepair:
        reverted = true;
        break;
      case Outcome::kAccept:
      case Outcome::kCreate:
      case Outcome::kSeed:
      case Outcome::kDelete:
      case Outcome::kResolve:
      case Outcome::kDismiss:
        applied = true;
        break;
      case Outcome::kNoChange:
      case Outcome::kAgree:
        break;
    }
  }
  if (quarantined) return ChangeOutcome::kQuarantined;
  if (reverted) return ChangeOutcome::kReverted;
  if (applied) return ChangeOutcome::kApplied;
  return ChangeOutcome::kUnchanged;
}

const char* to_string(ChangeOutcome o) {
  switch (o) {
    case ChangeOutcome::kUnchanged:
      return "unchanged";
    case ChangeOutcome::kApplied:
      return "applied";
    case ChangeOutcome::kReverted:
      return "reverted";
    case ChangeOutcome::kQuarantined:
      return "quarantined";
  }
  return "unchanged";
}

}  // namespace mdsync::core
