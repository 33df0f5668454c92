#include "systemd_notifier.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <regex>

#include "mdsync/log/event_log.hpp"

namespace mdsync::service {

namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

// A status line is one line of the protocol: a newline would start another assignment.
std::string one_line(std::string text) {
  for (char& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  return text;
}

}  // namespace

NotifyEnvironment NotifyEnvironment::from_process() {
  return {env("NOTIFY_SOCKET"), env("WATCHDOG_USEC"), env("WATCHDOG_PID")};
}

SystemdNotifier::SystemdNotifier()
    : SystemdNotifier(NotifyEnvironment::from_process(), ::getpid()) {}

SystemdNotifier::SystemdNotifier(const NotifyEnvironment& e, pid_t self) {
  if (e.socket.empty()) return;
  const bool abstract = e.socket[0] == '@';
  // sun_path holds the name; a path needs its terminating NUL, an abstract name has none.
  if ((!abstract && e.socket[0] != '/') || e.socket.size() >= sizeof(address_.sun_path)) {
    log::warn("systemd_notify_unusable",
              {{"notify_socket", e.socket},
               {"why", std::string("NOTIFY_SOCKET must be an absolute path or @name, shorter "
                                   "than 108 bytes; systemd is not told anything")}});
    return;
  }
  address_.sun_family = AF_UNIX;
  std::memcpy(address_.sun_path, e.socket.data(), e.socket.size());
  if (abstract) address_.sun_path[0] = '\0';
  address_length_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + e.socket.size() +
                                           (abstract ? 0 : 1));
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) {
    log::warn("systemd_notify_unusable", {{"why", std::string(std::strerror(errno))}});
    return;
  }
  // sd_watchdog_enabled(3): the watchdog is this process's when WATCHDOG_PID is unset or ours.
  static const std::regex kNumber("[1-9][0-9]{0,17}");
  if (e.watchdog_usec.empty()) return;
  if (!e.watchdog_pid.empty() && e.watchdog_pid != std::to_string(self)) return;
  if (!std::regex_match(e.watchdog_usec, kNumber)) {
    log::warn("systemd_watchdog_unusable",
              {{"watchdog_usec", e.watchdog_usec},
               {"why", std::string("WATCHDOG_USEC is not a positive number of microseconds")}});
    return;
  }
  watchdog_interval_ = std::chrono::microseconds(std::stoll(e.watchdog_usec) / 2);
}

SystemdNotifier::~SystemdNotifier() {
  if (fd_ >= 0) ::close(fd_);
}

void SystemdNotifier::ready(const std::string& status) {
  if (ready_) return;
  ready_ = true;
  last_status_ = one_line(status);
  send("READY=1\nSTATUS=" + last_status_);
}

void SystemdNotifier::stopping(const std::string& status) {
  last_status_ = one_line(status);
  send("STOPPING=1\nSTATUS=" + last_status_);
}

void SystemdNotifier::watchdog() {
  if (watchdog_interval_) send("WATCHDOG=1");
}

void SystemdNotifier::status(const std::string& status) {
  if (one_line(status) == last_status_) return;
  last_status_ = one_line(status);
  send("STATUS=" + last_status_);
}

void SystemdNotifier::send(const std::string& message) {
  if (fd_ < 0) return;
  // Non-blocking: systemd reads its socket at once; the loop never waits for it.
  const ssize_t n = ::sendto(fd_, message.data(), message.size(), MSG_NOSIGNAL,
                             reinterpret_cast<const sockaddr*>(&address_), address_length_);
  if (n == static_cast<ssize_t>(message.size())) {
    failing_ = false;
    return;
  }
  if (!failing_)
    log::warn("systemd_notify_failed",
              {{"message", message.substr(0, message.find('\n'))},
               {"error", std::string(n < 0 ? std::strerror(errno) : "short write")}});
  failing_ = true;
}

}  // namespace mdsync::service
