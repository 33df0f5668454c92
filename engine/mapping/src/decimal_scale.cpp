#include "mdsync/mapping/decimal_scale.hpp"

#include "mdsync/core/value.hpp"

namespace mdsync::mapping {

std::optional<std::string> shift_decimal(std::string_view decimal, int places) {
  const auto canonical = core::canonical_decimal(decimal);
  if (!canonical) return std::nullopt;
  std::string_view t = *canonical;
  const bool negative = !t.empty() && t.front() == '-';
  if (negative) t.remove_prefix(1);
  const std::size_t dot = t.find('.');
  const std::string int_part(t.substr(0, dot));
  const std::string frac_part(dot == std::string_view::npos ? std::string_view()
                                                            : t.substr(dot + 1));
  // All significant digits with the decimal point after `point` of them.
  const std::string digits = int_part + frac_part;
  const long long point = static_cast<long long>(int_part.size()) + places;
  std::string out = negative ? "-" : "";
  if (point <= 0) {
    out += "0." + std::string(static_cast<std::size_t>(-point), '0') + digits;
  } else if (static_cast<std::size_t>(point) >= digits.size()) {
    out += digits + std::string(static_cast<std::size_t>(point) - digits.size(), '0');
  } else {
    const auto p = static_cast<std::size_t>(point);
    out += digits.substr(0, p) + "." + digits.substr(p);
  }
  return core::canonical_decimal(out);
}

bool is_whole(std::string_view canonical) {
  return canonical.find('.') == std::string_view::npos;
}

}  // namespace mdsync::mapping
