#include "service_metrics.hpp"

#include <cmath>
#include <cstdio>

namespace mdsync::service {

namespace {

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

// name{k1="v1",k2="v2"} value
void sample(std::string& out, const std::string& name,
            const std::vector<std::pair<const char*, std::string>>& labels,
            const std::string& value) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) out += ',';
      out += labels[i].first;
      out += "=\"";
      out += prometheus_label(labels[i].second);
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  out += value;
  out += '\n';
}

std::int64_t int_or(const nlohmann::json& j, const char* key, std::int64_t fallback) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<std::int64_t>() : fallback;
}

}  // namespace

std::string prometheus_label(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

void Histogram::observe(double seconds) {
  if (!(seconds >= 0)) seconds = 0;  // NaN too
  ++count_;
  sum_ += seconds;
  for (std::size_t i = 0; i < kBounds.size(); ++i)
    if (seconds <= kBounds[i]) {
      ++buckets_[i];
      break;
    }
}

void Histogram::render(std::string& out, const std::string& name) const {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += buckets_[i];
    sample(out, name + "_bucket", {{"le", number(kBounds[i])}}, std::to_string(cumulative));
  }
  sample(out, name + "_bucket", {{"le", "+Inf"}}, std::to_string(count_));
  sample(out, name + "_sum", {}, number(sum_));
  sample(out, name + "_count", {}, std::to_string(count_));
}

void ServiceMetrics::pass_done(const store::PassTally& tally, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++passes_;
  pass_seconds_.observe(seconds);
  for (const auto& [k, n] : tally.changes) changes_[k] += n;
  for (const auto& [k, n] : tally.writebacks) writebacks_[k] += n;
  for (const auto& [k, n] : tally.writeback_retries) writeback_retries_[k] += n;
  for (const auto& [k, n] : tally.side_errors) side_errors_[k] += n;
  for (double s : tally.batch_seconds) batch_seconds_.observe(s);
  for (double s : tally.capture_to_writeback_seconds) latency_seconds_.observe(s);
}

void ServiceMetrics::pass_failed(double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++passes_;
  ++pass_failures_;
  pass_seconds_.observe(seconds);
}

void ServiceMetrics::set_lease_held(bool held) {
  std::lock_guard<std::mutex> lock(mutex_);
  lease_held_ = held;
}

bool ServiceMetrics::lease_held() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lease_held_;
}

