#include "mdsync/service/service.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "http_endpoint.hpp"
#include "mdsync/log/event_log.hpp"
#include "mdsync/store/control_schema.hpp"
#include "mdsync/store/engine_lease.hpp"
#include "mdsync/store/sync_engine.hpp"
#include "mdsync/store/wake_listeners.hpp"
#include "periodic_verify.hpp"
#include "systemd_notifier.hpp"

namespace mdsync::service {

namespace asio = boost::asio;

namespace {

using Clock = store::Clock;

std::int64_t ms_until(Clock::time_point t, Clock::time_point now) {
  return std::max<std::int64_t>(
      0, std::chrono::duration_cast<std::chrono::milliseconds>(t - now).count());
}

// One listener's socket in the loop, and the timer of its next connection attempt. Asio only
// waits on the socket; libpq owns it, so it is released, never closed, here.
struct Watch {
  explicit Watch(asio::io_context& io) : socket(io), retry(io) {}
  ~Watch() { unwatch(); }
  void unwatch() {
    if (socket.is_open())
      socket.release();  // cancels the wait; the handler sees its old generation
    ++generation;
  }
  asio::posix::stream_descriptor socket;
  asio::steady_timer retry;
  std::uint64_t generation = 0;  // a handler of an earlier connection does nothing
};

// Passes run on one timer. It is due at once after a pass that did work, when a listener
// hears a NOTIFY and when a listener (re)connects (notifications may have been missed while it
// was down); when a side's rate limit has tokens again for writes it held back, and when a
// side that failed is to be tried again (its backoff ends, its circuit's probe is due);
// otherwise after poll_interval_ms, the safety net for sides with notify off and for anything
// a listener could not hear.
class Service {
 public:
  Service(const config::Config& config, std::uint64_t seed)
      : config_(config),
        engine_(config, seed),
        listeners_(config),
        signals_(io_, SIGINT, SIGTERM),
        timer_(io_),
        verify_timer_(io_),
        systemd_timer_(io_),
        verify_(config),
        metrics_(MDSYNC_VERSION, store::control_migrations().back().version) {
    for (std::size_t i = 0; i < listeners_.size(); ++i)
      watches_.push_back(std::make_unique<Watch>(io_));
    deferred_.assign(listeners_.size(), false);
  }

  void start() {
    if (config_.service.http_port >= 0) {
      http_ = std::make_unique<HttpEndpoint>(config_, metrics_);
      http_->start();
    }
    // One engine per control store: a second service stops here, naming the one that runs.
    // A control store that is down is waited for like any outage; on every reconnect the
    // lease is taken again, and while another engine holds it this one only retries.
    try {
      engine_.connect_control();
    } catch (const store::LeaseHeld&) {
      throw;
    } catch (const std::exception& e) {
      log::error("control_unavailable", {{"error", std::string(e.what())}});
    }
    signals_.async_wait([this](const boost::system::error_code& ec, int signo) {
      if (ec) return;
      log::info("service_stopping", {{"signal", static_cast<std::int64_t>(signo)}});
      stop();
    });
    // Listening before the first pass: whatever that pass does not see is notified.
    for (std::size_t i = 0; i < listeners_.size(); ++i) listen(i);
    wake("start", "");
    schedule_verify();
    notify_systemd();
    io_.run();
    verify_.stop();
    // Stopped: nobody waits for the sides' NOTIFY any more.
    if (waiting_) engine_.set_waiting(false);
  }

 private:
  void stop() {
    stopping_ = true;
    if (http_) http_->stopping();
    systemd_.stopping("stopping on a signal");
    timer_.cancel();
    verify_timer_.cancel();
    systemd_timer_.cancel();
    for (auto& w : watches_) {
      w->retry.cancel();
      w->unwatch();
    }
    io_.stop();
  }

  // ---- listeners

