// The reads behind the service's /metrics and /readyz, on a control-store connection of their
// own (the HTTP thread never touches the engine's connections): the status report's gauges,
// which also say whether the control store and each side answer right now.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>

#include "mdsync/config/config.hpp"

namespace mdsync::store {

class HealthProbe {
 public:
  explicit HealthProbe(const config::Config& config);
  ~HealthProbe();
  HealthProbe(const HealthProbe&) = delete;
  HealthProbe& operator=(const HealthProbe&) = delete;

  // status_report (record_view.hpp) at StatusDetail::kGauges: per side the write-back queue,
  // its lag, the capture backlog and `reachable`; open conflicts per entity and kind. Throws
  // when the control store cannot be read (the connection is opened again next time).
  nlohmann::json gauges();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mdsync::store
