// Delete policies per side: more than one side's delete counts, each propagating its own way
// (erp's archive deactivates the record elsewhere, crm's delete deletes it everywhere, where a
// delete guard may veto it); any other side's delete is a foreign delete.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mdsync/core/reconciler.hpp"
#include "mdsync/core/writeback_plan.hpp"
#include "test_support.hpp"

namespace mdsync::core {
namespace {

using test::erase;
using test::owned_by;
using test::RulesBuilder;
using test::state_text;
using test::StateBuilder;

constexpr std::int64_t kVersion = 6;
const std::vector<std::string> kSides = {"erp", "crm", "shop"};

// erp's delete (an archive) deactivates the record elsewhere; crm's delete propagates as a
// delete; shop's delete counts for nothing.
EntityRules rules(ForeignDelete on_foreign = ForeignDelete::kRestore) {
  EntityRules r = RulesBuilder()
                      .priority({"erp", "crm", "shop"})
                      .create({"erp", "crm"})
                      .deletes("erp", DeletePropagation::kDeactivate, "active")
                      .also_deletes("crm", DeletePropagation::kDelete)
                      .field("name", owned_by("crm"))
                      .field("active", owned_by("erp"), FieldType::kBoolean)
                      .build();
  r.delete_policy.on_foreign_delete = on_foreign;
  return r;
}

RecordState live() {
  const FieldValues row = {{"name", "Acme"}, {"active", "true"}};
  return StateBuilder().golden(row).base("erp", row).base("crm", row).base("shop", row).build();
}

std::string writes_text(const WritebackPlan& plan) {
  std::string s;
  for (const RowWrite& w : plan.writes) {
    s += w.side + " " + to_string(w.kind) + " {" + test::values_text(w.values) + "}";
    if (!w.expected.empty()) s += " expecting {" + test::values_text(w.expected) + "}";
    s += "\n";
  }
  for (std::int64_t id : plan.cancel) s += "withdraw #" + std::to_string(id) + "\n";
  return s;
}

TEST(SideDelete, EachListedSidesDeletePropagatesItsOwnWay) {
  const Reconciliation erp = reconcile(rules(), kVersion, live(), erase("erp", 1, 10));
  EXPECT_EQ(erp.plan.to_text(),
            "plan customer from erp#1 under ruleset v6\n"
            "  active: delete golden \"true\" -> \"false\"  [customer.active owner=erp "
            "on_foreign_write=revert] erp owns deletes; other sides are deactivated (active = "
            "false)\n"
            "  unlink source row\n");
  EXPECT_EQ(writes_text(plan_writebacks(rules(), erp.after, kSides, {})),
            "crm update {active=\"false\"} expecting {active=\"true\"}\n"
            "shop update {active=\"false\"} expecting {active=\"true\"}\n");

  const Reconciliation crm = reconcile(rules(), kVersion, live(), erase("crm", 1, 10));
  EXPECT_EQ(crm.plan.to_text(),
            "plan customer from crm#1 under ruleset v6\n"
            "  *record*: delete  [customer.*record* owner=erp on_foreign_write=revert] crm owns "
            "deletes; the delete propagates to every side\n"
            "  unlink source row\n");
  EXPECT_EQ(writes_text(plan_writebacks(rules(), crm.after, kSides, {})),
            "erp delete {}\n"
            "shop delete {}\n");

  const Reconciliation shop = reconcile(rules(), kVersion, live(), erase("shop", 1, 10));
  EXPECT_EQ(shop.plan.to_text(),
            "plan customer from shop#1 under ruleset v6\n"
            "  *record*: restore  [customer.*record* owner=erp on_foreign_write=revert] erp and "
            "crm own deletes; the row is re-created on shop\n"
            "  unlink source row\n");
}

// Both sides delete (their deletes race): the second is a delete of a deleted record, and the
// delete queued for it is withdrawn; nothing is restored.
TEST(SideDelete, TwoAuthoritativeDeletesRacingEndDeleted) {
  RecordState state = live();
  reconcile_in_place(rules(), kVersion, state, erase("crm", 1, 10));
  const std::vector<PendingWrite> queued = {{1, "erp", RowWrite::Kind::kDelete, {}, {}, false},
                                            {2, "shop", RowWrite::Kind::kDelete, {}, {}, false}};
  const Plan second = reconcile_in_place(rules(), kVersion, state, erase("erp", 1, 11));
  ASSERT_EQ(second.decisions.size(), 1u);
  EXPECT_EQ(second.decisions[0].outcome, Outcome::kNoChange);
  EXPECT_TRUE(state.deleted);
  EXPECT_EQ(writes_text(plan_writebacks(rules(), state, kSides, queued)), "withdraw #1\n");
}

// The same race the other way: erp's archive is reconciled first (its deactivation of crm is
// queued), then crm's delete, which counts too: the record is deleted, the queued
// deactivation withdrawn, and erp's archived row (detached) gets no delete.
TEST(SideDelete, ADeleteWhileAnArchiveIsPendingDeletesTheRecord) {
  RecordState state = live();
  reconcile_in_place(rules(), kVersion, state, erase("erp", 1, 10));
  const std::vector<PendingWrite> queued = {
      {1, "crm", RowWrite::Kind::kUpdate, {{"active", "false"}}, {}, false},
      {2, "shop", RowWrite::Kind::kUpdate, {{"active", "false"}}, {}, false}};
  const Plan plan = reconcile_in_place(rules(), kVersion, state, erase("crm", 1, 11));
  EXPECT_EQ(plan.decisions[0].outcome, Outcome::kDelete);
  EXPECT_EQ(state_text(state),
            "exists=1 deleted=1\n"
            "golden: active=\"false\" name=\"Acme\"\n"
            "provenance active: erp@10\n"
            "base shop: active=\"true\" name=\"Acme\"\n"
            "detached erp\n");
  EXPECT_EQ(writes_text(plan_writebacks(rules(), state, kSides, queued)),
            "shop delete {}\n"
            "withdraw #1\n"
            "withdraw #2\n");
}

// A foreign delete under the other policy: a side whose delete does not count (shop), or a
// listed side once the record is held (a vetoed delete): accepting it propagates as the
// deleting side's own rule says, else as the first listed side's.
TEST(SideDelete, AcceptingADeletePropagatesAsTheDeletingSidesRule) {
  // crm's delete was vetoed by erp's guard: --take crm deletes everywhere (crm's rule), not a
  // deactivation (erp's, first in priority).
  RecordState deleted = live();
  reconcile_in_place(rules(), kVersion, deleted, erase("crm", 1, 10));
  Reconciliation vetoed =
      veto_delete(rules(), kVersion, deleted, "erp", "crm", "the customer has unpaid invoices");
  vetoed.after.open_conflicts[0].id = 3;
  Resolution take_crm;
  take_crm.side = "crm";
  take_crm.steward = "alice";
  const Reconciliation accepted =
      resolve(rules(), kVersion, vetoed.after, vetoed.after.open_conflicts[0], take_crm);
  EXPECT_TRUE(accepted.after.deleted);
  EXPECT_EQ(accepted.after.golden.at("active"), Value{"true"});

  // shop's quarantined delete: --take shop propagates as erp's rule (the first listed).
  RecordState held = live();
  reconcile_in_place(rules(ForeignDelete::kQuarantine), kVersion, held, erase("shop", 1, 10));
  ASSERT_EQ(held.open_conflicts.size(), 1u);
  held.open_conflicts[0].id = 4;
  Resolution take_shop;
  take_shop.side = "shop";
  take_shop.steward = "alice";
  const Reconciliation shop =
      resolve(rules(ForeignDelete::kQuarantine), kVersion, held, held.open_conflicts[0], take_shop);
  EXPECT_EQ(shop.plan.to_text(),
            "plan customer from steward:alice under ruleset v6\n"
            "  active: resolve golden \"true\" -> \"false\"  [customer.active owner=erp "
            "on_foreign_write=revert] alice accepted shop's delete; other sides are deactivated\n"
            "  close conflict 4\n");
  EXPECT_FALSE(shop.after.deleted);
}

// The one-owner form is the per-side form with one side.
TEST(SideDelete, OneOwnerIsOneListedSide) {
  const EntityRules one = RulesBuilder().deletes("erp").field("name", owned_by("erp")).build();
  ASSERT_EQ(one.delete_policy.sides.size(), 1u);
  EXPECT_EQ(one.delete_policy.owners_text(), "erp owns deletes");
  EXPECT_EQ(rules().delete_policy.owners_text(), "erp and crm own deletes");
  EXPECT_EQ(RulesBuilder().deletes("").build().delete_policy.owners_text(), "no side owns deletes");
}

}  // namespace
}  // namespace mdsync::core
