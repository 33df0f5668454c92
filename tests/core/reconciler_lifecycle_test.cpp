// reconcile(): a record's first and last moments (creates, deletes), and two properties of
// the whole function: determinism and idempotence.
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "mdsync/core/reconciler.hpp"
#include "mdsync/core/writeback_plan.hpp"
#include "test_support.hpp"

namespace mdsync::core {
namespace {

using test::defaulting;
using test::erase;
using test::kNull;
using test::owned_by;
using test::RulesBuilder;
using test::shared_field;
using test::state_text;
using test::StateBuilder;
using test::upsert;

constexpr std::int64_t kVersion = 3;
const std::vector<std::string> kSides = {"erp", "crm", "shop"};

// customer: crm owns name; erp owns credit_limit (default 0, min 0) and status (default
// "prospect", quarantined on a foreign write) and vat (no default); segment is shared.
// erp and crm may create; shop may not.
RulesBuilder customer_rules() {
  Validation non_negative;
  non_negative.min = "0";
  Validation name_required;
  name_required.required = true;
  RulesBuilder b;
  b.priority({"erp", "crm", "shop"})
      .create({"erp", "crm"})
      .deletes("erp")
      .field("name", test::validated(owned_by("crm"), name_required))
      .field("credit_limit", test::validated(defaulting(owned_by("erp"), "0"), non_negative),
             FieldType::kNumeric)
      .field("segment", shared_field())
      .field("status", defaulting(owned_by("erp", ForeignWrite::kQuarantine), "prospect"))
      .field("vat", owned_by("erp"));
  return b;
}

std::string plan_from(const std::string& source, const std::string& lines) {
  return "plan customer from " + source + " under ruleset v3\n" + lines;
}

const RecordState kNoRecord = StateBuilder().absent().build();

// A new row carries every mapped field (each side maps every field of the entity): this one
// agrees with the defaults, apart from `overrides`.
FieldValues new_row(const FieldValues& overrides) {
  FieldValues row = {{"name", "Acme"},
                     {"credit_limit", "0"},
                     {"segment", "smb"},
                     {"status", "prospect"},
                     {"vat", kNull}};
  for (const auto& [field, value] : overrides) row[field] = value;
  return row;
}

// ---- creates --------------------------------------------------------------------------

TEST(Create, AllowedSideCreatesGoldenWithDefaultsForOtherOwners) {
  const EntityRules rules = customer_rules().build();
  const Reconciliation r = reconcile(rules, kVersion, kNoRecord,
                                     upsert("crm", 1,
                                            {{"name", "Acme"},
                                             {"credit_limit", "0"},
                                             {"segment", "smb"},
                                             {"status", "prospect"},
                                             {"vat", kNull}},
                                            1000));
  EXPECT_EQ(r.plan.to_text(),
            plan_from("crm#1",
                      "  name: create golden NULL -> \"Acme\"  [customer.name owner=crm "
                      "on_foreign_write=revert] created by crm (owner)\n"
                      "  credit_limit: create golden NULL -> \"0\"  [customer.credit_limit "
                      "owner=erp on_foreign_write=revert] erp owns credit_limit; the default "
                      "applies\n"
                      "  segment: create golden NULL -> \"smb\"  [customer.segment owner=shared "
                      "on_conflict=quarantine] created by crm (shared)\n"
                      "  status: create golden NULL -> \"prospect\"  [customer.status owner=erp "
                      "on_foreign_write=quarantine] erp owns status; the default applies\n"
                      "  vat: create proposed NULL, golden stays NULL  [customer.vat owner=erp "
                      "on_foreign_write=revert] erp owns vat; the default applies\n"));
  EXPECT_EQ(state_text(r.after),
            "exists=1 deleted=0\n"
            "golden: credit_limit=\"0\" name=\"Acme\" segment=\"smb\" status=\"prospect\" "
            "vat=NULL\n"
            "provenance credit_limit: erp@0\n"
            "provenance name: crm@1000\n"
            "provenance segment: crm@1000\n"
            "provenance status: erp@0\n"
            "provenance vat: erp@0\n"
            "base crm: credit_limit=\"0\" name=\"Acme\" segment=\"smb\" status=\"prospect\" "
            "vat=NULL\n");
}

TEST(Create, ValueForAnotherOwnersFieldIsAForeignWriteReverted) {
  const EntityRules rules = customer_rules().build();
  const Reconciliation r = reconcile(rules, kVersion, kNoRecord,
                                     upsert("crm", 1,
                                            {{"name", "Acme"},
                                             {"credit_limit", "500"},
                                             {"segment", "smb"},
                                             {"status", "prospect"},
                                             {"vat", "BE0123"}},
                                            1000));
  ASSERT_EQ(r.plan.decisions.size(), 5u);
  EXPECT_EQ(r.plan.decisions[1].outcome, Outcome::kRevert);
  EXPECT_EQ(r.plan.decisions[4].outcome, Outcome::kRevert);
  EXPECT_EQ(r.after.golden.at("credit_limit"), Value{"0"});  // the default, not crm's 500
  EXPECT_EQ(r.after.golden.at("vat"), kNull);                // no default: NULL
  EXPECT_EQ(r.after.bases.at("crm").at("credit_limit"), Value{"500"});
  EXPECT_TRUE(r.plan.opened.empty());
  // and the revert is written back to crm, conditional on crm still holding 500
  const auto writes = plan_writebacks(rules, r.after, {"crm"}, {}).writes;
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].kind, RowWrite::Kind::kUpdate);
  EXPECT_EQ(writes[0].values, (FieldValues{{"credit_limit", "0"}, {"vat", kNull}}));
  EXPECT_EQ(writes[0].expected, (FieldValues{{"credit_limit", "500"}, {"vat", "BE0123"}}));
}

