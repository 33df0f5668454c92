#include "mdsync/core/reconciler.hpp"

#include <algorithm>
#include <array>
#include <string_view>

#include "mdsync/core/validation.hpp"

namespace mdsync::core {
namespace {

UnitValues unit_values(const Unit& unit, const FieldValues& source) {
  UnitValues out;
  for (const std::string& m : unit.members) {
    auto it = source.find(m);
    out.add(m, it == source.end() ? Value{} : it->second);
  }
  return out;
}

FieldType member_type(const EntityRules& rules, const Unit& unit, std::size_t i) {
  return i < unit.member_types.size() ? unit.member_types[i] : rules.type_of(unit.members[i]);
}

const Value& null_value() {
  static const Value kNull;
  return kNull;
}

const Value& value_or_null(const FieldValues& values, const std::string& field) {
  auto it = values.find(field);
  return it == values.end() ? null_value() : it->second;
}

// A unit's member values where they already live (a record's golden map, a base, a change),
// looked up once and never copied: deciding compares these, and only the decision's own
// record of before/proposed/after allocates.
class MemberRefs {
 public:
  MemberRefs(const Unit& unit, const FieldValues& source) : size_(unit.members.size()) {
    if (size_ > kInline) spill_.resize(size_);
    const Value** out = data();
    for (std::size_t i = 0; i < size_; ++i) out[i] = &value_or_null(source, unit.members[i]);
  }
  // `under` with the members `changed` holds replaced by the change's values.
  MemberRefs(const Unit& unit, const MemberRefs& under, const FieldValues& changed)
      : MemberRefs(under) {
    const Value** out = data();
    for (std::size_t i = 0; i < size_; ++i)
      if (auto it = changed.find(unit.members[i]); it != changed.end()) out[i] = &it->second;
  }
  MemberRefs(const MemberRefs& o) : inline_(o.inline_), spill_(o.spill_), size_(o.size_) {}
  MemberRefs& operator=(const MemberRefs&) = delete;

  std::size_t size() const { return size_; }
  const Value& operator[](std::size_t i) const { return *data()[i]; }
  bool same_place(const MemberRefs& o, std::size_t i) const { return data()[i] == o.data()[i]; }

  // Writes member i into `map`, which must be the (non-const) map these refs were made from:
  // through the reference when the member is there, saving a second lookup.
  void store(const Unit& unit, std::size_t i, FieldValues& map, const Value& value) {
    const Value*& ref = data()[i];
    if (ref != &null_value()) {
      *const_cast<Value*>(ref) = value;  // the referenced value lives in `map`, not const
    } else {
      ref = &map.insert_or_assign(unit.members[i], value).first->second;
    }
  }
  UnitValues copy(const Unit& unit) const {
    UnitValues out;
    copy_to(unit, out);
    return out;
  }
  void copy_to(const Unit& unit, UnitValues& out) const {
    for (std::size_t i = 0; i < size_; ++i) out.add(unit.members[i], (*this)[i]);
  }

 private:
  static constexpr std::size_t kInline = 8;  // groups rarely have more members
  const Value** data() { return size_ > kInline ? spill_.data() : inline_.data(); }
  const Value* const* data() const { return size_ > kInline ? spill_.data() : inline_.data(); }

