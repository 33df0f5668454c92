// A pure simulation of the engine around the reconciliation core, for the property tests:
// N sides (erp, crm, shop), each holding one row of one record, capture queues, a write-back
// outbox, and the engine's RecordState. The core is driven the way engine/store drives it
// (sync_engine.cpp, record_repository.cpp, conflict_queue.cpp, trigger_side_writes.cpp), with rules
// prepare()d as the rules reader does:
//   - a user edit on a side changes its row; the capture trigger records the fields whose
//     value is SQL-distinct, canonicalized, with the side's next seq and a logical time;
//   - processing the oldest captured change of a side (or a batch of every side's changes,
//     merged by commit time): reconcile_in_place, persist (new conflicts get ids), then
//     plan_writebacks with the pending outbox values in flight, and enqueue;
//   - delivering the oldest pending write of a side (the store's per-record order): an update
//     applies only if the side still holds `expected` (IS NOT DISTINCT FROM) -- see
//     WriteGuard -- else it is superseded and the record is planned again; an applied write
//     is remembered in the side's idempotency table and overlaid on the engine's base;
//   - a lost ack: the side applied an update but the engine did not record it; the write
//     stays pending and is redelivered (a no-op on the side) before the side's next change
//     is reconciled, as run_pass delivers before it reconciles. Inserts never lose theirs;
//   - a steward resolves an open conflict through core::resolve (time from the logical
//     clock), then the record is planned;
//   - a user deletes a side's row (captured as a delete); the record's delete policy decides
//     (the delete of a side listed in it propagates as that side's rule says, a delete or a
//     deactivation; another side's delete is restored or quarantined); a side whose delete
//     guard is on vetoes a propagated delete (core::veto_delete), and the record lives on;
//   - a side may have no column for some fields (EntityRules::unmapped): its users cannot
//     edit them, its captures never carry them, and no write to it may carry them;
//   - planning withdraws queued writes the record no longer wants; a withdrawn write is
//     'cancelling' until its side confirms it never applied it (the side records the id as
//     cancelled) or reports that it did (an insert or update whose ack was lost), in which
//     case the engine takes it in as applied and plans the record again.
// One record. Every step is appended to a text trace, so a failing property shows the whole
// run.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "mdsync/core/reconciler.hpp"
#include "mdsync/core/validation.hpp"
#include "mdsync/core/writeback_plan.hpp"
#include "test_support.hpp"

namespace mdsync::core::model {

inline const std::vector<std::string> kAllSides = {"erp", "crm", "shop"};
constexpr std::int64_t kVersion = 7;

// ---- the ruleset as a small value: prints, shrinks, builds EntityRules -------------------

struct UnitSpec {
  std::string name;
  std::vector<std::pair<std::string, FieldType>> members;  // one member: a plain field
  int owner = -1;                                          // index into the sides; -1: shared
  ForeignWrite on_foreign_write = ForeignWrite::kRevert;
  OnConflict on_conflict = OnConflict::kQuarantine;
  Compare compare = Compare::kExact;
  std::optional<std::size_t> max_length;
  std::optional<std::string> pattern;
  bool required = false;
  Value default_value;
  OnCreate on_create = OnCreate::kDefault;  // owned units: a non-owner's create seeds them
  std::vector<int> unmapped = {};           // sides with no column for the unit's fields
};

// The record's delete policy (rules' `delete`): per side, whether its delete counts and how it
// propagates.
struct DeleteSpec {
  enum Kind { kForeign, kDeletes, kDeactivates };  // kDeactivates: active = false elsewhere
  std::vector<Kind> sides = {};                    // by side index; a side past the end: kForeign
  bool quarantine = false;  // a foreign delete opens foreign_delete instead of a restore

  Kind of(int side) const {
    return side < static_cast<int>(sides.size()) ? sides[static_cast<std::size_t>(side)] : kForeign;
  }
  bool any(Kind k) const { return std::find(sides.begin(), sides.end(), k) != sides.end(); }
  // Only `owner`'s delete counts (the rule file's {"owner": ...}); -1: no side's.
  static DeleteSpec owner(int owner, Kind kind = kDeletes) {
    DeleteSpec d;
    if (owner >= 0) {
      d.sides.assign(static_cast<std::size_t>(owner) + 1, kForeign);
      d.sides.back() = kind;
    }
    return d;
  }
};

struct Spec {
  int sides = 2;
  std::vector<UnitSpec> units;
  std::vector<int> priority;  // a permutation of the side indexes
  int creator = 0;            // the side whose row creates the record
  FieldValues initial;        // the creator's row, raw
  DeleteSpec del;

  std::vector<std::string> side_names() const {
    return std::vector<std::string>(kAllSides.begin(), kAllSides.begin() + sides);
  }

