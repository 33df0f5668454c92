// Regression tests of core bugs found and fixed; each names the fault it guards against.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "mdsync/core/reconciler.hpp"
#include "mdsync/core/validation.hpp"
#include "test_support.hpp"

namespace mdsync::core {
namespace {

using test::erase;
using test::owned_by;
using test::RulesBuilder;
using test::shared_field;
using test::StateBuilder;
using test::upsert;

Validation max_length(std::size_t n) {
  Validation v;
  v.max_length = n;
  return v;
}

// address = [street, city], max_length 12, with the given policy.
EntityRules address_rules(FieldPolicy policy) {
  return RulesBuilder()
      .priority({"erp", "crm"})
      .group("address", {{"street", FieldType::kText}, {"city", FieldType::kText}},
             test::validated(std::move(policy), max_length(12)))
      .build();
}

// engine/core/src/validation.cpp utf8_length: counts every byte that is not 10xxxxxx, so a
// lone continuation byte (malformed UTF-8) counts as zero, although validation.hpp promises
// "a malformed byte counts as one". Any number of stray continuation bytes then slips past
// max_length.
TEST(Regression, Utf8LengthCountsALoneContinuationByteAsOne) {
  EXPECT_EQ(utf8_length("\x80"), 1u);
  EXPECT_EQ(utf8_length("a\xBF\xBF"), 3u);
}

TEST(Regression, MaxLengthCountsMalformedBytes) {
  Validation v;
  v.max_length = 1;
  EXPECT_TRUE(validate(v, FieldType::kText, Value{"a\x80\x80\x80\x80"}).has_value())
      << "five bytes, four of them malformed, pass max_length 1";
}

// engine/core/src/reconciler.cpp reconcile_delete (the kDeactivate branch): pushes the
// delete owner onto `detached` without checking it is already there, so the same delete
// reconciled twice (or a second delete of the owner's row) lists the side twice. Golden does
// not change the second time, but the state is not idempotent.
TEST(Regression, DeactivatingDeleteTwiceDetachesTheOwnerOnce) {
  const EntityRules rules = RulesBuilder()
                                .deletes("erp", DeletePropagation::kDeactivate, "active")
                                .field("name", owned_by("crm"))
                                .field("active", owned_by("erp"), FieldType::kBoolean)
                                .build();
  const RecordState state = StateBuilder()
                                .golden({{"name", "Acme"}, {"active", "true"}})
                                .base("erp", {{"name", "Acme"}, {"active", "true"}})
                                .base("crm", {{"name", "Acme"}, {"active", "true"}})
                                .build();
  const Reconciliation first = reconcile(rules, 1, state, erase("erp", 9, 50));
  const Reconciliation second = reconcile(rules, 1, first.after, erase("erp", 9, 50));
  EXPECT_EQ(std::count(second.after.detached.begin(), second.after.detached.end(), "erp"), 1)
      << test::state_text(second.after);
  EXPECT_EQ(test::state_text(second.after), test::state_text(first.after));
}

// Issue 10.5, engine/core/src/reconciler.cpp invalid_reason: a group was validated only on the
// members the change touched. The erp created a row with a 16-character street (rightly an
// invalid_value conflict, golden took the default); the steward took the crm's value; then the
// erp changed only the city, and golden took the whole group from the erp, the invalid street
// included, and wrote it to the crm.
TEST(Regression, AGroupIsValidatedWholeEvenOnMembersTheChangeDidNotTouch) {
  const EntityRules rules = address_rules(owned_by("erp"));
  const RecordState state = StateBuilder()
                                .golden({{"street", "Main 1"}, {"city", "Gent"}})
                                .from_steward("address", "alice")
                                .base("erp", {{"street", "Sixteen chars ok"}, {"city", "Gent"}})
                                .base("crm", {{"street", "Main 1"}, {"city", "Gent"}})
                                .build();
  const Reconciliation r = reconcile(rules, 1, state, upsert("erp", 5, {{"city", "Brugge"}}, 10));
  EXPECT_EQ(r.plan.to_text(),
            "plan customer from erp#5 under ruleset v1\n"
            "  address: invalid proposed {city=\"Brugge\", street=\"Sixteen chars ok\"}, golden "
            "stays {city=\"Gent\", street=\"Main 1\"}  [customer.address owner=erp "
            "on_foreign_write=revert] street longer than max_length 12 (16 characters)\n"
            "  open invalid_value on address: erp={city=\"Brugge\", street=\"Sixteen chars ok\"} "
            "golden={city=\"Gent\", street=\"Main 1\"}\n");
  EXPECT_EQ(r.after.golden.at("street"), Value{"Main 1"});
  EXPECT_EQ(r.after.golden.at("city"), Value{"Gent"});
}

// The same cause on shared groups gave the wrong decision: under last_writer_wins the erp's
// later edit of the city took the group, invalid street and all; under quarantine a concurrent
// edit opened concurrent_edit instead of invalid_value.
TEST(Regression, SharedGroupsAreValidatedWholeToo) {
  const RecordState state = StateBuilder()
                                .golden({{"street", "Main 1"}, {"city", "Gent"}})
                                .from_side("address", "crm", 5)
                                .base("erp", {{"street", "Sixteen chars ok"}, {"city", "Gent"}})
                                .base("crm", {{"street", "Main 1"}, {"city", "Gent"}})
                                .build();
  for (OnConflict policy :
       {OnConflict::kLastWriterWins, OnConflict::kQuarantine, OnConflict::kPriority}) {
    const Reconciliation r = reconcile(address_rules(shared_field(policy)), 1, state,
                                       upsert("erp", 5, {{"city", "Brugge"}}, 10));
    ASSERT_EQ(r.plan.decisions.size(), 1u) << to_string(policy);
    EXPECT_EQ(r.plan.decisions[0].outcome, Outcome::kInvalid) << r.plan.to_text();
    ASSERT_EQ(r.plan.opened.size(), 1u) << r.plan.to_text();
    EXPECT_EQ(r.plan.opened[0].kind, ConflictKind::kInvalidValue) << r.plan.to_text();
    EXPECT_EQ(r.after.golden.at("street"), Value{"Main 1"});
  }
}

// A steward's --take of a side whose group holds an invalid member is refused, whichever member
// the conflict was about.
TEST(Regression, TakingASideWithAnInvalidGroupMemberIsRefused) {
  const EntityRules rules = address_rules(shared_field());
  const RecordState state = StateBuilder()
                                .golden({{"street", "Main 1"}, {"city", "Gent"}})
                                .base("erp", {{"street", "Sixteen chars ok"}, {"city", "Brugge"}})
                                .base("crm", {{"street", "Main 1"}, {"city", "Gent"}})
                                .conflict(3, "address", ConflictKind::kConcurrentEdit)
                                .build();
  Resolution take;
  take.kind = Resolution::Kind::kTakeSide;
  take.side = "erp";
  take.steward = "alice";
  try {
    resolve(rules, 1, state, OpenConflict{3, "address", ConflictKind::kConcurrentEdit, "erp"},
            take);
    FAIL() << "an invalid group was taken";
  } catch (const ResolutionError& e) {
    EXPECT_EQ(std::string(e.what()),
              "the chosen value is invalid: street longer than max_length 12 (16 characters)");
  }
}

// Issue 10.3/10.4: a value over 1 MiB used to be replaced, in the change, by its first 64 bytes
// and "..." (cut by bytes: a split UTF-8 sequence made the whole row fail in the JSON encoder),
// and that placeholder became the side's base, so every write-back to the row expected it and
// was superseded, 40 times a second. The core now keeps the real value: the unit is an
// invalid_value conflict, golden stays, and the side's base is what the side holds.
TEST(Regression, AValueOverTheLimitIsInvalidAndTheBaseKeepsTheRealValue) {
  const EntityRules rules = RulesBuilder().field("notes", shared_field()).build();
  const RecordState state = StateBuilder()
                                .golden({{"notes", "short"}})
                                .base("erp", {{"notes", "short"}})
                                .base("crm", {{"notes", "short"}})
                                .build();
  std::string big;
  while (big.size() <= kMaxValueBytes) big += "\xC3\xA9t\xC3\xA9 ";  // "été ", 2-byte letters
  const Reconciliation r = reconcile(rules, 1, state, upsert("crm", 8, {{"notes", big}}, 10));
  ASSERT_EQ(r.plan.opened.size(), 1u) << r.plan.to_text().substr(0, 300);
  EXPECT_EQ(r.plan.opened[0].kind, ConflictKind::kInvalidValue);
  EXPECT_EQ(r.plan.opened[0].reason,
            "invalid value from crm: notes larger than the 1 MiB value limit (" +
                std::to_string(big.size()) + " bytes)");
  EXPECT_EQ(r.after.golden.at("notes"), Value{"short"});
  EXPECT_EQ(r.after.bases.at("crm").at("notes"), Value{big});
}

TEST(Regression, Utf8PrefixNeverSplitsASequence) {
  const std::string text = "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80x";  // é € 😀 x
  EXPECT_EQ(utf8_prefix(text, 0), "");
  EXPECT_EQ(utf8_prefix(text, 1), "\xC3\xA9");
  EXPECT_EQ(utf8_prefix(text, 2), "\xC3\xA9\xE2\x82\xAC");
  EXPECT_EQ(utf8_prefix(text, 3), "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  EXPECT_EQ(utf8_prefix(text, 9), text);
  EXPECT_TRUE(is_valid_utf8(utf8_prefix(text, 2)));
  EXPECT_EQ(utf8_abbreviated("abcdef", 3), "abc... (6 bytes)");
  EXPECT_EQ(utf8_abbreviated("abc", 3), "abc");
}

TEST(Regression, Utf8ValidityAndLossyRepair) {
  EXPECT_TRUE(is_valid_utf8("plain \xC3\xA9 \xF0\x9F\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xC3"));              // truncated
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // a surrogate
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_EQ(utf8_lossy("a\xFF"
                       "b"),
            "a\xEF\xBF\xBD"
            "b");
}

// A delete of a side whose row the record is no longer linked to (the same delete redelivered)
// decides nothing: it opened a second foreign_delete conflict.
TEST(Regression, ADeleteOfARowThatIsNotLinkedChangesNothing) {
  const EntityRules rules = RulesBuilder().field("name", owned_by("erp")).build();
  EntityRules quarantining = rules;
  quarantining.delete_policy.on_foreign_delete = ForeignDelete::kQuarantine;
  const RecordState state = StateBuilder()
                                .golden({{"name", "Acme"}})
                                .base("erp", {{"name", "Acme"}})
                                .base("crm", {{"name", "Acme"}})
                                .build();
  const Reconciliation first = reconcile(quarantining, 1, state, erase("crm", 4, 10));
  ASSERT_EQ(first.plan.opened.size(), 1u);
  const Reconciliation again = reconcile(quarantining, 1, first.after, erase("crm", 4, 10));
  EXPECT_TRUE(again.plan.opened.empty()) << again.plan.to_text();
  EXPECT_EQ(test::state_text(again.after), test::state_text(first.after));
}

}  // namespace
}  // namespace mdsync::core
