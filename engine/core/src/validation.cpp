#include "mdsync/core/validation.hpp"

#include <algorithm>
#include <regex>
#include <vector>

namespace mdsync::core {

namespace {

bool blank(const std::string& v) {
  return v.find_first_not_of(" \t\n\r\f\v") == std::string::npos;
}

}  // namespace

std::optional<std::string> pattern_hazard(const std::string& pattern) {
  // One frame per open group: whether anything inside it repeats.
  std::vector<bool> repeats_inside;
  auto is_quantifier = [&](std::size_t i) {
    return i < pattern.size() && (pattern[i] == '*' || pattern[i] == '+' || pattern[i] == '{');
  };
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\') {
      ++i;  // an escaped character is an atom
    } else if (c == '[') {
      // A class is an atom: skip to its end (a ']' first in the class is a literal).
      std::size_t j = i + 1;
      if (j < pattern.size() && pattern[j] == '^') ++j;
      if (j < pattern.size() && pattern[j] == ']') ++j;
      while (j < pattern.size() && pattern[j] != ']') j += pattern[j] == '\\' ? 2 : 1;
      i = j;
    } else if (c == '(') {
      repeats_inside.push_back(false);
      if (i + 1 < pattern.size() && pattern[i + 1] == '?') ++i;  // (?: (?= (?! : not quantifiers
    } else if (c == ')') {
      if (repeats_inside.empty()) continue;
      const bool inner = repeats_inside.back();
      repeats_inside.pop_back();
      const bool repeated = is_quantifier(i + 1);
      if (inner && repeated)
        return "a repeated group holds a repetition (" +
               pattern.substr(0, std::min(pattern.size(), i + 2)) +
               "...): matching can take exponential time on a hostile value; write it without "
               "nesting";
      if (!repeats_inside.empty() && (inner || repeated)) repeats_inside.back() = true;
    } else if (is_quantifier(i) && !repeats_inside.empty()) {
      repeats_inside.back() = true;
    }
  }
  return std::nullopt;
}

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
    if (v.size() > kMaxPatternInputBytes)
      return "longer than the " + std::to_string(kMaxPatternInputBytes) +
             " bytes a pattern is checked on (" + std::to_string(v.size()) + " bytes)";
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
