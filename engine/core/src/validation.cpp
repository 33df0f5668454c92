#include "mdsync/core/validation.hpp"

#include <algorithm>
#include <regex>

namespace mdsync::core {

namespace {

bool blank(const std::string& v) {
  return v.find_first_not_of(" \t\n\r\f\v") == std::string::npos;
}

}  // namespace

std::optional<std::string> validate(const Validation& rules, FieldType type, const Value& value,
                                    Compare compare) {
  if (!value) {
    if (rules.required) return std::string("required, but NULL");
    return std::nullopt;
  }
  const std::string& v = *value;
  if (v.size() > kMaxValueBytes)
    return "larger than the 1 MiB value limit (" + std::to_string(v.size()) + " bytes)";
  if (rules.required && v.empty()) return std::string("required, but empty");
  // The unit's compare mode says which values are the same; one it reads as empty is empty.
  if (rules.required && type == FieldType::kText && compare != Compare::kExact && blank(v))
    return std::string("required, but blank");
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
