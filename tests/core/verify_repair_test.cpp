// repair_drift() and repair_missing_row(): what `mdsync verify --repair` decides for a side
// row that holds values no captured change explains, or that is gone without a captured
// delete. A unit another side owns goes back to golden; one the side owns or shares waits for
// a steward (uncaptured_value); a missing row follows the delete rules, except that the deleting
// side's own uncaptured delete always waits for a steward.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mdsync/core/reconciler.hpp"
#include "mdsync/core/writeback_plan.hpp"
#include "test_support.hpp"

namespace mdsync::core {
namespace {

using test::owned_by;
using test::RulesBuilder;
using test::shared_field;
using test::StateBuilder;

constexpr std::int64_t kVersion = 7;
const std::vector<std::string> kSides = {"erp", "crm"};

// erp owns name and deletes; crm owns email (compared case-insensitively); segment is shared;
// the address group belongs to erp.
EntityRules rules() {
  return RulesBuilder()
      .create({"erp", "crm"})
      .deletes("erp")
      .field("name", owned_by("erp"))
      .field("email", test::compared(owned_by("crm"), Compare::kCaseInsensitive))
      .field("segment", shared_field())
      .group("address", {{"street", FieldType::kText}, {"city", FieldType::kText}}, owned_by("erp"))
      .build();
}

const FieldValues kGolden = {{"name", "Acme"},
                             {"email", "a@acme.test"},
                             {"segment", "smb"},
                             {"street", "Main 1"},
                             {"city", "Ghent"}};

RecordState converged() {
  return StateBuilder().golden(kGolden).base("erp", kGolden).base("crm", kGolden).build();
}

FieldValues with(FieldValues v, const std::string& field, Value value) {
  v[field] = std::move(value);
  return v;
}

std::vector<RowWrite> writes_of(const RecordState& s) {
  return plan_writebacks(rules(), s, kSides, {}).writes;
}

TEST(RepairDrift, AUnitAnotherSideOwnsGoesBackToGoldenConditionalOnWhatTheSideHolds) {
  const FieldValues held = with(kGolden, "name", "ACME Hacked");
  const Reconciliation r = repair_drift(rules(), kVersion, converged(), "crm", held);
  EXPECT_EQ(r.plan.to_text(),
            "plan customer from verify:crm under ruleset v7\n"
            "  name: repair proposed \"ACME Hacked\", golden stays \"Acme\"  [customer.name "
            "owner=erp "
            "on_foreign_write=revert] crm holds name = \"ACME Hacked\", which no captured change "
            "explains; erp owns it, so golden goes back to crm\n");
  EXPECT_TRUE(r.plan.opened.empty());
  EXPECT_EQ(r.after.golden, kGolden);
  EXPECT_EQ(r.after.bases.at("crm"), held);
  const auto writes = writes_of(r.after);
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].side, "crm");
  EXPECT_EQ(writes[0].kind, RowWrite::Kind::kUpdate);
  EXPECT_EQ(writes[0].values, (FieldValues{{"name", "Acme"}}));
  EXPECT_EQ(writes[0].expected, (FieldValues{{"name", "ACME Hacked"}}));
}

TEST(RepairDrift, AUnitTheSideOwnsOpensAnUncapturedValueConflictAndIsNotWrittenMeanwhile) {
  const FieldValues held = with(kGolden, "email", "old@acme.test");
  const Reconciliation r = repair_drift(rules(), kVersion, converged(), "crm", held);
  ASSERT_EQ(r.plan.opened.size(), 1u);
  EXPECT_EQ(r.plan.opened[0].kind, ConflictKind::kUncapturedValue);
  EXPECT_EQ(r.plan.opened[0].unit, "email");
  EXPECT_EQ(r.plan.opened[0].values.at("crm"), (FieldValues{{"email", "old@acme.test"}}));
  EXPECT_EQ(r.plan.opened[0].values.at("golden"), (FieldValues{{"email", "a@acme.test"}}));
  ASSERT_EQ(r.plan.decisions.size(), 1u);
  EXPECT_EQ(r.plan.decisions[0].outcome, Outcome::kQuarantine);
  EXPECT_EQ(r.after.golden, kGolden);
  EXPECT_EQ(r.after.bases.at("crm"), held);
  ASSERT_NE(r.after.conflict_on("email"), nullptr);
  EXPECT_EQ(r.after.conflict_on("email")->side, "crm");
  EXPECT_TRUE(writes_of(r.after).empty()) << "the steward decides before anything is written";
}

