#include "mdsync/core/reconciler.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
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

// The side of a steward's decision.
const std::string kNoSide;

// values_equal, answering inline what needs no look at the type: most values compared are
// equal byte for byte, or are exactly compared text.
bool same_value(FieldType type, Compare mode, const Value& a, const Value& b) {
  if (!a || !b) return !a && !b;
  if (*a == *b) return true;
  if (type == FieldType::kText ? mode == Compare::kExact
                               : type != FieldType::kNumeric && type != FieldType::kInteger)
    return false;
  return values_equal(type, mode, a, b);
}

const Value& null_value() {
  static const Value kNull;
  return kNull;
}

const Value& value_or_null(const FieldValues& values, const std::string& field) {
  auto it = values.find(field);
  return it == values.end() ? null_value() : it->second;
}

// A vector whose first N elements live inline, so the usual handful allocates nothing. For
// pointers and iterators only: elements are copied, never destroyed.
template <class T, std::size_t N>
class SmallVector {
 public:
  SmallVector() = default;
  SmallVector(const SmallVector&) = delete;  // data_ may point into this very object
  SmallVector& operator=(const SmallVector&) = delete;

  void push_back(const T& item) {
    if (size_ < N) {
      inline_[size_] = item;
    } else {
      if (size_ == N) spill_.assign(inline_, inline_ + N);
      spill_.push_back(item);
      data_ = spill_.data();
    }
    ++size_;
  }
  std::size_t size() const { return size_; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }

 private:
  T inline_[N];  // written before read: left uninitialized, as zeroing it costs a store each
  std::vector<T> spill_;
  T* data_ = inline_;
  std::size_t size_ = 0;
};

// Finds keys in a sorted map, asked for in ascending order: each search first tries the entry
// after the last one found, so the fields of a change (listed in key order, and often side
// by side in the record) mostly cost one comparison rather than a search from the root. Keys
// asked for out of order are still found, only by the full search.
template <class Map>
class Cursor {
 public:
  using iterator = typename Map::iterator;
  explicit Cursor(Map& map) : map_(map), next_(map.begin()) {}

  iterator end() const { return map_.end(); }
  iterator find(const std::string& key) {
    if (next_ != map_.end() && next_->first == key) return next_++;
    const iterator it = map_.lower_bound(key);
    if (it == map_.end() || it->first != key) {
      next_ = it;  // where `key` would go: the hint for an insert of it
      return map_.end();
    }
    next_ = std::next(it);
    return it;
  }
  typename Map::mapped_type& operator[](const std::string& key) {
    const iterator it = find(key);
    if (it != map_.end()) return it->second;
    return map_.emplace_hint(next_, key, typename Map::mapped_type{})->second;
  }

 private:
  Map& map_;
  iterator next_;
};

// Where one member of a unit a change touched has its values, looked up once and never
// copied: deciding compares these, and only the decision's own record of before/proposed/
// after copies values.
struct MemberRef {
  const Value* b;  // the side's base (null_value() when it has none)
  const Value* v;  // what the side holds now: the change's value, else the base's
  const Value* g;  // golden (null_value() when golden has none)
  bool touched;    // the change carries this member
};
using UnitRefs = SmallVector<MemberRef, 8>;  // groups rarely have more members

bool unit_equal(const EntityRules& rules, const Unit& unit, const UnitRefs& refs,
                const Value* MemberRef::*a, const Value* MemberRef::*b) {
  for (std::size_t i = 0; i < refs.size(); ++i)
    if (!same_value(member_type(rules, unit, i), unit.policy.compare, *(refs[i].*a), *(refs[i].*b)))
      return false;
  return true;
}

void copy_to(const Unit& unit, const UnitRefs& refs, const Value* MemberRef::*which,
             UnitValues& out) {
  if (refs.size() == 1 && !unit.member_names.empty())  // a plain field of prepared rules
    return out.add(unit.member_names[0], *(refs[0].*which));
  const bool prepared = unit.member_names.size() == refs.size();
  for (std::size_t i = 0; i < refs.size(); ++i) {
    if (prepared)
      out.add(unit.member_names[i], *(refs[i].*which));
    else
      out.add(unit.members[i], *(refs[i].*which));
  }
}

