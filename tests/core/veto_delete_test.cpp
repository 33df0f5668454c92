// veto_delete(): a side's delete guard refused a propagated delete. The record lives on, is
// restored where it was deleted, and a foreign_delete conflict names the reason; the steward
// then accepts the delete or dismisses.
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
using test::StateBuilder;

constexpr std::int64_t kVersion = 4;

// crm owns deletes, which propagate as deletes; erp has a delete guard (in the store).
EntityRules rules() {
  return RulesBuilder()
      .create({"erp", "crm"})
      .deletes("crm", DeletePropagation::kDelete, "")
      .field("name", owned_by("crm"))
      .build();
}

// After crm's delete: golden deleted, crm's row unlinked, erp still linked (its delete is
// queued and about to be vetoed).
RecordState deleted_by_crm() {
  const RecordState live = StateBuilder()
                               .golden({{"name", "Acme"}})
                               .base("erp", {{"name", "Acme"}})
                               .base("crm", {{"name", "Acme"}})
                               .build();
  return reconcile(rules(), kVersion, live, erase("crm", 7, 70)).after;
}

TEST(VetoDelete, RestoresTheRecordAndOpensAForeignDeleteWithTheReason) {
  const RecordState deleted = deleted_by_crm();
  ASSERT_TRUE(deleted.deleted);
  const Reconciliation r =
      veto_delete(rules(), kVersion, deleted, "erp", "crm", "the customer has unpaid invoices");
  EXPECT_EQ(r.plan.to_text(),
            "plan customer from erp:delete_guard under ruleset v4\n"
            "  *record*: restore  [customer.*record* owner=erp on_foreign_write=revert] erp "
            "refused the delete: the customer has unpaid invoices; the record is restored on "
            "crm\n"
            "  open foreign_delete on *record*: golden=\"Acme\"\n");
  ASSERT_EQ(r.plan.opened.size(), 1u);
  EXPECT_EQ(r.plan.opened[0].reason,
            "erp refused the delete: the customer has unpaid invoices; the record is kept until "
            "a steward accepts the delete or dismisses");
  EXPECT_FALSE(r.after.deleted);
  ASSERT_EQ(r.after.open_conflicts.size(), 1u);
  EXPECT_EQ(r.after.open_conflicts[0].side, "crm");
  EXPECT_EQ(r.after.open_conflicts[0].vetoed_by, "erp");
  EXPECT_EQ(r.plan.opened[0].vetoed_by, "erp");

  // The conflict does not keep crm's row gone: the restore is planned at once.
  const auto writes = plan_writebacks(rules(), r.after, {"erp", "crm"}, {}).writes;
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].side, "crm");
  EXPECT_EQ(writes[0].kind, RowWrite::Kind::kInsert);
  EXPECT_EQ(writes[0].values, (FieldValues{{"name", "Acme"}}));
}

TEST(VetoDelete, AcceptingTheDeleteLaterPropagatesItAgain) {
  Reconciliation vetoed =
      veto_delete(rules(), kVersion, deleted_by_crm(), "erp", "crm", "unpaid invoices");
  vetoed.after.open_conflicts[0].id = 31;
  Resolution take;
  take.kind = Resolution::Kind::kTakeSide;
  take.side = "crm";
  const Reconciliation r =
      resolve(rules(), kVersion, vetoed.after, vetoed.after.open_conflicts[0], take);
  EXPECT_TRUE(r.after.deleted);
  EXPECT_EQ(r.plan.closed, (std::vector<std::int64_t>{31}));
  const auto writes = plan_writebacks(rules(), r.after, {"erp", "crm"}, {}).writes;
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].side, "erp");
  EXPECT_EQ(writes[0].kind, RowWrite::Kind::kDelete);
}

TEST(VetoDelete, ASecondVetoWhileTheConflictIsOpenOnlyRestores) {
  Reconciliation first =
      veto_delete(rules(), kVersion, deleted_by_crm(), "erp", "crm", "unpaid invoices");
  first.after.deleted = true;  // a steward accepted, and erp vetoed again before closing
  const Reconciliation r =
      veto_delete(rules(), kVersion, first.after, "erp", "crm", "unpaid invoices");
  EXPECT_TRUE(r.plan.opened.empty());
  EXPECT_FALSE(r.after.deleted);
  EXPECT_EQ(r.after.open_conflicts.size(), 1u);
}

}  // namespace
}  // namespace mdsync::core
