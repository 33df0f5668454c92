// Declared time zones: IANA names only.
#include "mdsync/mapping/time_zone.hpp"

#include <gtest/gtest.h>

namespace mdsync::mapping {
namespace {

TEST(TimeZone, KnowsIanaNamesOnly) {
  for (const char* zone :
       {"Europe/Brussels", "UTC", "America/Argentina/Buenos_Aires", "Asia/Kolkata", "Etc/UTC"})
    EXPECT_TRUE(is_known_time_zone(zone)) << zone;
  for (const char* zone : {"", "CET", "EST", "+02:00", "Mars/Olympus_Mons", "europe/brussels",
                           "Europe/Brussels ", "Europe/Brussels\n"})
    EXPECT_FALSE(is_known_time_zone(zone)) << zone;
}

}  // namespace
}  // namespace mdsync::mapping
