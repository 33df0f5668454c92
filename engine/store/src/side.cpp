#include "mdsync/store/side.hpp"

#include "trigger_side.hpp"

namespace mdsync::store {

std::unique_ptr<Side> make_side(const config::Config& config, const config::SideConfig& side) {
  // Every side is a PostgreSQL database with capture triggers so far (`sides.NAME.capture`
  // accepts only "trigger"). Another kind is one more case here, on what the config names.
  return std::make_unique<TriggerSide>(config, side);
}

}  // namespace mdsync::store
