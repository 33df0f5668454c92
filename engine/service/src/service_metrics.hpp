// The service's metrics in Prometheus text format: counters and histograms added up from each
// pass's tally since the process started, and gauges (queues, lag, backlog, open conflicts,
// side reachability) taken from a status report at the scrape. Thread-safe: the loop records,
// the HTTP thread renders.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mdsync/store/pass_tally.hpp"

namespace mdsync::service {

// Cumulative buckets in seconds, from 5 ms to 5 minutes.
class Histogram {
 public:
  static constexpr std::array<double, 14> kBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                     1,     2.5,  5,     10,   30,  60,   300};
  void observe(double seconds);
  // `name_bucket{le=...}`, `name_sum`, `name_count`.
  void render(std::string& out, const std::string& name) const;

 private:
  std::array<std::uint64_t, kBounds.size()> buckets_{};  // not cumulative; summed on render
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

class ServiceMetrics {
 public:
  explicit ServiceMetrics(std::string version, int control_schema)
      : version_(std::move(version)), control_schema_(control_schema) {}

  // A pass that returned (tally added) or threw (the control store or the ruleset failed).
  void pass_done(const store::PassTally& tally, double seconds);
  void pass_failed(double seconds);
  void set_lease_held(bool held);
  bool lease_held() const;

  // The counters, and the gauges of `status` (store::status_report at kGauges; null when the
  // control store could not be read, which is itself reported as mdsync_control_up 0).
  std::string render(const nlohmann::json& status) const;

 private:
  mutable std::mutex mutex_;
  const std::string version_;
  const int control_schema_;
  std::map<store::PassTally::Key, std::int64_t> changes_;
  std::map<store::PassTally::Key, std::int64_t> writebacks_;
  std::map<std::string, std::int64_t> writeback_retries_;
  std::int64_t passes_ = 0;
  std::int64_t pass_failures_ = 0;
  std::map<std::string, std::int64_t> side_errors_;
  Histogram batch_seconds_;
  Histogram pass_seconds_;
  Histogram latency_seconds_;
  bool lease_held_ = false;
};

// A Prometheus label value: backslash, double quote and newline escaped.
std::string prometheus_label(const std::string& value);

}  // namespace mdsync::service
