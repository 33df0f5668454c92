// A gate in front of the test cluster that a test opens and closes: a Unix socket in a folder
// of its own, named as PostgreSQL names its socket, so a DSN with `host=<dir()> port=<port()>`
// reaches the cluster through it. Open, it relays each connection to the cluster; closed, it
// accepts and drops them at once (the client sees the server close the connection) and cuts
// the connections it relays. It counts every connection it accepts, so a test can tell exactly
// how many times a client tried to reach the side, without timing anything.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mdsync::e2e {

class ConnectionGate {
 public:
  // Relays to the cluster's socket `<target_dir>/.s.PGSQL.<target_port>`; starts closed.
  ConnectionGate(const std::string& target_dir, int target_port);
  ~ConnectionGate();
  ConnectionGate(const ConnectionGate&) = delete;
  ConnectionGate& operator=(const ConnectionGate&) = delete;

  const std::string& dir() const { return dir_; }
  int port() const { return port_; }
  void open();
  void close();  // also cuts the connections it relays
  int accepted() const { return accepted_; }

 private:
  void serve();
  void relay(int client);

  std::string dir_, target_;
  int port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // the accept loop's stop signal
  std::atomic<bool> open_{false};
  std::atomic<int> accepted_{0};
  std::mutex mu_;
  std::vector<int> relayed_;  // both ends of every relayed connection
  std::vector<std::thread> relays_;
  std::thread server_;
};

}  // namespace mdsync::e2e
