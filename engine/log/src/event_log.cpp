#include "mdsync/log/event_log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

namespace mdsync::log {

namespace {

spdlog::level::level_enum to_spdlog(Level l) {
  switch (l) {
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarn:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

const char* name_of(Level l) {
  switch (l) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

}  // namespace

void init(Level min_level) {
  auto logger = spdlog::stderr_logger_mt("mdsync");
  // The message is already a JSON object; the pattern only adds nothing around it.
  logger->set_pattern("%v");
  logger->set_level(to_spdlog(min_level));
  logger->flush_on(spdlog::level::debug);
  spdlog::set_default_logger(logger);
}

Level level_from_string(const std::string& w) {
  if (w == "debug") return Level::kDebug;
  if (w == "warn") return Level::kWarn;
  if (w == "error") return Level::kError;
  return Level::kInfo;
}

bool enabled(Level level) {
  return spdlog::default_logger_raw()->should_log(to_spdlog(level));
}

void event(Level level, const char* name, std::initializer_list<Field> fields) {
  if (!spdlog::default_logger_raw()->should_log(to_spdlog(level))) return;
  const auto now = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(now);
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() %
      1000000;
  std::tm utc{};
  gmtime_r(&secs, &utc);
  char stamp[64];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(micros));
  nlohmann::json j;
  j["ts"] = stamp;
  j["level"] = name_of(level);
  j["event"] = name;
  for (const auto& [key, value] : fields)
    std::visit([&, k = key](const auto& v) { j[k] = v; }, value);
  spdlog::log(to_spdlog(level), "{}",
              j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace mdsync::log
