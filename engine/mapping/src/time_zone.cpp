#include "mdsync/mapping/time_zone.hpp"

#include <unicode/timezone.h>
#include <unicode/unistr.h>

namespace mdsync::mapping {

bool is_known_time_zone(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  // Region/City names (and UTC); ICU also knows legacy abbreviations, which PostgreSQL may
  // read with other rules, so only the Area/Location form and UTC are taken.
  if (name != "UTC" && name.find('/') == std::string_view::npos) return false;
  const icu::UnicodeString id = icu::UnicodeString::fromUTF8(
      icu::StringPiece(name.data(), static_cast<int32_t>(name.size())));
  UErrorCode status = U_ZERO_ERROR;
  icu::UnicodeString canonical;
  UBool is_system = false;
  icu::TimeZone::getCanonicalID(id, canonical, is_system, status);
  return U_SUCCESS(status) && is_system;
}

}  // namespace mdsync::mapping