  void listen(std::size_t i) {
    if (stopping_) return;
    // A side whose circuit is open is left alone, its listener too: it connects again after
    // the pass whose probe closes the circuit (resume_listeners).
    if (const std::string& side = listeners_.side(i); !side.empty() && !engine_.side_closed(side)) {
      deferred_[i] = true;
      return;
    }
    Watch& w = *watches_[i];
    w.unwatch();  // before listen() closes any earlier connection
    const auto now = Clock::now();
    if (!listeners_.listen(i, now)) {
      w.retry.expires_at(listeners_.next_attempt(i));
      w.retry.async_wait([this, i](const boost::system::error_code& ec) {
        if (!ec && !stopping_) listen(i);
      });
      return;
    }
    w.socket.assign(listeners_.socket(i));
    watch(i);
    // What stewards committed while nobody listened was not heard: see the whole queue.
    if (listeners_.control_store(i)) engine_.rewalk_write_queues();
    wake("listener_connected", listeners_.what(i));
  }

  void watch(std::size_t i) {
    Watch& w = *watches_[i];
    w.socket.async_wait(asio::posix::stream_descriptor::wait_read,
                        [this, i, generation = w.generation](const boost::system::error_code& ec) {
                          if (stopping_ || generation != watches_[i]->generation) return;
                          if (ec == asio::error::operation_aborted) return;
                          if (ec)
                            lose(i, "waiting on the socket failed: " + ec.message());
                          else
                            readable(i, true);
                        });
  }

  // Takes what arrived on listener i. `from_wait`: its wait completed, so it is watched again.
  void readable(std::size_t i, bool from_wait) {
    const store::WakeListeners::Arrived a = listeners_.consume(i);
    if (a.lost) {
      lose(i, "");
      return;
    }
    if (a.ruleset_applied) engine_.ruleset_applied();
    if (a.notifications > 0 && listeners_.control_store(i)) engine_.rewalk_write_queues();
    if (!from_wait) return;  // taken just before a pass, which covers it
    if (a.notifications > 0) wake("notify", listeners_.what(i), a.notifications);
    if (a.more) {
      // A flood was not read to its end; the socket will not be reported again for it.
      asio::post(io_, [this, i, generation = watches_[i]->generation] {
        if (!stopping_ && generation == watches_[i]->generation) readable(i, true);
      });
      return;
    }
    watch(i);
  }

  void resume_listeners() {
    for (std::size_t i = 0; i < listeners_.size(); ++i)
      if (deferred_[i] && engine_.side_closed(listeners_.side(i))) {
        deferred_[i] = false;
        listen(i);
      }
  }

  void lose(std::size_t i, const std::string& why) {
    Watch& w = *watches_[i];
    w.unwatch();  // before the connection closes, so Asio never touches libpq's socket again
    listeners_.drop(i, Clock::now(), why);
    w.retry.expires_at(listeners_.next_attempt(i));
    w.retry.async_wait([this, i](const boost::system::error_code& ec) {
      if (!ec && !stopping_) listen(i);
    });
  }

  // ---- periodic verify

