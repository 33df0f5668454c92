// systemd's notification protocol (sd_notify(3)) without libsystemd: under a unit of
// Type=notify, `mdsync run` says READY=1 once it holds the engine lease and its loop runs,
// STOPPING=1 when a signal stops it, WATCHDOG=1 while its loop is alive (WatchdogSec=), and
// STATUS= lines for `systemctl status`. With $NOTIFY_SOCKET unset it does nothing.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <chrono>
#include <optional>
#include <string>

namespace mdsync::service {

// What systemd gives the service's main process.
struct NotifyEnvironment {
  std::string socket;         // $NOTIFY_SOCKET: an absolute path, or "@name" (abstract)
  std::string watchdog_usec;  // $WATCHDOG_USEC: the watchdog's timeout
  std::string watchdog_pid;   // $WATCHDOG_PID: the process the watchdog is meant for, if set
  static NotifyEnvironment from_process();
};

class SystemdNotifier {
 public:
  // `self`: this process's pid, compared with $WATCHDOG_PID.
  SystemdNotifier(const NotifyEnvironment& env, pid_t self);
  SystemdNotifier();  // from the process's environment
  ~SystemdNotifier();
  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  bool enabled() const { return fd_ >= 0; }
  bool is_ready() const { return ready_; }
  // How often WATCHDOG=1 is due: half the watchdog's timeout, as sd_watchdog_enabled(3)
  // advises; nullopt when systemd asks no watchdog of this process.
  std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_interval_; }

  // READY=1 with a status line, the first time only (later calls do nothing).
  void ready(const std::string& status);
  // STOPPING=1 with a status line.
  void stopping(const std::string& status);
  // WATCHDOG=1 when a watchdog is asked of this process.
  void watchdog();
  // STATUS=, sent only when it differs from the last one sent.
  void status(const std::string& status);

 private:
  void send(const std::string& message);

  int fd_ = -1;
  sockaddr_un address_{};
  socklen_t address_length_ = 0;
  std::optional<std::chrono::microseconds> watchdog_interval_;
  bool ready_ = false;
  bool failing_ = false;  // the last send failed (logged once until one succeeds)
  std::string last_status_;
};

}  // namespace mdsync::service