TEST(Create, ForeignWriteQuarantinedAtCreate) {
  const EntityRules rules = customer_rules().build();
  const Reconciliation r = reconcile(rules, kVersion, kNoRecord,
                                     upsert("crm", 1, new_row({{"status", "active"}}), 1000));
  ASSERT_EQ(r.plan.opened.size(), 1u);
  EXPECT_EQ(r.plan.opened[0].kind, ConflictKind::kForeignWrite);
  EXPECT_EQ(r.plan.opened[0].unit, "status");
  EXPECT_EQ(r.plan.opened[0].values.at("crm"), (FieldValues{{"status", "active"}}));
  EXPECT_EQ(r.plan.opened[0].values.at("erp"), (FieldValues{{"status", "prospect"}}));
  EXPECT_EQ(r.after.golden.at("status"), Value{"prospect"});
  ASSERT_EQ(r.after.open_conflicts.size(), 1u);
  EXPECT_EQ(r.after.open_conflicts[0].unit, "status");
}

TEST(Create, OwnerCreatesWithItsOwnValues) {
  const EntityRules rules = customer_rules().build();
  const Reconciliation r = reconcile(rules, kVersion, kNoRecord,
                                     upsert("erp", 4,
                                            {{"name", "Acme"},
                                             {"credit_limit", "1500.50"},
                                             {"segment", kNull},
                                             {"status", "active"},
                                             {"vat", "BE1"}},
                                            9));
  EXPECT_EQ(r.after.golden.at("credit_limit"), Value{"1500.50"});
  EXPECT_EQ(r.after.golden.at("status"), Value{"active"});  // no default over the owner's value
  EXPECT_EQ(r.after.golden.at("vat"), Value{"BE1"});
  EXPECT_EQ(r.after.golden.at("segment"), kNull);  // shared: erp's NULL
  EXPECT_EQ(r.after.golden.at("name"), kNull);     // crm owns it: erp's "Acme" is reverted
  EXPECT_EQ(r.after.provenance.at("credit_limit").side, "erp");
  EXPECT_EQ(r.after.provenance.at("credit_limit").time_us, 9);
  ASSERT_EQ(r.plan.decisions.size(), 5u);
  EXPECT_EQ(r.plan.decisions[0].outcome, Outcome::kRevert);
  EXPECT_EQ(r.plan.decisions[1].outcome, Outcome::kCreate);
  EXPECT_TRUE(r.plan.opened.empty());
}