  std::array<const Value*, kInline> inline_{};
  std::vector<const Value*> spill_;
  std::size_t size_ = 0;
};

bool unit_equal(const EntityRules& rules, const Unit& unit, const MemberRefs& a,
                const MemberRefs& b) {
  for (std::size_t i = 0; i < unit.members.size(); ++i)
    if (!values_equal(member_type(rules, unit, i), unit.policy.compare, a[i], b[i])) return false;
  return true;
}

bool unit_equal(const EntityRules& rules, const Unit& unit, const FieldValues& a,
                const FieldValues& b) {
  for (std::size_t i = 0; i < unit.members.size(); ++i) {
    const std::string& m = unit.members[i];
    if (!values_equal(member_type(rules, unit, i), unit.policy.compare, value_or_null(a, m),
                      value_or_null(b, m)))
      return false;
  }
  return true;
}

bool touches(const Unit& unit, const FieldValues& changed) {
  return std::any_of(unit.members.begin(), unit.members.end(),
                     [&](const std::string& m) { return changed.count(m) != 0; });
}

// The first validation failure among the members the change touched.
std::optional<std::string> invalid_reason(
    const EntityRules& rules, const Unit& unit, const FieldValues& changed,
    const std::map<std::string, std::string>& unconvertible = {}) {
  if (unit.policy.validate.empty() && unconvertible.empty()) return std::nullopt;
  for (std::size_t i = 0; i < unit.members.size(); ++i) {
    const std::string& m = unit.members[i];
    if (auto bad = unconvertible.find(m); bad != unconvertible.end()) return m + " " + bad->second;
    auto it = changed.find(m);
    if (it == changed.end()) continue;
    if (auto why = validate(unit.policy.validate, member_type(rules, unit, i), it->second))
      return m + " " + *why;
  }
  return std::nullopt;
}

void overlay(FieldValues& target, const FieldValues& values) {
  for (const auto& [f, v] : values) target[f] = v;
}

// The units a change touches, in the entity's unit order (so plans are deterministic).
// Kept inline for the usual handful of touched units, so a change allocates nothing here.
class TouchedUnits {
 public:
  TouchedUnits(const EntityRules& rules, const FieldValues& changed) {
    if (rules.unit_index.empty()) {
      for (const Unit& unit : rules.units)
        if (touches(unit, changed)) push(&unit);
      return;
    }
    for (const auto& [field, value] : changed) {
      (void)value;
      auto it = rules.unit_index.find(field);
      if (it != rules.unit_index.end()) {
        push(&rules.units[it->second]);
        ++fields_matched_;
      }
    }
    const Unit** first = data();
    std::sort(first, first + size_);  // units live in one vector: address order is unit order
    size_ = static_cast<std::size_t>(std::unique(first, first + size_) - first);
  }
  const Unit* const* begin() const { return const_cast<TouchedUnits*>(this)->data(); }
  const Unit* const* end() const { return begin() + size_; }
  // How many of the change's fields belong to some unit.
  std::size_t fields_matched() const { return fields_matched_; }

 private:
  static constexpr std::size_t kInline = 32;  // a 20-field change fits
  const Unit** data() { return spill_.empty() ? inline_.data() : spill_.data(); }
  void push(const Unit* unit) {
    if (size_ == kInline) spill_.assign(inline_.begin(), inline_.end());
    if (size_ < kInline)
      inline_[size_] = unit;
    else
      spill_.push_back(unit);
    ++size_;
  }

  std::array<const Unit*, kInline> inline_{};
  std::vector<const Unit*> spill_;
  std::size_t size_ = 0;
  std::size_t fields_matched_ = 0;
};

class Decider {
 public:
  // Decides into `state` (updated in place) and `plan`.
  Decider(const EntityRules& rules, std::int64_t version, RecordState& state, Plan& plan,
          std::string source, std::string side)
      : rules_(rules), after_(state), plan_(plan), side_(std::move(side)) {
    plan_.entity = rules.entity;
    plan_.source = std::move(source);
    plan_.ruleset_version = version;
  }

  // Records a decision whose golden values after it are what golden holds now.
  UnitDecision& decide(const Unit& unit, Outcome outcome, UnitValues golden_before,
                       UnitValues proposed, Reason reason) {
    UnitValues after;
    for (const std::string& m : unit.members) after.add(m, value_or_null(after_.golden, m));
    return record(unit, outcome, std::move(golden_before), std::move(proposed), std::move(after),
                  std::move(reason));
  }

  // Records a decision whose golden values after it the caller already has.
  UnitDecision& record(const Unit& unit, Outcome outcome, UnitValues golden_before,
                       UnitValues proposed, UnitValues golden_after, Reason reason) {
    UnitDecision& d = start(unit, outcome, std::move(reason));
    d.before = std::move(golden_before);
    d.after = std::move(golden_after);
    d.proposed = std::move(proposed);
    return d;
  }

