// Structured logging: every line is one JSON object {"ts","level","event",...fields}, so
// operators can parse the service's log. Callers pass values, never DSNs with passwords
// (redact with config::redact_dsn first).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <variant>

namespace mdsync::log {

enum class Level { kDebug, kInfo, kWarn, kError };

using FieldValue = std::variant<std::string, std::int64_t, double, bool>;
using Field = std::pair<const char*, FieldValue>;

// Sets up the process logger on stderr. `min_level` from --log-level / MDSYNC_LOG_LEVEL.
void init(Level min_level);
Level level_from_string(const std::string& word);  // debug|info|warn|error, default info

void event(Level level, const char* name, std::initializer_list<Field> fields = {});
// Whether `level` is logged, so costly fields are only built when they will be written.
bool enabled(Level level);

inline void info(const char* name, std::initializer_list<Field> f = {}) {
  event(Level::kInfo, name, f);
}
inline void warn(const char* name, std::initializer_list<Field> f = {}) {
  event(Level::kWarn, name, f);
}
inline void error(const char* name, std::initializer_list<Field> f = {}) {
  event(Level::kError, name, f);
}
inline void debug(const char* name, std::initializer_list<Field> f = {}) {
  event(Level::kDebug, name, f);
}

}  // namespace mdsync::log