TEST(RepairDrift, TakingTheDriftedValuePropagatesItAndDismissingWritesGoldenBack) {
  const FieldValues held = with(kGolden, "email", "new@acme.test");
  Reconciliation r = repair_drift(rules(), kVersion, converged(), "crm", held);
  ASSERT_EQ(r.after.open_conflicts.size(), 1u);
  r.after.open_conflicts[0].id = 12;
  const OpenConflict conflict = r.after.open_conflicts[0];

  Resolution take;
  take.kind = Resolution::Kind::kTakeSide;
  take.side = "crm";
  take.steward = "alice";
  const Reconciliation taken = resolve(rules(), kVersion, r.after, conflict, take);
  EXPECT_EQ(taken.after.golden.at("email"), "new@acme.test");
  auto writes = writes_of(taken.after);
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].side, "erp");
  EXPECT_EQ(writes[0].values, (FieldValues{{"email", "new@acme.test"}}));

  Resolution dismiss;
  dismiss.kind = Resolution::Kind::kDismiss;
  dismiss.steward = "alice";
  const Reconciliation dismissed = resolve(rules(), kVersion, r.after, conflict, dismiss);
  EXPECT_EQ(dismissed.after.golden.at("email"), "a@acme.test");
  writes = writes_of(dismissed.after);
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].side, "crm");
  EXPECT_EQ(writes[0].values, (FieldValues{{"email", "a@acme.test"}}));
  EXPECT_EQ(writes[0].expected, (FieldValues{{"email", "new@acme.test"}}));
}

TEST(RepairDrift, ASharedUnitWaitsForAStewardWhicheverSideHoldsIt) {
  for (const std::string side : {"erp", "crm"}) {
    const Reconciliation r =
        repair_drift(rules(), kVersion, converged(), side, with(kGolden, "segment", "ent"));
    ASSERT_EQ(r.plan.opened.size(), 1u) << side;
    EXPECT_EQ(r.plan.opened[0].kind, ConflictKind::kUncapturedValue) << side;
    EXPECT_EQ(r.after.golden.at("segment"), "smb") << side;
  }
}

TEST(RepairDrift, AGroupIsRepairedWholeWhenOneMemberDiffers) {
  const Reconciliation r =
      repair_drift(rules(), kVersion, converged(), "crm", with(kGolden, "city", "Gent"));
  ASSERT_EQ(r.plan.decisions.size(), 1u);
  EXPECT_EQ(r.plan.decisions[0].unit, "address");
  EXPECT_EQ(r.plan.decisions[0].outcome, Outcome::kRepair);
  const auto writes = writes_of(r.after);
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].values, (FieldValues{{"city", "Ghent"}, {"street", "Main 1"}}));
}

TEST(RepairDrift, ValuesEqualUnderTheUnitsCompareAreNoDifference) {
  const Reconciliation r =
      repair_drift(rules(), kVersion, converged(), "crm", with(kGolden, "email", "A@ACME.test"));
  EXPECT_TRUE(r.plan.opened.empty());
  EXPECT_TRUE(r.plan.decisions.empty());
  EXPECT_TRUE(writes_of(r.after).empty());
}

TEST(RepairDrift, AUnitHeldByAnOpenConflictOrUnreadableIsLeftAlone) {
  RecordState held_by_conflict = converged();
  held_by_conflict.open_conflicts.push_back(
      OpenConflict{5, "name", ConflictKind::kForeignWrite, "erp"});
  Reconciliation r =
      repair_drift(rules(), kVersion, held_by_conflict, "crm", with(kGolden, "name", "Other"));
  EXPECT_TRUE(r.plan.decisions.empty());
  EXPECT_EQ(r.after.bases.at("crm").at("name"), "Acme") << "the base is not moved either";

  r = repair_drift(rules(), kVersion, converged(), "crm", with(kGolden, "name", "\xff"),
                   {{"name", "is not valid UTF-8 text"}});
  EXPECT_TRUE(r.plan.decisions.empty());
  EXPECT_EQ(r.after.bases.at("crm").at("name"), "Acme");
}

TEST(RepairDrift, AValueTheEngineKnewButNeverWroteBackGoesBackWhoeverOwnsIt) {
  // crm's base already says it holds the old email, and golden moved on (a steward set it):
  // nothing bypassed capture, the write-back is missing. Golden goes back even to the owner.
  const RecordState s = StateBuilder()
                            .golden(kGolden)
                            .base("erp", kGolden)
                            .base("crm", with(kGolden, "email", "old@acme.test"))
                            .build();
  const Reconciliation r =
      repair_drift(rules(), kVersion, s, "crm", with(kGolden, "email", "old@acme.test"));
  EXPECT_TRUE(r.plan.opened.empty());
  ASSERT_EQ(r.plan.decisions.size(), 1u);
  EXPECT_EQ(r.plan.decisions[0].outcome, Outcome::kRepair);
  const auto writes = writes_of(r.after);
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].side, "crm");
  EXPECT_EQ(writes[0].values, (FieldValues{{"email", "a@acme.test"}}));
}

