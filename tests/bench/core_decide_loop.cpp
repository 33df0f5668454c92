// A fixed number of in-place reconciles of the core benchmark's workload, for counting
// instructions under callgrind (tools/bench --instructions): unlike time on a shared machine,
// the count does not move with other load, so a change to the core can be judged by it.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench_workload.hpp"
#include "mdsync/core/reconciler.hpp"

using namespace mdsync::core;
using namespace mdsync::bench;

// Usage: core_decide_loop FIELDS CHANGED ITERATIONS
int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: core_decide_loop FIELDS CHANGED ITERATIONS\n");
    return 2;
  }
  const int fields = std::atoi(argv[1]), changed = std::atoi(argv[2]), n = std::atoi(argv[3]);
  Workload w(fields, changed);
  EntityRules& rules = w.rules;
  RecordState& state = w.state;
  Change &forth = w.forth, &back = w.back;
  long decisions = 0;
  for (int i = 0; i < n; ++i) {
    Change& change = i % 2 ? back : forth;
    ++change.commit_time_us;
    decisions += static_cast<long>(reconcile_in_place(rules, 1, state, change).decisions.size());
  }
  std::printf("%ld decisions\n", decisions);
  return 0;
}
