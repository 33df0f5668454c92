// `mdsync run` under systemd's Type=notify (issue 13, packaging): the test binds the notify
// socket systemd would, a path or an abstract @name, and reads what the service says: READY=1
// once it holds the engine lease, WATCHDOG=1 at half of $WATCHDOG_USEC (only when
// $WATCHDOG_PID is unset or the service's own), STATUS= lines, and STOPPING=1 on SIGTERM
// before it exits 0.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <iostream>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "e2e_harness.hpp"
#include "fault_harness.hpp"

namespace mdsync::e2e {
namespace {

using namespace fault;

// The receiving end of $NOTIFY_SOCKET: one datagram per sd_notify message. A thread reads
// them as they come, as systemd does: the socket queues only a few (net.unix.max_dgram_qlen)
// and the service drops what does not fit rather than wait.
class NotifySocket {
 public:
  // `address`: an absolute path (removed again by the destructor) or "@name" (abstract).
  explicit NotifySocket(std::string address) : address_(std::move(address)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (address_.size() >= sizeof(a.sun_path)) throw std::runtime_error("address too long");
    std::memcpy(a.sun_path, address_.data(), address_.size());
    const bool abstract = address_[0] == '@';
    if (abstract) a.sun_path[0] = '\0';
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size() +
                                               (abstract ? 0 : 1));
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&a), length) != 0)
      throw std::runtime_error("bind " + address_ + ": " + std::strerror(errno));
    reader_ = std::thread([this] { read(); });
  }
  ~NotifySocket() {
    done_ = true;
    reader_.join();
    ::close(fd_);
    if (address_[0] == '/') ::unlink(address_.c_str());
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  // Waits up to `seconds` until `n` messages hold the line `line` (KEY=VALUE).
  bool wait_for(const std::string& line, int seconds, std::size_t n = 1) {
    std::unique_lock<std::mutex> lock(mutex_);
    return arrived_.wait_for(lock, std::chrono::seconds(seconds),
                             [&] { return count_locked(line) >= n; });
  }
  // How many messages received so far hold the line `line`.
  std::size_t count(const std::string& line) {
    std::lock_guard<std::mutex> lock(mutex_);
    return count_locked(line);
  }
  std::string received() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string out;
    for (const std::string& m : messages_) out += "  [" + m + "]\n";
    return out;
  }

 private:
  void read() {
    while (!done_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) != 1) continue;  // a tenth of a second: done_ is seen soon
      char buffer[4096];
      const ssize_t got = ::recv(fd_, buffer, sizeof buffer, 0);
      if (got <= 0) continue;
      std::lock_guard<std::mutex> lock(mutex_);
      messages_.emplace_back(buffer, static_cast<std::size_t>(got));
      arrived_.notify_all();
    }
  }
  std::size_t count_locked(const std::string& line) const {
    return static_cast<std::size_t>(
        std::count_if(messages_.begin(), messages_.end(), [&](const std::string& m) {
          return ("\n" + m + "\n").find("\n" + line + "\n") != std::string::npos;
        }));
  }

  std::string address_;
  int fd_ = -1;
  std::atomic<bool> done_{false};
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::vector<std::string> messages_;
  std::thread reader_;
};

// The application_name of the session holding an advisory lock (the engine lease) on the
// control store, or "<none>".
std::string lease_holder(const Scenario& s) {
  return s.control(
      "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
      " WHERE l.locktype = 'advisory' AND l.granted"
      " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())");
}

TEST(SystemdTest, ReadyWatchdogStatusAndStoppingOnAPathSocket) {
  Scenario s("systemd_notify");
  s.write_config();
  run_ok(s, {"init"});
  NotifySocket notify(s.dir() + "/notify.sock");
  // A 200 ms watchdog: pinged every 100 ms while the loop runs.
  Service svc(s, "service",
              {{"NOTIFY_SOCKET", s.dir() + "/notify.sock"}, {"WATCHDOG_USEC", "200000"}});

  ASSERT_TRUE(notify.wait_for("READY=1", 60)) << notify.received() << svc.log();
  // READY comes after the first pass, which took the lease.
  EXPECT_EQ(lease_holder(s), "mdsync run") << svc.log();
  EXPECT_EQ(notify.count("STATUS=running: the engine lease is held"), 1u) << notify.received();
  // Pings go on after READY, and the service syncs meanwhile.
  const std::size_t pings_before = notify.count("WATCHDOG=1");
  s.erp_exec("INSERT INTO erp.customers (cust_name) VALUES ('Watched Ltd')");
  EXPECT_EQ(wait_until([&] { return s.crm("SELECT \"accountName\" FROM crm.accounts"); },
                       "Watched Ltd", 60),
            "Watched Ltd")
      << svc.log();
  EXPECT_TRUE(notify.wait_for("WATCHDOG=1", 60, pings_before + 1)) << notify.received();

  EXPECT_EQ(svc.stop(), 0) << svc.log();
  EXPECT_TRUE(notify.wait_for("STOPPING=1", 10)) << notify.received() << svc.log();
  EXPECT_EQ(notify.count("READY=1"), 1u) << notify.received();
}

TEST(SystemdTest, AnAbstractSocketAndAWatchdogMeantForAnotherProcess) {
  Scenario s("systemd_abstract");
  s.write_config();
  run_ok(s, {"init"});
  std::random_device rd;
  const std::string name =
      "@mdsync-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd());
  std::cout << "notify socket " << name << "\n";
  NotifySocket notify(name);
  // systemd sets WATCHDOG_PID for the process it watches: here not the service (pid 1), which
  // then sends no WATCHDOG=1, although a 20 ms watchdog would have it ping every 10 ms from
  // its start on.
  Service svc(s, "service",
              {{"NOTIFY_SOCKET", name}, {"WATCHDOG_USEC", "20000"}, {"WATCHDOG_PID", "1"}});

  ASSERT_TRUE(notify.wait_for("READY=1", 60)) << notify.received() << svc.log();
  s.erp_exec("INSERT INTO erp.customers (cust_name) VALUES ('Unwatched Ltd')");
  EXPECT_EQ(wait_until([&] { return s.crm("SELECT \"accountName\" FROM crm.accounts"); },
                       "Unwatched Ltd", 60),
            "Unwatched Ltd")
      << svc.log();
  EXPECT_EQ(svc.stop(), 0) << svc.log();
  EXPECT_TRUE(notify.wait_for("STOPPING=1", 10)) << notify.received() << svc.log();
  EXPECT_EQ(notify.count("WATCHDOG=1"), 0u) << notify.received();
  EXPECT_EQ(notify.count("STATUS=starting"), 1u) << notify.received();
}

}  // namespace
}  // namespace mdsync::e2e