  // A decision whose values the caller fills in place (the hot path: no temporaries).
  UnitDecision& start(const Unit& unit, Outcome outcome, Reason reason) {
    UnitDecision& d = plan_.decisions.emplace_back();
    d.unit = unit.name;
    d.outcome = outcome;
    d.rule = unit.rule_text
                 ? unit.rule_text
                 : std::make_shared<const std::string>(describe_rule(rules_.entity, unit));
    d.why = std::move(reason);
    return d;
  }

  void set_golden(const Unit& unit, const FieldValues& values, Provenance who) {
    for (const std::string& m : unit.members) {
      auto it = values.find(m);
      after_.golden[m] = it == values.end() ? Value{} : it->second;
    }
    after_.provenance[unit.name] = std::move(who);
  }

  void open_conflict(const std::string& unit, ConflictKind kind,
                     std::map<std::string, FieldValues> values, const std::string& reason) {
    plan_.opened.push_back(ConflictOpened{unit, kind, std::move(values), reason});
    after_.open_conflicts.push_back(OpenConflict{0, unit, kind, side_});
  }

  // A side wrote a unit another side owns. `before` is the golden value before this change
  // (all NULL when the change creates the record), `g` the owner's value that stands, which
  // is also golden after.
  void foreign_write(const Unit& unit, const std::string& side, UnitValues v, const UnitValues& g,
                     UnitValues before) {
    const std::string& owner = unit.policy.owner;
    if (unit.policy.on_foreign_write == ForeignWrite::kRevert) {
      record(unit, Outcome::kRevert, std::move(before), std::move(v), g,
             Reason(Reason::Form::kReverted, side, owner));
    } else {
      open_conflict(unit.name, ConflictKind::kForeignWrite, {{side, v}, {owner, g}},
                    side + " wrote " + unit.name + ", which " + owner + " owns");
      record(unit, Outcome::kQuarantine, std::move(before), std::move(v), g,
             owner + " owns " + unit.name + "; " + side + "'s write is quarantined");
    }
  }

