#include "mdsync/core/validation.hpp"

#include <algorithm>
#include <regex>

namespace mdsync::core {

std::size_t utf8_length(const std::string& text) {
  // Decodes sequence by sequence: a lead byte with the continuation bytes it announces is
  // one code point; any byte that is not part of such a sequence counts as one on its own,
  // so malformed input can never slip past max_length.
  std::size_t n = 0;
  for (std::size_t i = 0; i < text.size(); ++n) {
    const auto c = static_cast<unsigned char>(text[i]);
    const std::size_t len = c < 0x80           ? 1
                            : (c >> 5) == 0x6  ? 2
                            : (c >> 4) == 0xE  ? 3
                            : (c >> 3) == 0x1E ? 4
                                               : 0;
    std::size_t k = 1;
    while (len > 1 && k < len && i + k < text.size() &&
           (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80)
      ++k;
    i += (len > 1 && k == len) ? len : 1;
  }
  return n;
}

std::optional<std::string> validate(const Validation& rules, FieldType type, const Value& value) {
  if (!value) {
    if (rules.required) return std::string("required, but NULL");
    return std::nullopt;
  }
  const std::string& v = *value;
  if (rules.required && v.empty()) return std::string("required, but empty");
  if (rules.max_length && utf8_length(v) > *rules.max_length)
    return "longer than max_length " + std::to_string(*rules.max_length) + " (" +
           std::to_string(utf8_length(v)) + " characters)";
  if (rules.pattern) {
    // Rules are checked when read, so the pattern compiles; a failure here would be a bug,
    // and reporting the value invalid keeps it from propagating.
    try {
      const bool match =
          rules.compiled_pattern
              ? std::regex_match(v, *rules.compiled_pattern)
              : std::regex_match(v, std::regex(*rules.pattern, std::regex::ECMAScript));
      if (!match) return "does not match pattern " + *rules.pattern;
    } catch (const std::regex_error&) {
      return "pattern " + *rules.pattern + " cannot be evaluated";
    }
  }
  if (rules.min || rules.max) {
    if (type == FieldType::kNumeric || type == FieldType::kInteger) {
      const auto d = canonical_decimal(v);
      if (!d) return "not a number: " + v;
      if (rules.min && compare_decimal(*d, *rules.min) < 0) return "below min " + *rules.min;
      if (rules.max && compare_decimal(*d, *rules.max) > 0) return "above max " + *rules.max;
    }
  }
  if (rules.one_of &&
      std::find(rules.one_of->begin(), rules.one_of->end(), v) == rules.one_of->end())
    return "not one of the allowed values";
  return std::nullopt;
}

}  // namespace mdsync::core