TEST(Create, InvalidValueOpensInvalidValueConflict) {
  const EntityRules rules = customer_rules().build();
  const Reconciliation r =
      reconcile(rules, kVersion, kNoRecord, upsert("crm", 1, new_row({{"name", ""}}), 5));
  ASSERT_EQ(r.plan.opened.size(), 1u);
  EXPECT_EQ(r.plan.opened[0].kind, ConflictKind::kInvalidValue);
  EXPECT_EQ(r.plan.opened[0].unit, "name");
  EXPECT_EQ(r.after.golden.at("name"), kNull);
  EXPECT_EQ(r.after.golden.at("segment"), Value{"smb"});
  EXPECT_EQ(r.plan.decisions[0].outcome, Outcome::kInvalid);
  EXPECT_TRUE(r.after.exists);
}

TEST(Create, SideNotInCreateIsUnauthorized) {
  const EntityRules rules = customer_rules().build();
  const Reconciliation r = reconcile(rules, kVersion, kNoRecord,
                                     upsert("shop", 1, {{"name", "X"}, {"segment", "b2c"}}, 5));
  EXPECT_EQ(r.plan.to_text(),
            plan_from("shop#1",
                      "  *record*: reject_create proposed {name=\"X\", segment=\"b2c\"}, golden "
                      "stays {}  [customer.*record* owner=erp on_foreign_write=revert] shop is not "
                      "in customer.create\n"
                      "  open unauthorized_create on *record*: shop={name=\"X\", "
                      "segment=\"b2c\"}\n"));
  EXPECT_EQ(state_text(r.after),
            "exists=0 deleted=0\n"
            "golden: \n"
            "conflict 0 unauthorized_create on *record*\n");
  EXPECT_TRUE(plan_writebacks(rules, r.after, kSides, {}).writes.empty());
}

// ---- deletes --------------------------------------------------------------------------

RecordState live_record() {
  return StateBuilder()
      .golden({{"name", "Acme"}, {"active", "true"}})
      .base("erp", {{"name", "Acme"}, {"active", "true"}})
      .base("crm", {{"name", "Acme"}, {"active", "true"}})
      .build();
}

EntityRules deletable(DeletePropagation propagate, std::string owner = "erp") {
  return RulesBuilder()
      .create({"erp", "crm"})
      .deletes(std::move(owner), propagate,
               propagate == DeletePropagation::kDeactivate ? "active" : "")
      .field("name", owned_by("crm"))
      .field("active", owned_by("erp"), FieldType::kBoolean)
      .build();
}

TEST(Delete, OwnerDeletePropagates) {
  const EntityRules rules = deletable(DeletePropagation::kDelete);
  const Reconciliation r = reconcile(rules, kVersion, live_record(), erase("erp", 9, 50));
  EXPECT_EQ(r.plan.to_text(),
            plan_from("erp#9",
                      "  *record*: delete  [customer.*record* owner=erp on_foreign_write=revert] "
                      "erp owns deletes; the delete propagates to every side\n"
                      "  unlink source row\n"));
  EXPECT_TRUE(r.after.deleted);
  EXPECT_EQ(r.after.bases.count("erp"), 0u);
  EXPECT_EQ(r.after.bases.count("crm"), 1u);
  EXPECT_EQ(r.after.golden, live_record().golden);
}

