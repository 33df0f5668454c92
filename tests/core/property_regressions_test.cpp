// Deterministic scenarios from counterexamples the property tests (property_test.cpp) found,
// each replayed through the engine simulation (sync_model.hpp) or the core directly.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sync_model.hpp"

namespace mdsync::core::model {
namespace {}  // namespace
}  // namespace mdsync::core::model
