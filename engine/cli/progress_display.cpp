#include "progress_display.hpp"

#include <algorithm>

namespace mdsync::cli {

namespace {

std::string duration_text(std::int64_t seconds) {
  char buf[32];
  if (seconds >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(seconds / 3600),
                  static_cast<long long>(seconds / 60 % 60), static_cast<long long>(seconds % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(seconds / 60),
                  static_cast<long long>(seconds % 60));
  return buf;
}

}  // namespace

ProgressDisplay::ProgressDisplay(std::FILE* out, bool terminal,
                                 std::chrono::milliseconds plain_every)
    : out_(out), terminal_(terminal), plain_every_(plain_every) {}

std::string ProgressDisplay::line(const store::InitialSyncProgress& p,
                                  Clock::time_point now) const {
  const double secs = std::chrono::duration<double>(now - started_).count();
  const double rate = secs > 0 ? static_cast<double>(p.done) / secs : 0;
  std::string s = "sync --initial: " + p.entity + " on " + p.side + " ";
  if (terminal_ && p.total > 0) {
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(kWidth * std::min<std::int64_t>(p.done, p.total) / p.total);
    s += "[" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "] ";
  }
  s += std::to_string(p.done);
  if (p.total > 0) s += "/" + std::to_string(p.total);
  s += " rows, " + std::to_string(static_cast<std::int64_t>(rate)) + " rows/s";
  if (!p.finished && p.total > p.done && rate > 0)
    s += ", about " +
         duration_text(static_cast<std::int64_t>(static_cast<double>(p.total - p.done) / rate)) +
         " left";
  if (p.finished) s += ", done in " + duration_text(static_cast<std::int64_t>(secs));
  return s;
}

void ProgressDisplay::update(const store::InitialSyncProgress& p, Clock::time_point now) {
  const std::string step = p.entity + "\n" + p.side;
  if (step != step_) {
    step_ = step;
    started_ = now;
    shown_ = now;
  }
  if (terminal_) {
    if (!p.finished && now - shown_ < std::chrono::milliseconds(100)) return;
    shown_ = now;
    // \r and erase-line: the same line, redrawn; a step's last state stays on screen.
    std::fprintf(out_, "\r\033[K%s%s", line(p, now).c_str(), p.finished ? "\n" : "");
  } else {
    if (!p.finished && now - shown_ < plain_every_) return;
    shown_ = now;
    std::fprintf(out_, "%s\n", line(p, now).c_str());
  }
  std::fflush(out_);
}

}  // namespace mdsync::cli
