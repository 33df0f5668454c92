// A captured side row as the core's change: canonical values read through the field's
// transforms against `base` (a value the side still holds in another spelling reads as the
// base itself). The engine's own reader, shared with `sync --initial --dry-run`, which
// decides on rows it reads without capturing them. Defined in sync_engine.cpp.
#pragma once

#include <string>

#include "mdsync/config/config.hpp"
#include "mdsync/core/change.hpp"
#include "mdsync/store/side.hpp"

namespace mdsync::store {

class FieldTransforms;

core::Change captured_change(const CapturedRow& row, const std::string& side,
                             const config::EntityConfig& entity, const FieldTransforms& transforms,
                             const core::FieldValues& base);

}  // namespace mdsync::store