TEST(RepairDrift, ADeletedOrUnlinkedRecordIsNotTouched) {
  RecordState deleted = converged();
  deleted.deleted = true;
  EXPECT_TRUE(repair_drift(rules(), kVersion, deleted, "crm", with(kGolden, "name", "X"))
                  .plan.decisions.empty());
  RecordState unlinked = converged();
  unlinked.bases.erase("crm");
  EXPECT_TRUE(repair_drift(rules(), kVersion, unlinked, "crm", with(kGolden, "name", "X"))
                  .plan.decisions.empty());
}

TEST(RepairMissingRow, ARowGoneFromASideWhoseDeletesDoNotCountIsReCreated) {
  const Reconciliation r = repair_missing_row(rules(), kVersion, converged(), "crm");
  EXPECT_TRUE(r.plan.unlink_source);
  EXPECT_TRUE(r.plan.opened.empty());
  ASSERT_EQ(r.plan.decisions.size(), 1u);
  EXPECT_EQ(r.plan.decisions[0].outcome, Outcome::kRepair);
  EXPECT_EQ(r.plan.decisions[0].unit, kRecordUnit);
  EXPECT_FALSE(r.after.deleted);
  EXPECT_EQ(r.after.bases.count("crm"), 0u);
  const auto writes = writes_of(r.after);
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].side, "crm");
  EXPECT_EQ(writes[0].kind, RowWrite::Kind::kInsert);
  EXPECT_EQ(writes[0].values, kGolden);
}

TEST(RepairMissingRow, TheDeletingSidesUncapturedDeleteWaitsForAStewardAndIsNotPropagated) {
  Reconciliation r = repair_missing_row(rules(), kVersion, converged(), "erp");
  EXPECT_TRUE(r.plan.unlink_source);
  ASSERT_EQ(r.plan.opened.size(), 1u);
  EXPECT_EQ(r.plan.opened[0].kind, ConflictKind::kForeignDelete);
  EXPECT_FALSE(r.after.deleted);
  EXPECT_TRUE(writes_of(r.after).empty()) << "neither deleted elsewhere nor re-created yet";

  ASSERT_EQ(r.after.open_conflicts.size(), 1u);
  r.after.open_conflicts[0].id = 3;
  Resolution take;
  take.kind = Resolution::Kind::kTakeSide;
  take.side = "erp";
  const Reconciliation accepted =
      resolve(rules(), kVersion, r.after, r.after.open_conflicts[0], take);
  EXPECT_TRUE(accepted.after.deleted);
  auto writes = writes_of(accepted.after);
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].side, "crm");
  EXPECT_EQ(writes[0].kind, RowWrite::Kind::kDelete);

  Resolution dismiss;
  dismiss.kind = Resolution::Kind::kDismiss;
  const Reconciliation kept =
      resolve(rules(), kVersion, r.after, r.after.open_conflicts[0], dismiss);
  EXPECT_FALSE(kept.after.deleted);
  writes = writes_of(kept.after);
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].side, "erp");
  EXPECT_EQ(writes[0].kind, RowWrite::Kind::kInsert);
}

TEST(RepairMissingRow, UnderQuarantinedForeignDeletesAnySidesMissingRowWaitsForAStewardToo) {
  EntityRules quarantining = rules();
  quarantining.delete_policy.on_foreign_delete = ForeignDelete::kQuarantine;
  const Reconciliation r = repair_missing_row(quarantining, kVersion, converged(), "crm");
  ASSERT_EQ(r.plan.opened.size(), 1u);
  EXPECT_EQ(r.plan.opened[0].kind, ConflictKind::kForeignDelete);
  EXPECT_TRUE(plan_writebacks(quarantining, r.after, kSides, {}).writes.empty());
}

TEST(RepairMissingRow, AForeignDeleteAlreadyWaitingHoldsTheRecord) {
  RecordState waiting = converged();
  waiting.open_conflicts.push_back(
      OpenConflict{9, kRecordUnit, ConflictKind::kForeignDelete, "crm"});
  const Reconciliation r = repair_missing_row(rules(), kVersion, waiting, "erp");
  EXPECT_TRUE(r.plan.decisions.empty());
  EXPECT_TRUE(r.plan.opened.empty()) << "one open conflict per record and unit";
  EXPECT_FALSE(r.plan.unlink_source);
  EXPECT_EQ(r.after.bases.count("erp"), 1u);
}

TEST(RepairMissingRow, ADeletedRecordOrAnUnlinkedSideIsNotTouched) {
  RecordState deleted = converged();
  deleted.deleted = true;
  EXPECT_TRUE(repair_missing_row(rules(), kVersion, deleted, "crm").plan.decisions.empty());
  RecordState unlinked = converged();
  unlinked.bases.erase("crm");
  const Reconciliation r = repair_missing_row(rules(), kVersion, unlinked, "crm");
  EXPECT_TRUE(r.plan.decisions.empty());
  EXPECT_FALSE(r.plan.unlink_source);
}

}  // namespace
}  // namespace mdsync::core
