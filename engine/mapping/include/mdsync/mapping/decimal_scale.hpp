// Exact decimal shifts by powers of ten, on digit strings: a side that stores money in micros
// holds canonical "12.5" as "12500000". No double is involved, so no digit is ever lost,
// whatever the size of the number.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mdsync::mapping {

// `decimal` times 10^places, as a canonical decimal (core::canonical_decimal form); nullopt
// if `decimal` is not a plain decimal number. places may be negative (a division).
std::optional<std::string> shift_decimal(std::string_view decimal, int places);

// True for a canonical decimal without a fractional part ("12", "-3", "0").
bool is_whole(std::string_view canonical);

}  // namespace mdsync::mapping
