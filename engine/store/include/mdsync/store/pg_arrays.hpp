// PostgreSQL array literals for parameters ($1::text[], $1::bigint[]): how the store sends
// a batch of values in one statement instead of one statement per value.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mdsync::store {

std::string pg_text_array(const std::vector<std::string>& items);  // every element quoted
std::string pg_bigint_array(const std::vector<std::int64_t>& items);

}  // namespace mdsync::store
