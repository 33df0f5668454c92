// Property tests of DESIGN.md's guarantees on the pure core, driven through a simulation of
// the engine (sync_model.hpp): random rulesets over 2 or 3 sides, random interleavings of
// user edits, change processing, delayed and duplicated write-back deliveries and steward
// resolutions. Each property prints rapidcheck's seed and a shrunk counterexample (the
// ruleset, the actions, and the simulation's trace) when it fails; a real failure becomes a
// plain test in property_regressions_test.cpp. The simulated sides guard write-backs with
// WriteGuard::kNoPendingCapture (the store fix property_regressions_test.cpp asks for), so
// the properties keep looking for faults of the core rather than re-finding that one.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "sync_model.hpp"

namespace mdsync::core::model {

// rapidcheck prints drawn values through showValue, found by argument-dependent lookup.
void showValue(const Spec& spec, std::ostream& os) {
  os << spec_text(spec);
}
void showValue(const Action& action, std::ostream& os) {
  os << action_text(action);
}

namespace {

// Small alphabets, so that values collide: NULL, the empty string, case and blank
// variants for the compare modes, and several spellings of one number.
const std::vector<Value> kTextValues = {std::nullopt, "", "a", "A", " a", " ", "b", "abc"};
const std::vector<Value> kNumericValues = {std::nullopt, "0", "-0", "10", "10.0", "10.00", "7.5"};
const std::vector<Value> kBooleanValues = {std::nullopt, "true", "false"};

rc::Gen<Value> gen_value(FieldType type) {
  if (type == FieldType::kBoolean) return rc::gen::elementOf(kBooleanValues);
  return rc::gen::elementOf(type == FieldType::kNumeric ? kNumericValues : kTextValues);
}

// How often a run draws each kind of step. Deletes, guards and steward decisions take part in
// every run; the delete-heavy mix makes them a large share of it.
struct Mix {
  bool delete_heavy = false;
};

// 3-6 fields (text and numeric), optionally one group of 2-3 of them; a random owner per
// unit (a side or shared), random policies and compare modes, a random priority order;
// in one run out of three, validation (required, max_length 1, pattern [a-z]*) on some text
// units, groups included; on_create accept on some owned units; units some non-owning sides
// have no column for (never every side); a random delete policy per side (its delete is
// foreign, or counts and propagates as a delete or a deactivation), a foreign delete restored
// or quarantined.
// rapidcheck scales inRange and element by the test's size, which would make the first
// runs all "2 sides, shared, exact"; specs and single actions are drawn at full size, and
// only the number of actions grows with the size.
constexpr int kFullSize = 100;

rc::Gen<Spec> gen_spec(bool force_group, bool force_validation = false) {
  return rc::gen::resize(
      kFullSize, rc::gen::exec([force_group, force_validation] {
        Spec s;
        s.sides = *rc::gen::inRange(2, 4);
        const int nfields = *rc::gen::inRange(3, 7);
        std::vector<std::pair<std::string, FieldType>> fields;
        for (int i = 0; i < nfields; ++i)
          fields.emplace_back("f" + std::to_string(i),
                              *rc::gen::element(FieldType::kText, FieldType::kNumeric));
        const int group_size =
            force_group ? *rc::gen::inRange(2, 4) : *rc::gen::element(0, 0, 2, 3);
        const int group_start =
            group_size > 0 ? *rc::gen::inRange(0, nfields - group_size + 1) : -1;
        const bool validation = force_validation || *rc::gen::inRange(0, 3) == 0;
        for (int i = 0; i < nfields;) {
          UnitSpec u;
          if (i == group_start) {
            u.name = "g";
            u.members.assign(fields.begin() + i, fields.begin() + i + group_size);
            i += group_size;
          } else {
            u.name = fields[i].first;
            u.members = {fields[i]};
            ++i;
          }
          u.owner = *rc::gen::inRange(-1, s.sides);
          u.on_foreign_write = *rc::gen::element(ForeignWrite::kRevert, ForeignWrite::kQuarantine);
          u.on_conflict = *rc::gen::element(OnConflict::kQuarantine, OnConflict::kLastWriterWins,
                                            OnConflict::kPriority);
          u.compare = *rc::gen::element(Compare::kExact, Compare::kTrim, Compare::kCaseInsensitive);
          bool all_text = true, same_type = true;
          for (const auto& [f, t] : u.members) {
            (void)f;
            all_text = all_text && t == FieldType::kText;
            same_type = same_type && t == u.members.front().second;
          }
          if (validation && all_text) {
            if (*rc::gen::arbitrary<bool>()) u.max_length = 1;
            if (*rc::gen::arbitrary<bool>()) u.pattern = "[a-z]*";
            if (*rc::gen::inRange(0, 3) == 0) u.required = true;
          }
          if (u.owner >= 0 && same_type && *rc::gen::arbitrary<bool>())
            u.default_value = *gen_value(u.members.front().second);
          if (u.owner >= 0 && *rc::gen::inRange(0, 3) == 0) u.on_create = OnCreate::kAccept;
          // A side other than the owner may have no column for the unit (a group: for none
          // of its fields); a shared unit keeps at least one side that holds it.
          for (int side = 0; side < s.sides; ++side)
            if (side != u.owner && *rc::gen::inRange(0, 6) == 0 &&
                (u.owner >= 0 || static_cast<int>(u.unmapped.size()) + 1 < s.sides))
              u.unmapped.push_back(side);
          s.units.push_back(std::move(u));
        }
        // A side maps at least one field (the config refuses a mapping of none).
        for (int side = 0; side < s.sides; ++side) {
          bool maps_some = false;
          for (const UnitSpec& u : s.units)
            maps_some = maps_some ||
                        std::find(u.unmapped.begin(), u.unmapped.end(), side) == u.unmapped.end();
          if (!maps_some) {
            std::vector<int>& un = s.units.front().unmapped;
            un.erase(std::remove(un.begin(), un.end(), side), un.end());
          }
        }
        for (int side = 0; side < s.sides; ++side)
          s.del.sides.push_back(
              *rc::gen::weightedElement<DeleteSpec::Kind>({{3, DeleteSpec::kForeign},
                                                           {2, DeleteSpec::kDeletes},
                                                           {1, DeleteSpec::kDeactivates}}));
        s.del.quarantine = *rc::gen::inRange(0, 3) == 0;
        if (s.del.any(DeleteSpec::kDeactivates)) {
          UnitSpec active;
          active.name = "active";
          active.members = {{"active", FieldType::kBoolean}};
          active.owner = *rc::gen::inRange(-1, s.sides);
          active.on_foreign_write =
              *rc::gen::element(ForeignWrite::kRevert, ForeignWrite::kQuarantine);
          active.on_conflict = *rc::gen::element(
              OnConflict::kQuarantine, OnConflict::kLastWriterWins, OnConflict::kPriority);
          fields.emplace_back("active", FieldType::kBoolean);
          s.units.push_back(std::move(active));
        }
        for (int i = 0; i < s.sides; ++i) s.priority.push_back(i);
        for (int i = s.sides - 1; i > 0; --i)
          std::swap(s.priority[i], s.priority[*rc::gen::inRange(0, i + 1)]);
        s.creator = *rc::gen::inRange(0, s.sides);
        for (const auto& [field, type] : fields) s.initial[field] = *gen_value(type);
        return s;
      }));
}

rc::Gen<Action> gen_action(const Spec& spec, Mix mix) {
  std::vector<std::pair<std::string, FieldType>> fields;
  for (const UnitSpec& u : spec.units)
    for (const auto& member : u.members) fields.push_back(member);
  const int deletes = mix.delete_heavy ? 12 : 2;
  const int guards = mix.delete_heavy ? 5 : 1;
  const int lost_acks = mix.delete_heavy ? 12 : 6;
  return rc::gen::resize(
      kFullSize, rc::gen::exec([spec, fields, deletes, guards, lost_acks] {
        Action a;
        a.kind =
            *rc::gen::weightedElement<Action::Kind>({{30, Action::Kind::kEdit},
                                                     {20, Action::Kind::kProcess},
                                                     {6, Action::Kind::kProcessBatch},
                                                     {25, Action::Kind::kDeliver},
                                                     {lost_acks, Action::Kind::kDeliverLosingAck},
                                                     {4, Action::Kind::kRedeliverDone},
                                                     {8, Action::Kind::kResolve},
                                                     {deletes, Action::Kind::kDelete},
                                                     {guards, Action::Kind::kGuard}});
        a.side = *rc::gen::inRange(0, spec.sides);
        switch (a.kind) {
          case Action::Kind::kEdit: {
            const int n = *rc::gen::inRange(1, 4);
            for (int k = 0; k < n; ++k) {
              const auto& [field, type] =
                  fields[static_cast<std::size_t>(*rc::gen::inRange<int>(0, fields.size()))];
              a.edits[field] = *gen_value(type);
            }
            a.same_tick = *rc::gen::inRange(0, 5) == 0;
            break;
          }
          case Action::Kind::kRedeliverDone:
            a.pick = *rc::gen::inRange(0, 8);
            break;
          case Action::Kind::kResolve:
            a.pick = *rc::gen::inRange(0, 4);
            a.resolution =
                *rc::gen::element(Resolution::Kind::kTakeSide, Resolution::Kind::kTakeSide,
                                  Resolution::Kind::kDismiss, Resolution::Kind::kValue);
            if (a.resolution == Resolution::Kind::kValue)
              for (const auto& [field, type] : fields) a.edits[field] = *gen_value(type);
            break;
          default:
            break;
        }
        return a;
      }));
}

std::vector<Action> draw_actions(const Spec& spec, Mix mix = {}) {
  return *rc::gen::container<std::vector<Action>>(gen_action(spec, mix));
}

std::string lines(const std::vector<std::string>& items) {
  std::string s;
  for (const std::string& item : items) s += "  " + item + "\n";
  return s;
}

void assert_no_violations(const SyncModel& m) {
  if (!m.violations().empty())
    RC_FAIL("violations:\n" + lines(m.violations()) + "trace:\n" + m.trace());
}

void assert_drains(SyncModel& m) {
  if (!m.drain()) RC_FAIL("the system does not become quiet (ping-pong); trace:\n" + m.trace());
}

// Drains the model; fails on ping-pong or on a side that does not hold golden.
void assert_converges(SyncModel& m) {
  assert_drains(m);
  const std::vector<std::string> diverged = m.divergences();
  if (!diverged.empty())
    RC_FAIL("sides differ from golden after the drain:\n" + lines(diverged) + "golden state:\n" +
            state_text(m.state()) + "trace:\n" + m.trace());
}

}  // namespace

// (a) Guarantee 1: once user edits stop and everything is drained, every side holds the
// golden value of every field outside units held by an open conflict.
RC_GTEST_PROP(SyncProperties, ConvergesOnceChangesStop, ()) {
  const Spec spec = *gen_spec(false);
  const std::vector<Action> actions = draw_actions(spec);
  SyncModel m = run(spec, actions);
  assert_converges(m);
  // The distribution rapidcheck prints on success shows what the runs went through.
  const std::string trace = m.trace();
  auto seen = [&](const char* word) { return trace.find(word) != std::string::npos; };
  RC_TAG(spec.sides == 2 ? "2 sides" : "3 sides");
  RC_CLASSIFY(seen(": superseded"), "superseded write");
  RC_CLASSIFY(seen("close conflict"), "conflict resolved");
  RC_CLASSIFY(seen(": keep_golden") || seen("wrote last"), "concurrent edit decided");
  RC_CLASSIFY(seen("ack lost"), "lost ack");
  RC_CLASSIFY(seen("'s row: captured"), "row deleted");
}

// Guarantee 1 under deletes: rows deleted on every side by their users, the delete owner's
// delete propagated (as a delete or a deactivation), foreign deletes restored or held for a
// steward, propagated deletes vetoed by delete guards, sides that stay unreachable for long
// stretches (their writes queue up, and are withdrawn when the record no longer wants them),
// lost acknowledgements of inserts, updates and deletes. Once changes stop every side holds
// exactly what the record says: golden values where it lives, no row where it is deleted,
// detached, or held away by a foreign_delete conflict.
RC_GTEST_PROP(SyncProperties, ConvergesWithDeletesRestoresAndVetoes, ()) {
  const Spec spec = *gen_spec(false);
  const std::vector<Action> actions = draw_actions(spec, Mix{true});
  SyncModel m = run(spec, actions, Checks{true, false, false, false, true});
  assert_converges(m);
  assert_no_violations(m);
  const std::string trace = m.trace();
  auto seen = [&](const char* word) { return trace.find(word) != std::string::npos; };
  RC_CLASSIFY(seen("'s row: captured"), "row deleted");
  RC_CLASSIFY(seen("vetoed by"), "delete vetoed");
  RC_CLASSIFY(seen("withdraw #"), "write withdrawn");
  RC_CLASSIFY(seen("the side had applied it"), "withdrawn write found applied");
  RC_CLASSIFY(m.state().deleted, "record deleted at the end");
  RC_CLASSIFY(m.rules().delete_policy.sides.size() > 1, "several sides' deletes count");
  RC_CLASSIFY(!m.rules().unmapped.empty(), "a side lacks a field");
}

// (f) Golden takes only values that pass the unit's validation, a group as a whole: a side's
// value, a create's, a steward's.
RC_GTEST_PROP(SyncProperties, GoldenHoldsOnlyValidValues, ()) {
  const Spec spec = *gen_spec(true, true);
  const std::vector<Action> actions = draw_actions(spec);
  SyncModel m = run(spec, actions, Checks{false, false, false, false, true});
  assert_drains(m);
  assert_no_violations(m);
}

// Quiet system: once converged, nothing is written, and a further drain does nothing.
RC_GTEST_PROP(SyncProperties, ConvergedSystemStaysQuiet, ()) {
  const Spec spec = *gen_spec(false);
  const std::vector<Action> actions = draw_actions(spec);
  SyncModel m = run(spec, actions);
  assert_converges(m);
  const std::vector<RowWrite> writes = m.plan_now();
  if (!writes.empty())
    RC_FAIL("a converged record plans writes:\n" + writes_text(writes) + "golden state:\n" +
            state_text(m.state()) + "trace:\n" + m.trace());
  const std::string before = m.trace();
  RC_ASSERT(m.drain());
  RC_ASSERT(m.trace() == before);
}

// (b) Guarantee 2: an owned unit's golden value comes from its owner, a steward, or the
// create default; never from another side, except a create's seed under on_create accept,
// which the owner's first value then replaces.
RC_GTEST_PROP(SyncProperties, OwnedUnitsChangeOnlyByOwnerOrSteward, ()) {
  const Spec spec = *gen_spec(false);
  const std::vector<Action> actions = draw_actions(spec);
  SyncModel m = run(spec, actions, Checks{true, false, false, false});
  assert_drains(m);
  assert_no_violations(m);
  for (const Unit& unit : m.rules().units) {
    if (unit.policy.is_shared()) continue;
    const std::string& setter = m.setters().at(unit.name);
    // The delete of a side whose rule deactivates sets the flag by the delete policy's
    // authority; at a create, a side's value seeds a unit whose rule says on_create accept
    // (the in-step checks make sure only then, and that the owner's first value replaces it).
    bool deactivated = false;
    for (const SideDelete& d : m.rules().delete_policy.sides)
      deactivated = deactivated || (d.propagate == DeletePropagation::kDeactivate &&
                                    d.deactivate_field == unit.name &&
                                    setter.rfind("delete:" + d.side + "#", 0) == 0);
    const bool seeded = unit.policy.on_create == OnCreate::kAccept && setter.rfind("seed:", 0) == 0;
    const bool ok = setter == "default" || setter.rfind("steward:", 0) == 0 ||
                    setter.rfind(unit.policy.owner + "#", 0) == 0 || deactivated || seeded;
    if (!ok)
      RC_FAIL(unit.name + " (owner " + unit.policy.owner + ") was last set by " + setter +
              "\ntrace:\n" + m.trace());
  }
  const std::string trace = m.trace();
  RC_CLASSIFY(trace.find(": seed golden") != std::string::npos, "seeded at the create");
  RC_CLASSIFY(trace.find("replaces the seed by") != std::string::npos, "the owner replaced a seed");
}

// (c) Reconciling a change a second time, right after the first, changes nothing: same
// state (golden, bases, provenance, conflicts), no golden change, no new conflict.
RC_GTEST_PROP(SyncProperties, ReconcilingAChangeTwiceIsIdempotent, ()) {
  const Spec spec = *gen_spec(false);
  const std::vector<Action> actions = draw_actions(spec);
  SyncModel m = run(spec, actions, Checks{false, true, false, false});
  assert_drains(m);
  assert_no_violations(m);
}

// (d) A group's golden values always come together from one source, and every write-back
// carries a group whole.
RC_GTEST_PROP(SyncProperties, GroupsAreNeverMixed, ()) {
  const Spec spec = *gen_spec(true);
  const std::vector<Action> actions = draw_actions(spec);
  SyncModel m = run(spec, actions, Checks{false, false, true, false});
  assert_drains(m);
  assert_no_violations(m);
}

// (e) The same inputs give the same plans, writes and states: each core call made twice
// agrees with itself, and a whole run replayed gives the same trace and end state.
RC_GTEST_PROP(SyncProperties, SameInputsGiveSamePlansAndStates, ()) {
  const Spec spec = *gen_spec(false);
  const std::vector<Action> actions = draw_actions(spec);
  SyncModel first = run(spec, actions, Checks{false, false, false, true});
  SyncModel second = run(spec, actions, Checks{false, false, false, true});
  RC_ASSERT(first.drain() == second.drain());
  assert_no_violations(first);
  RC_ASSERT(first.trace() == second.trace());
  RC_ASSERT(state_text(first.state()) == state_text(second.state()));
  for (const auto& [side, row] : first.sides()) RC_ASSERT(row.row == second.sides().at(side).row);
}

}  // namespace mdsync::core::model