TEST(Delete, OwnerDeleteDeactivatesOtherSides) {
  const EntityRules rules = deletable(DeletePropagation::kDeactivate);
  const Reconciliation r = reconcile(rules, kVersion, live_record(), erase("erp", 9, 50));
  EXPECT_EQ(r.plan.to_text(),
            plan_from("erp#9",
                      "  active: delete golden \"true\" -> \"false\"  [customer.active owner=erp "
                      "on_foreign_write=revert] erp owns deletes; other sides are deactivated "
                      "(active = false)\n"
                      "  unlink source row\n"));
  EXPECT_EQ(state_text(r.after),
            "exists=1 deleted=0\n"
            "golden: active=\"false\" name=\"Acme\"\n"
            "provenance active: erp@50\n"
            "base crm: active=\"true\" name=\"Acme\"\n"
            "detached erp\n");
}

TEST(Delete, ForeignDeleteIsRestored) {
  const EntityRules rules = deletable(DeletePropagation::kDelete);
  const Reconciliation r = reconcile(rules, kVersion, live_record(), erase("crm", 4, 50));
  EXPECT_EQ(r.plan.to_text(),
            plan_from("crm#4",
                      "  *record*: restore  [customer.*record* owner=erp on_foreign_write=revert] "
                      "erp owns deletes; the row is re-created on crm\n"
                      "  unlink source row\n"));
  EXPECT_TRUE(r.plan.unlink_source);
  EXPECT_FALSE(r.after.deleted);
  EXPECT_EQ(r.after.bases.count("crm"), 0u);
  EXPECT_EQ(r.after.golden, live_record().golden);
  // the restore is an insert of the whole golden record on crm
  const auto writes = plan_writebacks(rules, r.after, {"erp", "crm"}, {}).writes;
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].side, "crm");
  EXPECT_EQ(writes[0].kind, RowWrite::Kind::kInsert);
  EXPECT_EQ(writes[0].values, live_record().golden);
}

TEST(Delete, NoDeleteOwnerRestoresEveryDelete) {
  const EntityRules rules = deletable(DeletePropagation::kDelete, "");
  const Reconciliation r = reconcile(rules, kVersion, live_record(), erase("erp", 4, 50));
  ASSERT_EQ(r.plan.decisions.size(), 1u);
  EXPECT_EQ(r.plan.decisions[0].outcome, Outcome::kRestore);
  EXPECT_EQ(r.plan.decisions[0].reason(), "no side owns deletes; the row is re-created on erp");
  EXPECT_FALSE(r.after.deleted);
}

TEST(Delete, DeleteOfDeletedRecordIsNoChange) {
  const EntityRules rules = deletable(DeletePropagation::kDelete);
  RecordState state = live_record();
  state.deleted = true;
  state.bases.erase("erp");
  const Reconciliation r = reconcile(rules, kVersion, state, erase("crm", 5, 60));
  ASSERT_EQ(r.plan.decisions.size(), 1u);
  EXPECT_EQ(r.plan.decisions[0].outcome, Outcome::kNoChange);
  EXPECT_TRUE(r.after.deleted);
  EXPECT_TRUE(r.after.bases.empty());
  EXPECT_TRUE(r.plan.unlink_source);
}

TEST(Delete, UpsertOnDeletedRecordChangesNoGolden) {
  const EntityRules rules = deletable(DeletePropagation::kDelete);
  RecordState state = live_record();
  state.deleted = true;
  const Reconciliation r =
      reconcile(rules, kVersion, state, upsert("crm", 5, {{"name", "New"}}, 60));
  ASSERT_EQ(r.plan.decisions.size(), 1u);
  EXPECT_EQ(r.plan.decisions[0].outcome, Outcome::kNoChange);
  EXPECT_EQ(r.after.golden, state.golden);
  EXPECT_TRUE(r.after.deleted);
  // and the write-back deletes the rows still linked
  const auto writes = plan_writebacks(rules, r.after, {"erp", "crm"}, {}).writes;
  ASSERT_EQ(writes.size(), 2u);
  EXPECT_EQ(writes[0].kind, RowWrite::Kind::kDelete);
  EXPECT_EQ(writes[1].kind, RowWrite::Kind::kDelete);
}

// ---- determinism and idempotence ------------------------------------------------------

EntityRules rich_rules() {
  return customer_rules()
      .group("address", {{"street", FieldType::kText}, {"city", FieldType::kText}},
             shared_field(OnConflict::kLastWriterWins))
      .build();
}

