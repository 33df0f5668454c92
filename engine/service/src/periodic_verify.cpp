#include "periodic_verify.hpp"

#include <chrono>
#include <string>

#include "mdsync/log/event_log.hpp"
#include "mdsync/store/db_connection.hpp"
#include "mdsync/store/ruleset_store.hpp"
#include "mdsync/store/verification.hpp"

namespace mdsync::service {

void PeriodicVerify::start() {
  if (running_) {
    log::warn("verify_skipped",
              {{"why", std::string("the last verify is still running; "
                                   "service.verify_interval_s may be too short")}});
    return;
  }
  if (thread_.joinable()) thread_.join();
  running_ = true;
  thread_ = std::thread([this] { walk(); });
}

void PeriodicVerify::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void PeriodicVerify::walk() {
  const auto started = std::chrono::steady_clock::now();
  try {
    store::PgConnection control = store::connect(config_.control_dsn, "control store");
    const core::Ruleset rs = store::load_ruleset(*control, config_);
    store::VerifyOptions options;
    options.repair = config_.service.verify_repair;
    options.stop_requested = [this] { return stop_.load(); };
    const store::VerifySummary s =
        store::verify_sides(*control, config_, rs, options, [](const store::Difference& d) {
          log::warn("verify_difference", {{"kind", std::string(store::to_string(d.kind))},
                                          {"entity", d.entity},
                                          {"side", d.side},
                                          {"row_key", d.row_key},
                                          {"golden_id", d.golden_id},
                                          {"field", d.field},
                                          {"repair", d.repair}});
        });
    log::info(
        "verify_done",
        {{"rows_checked", s.rows_checked},
         {"links_checked", s.links_checked},
         {"differences", s.differences},
         {"repaired", s.repaired},
         {"conflicts_opened", s.conflicts_opened},
         {"in_flight", s.in_flight},
         {"stopped", stop_.load()},
         {"ms", static_cast<std::int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::steady_clock::now() - started)
                                              .count())}});
  } catch (const std::exception& e) {
    log::error("verify_failed", {{"error", std::string(e.what())}});
  }
  running_ = false;
}

}  // namespace mdsync::service
