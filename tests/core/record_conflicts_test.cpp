// Foreign deletes under `on_foreign_delete: quarantine`, their resolution, and steward
// decisions against later last_writer_wins edits (the steward's time is an input).
#include <gtest/gtest.h>

#include "mdsync/core/reconciler.hpp"
#include "mdsync/core/writeback_plan.hpp"
#include "test_support.hpp"

namespace mdsync::core {
namespace {

using test::erase;
using test::owned_by;
using test::RulesBuilder;
using test::shared_field;
using test::StateBuilder;
using test::upsert;

EntityRules delete_rules(DeletePropagation propagate, ForeignDelete on_foreign) {
  EntityRules r =
      RulesBuilder()
          .deletes("erp", propagate, propagate == DeletePropagation::kDeactivate ? "active" : "")
          .field("name", shared_field())
          .field("active", owned_by("erp"), FieldType::kBoolean)
          .build();
  r.priority = {"erp", "crm"};
  r.delete_policy.on_foreign_delete = on_foreign;
  return r;
}

RecordState linked_record() {
  return StateBuilder()
      .golden({{"name", "Acme"}, {"active", "true"}})
      .base("erp", {{"name", "Acme"}, {"active", "true"}})
      .base("crm", {{"name", "Acme"}, {"active", "true"}})
      .build();
}

TEST(ForeignDelete, QuarantineOpensConflictAndKeepsTheRowGone) {
  const EntityRules rules = delete_rules(DeletePropagation::kDelete, ForeignDelete::kQuarantine);
  const Reconciliation r = reconcile(rules, 3, linked_record(), erase("crm", 7));
  EXPECT_EQ(
      r.plan.to_text(),
      "plan customer from crm#7 under ruleset v3\n"
      "  *record*: quarantine  [customer.*record* owner=erp on_foreign_write=revert] erp owns "
      "deletes; crm's delete waits for a steward\n"
      "  open foreign_delete on *record*: golden={active=\"true\", name=\"Acme\"}\n"
      "  unlink source row\n");
  ASSERT_EQ(r.after.open_conflicts.size(), 1u);
  EXPECT_EQ(r.after.open_conflicts[0].side, "crm");
  EXPECT_FALSE(r.after.deleted);
  EXPECT_EQ(r.after.bases.count("crm"), 0u);
  // While the conflict is open, the CRM row is not re-created.
  EXPECT_TRUE(plan_writebacks(rules, r.after, {"erp", "crm"}, {}).writes.empty());
}

TEST(ForeignDelete, RestoreIsTheDefault) {
  const EntityRules rules = delete_rules(DeletePropagation::kDelete, ForeignDelete::kRestore);
  const Reconciliation r = reconcile(rules, 3, linked_record(), erase("crm", 7));
  EXPECT_TRUE(r.after.open_conflicts.empty());
  const auto writes = plan_writebacks(rules, r.after, {"erp", "crm"}, {}).writes;
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].side, "crm");
  EXPECT_EQ(writes[0].kind, RowWrite::Kind::kInsert);
}

RecordState quarantined(const EntityRules& rules) {
  Reconciliation r = reconcile(rules, 3, linked_record(), erase("crm", 7));
  r.after.open_conflicts[0].id = 41;
  return r.after;
}

TEST(ForeignDelete, DismissRestoresTheRow) {
  const EntityRules rules = delete_rules(DeletePropagation::kDelete, ForeignDelete::kQuarantine);
  const RecordState state = quarantined(rules);
  Resolution keep;
  keep.kind = Resolution::Kind::kDismiss;
  keep.steward = "ana";
  const Reconciliation r = resolve(rules, 4, state, state.open_conflicts[0], keep);
  EXPECT_TRUE(r.after.open_conflicts.empty());
  EXPECT_EQ(r.plan.closed, std::vector<std::int64_t>{41});
  EXPECT_FALSE(r.after.deleted);
  const auto writes = plan_writebacks(rules, r.after, {"erp", "crm"}, {}).writes;
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].kind, RowWrite::Kind::kInsert);
}

