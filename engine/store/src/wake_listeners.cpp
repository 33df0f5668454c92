#include "mdsync/store/wake_listeners.hpp"

#include <poll.h>

#include <algorithm>
#include <pqxx/pqxx>

#include "mdsync/log/event_log.hpp"
#include "mdsync/store/db_connection.hpp"

namespace mdsync::store {

namespace {

std::string first_line(const std::string& s) {
  std::string line = s.substr(0, s.find('\n'));
  while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
  return line;
}

// Counts what arrives on the channel; only the kind of a control-store wake-up matters.
class Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& conn, const std::string& channel)
      : pqxx::notification_receiver(conn, channel) {}
  void operator()(const std::string& payload, int) override {
    ++count;
    if (payload.rfind("ruleset", 0) == 0) ruleset_applied = true;
  }
  int count = 0;
  bool ruleset_applied = false;
};

// Keeps the server's last message (a backend terminated by an administrator says so before it
// closes the connection), so a lost listener is reported with the cause, and nothing of the
// listener's goes to stderr, where the service writes its JSON lines.
class LastMessage final : public pqxx::errorhandler {
 public:
  explicit LastMessage(pqxx::connection_base& conn) : pqxx::errorhandler(conn) {}
  bool operator()(const char msg[]) noexcept override {
    try {
      last = first_line(msg);
    } catch (...) {
    }
    return false;
  }
  std::string last;
};

// libpq reads at most one buffer per call, and the service's reactor reports a socket once per
// arrival (edge-triggered): consume() reads until the socket is empty, up to this many reads,
// then asks to be called again.
constexpr int kMaxReads = 64;

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

}  // namespace

struct WakeListeners::Listener {
  std::string what, side, dsn, channel;  // side: empty for the control store's
  PgConnection conn;
  std::unique_ptr<LastMessage> messages;
  std::unique_ptr<Receiver> receiver;
  int failures = 0;  // drives the backoff: a loss counts as the first
  int attempts = 0;  // connection attempts since it last listened
  Clock::time_point next_attempt{};
  bool listened_before = false;
  std::string lost_because;

  void close() noexcept {
    // Disconnected first: the receiver's destructor then sends no UNLISTEN, which on a broken
    // connection would make libpqxx reconnect, blocking, just to say it.
    if (conn) conn->disconnect();
    receiver.reset();
    messages.reset();
    conn.reset();
  }
  ~Listener() { close(); }
};

WakeListeners::WakeListeners(const config::Config& config) : config_(config) {
  auto add = [&](std::string what, const std::string& side, const std::string& dsn,
                 const char* channel) {
    auto l = std::make_unique<Listener>();
    l->what = std::move(what);
    l->side = side;
    l->dsn = dsn;
    l->channel = channel;
    listeners_.push_back(std::move(l));
  };
  for (const config::SideConfig& side : config.sides)
    if (side.notify) add("side " + side.name, side.name, side.dsn, kCaptureChannel);
  add("control store", "", config.control_dsn, kStewardChannel);
}

WakeListeners::~WakeListeners() = default;

std::size_t WakeListeners::size() const {
  return listeners_.size();
}

const std::string& WakeListeners::what(std::size_t i) const {
  return listeners_.at(i)->what;
}

const std::string& WakeListeners::side(std::size_t i) const {
  return listeners_.at(i)->side;
}

bool WakeListeners::control_store(std::size_t i) const {
  return listeners_.at(i)->channel == kStewardChannel;
}

int WakeListeners::socket(std::size_t i) const {
  const Listener& l = *listeners_.at(i);
  return l.conn ? l.conn->sock() : -1;
}

WakeListeners::Clock::time_point WakeListeners::next_attempt(std::size_t i) const {
  return listeners_.at(i)->next_attempt;
}