  EntityRules rules() const {
    EntityRules r;
    r.entity = "customer";
    for (int p : priority) r.priority.push_back(kAllSides[p]);
    r.create = side_names();
    r.default_policy.owner = kShared;
    for (const UnitSpec& u : units) {
      Unit unit;
      unit.name = u.name;
      for (const auto& [field, type] : u.members) {
        r.fields.emplace_back(field, type);
        unit.members.push_back(field);
      }
      unit.policy.owner = u.owner < 0 ? std::string(kShared) : kAllSides[u.owner];
      unit.policy.on_foreign_write = u.on_foreign_write;
      unit.policy.on_conflict = u.on_conflict;
      unit.policy.compare = u.compare;
      unit.policy.validate.max_length = u.max_length;
      unit.policy.validate.pattern = u.pattern;
      unit.policy.validate.required = u.required;
      unit.policy.default_value = u.default_value;
      unit.policy.on_create = u.on_create;
      for (int side : u.unmapped)
        for (const auto& [field, type] : u.members) {
          (void)type;
          r.unmapped[kAllSides[side]].push_back(field);
        }
      r.units.push_back(std::move(unit));
    }
    for (int p : priority) {  // the rules reader lists them in priority order
      const DeleteSpec::Kind kind = del.of(p);
      if (kind == DeleteSpec::kForeign) continue;
      const bool deactivates = kind == DeleteSpec::kDeactivates;
      r.delete_policy.sides.push_back(SideDelete{
          kAllSides[p], deactivates ? DeletePropagation::kDeactivate : DeletePropagation::kDelete,
          deactivates ? "active" : ""});
    }
    r.delete_policy.on_foreign_delete =
        del.quarantine ? ForeignDelete::kQuarantine : ForeignDelete::kRestore;
    return r;
  }
};

inline std::string spec_text(const Spec& s) {
  std::ostringstream out;
  out << "sides=" << s.sides << " creator=" << kAllSides[s.creator] << " priority=[";
  for (std::size_t i = 0; i < s.priority.size(); ++i)
    out << (i ? "," : "") << kAllSides[s.priority[i]];
  out << "]\n";
  for (const UnitSpec& u : s.units) {
    out << "  unit " << u.name << " {";
    for (std::size_t i = 0; i < u.members.size(); ++i)
      out << (i ? ", " : "") << u.members[i].first << ":" << to_string(u.members[i].second);
    out << "} owner=" << (u.owner < 0 ? std::string(kShared) : kAllSides[u.owner])
        << " on_foreign_write=" << to_string(u.on_foreign_write)
        << " on_conflict=" << to_string(u.on_conflict) << " compare=" << to_string(u.compare);
    if (u.max_length) out << " max_length=" << *u.max_length;
    if (u.pattern) out << " pattern=" << *u.pattern;
    if (u.required) out << " required";
    out << " default=" << show(u.default_value);
    if (u.on_create == OnCreate::kAccept) out << " on_create=accept";
    for (int side : u.unmapped) out << " unmapped on " << kAllSides[side];
    out << "\n";
  }
  out << "  delete:";
  bool any = false;
  for (int i = 0; i < s.sides; ++i) {
    if (s.del.of(i) == DeleteSpec::kForeign) continue;
    out << " " << kAllSides[i]
        << (s.del.of(i) == DeleteSpec::kDeactivates ? "=deactivate:active" : "=delete");
    any = true;
  }
  out << (any ? "" : " none")
      << (s.del.quarantine ? " on_foreign_delete=quarantine" : " on_foreign_delete=restore")
      << "\n";
  out << "  initial: " << test::values_text(s.initial) << "\n";
  return out.str();
}

// ---- what happens next ---------------------------------------------------------------

struct Action {
  enum class Kind {
    kEdit,              // a user changes fields of `side`'s row
    kProcess,           // the engine reconciles `side`'s oldest captured change
    kProcessBatch,      // ... every captured change, merged by commit time, planned once
    kDeliver,           // the oldest pending write-back to `side` is delivered
    kDeliverLosingAck,  // ... applied on the side, but the engine's record of it is lost
    kRedeliverDone,     // an already delivered write-back (#pick) reaches `side` again
    kResolve,           // a steward resolves open conflict #pick: take `side`, dismiss, or
                        // set the unit's members to their `edits` values
    kDelete,            // a user deletes `side`'s row
    kGuard,             // `side`'s delete guard turns on (or off again): it vetoes deletes
  };
  Kind kind = Kind::kProcess;
  int side = 0;
  FieldValues edits;       // kEdit: the new raw values
  bool same_tick = false;  // kEdit: committed at the same clock tick as the previous edit
  int pick = 0;
  Resolution::Kind resolution = Resolution::Kind::kTakeSide;  // kResolve
};

inline std::string action_text(const Action& a) {
  const std::string side = kAllSides[a.side];
  switch (a.kind) {
    case Action::Kind::kEdit:
      return "edit " + side + " {" + test::values_text(a.edits) + "}" +
             (a.same_tick ? " same tick" : "");
    case Action::Kind::kProcess:
      return "process " + side;
    case Action::Kind::kProcessBatch:
      return "process a batch";
    case Action::Kind::kDeliver:
      return "deliver " + side;
    case Action::Kind::kDeliverLosingAck:
      return "deliver " + side + " losing the ack";
    case Action::Kind::kRedeliverDone:
      return "redeliver done write #" + std::to_string(a.pick) + " to " + side;
    case Action::Kind::kDelete:
      return "delete " + side + "'s row";
    case Action::Kind::kGuard:
      return "toggle " + side + "'s delete guard";
    case Action::Kind::kResolve:
      return "resolve conflict #" + std::to_string(a.pick) +
             (a.resolution == Resolution::Kind::kDismiss ? " dismiss"
              : a.resolution == Resolution::Kind::kValue
                  ? " value {" + test::values_text(a.edits) + "}"
                  : " take " + side);
  }
  return "?";
}

// ---- the simulation ------------------------------------------------------------------

// Which in-step checks a run makes (each costs extra core calls); violations are collected.
struct Checks {
  bool ownership = false;    // (b) an owned unit's golden comes from its owner or a steward
  bool idempotence = false;  // (c) the same change reconciled twice changes nothing more
  bool groups = false;       // (d) a group's golden comes whole from one source
  bool determinism = false;  // (e) the same core call twice gives the same plan and state
  bool validity = false;     // (f) golden takes only values that pass the unit's validation
};

// What a side checks before it applies a write-back update.
enum class WriteGuard {
  // The trigger side before the fix: the row still holds `expected` (IS NOT DISTINCT FROM).
  kExpectedValues,
  // ... and no captured change of the row that the engine has not reconciled yet touches a
  // field the write sets. Without this, a side that changes a field and changes it back
  // (A -> B -> A) lets a write-back expecting A land before the engine has seen B; the stale
  // captures are then reconciled against the written base, and the side diverges for good
  // or the write-back ping-pongs (see property_regressions_test.cpp). The properties run
  // with this guard, which stands for a fix of the store.
  kNoPendingCapture,
};

// What the trigger side's apply (TriggerSide::apply) does: it refuses to update a row that has
// captured changes not yet reconciled (the fix of the fault above, pinned by the regression tests).
inline constexpr WriteGuard kStoreWriteGuard = WriteGuard::kNoPendingCapture;

// SQL's IS NOT DISTINCT FROM on the side's column: numeric columns compare as numbers,
// text columns byte for byte.
inline bool sql_equal(FieldType type, const Value& a, const Value& b) {
  if (!a || !b) return !a && !b;
  if (type == FieldType::kNumeric || type == FieldType::kInteger) {
    auto x = canonical_decimal(*a), y = canonical_decimal(*b);
    if (x && y) return *x == *y;
  }
  return *a == *b;
}

// test::state_text, plus the side that opened each conflict.
inline std::string state_text(const RecordState& s) {
  std::string out = test::state_text(s);
  for (const OpenConflict& c : s.open_conflicts)
    out += "conflict " + std::to_string(c.id) + " opened by " + c.side + "\n";
  return out;
}

inline const Value& value_in(const FieldValues& values, const std::string& field) {
  static const Value kNull;
  auto it = values.find(field);
  return it == values.end() ? kNull : it->second;
}

inline std::string write_text(const RowWrite& w) {
  std::string s = w.side + " " + to_string(w.kind) + " {" + test::values_text(w.values) + "}";
  if (!w.expected.empty()) s += " expecting {" + test::values_text(w.expected) + "}";
  return s;
}

inline std::string writes_text(const std::vector<RowWrite>& writes) {
  std::string s;
  for (const RowWrite& w : writes) s += write_text(w) + "\n";
  return s;
}

class SyncModel {
 public:
  struct SideRow {
    bool has_row = false;
    FieldValues row;                   // raw values, as the side's columns hold them
    std::set<std::int64_t> applied;    // the side's idempotency table (outbox ids)
    std::int64_t next_seq = 0;         // the capture sequence
    std::deque<Change> captured;       // not yet reconciled, oldest first
    std::int64_t last_edit_time = -1;  // for kEdit same_tick
    std::set<std::int64_t> cancelled;  // outbox ids the side recorded as withdrawn
    bool guarded = false;              // its delete guard vetoes deletes
    int row_number = 0;                // rows this side has had for the record (trace only)
  };
  struct OutboxEntry {
    enum class Status { kPending, kCancelling, kDone, kSuperseded, kCancelled, kVetoed };
    std::int64_t id = 0;
    RowWrite write;
    Status status = Status::kPending;
    bool applied_on_side = false;  // kDeliverLosingAck: the side has it, the engine does not know
  };

