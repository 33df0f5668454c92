#include "connection_gate.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace mdsync::e2e {

namespace {

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof(a.sun_path)) throw std::runtime_error("socket path too long: " + path);
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

// Copies one direction until either end goes; then both ends are shut, so the other direction
// ends too.
void pump(int from, int to) {
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(from, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    ssize_t off = 0;
    while (off < n) {
      const ssize_t w = ::send(to, buf + off, static_cast<std::size_t>(n - off), MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) break;
      off += w;
    }
    if (off < n) break;
  }
  ::shutdown(from, SHUT_RDWR);
  ::shutdown(to, SHUT_RDWR);
}

}  // namespace

ConnectionGate::ConnectionGate(const std::string& target_dir, int target_port)
    : target_(target_dir + "/.s.PGSQL." + std::to_string(target_port)) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "mdsync-gate-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  // Any number: it only names the socket file, in a folder of the gate's own.
  port_ = 5432;
  const sockaddr_un a = unix_address(dir_ + "/.s.PGSQL." + std::to_string(port_));
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listen_fd_, 64) != 0 || ::pipe2(wake_, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("connection gate: ") + std::strerror(errno));
  server_ = std::thread([this] { serve(); });
}

ConnectionGate::~ConnectionGate() {
  const char stop = 1;
  if (::write(wake_[1], &stop, 1) != 1) {
    // The loop then ends with the process; nothing else to do in a destructor.
  }
  if (server_.joinable()) server_.join();
  close();
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void ConnectionGate::open() {
  open_ = true;
}

void ConnectionGate::close() {
  std::vector<std::thread> relays;
  std::vector<int> fds;
  {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = false;
    for (int fd : relayed_) ::shutdown(fd, SHUT_RDWR);
    relays.swap(relays_);
    fds.swap(relayed_);
  }
  for (std::thread& t : relays) t.join();
  for (int fd : fds) ::close(fd);
}

void ConnectionGate::serve() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents != 0) return;
    if ((p[0].revents & POLLIN) == 0) continue;
    const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    ++accepted_;
    relay(client);
  }
}

void ConnectionGate::relay(int client) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!open_) {
    ::close(client);  // the client reads end-of-file: "server closed the connection"
    return;
  }
  const int server = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_un a = unix_address(target_);
  if (server < 0 || ::connect(server, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    if (server >= 0) ::close(server);
    ::close(client);
    return;
  }
  relayed_.push_back(client);
  relayed_.push_back(server);
  relays_.emplace_back(pump, client, server);
  relays_.emplace_back(pump, server, client);
}

}  // namespace mdsync::e2e