void WakeListeners::back_off(Listener& l, Clock::time_point now) {
  const std::int64_t initial = config_.service.writeback_backoff_initial_ms;
  const std::int64_t delay = std::min<std::int64_t>(config_.service.writeback_backoff_max_ms,
                                                    initial << std::min(l.failures - 1, 20));
  l.next_attempt = now + std::chrono::milliseconds(delay);
}

bool WakeListeners::listen(std::size_t i, Clock::time_point now) {
  Listener& l = *listeners_.at(i);
  l.close();
  ++l.attempts;
  try {
    l.conn = connect(l.dsn, l.what);
    {
      // Told apart from the engine's working sessions in pg_stat_activity.
      pqxx::nontransaction tx(*l.conn);
      tx.exec(
          "SELECT set_config('application_name', current_setting('application_name') ||"
          " ' listener', false)");
    }
    l.messages = std::make_unique<LastMessage>(*l.conn);
    l.receiver = std::make_unique<Receiver>(*l.conn, l.channel);  // sends LISTEN
    if (!l.conn->is_open())
      throw pqxx::broken_connection("the connection closed as it started to LISTEN");
  } catch (const std::exception& e) {
    l.close();
    ++l.failures;
    back_off(l, now);
    // connect() names the database with its DSN redacted; nothing else here carries a DSN.
    log::warn("listener_unavailable",
              {{"listener", l.what},
               {"channel", l.channel},
               {"error", first_line(e.what())},
               {"attempt", static_cast<std::int64_t>(l.attempts)},
               {"retry_in_ms",
                static_cast<std::int64_t>(
                    std::chrono::duration_cast<std::chrono::milliseconds>(l.next_attempt - now)
                        .count())}});
    return false;
  }
  log::info("listener_connected", {{"listener", l.what},
                                   {"channel", l.channel},
                                   {"dsn", config::redact_dsn(l.dsn)},
                                   {"reconnected", l.listened_before},
                                   {"attempt", static_cast<std::int64_t>(l.attempts)}});
  l.listened_before = true;
  l.failures = 0;
  l.attempts = 0;
  return true;
}

WakeListeners::Arrived WakeListeners::consume(std::size_t i) {
  Listener& l = *listeners_.at(i);
  Arrived a;
  if (!l.conn) return a;
  l.messages->last.clear();
  try {
    for (int read = 0;; ++read) {
      // get_notifs() returns 0 on a connection libpq already knows is bad, and throws when
      // reading finds it closed.
      if (!l.conn->is_open()) throw pqxx::broken_connection("the connection was closed");
      l.conn->get_notifs();
      if (!l.conn->is_open()) throw pqxx::broken_connection("the connection was closed");
      if (!readable(l.conn->sock())) break;
      if (read + 1 == kMaxReads) {
        a.more = true;
        break;
      }
    }
  } catch (const std::exception&) {
    // libpqxx's own message says nothing ("Connection to database failed"); the server's last
    // word, when it had time to say one, does.
    a.lost = true;
    l.lost_because = l.messages->last.empty()
                         ? "the server closed the connection (the database restarted, an "
                           "administrator ended the session, or the network failed)"
                         : l.messages->last;
  }
  a.notifications = l.receiver->count;
  a.ruleset_applied = l.receiver->ruleset_applied;
  l.receiver->count = 0;
  l.receiver->ruleset_applied = false;
  return a;
}

void WakeListeners::drop(std::size_t i, Clock::time_point now, const std::string& why) {
  Listener& l = *listeners_.at(i);
  const std::string reason = !why.empty()              ? why
                             : !l.lost_because.empty() ? l.lost_because
                                                       : "the connection was lost";
  l.close();
  l.lost_because.clear();
  l.failures = 1;
  back_off(l, now);
  log::warn(
      "listener_lost",
      {{"listener", l.what},
       {"channel", l.channel},
       {"error", reason},
       {"retry_in_ms",
        static_cast<std::int64_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(l.next_attempt - now).count())}});
}

}  // namespace mdsync::store