  SyncModel(Spec spec, Checks checks, WriteGuard guard)
      : spec_(std::move(spec)),
        rules_(spec_.rules()),
        unprepared_rules_(rules_),
        sides_(spec_.side_names()),
        checks_(checks),
        guard_(guard) {
    prepare(rules_);  // as the rules reader does for the engine
    for (const std::string& s : sides_) side_rows_[s];
  }

  // The creator's row exists, its insert is captured and reconciled, and the inserts on the
  // other sides are delivered.
  void create_record() {
    create_record_without_delivery();
    for (const std::string& s : sides_)  // the inserts (bounded: a broken core may loop)
      for (int k = 0; k < 3 && deliver(s, false); ++k) {
      }
  }

  // The same, with the inserts into the other sides still queued.
  void create_record_without_delivery() {
    const std::string& creator = sides_[spec_.creator];
    SideRow& c = side_rows_[creator];
    c.has_row = true;
    ++c.row_number;
    for (const auto& [field, value] : spec_.initial)
      if (rules_.holds(creator, field)) c.row[field] = value;
    Change change = captured_change(creator);
    for (const auto& [field, type] : rules_.fields)
      if (rules_.holds(creator, field))
        change.values[field] = canonical(field, value_in(c.row, field));
    c.captured.push_back(change);
    trace_ << "create on " << creator << ": " << test::values_text(c.row) << "\n";
    process(creator);
  }

  void apply(const Action& a) {
    const std::string& side = sides_[a.side % sides_.size()];
    switch (a.kind) {
      case Action::Kind::kEdit:
        edit(side, a.edits, a.same_tick);
        break;
      case Action::Kind::kProcess:
        process(side);
        break;
      case Action::Kind::kProcessBatch:
        process_batch();
        break;
      case Action::Kind::kDeliver:
        deliver(side, false);
        break;
      case Action::Kind::kDeliverLosingAck:
        deliver(side, true);
        break;
      case Action::Kind::kRedeliverDone:
        redeliver_done(side, a.pick);
        break;
      case Action::Kind::kResolve:
        resolve_conflict(a.pick, side, a.resolution, a.edits);
        break;
      case Action::Kind::kDelete:
        delete_row(side);
        break;
      case Action::Kind::kGuard:
        side_rows_[side].guarded = !side_rows_[side].guarded;
        trace_ << side << "'s delete guard " << (side_rows_[side].guarded ? "on" : "off") << "\n";
        break;
    }
  }

