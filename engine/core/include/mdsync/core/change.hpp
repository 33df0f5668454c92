// One committed row change captured on one side, as the core receives it: which side, its
// capture sequence, the row key there, and the values of the fields the change touched.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "mdsync/core/value.hpp"

namespace mdsync::core {

enum class Op { kUpsert, kDelete };
const char* to_string(Op op);

struct Change {
  std::string side;
  std::int64_t seq = 0;
  std::string entity;
  std::string row_key;
  Op op = Op::kUpsert;
  // Canonical values of the fields this change touched: every mapped field for a new row,
  // only the fields whose column changed for an update. A field absent here is unchanged.
  FieldValues values;
  std::int64_t commit_time_us = 0;  // side clock, microseconds since the Unix epoch
  // Fields whose raw value could not be read as the field's type (or was too large), with
  // the reason: each opens an invalid_value conflict on its unit instead of propagating.
  std::map<std::string, std::string> unconvertible;
};

}  // namespace mdsync::core
