// Create seeding (`on_create: accept`): a side that creates a record seeds the units other
// sides own with its own values, instead of the rule's default, until the owner gives a value;
// the owner's first value then replaces the seed, and another side's later change is a foreign
// write as usual.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mdsync/core/reconciler.hpp"
#include "mdsync/core/writeback_plan.hpp"
#include "test_support.hpp"

namespace mdsync::core {
namespace {

using test::defaulting;
using test::kNull;
using test::owned_by;
using test::RulesBuilder;
using test::state_text;
using test::StateBuilder;
using test::upsert;

constexpr std::int64_t kVersion = 5;

FieldPolicy accepting(FieldPolicy p) {
  p.on_create = OnCreate::kAccept;
  return p;
}

// company: erp owns name; crm owns website (a create by erp seeds it) and phone (it does not:
// the default applies, as today).
EntityRules rules() {
  return RulesBuilder("company")
      .create({"erp", "crm"})
      .field("name", owned_by("erp"))
      .field("website", accepting(owned_by("crm")))
      .field("phone", defaulting(owned_by("crm"), "n/a"))
      .build();
}

std::string writes_text(const std::vector<RowWrite>& writes) {
  std::string s;
  for (const RowWrite& w : writes) {
    s += w.side + " " + to_string(w.kind) + " {" + test::values_text(w.values) + "}";
    if (!w.expected.empty()) s += " expecting {" + test::values_text(w.expected) + "}";
    s += "\n";
  }
  return s;
}

std::string plan_of(const EntityRules& r, const RecordState& state) {
  return writes_text(plan_writebacks(r, state, {"erp", "crm"}, {}).writes);
}

// A new ERP company with a website: the website is kept (golden, so the ERP row is not
// reverted) and reaches the CRM with the insert; the phone takes its default as before.
TEST(CreateSeeding, CreatorsValueSeedsAUnitAnotherSideOwns) {
  RecordState state;
  const Plan plan = reconcile_in_place(
      rules(), kVersion, state,
      upsert("erp", 1, {{"name", "Acme"}, {"website", "acme.com"}, {"phone", "+32 1"}}, 100));
  EXPECT_EQ(plan.to_text(),
            "plan company from erp#1 under ruleset v5\n"
            "  name: create golden NULL -> \"Acme\"  [company.name owner=erp "
            "on_foreign_write=revert] created by erp (owner)\n"
            "  website: seed golden NULL -> \"acme.com\"  [company.website owner=crm "
            "on_foreign_write=revert on_create=accept] seeded by erp: on_create accept; crm owns "
            "website and its first value replaces the seed\n"
            "  phone: revert golden NULL -> \"n/a\"  [company.phone owner=crm "
            "on_foreign_write=revert] crm owns phone; erp's write is reverted\n");
  EXPECT_EQ(state_text(state),
            "exists=1 deleted=0\n"
            "golden: name=\"Acme\" phone=\"n/a\" website=\"acme.com\"\n"
            "provenance name: erp@100\n"
            "provenance phone: crm@0\n"
            "provenance website: erp@100 (seed)\n"
            "base erp: name=\"Acme\" phone=\"+32 1\" website=\"acme.com\"\n");
  EXPECT_EQ(plan_of(rules(), state),
            "erp update {phone=\"n/a\"} expecting {phone=\"+32 1\"}\n"
            "crm insert {name=\"Acme\" phone=\"n/a\" website=\"acme.com\"}\n");
}

// A create that gives no value (NULL) seeds nothing: the default applies.
TEST(CreateSeeding, NullSeedsNothing) {
  const EntityRules r = RulesBuilder("company")
                            .create({"erp"})
                            .field("name", owned_by("erp"))
                            .field("website", accepting(defaulting(owned_by("crm"), "none")))
                            .build();
  RecordState state;
  const Plan plan =
      reconcile_in_place(r, kVersion, state, upsert("erp", 1, {{"name", "A"}, {"website", kNull}}));
  ASSERT_EQ(plan.decisions.size(), 2u);
  EXPECT_EQ(plan.decisions[1].outcome, Outcome::kRevert);
  EXPECT_EQ(state.golden.at("website"), Value{"none"});
  EXPECT_FALSE(state.provenance.at("website").seeded);
}

// A seed is validated like any value: an invalid one opens invalid_value and seeds nothing.
TEST(CreateSeeding, AnInvalidValueSeedsNothing) {
  Validation short_text;
  short_text.max_length = 3;
  const EntityRules r =
      RulesBuilder("company")
          .create({"erp"})
          .field("name", owned_by("erp"))
          .field("website", test::validated(accepting(owned_by("crm")), short_text))
          .build();
  RecordState state;
  const Plan plan = reconcile_in_place(r, kVersion, state,
                                       upsert("erp", 1, {{"name", "A"}, {"website", "toolong"}}));
  ASSERT_EQ(plan.opened.size(), 1u);
  EXPECT_EQ(plan.opened[0].kind, ConflictKind::kInvalidValue);
  EXPECT_EQ(state.golden.at("website"), kNull);
  EXPECT_FALSE(state.provenance.at("website").seeded);
}

// A group is seeded whole from the creator's row, its NULL members too.
TEST(CreateSeeding, AGroupIsSeededWhole) {
  const EntityRules r =
      RulesBuilder("company")
          .create({"erp"})
          .field("name", owned_by("erp"))
          .group("address", {{"street", FieldType::kText}, {"city", FieldType::kText}},
                 accepting(owned_by("crm")))
          .build();
  RecordState state;
  reconcile_in_place(r, kVersion, state,
                     upsert("erp", 1, {{"name", "A"}, {"street", kNull}, {"city", "Gent"}}, 10));
  EXPECT_EQ(state.golden.at("city"), Value{"Gent"});
  EXPECT_EQ(state.golden.at("street"), kNull);
  EXPECT_TRUE(state.provenance.at("address").seeded);
  EXPECT_EQ(state.provenance.at("address").side, "erp");
}

// The seeded record once the insert into the CRM has landed: the CRM's row holds the seed.
RecordState seeded_and_inserted() {
  RecordState state;
  reconcile_in_place(rules(), kVersion, state,
                     upsert("erp", 1, {{"name", "Acme"}, {"website", "acme.com"}}, 100));
  state.bases["erp"]["phone"] = "n/a";
  state.bases["crm"] = state.golden;
  return state;
}

// The owner's first change replaces the seed, and the mark goes: from then on it is the
// owner's value like any other.
TEST(CreateSeeding, OwnersFirstChangeReplacesTheSeed) {
  RecordState state = seeded_and_inserted();
  const Plan plan =
      reconcile_in_place(rules(), kVersion, state, upsert("crm", 3, {{"website", "acme.io"}}, 300));
  EXPECT_EQ(plan.to_text(),
            "plan company from crm#3 under ruleset v5\n"
            "  website: accept golden \"acme.com\" -> \"acme.io\"  [company.website owner=crm "
            "on_foreign_write=revert on_create=accept] crm owns website; its value replaces the "
            "seed by erp\n");
  EXPECT_EQ(state.provenance.at("website").side, "crm");
  EXPECT_FALSE(state.provenance.at("website").seeded);
  EXPECT_EQ(plan_of(rules(), state),
            "erp update {website=\"acme.io\"} expecting {website=\"acme.com\"}\n");
}

// The seeding side changing the seed later is a foreign write as usual: reverted.
TEST(CreateSeeding, TheSeedersLaterChangeIsAForeignWrite) {
  RecordState state = seeded_and_inserted();
  const Plan plan = reconcile_in_place(rules(), kVersion, state,
                                       upsert("erp", 2, {{"website", "acme.net"}}, 200));
  ASSERT_EQ(plan.decisions.size(), 1u);
  EXPECT_EQ(plan.decisions[0].outcome, Outcome::kRevert);
  EXPECT_EQ(state.golden.at("website"), Value{"acme.com"});
  EXPECT_TRUE(state.provenance.at("website").seeded);
  EXPECT_EQ(plan_of(rules(), state),
            "erp update {website=\"acme.com\"} expecting {website=\"acme.net\"}\n");
}

// The owner's row appears later, linked by a match key with the values it already held (its
// base is what it holds, so the owner "changed" nothing): its value still replaces the seed.
TEST(CreateSeeding, OwnersLinkedRowReplacesTheSeedThoughItChangedNothing) {
  RecordState state;
  reconcile_in_place(rules(), kVersion, state,
                     upsert("erp", 1, {{"name", "Acme"}, {"website", "acme.com"}}, 100));
  state.bases["crm"] = {{"name", "Acme"}, {"website", "www.acme.be"}, {"phone", "n/a"}};
  const Plan plan = reconcile_in_place(
      rules(), kVersion, state,
      upsert("crm", 4, {{"name", "Acme"}, {"website", "www.acme.be"}, {"phone", "n/a"}}, 400));
  EXPECT_EQ(plan.to_text(),
            "plan company from crm#4 under ruleset v5\n"
            "  website: accept golden \"acme.com\" -> \"www.acme.be\"  [company.website owner=crm "
            "on_foreign_write=revert on_create=accept] crm owns website; its value replaces the "
            "seed by erp\n");
  EXPECT_FALSE(state.provenance.at("website").seeded);
}

// The same with the engine's usual link (no base yet): an owner's value replaces the seed,
// and an owner's NULL is no value: the seed stays and is written to the owner's row.
TEST(CreateSeeding, OwnersLinkedRowWithNoValueKeepsTheSeed) {
  RecordState with_value;
  reconcile_in_place(rules(), kVersion, with_value,
                     upsert("erp", 1, {{"name", "Acme"}, {"website", "acme.com"}}, 100));
  RecordState without = with_value;
  with_value.bases["crm"] = {};
  reconcile_in_place(rules(), kVersion, with_value,
                     upsert("crm", 4, {{"name", "Acme"}, {"website", "acme.be"}}, 400));
  EXPECT_EQ(with_value.golden.at("website"), Value{"acme.be"});

  without.bases["crm"] = {};
  const Plan plan = reconcile_in_place(
      rules(), kVersion, without, upsert("crm", 4, {{"name", "Acme"}, {"website", kNull}}, 400));
  EXPECT_EQ(without.golden.at("website"), Value{"acme.com"});
  EXPECT_TRUE(without.provenance.at("website").seeded);
  EXPECT_EQ(writes_text(plan_writebacks(rules(), without, {"crm"}, {}).writes),
            "crm update {phone=\"n/a\" website=\"acme.com\"} expecting {phone=NULL "
            "website=NULL}\n");
}

// Seeding applies at create only: a row linked to an existing record (not seeded) proposes
// nothing the owner has not given; its value is a foreign write.
TEST(CreateSeeding, NothingIsSeededOnALinkedRow) {
  RecordState state =
      StateBuilder()
          .golden({{"name", "Acme"}, {"website", "acme.com"}, {"phone", "n/a"}})
          .base("crm", {{"name", "Acme"}, {"website", "acme.com"}, {"phone", "n/a"}})
          .from_side("website", "crm", 50)
          .build();
  state.bases["erp"] = {};
  const Plan plan = reconcile_in_place(rules(), kVersion, state,
                                       upsert("erp", 6, {{"name", "Acme"}, {"website", "x.com"}}));
  ASSERT_EQ(plan.decisions.size(), 2u);
  EXPECT_EQ(plan.decisions[0].outcome, Outcome::kAgree);   // name
  EXPECT_EQ(plan.decisions[1].outcome, Outcome::kRevert);  // website
  EXPECT_EQ(state.golden.at("website"), Value{"acme.com"});
}

// A steward's accepted create seeds as the side's own create would.
TEST(CreateSeeding, AStewardsAcceptedCreateSeedsToo) {
  EntityRules r = rules();
  r.create = {"crm"};
  RecordState state;
  create_allowed_by_steward(r, kVersion, state,
                            upsert("erp", 1, {{"name", "Acme"}, {"website", "acme.com"}}, 10),
                            "alice");
  EXPECT_EQ(state.golden.at("website"), Value{"acme.com"});
  EXPECT_TRUE(state.provenance.at("website").seeded);
}

}  // namespace
}  // namespace mdsync::core
