// resolve(): a steward's decision on an open conflict: take a side, set a value, dismiss.
#include <gtest/gtest.h>

#include <string>

#include "mdsync/core/reconciler.hpp"
#include "test_support.hpp"

namespace mdsync::core {
namespace {

using test::kNull;
using test::owned_by;
using test::RulesBuilder;
using test::shared_field;
using test::state_text;
using test::StateBuilder;

constexpr std::int64_t kVersion = 4;

EntityRules rules() {
  Validation non_negative;
  non_negative.min = "0";
  return RulesBuilder()
      .priority({"erp", "crm"})
      .field("segment", shared_field())
      .field("credit_limit",
             test::validated(owned_by("erp", ForeignWrite::kQuarantine), non_negative),
             FieldType::kNumeric)
      .group("address", {{"street", FieldType::kText}, {"city", FieldType::kText}}, shared_field())
      .build();
}

// Two open conflicts: crm and erp both changed segment (conflict 5); crm wrote erp's
// credit_limit (conflict 6).
RecordState state_with_conflicts() {
  return StateBuilder()
      .golden({{"segment", "smb"}, {"credit_limit", "100"}, {"street", "S2"}, {"city", "C1"}})
      .from_side("segment", "erp", 100)
      .from_side("credit_limit", "erp", 90)
      .base("erp", {{"segment", "smb"}, {"credit_limit", "100"}, {"street", "S2"}, {"city", "C1"}})
      .base("crm",
            {{"segment", "enterprise"}, {"credit_limit", "-5"}, {"street", "S1"}, {"city", "C3"}})
      .conflict(5, "segment", ConflictKind::kConcurrentEdit)
      .conflict(6, "credit_limit", ConflictKind::kForeignWrite)
      .conflict(7, "address", ConflictKind::kConcurrentEdit)
      .build();
}

Resolution take(const std::string& side, std::string note = "") {
  Resolution r;
  r.kind = Resolution::Kind::kTakeSide;
  r.side = side;
  r.steward = "alice";
  r.note = std::move(note);
  return r;
}

Resolution set_value(FieldValues values) {
  Resolution r;
  r.kind = Resolution::Kind::kValue;
  r.values = std::move(values);
  r.steward = "alice";
  return r;
}

Resolution dismiss() {
  Resolution r;
  r.kind = Resolution::Kind::kDismiss;
  r.steward = "bob";
  return r;
}

const OpenConflict kSegment{5, "segment", ConflictKind::kConcurrentEdit, "crm"};
const OpenConflict kCredit{6, "credit_limit", ConflictKind::kForeignWrite, "crm"};
const OpenConflict kAddress{7, "address", ConflictKind::kConcurrentEdit, "crm"};

TEST(Resolve, TakeSideSetsGoldenFromThatSidesBase) {
  const Reconciliation r =
      resolve(rules(), kVersion, state_with_conflicts(), kSegment, take("crm"));
  EXPECT_EQ(r.plan.to_text(),
            "plan customer from steward:alice under ruleset v4\n"
            "  segment: resolve golden \"smb\" -> \"enterprise\"  [customer.segment owner=shared "
            "on_conflict=quarantine] alice took crm's value\n"
            "  close conflict 5\n");
  EXPECT_EQ(r.after.golden.at("segment"), Value{"enterprise"});
  const Provenance& p = r.after.provenance.at("segment");
  EXPECT_EQ(p.steward, "alice");
  EXPECT_TRUE(p.side.empty());
  EXPECT_EQ(r.plan.closed, (std::vector<std::int64_t>{5}));
  // only conflict 5 closes
  ASSERT_EQ(r.after.open_conflicts.size(), 2u);
  EXPECT_EQ(r.after.open_conflicts[0].id, 6);
  EXPECT_EQ(r.after.open_conflicts[1].id, 7);
  // bases are the sides' business: a resolution does not move them
  EXPECT_EQ(r.after.bases, state_with_conflicts().bases);
}

TEST(Resolve, TakeTheGoldenSideKeepsValueButClosesConflict) {
  const Reconciliation r =
      resolve(rules(), kVersion, state_with_conflicts(), kSegment, take("erp"));
  ASSERT_EQ(r.plan.decisions.size(), 1u);
  EXPECT_EQ(r.plan.decisions[0].outcome, Outcome::kResolve);
  EXPECT_FALSE(r.plan.decisions[0].golden_changed());
  EXPECT_EQ(r.after.golden.at("segment"), Value{"smb"});
  EXPECT_EQ(r.after.conflict_on("segment"), nullptr);
}

TEST(Resolve, TakeSideTakesTheWholeGroup) {
  const Reconciliation r =
      resolve(rules(), kVersion, state_with_conflicts(), kAddress, take("crm"));
  EXPECT_EQ(r.after.golden.at("street"), Value{"S1"});
  EXPECT_EQ(r.after.golden.at("city"), Value{"C3"});
  EXPECT_EQ(r.after.provenance.at("address").steward, "alice");
  EXPECT_EQ(r.after.conflict_on("address"), nullptr);
}

TEST(Resolve, NoteIsAppendedToTheReason) {
  const Reconciliation r = resolve(rules(), kVersion, state_with_conflicts(), kSegment,
                                   take("crm", "confirmed with the account manager"));
  ASSERT_EQ(r.plan.decisions.size(), 1u);
  EXPECT_EQ(r.plan.decisions[0].reason(),
            "alice took crm's value (confirmed with the account manager)");
}

TEST(Resolve, ExplicitValueIsCanonicalized) {
  const Reconciliation r = resolve(rules(), kVersion, state_with_conflicts(), kCredit,
                                   set_value({{"credit_limit", "0250.500"}}));
  EXPECT_EQ(r.plan.to_text(),
            "plan customer from steward:alice under ruleset v4\n"
            "  credit_limit: resolve golden \"100\" -> \"250.5\"  [customer.credit_limit "
            "owner=erp on_foreign_write=quarantine] alice set the value\n"
            "  close conflict 6\n");
  EXPECT_EQ(r.after.golden.at("credit_limit"), Value{"250.5"});
  EXPECT_EQ(r.after.provenance.at("credit_limit").steward, "alice");
}

TEST(Resolve, ExplicitNullIsAValue) {
  const Reconciliation r =
      resolve(rules(), kVersion, state_with_conflicts(), kSegment, set_value({{"segment", kNull}}));
  EXPECT_EQ(r.after.golden.at("segment"), kNull);
}

TEST(Resolve, ExplicitValueMustPassValidation) {
  EXPECT_THROW(resolve(rules(), kVersion, state_with_conflicts(), kCredit,
                       set_value({{"credit_limit", "-1"}})),
               ResolutionError);
}

TEST(Resolve, ExplicitValueMustConvertToTheFieldsType) {
  EXPECT_THROW(resolve(rules(), kVersion, state_with_conflicts(), kCredit,
                       set_value({{"credit_limit", "a lot"}})),
               ResolutionError);
}

TEST(Resolve, ExplicitValueMustCoverExactlyTheUnit) {
  // a group needs every member
  EXPECT_THROW(
      resolve(rules(), kVersion, state_with_conflicts(), kAddress, set_value({{"street", "S9"}})),
      ResolutionError);
  // and nothing outside the unit
  EXPECT_THROW(resolve(rules(), kVersion, state_with_conflicts(), kSegment,
                       set_value({{"segment", "smb"}, {"street", "S9"}})),
               ResolutionError);
}

TEST(Resolve, TakingAnInvalidSideValueIsRefused) {
  // crm holds -5 for credit_limit, below min 0
  EXPECT_THROW(resolve(rules(), kVersion, state_with_conflicts(), kCredit, take("crm")),
               ResolutionError);
}

TEST(Resolve, DismissKeepsGoldenAndClosesConflict) {
  const RecordState before = state_with_conflicts();
  const Reconciliation r = resolve(rules(), kVersion, before, kCredit, dismiss());
  EXPECT_EQ(r.plan.to_text(),
            "plan customer from steward:bob under ruleset v4\n"
            "  credit_limit: dismiss proposed \"100\", golden stays \"100\"  "
            "[customer.credit_limit owner=erp on_foreign_write=quarantine] bob kept the golden "
            "value\n"
            "  close conflict 6\n");
  EXPECT_EQ(r.after.golden, before.golden);
  EXPECT_EQ(r.after.conflict_on("credit_limit"), nullptr);
  EXPECT_NE(r.after.conflict_on("segment"), nullptr);
}

TEST(Resolve, TakingAnUnknownSideIsRefused) {
  const RecordState before = state_with_conflicts();
  try {
    resolve(rules(), kVersion, before, kSegment, take("shop"));
    FAIL() << "expected ResolutionError";
  } catch (const ResolutionError& e) {
    EXPECT_EQ(std::string(e.what()), "side 'shop' holds no row of this record");
  }
}

TEST(Resolve, RecordLevelConflictsNeedAnotherCommand) {
  const RecordState state =
      StateBuilder().absent().conflict(8, kRecordUnit, ConflictKind::kUnauthorizedCreate).build();
  const OpenConflict create{8, kRecordUnit, ConflictKind::kUnauthorizedCreate, "crm"};
  EXPECT_THROW(resolve(rules(), kVersion, state, create, take("crm")), ResolutionError);
}

TEST(Resolve, AnonymousStewardIsNamedSteward) {
  Resolution r = take("crm");
  r.steward.clear();
  const Reconciliation out = resolve(rules(), kVersion, state_with_conflicts(), kSegment, r);
  EXPECT_EQ(out.plan.source, "steward:steward");
  EXPECT_EQ(out.after.provenance.at("segment").steward, "steward");
}

TEST(Resolve, ResolvedUnitTakesAutomaticDecisionsAgain) {
  const EntityRules rs = rules();
  const Reconciliation resolved =
      resolve(rs, kVersion, state_with_conflicts(), kSegment, take("crm"));
  // crm's base already holds the resolved value; crm now changes it alone
  Change c;
  c.side = "crm";
  c.seq = 30;
  c.entity = "customer";
  c.values = {{"segment", "mid"}};
  c.commit_time_us = 500;
  RecordState state = resolved.after;
  state.bases["erp"]["segment"] = "enterprise";  // the write-back reached erp
  const Reconciliation r = reconcile(rs, kVersion, state, c);
  ASSERT_EQ(r.plan.decisions.size(), 1u) << r.plan.to_text();
  EXPECT_EQ(r.plan.decisions[0].outcome, Outcome::kAccept);
  EXPECT_EQ(r.after.golden.at("segment"), Value{"mid"});
}

}  // namespace
}  // namespace mdsync::core
