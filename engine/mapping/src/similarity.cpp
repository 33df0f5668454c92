#include "mdsync/mapping/similarity.hpp"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace mdsync::mapping {

namespace {

// Code points of UTF-8 text; a malformed byte stands for itself (offset past U+10FFFF, so it
// never equals a real code point).
std::vector<std::uint32_t> code_points(std::string_view s) {
  std::vector<std::uint32_t> out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const std::size_t n = b < 0x80           ? 1
                          : (b >> 5) == 0x6  ? 2
                          : (b >> 4) == 0xE  ? 3
                          : (b >> 3) == 0x1E ? 4
                                             : 0;
    bool ok = n != 0 && i + n <= s.size();
    std::uint32_t cp = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
    for (std::size_t k = 1; ok && k < n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      ok = (c & 0xC0) == 0x80;
      cp = (cp << 6) | (c & 0x3F);
    }
    if (!ok) {
      out.push_back(0x110000u + b);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += n;
  }
  return out;
}

double jaro(const std::vector<std::uint32_t>& a, const std::vector<std::uint32_t>& b) {
  if (a.empty() && b.empty()) return 1.0;
  if (a.empty() || b.empty()) return 0.0;
  const std::size_t window =
      std::max(a.size(), b.size()) / 2 == 0 ? 0 : std::max(a.size(), b.size()) / 2 - 1;
  std::vector<bool> a_match(a.size(), false), b_match(b.size(), false);
  std::size_t matches = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const std::size_t from = i > window ? i - window : 0;
    const std::size_t to = std::min(b.size(), i + window + 1);
    for (std::size_t j = from; j < to; ++j) {
      if (b_match[j] || a[i] != b[j]) continue;
      a_match[i] = b_match[j] = true;
      ++matches;
      break;
    }
  }
  if (matches == 0) return 0.0;
  std::size_t half_transpositions = 0;
  for (std::size_t i = 0, j = 0; i < a.size(); ++i) {
    if (!a_match[i]) continue;
    while (!b_match[j]) ++j;
    if (a[i] != b[j]) ++half_transpositions;
    ++j;
  }
  const double m = static_cast<double>(matches);
  const double t = static_cast<double>(half_transpositions / 2);
  return (m / static_cast<double>(a.size()) + m / static_cast<double>(b.size()) + (m - t) / m) /
         3.0;
}

}  // namespace

int similarity_permille(std::string_view a, std::string_view b) {
  if (a == b) return 1000;
  // Jaro's greedy matching can depend on which text comes first: both orders give the same
  // number because the shorter (then the smaller) text always comes first.
  if (b.size() < a.size() || (b.size() == a.size() && b < a)) std::swap(a, b);
  const std::vector<std::uint32_t> x = code_points(a);
  const std::vector<std::uint32_t> y = code_points(b);
  double sim = jaro(x, y);
  if (sim > 0.7) {
    std::size_t prefix = 0;
    while (prefix < 4 && prefix < x.size() && prefix < y.size() && x[prefix] == y[prefix]) ++prefix;
    sim += static_cast<double>(prefix) * 0.1 * (1.0 - sim);
  }
  const int permille = static_cast<int>(sim * 1000.0 + 0.5);
  // Different text is never "equal": 1000 means the same key value.
  return std::min(permille, 999);
}

std::string permille_text(int permille) {
  permille = std::clamp(permille, 0, 1000);
  std::string frac = std::to_string(permille % 1000);
  frac.insert(0, 3 - frac.size(), '0');
  return std::to_string(permille / 1000) + "." + frac;
}

}  // namespace mdsync::mapping