  const EntityRules& rules_;
  RecordState& after_;
  Plan& plan_;
  std::string side_;  // the side whose change is decided; empty for a steward
};

void reconcile_create(Decider& d, const EntityRules& rules, const Change& change) {
  RecordState& after = d.after_;
  const Provenance from_side{change.side, "", change.commit_time_us};
  if (!rules.may_create(change.side)) {
    d.open_conflict(kRecordUnit, ConflictKind::kUnauthorizedCreate, {{change.side, change.values}},
                    change.side + " may not create " + rules.entity + " records");
    Unit record{kRecordUnit, {}, rules.default_policy};
    d.decide(record, Outcome::kRejectCreate, {}, change.values,
             change.side + " is not in " + rules.entity + ".create");
    return;
  }
  after = RecordState{};
  after.exists = true;
  for (const auto& [field, type] : rules.fields) {
    (void)type;
    auto it = change.values.find(field);
    after.bases[change.side][field] = it == change.values.end() ? Value{} : it->second;
  }
  for (const Unit& unit : rules.units) {
    const FieldValues v = unit_values(unit, change.values);
    const bool own = unit.policy.is_shared() || unit.policy.owner == change.side;
    const auto invalid = invalid_reason(rules, unit, change.values, change.unconvertible);
    if (own && !invalid) {
      d.set_golden(unit, v, from_side);
      d.decide(unit, Outcome::kCreate, unit_values(unit, {}), v,
               "created by " + change.side + (unit.policy.is_shared() ? " (shared)" : " (owner)"));
      continue;
    }
    FieldValues defaults;
    for (const std::string& m : unit.members) defaults[m] = unit.policy.default_value;
    d.set_golden(unit, defaults,
                 unit.policy.is_shared() ? Provenance{} : Provenance{unit.policy.owner, "", 0});
    if (invalid) {
      d.open_conflict(unit.name, ConflictKind::kInvalidValue, {{change.side, v}},
                      "invalid value from " + change.side + ": " + *invalid);
      d.decide(unit, Outcome::kInvalid, unit_values(unit, {}), v, *invalid);
    } else if (!unit_equal(rules, unit, v, defaults)) {
      d.foreign_write(unit, change.side, v, defaults, unit_values(unit, {}));
    } else {
      d.decide(unit, Outcome::kCreate, unit_values(unit, {}), v,
               unit.policy.owner + " owns " + unit.name + "; the default applies");
    }
  }
  return;
}

void reconcile_delete(Decider& d, const EntityRules& rules, const Change& change) {
  RecordState& after = d.after_;
  Unit record{kRecordUnit, {}, rules.default_policy};
  d.plan_.unlink_source = true;
  after.bases.erase(change.side);
  if (!after.exists || after.deleted) {
    d.decide(record, Outcome::kNoChange, {}, {}, "record already deleted");
    return;
  }
  const DeletePolicy& policy = rules.delete_policy;
  if (policy.owner == change.side) {
    if (policy.propagate == DeletePropagation::kDelete) {
      after.deleted = true;
      d.decide(record, Outcome::kDelete, {}, {},
               change.side + " owns deletes; the delete propagates to every side");
    } else {
      const Unit* flag = rules.unit_of_field(policy.deactivate_field);
      if (std::find(after.detached.begin(), after.detached.end(), change.side) ==
          after.detached.end())
        after.detached.push_back(change.side);
      if (flag != nullptr) {
        const FieldValues before = unit_values(*flag, after.golden);
        after.golden[policy.deactivate_field] = "false";
        after.provenance[flag->name] = Provenance{change.side, "", change.commit_time_us};
        d.decide(*flag, Outcome::kDelete, before, {{policy.deactivate_field, "false"}},
                 change.side + " owns deletes; other sides are deactivated (" +
                     policy.deactivate_field + " = false)");
      }
    }
    return;
  }
  const std::string owner = policy.owner.empty() ? std::string("no side") : policy.owner;
  if (policy.on_foreign_delete == ForeignDelete::kQuarantine) {
    d.open_conflict(kRecordUnit, ConflictKind::kForeignDelete, {{"golden", after.golden}},
                    change.side + " deleted the record, but " + owner + " owns deletes");
    d.decide(record, Outcome::kQuarantine, {}, {},
             owner + " owns deletes; " + change.side + "'s delete waits for a steward");
    return;
  }
  d.decide(record, Outcome::kRestore, {}, {},
           owner + " owns deletes; the row is re-created on " + change.side);
}

// Decides one unit a change touched. `b` refers into the side's base, `g` into golden; an
// accept writes golden through `g`.
void decide_unit(Decider& d, const EntityRules& rules, const Change& change, const Unit& unit,
                 const MemberRefs& b, const MemberRefs& v, MemberRefs& g) {
  RecordState& state = d.after_;
  const std::string& side = change.side;
  // Golden stands unless the unit is accepted: it is then both before and after.
  // Values are copied straight into the plan's decision: no temporaries on the hot path.
  auto keep = [&](Outcome outcome, Reason reason) {
    UnitDecision& made = d.start(unit, outcome, std::move(reason));
    g.copy_to(unit, made.before);
    v.copy_to(unit, made.proposed);
    made.after = made.before;
  };
  // `g` sees golden change under it, so what golden was is copied before it is written.
  auto accept = [&](Reason reason) {
    UnitDecision& made = d.start(unit, Outcome::kAccept, std::move(reason));
    g.copy_to(unit, made.before);
    v.copy_to(unit, made.proposed);
    made.after = made.proposed;
    for (std::size_t i = 0; i < unit.members.size(); ++i) g.store(unit, i, state.golden, v[i]);
    Provenance& prov = state.provenance[unit.name];
    prov.side = side;
    prov.steward.clear();
    prov.time_us = change.commit_time_us;
  };
  auto foreign_write = [&] {
    const UnitValues golden = g.copy(unit);
    d.foreign_write(unit, side, v.copy(unit), golden, golden);
  };

  if (const OpenConflict* held = state.conflict_on(unit.name)) {
    d.plan_.attached.push_back(ConflictAttached{held->id, side, v.copy(unit)});
    keep(Outcome::kAttach, "held by open " + std::string(to_string(held->kind)) + " conflict " +
                               std::to_string(held->id));
    return;
  }
  if (auto invalid = invalid_reason(rules, unit, change.values, change.unconvertible)) {
    d.open_conflict(unit.name, ConflictKind::kInvalidValue,
                    {{side, v.copy(unit)}, {"golden", g.copy(unit)}},
                    "invalid value from " + side + ": " + *invalid);
    keep(Outcome::kInvalid, *invalid);
    return;
  }
  if (unit_equal(rules, unit, v, g)) {
    keep(Outcome::kAgree, Reason(Reason::Form::kAlreadyHolds, side));
    return;
  }
  const FieldPolicy& p = unit.policy;
  const bool owner = p.owner == side;
  if (unit_equal(rules, unit, g, b)) {  // only this side changed it
    if (owner)
      accept(Reason(Reason::Form::kOwns, side));
    else if (p.is_shared())
      accept(Reason(Reason::Form::kChangedShared, side));
    else
      foreign_write();
    return;
  }
  // Someone else's change has not reached this side yet, and it changed the unit too.
  if (owner) {
    accept(Reason(Reason::Form::kOwnsAndWins, side));
    return;
  }
  if (!p.is_shared()) {
    foreign_write();
    return;
  }
  static const Provenance kNobody;
  auto prov_it = state.provenance.find(unit.name);
  const Provenance& prov = prov_it == state.provenance.end() ? kNobody : prov_it->second;
  const std::string other = prov.side.empty() ? "steward" : prov.side;
  switch (p.on_conflict) {
    case OnConflict::kQuarantine:
      d.open_conflict(unit.name, ConflictKind::kConcurrentEdit,
                      {{side, v.copy(unit)}, {other, g.copy(unit)}},
                      side + " and " + other + " both changed " + unit.name);
      keep(Outcome::kQuarantine, side + " and " + other + " both changed shared " + unit.name);
      return;
    case OnConflict::kLastWriterWins: {
      const bool later = change.commit_time_us > prov.time_us ||
                         (change.commit_time_us == prov.time_us && prov.steward.empty() &&
                          rules.priority_rank(side) < rules.priority_rank(prov.side));
      if (later)
        accept(Reason(Reason::Form::kWroteLast, side));
      else
        keep(Outcome::kKeepGolden, Reason(Reason::Form::kWroteLast, other));
      return;
    }
    case OnConflict::kPriority: {
      const bool wins =
          prov.steward.empty() && rules.priority_rank(side) < rules.priority_rank(prov.side);
      if (wins)
        accept(Reason(Reason::Form::kRanksBefore, side, other));
      else
        keep(Outcome::kKeepGolden, Reason(Reason::Form::kRanksBefore, other, side));
      return;
    }
  }
}

void reconcile_update(Decider& d, const EntityRules& rules, const Change& change) {
  RecordState& state = d.after_;
  // The side holds the change's values afterwards, whatever is decided: its base moves.
  FieldValues& base = state.bases[change.side];
  if (state.deleted) {
    Unit record{kRecordUnit, {}, rules.default_policy};
    d.decide(record, Outcome::kNoChange, {}, change.values,
             "record was deleted by " + rules.delete_policy.owner + "; the delete propagates");
    overlay(base, change.values);
    return;
  }

  d.plan_.decisions.reserve(change.values.size());
  const TouchedUnits touched(rules, change.values);
  for (const Unit* unit_ptr : touched) {
    const Unit& unit = *unit_ptr;
    // Only the units the change touches are looked at, so unchanged fields cost nothing.
    MemberRefs b(unit, base);
    const MemberRefs v(unit, b, change.values);
    if (!unit_equal(rules, unit, v, b)) {  // v = b: the side did not change it
      MemberRefs g(unit, state.golden);
      decide_unit(d, rules, change, unit, b, v, g);
    }
    for (std::size_t i = 0; i < unit.members.size(); ++i)
      if (!v.same_place(b, i)) b.store(unit, i, base, v[i]);
  }
  // Fields no unit holds (not in the ruleset in force) still move the base.
  if (touched.fields_matched() != change.values.size())
    for (const auto& [field, value] : change.values)
      if (rules.unit_of_field(field) == nullptr) base[field] = value;
}

}  // namespace

Plan reconcile_in_place(const EntityRules& rules, std::int64_t version, RecordState& state,
                        const Change& change) {
  Plan plan;
  Decider d(rules, version, state, plan, change.side + "#" + std::to_string(change.seq),
            change.side);
  if (change.op == Op::kDelete)
    reconcile_delete(d, rules, change);
  else if (!state.exists)
    reconcile_create(d, rules, change);
  else
    reconcile_update(d, rules, change);
  return plan;
}

Reconciliation reconcile(const EntityRules& rules, std::int64_t version, const RecordState& state,
                         const Change& change) {
  Reconciliation r;
  r.after = state;
  r.plan = reconcile_in_place(rules, version, r.after, change);
  return r;
}

namespace {

void close(Reconciliation& out, const OpenConflict& conflict) {
  auto& open = out.after.open_conflicts;
  open.erase(std::remove_if(open.begin(), open.end(),
                            [&](const OpenConflict& c) { return c.id == conflict.id; }),
             open.end());
  out.plan.closed.push_back(conflict.id);
}

// Record-level conflicts: a foreign delete is accepted (the delete propagates as the delete
// owner's would) or dismissed (the row is re-created on the side that deleted it).
Reconciliation resolve_record(const EntityRules& rules, std::int64_t version,
                              const RecordState& state, const OpenConflict& conflict,
                              const Resolution& r, const std::string& who) {
  if (conflict.kind != ConflictKind::kForeignDelete)
    throw ResolutionError(std::string(to_string(conflict.kind)) +
                          " conflicts cannot be resolved from the CLI yet");
  Reconciliation out;
  out.after = state;
  Decider d(rules, version, out.after, out.plan, "steward:" + who, "");
  Unit record{kRecordUnit, {}, rules.default_policy};
  const std::string note = r.note.empty() ? "" : " (" + r.note + ")";
  if (r.kind == Resolution::Kind::kDismiss) {
    close(out, conflict);
    d.decide(record, Outcome::kDismiss, {}, {},
             who + " kept the record; the row is re-created on " + conflict.side + note);
    return out;
  }
  if (r.kind != Resolution::Kind::kTakeSide || r.side != conflict.side)
    throw ResolutionError("a foreign_delete conflict is resolved with --take " + conflict.side +
                          " (accept the delete) or dismissed (re-create the row)");
  close(out, conflict);
  const DeletePolicy& policy = rules.delete_policy;
  const Unit* flag = policy.propagate == DeletePropagation::kDeactivate
                         ? rules.unit_of_field(policy.deactivate_field)
                         : nullptr;
  if (flag == nullptr) {
    out.after.deleted = true;
    d.decide(record, Outcome::kResolve, {}, {},
             who + " accepted " + conflict.side + "'s delete; it propagates" + note);
    return out;
  }
  if (std::find(out.after.detached.begin(), out.after.detached.end(), conflict.side) ==
      out.after.detached.end())
    out.after.detached.push_back(conflict.side);
  const FieldValues before = unit_values(*flag, out.after.golden);
  d.set_golden(*flag, {{policy.deactivate_field, "false"}}, Provenance{"", who, r.time_us});
  d.decide(*flag, Outcome::kResolve, before, {{policy.deactivate_field, "false"}},
           who + " accepted " + conflict.side + "'s delete; other sides are deactivated" + note);
  return out;
}

}  // namespace

Reconciliation resolve(const EntityRules& rules, std::int64_t version, const RecordState& state,
                       const OpenConflict& conflict, const Resolution& r) {
  const std::string who = r.steward.empty() ? std::string("steward") : r.steward;
  if (conflict.unit == kRecordUnit) return resolve_record(rules, version, state, conflict, r, who);
  const Unit* unit = rules.unit_named(conflict.unit);
  if (unit == nullptr)
    throw ResolutionError("conflict " + std::to_string(conflict.id) + " names unit '" +
                          conflict.unit + "', which the ruleset in force does not have");
  Reconciliation out;
  out.after = state;
  Decider d(rules, version, out.after, out.plan, "steward:" + who, "");
  const FieldValues g = unit_values(*unit, state.golden);
  FieldValues chosen;
  std::string reason;
  switch (r.kind) {
    case Resolution::Kind::kTakeSide: {
      auto it = state.bases.find(r.side);
      if (it == state.bases.end())
        throw ResolutionError("side '" + r.side + "' holds no row of this record");
      chosen = unit_values(*unit, it->second);
      reason = who + " took " + r.side + "'s value";
      break;
    }
    case Resolution::Kind::kValue:
      for (const std::string& m : unit->members) {
        auto it = r.values.find(m);
        if (it == r.values.end())
          throw ResolutionError("the value must give field '" + m + "' of " + unit->name);
        auto canonical = canonicalize(rules.type_of(m), it->second);
        if (!canonical)
          throw ResolutionError("'" + show(it->second) + "' is not a valid " +
                                to_string(rules.type_of(m)) + " for " + m);
        chosen[m] = *canonical;
      }
      for (const auto& [f, v] : r.values) {
        (void)v;
        if (!chosen.count(f))
          throw ResolutionError("field '" + f + "' is not part of " + unit->name);
      }
      reason = who + " set the value";
      break;
    case Resolution::Kind::kDismiss:
      chosen = g;
      reason = who + " kept the golden value";
      break;
  }
  if (r.kind != Resolution::Kind::kDismiss) {
    if (auto invalid = invalid_reason(rules, *unit, chosen))
      throw ResolutionError("the chosen value is invalid: " + *invalid);
  }
  if (!r.note.empty()) reason += " (" + r.note + ")";
  d.set_golden(*unit, chosen, Provenance{"", who, r.time_us});
  close(out, conflict);
  d.decide(*unit, r.kind == Resolution::Kind::kDismiss ? Outcome::kDismiss : Outcome::kResolve, g,
           chosen, reason);
  return out;
}

}  // namespace mdsync::core

