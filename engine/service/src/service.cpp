#include "mdsync/service/service.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <random>
#include <string>

#include "mdsync/log/event_log.hpp"
#include "mdsync/store/engine_lease.hpp"
#include "mdsync/store/sync_engine.hpp"

namespace mdsync::service {

namespace asio = boost::asio;

namespace {

class Service {
 public:
  Service(const config::Config& config, std::uint64_t seed)
      : config_(config), engine_(config, seed), signals_(io_, SIGINT, SIGTERM), timer_(io_) {}

  void start() {
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
      stopping_ = true;
      timer_.cancel();
    });
    schedule(std::chrono::milliseconds(0));
    io_.run();
  }

 private:
  void schedule(std::chrono::milliseconds delay) {
    if (stopping_) return;
    timer_.expires_after(delay);
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping_) {
        io_.stop();
        return;
      }
      tick();
    });
  }

  void tick() {
    auto delay = std::chrono::milliseconds(config_.service.poll_interval_ms);
    try {
      const store::PassResult r = engine_.run_pass(store::Clock::now());
      control_failures_ = 0;
      if (r.did_work()) delay = std::chrono::milliseconds(0);
    } catch (const std::exception& e) {
      // The control store (or the ruleset) is unavailable: wait and resume at our place;
      // everything not committed is redone from the capture tables and the outbox.
      ++control_failures_;
      delay = std::chrono::milliseconds(std::min<std::int64_t>(
          config_.service.writeback_backoff_max_ms,
          static_cast<std::int64_t>(config_.service.writeback_backoff_initial_ms) *
              (std::int64_t{1} << std::min(control_failures_ - 1, 16))));
      log::error("pass_failed", {{"error", std::string(e.what())},
                                 {"attempt", static_cast<std::int64_t>(control_failures_)},
                                 {"retry_in_ms", static_cast<std::int64_t>(delay.count())}});
    }
    if (stopping_) {
      io_.stop();
      return;
    }
    schedule(delay);
  }

  const config::Config& config_;
  store::SyncEngine engine_;
  asio::io_context io_;
  asio::signal_set signals_;
  asio::steady_timer timer_;
  bool stopping_ = false;
  int control_failures_ = 0;
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
    log::info("drained", {{"changes", static_cast<std::int64_t>(r.captured)},
                          {"writes_applied", static_cast<std::int64_t>(r.writes_applied)},
                          {"writes_failed", static_cast<std::int64_t>(r.writes_failed)},
                          {"conflicts_opened", static_cast<std::int64_t>(r.conflicts_opened)},
                          {"pending_writebacks", pending}});
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
