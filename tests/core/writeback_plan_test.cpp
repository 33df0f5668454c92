// plan_writebacks(): what each side must be sent so it holds the golden record, conditional
// on it still holding its base (no lost update), without writing anything twice.
#include "mdsync/core/writeback_plan.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "test_support.hpp"

namespace mdsync::core {
namespace {

using test::kNull;
using test::owned_by;
using test::RulesBuilder;
using test::shared_field;
using test::StateBuilder;

// Queued writes, each `side kind values`, ids in the order given.
std::vector<PendingWrite> queued(
    std::initializer_list<std::tuple<std::string, RowWrite::Kind, FieldValues>> writes) {
  std::vector<PendingWrite> out;
  std::int64_t id = 0;
  for (const auto& [side, kind, values] : writes)
    out.push_back({++id, side, kind, values, {}, false});
  return out;
}
constexpr auto kIns = RowWrite::Kind::kInsert;
constexpr auto kUpd = RowWrite::Kind::kUpdate;
constexpr auto kDel = RowWrite::Kind::kDelete;

std::string ids_text(const std::vector<std::int64_t>& ids) {
  std::string s;
  for (std::int64_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

EntityRules rules() {
  return RulesBuilder()
      .field("name", owned_by("crm"))
      .field("email", test::compared(owned_by("crm"), Compare::kCaseInsensitive))
      .field("credit_limit", owned_by("erp"), FieldType::kNumeric)
      .group("address", {{"street", FieldType::kText}, {"city", FieldType::kText}}, shared_field())
      .build();
}

const FieldValues kGolden = {{"name", "Acme"},
                             {"email", "a@acme.example"},
                             {"credit_limit", "100"},
                             {"street", "Main 1"},
                             {"city", "Gent"}};

FieldValues with(FieldValues v, const std::string& field, Value value) {
  v[field] = std::move(value);
  return v;
}

// One line per write: "side kind values | expected".
std::string writes_text(const std::vector<RowWrite>& writes) {
  std::string s;
  for (const RowWrite& w : writes) {
    s += w.side + " " + to_string(w.kind) + " " + test::values_text(w.values);
    if (!w.expected.empty()) s += " | expected " + test::values_text(w.expected);
    s += "\n";
  }
  return s;
}

TEST(PlanWritebacks, SidesHoldingGoldenGetNothing) {
  const RecordState s =
      StateBuilder().golden(kGolden).base("erp", kGolden).base("crm", kGolden).build();
  EXPECT_TRUE(plan_writebacks(rules(), s, {"erp", "crm"}, {}).writes.empty());
}

TEST(PlanWritebacks, StaleBaseGetsConditionalUpdate) {
  const RecordState s = StateBuilder()
                            .golden(kGolden)
                            .base("erp", with(kGolden, "name", "Acme Old"))
                            .base("crm", kGolden)
                            .build();
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"erp", "crm"}, {}).writes),
            "erp update name=\"Acme\" | expected name=\"Acme Old\"\n");
}

TEST(PlanWritebacks, ComparesUnderTheFieldsRules) {
  FieldValues near = kGolden;
  near["email"] = "A@ACME.example";  // case_insensitive
  near["credit_limit"] = "100.00";   // numeric
  const RecordState s = StateBuilder().golden(kGolden).base("crm", near).build();
  EXPECT_TRUE(plan_writebacks(rules(), s, {"crm"}, {}).writes.empty());
}

TEST(PlanWritebacks, NullAndEmptyDiffer) {
  const RecordState s = StateBuilder()
                            .golden(with(kGolden, "name", ""))
                            .base("crm", with(kGolden, "name", kNull))
                            .build();
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"crm"}, {}).writes),
            "crm update name=\"\" | expected name=NULL\n");
}

TEST(PlanWritebacks, InFlightValueCountsAsHeld) {
  const RecordState s =
      StateBuilder().golden(kGolden).base("erp", with(kGolden, "name", "Acme Old")).build();
  const auto flight = queued({{"erp", kUpd, {{"name", "Acme"}}}});
  EXPECT_TRUE(plan_writebacks(rules(), s, {"erp"}, flight).writes.empty());
  EXPECT_TRUE(plan_writebacks(rules(), s, {"erp"}, flight).cancel.empty());
}

TEST(PlanWritebacks, NewerGoldenOverInFlightExpectsTheInFlightValue) {
  const RecordState s =
      StateBuilder().golden(kGolden).base("erp", with(kGolden, "name", "Acme v1")).build();
  const auto flight = queued({{"erp", kUpd, {{"name", "Acme v2"}}}});
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"erp"}, flight).writes),
            "erp update name=\"Acme\" | expected name=\"Acme v2\"\n");
}

TEST(PlanWritebacks, UnlinkedSideGetsInsertOfEveryField) {
  FieldValues golden = with(kGolden, "city", kNull);
  golden.erase("street");  // a field golden holds no value for is inserted as NULL
  const RecordState s = StateBuilder().golden(golden).base("erp", kGolden).build();
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"crm"}, {}).writes),
            "crm insert city=NULL credit_limit=\"100\" email=\"a@acme.example\" name=\"Acme\" "
            "street=NULL\n");
}