namespace mdsync::core {

Reconciliation veto_delete(const EntityRules& rules, std::int64_t version, const RecordState& state,
                           const std::string& vetoing_side, const std::string& deleting_side,
                           const std::string& reason) {
  Reconciliation out;
  out.after = state;
  Decider d(rules, version, out.after, out.plan, vetoing_side + ":delete_guard", deleting_side);
  Unit record{kRecordUnit, {}, rules.default_policy};
  out.after.deleted = false;
  const std::string why = vetoing_side + " refused the delete: " + reason;
  // One record-level conflict at a time: a second veto while the steward has not decided
  // only restores again.
  if (out.after.conflict_on(kRecordUnit) == nullptr) {
    d.open_conflict(kRecordUnit, ConflictKind::kForeignDelete, {{"golden", out.after.golden}},
                    why + "; the record is kept until a steward accepts the delete or dismisses");
    out.plan.opened.back().vetoed_by = vetoing_side;
    out.after.open_conflicts.back().vetoed_by = vetoing_side;
  }
  d.decide(record, Outcome::kRestore, {}, {},
           why + "; the record is restored" +
               (deleting_side.empty() ? std::string() : " on " + deleting_side));
  return out;
}

}  // namespace mdsync::core

namespace mdsync::core {

Reconciliation unwritable_value(const EntityRules& rules, std::int64_t version,
                                const RecordState& state, const std::string& side,
                                const std::string& field, const std::string& reason) {
  Reconciliation out;
  out.after = state;
  const Unit* unit = rules.unit_of_field(field);
  if (unit == nullptr || out.after.conflict_on(unit->name) != nullptr) return out;
  Decider d(rules, version, out.after, out.plan, side + ":write", side);
  const FieldValues golden = unit_values(*unit, state.golden);
  const std::string why = side + " cannot hold " + field + ": " + reason;
  d.open_conflict(
      unit->name, ConflictKind::kInvalidValue, {{"golden", golden}},
      why + "; the golden value stays, and is not written to " + side + " until a steward decides");
  d.decide(*unit, Outcome::kInvalid, golden, golden, why);
  return out;
}

}  // namespace mdsync::core
