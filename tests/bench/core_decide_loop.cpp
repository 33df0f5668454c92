// A fixed number of in-place reconciles of the core benchmark's workload, for counting
// instructions under callgrind (tools/bench --instructions): unlike time on a shared machine,
// the count does not move with other load, so a change to the core can be judged by it.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "mdsync/core/reconciler.hpp"

namespace {

using namespace mdsync::core;

// fields f00..fNN: the first half owned by erp, a quarter by crm, a quarter shared (lww).
EntityRules make_rules(int fields) {
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

RecordState make_state(const EntityRules& rules) {
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
Change make_change(const EntityRules& rules, int changed) {
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

}  // namespace

// Usage: core_decide_loop FIELDS CHANGED ITERATIONS
int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: core_decide_loop FIELDS CHANGED ITERATIONS\n");
    return 2;
  }
  const int fields = std::atoi(argv[1]), changed = std::atoi(argv[2]), n = std::atoi(argv[3]);
  EntityRules rules = make_rules(fields);
  prepare(rules);
  RecordState state = make_state(rules);
  Change forth = make_change(rules, changed);
  Change back = forth;
  for (auto& [name, value] : back.values) value = state.golden[name];
  long decisions = 0;
  for (int i = 0; i < n; ++i) {
    Change& change = i % 2 ? back : forth;
    ++change.commit_time_us;
    decisions += static_cast<long>(reconcile_in_place(rules, 1, state, change).decisions.size());
  }
  std::printf("%ld decisions\n", decisions);
  return 0;
}
