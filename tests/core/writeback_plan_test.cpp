// plan_writebacks(): what each side must be sent so it holds the golden record, conditional
// on it still holding its base (no lost update), without writing anything twice.
#include "mdsync/core/writeback_plan.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace mdsync::core {
namespace {

using test::kNull;
using test::owned_by;
using test::RulesBuilder;
using test::shared_field;
using test::StateBuilder;

using InFlight = std::map<std::string, FieldValues>;

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
  EXPECT_TRUE(plan_writebacks(rules(), s, {"erp", "crm"}, {}).empty());
}

TEST(PlanWritebacks, StaleBaseGetsConditionalUpdate) {
  const RecordState s = StateBuilder()
                            .golden(kGolden)
                            .base("erp", with(kGolden, "name", "Acme Old"))
                            .base("crm", kGolden)
                            .build();
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"erp", "crm"}, {})),
            "erp update name=\"Acme\" | expected name=\"Acme Old\"\n");
}

TEST(PlanWritebacks, ComparesUnderTheFieldsRules) {
  FieldValues near = kGolden;
  near["email"] = "A@ACME.example";  // case_insensitive
  near["credit_limit"] = "100.00";   // numeric
  const RecordState s = StateBuilder().golden(kGolden).base("crm", near).build();
  EXPECT_TRUE(plan_writebacks(rules(), s, {"crm"}, {}).empty());
}

TEST(PlanWritebacks, NullAndEmptyDiffer) {
  const RecordState s = StateBuilder()
                            .golden(with(kGolden, "name", ""))
                            .base("crm", with(kGolden, "name", kNull))
                            .build();
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"crm"}, {})),
            "crm update name=\"\" | expected name=NULL\n");
}

TEST(PlanWritebacks, InFlightValueCountsAsHeld) {
  const RecordState s =
      StateBuilder().golden(kGolden).base("erp", with(kGolden, "name", "Acme Old")).build();
  const InFlight flight = {{"erp", {{"name", "Acme"}}}};
  EXPECT_TRUE(plan_writebacks(rules(), s, {"erp"}, flight).empty());
}

TEST(PlanWritebacks, NewerGoldenOverInFlightExpectsTheInFlightValue) {
  const RecordState s =
      StateBuilder().golden(kGolden).base("erp", with(kGolden, "name", "Acme v1")).build();
  const InFlight flight = {{"erp", {{"name", "Acme v2"}}}};
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"erp"}, flight)),
            "erp update name=\"Acme\" | expected name=\"Acme v2\"\n");
}

TEST(PlanWritebacks, UnlinkedSideGetsInsertOfEveryField) {
  FieldValues golden = with(kGolden, "city", kNull);
  golden.erase("street");  // a field golden holds no value for is inserted as NULL
  const RecordState s = StateBuilder().golden(golden).base("erp", kGolden).build();
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"crm"}, {})),
            "crm insert city=NULL credit_limit=\"100\" email=\"a@acme.example\" name=\"Acme\" "
            "street=NULL\n");
}

TEST(PlanWritebacks, InsertInFlightIsNotRepeated) {
  const RecordState s = StateBuilder().golden(kGolden).base("erp", kGolden).build();
  const InFlight flight = {{"crm", kGolden}};
  EXPECT_TRUE(plan_writebacks(rules(), s, {"erp", "crm"}, flight).empty());
  // golden moved on after the insert was queued: an update follows it
  const InFlight older = {{"crm", with(kGolden, "credit_limit", "90")}};
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"erp", "crm"}, older)),
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
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"crm"}, {})),
            "crm update name=\"Acme\" | expected name=\"Old\"\n");
}

TEST(PlanWritebacks, GroupsAreWrittenWhole) {
  const RecordState s =
      StateBuilder().golden(kGolden).base("crm", with(kGolden, "city", "Brugge")).build();
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"crm"}, {})),
            "crm update city=\"Gent\" street=\"Main 1\" | expected city=\"Brugge\" "
            "street=\"Main 1\"\n");
}

TEST(PlanWritebacks, DeletedGoldenDeletesLinkedSidesOnly) {
  const RecordState s =
      StateBuilder().golden(kGolden).deleted().base("crm", kGolden).base("shop", kGolden).build();
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"erp", "crm", "shop"}, {})),
            "crm delete \nshop delete \n");
}

TEST(PlanWritebacks, DetachedSidesGetNothing) {
  // erp deleted its row under a deactivation policy: it is not re-created there
  const RecordState s = StateBuilder()
                            .golden(with(kGolden, "name", "Deactivated"))
                            .base("crm", kGolden)
                            .detached("erp")
                            .build();
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"erp", "crm"}, {})),
            "crm update name=\"Deactivated\" | expected name=\"Acme\"\n");
}

TEST(PlanWritebacks, NoGoldenRecordNoWrites) {
  const RecordState s = StateBuilder().absent().base("crm", kGolden).build();
  EXPECT_TRUE(plan_writebacks(rules(), s, {"erp", "crm"}, {}).empty());
}

TEST(PlanWritebacks, OrderFollowsTheSidesArgument) {
  const RecordState s = StateBuilder()
                            .golden(kGolden)
                            .base("crm", with(kGolden, "name", "Old"))
                            .base("erp", with(kGolden, "credit_limit", "1"))
                            .build();
  EXPECT_EQ(writes_text(plan_writebacks(rules(), s, {"shop", "erp", "crm"}, {})),
            "shop insert city=\"Gent\" credit_limit=\"100\" email=\"a@acme.example\" "
            "name=\"Acme\" street=\"Main 1\"\n"
            "erp update credit_limit=\"100\" | expected credit_limit=\"1\"\n"
            "crm update name=\"Acme\" | expected name=\"Old\"\n");
  const auto reversed = plan_writebacks(rules(), s, {"crm", "erp"}, {});
  ASSERT_EQ(reversed.size(), 2u);
  EXPECT_EQ(reversed[0].side, "crm");
  EXPECT_EQ(reversed[1].side, "erp");
  // a side the caller does not list is not written, even if linked and stale
  EXPECT_EQ(plan_writebacks(rules(), s, {"erp"}, {}).size(), 1u);
}

}  // namespace
}  // namespace mdsync::core