TEST(PlanWritebacks, InsertInFlightIsNotRepeated) {
  const RecordState s = StateBuilder().golden(kGolden).base("erp", kGolden).build();
  const auto flight = queued({{"crm", kIns, kGolden}});
  EXPECT_TRUE(plan_writebacks(rules(), s, {"erp", "crm"}, flight).writes.empty());
  // golden moved on after the insert was queued: an update follows it
  const auto older = queued({{"crm", kIns, with(kGolden, "credit_limit", "90")}});
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"erp", "crm"}, older).writes),
            "crm update credit_limit=\"100\" | expected credit_limit=\"90\"\n");
}

TEST(PlanWritebacks, UnitsHeldByOpenConflictAreNotWritten) {
  FieldValues stale = kGolden;
  stale["name"] = "Old";
  stale["city"] = "Brugge";
  const RecordState s = StateBuilder()
                            .golden(kGolden)
                            .base("crm", stale)
                            .conflict(3, "address", ConflictKind::kConcurrentEdit)
                            .build();
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"crm"}, {}).writes),
            "crm update name=\"Acme\" | expected name=\"Old\"\n");
}

TEST(PlanWritebacks, GroupsAreWrittenWhole) {
  const RecordState s =
      StateBuilder().golden(kGolden).base("crm", with(kGolden, "city", "Brugge")).build();
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"crm"}, {}).writes),
            "crm update city=\"Gent\" street=\"Main 1\" | expected city=\"Brugge\" "
            "street=\"Main 1\"\n");
}

TEST(PlanWritebacks, DeletedGoldenDeletesLinkedSidesOnly) {
  const RecordState s =
      StateBuilder().golden(kGolden).deleted().base("crm", kGolden).base("shop", kGolden).build();
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"erp", "crm", "shop"}, {}).writes),
            "crm delete \nshop delete \n");
}

TEST(PlanWritebacks, DetachedSidesGetNothing) {
  // erp deleted its row under a deactivation policy: it is not re-created there
  const RecordState s = StateBuilder()
                            .golden(with(kGolden, "name", "Deactivated"))
                            .base("crm", kGolden)
                            .detached("erp")
                            .build();
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"erp", "crm"}, {}).writes),
            "crm update name=\"Deactivated\" | expected name=\"Acme\"\n");
}

TEST(PlanWritebacks, NoGoldenRecordNoWrites) {
  const RecordState s = StateBuilder().absent().base("crm", kGolden).build();
  EXPECT_TRUE(plan_writebacks(rules(), s, {"erp", "crm"}, {}).writes.empty());
}

TEST(PlanWritebacks, OrderFollowsTheSidesArgument) {
  const RecordState s = StateBuilder()
                            .golden(kGolden)
                            .base("crm", with(kGolden, "name", "Old"))
                            .base("erp", with(kGolden, "credit_limit", "1"))
                            .build();
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"shop", "erp", "crm"}, {}).writes),
            "shop insert city=\"Gent\" credit_limit=\"100\" email=\"a@acme.example\" "
            "name=\"Acme\" street=\"Main 1\"\n"
            "erp update credit_limit=\"100\" | expected credit_limit=\"1\"\n"
            "crm update name=\"Acme\" | expected name=\"Old\"\n");
  const auto reversed = plan_writebacks(rules(), s, {"crm", "erp"}, {}).writes;
  ASSERT_EQ(reversed.size(), 2u);
  EXPECT_EQ(reversed[0].side, "crm");
  EXPECT_EQ(reversed[1].side, "erp");
  // a side the caller does not list is not written, even if linked and stale
  EXPECT_EQ(plan_writebacks(rules(), s, {"erp"}, {}).writes.size(), 1u);
}

// Issue 10.1: a side's row was deleted while an update to it was queued (the side was down). The
// row is gone, so the update is withdrawn, and the restore is an insert, not another update.
TEST(PlanWritebacks, QueuedUpdateOfARowThatIsGoneIsWithdrawnAndTheRowInserted) {
  const RecordState s = StateBuilder().golden(kGolden).base("erp", kGolden).build();
  const auto plan =
      plan_writebacks(rules(), s, {"erp", "crm"}, queued({{"crm", kUpd, {{"name", "Acme"}}}}));
  EXPECT_EQ(ids_text(plan.cancel), "1");
  EXPECT_EQ(writes_text(plan.writes),
            "crm insert city=\"Gent\" credit_limit=\"100\" email=\"a@acme.example\" "
            "name=\"Acme\" street=\"Main 1\"\n");
}

// Issue 10.2: the delete owner deleted the record while an insert into another side was queued
// (that side was down): the insert is withdrawn, nothing is written there.
TEST(PlanWritebacks, DeletedRecordWithdrawsQueuedInsertsAndUpdates) {
  const RecordState s = StateBuilder().golden(kGolden).deleted().base("shop", kGolden).build();
  const auto plan = plan_writebacks(rules(), s, {"erp", "crm", "shop"},
                                    queued({{"crm", kIns, kGolden},
                                            {"crm", kUpd, {{"name", "Acme 2"}}},
                                            {"shop", kUpd, {{"name", "Acme 2"}}}}));
  EXPECT_EQ(ids_text(plan.cancel), "1 2 3");
  EXPECT_EQ(writes_text(plan.writes), "shop delete \n");
}

