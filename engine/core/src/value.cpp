#include "mdsync/core/value.hpp"

#include <algorithm>
#include <cstdint>

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

std::string show(const FieldValues& v) {
  if (v.size() == 1) return show(v.begin()->second);
  std::string s = "{";
  for (const auto& [field, value] : v) {
    if (s.size() > 1) s += ", ";
    s += field + "=" + show(value);
  }
  return s + "}";
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

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2);
}

bool digits(std::string_view s, std::size_t pos, std::size_t n, unsigned& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + static_cast<unsigned>(s[i] - '0');
  }
  return true;
}

bool valid_date(unsigned y, unsigned m, unsigned d) {
  static const unsigned kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1 || d > kDays[m - 1]) return false;
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m != 2 || d <= 28 || leap;
}

std::string two(unsigned v) {
  return std::string(1, static_cast<char>('0' + v / 10)) + static_cast<char>('0' + v % 10);
}

std::string four(std::int64_t v) {
  std::string s = std::to_string(v);
  return std::string(s.size() < 4 ? 4 - s.size() : 0, '0') + s;
}

// "YYYY-MM-DD".
std::optional<std::string> canonical_date(std::string_view t) {
  unsigned y, m, d;
  if (t.size() != 10 || t[4] != '-' || t[7] != '-' || !digits(t, 0, 4, y) || !digits(t, 5, 2, m) ||
      !digits(t, 8, 2, d) || !valid_date(y, m, d))
    return std::nullopt;
  return std::string(t);
}

// "YYYY-MM-DD[T| ]HH:MM[:SS[.f{1,6}]][Z|±HH[[:]MM]]" -> UTC "YYYY-MM-DD HH:MM:SS[.f]+00", the
// form PostgreSQL prints with TimeZone UTC, so the same instant always has the same text.
std::optional<std::string> canonical_timestamptz(std::string_view t) {
  if (t == "infinity" || t == "-infinity") return std::string(t);
  unsigned y, mo, d, h, mi, sec = 0;
  if (t.size() < 16 || !digits(t, 0, 4, y) || t[4] != '-' || !digits(t, 5, 2, mo) || t[7] != '-' ||
      !digits(t, 8, 2, d) || (t[10] != 'T' && t[10] != ' ') || !digits(t, 11, 2, h) ||
      t[13] != ':' || !digits(t, 14, 2, mi) || !valid_date(y, mo, d) || h > 23 || mi > 59)
    return std::nullopt;
  std::size_t i = 16;
  std::string frac;
  if (i < t.size() && t[i] == ':') {
    if (!digits(t, i + 1, 2, sec) || sec > 59) return std::nullopt;
    i += 3;
    if (i < t.size() && t[i] == '.') {
      ++i;
      while (i < t.size() && t[i] >= '0' && t[i] <= '9') frac += t[i++];
      if (frac.empty() || frac.size() > 6) return std::nullopt;
      while (!frac.empty() && frac.back() == '0') frac.pop_back();
    }
  }
  int offset_min = 0;
  if (i < t.size()) {
    if (t[i] == 'Z' && i + 1 == t.size()) {
      i = t.size();
    } else if (t[i] == '+' || t[i] == '-') {
      const int sign = t[i] == '-' ? -1 : 1;
      unsigned oh, om = 0;
      if (!digits(t, i + 1, 2, oh)) return std::nullopt;
      std::size_t j = i + 3;
      if (j < t.size() && t[j] == ':') ++j;
      if (j < t.size()) {
        if (!digits(t, j, 2, om)) return std::nullopt;
        j += 2;
      }
      if (j != t.size() || oh > 15 || om > 59) return std::nullopt;
      offset_min = sign * static_cast<int>(oh * 60 + om);
      i = j;
    } else {
      return std::nullopt;
    }
  } else {
    return std::nullopt;  // no zone: not a timestamptz as the core receives them
  }
  std::int64_t minutes = days_from_civil(y, mo, d) * 1440 + h * 60 + mi - offset_min;
  const std::int64_t days = minutes >= 0 ? minutes / 1440 : (minutes - 1439) / 1440;
  minutes -= days * 1440;
  std::int64_t yy;
  unsigned mm, dd;
  civil_from_days(days, yy, mm, dd);
  if (yy < 1 || yy > 9999) return std::nullopt;
  std::string out = four(yy) + "-" + two(mm) + "-" + two(dd) + " " +
                    two(static_cast<unsigned>(minutes / 60)) + ":" +
                    two(static_cast<unsigned>(minutes % 60)) + ":" + two(sec);
  if (!frac.empty()) out += "." + frac;
  return out + "+00";
}

}  // namespace

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
    case FieldType::kDate: {
      auto d = canonical_date(*raw);
      if (!d) return std::nullopt;
      return Value{*d};
    }
    case FieldType::kTimestamptz: {
      auto ts = canonical_timestamptz(*raw);
      if (!ts) return std::nullopt;
      return Value{*ts};
    }
    case FieldType::kText:
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

namespace {

// A plain decimal split into views, without its insignificant zeros: comparing these is
// comparing the numbers, and nothing is allocated (values_equal runs once per decided field).
struct DecimalParts {
  bool valid = false;
  bool negative = false;
  std::string_view int_part;
  std::string_view frac_part;
};

// One pass over the text, by pointer: this runs twice for each comparison of two numbers
// that are not the same text.
DecimalParts decimal_parts(std::string_view t) {
  DecimalParts d;
  const char* p = t.data();
  const char* const end = p + t.size();
  auto is_digit = [](char c) { return static_cast<unsigned char>(c - '0') < 10; };
  if (p != end && (*p == '+' || *p == '-')) d.negative = *p++ == '-';
  const char* int_begin = p;
  while (p != end && is_digit(*p)) ++p;
  const char* const int_end = p;
  const char* frac_begin = p;
  const char* frac_end = p;
  if (p != end && *p == '.') {
    frac_begin = ++p;
    while (p != end && is_digit(*p)) ++p;
    frac_end = p;
  }
  if (p != end || (int_begin == int_end && frac_begin == frac_end)) return d;
  while (int_begin != int_end && *int_begin == '0') ++int_begin;
  while (frac_end != frac_begin && frac_end[-1] == '0') --frac_end;
  d.int_part = std::string_view(int_begin, static_cast<std::size_t>(int_end - int_begin));
  d.frac_part = std::string_view(frac_begin, static_cast<std::size_t>(frac_end - frac_begin));
  if (d.int_part.empty() && d.frac_part.empty()) d.negative = false;  // -0 is 0
  d.valid = true;
  return d;
}

}  // namespace

bool values_equal(FieldType type, Compare mode, const Value& a, const Value& b) {
  if (!a || !b) return !a && !b;
  if (type == FieldType::kNumeric || type == FieldType::kInteger) {
    if (*a == *b) return true;
    const DecimalParts x = decimal_parts(*a), y = decimal_parts(*b);
    if (x.valid && y.valid)
      return x.negative == y.negative && x.int_part == y.int_part && x.frac_part == y.frac_part;
    return false;
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