  // The first walk one interval after start, then every interval (a walk still running then is
  // not started twice).
  void schedule_verify() {
    if (config_.service.verify_interval_s <= 0 || stopping_) return;
    verify_timer_.expires_after(std::chrono::seconds(config_.service.verify_interval_s));
    verify_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping_) return;
      verify_.start();
      schedule_verify();
    });
  }

  // ---- systemd (Type=notify)

  // WATCHDOG=1 and the status line, from this loop: a pass that hangs stops the pings, and
  // systemd restarts the service after WatchdogSec (README "Running in production").
  void notify_systemd() {
    if (!systemd_.enabled() || stopping_) return;
    systemd_.watchdog();
    std::string status = "reconciling captured changes";
    if (control_failures_ > 0)
      status = "retrying the control store (attempt " + std::to_string(control_failures_) +
               "): it is unreachable or another engine holds the lease";
    else if (!systemd_.is_ready())
      status = "starting";
    else if (waiting_)
      status = "idle: waiting for a NOTIFY or the next poll";
    systemd_.status(status);
    systemd_timer_.expires_after(systemd_.watchdog_interval().value_or(std::chrono::seconds(10)));
    systemd_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) notify_systemd();
    });
  }

  // ---- passes

  // A pass as soon as allowed (not before a failed control store's backoff). Many wake-ups
  // before it runs are one pass.
  void wake(const char* by, const std::string& source, int notifications = 0) {
    if (stopping_) return;
    const auto now = Clock::now();
    const auto at = std::max(now, not_before_);
    if (next_pass_ <= at) return;  // already due as soon
    if (log::enabled(log::Level::kDebug))
      log::debug("woken", {{"by", std::string(by)},
                           {"source", source},
                           {"notifications", static_cast<std::int64_t>(notifications)},
                           {"pass_in_ms", ms_until(at, now)}});
    schedule(at);
  }

  void schedule(Clock::time_point at) {
    next_pass_ = at;
    ++pass_generation_;
    timer_.expires_at(at);
    timer_.async_wait([this, generation = pass_generation_](const boost::system::error_code& ec) {
      if (ec || stopping_ || generation != pass_generation_) return;
      // Posted: a stop signal that arrived during the last pass is delivered in the same round
      // of the loop as this timer, and is handled first.
      asio::post(io_, [this] { tick(); });
    });
  }

  void tick() {
    if (stopping_) return;
    // What the listeners heard until now is covered by this pass: it reads after this.
    for (std::size_t i = 0; i < listeners_.size(); ++i)
      if (listeners_.socket(i) >= 0) readable(i, false);
    auto now = Clock::now();
    const auto started = now;
    Clock::time_point next = now + std::chrono::milliseconds(config_.service.poll_interval_ms);
    auto seconds = [&] { return std::chrono::duration<double>(Clock::now() - started).count(); };
    try {
      const store::PassResult r = engine_.run_pass(now);
      metrics_.pass_done(r.tally, seconds());
      metrics_.set_lease_held(engine_.holds_lease());
      control_failures_ = 0;
      systemd_.ready("running: the engine lease is held");  // the first pass succeeded
      now = Clock::now();
      not_before_ = now;
      const std::optional<Clock::time_point> paced = engine_.paced_until();
      if (r.did_work()) {
        next = now;
        // Busy: the sides' commits need not notify (each NOTIFY serializes a commit).
        if (waiting_) {
          engine_.set_waiting(false);
          waiting_ = false;
        }
      } else if (paced) {
        // Writes wait for a side's rate limit: not idle (the sides need not notify); the next
        // pass when the side has tokens again, never at once (paced_until is ahead).
        next = std::max(now, *paced);
      } else if (!waiting_) {
        // Idle: the sides notify from now on; one more pass takes what was committed before
        // they did.
        engine_.set_waiting(true);
        waiting_ = true;
        next = Clock::now();
      } else if (log::enabled(log::Level::kDebug)) {
        log::debug("idle", {{"next_poll_in_ms",
                             static_cast<std::int64_t>(config_.service.poll_interval_ms)}});
      }
      // A side that failed is tried when its backoff ends or its circuit's probe is due.
      if (const auto retry = engine_.next_retry(started); retry && *retry < next)
        next = std::max(now, *retry);
    } catch (const std::exception& e) {
      // The control store (or the ruleset) is unavailable: wait and resume at our place;
      // everything not committed is redone from the capture tables and the outbox. A NOTIFY
      // does not cut this wait short.
      metrics_.pass_failed(seconds());
      metrics_.set_lease_held(engine_.holds_lease());
      ++control_failures_;
      const auto delay = std::chrono::milliseconds(std::min<std::int64_t>(
          config_.service.writeback_backoff_max_ms,
          static_cast<std::int64_t>(config_.service.writeback_backoff_initial_ms) *
              (std::int64_t{1} << std::min(control_failures_ - 1, 16))));
      now = Clock::now();
      not_before_ = now + delay;
      next = not_before_;
      log::error("pass_failed", {{"error", std::string(e.what())},
                                 {"attempt", static_cast<std::int64_t>(control_failures_)},
                                 {"retry_in_ms", static_cast<std::int64_t>(delay.count())}});
    }
    if (stopping_) return;
    // What a listener hears during the pass is read after it returns, and wakes the next.
    schedule(next);
    resume_listeners();
  }

  const config::Config& config_;
  store::SyncEngine engine_;
  store::WakeListeners listeners_;  // after the watches are gone, closes the connections
  asio::io_context io_;
  asio::signal_set signals_;
  asio::steady_timer timer_;
  asio::steady_timer verify_timer_;
  SystemdNotifier systemd_;  // $NOTIFY_SOCKET unset: does nothing
  asio::steady_timer systemd_timer_;
  PeriodicVerify verify_;  // its thread is joined before the loop's objects go
  ServiceMetrics metrics_;
  std::unique_ptr<HttpEndpoint> http_;           // declared after metrics_: its thread reads them
  std::vector<std::unique_ptr<Watch>> watches_;  // released before listeners_ closes
  std::vector<bool> deferred_;  // listeners of sides whose circuit is open: not connected
  bool stopping_ = false;
  bool waiting_ = false;  // the sides were told the engine waits for their NOTIFY
  int control_failures_ = 0;
  Clock::time_point next_pass_ = Clock::time_point::max();
  Clock::time_point not_before_{};
  std::uint64_t pass_generation_ = 0;
};

}  // namespace

