// The workload both core benchmarks decide: a record of N fields (half owned by erp, a
// quarter by crm, a quarter shared), its state with both sides converged, and a change from
// erp to the first K fields. Shared so the timed and the counted figures are of one workload.
#pragma once

#include <string>

#include "mdsync/core/reconciler.hpp"

namespace mdsync::bench {

using namespace mdsync::core;

// fields f00..fNN: the first half owned by erp, a quarter by crm, a quarter shared (lww).
inline EntityRules make_rules(int fields) {
  EntityRules r;
  r.entity = "customer";
  r.priority = {"erp", "crm"};
  r.create = {"erp", "crm"};
  for (int i = 0; i < fields; ++i) {
    const std::string name = (i < 10 ? "f0" : "f") + std::to_string(i);
    r.fields.emplace_back(name, i % 4 == 3 ? FieldType::kNumeric : FieldType::kText);
    FieldPolicy p;
    p.owner = i < fields / 2 ? "erp" : i < fields * 3 / 4 ? "crm" : kShared;
    p.on_conflict = OnConflict::kLastWriterWins;
    r.units.push_back(Unit{name, {name}, p});
  }
  r.default_policy.owner = "erp";
  return r;
}

inline RecordState make_state(const EntityRules& rules) {
  RecordState s;
  s.exists = true;
  for (const auto& [name, type] : rules.fields) {
    const std::string v = type == FieldType::kNumeric ? "1250.50" : "value of " + name;
    s.golden[name] = v;
    s.bases["erp"][name] = v;
    s.bases["crm"][name] = v;
    s.provenance[name] = Provenance{"erp", "", 1};
  }
  return s;
}

// A change from erp to `changed` fields: erp-owned first, then crm-owned (foreign writes,
// reverted) and shared ones.
inline Change make_change(const EntityRules& rules, int changed) {
  Change c;
  c.side = "erp";
  c.seq = 42;
  c.entity = "customer";
  c.row_key = "1001";
  c.commit_time_us = 2;
  for (int i = 0; i < changed; ++i) {
    const auto& [name, type] = rules.fields[static_cast<std::size_t>(i)];
    c.values[name] = type == FieldType::kNumeric ? "99.90" : "new " + name;
  }
  return c;
}

// The whole in-place workload: prepared rules, the converged record, and two changes that
// alternate (new values, then the original ones back), so every reconcile makes real
// decisions.
struct Workload {
  Workload(int fields, int changed)
      : rules(make_rules(fields)), state(make_state(rules)), forth(make_change(rules, changed)) {
    prepare(rules);
    back = forth;
    for (auto& [name, value] : back.values) value = state.golden[name];
  }
  EntityRules rules;
  RecordState state;
  Change forth, back;
};

}  // namespace mdsync::bench
