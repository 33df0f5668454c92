// Deterministic scenarios from counterexamples the property tests (property_test.cpp) found,
// replayed through the engine simulation (sync_model.hpp). Each names the fault it shows.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sync_model.hpp"

namespace mdsync::core::model {
namespace {

constexpr int kErp = 0;
constexpr int kCrm = 1;

// customer with one shared text field, `name`, last writer wins; erp creates it as "a".
Spec shared_name_spec() {
  Spec s;
  s.sides = 2;
  UnitSpec name;
  name.name = "name";
  name.members = {{"name", FieldType::kText}};
  name.owner = -1;
  name.on_conflict = OnConflict::kLastWriterWins;
  s.units = {name};
  s.priority = {kErp, kCrm};
  s.creator = kErp;
  s.initial = {{"name", "a"}};
  return s;
}

Action edit(int side, const std::string& value) {
  Action a;
  a.kind = Action::Kind::kEdit;
  a.side = side;
  a.edits = {{"name", value}};
  return a;
}

Action step(Action::Kind kind, int side) {
  Action a;
  a.kind = kind;
  a.side = side;
  return a;
}

// crm changes name a -> b -> a (two captures, not yet reconciled); then erp changes it to c
// (the latest edit), and the engine writes c to crm expecting a. crm holds a again, so the
// conditional update applies; then crm's stale captures are reconciled against the base the
// write left (c): "b" looks like crm's own new change and is accepted, then "a".
std::vector<Action> changed_and_changed_back() {
  return {edit(kCrm, "b"), edit(kCrm, "a"), edit(kErp, "c"), step(Action::Kind::kProcess, kErp),
          step(Action::Kind::kDeliver, kCrm)};
}

std::string failure_text(const SyncModel& m) {
  std::string trace = m.trace();
  if (trace.size() > 5000) trace = trace.substr(0, 5000) + "...\n";
  std::string s = "golden state:\n" + state_text(m.state()) + "trace:\n" + trace;
  for (const std::string& d : m.divergences()) s += "diverged: " + d + "\n";
  return s;
}

// Found by SyncProperties.ConvergesOnceChangesStop (shrunk counterexample: shared numeric
// f0, crm edits "0" then "10" back, shop edits NULL, shop's change reconciled, the write-back
// to crm delivered, then crm's changes reconciled; crm ends with NULL, golden "10").
//
// Not a core fault: the core decides right on what it is told. The fault was in how the store
// applied write-backs (then engine/store/src/side_store.cpp SideStore::apply, case kUpdate;
// now engine/store/src/write_chunk.cpp): the UPDATE was conditional only on the row's current
// values (`col IS NOT DISTINCT FROM expected`), not on the side having no captured change of
// the row that the engine has not reconciled yet. A value changed and changed back (A -> B ->
// A) passes the check, the write's values become crm's base (sync_engine.cpp
// apply_writebacks, `base = base || ...`), and crm's pending captures are then diffed
// against that base: "b" looks like crm's own new edit of "c". crm keeps the engine's "c"
// while golden ends "a" (guarantee 1), and crm's earlier edits beat erp's later "c" under
// last_writer_wins.
// Fixed in the trigger side's apply: an update also requires that the row has no unreconciled
// capture (`AND NOT EXISTS (SELECT 1 FROM mdsync.capture c WHERE c.entity = .. AND
// c.row_key = ..)`, after locking the row), so the write is superseded and planned again once
// the captures are reconciled. The model runs with kStoreWriteGuard, the store's behaviour.
TEST(PropertyRegression, ValueChangedBackBeforeReconcileDoesNotLetAWriteBackThrough) {
  SyncModel m = run(shared_name_spec(), changed_and_changed_back(), {}, kStoreWriteGuard);
  ASSERT_TRUE(m.drain()) << failure_text(m);
  EXPECT_TRUE(m.divergences().empty()) << failure_text(m);
  EXPECT_EQ(m.state().golden.at("name"), Value{"c"}) << "erp wrote last\n" << failure_text(m);
}

// The same, one step further (found by SyncProperties.OwnedUnitsChangeOnlyByOwnerOrSteward
// as a drain that never becomes quiet): crm's row ("c") now differs from its base ("a")
// with nothing captured, so the next write-back to crm expects "a", is superseded, is
// planned again identically (sync_engine.cpp apply_writebacks re-plans every superseded
// record, line ~477), and so on for ever: the outbox grows by one superseded row per pass.
// Same fix.
TEST(PropertyRegression, ValueChangedBackBeforeReconcileDoesNotMakeWriteBacksPingPong) {
  SyncModel m = run(shared_name_spec(), changed_and_changed_back(), {}, kStoreWriteGuard);
  ASSERT_TRUE(m.drain()) << failure_text(m);
  m.apply(edit(kErp, "d"));
  EXPECT_TRUE(m.drain()) << "write-backs to crm are superseded for ever\n" << failure_text(m);
  EXPECT_TRUE(m.divergences().empty()) << failure_text(m);
}

// With the fix in the simulated store, the same scenario converges on erp's later value.
TEST(PropertyRegression, WriteBackThatWaitsForPendingCapturesConverges) {
  SyncModel m =
      run(shared_name_spec(), changed_and_changed_back(), {}, WriteGuard::kNoPendingCapture);
  ASSERT_TRUE(m.drain()) << failure_text(m);
  EXPECT_TRUE(m.divergences().empty()) << failure_text(m);
  EXPECT_EQ(m.state().golden.at("name"), Value{"c"}) << failure_text(m);
  m.apply(edit(kErp, "d"));
  ASSERT_TRUE(m.drain()) << failure_text(m);
  EXPECT_TRUE(m.divergences().empty()) << failure_text(m);
}

// ---- issue 10: deletes, withdrawn writes ------------------------------------------------

// customer with one shared text field `name`; erp creates it as "a"; `owner` owns deletes.
Spec deletes_spec(int sides, int owner, bool quarantine = false) {
  Spec s = shared_name_spec();
  s.sides = sides;
  s.priority.clear();
  for (int i = 0; i < sides; ++i) s.priority.push_back(i);
  s.del = DeleteSpec::owner(owner);
  s.del.quarantine = quarantine;
  return s;
}

constexpr int kShop = 2;

Action process(int side) {
  return step(Action::Kind::kProcess, side);
}
Action deliver(int side) {
  return step(Action::Kind::kDeliver, side);
}
Action delete_row(int side) {
  return step(Action::Kind::kDelete, side);
}

void expect_converges(SyncModel& m) {
  ASSERT_TRUE(m.drain()) << failure_text(m);
  EXPECT_TRUE(m.divergences().empty()) << failure_text(m);
  EXPECT_TRUE(m.violations().empty()) << failure_text(m);
}

// Issue 10.1: an update to crm is queued (crm is unreachable); a crm user deletes the row;
// erp owns deletes, so crm's delete is restored. The queued update was planned again as an
// update of a row that is gone, and so was the restore; both failed and crm stayed without the
// row. Now the update is withdrawn and the restore is an insert.
TEST(PropertyRegression, ForeignDeleteOfARowWithAQueuedUpdateIsRestoredByAnInsert) {
  SyncModel m =
      run(deletes_spec(2, kErp), {edit(kErp, "b"), process(kErp), delete_row(kCrm), process(kCrm)});
  EXPECT_NE(m.trace().find("withdraw #"), std::string::npos) << failure_text(m);
  expect_converges(m);
  EXPECT_TRUE(m.sides().at("crm").has_row) << failure_text(m);
  EXPECT_EQ(m.sides().at("crm").row.at("name"), Value{"b"}) << failure_text(m);
}

// Issue 10.2: erp creates a record, the insert into crm is queued (crm is down), then erp, the
// delete owner, deletes it. The queued insert was applied when crm came back and linked to a
// deleted record. Now it is withdrawn: crm never gets the row.
TEST(PropertyRegression, DeleteOwnersDeleteWithdrawsAnInsertQueuedElsewhere) {
  SyncModel late(deletes_spec(2, kErp), {}, kStoreWriteGuard);
  late.create_record_without_delivery();
  late.apply(delete_row(kErp));
  late.apply(process(kErp));
  EXPECT_NE(late.trace().find("withdraw #"), std::string::npos) << failure_text(late);
  expect_converges(late);
  EXPECT_FALSE(late.sides().at("crm").has_row) << failure_text(late);
  EXPECT_TRUE(late.state().deleted) << failure_text(late);
}

// The withdrawn insert had in fact been applied (the engine crashed before it heard): the
// side says so when the withdrawal reaches it, the engine takes the row in, and deletes it.
TEST(PropertyRegression, AWithdrawnInsertThatWasAppliedIsTakenInAndDeleted) {
  SyncModel m(deletes_spec(2, kErp), {}, kStoreWriteGuard);
  m.create_record_without_delivery();
  m.apply(step(Action::Kind::kDeliverLosingAck, kCrm));
  m.apply(delete_row(kErp));
  m.apply(process(kErp));
  m.apply(deliver(kCrm));
  EXPECT_NE(m.trace().find("withdrawn, but the side had applied it"), std::string::npos)
      << failure_text(m);
  expect_converges(m);
  EXPECT_FALSE(m.sides().at("crm").has_row) << failure_text(m);
}

// Found by SyncProperties.ConvergesOnceChangesStop: shop (the delete owner) deleted the record;
// the delete reached crm while a crm user's edit was still captured and not reconciled. That
// edit was then reconciled as a change of a row the engine no longer knew (in the store: a new
// record, created from a row that is gone); when erp's delete guard vetoed its delete and the
// record was restored, crm got updates of the vanished row for ever. A delete now waits for the
// row's captured changes, like an update (write_chunk.cpp apply_chunk).
TEST(PropertyRegression, APropagatedDeleteWaitsForTheRowsCapturedChanges) {
  SyncModel m = run(deletes_spec(3, kShop),
                    {step(Action::Kind::kGuard, kErp), delete_row(kShop), process(kShop),
                     edit(kCrm, "c"), deliver(kCrm), process(kCrm), deliver(kErp)});
  expect_converges(m);
  EXPECT_FALSE(m.state().deleted) << "erp's guard vetoed the delete\n" << failure_text(m);
  EXPECT_TRUE(m.sides().at("crm").has_row) << failure_text(m);
}

// Found by SyncProperties.ConvergesOnceChangesStop (seed 16240641151259760376): shop's delete
// propagated; crm's user deleted crm's row too; erp's delete guard vetoed the delete, so the
// record was restored on crm and shop meanwhile, with a foreign_delete conflict for crm. The
// restore reached crm; then the steward accepted crm's delete, whose rule deactivates (active =
// false elsewhere). crm was detached although it held the restored row again, linked, so that
// row kept its old values for good. Now a deleting side that holds a linked row again is
// deactivated with the others.
TEST(PropertyRegression, AcceptingADeactivatingDeleteAfterTheRestoreReachedTheSideConverges) {
  Spec spec = deletes_spec(3, kErp, true);
  UnitSpec active;
  active.name = "active";
  active.members = {{"active", FieldType::kBoolean}};
  spec.units.push_back(active);
  spec.del.sides = {DeleteSpec::kDeletes, DeleteSpec::kDeactivates, DeleteSpec::kDeletes};
  Action take_crm;
  take_crm.kind = Action::Kind::kResolve;
  take_crm.side = kCrm;
  take_crm.pick = 0;
  for (const bool restore_delivered_first : {true, false}) {
    std::vector<Action> actions = {step(Action::Kind::kGuard, kErp), delete_row(kShop),
                                   delete_row(kCrm), step(Action::Kind::kProcessBatch, kErp),
                                   deliver(kErp)};
    if (restore_delivered_first) actions.push_back(deliver(kCrm));
    actions.push_back(take_crm);
    SyncModel m = run(spec, actions);
    SCOPED_TRACE(restore_delivered_first ? "the restore reached crm before the resolution"
                                         : "the restore was still queued at the resolution");
    ASSERT_NE(m.trace().find("accepted crm's delete"), std::string::npos) << failure_text(m);
    expect_converges(m);
    EXPECT_FALSE(m.state().deleted) << failure_text(m);
    EXPECT_EQ(m.state().golden.at("active"), Value{"false"}) << failure_text(m);
    EXPECT_EQ(m.sides().at("erp").row.at("active"), Value{"false"}) << failure_text(m);
    if (restore_delivered_first) {
      EXPECT_TRUE(m.sides().at("crm").has_row) << failure_text(m);
      EXPECT_EQ(m.sides().at("crm").row.at("active"), Value{"false"}) << failure_text(m);
    } else {
      EXPECT_FALSE(m.sides().at("crm").has_row) << failure_text(m);
    }
  }
}

// DESIGN.md: a resolution is written back even when a capture of the unit, reconciled after
// it, opens a new conflict (the write is conditional on the base, so the newer side value is
// not overwritten): erp gets the steward's value; crm keeps its newer one, held by the new
// conflict.
TEST(PropertyRegression, AResolutionIsWrittenBackWhenANewConflictOpensRightAfter) {
  Spec spec = shared_name_spec();
  spec.units[0].on_conflict = OnConflict::kQuarantine;
  Action resolve;
  resolve.kind = Action::Kind::kResolve;
  resolve.resolution = Resolution::Kind::kValue;
  resolve.edits = {{"name", "d"}};
  SyncModel m = run(spec, {edit(kErp, "b"), edit(kCrm, "c"), process(kErp), process(kCrm), resolve,
                           edit(kCrm, "e"), process(kCrm)});
  ASSERT_TRUE(m.drain()) << failure_text(m);
  EXPECT_EQ(m.state().golden.at("name"), Value{"d"}) << failure_text(m);
  EXPECT_EQ(m.sides().at("erp").row.at("name"), Value{"d"}) << failure_text(m);
  EXPECT_EQ(m.sides().at("crm").row.at("name"), Value{"e"}) << failure_text(m);
  ASSERT_EQ(m.state().open_conflicts.size(), 1u) << failure_text(m);
  EXPECT_TRUE(m.divergences().empty()) << failure_text(m);
}

}  // namespace
}  // namespace mdsync::core::model