int run(const config::Config& config, const RunOptions& options) {
  std::uint64_t seed = options.seed;
  if (seed == 0) seed = std::random_device{}();
  log::info("service_starting",
            {{"once", options.once},
             {"seed", static_cast<std::int64_t>(seed)},
             {"sides", static_cast<std::int64_t>(config.sides.size())},
             {"poll_interval_ms", static_cast<std::int64_t>(config.service.poll_interval_ms)}});
  if (options.once) {
    store::SyncEngine engine(config, seed);
    engine.connect_control();
    const store::PassResult r = engine.drain(
        std::chrono::milliseconds(std::max(5000, 4 * config.service.writeback_backoff_initial_ms)));
    const std::int64_t pending = engine.pending_writebacks();
    // Writes held for paused sides are what the operator asked for, not an unfinished drain.
    const std::int64_t held = engine.held_writebacks();
    log::info("drained", {{"changes", static_cast<std::int64_t>(r.captured)},
                          {"writes_applied", static_cast<std::int64_t>(r.writes_applied)},
                          {"writes_failed", static_cast<std::int64_t>(r.writes_failed)},
                          {"conflicts_opened", static_cast<std::int64_t>(r.conflicts_opened)},
                          {"pending_writebacks", pending},
                          {"held_for_paused_sides", held}});
    if (held > 0)
      log::warn("writebacks_held", {{"writebacks", held},
                                    {"why", std::string("their sides are paused: `mdsync resume`"
                                                        " sends them")}});
    // Write-backs a side refused (not deletes a guard vetoed: a conflict holds those) and
    // changes kept as errors are open error items (`mdsync errors list`): the drain did not
    // do all it was asked to.
    const int refused = r.writes_failed - r.writes_vetoed;
    if (r.side_errors > 0 || pending > 0 || refused > 0 || r.change_errors > 0) {
      log::error("drain_incomplete",
                 {{"side_errors", static_cast<std::int64_t>(r.side_errors)},
                  {"pending_writebacks", pending},
                  {"writes_failed", static_cast<std::int64_t>(refused)},
                  {"change_errors", static_cast<std::int64_t>(r.change_errors)}});
      std::string summary;
      auto part = [&](std::int64_t n, const std::string& one, const std::string& many) {
        if (n > 0)
          summary +=
              (summary.empty() ? "" : ", ") + std::to_string(n) + " " + (n == 1 ? one : many);
      };
      part(r.side_errors, "side could not be reached", "side errors");
      part(pending, "write-back still pending", "write-backs still pending");
      part(refused, "write-back failed", "write-backs failed");
      part(r.change_errors, "change kept as an error", "changes kept as errors");
      std::fprintf(stderr, "mdsync: run --once: %s; see `mdsync status` and `mdsync errors list`\n",
                   summary.c_str());
      return 1;
    }
    return 0;
  }
  Service service(config, seed);
  service.start();
  log::info("service_stopped");
  return 0;
}

}  // namespace mdsync::service