std::string ServiceMetrics::render(const nlohmann::json& status) const {
  std::string out;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    header(out, "mdsync_build_info", "gauge", "The binary's version and control-schema version.");
    sample(out, "mdsync_build_info",
           {{"version", version_}, {"control_schema", std::to_string(control_schema_)}}, "1");
    header(out, "mdsync_lease_held", "gauge",
           "1 while this process holds the engine lease of its control store.");
    sample(out, "mdsync_lease_held", {}, lease_held_ ? "1" : "0");
    header(out, "mdsync_passes_total", "counter", "Passes run since start, failed ones included.");
    sample(out, "mdsync_passes_total", {}, std::to_string(passes_));
    header(
        out, "mdsync_pass_failures_total", "counter",
        "Passes that failed (control store unreachable, ruleset unusable); retried with backoff.");
    sample(out, "mdsync_pass_failures_total", {}, std::to_string(pass_failures_));
    header(out, "mdsync_changes_total", "counter",
           "Captured changes reconciled, by side, entity and outcome (applied, reverted,"
           " quarantined, unchanged, error).");
    for (const auto& [k, n] : changes_)
      sample(out, "mdsync_changes_total",
             {{"side", std::get<0>(k)}, {"entity", std::get<1>(k)}, {"outcome", std::get<2>(k)}},
             std::to_string(n));
    header(out, "mdsync_writebacks_total", "counter",
           "Write-backs the sides answered, by side, entity and result (applied, superseded,"
           " waiting, failed, vetoed, unwritable, cancelled).");
    for (const auto& [k, n] : writebacks_)
      sample(out, "mdsync_writebacks_total",
             {{"side", std::get<0>(k)}, {"entity", std::get<1>(k)}, {"result", std::get<2>(k)}},
             std::to_string(n));
    header(out, "mdsync_writeback_retries_total", "counter",
           "Write-backs sent in a batch the side could not take; each is sent again.");
    for (const auto& [side, n] : writeback_retries_)
      sample(out, "mdsync_writeback_retries_total", {{"side", side}}, std::to_string(n));
    header(out, "mdsync_side_errors_total", "counter",
           "Times a side could not be read or written (it is retried with backoff).");
    for (const auto& [side, n] : side_errors_)
      sample(out, "mdsync_side_errors_total", {{"side", side}}, std::to_string(n));
    header(out, "mdsync_pass_duration_seconds", "histogram", "Duration of each pass.");
    pass_seconds_.render(out, "mdsync_pass_duration_seconds");
    header(out, "mdsync_batch_duration_seconds", "histogram",
           "Duration of each capture batch: decided and committed in one control transaction.");
    batch_seconds_.render(out, "mdsync_batch_duration_seconds");
    header(out, "mdsync_capture_to_writeback_seconds", "histogram",
           "From a change's capture on its side to the first write-back of its record applied on"
           " another side.");
    latency_seconds_.render(out, "mdsync_capture_to_writeback_seconds");
  }

  header(out, "mdsync_control_up", "gauge", "1 when the control store answered this scrape.");
  sample(out, "mdsync_control_up", {}, status.is_object() ? "1" : "0");
  if (!status.is_object()) return out;
  static const nlohmann::json kNone = nlohmann::json::object();
  const auto s_it = status.find("sides");
  const nlohmann::json& sides = s_it != status.end() && s_it->is_object() ? *s_it : kNone;
  const auto c_it = status.find("open_conflicts");
  const nlohmann::json& conflicts = c_it != status.end() && c_it->is_object() ? *c_it : kNone;
  struct Gauge {
    const char* name;
    const char* key;
    const char* help;
  };
  static const Gauge kSideGauges[] = {
      {"mdsync_writeback_pending", "writeback_pending", "Write-backs queued for the side."},
      {"mdsync_writeback_failed", "writeback_failed",
       "Failed write-backs waiting for a steward (`mdsync errors list`)."},
      {"mdsync_writeback_lag_seconds", "writeback_lag_seconds",
       "Age of the side's oldest queued write-back."},
      {"mdsync_capture_backlog", "capture_backlog",
       "Captured changes on the side not yet reconciled (absent when it cannot be reached)."},
      {"mdsync_capture_errors", "capture_errors",
       "Captured changes kept as errors, open (`mdsync errors list`)."},
      {"mdsync_side_consecutive_failures", "consecutive_failures",
       "Failures of the side in a row (its circuit opens at sides.NAME.circuit_breaker.failures)."},
      {"mdsync_side_write_limit_per_s", "max_writes_per_s",
       "The side's write rate limit (sides.NAME.max_writes_per_s), for sides that have one."},
  };
  header(out, "mdsync_side_up", "gauge", "1 when the side answered this scrape.");
  for (const auto& [side, s] : sides.items())
    sample(out, "mdsync_side_up", {{"side", side}}, s.value("reachable", false) ? "1" : "0");
  header(out, "mdsync_side_paused", "gauge", "1 while the side is paused (`mdsync pause`).");
  for (const auto& [side, s] : sides.items())
    sample(out, "mdsync_side_paused", {{"side", side}}, s.value("paused", false) ? "1" : "0");
  for (const Gauge& g : kSideGauges) {
    header(out, g.name, "gauge", g.help);
    for (const auto& [side, s] : sides.items()) {
      const std::int64_t v = int_or(s, g.key, -1);
      if (v >= 0) sample(out, g.name, {{"side", side}}, std::to_string(v));
    }
  }
  // The breaker and the rate limit as the engine holding the lease recorded them
  // (mdsync.side_state); the limit and the failures are among the side gauges above.
  header(out, "mdsync_side_circuit_state", "gauge",
         "1 for the state the side's circuit breaker is in (closed, open, half_open).");
  for (const auto& [side, s] : sides.items())
    for (const char* state : {"closed", "open", "half_open"})
      sample(out, "mdsync_side_circuit_state", {{"side", side}, {"state", state}},
             s.value("circuit", "closed") == state ? "1" : "0");
  header(out, "mdsync_side_throttled", "gauge",
         "1 while the side's write rate limit holds queued write-backs back.");
  for (const auto& [side, s] : sides.items())
    sample(out, "mdsync_side_throttled", {{"side", side}}, s.value("throttled", false) ? "1" : "0");
  header(out, "mdsync_conflicts_open", "gauge", "Open conflicts, by entity and kind.");
  for (const auto& [entity, kinds] : conflicts.items())
    for (const auto& [kind, n] : kinds.items())
      if (n.is_number_integer())
        sample(out, "mdsync_conflicts_open", {{"entity", entity}, {"kind", kind}},
               std::to_string(n.get<std::int64_t>()));
  return out;
}

}  // namespace mdsync::service
