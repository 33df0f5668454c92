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
using test::StateBuilder;

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

}  // namespace
}  // namespace mdsync::core