  // Runs the engine's passes until nothing is left, as sync_engine.cpp run_pass: deliver one
  // pending write per side (one per record per pass), reconcile a batch of every captured
  // change, then deliver one write per side again. False if the system is not quiet after
  // `max_passes`: the engine and the sides ping-pong.
  bool drain(int max_passes = 100) {
    for (int pass = 0; pass < max_passes; ++pass) {
      bool any = false;
      for (const std::string& s : sides_) any = deliver(s, false) || any;
      any = process_batch() || any;
      for (const std::string& s : sides_) any = deliver(s, false) || any;
      if (!any) return true;
    }
    trace_ << "drain: not quiet after " << max_passes << " passes\n";
    return false;
  }

  // Guarantee 1: what differs from golden on a side, outside units held by a conflict; and a
  // row where the record should have none (deleted, detached, a foreign delete waiting for a
  // steward) or none where it should have one.
  std::vector<std::string> divergences() const {
    std::vector<std::string> out;
    for (const std::string& s : sides_) {
      const SideRow& r = side_rows_.at(s);
      const bool detached =
          std::find(state_.detached.begin(), state_.detached.end(), s) != state_.detached.end();
      const bool held_away = std::any_of(
          state_.open_conflicts.begin(), state_.open_conflicts.end(), [&](const OpenConflict& c) {
            return c.kind == ConflictKind::kForeignDelete && c.side == s && c.vetoed_by.empty();
          });
      const bool wanted = state_.exists && !state_.deleted && !detached && !held_away;
      if (!wanted) {
        if (r.has_row)
          out.push_back(s + " has a row, but the record is " +
                        (state_.deleted ? "deleted"
                         : detached     ? "detached there"
                                        : "deleted there, waiting for a steward"));
        continue;
      }
      if (!r.has_row) {
        out.push_back(s + " has no row");
        continue;
      }
      if (state_.bases.find(s) == state_.bases.end()) out.push_back(s + "'s row is not linked");
      for (const Unit& unit : rules_.units) {
        // A unit the side has no column for is not the side's to hold.
        if (state_.conflict_on(unit.name) != nullptr || !rules_.holds(s, unit)) continue;
        for (const std::string& m : unit.members)
          if (!values_equal(rules_.type_of(m), unit.policy.compare, value_in(r.row, m),
                            value_in(state_.golden, m)))
            out.push_back(s + "." + m + " = " + show(value_in(r.row, m)) + " but golden " +
                          show(value_in(state_.golden, m)));
      }
    }
    return out;
  }

  // plan_writebacks with what is queued now (nothing, once drained).
  std::vector<RowWrite> plan_now() const {
    return plan_writebacks(rules_, state_, sides_, pending_writes()).writes;
  }

  bool quiet() const {
    for (const auto& [s, r] : side_rows_)
      if (!r.captured.empty()) return false;
    for (const OutboxEntry& e : outbox_)
      if (queued(e)) return false;
    return true;
  }

  const RecordState& state() const { return state_; }
  const EntityRules& rules() const { return rules_; }
  const std::map<std::string, SideRow>& sides() const { return side_rows_; }
  const std::vector<std::string>& violations() const { return violations_; }
  std::string trace() const { return trace_.str(); }

  // Who last set each unit's golden value: a change source "crm#3", "steward:..", "default".
  const std::map<std::string, std::string>& setters() const { return setters_; }

 private:
  Value canonical(const std::string& field, const Value& raw) const {
    auto c = canonicalize(rules_.type_of(field), raw);
    return c ? *c : raw;
  }

  Change captured_change(const std::string& side) {
    SideRow& r = side_rows_[side];
    Change c;
    c.side = side;
    c.seq = ++r.next_seq;
    c.entity = rules_.entity;
    c.row_key = side + "-1";
    c.commit_time_us = ++clock_;
    return c;
  }

  void violation(const std::string& what) {
    violations_.push_back(what);
    trace_ << "  VIOLATION: " << what << "\n";
  }

  static bool queued(const OutboxEntry& e) {
    return e.status == OutboxEntry::Status::kPending ||
           e.status == OutboxEntry::Status::kCancelling;
  }

  // A user deletes the side's row: the trigger captures a delete.
  void delete_row(const std::string& side) {
    SideRow& r = side_rows_[side];
    if (!r.has_row) return;
    r.has_row = false;
    r.row.clear();
    Change change = captured_change(side);
    change.op = Op::kDelete;
    r.last_edit_time = change.commit_time_us;
    trace_ << "delete " << side << "'s row: captured " << side << "#" << change.seq << "@"
           << change.commit_time_us << "\n";
    r.captured.push_back(std::move(change));
  }

  void edit(const std::string& side, const FieldValues& edits, bool same_tick) {
    SideRow& r = side_rows_[side];
    if (!r.has_row) return;
    Change change = captured_change(side);
    if (same_tick && r.last_edit_time >= 0) {
      --clock_;
      change.commit_time_us = clock_;
    }
    for (const auto& [field, v] : edits) {
      if (!rules_.holds(side, field)) continue;  // the side has no column for it
      if (!sql_equal(rules_.type_of(field), value_in(r.row, field), v))
        change.values[field] = canonical(field, v);
      r.row[field] = v;
    }
    trace_ << "edit " << side << " {" << test::values_text(edits) << "}";
    if (change.values.empty()) {  // the trigger records nothing: no column is distinct
      --r.next_seq;
      trace_ << ": nothing captured\n";
      return;
    }
    r.last_edit_time = change.commit_time_us;
    trace_ << ": captured " << side << "#" << change.seq << "@" << change.commit_time_us << " {"
           << test::values_text(change.values) << "}\n";
    r.captured.push_back(std::move(change));
  }

