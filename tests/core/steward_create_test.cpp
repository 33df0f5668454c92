// create_allowed_by_steward(): a steward accepts a create the create list refused. The record
// is created from the side's row, and ownership still holds field by field.
#include <gtest/gtest.h>

#include "mdsync/core/reconciler.hpp"
#include "test_support.hpp"

namespace mdsync::core {
namespace {

using test::owned_by;
using test::RulesBuilder;
using test::shared_field;
using test::upsert;

TEST(StewardCreate, CreatesFromTheRowAndKeepsOwnership) {
  const EntityRules rules = RulesBuilder()
                                .create({"erp"})
                                .field("name", shared_field())
                                .field("credit_limit", owned_by("erp"), FieldType::kNumeric)
                                .build();
  const Change row = upsert("crm", 4, {{"name", "Globex"}, {"credit_limit", "900"}}, 40);

  RecordState refused;
  const Plan rejected = reconcile_in_place(rules, 2, refused, row);
  ASSERT_EQ(rejected.opened.size(), 1u);
  EXPECT_EQ(rejected.opened[0].kind, ConflictKind::kUnauthorizedCreate);
  EXPECT_FALSE(refused.exists);

  RecordState state;
  const Plan plan = create_allowed_by_steward(rules, 2, state, row, "alice");
  EXPECT_TRUE(state.exists);
  EXPECT_TRUE(plan.opened.empty());
  EXPECT_EQ(plan.source, "steward:alice");
  EXPECT_EQ(state.golden.at("name"), Value{"Globex"});
  EXPECT_EQ(state.golden.at("credit_limit"), Value{});  // erp's field: its default, not crm's
  EXPECT_EQ(state.bases.at("crm").at("credit_limit"), Value{"900"});
}

}  // namespace
}  // namespace mdsync::core
