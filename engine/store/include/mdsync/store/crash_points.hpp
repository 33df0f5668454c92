// Named crash points for fault tests: with MDSYNC_CRASH_AT=<name> in the environment the
// process kills itself with SIGKILL (as `kill -9` would) the Nth time it reaches that point
// (N = MDSYNC_CRASH_AFTER, default 1). Unset, a crash point costs one branch.
#pragma once

namespace mdsync::store {

// The points, in the order a pass reaches them:
//   batch.before_commit        decisions made, control transaction not yet committed
//   batch.after_commit         control committed, capture rows not yet removed from sides
//   writeback.mid_side         after each write inside the side's transaction (use AFTER=N)
//   writeback.after_side_commit  side committed, control not yet told
//   writeback.before_control_commit  control updates made, not yet committed
void crash_point(const char* name);

}  // namespace mdsync::store
