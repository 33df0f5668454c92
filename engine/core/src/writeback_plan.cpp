#include "mdsync/core/writeback_plan.hpp"

#include <algorithm>

namespace mdsync::core {

const char* to_string(RowWrite::Kind k) {
  switch (k) {
    case RowWrite::Kind::kInsert:
      return "insert";
    case RowWrite::Kind::kUpdate:
      return "update";
    case RowWrite::Kind::kDelete:
      return "delete";
  }
  return "?";
}

namespace {

const Value& value_in(const FieldValues& values, const std::string& field) {
  static const Value kNull;
  auto it = values.find(field);
  return it == values.end() ? kNull : it->second;
}

}  // namespace

std::vector<RowWrite> plan_writebacks(const EntityRules& rules, const RecordState& state,
                                      const std::vector<std::string>& sides,
                                      const std::map<std::string, FieldValues>& in_flight) {
  std::vector<RowWrite> writes;
  if (!state.exists) return writes;
  for (const std::string& side : sides) {
    const auto base = state.bases.find(side);
    const auto flight = in_flight.find(side);
    const bool linked = base != state.bases.end();
    if (state.deleted) {
      if (linked) writes.push_back(RowWrite{side, RowWrite::Kind::kDelete, {}, {}});
      continue;
    }
    if (std::find(state.detached.begin(), state.detached.end(), side) != state.detached.end())
      continue;
    if (!linked && flight == in_flight.end()) {
      // A foreign delete waiting for a steward keeps the row gone until it is resolved;
      // one that another side vetoed is restored meanwhile.
      const bool held = std::any_of(
          state.open_conflicts.begin(), state.open_conflicts.end(), [&](const OpenConflict& c) {
            return c.kind == ConflictKind::kForeignDelete && c.side == side && c.vetoed_by.empty();
          });
      if (held) continue;
      RowWrite insert{side, RowWrite::Kind::kInsert, {}, {}};
      for (const auto& [field, type] : rules.fields) {
        (void)type;
        insert.values[field] = value_in(state.golden, field);
      }
      writes.push_back(std::move(insert));
      continue;
    }
    FieldValues effective = linked ? base->second : FieldValues{};
    if (flight != in_flight.end())
      for (const auto& [f, v] : flight->second) effective[f] = v;
    RowWrite update{side, RowWrite::Kind::kUpdate, {}, {}};
    for (const Unit& unit : rules.units) {
      if (state.conflict_on(unit.name) != nullptr) continue;
      const bool differs =
          std::any_of(unit.members.begin(), unit.members.end(), [&](const std::string& m) {
            return !values_equal(rules.type_of(m), unit.policy.compare, value_in(effective, m),
                                 value_in(state.golden, m));
          });
      if (!differs) continue;
      // A group is written whole, so a side never holds a mix of two versions of it.
      for (const std::string& m : unit.members) {
        update.values[m] = value_in(state.golden, m);
        update.expected[m] = value_in(effective, m);
      }
    }
    if (!update.values.empty()) writes.push_back(std::move(update));
  }
  return writes;
}

}  // namespace mdsync::core
