// Time zone names for sides that keep timestamps without a time zone: such a column holds
// local times of a declared zone, and the zone must be one the IANA database knows, or
// every instant read from it would be silently wrong.
#pragma once

#include <string_view>

namespace mdsync::mapping {

// True for an IANA zone name ("Europe/Brussels", "UTC", "America/Argentina/Buenos_Aires"),
// as ICU's copy of the database knows it. Abbreviations such as "CET" or "EST" that name no
// single region's rules, and offsets such as "+02:00", are refused: a declared zone must
// follow daylight saving the way the side's application does.
bool is_known_time_zone(std::string_view name);

}  // namespace mdsync::mapping
