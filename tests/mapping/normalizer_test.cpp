// Normalizers one by one: what each keeps and what it drops, on plain and hostile text.
#include "mdsync/mapping/normalizer.hpp"

#include <gtest/gtest.h>

#include <string>

namespace mdsync::mapping {
namespace {

std::string norm(Normalizer n, const std::string& text) {
  auto out = normalize(n, text);
  return out ? *out : std::string("<not UTF-8>");
}

TEST(Normalizer, NamesRoundTrip) {
  for (const char* word : {"trim", "lower", "nfc", "url_host", "company_name"}) {
    const auto n = normalizer_from_string(word);
    ASSERT_TRUE(n) << word;
    EXPECT_STREQ(to_string(*n), word);
  }
  EXPECT_FALSE(normalizer_from_string("upper"));
  EXPECT_FALSE(normalizer_from_string("Trim"));
  EXPECT_EQ(normalizer_names(), "trim, lower, nfc, url_host, company_name");
}

TEST(Normalizer, TrimDropsUnicodeWhiteSpaceAtBothEndsOnly) {
  EXPECT_EQ(norm(Normalizer::kTrim, " \t x  y \r\n"), "x  y");
  // No-break space and ideographic space, as copy-paste leaves them.
  EXPECT_EQ(norm(Normalizer::kTrim, "\u00A0Acme\u3000"), "Acme");
  EXPECT_EQ(norm(Normalizer::kTrim, " \u2003 "), "");
  EXPECT_EQ(norm(Normalizer::kTrim, ""), "");
  // A right-to-left mark is not white space: it stays (it may carry meaning).
  EXPECT_EQ(norm(Normalizer::kTrim, "\u200Fx "), "\u200Fx");
  EXPECT_EQ(norm(Normalizer::kTrim, " 😀 "), "😀");
}

TEST(Normalizer, LowerIsUnicodeLowerCase) {
  EXPECT_EQ(norm(Normalizer::kLower, "ÉCOLE Straße ABC"), "école straße abc");
  EXPECT_EQ(norm(Normalizer::kLower, "ΟΔΟΣ"), "οδος");  // final sigma
  EXPECT_EQ(norm(Normalizer::kLower, "İ"), "i\u0307");  // root locale, not Turkish
  EXPECT_EQ(norm(Normalizer::kLower, "😀 ١٢٣ עברית"), "😀 ١٢٣ עברית");
}

TEST(Normalizer, NfcComposes) {
  EXPECT_EQ(norm(Normalizer::kNfc, "e\u0301cole"), "\u00E9cole");
  EXPECT_EQ(norm(Normalizer::kNfc, "\u1100\u1161"), "\uAC00");  // Hangul jamo
  EXPECT_EQ(norm(Normalizer::kNfc, "\u00E9"), "\u00E9");
  // NFC keeps compatibility characters (that would be NFKC).
  EXPECT_EQ(norm(Normalizer::kNfc, "\uFB01"), "\uFB01");
}

TEST(Normalizer, InvalidUtf8IsReportedNotRepaired) {
  for (const std::string& bad :
       {std::string("\xC3"), std::string("a\xFF"), std::string("\xED\xA0\x80"),
        std::string("\xC0\xAF"), std::string("\xF4\x90\x80\x80")})
    for (Normalizer n : {Normalizer::kTrim, Normalizer::kLower, Normalizer::kNfc,
                         Normalizer::kUrlHost, Normalizer::kCompanyName})
      EXPECT_FALSE(normalize(n, bad)) << to_string(n);
  // NUL is valid UTF-8 and kept.
  EXPECT_EQ(norm(Normalizer::kLower, std::string("A\0B", 3)), std::string("a\0b", 3));
}

struct Case {
  const char* in;
  const char* out;
};

TEST(Normalizer, UrlHost) {
  const Case cases[] = {
      {"HTTPS://WWW.Example.com/path?q", "example.com"},
      {"example.com", "example.com"},
      {"https://www.example.com/", "example.com"},
      {"http://example.com:8080/x", "example.com"},
      {"https://user:secret@www.example.com./x", "example.com"},
      {"//cdn.Example.com/lib.js", "cdn.example.com"},
      {"example.com?ref=1", "example.com"},
      {"example.com#top", "example.com"},
      {"  https://example.com  ", "example.com"},
      {"WWW.EXAMPLE.CO.UK", "example.co.uk"},
      {"www.com", "www.com"},  // a domain of its own
      {"www.www.example.com.", "example.com"},
      {"ftp://[2001:DB8::1]:21/x", "[2001:db8::1]"},
      {"https://MÜNCHEN.de/", "münchen.de"},
      {"https://xn--mnchen-3ya.de", "xn--mnchen-3ya.de"},
      {"example.com\\path", "example.com"},
      {"", ""},
      {"https://", ""},
      {"not a url", "not a url"},
  };
  for (const Case& c : cases) EXPECT_EQ(norm(Normalizer::kUrlHost, c.in), c.out) << c.in;
}

// Found by MappingProperties.NormalizersAreIdempotent: a host whose rest begins with '[' once
// "www." or leading white space is gone was read as an IPv6 literal the second time.
TEST(Normalizer, UrlHostIsIdempotentWhenTheRestBeginsWithABracket) {
  const Case cases[] = {
      {"WWW.[] S.A.", "www.[] s.a"},
      {"http:// [a] b", "[a]"},
      {"www. [x] y.z", "www. [x] y.z"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(norm(Normalizer::kUrlHost, c.in), c.out) << c.in;
    EXPECT_EQ(norm(Normalizer::kUrlHost, c.out), c.out) << c.out;
  }
}

TEST(Normalizer, CompanyName) {
  const Case cases[] = {
      {"ACME Inc.", "acme"},
      {"Acme, Inc", "acme"},
      {"Acme Incorporated", "acme"},
      {"Acme GmbH & Co. KG", "acme"},
      {"Società Rossi S.p.A.", "società rossi"},
      {"Dupont SARL", "dupont"},
      {"Dupont S.à r.l.", "dupont"},
      {"Rossi S p A", "rossi"},
      {"Le Bon Co", "le bon"},
      {"Müller  AG", "müller"},
      {"Maersk A/S", "maersk"},
      {"Philips N.V.", "philips"},
      {"Shell plc", "shell"},
      {"Acme Holding B.V.", "acme holding"},
      {"O'Neil & Sons Ltd", "oneil sons"},
      {"  The   Coca-Cola Company ", "the coca cola"},
      {"Inc.", "inc"},  // one word always stays
      {"GmbH", "gmbh"},
      {"Acme\u200F Inc", "acme"},        // a right-to-left mark is invisible
      {"Acme 🚀 Ltd", "acme"},            // symbols separate words
      {"E\u0301cole SA", "\u00E9cole"},  // composed
      {"e.\u0301cole", "\u00E9cole"},    // composed even where a dot stood
      {"شركة الاتصالات SA", "شركة الاتصالات"},
      {"", ""},
  };
  for (const Case& c : cases) EXPECT_EQ(norm(Normalizer::kCompanyName, c.in), c.out) << c.in;
}

TEST(Normalizer, ListAppliesInOrder) {
  EXPECT_EQ(normalize({Normalizer::kTrim, Normalizer::kLower}, "  ABC "), "abc");
  EXPECT_EQ(normalize(std::vector<Normalizer>{}, " A "), " A ");
  EXPECT_FALSE(normalize({Normalizer::kTrim}, "\xFF"));
}

}  // namespace
}  // namespace mdsync::mapping
