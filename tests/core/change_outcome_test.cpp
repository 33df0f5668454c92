// change_outcome: the one word the service counts per change (mdsync_changes_total). A plan
// with several decisions is summarized by the one a steward most needs to know about.
#include "mdsync/core/change_outcome.hpp"

#include <gtest/gtest.h>

namespace mdsync::core {
namespace {

Plan plan_of(std::initializer_list<Outcome> outcomes) {
  Plan p;
  for (Outcome o : outcomes) {
    UnitDecision d;
    d.unit = "u" + std::to_string(p.decisions.size());
    d.outcome = o;
    p.decisions.push_back(d);
  }
  return p;
}

TEST(ChangeOutcomeTest, EachDecisionAloneNamesItsOutcome) {
  const std::pair<Outcome, ChangeOutcome> cases[] = {
      {Outcome::kNoChange, ChangeOutcome::kUnchanged},
      {Outcome::kAgree, ChangeOutcome::kUnchanged},
      {Outcome::kAccept, ChangeOutcome::kApplied},
      {Outcome::kCreate, ChangeOutcome::kApplied},
      {Outcome::kSeed, ChangeOutcome::kApplied},
      {Outcome::kDelete, ChangeOutcome::kApplied},
      {Outcome::kResolve, ChangeOutcome::kApplied},
      {Outcome::kDismiss, ChangeOutcome::kApplied},
      {Outcome::kRevert, ChangeOutcome::kReverted},
      {Outcome::kKeepGolden, ChangeOutcome::kReverted},
      {Outcome::kRestore, ChangeOutcome::kReverted},
      {Outcome::kRepair, ChangeOutcome::kReverted},
      {Outcome::kQuarantine, ChangeOutcome::kQuarantined},
      {Outcome::kAttach, ChangeOutcome::kQuarantined},
      {Outcome::kInvalid, ChangeOutcome::kQuarantined},
      {Outcome::kRejectCreate, ChangeOutcome::kQuarantined},
  };
  for (const auto& [decision, expected] : cases)
    EXPECT_EQ(to_string(change_outcome(plan_of({decision}))), std::string(to_string(expected)))
        << to_string(decision);
}

TEST(ChangeOutcomeTest, QuarantineOutranksRevertWhichOutranksApply) {
  EXPECT_EQ(change_outcome(plan_of({Outcome::kAccept, Outcome::kRevert})),
            ChangeOutcome::kReverted);
  EXPECT_EQ(change_outcome(plan_of({Outcome::kRevert, Outcome::kAccept, Outcome::kQuarantine})),
            ChangeOutcome::kQuarantined);
  EXPECT_EQ(change_outcome(plan_of({Outcome::kAgree, Outcome::kAccept})), ChangeOutcome::kApplied);
  EXPECT_EQ(change_outcome(plan_of({})), ChangeOutcome::kUnchanged);
}

TEST(ChangeOutcomeTest, AConflictOpenedOrJoinedIsQuarantineWhateverTheDecisionsSay) {
  Plan opened = plan_of({Outcome::kAccept});
  opened.opened.push_back(ConflictOpened{});
  EXPECT_EQ(change_outcome(opened), ChangeOutcome::kQuarantined);
  Plan attached = plan_of({Outcome::kNoChange});
  attached.attached.push_back(ConflictAttached{7, "crm", {}});
  EXPECT_EQ(change_outcome(attached), ChangeOutcome::kQuarantined);
}

}  // namespace
}  // namespace mdsync::core