TEST(PlanWritebacks, QueuedDeleteIsNotRepeatedAndIsWithdrawnWhenTheRecordLivesOn) {
  const RecordState deleted = StateBuilder().golden(kGolden).deleted().base("crm", kGolden).build();
  const auto delete_queued = queued({{"crm", kDel, {}}});
  const auto once = plan_writebacks(rules(), deleted, {"crm"}, delete_queued);
  EXPECT_TRUE(once.writes.empty());
  EXPECT_TRUE(once.cancel.empty());
  // a vetoed delete: the record is no longer deleted
  const RecordState restored = StateBuilder().golden(kGolden).base("crm", kGolden).build();
  const auto vetoed = plan_writebacks(rules(), restored, {"crm"}, delete_queued);
  EXPECT_EQ(ids_text(vetoed.cancel), "1");
  EXPECT_TRUE(vetoed.writes.empty());
}

// The side got a linked row another way (a match key, a steward's --link): a queued insert and
// the updates planned on top of it are withdrawn; the row is updated from its own base.
TEST(PlanWritebacks, InsertIntoASideThatIsLinkedAgainIsWithdrawn) {
  const RecordState s =
      StateBuilder().golden(kGolden).base("crm", with(kGolden, "name", "Acme Ltd")).build();
  const auto plan = plan_writebacks(
      rules(), s, {"crm"},
      queued({{"crm", kIns, with(kGolden, "name", "Old")}, {"crm", kUpd, {{"name", "Acme"}}}}));
  EXPECT_EQ(ids_text(plan.cancel), "1 2");
  EXPECT_EQ(writes_text(plan.writes), "crm update name=\"Acme\" | expected name=\"Acme Ltd\"\n");
}

TEST(PlanWritebacks, DetachedSideHasItsQueuedWritesWithdrawn) {
  const RecordState s = StateBuilder().golden(kGolden).base("crm", kGolden).detached("erp").build();
  const auto plan = plan_writebacks(rules(), s, {"erp", "crm"},
                                    queued({{"erp", kUpd, {{"name", "X"}}}, {"crm", kUpd, {}}}));
  EXPECT_EQ(ids_text(plan.cancel), "1");
  EXPECT_TRUE(plan.writes.empty());
}

// A golden value the side cannot hold (an invalid_value conflict opened for that side holds the
// unit): an insert into that side leaves the unit out, instead of failing, being planned again
// and failing again for ever; the unit follows once the steward decides.
TEST(PlanWritebacks, InsertLeavesOutAUnitTheSideCannotHold) {
  RecordState s = StateBuilder().golden(kGolden).base("crm", kGolden).build();
  s.open_conflicts.push_back(OpenConflict{4, "address", ConflictKind::kInvalidValue, "erp"});
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"erp"}, {}).writes),
            "erp insert credit_limit=\"100\" email=\"a@acme.example\" name=\"Acme\"\n");
  // Held for another side, the unit is inserted: this side can hold it.
  s.open_conflicts.back().side = "shop";
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"erp"}, {}).writes),
            "erp insert city=\"Gent\" credit_limit=\"100\" email=\"a@acme.example\" "
            "name=\"Acme\" street=\"Main 1\"\n");
}

// A unit the side's database refused (a write_refused conflict for that side) is held the same
// way: an insert leaves it out, so the refused value is not tried again until a steward decides.
TEST(PlanWritebacks, InsertLeavesOutAUnitTheSidesDatabaseRefused) {
  RecordState s = StateBuilder().golden(kGolden).base("crm", kGolden).build();
  s.open_conflicts.push_back(OpenConflict{5, "address", ConflictKind::kWriteRefused, "erp"});
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"erp"}, {}).writes),
            "erp insert credit_limit=\"100\" email=\"a@acme.example\" name=\"Acme\"\n");
}

// A queued insert already withdrawn (its side has yet to confirm) will not apply, so an update
// queued after it is withdrawn too, and the row that got linked is updated from its own base.
TEST(PlanWritebacks, UpdatesQueuedAfterAWithdrawnInsertAreWithdrawn) {
  const RecordState s =
      StateBuilder().golden(kGolden).base("crm", with(kGolden, "name", "Acme Ltd")).build();
  auto pending =
      queued({{"crm", kIns, with(kGolden, "name", "Old")}, {"crm", kUpd, {{"name", "Acme"}}}});
  pending[0].withdrawn = true;
  const auto plan = plan_writebacks(rules(), s, {"crm"}, pending);
  EXPECT_EQ(ids_text(plan.cancel), "2");
  EXPECT_EQ(writes_text(plan.writes), "crm update name=\"Acme\" | expected name=\"Acme Ltd\"\n");
}

}  // namespace
}  // namespace mdsync::core
