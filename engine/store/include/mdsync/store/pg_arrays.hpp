// PostgreSQL array literals for parameters ($1::text[], $1::bigint[]): how the store sends
// a batch of values in one statement instead of one statement per value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mdsync::store {

std::string pg_text_array(const std::vector<std::string>& items);  // every element quoted
// As pg_text_array, with an empty optional as a NULL element (a value and NULL stay apart).
std::string pg_nullable_text_array(const std::vector<std::optional<std::string>>& items);
std::string pg_bigint_array(const std::vector<std::int64_t>& items);

}  // namespace mdsync::store