RecordState rich_state() {
  const FieldValues golden = {{"name", "Acme"},     {"credit_limit", "100"}, {"segment", "smb"},
                              {"status", "active"}, {"vat", "BE1"},          {"street", "S2"},
                              {"city", "C2"}};
  FieldValues crm = golden;
  crm["segment"] = "mid";
  crm["street"] = "S1";
  crm["city"] = "C1";
  return StateBuilder()
      .golden(golden)
      .base("erp", golden)
      .base("crm", crm)
      .from_side("segment", "erp", 100)
      .from_side("address", "erp", 100)
      .build();
}

TEST(Reconcile, IsDeterministic) {
  const Change change = upsert("crm", 11,
                               {{"name", "Acme NV"},
                                {"credit_limit", "900"},
                                {"segment", "enterprise"},
                                {"status", "blocked"},
                                {"city", "C3"}},
                               150);
  const Reconciliation a = reconcile(rich_rules(), kVersion, rich_state(), change);
  const Reconciliation b = reconcile(rich_rules(), kVersion, rich_state(), change);
  EXPECT_EQ(a.plan.to_text(), b.plan.to_text());
  EXPECT_EQ(state_text(a.after), state_text(b.after));
  // the plan is the full story: one decision per touched unit, in the rules' unit order
  std::vector<std::string> units;
  for (const UnitDecision& d : a.plan.decisions) units.push_back(d.unit);
  EXPECT_EQ(units,
            (std::vector<std::string>{"name", "credit_limit", "segment", "status", "address"}));
}

struct RepeatCase {
  const char* name;
  RecordState state;
  Change change;
};

void PrintTo(const RepeatCase& c, std::ostream* os) {
  *os << c.name;
}

class ReconcileTwice : public ::testing::TestWithParam<RepeatCase> {};

TEST_P(ReconcileTwice, SecondTimeChangesNothing) {
  const RepeatCase& c = GetParam();
  const EntityRules rules = rich_rules();
  const Reconciliation first = reconcile(rules, kVersion, c.state, c.change);
  const Reconciliation second = reconcile(rules, kVersion, first.after, c.change);
  for (const UnitDecision& d : second.plan.decisions)
    EXPECT_FALSE(d.golden_changed()) << second.plan.to_text();
  EXPECT_TRUE(second.plan.opened.empty()) << second.plan.to_text();
  EXPECT_TRUE(second.plan.attached.empty()) << second.plan.to_text();
  EXPECT_EQ(state_text(second.after), state_text(first.after));
}

INSTANTIATE_TEST_SUITE_P(
    Idempotence, ReconcileTwice,
    ::testing::Values(
        RepeatCase{"OwnerAccept", rich_state(), upsert("crm", 1, {{"name", "Acme NV"}}, 150)},
        RepeatCase{"ForeignWriteRevert", rich_state(),
                   upsert("crm", 2, {{"credit_limit", "900"}}, 150)},
        RepeatCase{"ForeignWriteQuarantine", rich_state(),
                   upsert("crm", 3, {{"status", "blocked"}}, 150)},
        RepeatCase{"ConcurrentEdit", rich_state(), upsert("crm", 4, {{"segment", "ent"}}, 150)},
        RepeatCase{"GroupLastWriterWins", rich_state(), upsert("crm", 5, {{"city", "C3"}}, 150)},
        RepeatCase{"InvalidValue", rich_state(), upsert("crm", 6, {{"name", ""}}, 150)},
        RepeatCase{"Create", StateBuilder().absent().build(),
                   upsert("crm", 7, {{"name", "New"}, {"segment", "smb"}, {"vat", "X"}}, 150)},
        RepeatCase{"ForeignDelete", rich_state(), erase("crm", 8, 150)},
        RepeatCase{"OwnerDelete", rich_state(), erase("erp", 9, 150)}),
    [](const ::testing::TestParamInfo<RepeatCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace mdsync::core