UnitValues copy(const Unit& unit, const UnitRefs& refs, const Value* MemberRef::*which) {
  UnitValues out;
  copy_to(unit, refs, which, out);
  return out;
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

// Whether any value of a unit can fail: rules that validate, or a value the change could not
// read. Every value is still held to the engine's size limit, which costs one comparison.
bool may_be_invalid(const Unit& unit, const std::map<std::string, std::string>& unconvertible) {
  return !unit.policy.validate.empty() || !unconvertible.empty();
}

std::optional<std::string> member_invalid(const EntityRules& rules, const Unit& unit, std::size_t i,
                                          const Value& value,
                                          const std::map<std::string, std::string>& unconvertible,
                                          bool validate_rules) {
  const std::string& m = unit.members[i];
  if (auto bad = unconvertible.find(m); bad != unconvertible.end()) return m + " " + bad->second;
  if (!validate_rules) {
    if (!value || value->size() <= kMaxValueBytes) return std::nullopt;
    return m + " larger than the 1 MiB value limit (" + std::to_string(value->size()) + " bytes)";
  }
  if (auto why =
          validate(unit.policy.validate, member_type(rules, unit, i), value, unit.policy.compare))
    return m + " " + *why;
  return std::nullopt;
}

// The first validation failure of the unit's whole proposed value: a group is valid only as a
// whole, so a member the change did not touch is validated too (with the value the side holds,
// which is what golden would take), and a value validated once is no exemption later.
std::optional<std::string> invalid_reason(
    const EntityRules& rules, const Unit& unit, const FieldValues& proposed,
    const std::map<std::string, std::string>& unconvertible = {}) {
  const bool validate_rules = may_be_invalid(unit, unconvertible);
  for (std::size_t i = 0; i < unit.members.size(); ++i)
    if (auto why = member_invalid(rules, unit, i, value_or_null(proposed, unit.members[i]),
                                  unconvertible, validate_rules))
      return why;
  return std::nullopt;
}

// The same for the unit's values in `refs`: what the change carries for the members it
// touched, what the side holds (its base) for the others.
std::optional<std::string> invalid_reason(const EntityRules& rules, const Unit& unit,
                                          const UnitRefs& refs,
                                          const std::map<std::string, std::string>& unconvertible) {
  const bool validate_rules = may_be_invalid(unit, unconvertible);
  for (std::size_t i = 0; i < refs.size(); ++i)
    if (auto why = member_invalid(rules, unit, i, *refs[i].v, unconvertible, validate_rules))
      return why;
  return std::nullopt;
}

void overlay(FieldValues& target, const FieldValues& values) {
  for (const auto& [f, v] : values) target[f] = v;
}

class Decider {
 public:
  // Decides into `state` (updated in place) and `plan`.
  Decider(const EntityRules& rules, std::int64_t version, RecordState& state, Plan& plan,
          std::string source, const std::string& side)
      : rules_(rules), after_(state), plan_(plan), side_(side), side_name_(side) {
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
  UnitDecision& start(const Unit& unit, Outcome outcome, Reason&& reason) {
    UnitDecision& d = plan_.decisions.emplace_back();
    d.unit = unit.name;
    d.outcome = outcome;
    // Assigned from the unit directly: a conditional would copy the pointer into a temporary
    // first, and each copy of a shared_ptr is an atomic increment.
    if (unit.rule_text)
      d.rule = unit.rule_text;
    else
      d.rule = std::make_shared<const std::string>(describe_rule(rules_.entity, unit));
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
  void foreign_write(const Unit& unit, UnitValues v, const UnitValues& g, UnitValues before) {
    const std::string& side = side_;
    const std::string& owner = unit.policy.owner;
    if (unit.policy.on_foreign_write == ForeignWrite::kRevert) {
      record(unit, Outcome::kRevert, std::move(before), std::move(v), g,
             Reason(Reason::Form::kReverted, side_name_, owner));
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
  const std::string& side_;      // the side whose change is decided; empty for a steward
  const ShortString side_name_;  // the same, as reasons hold it
};

// `allowed`: a steward accepted this create from a side the create list does not name.
void reconcile_create(Decider& d, const EntityRules& rules, const Change& change,
                      bool allowed = false) {
  RecordState& after = d.after_;
  const Provenance from_side{change.side, "", change.commit_time_us};
  if (!allowed && !rules.may_create(change.side)) {
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
    if (!rules.holds(change.side, field)) continue;  // the side has no column for it
    auto it = change.values.find(field);
    after.bases[change.side][field] = it == change.values.end() ? Value{} : it->second;
  }
  for (const Unit& unit : rules.units) {
    FieldValues defaults;
    for (const std::string& m : unit.members) defaults[m] = unit.policy.default_value;
    const Provenance from_owner =
        unit.policy.is_shared() ? Provenance{} : Provenance{unit.policy.owner, "", 0};
    if (!rules.holds(change.side, unit)) {
      // The side has no value to give: the unit starts from its default, which its owner
      // (or, shared, any side that holds it) then changes as usual.
      d.set_golden(unit, defaults, from_owner);
      d.decide(unit, Outcome::kCreate, unit_values(unit, {}), {},
               change.side + " does not map " + unit.name + "; the default applies");
      continue;
    }
    const FieldValues v = unit_values(unit, change.values);
    const bool own = unit.policy.is_shared() || unit.policy.owner == change.side;
    const auto invalid = invalid_reason(rules, unit, change.values, change.unconvertible);
    if (own && !invalid) {
      d.set_golden(unit, v, from_side);
      d.decide(unit, Outcome::kCreate, unit_values(unit, {}), v,
               "created by " + change.side + (unit.policy.is_shared() ? " (shared)" : " (owner)"));
      continue;
    }
    // The owner has given nothing yet (the record is new): under on_create accept the
    // creating side's value seeds the unit, marked so that the owner's first value replaces
    // it. A side that gives nothing (all NULL) seeds nothing: the default applies.
    const bool seeds =
        !invalid && unit.policy.on_create == OnCreate::kAccept &&
        std::any_of(v.begin(), v.end(), [](const auto& kv) { return kv.second.has_value(); });
    if (seeds) {
      Provenance seeded = from_side;
      seeded.seeded = true;
      d.set_golden(unit, v, seeded);
      d.decide(unit, Outcome::kSeed, unit_values(unit, {}), v,
               "seeded by " + change.side + ": on_create accept; " + unit.policy.owner + " owns " +
                   unit.name + " and its first value replaces the seed");
      continue;
    }
    d.set_golden(unit, defaults, from_owner);
    if (invalid) {
      d.open_conflict(unit.name, ConflictKind::kInvalidValue, {{change.side, v}},
                      "invalid value from " + change.side + ": " + *invalid);
      d.decide(unit, Outcome::kInvalid, unit_values(unit, {}), v, *invalid);
    } else if (!unit_equal(rules, unit, v, defaults)) {
      d.foreign_write(unit, v, defaults, unit_values(unit, {}));
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
  if (!after.exists || after.deleted) {
    after.bases.erase(change.side);
    d.decide(record, Outcome::kNoChange, {}, {}, "record already deleted");
    return;
  }
  // A row the record is not linked to (its delete was already decided): nothing to decide
  // again, so a redelivered delete changes nothing.
  if (after.bases.erase(change.side) == 0) {
    d.decide(record, Outcome::kNoChange, {}, {}, change.side + "'s row is not linked");
    return;
  }
  const DeletePolicy& policy = rules.delete_policy;
  if (const SideDelete* own = policy.of(change.side)) {
    if (own->propagate == DeletePropagation::kDelete) {
      after.deleted = true;
      d.decide(record, Outcome::kDelete, {}, {},
               change.side + " owns deletes; the delete propagates to every side");
    } else {
      const Unit* flag = rules.unit_of_field(own->deactivate_field);
      if (std::find(after.detached.begin(), after.detached.end(), change.side) ==
          after.detached.end())
        after.detached.push_back(change.side);
      if (flag != nullptr) {
        const FieldValues before = unit_values(*flag, after.golden);
        after.golden[own->deactivate_field] = "false";
        after.provenance[flag->name] = Provenance{change.side, "", change.commit_time_us};
        d.decide(*flag, Outcome::kDelete, before, {{own->deactivate_field, "false"}},
                 change.side + " owns deletes; other sides are deactivated (" +
                     own->deactivate_field + " = false)");
      }
    }
    return;
  }
  const std::string owners = policy.owners_text();
  if (policy.on_foreign_delete == ForeignDelete::kQuarantine) {
    d.open_conflict(kRecordUnit, ConflictKind::kForeignDelete, {{"golden", after.golden}},
                    change.side + " deleted the record, but " + owners);
    d.decide(record, Outcome::kQuarantine, {}, {},
             owners + "; " + change.side + "'s delete waits for a steward");
    return;
  }
  d.decide(record, Outcome::kRestore, {}, {}, owners + "; the row is re-created on " + change.side);
}

using ProvenanceCursor = Cursor<std::map<std::string, Provenance>>;

// Decides one unit a change touched. `refs` point into the side's base, the change and
// golden; an accept writes golden through them.
void decide_unit(Decider& d, const EntityRules& rules, const Change& change, const Unit& unit,
                 UnitRefs& refs, ProvenanceCursor& provenance) {
  RecordState& state = d.after_;
  const std::string& side = change.side;
  // Golden stands unless the unit is accepted: it is then both before and after.
  // Values are copied straight into the plan's decision: no temporaries on the hot path.
  auto keep = [&](Outcome outcome, Reason&& reason) {
    UnitDecision& made = d.start(unit, outcome, std::move(reason));
    copy_to(unit, refs, &MemberRef::g, made.before);
    copy_to(unit, refs, &MemberRef::v, made.proposed);
    made.after = made.before;
  };
  // Golden changes under `refs`, so what golden was is copied before it is written.
  auto accept = [&](Reason&& reason, Provenance* known = nullptr) {
    UnitDecision& made = d.start(unit, Outcome::kAccept, std::move(reason));
    copy_to(unit, refs, &MemberRef::g, made.before);
    copy_to(unit, refs, &MemberRef::v, made.proposed);
    made.after = made.proposed;
    for (std::size_t i = 0; i < refs.size(); ++i) {
      MemberRef& ref = refs[i];
      if (ref.g != &null_value())
        *const_cast<Value*>(ref.g) = *ref.v;  // it lives in state.golden, which is not const
      else
        ref.g = &state.golden.insert_or_assign(unit.members[i], *ref.v).first->second;
    }
    Provenance& prov = known != nullptr ? *known : provenance[unit.name];
    if (prov.side != side) prov.side = side;  // mostly the same side again: no copy then
    prov.steward.clear();
    prov.time_us = change.commit_time_us;
    prov.seeded = false;
  };
  auto foreign_write = [&] {
    const UnitValues golden = copy(unit, refs, &MemberRef::g);
    d.foreign_write(unit, copy(unit, refs, &MemberRef::v), golden, golden);
  };

  if (!state.open_conflicts.empty())
    if (const OpenConflict* held = state.conflict_on(unit.name)) {
      d.plan_.attached.push_back(ConflictAttached{held->id, side, copy(unit, refs, &MemberRef::v)});
      keep(Outcome::kAttach, "held by open " + std::string(to_string(held->kind)) + " conflict " +
                                 std::to_string(held->id));
      return;
    }
  if (auto invalid = invalid_reason(rules, unit, refs, change.unconvertible)) {
    d.open_conflict(
        unit.name, ConflictKind::kInvalidValue,
        {{side, copy(unit, refs, &MemberRef::v)}, {"golden", copy(unit, refs, &MemberRef::g)}},
        "invalid value from " + side + ": " + *invalid);
    keep(Outcome::kInvalid, *invalid);
    return;
  }
  if (unit_equal(rules, unit, refs, &MemberRef::v, &MemberRef::g)) {
    keep(Outcome::kAgree, Reason(Reason::Form::kAlreadyHolds, d.side_name_));
    return;
  }
  const FieldPolicy& p = unit.policy;
  const bool owner = p.owner == side;
  if (owner && p.on_create == OnCreate::kAccept) {
    // Golden holds a seed (another side's value from the record's create): the owner's first
    // value replaces it, whatever the owner's base says (a row linked by a match key may
    // already have held it).
    const auto prov = provenance.find(unit.name);
    if (prov != provenance.end() && prov->second.seeded) {
      accept(side + " owns " + unit.name + "; its value replaces the seed by " + prov->second.side,
             &prov->second);
      return;
    }
  }
  if (unit_equal(rules, unit, refs, &MemberRef::g, &MemberRef::b)) {  // only this side changed it
    if (owner)
      accept(Reason(Reason::Form::kOwns, d.side_name_));
    else if (p.is_shared())
      accept(Reason(Reason::Form::kChangedShared, d.side_name_));
    else
      foreign_write();
    return;
  }
  // Someone else's change has not reached this side yet, and it changed the unit too.
  if (owner) {
    accept(Reason(Reason::Form::kOwnsAndWins, d.side_name_));
    return;
  }
  if (!p.is_shared()) {
    foreign_write();
    return;
  }
  static const Provenance kNobody;
  const auto prov_it = provenance.find(unit.name);
  Provenance* known = prov_it == provenance.end() ? nullptr : &prov_it->second;
  const Provenance& prov = known != nullptr ? *known : kNobody;
  const std::string other = prov.side.empty() ? "steward" : prov.side;
  switch (p.on_conflict) {
    case OnConflict::kQuarantine:
      d.open_conflict(
          unit.name, ConflictKind::kConcurrentEdit,
          {{side, copy(unit, refs, &MemberRef::v)}, {other, copy(unit, refs, &MemberRef::g)}},
          side + " and " + other + " both changed " + unit.name);
      keep(Outcome::kQuarantine, side + " and " + other + " both changed shared " + unit.name);
      return;
    case OnConflict::kLastWriterWins: {
      const bool later = change.commit_time_us > prov.time_us ||
                         (change.commit_time_us == prov.time_us && prov.steward.empty() &&
                          rules.priority_rank(side) < rules.priority_rank(prov.side));
      if (later)
        accept(Reason(Reason::Form::kWroteLast, d.side_name_), known);
      else
        keep(Outcome::kKeepGolden, Reason(Reason::Form::kWroteLast, other));
      return;
    }
    case OnConflict::kPriority: {
      const bool wins =
          prov.steward.empty() && rules.priority_rank(side) < rules.priority_rank(prov.side);
      if (wins)
        accept(Reason(Reason::Form::kRanksBefore, d.side_name_, other), known);
      else
        keep(Outcome::kKeepGolden, Reason(Reason::Form::kRanksBefore, other, d.side_name_));
      return;
    }
  }
}

// The owner's change carries a value of a seeded unit that differs from the seed, though not
// from the owner's base (a row that already held it when it was linked): it is still the
// owner's first value, and replaces the seed. NULL is no value: it leaves the seed in place.
bool owner_replaces_seed(const EntityRules& rules, const RecordState& state, const Unit& unit,
                         const UnitRefs& refs) {
  const auto prov = state.provenance.find(unit.name);
  if (prov == state.provenance.end() || !prov->second.seeded) return false;
  bool gives = false;
  for (std::size_t i = 0; i < refs.size(); ++i) gives = gives || (refs[i].touched && *refs[i].v);
  return gives && !unit_equal(rules, unit, refs, &MemberRef::v, &MemberRef::g);
}

// One field of a change that some unit holds, with where its values live.
struct Touch {
  std::uint64_t order;  // unit index, then member index: decisions follow the units' order
  const Value* v;       // in the change
  Value* b;             // in the side's base, which holds an entry for every touched field
  const Value* g;       // in golden, or null_value()
};

void reconcile_update(Decider& d, const EntityRules& rules, const Change& change) {
  RecordState& state = d.after_;
  // The side holds the change's values afterwards, whatever is decided: its base moves.
  FieldValues& base = state.bases[change.side];
  if (state.deleted) {
    Unit record{kRecordUnit, {}, rules.default_policy};
    const std::vector<SideDelete>& deleters = rules.delete_policy.sides;
    d.decide(record, Outcome::kNoChange, {}, change.values,
             "record was deleted" +
                 (deleters.size() == 1 ? " by " + deleters.front().side : std::string()) +
                 "; the delete propagates");
    overlay(base, change.values);
    return;
  }
  std::vector<FieldSlot> own_slots;  // unprepared rules only
  if (rules.field_slots.empty()) own_slots = make_field_slots(rules);
  const std::vector<FieldSlot>& slots = rules.field_slots.empty() ? own_slots : rules.field_slots;

  // Pass 1, in the change's (key) order, so every map is walked forward: which unit holds
  // each field, and where its base and golden values are. Only the change's fields are
  // looked at, so the record's other fields cost nothing.
  SmallVector<Touch, 32> touches;  // a 20-field change fits
  // Fields the side has no column for are never captured there; should a change carry one
  // anyway, it is not the side's to give.
  const bool lacks_fields = !rules.unmapped.empty() && rules.unmapped.count(change.side) != 0;
  bool in_order = true;
  Cursor<FieldValues> base_at(base), golden_at(state.golden);
  std::size_t next_slot = 0;
  for (const auto& [field, value] : change.values) {
    const FieldSlot* slot = nullptr;
    if (next_slot < slots.size() && slots[next_slot].field == field) {
      slot = &slots[next_slot++];
    } else {
      auto it = std::lower_bound(
          slots.begin() + static_cast<std::ptrdiff_t>(next_slot), slots.end(), field,
          [](const FieldSlot& s, const std::string& f) { return s.field < f; });
      next_slot = static_cast<std::size_t>(it - slots.begin());
      if (it != slots.end() && it->field == field) {
        slot = &*it;
        ++next_slot;
      }
    }
    if (lacks_fields && !rules.holds(change.side, field)) continue;
    // An entry now, so it can be written through later: NULL, as a missing base value reads.
    Value& b = base_at[field];
    if (slot == nullptr) {  // no unit in the ruleset in force holds it: the base still moves
      b = value;
      continue;
    }
    const auto g = golden_at.find(field);
    const std::uint64_t order = std::uint64_t{slot->unit} << 32 | slot->member;
    in_order = in_order && (touches.size() == 0 || touches[touches.size() - 1].order < order);
    touches.push_back(Touch{order, &value, &b, g == golden_at.end() ? &null_value() : &g->second});
  }
  if (!in_order)  // the entity's fields are not in name order
    std::sort(touches.begin(), touches.end(),
              [](const Touch& a, const Touch& b) { return a.order < b.order; });

  // Pass 2, unit by unit in the entity's order, so plans are deterministic.
  d.plan_.decisions.reserve(touches.size());
  ProvenanceCursor provenance(state.provenance);
  for (Touch* t = touches.begin(); t != touches.end();) {
    const Unit& unit = rules.units[t->order >> 32];
    UnitRefs refs;
    Touch* const first = t;
    for (std::size_t i = 0; i < unit.members.size(); ++i) {
      if (t != touches.end() && t->order == (std::uint64_t{first->order >> 32} << 32 | i)) {
        refs.push_back(MemberRef{t->b, t->v, t->g, true});
        ++t;
      } else {  // a group member the change did not touch: the side still holds its base
        const Value* b = &value_or_null(base, unit.members[i]);
        refs.push_back(MemberRef{b, b, &value_or_null(state.golden, unit.members[i]), false});
      }
    }
    bool changed = false;  // v = b: the side did not change the unit
    for (std::size_t i = 0; i < refs.size() && !changed; ++i)
      changed = refs[i].touched && !same_value(member_type(rules, unit, i), unit.policy.compare,
                                               *refs[i].v, *refs[i].b);
    if (!changed && unit.policy.on_create == OnCreate::kAccept && unit.policy.owner == change.side)
      changed = owner_replaces_seed(rules, state, unit, refs);
    if (changed) decide_unit(d, rules, change, unit, refs, provenance);
    for (const Touch* moved = first; moved != t; ++moved) *moved->b = *moved->v;
  }
}

// "crm#42", made without temporaries: it is part of every plan's cost.
std::string source_of(const Change& change) {
  char text[64];
  const std::size_t n = change.side.size();
  if (n > sizeof text - 22) return change.side + "#" + std::to_string(change.seq);
  std::memcpy(text, change.side.data(), n);
  text[n] = '#';
  return std::string(text, std::to_chars(text + n + 1, text + sizeof text, change.seq).ptr);
}

}  // namespace

Plan reconcile_in_place(const EntityRules& rules, std::int64_t version, RecordState& state,
                        const Change& change) {
  Plan plan;
  Decider d(rules, version, state, plan, source_of(change), change.side);
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
  Decider d(rules, version, out.after, out.plan, "steward:" + who, kNoSide);
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
  // The delete propagates as the deleting side's own would (a vetoed delete); a side whose
  // delete does not count propagates as the first side whose delete does, else as a delete.
  const DeletePolicy& policy = rules.delete_policy;
  const SideDelete* how = policy.of(conflict.side);
  if (how == nullptr && !policy.sides.empty()) how = &policy.sides.front();
  const bool deactivates = how != nullptr && how->propagate == DeletePropagation::kDeactivate;
  const std::string no_field;
  const std::string& flag_field = deactivates ? how->deactivate_field : no_field;
  const Unit* flag = deactivates ? rules.unit_of_field(flag_field) : nullptr;
  if (flag == nullptr) {
    out.after.deleted = true;
    d.decide(record, Outcome::kResolve, {}, {},
             who + " accepted " + conflict.side + "'s delete; it propagates" + note);
    return out;
  }
  // The deleting side is detached (nothing more is written there), unless it holds a linked
  // row again: the row its vetoed delete had the engine restore meanwhile. A detached side with
  // a linked row would keep that row out of sync for good; it is deactivated with the others.
  const bool restored = state.bases.count(conflict.side) != 0;
  if (!restored && std::find(out.after.detached.begin(), out.after.detached.end(), conflict.side) ==
                       out.after.detached.end())
    out.after.detached.push_back(conflict.side);
  const FieldValues before = unit_values(*flag, out.after.golden);
  d.set_golden(*flag, {{flag_field, "false"}}, Provenance{"", who, r.time_us});
  d.decide(
      *flag, Outcome::kResolve, before, {{flag_field, "false"}},
      who + " accepted " + conflict.side + "'s delete; other sides are deactivated" +
          (restored ? ", and the row restored on " + conflict.side + " meanwhile with them" : "") +
          note);
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
  Decider d(rules, version, out.after, out.plan, "steward:" + who, kNoSide);
  const FieldValues g = unit_values(*unit, state.golden);
  FieldValues chosen;
  std::string reason;
  switch (r.kind) {
    case Resolution::Kind::kTakeSide: {
      auto it = state.bases.find(r.side);
      if (it == state.bases.end())
        throw ResolutionError("side '" + r.side + "' holds no row of this record");
      if (!rules.holds(r.side, *unit))
        throw ResolutionError(r.side + " does not map " + unit->name +
                              " (the config gives it no column there); take a side that "
                              "maps it, or give --value");
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

Reconciliation unwritable_value(const EntityRules& rules, std::int64_t version,
                                const RecordState& state, const std::string& side,
                                const std::string& field, const std::string& reason,
                                ConflictKind kind) {
  Reconciliation out;
  out.after = state;
  const Unit* unit = rules.unit_of_field(field);
  if (unit == nullptr || out.after.conflict_on(unit->name) != nullptr) return out;
  Decider d(rules, version, out.after, out.plan, side + ":write", side);
  const FieldValues golden = unit_values(*unit, state.golden);
  const std::string why = side + " cannot hold " + field + ": " + reason;
  d.open_conflict(
      unit->name, kind, {{"golden", golden}},
      why + "; the golden value stays, and is not written to " + side + " until a steward decides");
  d.decide(*unit, Outcome::kInvalid, golden, golden, why);
  return out;
}

Reconciliation repair_drift(const EntityRules& rules, std::int64_t version,
                            const RecordState& state, const std::string& side,
                            const FieldValues& held,
                            const std::map<std::string, std::string>& unreadable) {
  Reconciliation out;
  out.after = state;
  auto base = out.after.bases.find(side);
  if (!state.exists || state.deleted || base == out.after.bases.end()) return out;
  Decider d(rules, version, out.after, out.plan, "verify:" + side, side);
  for (const Unit& unit : rules.units) {
    if (!rules.holds(side, unit)) continue;
    const bool read_all = std::all_of(unit.members.begin(), unit.members.end(), [&](const auto& m) {
      return held.count(m) != 0 && unreadable.count(m) == 0;
    });
    if (!read_all || out.after.conflict_on(unit.name) != nullptr) continue;
    const FieldValues v = unit_values(unit, held);
    const FieldValues g = unit_values(unit, state.golden);
    // The engine has now seen what the side holds: a write-back is conditional on it.
    const bool base_moves = !unit_equal(rules, unit, v, unit_values(unit, base->second));
    for (const std::string& m : unit.members) base->second[m] = value_or_null(held, m);
    if (unit_equal(rules, unit, v, g)) {
      if (base_moves)
        d.decide(unit, Outcome::kAgree, g, v, side + " already holds golden; its base follows");
      continue;
    }
    const std::string& owner = unit.policy.owner;
    if (!base_moves) {
      // The engine knew the side holds this, yet no write-back is queued (a write that failed
      // for good, a lost plan): golden goes back, whoever owns the unit.
      d.decide(unit, Outcome::kRepair, g, v,
               side + " holds " + unit.name + " = " + show(v) +
                   ", as the engine last saw, but no write-back is queued; golden goes back");
      continue;
    }
    if (owner == side || unit.policy.is_shared()) {
      const std::string why = side + " holds " + unit.name + " = " + show(v) +
                              ", which no captured change explains (written with capture "
                              "bypassed, or restored from a backup)";
      d.open_conflict(unit.name, ConflictKind::kUncapturedValue, {{side, v}, {"golden", g}},
                      why + "; take it with --take " + side + ", or dismiss to write golden back");
      d.decide(unit, Outcome::kQuarantine, g, v,
               why + "; " + (unit.policy.is_shared() ? "shared" : side + " owns it") +
                   ", so a steward decides");
      continue;
    }
    d.decide(unit, Outcome::kRepair, g, v,
             side + " holds " + unit.name + " = " + show(v) +
                 ", which no captured change explains; " + owner +
                 " owns it, so golden goes back to " + side);
  }
  return out;
}

Reconciliation repair_missing_row(const EntityRules& rules, std::int64_t version,
                                  const RecordState& state, const std::string& side) {
  Reconciliation out;
  out.after = state;
  // A record-level conflict (a foreign delete waiting already) holds the record: one at a time.
  if (!state.exists || state.deleted || state.conflict_on(kRecordUnit) != nullptr ||
      out.after.bases.erase(side) == 0)
    return out;
  Decider d(rules, version, out.after, out.plan, "verify:" + side, side);
  Unit record{kRecordUnit, {}, rules.default_policy};
  out.plan.unlink_source = true;
  const std::string why =
      side +
      "'s row is gone and no captured delete explains it (a TRUNCATE, a delete with "
      "capture bypassed)";
  const DeletePolicy& policy = rules.delete_policy;
  const bool owns_deletes = policy.of(side) != nullptr;
  if (owns_deletes || policy.on_foreign_delete == ForeignDelete::kQuarantine) {
    d.open_conflict(
        kRecordUnit, ConflictKind::kForeignDelete, {{"golden", out.after.golden}},
        why + "; accept the delete with --take " + side + ", or dismiss to re-create the row");
    d.decide(record, Outcome::kQuarantine, {}, {},
             why + (owns_deletes ? "; " + side + " owns deletes, so a steward decides"
                                 : "; " + policy.owners_text() +
                                       ", and foreign deletes wait "
                                       "for a steward"));
    return out;
  }
  d.decide(record, Outcome::kRepair, {}, {},
           why + "; " + policy.owners_text() + ", so the row is re-created on " + side);
  return out;
}

Plan create_allowed_by_steward(const EntityRules& rules, std::int64_t version, RecordState& state,
                               const Change& change, const std::string& steward) {
  Plan plan;
  Decider d(rules, version, state, plan, "steward:" + steward, change.side);
  reconcile_create(d, rules, change, true);
  return plan;
}

}  // namespace mdsync::core