  // As record_repository.cpp persist_plan: each opened conflict gets the next id, matched to
  // the next id-0 entry of the same unit.
  void assign_ids(const Plan& plan, RecordState& after) {
    std::size_t next_new = 0;
    for (const ConflictOpened& c : plan.opened) {
      const std::int64_t id = ++next_conflict_id_;
      for (; next_new < after.open_conflicts.size(); ++next_new) {
        if (after.open_conflicts[next_new].id == 0 &&
            after.open_conflicts[next_new].unit == c.unit) {
          after.open_conflicts[next_new++].id = id;
          break;
        }
      }
    }
  }

  // Golden changes of `before` -> `after` made by `source`; `side` the proposing side (or
  // the side a steward took), empty for a dismissal.
  void check_golden_changes(const RecordState& before, const RecordState& after,
                            const std::string& source, const std::string& side, bool steward,
                            bool create, bool deletes = false) {
    // The delete of a side whose rule deactivates sets the flag, whoever owns it.
    const SideDelete* own_delete = deletes ? rules_.delete_policy.of(side) : nullptr;
    const bool deactivation =
        own_delete != nullptr && own_delete->propagate == DeletePropagation::kDeactivate;
    for (const Unit& unit : rules_.units) {
      FieldValues b, a;
      for (const std::string& m : unit.members) {
        b[m] = value_in(before.golden, m);
        a[m] = value_in(after.golden, m);
      }
      // At a create, a unit the creator may not set, or has no column for, or whose value is
      // invalid, takes the default; except that under on_create accept a valid, non-NULL
      // value of the creator seeds a unit another side owns. Nothing else may seed.
      const bool owner_or_shared = unit.policy.is_shared() || unit.policy.owner == side;
      const bool held = rules_.holds(side, unit);
      const bool invalid = after.conflict_on(unit.name) != nullptr &&
                           after.conflict_on(unit.name)->kind == ConflictKind::kInvalidValue;
      const auto prov = after.provenance.find(unit.name);
      const bool marked = prov != after.provenance.end() && prov->second.seeded;
      if (create) {
        FieldValues own;  // what the creator holds for the unit
        const auto base = after.bases.find(side);
        bool gives = false;
        for (const std::string& m : unit.members) {
          own[m] = base == after.bases.end() ? Value{} : value_in(base->second, m);
          gives = gives || own[m];
        }
        const bool seeds = held && !owner_or_shared && !invalid &&
                           unit.policy.on_create == OnCreate::kAccept && gives;
        if (seeds) {
          setters_[unit.name] = "seed:" + source;
          if (checks_.ownership && (!marked || prov->second.side != side))
            violation("(b) " + unit.name + " seeded by " + side + " at the create carries no " +
                      "seed mark of " + side);
          for (const std::string& m : unit.members)
            if (checks_.ownership && a.at(m) != own.at(m))
              violation("(b) " + unit.name + " seeded by " + side + " holds " + show(a.at(m)) +
                        " for " + m + ", not the creator's " + show(own.at(m)));
          continue;
        }
        if (checks_.ownership && marked)
          violation("(b) " + unit.name + " is marked as a seed at a create that may not seed it");
        if (!owner_or_shared || !held || invalid) {
          setters_[unit.name] = "default";
          if (checks_.ownership && (!owner_or_shared || !held))
            for (const std::string& m : unit.members)
              if (!values_equal(rules_.type_of(m), unit.policy.compare, a.at(m),
                                unit.policy.default_value))
                violation("(b) created " + unit.name + " (owner " + unit.policy.owner + ") from " +
                          side + " holds " + show(a.at(m)) + ", not the default " +
                          show(unit.policy.default_value));
          continue;
        }
      } else if (checks_.ownership && marked &&
                 (before.provenance.count(unit.name) == 0 ||
                  !before.provenance.at(unit.name).seeded)) {
        violation("(b) " + unit.name + " is marked as a seed by " + source + ", after the create");
      }
      if (!create && a == b) continue;
      setters_[unit.name] = source;
      if (deactivation && unit.name == own_delete->deactivate_field) {
        setters_[unit.name] = "delete:" + source;  // the delete policy's own authority
        continue;
      }
      if (checks_.validity)
        for (std::size_t i = 0; i < unit.members.size(); ++i)
          if (auto why = validate(unit.policy.validate, rules_.type_of(unit.members[i]),
                                  a.at(unit.members[i]), unit.policy.compare))
            violation("(f) golden " + unit.name + " set by " + source + " to {" +
                      test::values_text(a) + "}, which is invalid: " + unit.members[i] + " " +
                      *why);
      if (checks_.ownership && !steward && !unit.policy.is_shared() && unit.policy.owner != side)
        violation("(b) golden " + unit.name + " owned by " + unit.policy.owner + " set to " +
                  test::values_text(a) + " by " + source);
      if (checks_.groups && unit.is_group() && !side.empty() && !deletes) {
        auto base = after.bases.find(side);
        for (const std::string& m : unit.members)
          if (base == after.bases.end() || value_in(base->second, m) != a.at(m))
            violation("(d) group " + unit.name + " set by " + source + " to {" +
                      test::values_text(a) + "}, but " + side + " holds " +
                      show(base == after.bases.end() ? Value{} : value_in(base->second, m)) +
                      " for " + m);
        auto prov = after.provenance.find(unit.name);
        if (prov == after.provenance.end() ||
            (steward ? prov->second.steward.empty() : prov->second.side != side))
          violation("(d) group " + unit.name + " set by " + source + " has the wrong provenance");
      }
    }
  }

