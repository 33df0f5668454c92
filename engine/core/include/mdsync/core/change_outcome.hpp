// What one reconciled change came to, in one word: the summary the service counts per side
// and entity (`mdsync_changes_total`). The plan keeps every unit's decision; this only says
// which of them a person watching the sync would care about most.
#pragma once

#include "mdsync/core/decision.hpp"

namespace mdsync::core {

enum class ChangeOutcome {
  kUnchanged,    // nothing golden moved: the side agreed, or changed nothing mapped
  kApplied,      // golden took (some of) the side's values: an accept, a create, a delete
  kReverted,     // the side's value was refused and golden goes back to it (a foreign write)
  kQuarantined,  // a steward has to decide: a conflict was opened or joined
};

// Quarantine wins over revert, which wins over apply: a change that opened a conflict on one
// field and was accepted on another still waits for a person.
ChangeOutcome change_outcome(const Plan& plan);
const char* to_string(ChangeOutcome o);

}  // namespace mdsync::core