TEST(ForeignDelete, TakingTheDeletingSideAcceptsTheDelete) {
  const EntityRules rules = delete_rules(DeletePropagation::kDelete, ForeignDelete::kQuarantine);
  const RecordState state = quarantined(rules);
  Resolution accept;
  accept.kind = Resolution::Kind::kTakeSide;
  accept.side = "crm";
  accept.steward = "ana";
  const Reconciliation r = resolve(rules, 4, state, state.open_conflicts[0], accept);
  EXPECT_TRUE(r.after.deleted);
  const auto writes = plan_writebacks(rules, r.after, {"erp", "crm"}, {}).writes;
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].side, "erp");
  EXPECT_EQ(writes[0].kind, RowWrite::Kind::kDelete);
}

TEST(ForeignDelete, AcceptedUnderDeactivationSetsTheFlagAndDetaches) {
  const EntityRules rules =
      delete_rules(DeletePropagation::kDeactivate, ForeignDelete::kQuarantine);
  const RecordState state = quarantined(rules);
  Resolution accept;
  accept.kind = Resolution::Kind::kTakeSide;
  accept.side = "crm";
  const Reconciliation r = resolve(rules, 4, state, state.open_conflicts[0], accept);
  EXPECT_FALSE(r.after.deleted);
  EXPECT_EQ(r.after.golden.at("active"), Value{"false"});
  EXPECT_EQ(r.after.detached, std::vector<std::string>{"crm"});
  const auto writes = plan_writebacks(rules, r.after, {"erp", "crm"}, {}).writes;
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].side, "erp");
  EXPECT_EQ(writes[0].values.at("active"), Value{"false"});
}

TEST(ForeignDelete, OtherResolutionsAreRefused) {
  const EntityRules rules = delete_rules(DeletePropagation::kDelete, ForeignDelete::kQuarantine);
  const RecordState state = quarantined(rules);
  Resolution wrong;
  wrong.kind = Resolution::Kind::kTakeSide;
  wrong.side = "erp";
  EXPECT_THROW(resolve(rules, 4, state, state.open_conflicts[0], wrong), ResolutionError);
  wrong.kind = Resolution::Kind::kValue;
  EXPECT_THROW(resolve(rules, 4, state, state.open_conflicts[0], wrong), ResolutionError);
}

// A steward's value stands against a last_writer_wins edit committed before the decision,
// and gives way to one committed after it.
TEST(StewardTime, LastWriterWinsComparesWithTheStewardsDecisionTime) {
  const EntityRules rules =
      RulesBuilder().field("segment", shared_field(OnConflict::kLastWriterWins)).build();
  RecordState state = StateBuilder()
                          .golden({{"segment", "smb"}})
                          .base("erp", {{"segment", "smb"}})
                          .base("crm", {{"segment", "public"}})
                          .build();
  state.open_conflicts.push_back(OpenConflict{9, "segment", ConflictKind::kConcurrentEdit, "crm"});
  Resolution take;
  take.kind = Resolution::Kind::kValue;
  take.values = {{"segment", "enterprise"}};
  take.steward = "ana";
  take.time_us = 1000;
  const RecordState resolved = resolve(rules, 2, state, state.open_conflicts[0], take).after;
  EXPECT_EQ(resolved.provenance.at("segment").time_us, 1000);

  // erp's edit committed at 900 (before the steward decided) arrives late: golden stays.
  const Reconciliation early =
      reconcile(rules, 2, resolved, upsert("erp", 5, {{"segment", "public"}}, 900));
  EXPECT_EQ(early.after.golden.at("segment"), Value{"enterprise"});
  EXPECT_EQ(early.plan.decisions.at(0).outcome, Outcome::kKeepGolden);
  // An edit committed at 1100 wins.
  const Reconciliation late =
      reconcile(rules, 2, resolved, upsert("erp", 6, {{"segment", "public"}}, 1100));
  EXPECT_EQ(late.after.golden.at("segment"), Value{"public"});
}

}  // namespace
}  // namespace mdsync::core