  // The owner's first value of a seeded unit replaces the seed: a change of the owner that
  // carries a value (not NULL) other than the seed makes golden take it (unless a conflict
  // holds the unit), and the seed mark goes.
  void check_seed_replaced(const RecordState& before, const RecordState& after,
                           const Change& change) {
    if (change.op != Op::kUpsert || before.deleted) return;
    for (const Unit& unit : rules_.units) {
      const auto prov = before.provenance.find(unit.name);
      if (prov == before.provenance.end() || !prov->second.seeded ||
          unit.policy.owner != change.side)
        continue;
      bool gives = false, differs = false;
      for (const std::string& m : unit.members) {
        auto v = change.values.find(m);
        if (v == change.values.end()) continue;
        gives = gives || v->second;
        differs = differs || !values_equal(rules_.type_of(m), unit.policy.compare, v->second,
                                           value_in(before.golden, m));
      }
      if (!gives || !differs || after.conflict_on(unit.name) != nullptr) continue;
      for (const std::string& m : unit.members) {
        auto v = change.values.find(m);
        if (v != change.values.end() && value_in(after.golden, m) != v->second)
          violation("(b) " + change.side + "'s value " + show(v->second) + " of " + m +
                    " did not replace the seed " + show(value_in(before.golden, m)) +
                    "; golden holds " + show(value_in(after.golden, m)));
      }
      const auto now = after.provenance.find(unit.name);
      if (now != after.provenance.end() && now->second.seeded)
        violation("(b) " + unit.name + " keeps its seed mark after " + change.side +
                  "'s value replaced the seed");
    }
  }

  void check_writes(const std::vector<RowWrite>& writes) {
    for (const RowWrite& w : writes)
      for (const auto* values : {&w.values, &w.expected})
        for (const auto& [f, v] : *values)
          if (!rules_.holds(w.side, f))
            violation("a write to " + w.side + " carries " + f + ", which " + w.side +
                      " has no column for (it would be queued for ever)");
    if (!checks_.groups) return;
    for (const RowWrite& w : writes)
      for (const Unit& unit : rules_.units) {
        if (!unit.is_group()) continue;
        std::size_t n = 0;
        for (const std::string& m : unit.members) n += w.values.count(m);
        if (n != 0 && n != unit.members.size())
          violation("(d) a write to " + w.side + " holds part of group " + unit.name + ": " +
                    test::values_text(w.values));
      }
  }

  std::vector<PendingWrite> pending_writes() const {
    std::vector<PendingWrite> out;
    for (const OutboxEntry& e : outbox_)
      if (queued(e))
        out.push_back(PendingWrite{e.id, e.write.side, e.write.kind, e.write.values,
                                   e.write.expected, e.status == OutboxEntry::Status::kCancelling});
    return out;
  }

  static std::string plan_text(const WritebackPlan& plan) {
    std::string s = writes_text(plan.writes);
    for (std::int64_t id : plan.cancel) s += "withdraw #" + std::to_string(id) + "\n";
    return s;
  }

  // As record_repository.cpp plan_and_enqueue: withdraw what the record no longer wants,
  // queue the rest.
  void plan_and_enqueue() {
    const std::vector<PendingWrite> pending = pending_writes();
    WritebackPlan plan = plan_writebacks(rules_, state_, sides_, pending);
    if (checks_.determinism) {
      const WritebackPlan again = plan_writebacks(rules_, state_, sides_, pending);
      if (plan_text(again) != plan_text(plan))
        violation("(e) plan_writebacks gave two answers for one input");
    }
    check_writes(plan.writes);
    for (std::int64_t id : plan.cancel)
      for (OutboxEntry& e : outbox_)
        if (e.id == id && e.status == OutboxEntry::Status::kPending) {
          e.status = OutboxEntry::Status::kCancelling;
          trace_ << "  withdraw #" << id << " " << write_text(e.write) << "\n";
        }
    for (RowWrite& w : plan.writes) {
      OutboxEntry e;
      e.id = ++next_outbox_id_;
      e.write = std::move(w);
      trace_ << "  enqueue #" << e.id << " " << write_text(e.write) << "\n";
      outbox_.push_back(std::move(e));
    }
  }

  // run_pass delivers write-backs before it reconciles captures: a write whose ack was lost
  // is delivered again (and acknowledged) before the side's next change is reconciled.
  void redeliver_lost_acks(const std::string& side) {
    for (std::size_t i = 0; i < outbox_.size(); ++i)
      if (queued(outbox_[i]) && outbox_[i].write.side == side && outbox_[i].applied_on_side)
        deliver_entry(i, false);
  }

  // Every captured change of every side, merged by commit time (each side's in sequence
  // order), then one plan for the record: sync_engine.cpp reconcile_captures.
  bool process_batch() {
    for (const std::string& s : sides_) redeliver_lost_acks(s);
    bool any = false;
    for (;;) {
      const std::string* pick = nullptr;
      for (const std::string& s : sides_) {
        const SideRow& r = side_rows_[s];
        if (r.captured.empty()) continue;
        if (pick == nullptr ||
            r.captured.front().commit_time_us < side_rows_[*pick].captured.front().commit_time_us)
          pick = &s;
      }
      if (pick == nullptr) break;
      process(*pick, false);
      any = true;
    }
    if (any) plan_and_enqueue();
    return any;
  }

