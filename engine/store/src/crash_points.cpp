#include "mdsync/store/crash_points.hpp"

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>

#include "mdsync/log/event_log.hpp"

namespace mdsync::store {

namespace {

struct CrashConfig {
  std::string name;
  long after = 1;
  long seen = 0;
};

CrashConfig& config() {
  static CrashConfig c = [] {
    CrashConfig cfg;
    if (const char* at = std::getenv("MDSYNC_CRASH_AT")) cfg.name = at;
    if (const char* n = std::getenv("MDSYNC_CRASH_AFTER")) cfg.after = std::max(1L, std::atol(n));
    return cfg;
  }();
  return c;
}

}  // namespace

void crash_point(const char* name) {
  CrashConfig& c = config();
  if (c.name.empty() || c.name != name) return;
  if (++c.seen < c.after) return;
  log::warn("crash_point",
            {{"point", std::string(name)}, {"hit", static_cast<std::int64_t>(c.seen)}});
  std::raise(SIGKILL);
}

}  // namespace mdsync::store
