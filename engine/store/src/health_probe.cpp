#include "mdsync/store/health_probe.hpp"

#include <pqxx/pqxx>

#include "mdsync/store/db_connection.hpp"
#include "mdsync/store/record_view.hpp"

namespace mdsync::store {

struct HealthProbe::Impl {
  const config::Config& config;
  PgConnection control;
};

HealthProbe::HealthProbe(const config::Config& config)
    : impl_(std::make_unique<Impl>(Impl{config, nullptr})) {}

HealthProbe::~HealthProbe() = default;

nlohmann::json HealthProbe::gauges() {
  try {
    if (!impl_->control) impl_->control = connect(impl_->config.control_dsn, "control store");
    return status_report(*impl_->control, impl_->config, StatusDetail::kGauges);
  } catch (...) {
    impl_->control.reset();  // broken or not: a fresh connection next time costs little
    throw;
  }
}

}  // namespace mdsync::store
