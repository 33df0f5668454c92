#include "mdsync/core/value.hpp"

#include <algorithm>

namespace mdsync::core {

const char* to_string(FieldType t) {
  switch (t) {
    case FieldType::kText:
      return "text";
    case FieldType::kInteger:
      return "integer";
    case FieldType::kNumeric:
      return "numeric";
    case FieldType::kBoolean:
      return "boolean";
    case FieldType::kDate:
      return "date";
    case FieldType::kTimestamptz:
      return "timestamptz";
    case FieldType::kJson:
      return "json";
  }
  return "?";
}

std::optional<FieldType> field_type_from_string(std::string_view w) {
  if (w == "text") return FieldType::kText;
  if (w == "integer") return FieldType::kInteger;
  if (w == "numeric") return FieldType::kNumeric;
  if (w == "boolean") return FieldType::kBoolean;
  if (w == "date") return FieldType::kDate;
  if (w == "timestamptz") return FieldType::kTimestamptz;
  if (w == "json") return FieldType::kJson;
  return std::nullopt;
}

std::string show(const Value& v) {
  return v ? "\"" + *v + "\"" : std::string("NULL");
}

std::optional<std::string> canonical_decimal(std::string_view t) {
  std::size_t i = 0;
  bool negative = false;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) negative = t[i++] == '-';
  std::string_view rest = t.substr(i);
  const std::size_t dot = rest.find('.');
  std::string_view int_part = rest.substr(0, dot);
  std::string_view frac_part =
      dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
  if (int_part.empty() && frac_part.empty()) return std::nullopt;
  auto all_digits = [](std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!all_digits(int_part) || !all_digits(frac_part)) return std::nullopt;
  while (!int_part.empty() && int_part.front() == '0') int_part.remove_prefix(1);
  while (!frac_part.empty() && frac_part.back() == '0') frac_part.remove_suffix(1);
  std::string out;
  out.reserve(int_part.size() + frac_part.size() + 3);
  if (negative && !(int_part.empty() && frac_part.empty())) out += '-';
  if (int_part.empty())
    out += '0';
  else
    out.append(int_part);
  if (!frac_part.empty()) {
    out += '.';
    out.append(frac_part);
  }
  return out;
}

int compare_decimal(std::string_view a, std::string_view b) {
  const bool na = !a.empty() && a.front() == '-';
  const bool nb = !b.empty() && b.front() == '-';
  if (na != nb) return na ? -1 : 1;
  if (na) {
    a.remove_prefix(1);
    b.remove_prefix(1);
  }
  auto split = [](std::string_view s) {
    const std::size_t dot = s.find('.');
    return std::pair(s.substr(0, dot),
                     dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1));
  };
  auto [ai, af] = split(a);
  auto [bi, bf] = split(b);
  int magnitude = 0;
  if (ai.size() != bi.size()) {
    magnitude = ai.size() < bi.size() ? -1 : 1;
  } else if (int c = ai.compare(bi); c != 0) {
    magnitude = c < 0 ? -1 : 1;
  } else {
    const std::size_t n = std::max(af.size(), bf.size());
    for (std::size_t k = 0; k < n && magnitude == 0; ++k) {
      const char x = k < af.size() ? af[k] : '0';
      const char y = k < bf.size() ? bf[k] : '0';
      if (x != y) magnitude = x < y ? -1 : 1;
    }
  }
  return na ? -magnitude : magnitude;
}

std::optional<Value> canonicalize(FieldType type, const Value& raw) {
  if (!raw) return Value{};
  switch (type) {
    case FieldType::kInteger: {
      auto d = canonical_decimal(*raw);
      if (!d || d->find('.') != std::string::npos) return std::nullopt;
      return Value{*d};
    }
    case FieldType::kNumeric: {
      if (*raw == "NaN") return Value{*raw};
      auto d = canonical_decimal(*raw);
      if (!d) return std::nullopt;
      return Value{*d};
    }
    case FieldType::kBoolean: {
      const std::string& s = *raw;
      if (s == "t" || s == "true" || s == "TRUE" || s == "True") return Value{"true"};
      if (s == "f" || s == "false" || s == "FALSE" || s == "False") return Value{"false"};
      return std::nullopt;
    }
    case FieldType::kText:
    case FieldType::kDate:
    case FieldType::kTimestamptz:
    case FieldType::kJson:
      return Value{*raw};
  }
  return std::nullopt;
}

namespace {

std::string_view trimmed(std::string_view s) {
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// ASCII case folding only: bytes outside ASCII compare exactly, so no two distinct
// Unicode spellings are ever merged by accident.
bool equal_ascii_nocase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace

bool values_equal(FieldType type, Compare mode, const Value& a, const Value& b) {
  if (!a || !b) return !a && !b;
  if (type == FieldType::kNumeric || type == FieldType::kInteger) {
    auto x = canonical_decimal(*a), y = canonical_decimal(*b);
    if (x && y) return *x == *y;
    return *a == *b;
  }
  if (type != FieldType::kText) return *a == *b;
  switch (mode) {
    case Compare::kExact:
      return *a == *b;
    case Compare::kTrim:
      return trimmed(*a) == trimmed(*b);
    case Compare::kCaseInsensitive:
      return equal_ascii_nocase(trimmed(*a), trimmed(*b));
  }
  return *a == *b;
}

}  // namespace mdsync::core
