// Small builders for the core's tests: rulesets, record states and changes written by hand
// (no rule files, no reader), plus a one-string dump of a RecordState so an assertion on
// `after` shows the whole state when it fails.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "mdsync/core/change.hpp"
#include "mdsync/core/record_state.hpp"
#include "mdsync/core/ruleset.hpp"
#include "mdsync/core/value.hpp"

namespace mdsync::core::test {

inline const Value kNull = std::nullopt;

// ---- field policies -------------------------------------------------------------------

inline FieldPolicy owned_by(const std::string& side,
                            ForeignWrite on_foreign_write = ForeignWrite::kRevert) {
  FieldPolicy p;
  p.owner = side;
  p.on_foreign_write = on_foreign_write;
  return p;
}

inline FieldPolicy shared_field(OnConflict on_conflict = OnConflict::kQuarantine) {
  FieldPolicy p;
  p.owner = kShared;
  p.on_conflict = on_conflict;
  return p;
}

inline FieldPolicy compared(FieldPolicy p, Compare mode) {
  p.compare = mode;
  return p;
}

inline FieldPolicy validated(FieldPolicy p, Validation v) {
  p.validate = std::move(v);
  return p;
}

inline FieldPolicy defaulting(FieldPolicy p, Value value) {
  p.default_value = std::move(value);
  return p;
}

// ---- rulesets -------------------------------------------------------------------------

class RulesBuilder {
 public:
  explicit RulesBuilder(std::string entity = "customer") {
    rules_.entity = std::move(entity);
    rules_.default_policy = owned_by("erp");
  }

  RulesBuilder& priority(std::vector<std::string> sides) {
    rules_.priority = std::move(sides);
    return *this;
  }
  RulesBuilder& create(std::vector<std::string> sides) {
    rules_.create = std::move(sides);
    return *this;
  }
  // `owner`'s delete counts (the rule file's {"owner": ...}); empty: no side's does.
  RulesBuilder& deletes(std::string owner, DeletePropagation propagate = DeletePropagation::kDelete,
                        std::string flag = "") {
    rules_.delete_policy.sides.clear();
    if (!owner.empty()) also_deletes(std::move(owner), propagate, std::move(flag));
    return *this;
  }
  // One more side whose delete counts, with its own propagation (the per-side form).
  RulesBuilder& also_deletes(std::string side,
                             DeletePropagation propagate = DeletePropagation::kDelete,
                             std::string flag = "") {
    rules_.delete_policy.sides.push_back(SideDelete{std::move(side), propagate, std::move(flag)});
    return *this;
  }
  // `side` has no column for `field`.
  RulesBuilder& unmapped(const std::string& side, const std::string& field) {
    rules_.unmapped[side].push_back(field);
    return *this;
  }
  RulesBuilder& field(const std::string& name, FieldPolicy policy,
                      FieldType type = FieldType::kText) {
    rules_.fields.emplace_back(name, type);
    rules_.units.push_back(Unit{name, {name}, std::move(policy)});
    return *this;
  }
  // A group: members are (field, type) pairs, decided as one unit.
  RulesBuilder& group(const std::string& name,
                      const std::vector<std::pair<std::string, FieldType>>& members,
                      FieldPolicy policy) {
    Unit unit{name, {}, std::move(policy)};
    for (const auto& [field, type] : members) {
      rules_.fields.emplace_back(field, type);
      unit.members.push_back(field);
    }
    rules_.units.push_back(std::move(unit));
    return *this;
  }

  EntityRules build() const { return rules_; }

 private:
  EntityRules rules_;
};

// ---- record states --------------------------------------------------------------------

class StateBuilder {
 public:
  StateBuilder() { state_.exists = true; }

  StateBuilder& golden(FieldValues values) {
    state_.golden = std::move(values);
    return *this;
  }
  StateBuilder& base(const std::string& side, FieldValues values) {
    state_.bases[side] = std::move(values);
    return *this;
  }
  StateBuilder& from_side(const std::string& unit, const std::string& side, std::int64_t time) {
    state_.provenance[unit] = Provenance{side, "", time};
    return *this;
  }
  StateBuilder& from_steward(const std::string& unit, const std::string& steward) {
    state_.provenance[unit] = Provenance{"", steward, 0};
    return *this;
  }
  StateBuilder& conflict(std::int64_t id, const std::string& unit, ConflictKind kind) {
    state_.open_conflicts.push_back(OpenConflict{id, unit, kind, ""});
    return *this;
  }
  StateBuilder& deleted() {
    state_.deleted = true;
    return *this;
  }
  StateBuilder& detached(const std::string& side) {
    state_.detached.push_back(side);
    return *this;
  }
  StateBuilder& absent() {
    state_.exists = false;
    return *this;
  }

  RecordState build() const { return state_; }

 private:
  RecordState state_;
};

// ---- changes --------------------------------------------------------------------------

inline Change upsert(const std::string& side, std::int64_t seq, FieldValues values,
                     std::int64_t commit_time_us = 0) {
  Change c;
  c.side = side;
  c.seq = seq;
  c.entity = "customer";
  c.row_key = side + "-row";
  c.op = Op::kUpsert;
  c.values = std::move(values);
  c.commit_time_us = commit_time_us;
  return c;
}

inline Change erase(const std::string& side, std::int64_t seq, std::int64_t commit_time_us = 0) {
  Change c = upsert(side, seq, {}, commit_time_us);
  c.op = Op::kDelete;
  return c;
}

// ---- state dump -----------------------------------------------------------------------

inline std::string values_text(const FieldValues& values) {
  std::string s;
  for (const auto& [field, value] : values) {
    if (!s.empty()) s += " ";
    s += field + "=" + show(value);
  }
  return s;
}

// Every part of a RecordState, one line each, in a fixed order.
inline std::string state_text(const RecordState& s) {
  std::ostringstream out;
  out << "exists=" << s.exists << " deleted=" << s.deleted << "\n";
  out << "golden: " << values_text(s.golden) << "\n";
  for (const auto& [unit, p] : s.provenance) {
    out << "provenance " << unit << ": ";
    if (p.steward.empty())
      out << p.side << "@" << p.time_us;
    else
      out << "steward " << p.steward;
    if (p.seeded) out << " (seed)";
    out << "\n";
  }
  for (const auto& [side, values] : s.bases)
    out << "base " << side << ": " << values_text(values) << "\n";
  for (const OpenConflict& c : s.open_conflicts)
    out << "conflict " << c.id << " " << to_string(c.kind) << " on " << c.unit << "\n";
  for (const std::string& side : s.detached) out << "detached " << side << "\n";
  return out.str();
}

}  // namespace mdsync::core::test
