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

std::optional<RowWrite::Kind> row_write_kind_from_string(std::string_view word) {
  for (auto k : {RowWrite::Kind::kInsert, RowWrite::Kind::kUpdate, RowWrite::Kind::kDelete})
    if (word == to_string(k)) return k;
  return std::nullopt;
}

namespace {

const Value& value_in(const FieldValues& values, const std::string& field) {
  static const Value kNull;
  auto it = values.find(field);
  return it == values.end() ? kNull : it->second;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// A foreign delete waiting for a steward keeps the row gone until it is resolved; one that
// another side vetoed is restored meanwhile.
bool held_away(const RecordState& state, const std::string& side) {
  return std::any_of(
      state.open_conflicts.begin(), state.open_conflicts.end(), [&](const OpenConflict& c) {
        return c.kind == ConflictKind::kForeignDelete && c.side == side && c.vetoed_by.empty();
      });
}

// A unit `side` cannot hold: an invalid_value conflict opened for that side holds it (a golden
// value outside its value map, a code its lookup table lacks), or a write_refused one (the
// side's database refused it). Inserting it would fail, and be planned again, for ever.
bool unholdable(const RecordState& state, const std::string& unit, const std::string& side) {
  const OpenConflict* c = state.conflict_on(unit);
  return c != nullptr && c->side == side &&
         (c->kind == ConflictKind::kInvalidValue || c->kind == ConflictKind::kWriteRefused);
}

}  // namespace

WritebackPlan plan_writebacks(const EntityRules& rules, const RecordState& state,
                              const std::vector<std::string>& sides,
                              const std::vector<PendingWrite>& pending) {
  WritebackPlan plan;
  // The side's queued writes in the order they will apply.
  std::vector<const PendingWrite*> queued;
  for (const PendingWrite& p : pending) queued.push_back(&p);
  std::sort(queued.begin(), queued.end(),
            [](const PendingWrite* a, const PendingWrite* b) { return a->id < b->id; });

  for (const std::string& side : sides) {
    const auto base = state.bases.find(side);
    const bool linked = state.exists && base != state.bases.end();
    const bool detached = contains(state.detached, side);
    // Which queued writes still serve the record on this side: on a live record, one insert
    // into a side with no linked row, and updates of a linked row or of the row a queued insert
    // will make; on a deleted record, one delete of a linked row.
    const bool live = state.exists && !state.deleted && !detached;
    const bool want_delete = state.exists && state.deleted && linked;
    bool insert_queued = false, delete_queued = false;
    // Updates queued after an insert that is withdrawn expected what that insert would write.
    bool insert_withdrawn = false;
    // An update that expects what the row no longer holds (a change of the row was reconciled
    // since it was queued) would only be superseded when sent: it is withdrawn, and so are the
    // side's later updates, which expected what it would write; the row is planned afresh.
    bool stale = false;
    // What the side will hold once the kept writes are applied.
    FieldValues effective = linked ? base->second : FieldValues{};
    for (const PendingWrite* p : queued) {
      if (p->side != side) continue;
      if (p->withdrawn) {
        insert_withdrawn = insert_withdrawn || p->kind == RowWrite::Kind::kInsert;
        continue;
      }
      bool keep = false;
      switch (p->kind) {
        case RowWrite::Kind::kInsert:
          keep = live && !linked && !insert_queued;
          insert_queued = insert_queued || keep;
          insert_withdrawn = insert_withdrawn || !keep;
          break;
        case RowWrite::Kind::kUpdate:
          keep = live && (insert_queued || (linked && !insert_withdrawn)) && !stale;
          if (keep && !insert_queued)
            for (const auto& [f, v] : p->expected)
              if (value_in(effective, f) != v) {
                keep = false;
                stale = true;
                break;
              }
          break;
        case RowWrite::Kind::kDelete:
          keep = want_delete && !delete_queued;
          delete_queued = delete_queued || keep;
          break;
      }
      if (!keep) {
        plan.cancel.push_back(p->id);
        continue;
      }
      if (p->kind != RowWrite::Kind::kDelete)
        for (const auto& [f, v] : p->values) effective[f] = v;
    }
    if (!state.exists) continue;
    if (state.deleted) {
      if (want_delete && !delete_queued)
        plan.writes.push_back(RowWrite{side, RowWrite::Kind::kDelete, {}, {}});
      continue;
    }
    if (detached) continue;
    if (!linked && !insert_queued) {
      if (held_away(state, side)) continue;
      RowWrite insert{side, RowWrite::Kind::kInsert, {}, {}};
      for (const auto& [field, type] : rules.fields) {
        (void)type;
        if (!rules.holds(side, field)) continue;  // the side has no column for it
        const Unit* unit = rules.unit_of_field(field);
        if (unit != nullptr && unholdable(state, unit->name, side)) continue;
        insert.values[field] = value_in(state.golden, field);
      }
      plan.writes.push_back(std::move(insert));
      continue;
    }
    // A linked row, or the row a queued insert will make: it gets what golden moved on to.
    RowWrite update{side, RowWrite::Kind::kUpdate, {}, {}};
    for (const Unit& unit : rules.units) {
      if (state.conflict_on(unit.name) != nullptr || !rules.holds(side, unit)) continue;
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
    if (!update.values.empty()) plan.writes.push_back(std::move(update));
  }
  std::sort(plan.cancel.begin(), plan.cancel.end());
  return plan;
}

}  // namespace mdsync::core