  // The oldest captured change of `side`, planned on its own unless `plan` is false.
  bool process(const std::string& side, bool plan = true) {
    SideRow& r = side_rows_[side];
    if (r.captured.empty()) return false;
    if (plan) redeliver_lost_acks(side);
    const Change change = r.captured.front();
    r.captured.pop_front();
    const RecordState before = state_;
    // As sync_engine.cpp reconcile_captures: decided in place into the record's state.
    RecordState after = state_;
    Plan decided = reconcile_in_place(rules_, kVersion, after, change);
    trace_ << "process " << side << "#" << change.seq << " {" << test::values_text(change.values)
           << "}\n"
           << indent(decided.to_text());
    if (checks_.determinism) {
      // The copying reconcile() (on rules not prepared) and a second in-place call agree
      // with the first call.
      const Reconciliation copy = reconcile(unprepared_rules_, kVersion, state_, change);
      RecordState again = state_;
      const Plan again_plan = reconcile_in_place(rules_, kVersion, again, change);
      if (copy.plan.to_text() != decided.to_text() || again_plan.to_text() != decided.to_text() ||
          state_text(copy.after) != state_text(after) || state_text(again) != state_text(after))
        violation("(e) reconcile gave two answers for " + decided.source);
    }
    assign_ids(decided, after);
    if (checks_.idempotence) {
      RecordState twice = after;
      const Plan twice_plan = reconcile_in_place(rules_, kVersion, twice, change);
      if (state_text(twice) != state_text(after))
        violation("(c) " + decided.source + " reconciled twice changes the state:\nonce:\n" +
                  state_text(after) + "twice:\n" + state_text(twice));
      for (const UnitDecision& d : twice_plan.decisions)
        if (d.golden_changed())
          violation("(c) " + decided.source + " reconciled twice changes golden " + d.unit);
      if (!twice_plan.opened.empty())
        violation("(c) " + decided.source + " reconciled twice opens another conflict");
    }
    check_golden_changes(before, after, decided.source, side, false, !before.exists,
                         change.op == Op::kDelete);
    if (checks_.ownership && before.exists) check_seed_replaced(before, after, change);
    // The side whose delete made the record deleted (RecordRepository::deleting_side), for a
    // veto.
    if (change.op == Op::kDelete && rules_.delete_policy.of(side) != nullptr) deleter_ = side;
    state_ = std::move(after);
    if (plan) plan_and_enqueue();
    return true;
  }

  // The store's per-record order: the oldest queued (or withdrawn) write to the side.
  std::optional<std::size_t> oldest_queued(const std::string& side) const {
    for (std::size_t i = 0; i < outbox_.size(); ++i)
      if (queued(outbox_[i]) && outbox_[i].write.side == side) return i;
    return std::nullopt;
  }

  bool deliver(const std::string& side, bool lose_ack) {
    const auto i = oldest_queued(side);
    if (!i) return false;
    deliver_entry(*i, lose_ack);
    return true;
  }

  // The engine's record of a write the side applied: writeback_results.cpp (WritebackResults).
  void take_in(const RowWrite& w) {
    if (w.kind == RowWrite::Kind::kDelete) {
      state_.bases.erase(w.side);
      return;
    }
    FieldValues& base = state_.bases[w.side];
    if (w.kind == RowWrite::Kind::kInsert) base.clear();
    for (const auto& [f, v] : w.values) base[f] = v;
  }

  // TriggerSide::apply, then the engine's bookkeeping in writeback_results.cpp.
  // By index: the bookkeeping may queue new writes, which moves the outbox.
  void deliver_entry(std::size_t index, bool lose_ack) {
    const std::int64_t id = outbox_[index].id;
    const RowWrite w = outbox_[index].write;
    SideRow& r = side_rows_[w.side];
    auto status = [&](OutboxEntry::Status st) { outbox_[index].status = st; };
    trace_ << "deliver #" << id << " " << write_text(w);
    if (outbox_[index].status == OutboxEntry::Status::kCancelling) {
      if (r.applied.count(id) != 0) {
        // An earlier attempt applied it and the engine did not hear: taken in as applied.
        trace_ << ": withdrawn, but the side had applied it\n";
        status(OutboxEntry::Status::kDone);
        take_in(w);
        plan_and_enqueue();
      } else {
        r.cancelled.insert(id);
        status(OutboxEntry::Status::kCancelled);
        trace_ << ": withdrawn, the side records it as cancelled\n";
      }
      return;
    }
    bool applied = true;
    if (r.applied.count(id) != 0) {
      trace_ << ": already applied on the side";
    } else if (w.kind == RowWrite::Kind::kInsert) {
      if (r.has_row)
        violation("insert #" + std::to_string(id) + " into " + w.side +
                  ", which already holds a row of the record (a duplicate)");
      r.has_row = true;
      ++r.row_number;
      r.row = w.values;
      r.applied.insert(id);
    } else if (w.kind == RowWrite::Kind::kDelete) {
      if (r.guarded) {
        // A delete guard refuses: the record lives on (sync_engine.cpp, vetoed).
        status(OutboxEntry::Status::kVetoed);
        trace_ << ": vetoed by " << w.side << "'s delete guard\n";
        Reconciliation v = veto_delete(rules_, kVersion, state_, w.side, deleter_, "guard");
        trace_ << indent(v.plan.to_text());
        assign_ids(v.plan, v.after);
        state_ = std::move(v.after);
        plan_and_enqueue();
        return;
      }
      if (guard_ == WriteGuard::kNoPendingCapture && !r.captured.empty()) {
        applied = false;  // the row's captured changes go first (write_chunk.cpp apply_chunk)
      } else {
        r.has_row = false;
        r.row.clear();
        r.applied.insert(id);
      }
    } else {
      for (const auto& [f, v] : w.expected)
        if (!r.has_row || !sql_equal(rules_.type_of(f), value_in(r.row, f), v)) applied = false;
      if (!r.has_row) applied = false;
      if (guard_ == WriteGuard::kNoPendingCapture)
        for (const Change& c : r.captured)
          for (const auto& [f, v] : w.values)
            if (c.values.count(f) != 0 || c.op == Op::kDelete) applied = false;
      if (applied) {
        for (const auto& [f, v] : w.values) r.row[f] = v;
        r.applied.insert(id);
      }
    }
    if (applied && lose_ack) {
      outbox_[index].applied_on_side = true;
      trace_ << ": applied, ack lost\n";
      return;
    }
    if (!applied) {
      status(OutboxEntry::Status::kSuperseded);
      // Later queued writes of the record to this side expected what this one would write;
      // they were never sent (one write per record per pass, in id order).
      for (OutboxEntry& later : outbox_)
        if (later.id > id && later.write.side == w.side &&
            later.status == OutboxEntry::Status::kPending)
          later.status = OutboxEntry::Status::kSuperseded;
      trace_ << ": superseded (side holds {" << test::values_text(r.row) << "}"
             << (r.captured.empty() ? "" : ", with changes not yet reconciled") << ")\n";
      plan_and_enqueue();
      return;
    }
    status(OutboxEntry::Status::kDone);
    outbox_[index].applied_on_side = true;
    trace_ << ": applied\n";
    take_in(w);
  }

