// reconcile(): DESIGN.md's decision rule for one field (or group) of a change from side S,
// row by row. Each case compares the whole plan as text, so a failure shows the reasoning,
// and then checks the state the plan leaves behind.
#include "mdsync/core/reconciler.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace mdsync::core {
namespace {

using test::kNull;
using test::owned_by;
using test::RulesBuilder;
using test::shared_field;
using test::state_text;
using test::StateBuilder;
using test::upsert;

constexpr std::int64_t kVersion = 3;
const std::vector<std::string> kTwoSides = {"erp", "crm"};
const std::vector<std::string> kThreeSides = {"erp", "crm", "shop"};

// One row of the decision table, for a single text field "f". Sides other than S hold the
// golden value as their base.
struct DecisionCase {
  std::string name;
  std::vector<std::string> sides;  // also the priority order
  FieldPolicy policy;
  Value golden;
  Provenance provenance;  // of f's golden value
  Value base;             // S's base
  std::string side;       // S
  Value value;            // v
  std::int64_t time;      // S's commit time
  std::string plan;       // expected Plan::to_text()
  Value golden_after;
  std::optional<ConflictKind> opened;
};

void PrintTo(const DecisionCase& c, std::ostream* os) {
  *os << c.name;
}

class DecisionRule : public ::testing::TestWithParam<DecisionCase> {};

TEST_P(DecisionRule, PlanAndState) {
  const DecisionCase& c = GetParam();
  const EntityRules rules =
      RulesBuilder().priority(c.sides).create(c.sides).field("f", c.policy).build();
  StateBuilder sb;
  sb.golden({{"f", c.golden}});
  for (const std::string& side : c.sides)
    sb.base(side, {{"f", side == c.side ? c.base : c.golden}});
  RecordState state = sb.build();
  state.provenance["f"] = c.provenance;

  const Reconciliation r =
      reconcile(rules, kVersion, state, upsert(c.side, 7, {{"f", c.value}}, c.time));

  EXPECT_EQ(r.plan.to_text(), c.plan);
  EXPECT_EQ(r.plan.ruleset_version, kVersion);
  EXPECT_FALSE(r.plan.unlink_source);
  EXPECT_TRUE(r.plan.attached.empty());
  EXPECT_TRUE(r.plan.closed.empty());

  // golden
  EXPECT_EQ(r.after.golden.at("f"), c.golden_after);
  EXPECT_TRUE(r.after.exists);
  EXPECT_FALSE(r.after.deleted);
  // S's base now holds what S holds; the other sides' bases do not move
  for (const std::string& side : c.sides)
    EXPECT_EQ(r.after.bases.at(side).at("f"), side == c.side ? c.value : c.golden) << side;
  // provenance moves with golden, and only then
  const Provenance& p = r.after.provenance.at("f");
  if (c.golden_after != c.golden) {
    EXPECT_EQ(p.side, c.side);
    EXPECT_EQ(p.time_us, c.time);
    EXPECT_TRUE(p.steward.empty());
  } else {
    EXPECT_EQ(p.side, c.provenance.side);
    EXPECT_EQ(p.steward, c.provenance.steward);
    EXPECT_EQ(p.time_us, c.provenance.time_us);
  }
  // conflicts
  if (c.opened) {
    ASSERT_EQ(r.after.open_conflicts.size(), 1u);
    EXPECT_EQ(r.after.open_conflicts[0].kind, *c.opened);
    EXPECT_EQ(r.after.open_conflicts[0].unit, "f");
    EXPECT_EQ(r.after.open_conflicts[0].id, 0);
    ASSERT_EQ(r.plan.opened.size(), 1u);
    EXPECT_EQ(r.plan.opened[0].kind, *c.opened);
  } else {
    EXPECT_TRUE(r.after.open_conflicts.empty());
    EXPECT_TRUE(r.plan.opened.empty());
  }
}

const char* const kOwnedErpRevert = "[customer.f owner=erp on_foreign_write=revert]";
const char* const kOwnedErpQuarantine = "[customer.f owner=erp on_foreign_write=quarantine]";
const char* const kOwnedCrm = "[customer.f owner=crm on_foreign_write=revert]";
const char* const kSharedQuarantine = "[customer.f owner=shared on_conflict=quarantine]";
const char* const kSharedLww = "[customer.f owner=shared on_conflict=last_writer_wins]";
const char* const kSharedPriority = "[customer.f owner=shared on_conflict=priority]";

std::string plan_from(const std::string& source, const std::string& lines) {
  return "plan customer from " + source + " under ruleset v3\n" + lines;
}

Provenance by(const std::string& side, std::int64_t time) {
  return Provenance{side, "", time};
}

INSTANTIATE_TEST_SUITE_P(
    TwoSides, DecisionRule,
    ::testing::Values(
        // v = b: nothing to decide, even though golden moved on
        DecisionCase{"NoChangeWhenValueEqualsBase", kTwoSides, owned_by("erp"), "2", by("erp", 100),
                     "1", "crm", "1", 200, plan_from("crm#7", ""), "2", std::nullopt},
        // v = g: only S's base moves
        DecisionCase{
            "AgreeWhenValueEqualsGolden", kTwoSides, shared_field(), "2", by("erp", 100), "1",
            "crm", "2", 200,
            plan_from("crm#7", std::string("  f: agree proposed \"2\", golden stays \"2\"  ") +
                                   kSharedQuarantine + " crm already holds the golden value\n"),
            "2", std::nullopt},
        // g = b: only S changed it
        DecisionCase{"OnlySideChangedAndOwnsIt", kTwoSides, owned_by("crm"), "1", by("crm", 100),
                     "1", "crm", "2", 200,
                     plan_from("crm#7", std::string("  f: accept golden \"1\" -> \"2\"  ") +
                                            kOwnedCrm + " crm owns f\n"),
                     "2", std::nullopt},
        DecisionCase{"OnlySideChangedShared", kTwoSides, shared_field(), "1", by("erp", 100), "1",
                     "crm", "2", 200,
                     plan_from("crm#7", std::string("  f: accept golden \"1\" -> \"2\"  ") +
                                            kSharedQuarantine + " crm changed shared f\n"),
                     "2", std::nullopt},
        DecisionCase{
            "OnlySideChangedOtherOwnsRevert", kTwoSides, owned_by("erp"), "1", by("erp", 100), "1",
            "crm", "2", 200,
            plan_from("crm#7", std::string("  f: revert proposed \"2\", golden stays \"1\"  ") +
                                   kOwnedErpRevert + " erp owns f; crm's write is reverted\n"),
            "1", std::nullopt},
        DecisionCase{
            "OnlySideChangedOtherOwnsQuarantine", kTwoSides,
            owned_by("erp", ForeignWrite::kQuarantine), "1", by("erp", 100), "1", "crm", "2", 200,
            plan_from("crm#7", std::string("  f: quarantine proposed \"2\", golden stays \"1\"  ") +
                                   kOwnedErpQuarantine +
                                   " erp owns f; crm's write is quarantined\n"
                                   "  open foreign_write on f: crm=\"2\" erp=\"1\"\n"),
            "1", ConflictKind::kForeignWrite},
        // g != b and v != g: both changed it
        DecisionCase{"BothChangedSideOwnsAndWins", kTwoSides, owned_by("crm"), "2",
                     Provenance{"", "alice", 0}, "1", "crm", "3", 200,
                     plan_from("crm#7", std::string("  f: accept golden \"2\" -> \"3\"  ") +
                                            kOwnedCrm + " crm owns f and wins\n"),
                     "3", std::nullopt},
        DecisionCase{
            "BothChangedOtherOwnsRevert", kTwoSides, owned_by("erp"), "2", by("erp", 100), "1",
            "crm", "3", 200,
            plan_from("crm#7", std::string("  f: revert proposed \"3\", golden stays \"2\"  ") +
                                   kOwnedErpRevert + " erp owns f; crm's write is reverted\n"),
            "2", std::nullopt},
        DecisionCase{
            "BothChangedOtherOwnsQuarantine", kTwoSides, owned_by("erp", ForeignWrite::kQuarantine),
            "2", by("erp", 100), "1", "crm", "3", 200,
            plan_from("crm#7", std::string("  f: quarantine proposed \"3\", golden stays \"2\"  ") +
                                   kOwnedErpQuarantine +
                                   " erp owns f; crm's write is quarantined\n"
                                   "  open foreign_write on f: crm=\"3\" erp=\"2\"\n"),
            "2", ConflictKind::kForeignWrite},
        DecisionCase{
            "BothChangedSharedQuarantine", kTwoSides, shared_field(), "2", by("erp", 100), "1",
            "crm", "3", 200,
            plan_from("crm#7", std::string("  f: quarantine proposed \"3\", golden stays \"2\"  ") +
                                   kSharedQuarantine +
                                   " crm and erp both changed shared f\n"
                                   "  open concurrent_edit on f: crm=\"3\" erp=\"2\"\n"),
            "2", ConflictKind::kConcurrentEdit},
        DecisionCase{"BothChangedLastWriterWinsLaterWins", kTwoSides,
                     shared_field(OnConflict::kLastWriterWins), "2", by("erp", 100), "1", "crm",
                     "3", 101,
                     plan_from("crm#7", std::string("  f: accept golden \"2\" -> \"3\"  ") +
                                            kSharedLww + " crm wrote last\n"),
                     "3", std::nullopt},
        DecisionCase{
            "BothChangedLastWriterWinsEarlierLoses", kTwoSides,
            shared_field(OnConflict::kLastWriterWins), "2", by("erp", 100), "1", "crm", "3", 99,
            plan_from("crm#7",
                      std::string("  f: keep_golden proposed \"3\", golden stays \"2\"  ") +
                          kSharedLww + " erp wrote last\n"),
            "2", std::nullopt},
        DecisionCase{
            "BothChangedLastWriterWinsTieGoesToPriorityKeep", kTwoSides,
            shared_field(OnConflict::kLastWriterWins), "2", by("erp", 100), "1", "crm", "3", 100,
            plan_from("crm#7",
                      std::string("  f: keep_golden proposed \"3\", golden stays \"2\"  ") +
                          kSharedLww + " erp wrote last\n"),
            "2", std::nullopt},
        DecisionCase{"BothChangedLastWriterWinsTieGoesToPriorityTake", kTwoSides,
                     shared_field(OnConflict::kLastWriterWins), "2", by("crm", 100), "1", "erp",
                     "3", 100,
                     plan_from("erp#7", std::string("  f: accept golden \"2\" -> \"3\"  ") +
                                            kSharedLww + " erp wrote last\n"),
                     "3", std::nullopt},
        DecisionCase{"BothChangedPrioritySideRanksFirst", kTwoSides,
                     shared_field(OnConflict::kPriority), "2", by("crm", 500), "1", "erp", "3", 1,
                     plan_from("erp#7", std::string("  f: accept golden \"2\" -> \"3\"  ") +
                                            kSharedPriority + " erp ranks before crm\n"),
                     "3", std::nullopt},
        DecisionCase{
            "BothChangedPrioritySideRanksAfter", kTwoSides, shared_field(OnConflict::kPriority),
            "2", by("erp", 1), "1", "crm", "3", 500,
            plan_from("crm#7",
                      std::string("  f: keep_golden proposed \"3\", golden stays \"2\"  ") +
                          kSharedPriority + " erp ranks before crm\n"),
            "2", std::nullopt},
        // DESIGN.md: a steward's decision counts as an edit at the moment it is made
        DecisionCase{"BothChangedLastWriterWinsSideEditAfterTheStewardWins", kTwoSides,
                     shared_field(OnConflict::kLastWriterWins), "2", Provenance{"", "alice", 100},
                     "1", "crm", "3", 101,
                     plan_from("crm#7", std::string("  f: accept golden \"2\" -> \"3\"  ") +
                                            kSharedLww + " crm wrote last\n"),
                     "3", std::nullopt},
        DecisionCase{
            "BothChangedLastWriterWinsSideEditBeforeTheStewardLoses", kTwoSides,
            shared_field(OnConflict::kLastWriterWins), "2", Provenance{"", "alice", 100}, "1",
            "crm", "3", 99,
            plan_from("crm#7",
                      std::string("  f: keep_golden proposed \"3\", golden stays \"2\"  ") +
                          kSharedLww + " steward wrote last\n"),
            "2", std::nullopt},
        DecisionCase{
            "BothChangedPriorityStewardCountsAsTheFirstSide", kTwoSides,
            shared_field(OnConflict::kPriority), "2", Provenance{"", "alice", 100}, "1", "erp", "3",
            500,
            plan_from("erp#7",
                      std::string("  f: keep_golden proposed \"3\", golden stays \"2\"  ") +
                          kSharedPriority + " steward ranks before erp\n"),
            "2", std::nullopt},
        // NULL and "" are different values
        DecisionCase{"NullToEmptyIsAChange", kTwoSides, owned_by("crm"), kNull, by("crm", 100),
                     kNull, "crm", "", 200,
                     plan_from("crm#7", std::string("  f: accept golden NULL -> \"\"  ") +
                                            kOwnedCrm + " crm owns f\n"),
                     "", std::nullopt}),
    [](const ::testing::TestParamInfo<DecisionCase>& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    ThreeSides, DecisionRule,
    ::testing::Values(
        DecisionCase{
            "ThirdSideWritesOwnedFieldReverted", kThreeSides, owned_by("erp"), "1", by("erp", 100),
            "1", "shop", "2", 200,
            plan_from("shop#7", std::string("  f: revert proposed \"2\", golden stays \"1\"  ") +
                                    kOwnedErpRevert + " erp owns f; shop's write is reverted\n"),
            "1", std::nullopt},
        DecisionCase{"ThirdSideBothChangedOwnedQuarantine", kThreeSides,
                     owned_by("erp", ForeignWrite::kQuarantine), "2", by("erp", 100), "1", "shop",
                     "3", 200,
                     plan_from("shop#7",
                               std::string("  f: quarantine proposed \"3\", golden stays \"2\"  ") +
                                   kOwnedErpQuarantine +
                                   " erp owns f; shop's write is quarantined\n"
                                   "  open foreign_write on f: erp=\"2\" shop=\"3\"\n"),
                     "2", ConflictKind::kForeignWrite},
        DecisionCase{"ThirdSideOnlyChangedShared", kThreeSides, shared_field(), "1", by("crm", 100),
                     "1", "shop", "2", 200,
                     plan_from("shop#7", std::string("  f: accept golden \"1\" -> \"2\"  ") +
                                             kSharedQuarantine + " shop changed shared f\n"),
                     "2", std::nullopt},
        DecisionCase{"ThirdSideConcurrentEditWithCrm", kThreeSides, shared_field(), "2",
                     by("crm", 100), "1", "shop", "3", 200,
                     plan_from("shop#7",
                               std::string("  f: quarantine proposed \"3\", golden stays \"2\"  ") +
                                   kSharedQuarantine +
                                   " shop and crm both changed shared f\n"
                                   "  open concurrent_edit on f: crm=\"2\" shop=\"3\"\n"),
                     "2", ConflictKind::kConcurrentEdit},
        DecisionCase{
            "ThirdSideRanksAfterCrm", kThreeSides, shared_field(OnConflict::kPriority), "2",
            by("crm", 100), "1", "shop", "3", 200,
            plan_from("shop#7",
                      std::string("  f: keep_golden proposed \"3\", golden stays \"2\"  ") +
                          kSharedPriority + " crm ranks before shop\n"),
            "2", std::nullopt},
        DecisionCase{"CrmRanksBeforeThirdSide", kThreeSides, shared_field(OnConflict::kPriority),
                     "2", by("shop", 100), "1", "crm", "3", 50,
                     plan_from("crm#7", std::string("  f: accept golden \"2\" -> \"3\"  ") +
                                            kSharedPriority + " crm ranks before shop\n"),
                     "3", std::nullopt},
        DecisionCase{
            "ThirdSideLastWriterTieLosesToCrm", kThreeSides,
            shared_field(OnConflict::kLastWriterWins), "2", by("crm", 100), "1", "shop", "3", 100,
            plan_from("shop#7",
                      std::string("  f: keep_golden proposed \"3\", golden stays \"2\"  ") +
                          kSharedLww + " crm wrote last\n"),
            "2", std::nullopt},
        DecisionCase{"ThirdSideWritesLastAndWins", kThreeSides,
                     shared_field(OnConflict::kLastWriterWins), "2", by("erp", 100), "1", "shop",
                     "3", 300,
                     plan_from("shop#7", std::string("  f: accept golden \"2\" -> \"3\"  ") +
                                             kSharedLww + " shop wrote last\n"),
                     "3", std::nullopt}),
    [](const ::testing::TestParamInfo<DecisionCase>& info) { return info.param.name; });

// ---- the rule's preconditions: validation, open conflicts --------------------------------

EntityRules two_field_rules() {
  Validation short_text;
  short_text.max_length = 3;
  return RulesBuilder()
      .priority(kTwoSides)
      .create(kTwoSides)
      .field("f", test::validated(owned_by("crm"), short_text))
      .field("name", owned_by("crm"))
      .build();
}

TEST(Reconcile, InvalidValueOpensConflictAndIsNotAccepted) {
  const EntityRules rules = two_field_rules();
  const RecordState state = StateBuilder()
                                .golden({{"f", "abc"}, {"name", "N1"}})
                                .base("crm", {{"f", "abc"}, {"name", "N1"}})
                                .base("erp", {{"f", "abc"}, {"name", "N1"}})
                                .from_side("f", "crm", 100)
                                .build();
  const Reconciliation r =
      reconcile(rules, kVersion, state, upsert("crm", 7, {{"f", "toolong"}}, 200));
  EXPECT_EQ(r.plan.to_text(),
            plan_from("crm#7",
                      "  f: invalid proposed \"toolong\", golden stays \"abc\"  "
                      "[customer.f owner=crm on_foreign_write=revert] f longer than max_length 3 "
                      "(7 characters)\n"
                      "  open invalid_value on f: crm=\"toolong\" golden=\"abc\"\n"));
  EXPECT_EQ(r.after.golden, state.golden);
  EXPECT_EQ(r.after.provenance.at("f").time_us, 100);
  ASSERT_EQ(r.after.open_conflicts.size(), 1u);
  EXPECT_EQ(r.after.open_conflicts[0].kind, ConflictKind::kInvalidValue);
  EXPECT_EQ(r.after.bases.at("crm").at("f"), Value{"toolong"});
}

TEST(Reconcile, InvalidFieldDoesNotStopValidFieldsOfTheSameChange) {
  const EntityRules rules = two_field_rules();
  const RecordState state = StateBuilder()
                                .golden({{"f", "abc"}, {"name", "N1"}})
                                .base("crm", {{"f", "abc"}, {"name", "N1"}})
                                .build();
  const Reconciliation r =
      reconcile(rules, kVersion, state, upsert("crm", 7, {{"f", "toolong"}, {"name", "N2"}}, 200));
  ASSERT_EQ(r.plan.decisions.size(), 2u);
  EXPECT_EQ(r.plan.decisions[0].outcome, Outcome::kInvalid);
  EXPECT_EQ(r.plan.decisions[1].outcome, Outcome::kAccept);
  EXPECT_EQ(r.after.golden.at("f"), Value{"abc"});
  EXPECT_EQ(r.after.golden.at("name"), Value{"N2"});
}

TEST(Reconcile, OpenConflictAttachesAndOtherFieldsAreStillDecided) {
  const EntityRules rules = RulesBuilder()
                                .priority(kTwoSides)
                                .field("f", shared_field())
                                .field("name", owned_by("crm"))
                                .build();
  const RecordState state = StateBuilder()
                                .golden({{"f", "2"}, {"name", "N1"}})
                                .base("crm", {{"f", "1"}, {"name", "N1"}})
                                .base("erp", {{"f", "2"}, {"name", "N1"}})
                                .from_side("f", "erp", 100)
                                .conflict(42, "f", ConflictKind::kConcurrentEdit)
                                .build();
  const Reconciliation r =
      reconcile(rules, kVersion, state, upsert("crm", 7, {{"f", "3"}, {"name", "N2"}}, 200));
  EXPECT_EQ(r.plan.to_text(),
            plan_from("crm#7",
                      "  f: attach proposed \"3\", golden stays \"2\"  "
                      "[customer.f owner=shared on_conflict=quarantine] held by open "
                      "concurrent_edit conflict 42\n"
                      "  name: accept golden \"N1\" -> \"N2\"  "
                      "[customer.name owner=crm on_foreign_write=revert] crm owns name\n"
                      "  attach to conflict 42: crm=\"3\"\n"));
  EXPECT_EQ(r.after.golden.at("f"), Value{"2"});
  EXPECT_EQ(r.after.golden.at("name"), Value{"N2"});
  ASSERT_EQ(r.after.open_conflicts.size(), 1u);  // no second conflict
  EXPECT_EQ(r.after.open_conflicts[0].id, 42);
  EXPECT_TRUE(r.plan.opened.empty());
}

TEST(Reconcile, OwnerValueIsAttachedToo) {
  // A foreign_write conflict holds erp's field: even erp's own later value waits for the
  // steward.
  const EntityRules rules =
      RulesBuilder().field("f", owned_by("erp", ForeignWrite::kQuarantine)).build();
  const RecordState state = StateBuilder()
                                .golden({{"f", "1"}})
                                .base("erp", {{"f", "1"}})
                                .base("crm", {{"f", "2"}})
                                .conflict(9, "f", ConflictKind::kForeignWrite)
                                .build();
  const Reconciliation r = reconcile(rules, kVersion, state, upsert("erp", 3, {{"f", "5"}}, 10));
  ASSERT_EQ(r.plan.decisions.size(), 1u);
  EXPECT_EQ(r.plan.decisions[0].outcome, Outcome::kAttach);
  ASSERT_EQ(r.plan.attached.size(), 1u);
  EXPECT_EQ(r.plan.attached[0].conflict_id, 9);
  EXPECT_EQ(r.plan.attached[0].side, "erp");
  EXPECT_EQ(r.after.golden.at("f"), Value{"1"});
}

TEST(Reconcile, UntouchedFieldsAreNotDecided) {
  const EntityRules rules = two_field_rules();
  const RecordState state = StateBuilder()
                                .golden({{"f", "abc"}, {"name", "N1"}})
                                .base("crm", {{"f", "old"}, {"name", "N1"}})
                                .build();
  // f's base differs from golden, but the change does not touch f
  const Reconciliation r = reconcile(rules, kVersion, state, upsert("crm", 7, {{"name", "N2"}}, 1));
  ASSERT_EQ(r.plan.decisions.size(), 1u);
  EXPECT_EQ(r.plan.decisions[0].unit, "name");
  EXPECT_EQ(r.after.bases.at("crm").at("f"), Value{"old"});
}

// ---- groups ---------------------------------------------------------------------------

EntityRules address_rules(FieldPolicy policy) {
  return RulesBuilder()
      .priority(kTwoSides)
      .field("name", owned_by("crm"))
      .group("address", {{"street", FieldType::kText}, {"city", FieldType::kText}},
             std::move(policy))
      .build();
}

TEST(ReconcileGroup, TouchingOneMemberDecidesTheWholeGroup) {
  const EntityRules rules = address_rules(shared_field());
  const FieldValues g = {{"name", "N"}, {"street", "S1"}, {"city", "C1"}};
  const RecordState state = StateBuilder().golden(g).base("crm", g).base("erp", g).build();
  const Reconciliation r = reconcile(rules, kVersion, state, upsert("crm", 7, {{"city", "C2"}}, 5));
  EXPECT_EQ(r.plan.to_text(),
            plan_from("crm#7",
                      "  address: accept golden {city=\"C1\", street=\"S1\"} -> "
                      "{city=\"C2\", street=\"S1\"}  [customer.address owner=shared "
                      "on_conflict=quarantine] crm changed shared address\n"));
  EXPECT_EQ(r.after.provenance.at("address").side, "crm");
  EXPECT_EQ(r.after.provenance.count("city"), 0u);
}

TEST(ReconcileGroup, ForeignWriteToOneMemberRevertsTheGroup) {
  const EntityRules rules = address_rules(owned_by("erp"));
  const FieldValues g = {{"name", "N"}, {"street", "S1"}, {"city", "C1"}};
  const RecordState state = StateBuilder().golden(g).base("crm", g).base("erp", g).build();
  const Reconciliation r = reconcile(rules, kVersion, state, upsert("crm", 7, {{"city", "C2"}}, 5));
  EXPECT_EQ(r.plan.to_text(),
            plan_from("crm#7",
                      "  address: revert proposed {city=\"C2\", street=\"S1\"}, golden stays "
                      "{city=\"C1\", street=\"S1\"}  [customer.address owner=erp "
                      "on_foreign_write=revert] erp owns address; crm's write is reverted\n"));
  EXPECT_EQ(r.after.golden, g);
}

// erp moved the customer (street S2, city C1) and the change has not reached crm; crm, still
// at (S1, C1), changes the city to C3.
RecordState concurrent_address_state() {
  return StateBuilder()
      .golden({{"name", "N"}, {"street", "S2"}, {"city", "C1"}})
      .from_side("address", "erp", 100)
      .base("erp", {{"name", "N"}, {"street", "S2"}, {"city", "C1"}})
      .base("crm", {{"name", "N"}, {"street", "S1"}, {"city", "C1"}})
      .build();
}

TEST(ReconcileGroup, ConcurrentEditQuarantinesTheWholeGroup) {
  const EntityRules rules = address_rules(shared_field());
  const RecordState state = concurrent_address_state();
  const Reconciliation r =
      reconcile(rules, kVersion, state, upsert("crm", 7, {{"city", "C3"}}, 200));
  EXPECT_EQ(r.plan.to_text(),
            plan_from("crm#7",
                      "  address: quarantine proposed {city=\"C3\", street=\"S1\"}, golden stays "
                      "{city=\"C1\", street=\"S2\"}  [customer.address owner=shared "
                      "on_conflict=quarantine] crm and erp both changed shared address\n"
                      "  open concurrent_edit on address: crm={city=\"C3\", street=\"S1\"} "
                      "erp={city=\"C1\", street=\"S2\"}\n"));
  EXPECT_EQ(r.after.golden, state.golden);
}

TEST(ReconcileGroup, ConcurrentEditNeverMixesMembers) {
  const RecordState state = concurrent_address_state();
  struct Case {
    OnConflict policy;
    std::int64_t time;
    FieldValues golden_after;
  };
  const FieldValues erp_address = {{"name", "N"}, {"street", "S2"}, {"city", "C1"}};
  const FieldValues crm_address = {{"name", "N"}, {"street", "S1"}, {"city", "C3"}};
  for (const Case& c : {Case{OnConflict::kLastWriterWins, 200, crm_address},
                        Case{OnConflict::kLastWriterWins, 50, erp_address},
                        Case{OnConflict::kPriority, 200, erp_address},
                        Case{OnConflict::kQuarantine, 200, erp_address}}) {
    const EntityRules rules = address_rules(shared_field(c.policy));
    const Reconciliation r =
        reconcile(rules, kVersion, state, upsert("crm", 7, {{"city", "C3"}}, c.time));
    // never {street S2, city C3}: the group is one side's or the other's
    EXPECT_EQ(r.after.golden, c.golden_after) << to_string(c.policy) << " at " << c.time;
  }
}

TEST(ReconcileGroup, ChangeOutsideTheGroupLeavesItAlone) {
  const EntityRules rules = address_rules(shared_field());
  const RecordState state = concurrent_address_state();
  const Reconciliation r =
      reconcile(rules, kVersion, state, upsert("crm", 7, {{"name", "M"}}, 200));
  ASSERT_EQ(r.plan.decisions.size(), 1u);
  EXPECT_EQ(r.plan.decisions[0].unit, "name");
  EXPECT_TRUE(r.plan.opened.empty());
}

// ---- compare modes --------------------------------------------------------------------

struct CompareCase {
  const char* name;
  Compare mode;
  FieldType type;
  Value base;
  Value value;
  bool changed;
};

class CompareModes : public ::testing::TestWithParam<CompareCase> {};

TEST_P(CompareModes, EqualValuesAreNoChange) {
  const CompareCase& c = GetParam();
  const EntityRules rules =
      RulesBuilder().field("f", test::compared(owned_by("crm"), c.mode), c.type).build();
  const RecordState state =
      StateBuilder().golden({{"f", c.base}}).base("crm", {{"f", c.base}}).build();
  const Reconciliation r = reconcile(rules, kVersion, state, upsert("crm", 1, {{"f", c.value}}, 1));
  if (c.changed) {
    ASSERT_EQ(r.plan.decisions.size(), 1u) << r.plan.to_text();
    EXPECT_EQ(r.plan.decisions[0].outcome, Outcome::kAccept);
    EXPECT_EQ(r.after.golden.at("f"), c.value);
  } else {
    EXPECT_TRUE(r.plan.decisions.empty()) << r.plan.to_text();
    EXPECT_EQ(r.after.golden.at("f"), c.base);  // golden keeps its own spelling
  }
}

INSTANTIATE_TEST_SUITE_P(
    Reconcile, CompareModes,
    ::testing::Values(
        CompareCase{"TrimIgnoresPadding", Compare::kTrim, FieldType::kText, "x", "  x ", false},
        CompareCase{"TrimKeepsCase", Compare::kTrim, FieldType::kText, "x", "X", true},
        CompareCase{"CaseInsensitivePaddedUpper", Compare::kCaseInsensitive, FieldType::kText, "x",
                    "  X", false},
        CompareCase{"ExactSeesPadding", Compare::kExact, FieldType::kText, "x", "  x", true},
        CompareCase{"NumericTrailingZeros", Compare::kExact, FieldType::kNumeric, "10.00", "10.0",
                    false},
        CompareCase{"NumericRealChange", Compare::kExact, FieldType::kNumeric, "10.00", "10.01",
                    true}),
    [](const ::testing::TestParamInfo<CompareCase>& info) { return std::string(info.param.name); });

TEST(Reconcile, CaseInsensitiveAgreeWithGolden) {
  const EntityRules rules =
      RulesBuilder()
          .field("email", test::compared(owned_by("crm"), Compare::kCaseInsensitive))
          .build();
  const RecordState state = StateBuilder()
                                .golden({{"email", "alice@example.com"}})
                                .base("crm", {{"email", "old@example.com"}})
                                .build();
  const Reconciliation r =
      reconcile(rules, kVersion, state, upsert("crm", 1, {{"email", "ALICE@example.com"}}, 1));
  ASSERT_EQ(r.plan.decisions.size(), 1u);
  EXPECT_EQ(r.plan.decisions[0].outcome, Outcome::kAgree);
  EXPECT_EQ(r.after.golden.at("email"), Value{"alice@example.com"});
  EXPECT_EQ(r.after.bases.at("crm").at("email"), Value{"ALICE@example.com"});
}

}  // namespace
}  // namespace mdsync::core
