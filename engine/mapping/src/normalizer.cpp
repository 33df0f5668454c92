#include "mdsync/mapping/normalizer.hpp"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utf8.h>

#include <array>
#include <climits>
#include <set>

namespace mdsync::mapping {

namespace {

constexpr std::array<std::pair<Normalizer, const char*>, 5> kNames = {{
    {Normalizer::kTrim, "trim"},
    {Normalizer::kLower, "lower"},
    {Normalizer::kNfc, "nfc"},
    {Normalizer::kUrlHost, "url_host"},
    {Normalizer::kCompanyName, "company_name"},
}};

// Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF), decoded to code
// points. ICU's own conversions would substitute U+FFFD for bad bytes, which would be a
// silent rewrite of data.
std::optional<std::u32string> decode(std::string_view s) {
  if (s.size() > static_cast<std::size_t>(INT32_MAX)) return std::nullopt;
  std::u32string out;
  out.reserve(s.size());
  const auto n = static_cast<int32_t>(s.size());
  for (int32_t i = 0; i < n;) {
    UChar32 c;
    U8_NEXT(s.data(), i, n, c);
    if (c < 0) return std::nullopt;
    out.push_back(static_cast<char32_t>(c));
  }
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  char buf[U8_MAX_LENGTH];
  int32_t len = 0;
  U8_APPEND_UNSAFE(buf, len, static_cast<UChar32>(c));
  out.append(buf, static_cast<std::size_t>(len));
}

std::string encode(const std::u32string& cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t c : cps) append_utf8(out, c);
  return out;
}

bool white_space(char32_t c) {
  return u_isUWhiteSpace(static_cast<UChar32>(c));
}

std::optional<std::string> trim(std::string_view text) {
  auto cps = decode(text);
  if (!cps) return std::nullopt;
  std::size_t b = 0, e = cps->size();
  while (b < e && white_space((*cps)[b])) ++b;
  while (e > b && white_space((*cps)[e - 1])) --e;
  return encode(cps->substr(b, e - b));
}

// Input must already be valid UTF-8 (checked by the caller through decode).
std::optional<std::string> lower_valid(std::string_view text) {
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(
      icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  u.toLower(icu::Locale::getRoot());
  std::string out;
  return u.toUTF8String(out);
}

std::optional<std::string> nfc_valid(std::string_view text) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  if (U_FAILURE(status)) return std::nullopt;
  const icu::UnicodeString u = icu::UnicodeString::fromUTF8(
      icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  const icu::UnicodeString n = nfc->normalize(u, status);
  if (U_FAILURE(status)) return std::nullopt;
  std::string out;
  return n.toUTF8String(out);
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool is_scheme(std::string_view s) {
  if (s.empty() || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
          c == '-' || c == '.'))
      return false;
  return true;
}

// "HTTPS://user@WWW.Example.com:8443/path?q#f" -> "example.com". What is left when the text
// is not a URL at all is still deterministic: the text up to the first '/', '?', '#' or ':'.
std::optional<std::string> url_host(std::string_view text) {
  auto trimmed = trim(text);
  if (!trimmed) return std::nullopt;
  std::string_view s = *trimmed;
  if (const std::size_t p = s.find("://"); p != std::string_view::npos && is_scheme(s.substr(0, p)))
    s.remove_prefix(p + 3);
  else if (starts_with(s, "//"))
    s.remove_prefix(2);
  std::string_view untrimmed = s.substr(0, s.find_first_of("/?#\\"));
  if (const std::size_t at = untrimmed.rfind('@'); at != std::string_view::npos)
    untrimmed.remove_prefix(at + 1);
  // Trimmed before its first character is looked at, as the result is: "http:// [a] b" must
  // take the same path as its own host "[a] b" would, or normalizing twice differs.
  const auto trimmed_authority = trim(untrimmed);
  if (!trimmed_authority) return std::nullopt;
  const std::string_view authority = *trimmed_authority;
  std::string_view host;
  if (starts_with(authority, "[")) {  // an IPv6 literal keeps its brackets, loses its port
    const std::size_t close = authority.find(']');
    host = close == std::string_view::npos ? authority : authority.substr(0, close + 1);
  } else {
    host = authority.substr(0, authority.find(':'));
  }
  auto low = lower_valid(host);
  if (!low) return std::nullopt;
  auto out = nfc_valid(*low);
  if (!out) return std::nullopt;
  // Until nothing changes, so that the host of a host is itself ("www.www.example.com.").
  for (std::string before; before != *out;) {
    before = *out;
    out = trim(*out);
    if (!out) return std::nullopt;
    while (!out->empty() && out->back() == '.') out->pop_back();
    // "www.com" is a domain of its own: drop "www." only when a dot remains after it. Kept
    // too when the rest would begin with '[': read again, that would be an IPv6 literal and
    // lose everything after its ']' ("www.[] s.a" is not "[] s.a").
    if (starts_with(*out, "www.") && out->find('.', 4) != std::string::npos) {
      const auto rest = trim(std::string_view(*out).substr(4));
      if (rest && !starts_with(*rest, "[")) out->erase(0, 4);
    }
  }
  return out;
}

// Legal-form words dropped from the end of a company name (after punctuation is removed,
// so "S.p.A." is "spa" and "L.L.C." is "llc"). Words that are often part of a real name are
// left out on purpose: a fuzzy key that merges too much only makes noise for the steward.
const std::set<std::string>& legal_suffixes() {
  static const std::set<std::string> kSuffixes = {
      "ab",   "ag",          "as",   "asa",  "aps",     "bv",   "bvba", "co",           "company",
      "corp", "corporation", "cv",   "doo",  "ev",      "gmbh", "inc",  "incorporated", "kft",
      "kg",   "kgaa",        "kk",   "lda",  "limited", "llc",  "llp",  "lp",           "ltd",
      "ltda", "nv",          "ohg",  "oy",   "oyj",     "plc",  "pte",  "pty",          "pvt",
      "sa",   "sapa",        "sarl", "sàrl", "sas",     "sasu", "sca",  "se",           "sl",
      "sprl", "spa",         "srl",  "sro",  "ug",      "vof",  "zrt"};
  return kSuffixes;
}

std::size_t code_points(const std::string& s) {
  std::size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

bool joins_word(char32_t c) {
  // Dots and apostrophes inside abbreviations and names: "S.p.A." -> "spa", "O'Neil" -> "oneil".
  return c == U'.' || c == U'\'' || c == U'\u2019' || c == U'\u02BC' || c == U'`' || c == U'\u00B4';
}

std::optional<std::string> company_name(std::string_view text) {
  if (!decode(text)) return std::nullopt;
  auto low = lower_valid(text);
  if (!low) return std::nullopt;
  auto composed = nfc_valid(*low);
  if (!composed) return std::nullopt;
  auto cps = decode(*composed);
  if (!cps) return std::nullopt;
  std::vector<std::string> words;
  std::string word;
  // Each word composed again: removing a dot can bring a base letter and a combining mark
  // together ("e.\u0301"), and the key must not depend on where the dot was.
  auto end_word = [&] {
    if (word.empty()) return;
    auto composed_word = nfc_valid(word);
    words.push_back(composed_word ? std::move(*composed_word) : std::move(word));
    word.clear();
  };
  for (char32_t c : *cps) {
    const uint32_t mask = U_GET_GC_MASK(static_cast<UChar32>(c));
    if (joins_word(c) || (mask & U_GC_CF_MASK) != 0) continue;  // Cf: RLM, ZWJ, BOM: invisible
    if (white_space(c) || (mask & (U_GC_P_MASK | U_GC_S_MASK | U_GC_CC_MASK | U_GC_Z_MASK)) != 0) {
      end_word();
      continue;
    }
    append_utf8(word, c);
  }
  end_word();
  // Drop legal forms at the end, repeatedly ("gmbh & co. kg"), keeping at least one word.
  // A form spelled in short pieces ("A/S", "S A", "S.à r.l.") counts as the joined word.
  const auto& suffixes = legal_suffixes();
  for (bool dropped = true; dropped && words.size() > 1;) {
    dropped = false;
    if (suffixes.count(words.back())) {
      words.pop_back();
      dropped = true;
      continue;
    }
    std::string joined;
    for (std::size_t k = 1; k <= 4 && k < words.size(); ++k) {
      const std::string& w = words[words.size() - k];
      if (code_points(w) > 2) break;
      joined.insert(0, w);
      if (k >= 2 && suffixes.count(joined)) {
        words.resize(words.size() - k);
        dropped = true;
        break;
      }
    }
  }
  std::string out;
  for (const std::string& w : words) {
    if (!out.empty()) out += ' ';
    out += w;
  }
  return out;
}

}  // namespace

const char* to_string(Normalizer n) {
  for (const auto& [value, name] : kNames)
    if (value == n) return name;
  return "?";
}

std::optional<Normalizer> normalizer_from_string(std::string_view word) {
  for (const auto& [value, name] : kNames)
    if (word == name) return value;
  return std::nullopt;
}

std::string normalizer_names() {
  std::string out;
  for (const auto& [value, name] : kNames) {
    (void)value;
    out += std::string(out.empty() ? "" : ", ") + name;
  }
  return out;
}

std::optional<std::string> normalize(Normalizer n, std::string_view text) {
  switch (n) {
    case Normalizer::kTrim:
      return trim(text);
    case Normalizer::kLower:
      if (!decode(text)) return std::nullopt;
      return lower_valid(text);
    case Normalizer::kNfc:
      if (!decode(text)) return std::nullopt;
      return nfc_valid(text);
    case Normalizer::kUrlHost:
      return url_host(text);
    case Normalizer::kCompanyName:
      return company_name(text);
  }
  return std::nullopt;
}

std::optional<std::string> normalize(const std::vector<Normalizer>& ns, std::string_view text) {
  std::optional<std::string> out{std::string(text)};
  for (Normalizer n : ns) {
    out = normalize(n, *out);
    if (!out) return std::nullopt;
  }
  return out;
}

}  // namespace mdsync::mapping