  void redeliver_done(const std::string& side, int pick) {
    std::vector<OutboxEntry*> done;
    for (OutboxEntry& e : outbox_)
      if ((e.status == OutboxEntry::Status::kDone || e.status == OutboxEntry::Status::kCancelled) &&
          e.write.side == side)
        done.push_back(&e);
    if (done.empty()) return;
    OutboxEntry& e = *done[static_cast<std::size_t>(pick) % done.size()];
    SideRow& r = side_rows_[side];
    trace_ << "redeliver #" << e.id << " to " << side << "\n";
    // The side's idempotency table knows the outbox id, applied or cancelled: the write is
    // not applied (again).
    if (e.status == OutboxEntry::Status::kDone && r.applied.count(e.id) == 0)
      violation("write #" + std::to_string(e.id) + " was done but the side does not know it");
    if (e.status == OutboxEntry::Status::kCancelled && r.cancelled.count(e.id) == 0)
      violation("write #" + std::to_string(e.id) + " was withdrawn but the side does not know it");
  }

  void resolve_conflict(int pick, const std::string& side, Resolution::Kind kind,
                        const FieldValues& values) {
    if (state_.open_conflicts.empty()) return;
    const OpenConflict conflict =
        state_.open_conflicts[static_cast<std::size_t>(pick) % state_.open_conflicts.size()];
    const Unit* unit = rules_.unit_named(conflict.unit);
    Resolution res;
    res.kind = kind;
    res.steward = "alice";
    res.time_us = ++clock_;  // the control store's clock, after every capture so far
    trace_ << "resolve conflict " << conflict.id << " on " << conflict.unit;
    if (kind == Resolution::Kind::kTakeSide) {
      res.side = side;
      trace_ << " take " << side << "\n";
    } else if (kind == Resolution::Kind::kValue) {
      for (const std::string& m : unit ? unit->members : std::vector<std::string>{})
        res.values[m] = value_in(values, m);
      trace_ << " value {" << test::values_text(res.values) << "}\n";
    } else {
      trace_ << " dismiss\n";
    }
    Reconciliation rec;
    try {
      rec = resolve(rules_, kVersion, state_, conflict, res);
    } catch (const ResolutionError& e) {
      trace_ << "  refused: " << e.what() << "\n";
      return;
    }
    trace_ << indent(rec.plan.to_text());
    if (checks_.determinism) {
      const Reconciliation again = resolve(unprepared_rules_, kVersion, state_, conflict, res);
      if (again.plan.to_text() != rec.plan.to_text() ||
          state_text(again.after) != state_text(rec.after))
        violation("(e) resolve gave two answers for conflict " + std::to_string(conflict.id));
    }
    assign_ids(rec.plan, rec.after);
    check_golden_changes(state_, rec.after, rec.plan.source,
                         kind == Resolution::Kind::kTakeSide ? side : std::string(), true, false);
    if (checks_.groups && kind == Resolution::Kind::kValue && unit != nullptr)
      for (const std::string& m : unit->members)
        if (value_in(rec.after.golden, m) != canonical(m, value_in(res.values, m)))
          violation("(d) " + unit->name + " set by a steward's value holds " +
                    show(value_in(rec.after.golden, m)) + " for " + m);
    state_ = std::move(rec.after);
    plan_and_enqueue();
  }

  static std::string indent(const std::string& text) {
    std::string out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out += "  " + line + "\n";
    return out;
  }

  Spec spec_;
  EntityRules rules_;
  EntityRules unprepared_rules_;  // the same rules without prepare(): the core's slow path
  std::vector<std::string> sides_;
  Checks checks_;
  WriteGuard guard_;
  RecordState state_;
  std::map<std::string, SideRow> side_rows_;
  std::vector<OutboxEntry> outbox_;
  std::int64_t clock_ = 1000;
  std::int64_t next_outbox_id_ = 0;
  std::int64_t next_conflict_id_ = 0;
  std::string deleter_;  // the side whose delete deleted the record last
  std::map<std::string, std::string> setters_;
  std::vector<std::string> violations_;
  std::ostringstream trace_;
};

// Builds the model, creates the record, runs the actions; the caller drains and checks.
inline SyncModel run(const Spec& spec, const std::vector<Action>& actions, Checks checks = {},
                     WriteGuard guard = WriteGuard::kNoPendingCapture) {
  SyncModel m(spec, checks, guard);
  m.create_record();
  for (const Action& a : actions) m.apply(a);
  return m;
}

}  // namespace mdsync::core::model
