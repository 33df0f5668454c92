// Normalizers: named, deterministic rewrites of a text value (trim, lower, nfc, url_host,
// company_name). A side's column may declare them so that formatting-only differences are no
// change, and match keys use them so that the same thing spelled two ways links.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mdsync::mapping {

enum class Normalizer {
  kTrim,         // leading and trailing Unicode White_Space (incl. NBSP, ideographic space)
  kLower,        // Unicode full lower case, root locale ("ÉCOLE" -> "école")
  kNfc,          // Unicode Normalization Form C
  kUrlHost,      // a URL or host -> its lower-case host, no scheme, www., port, path or dot
  kCompanyName,  // a fuzzy company key: lower, NFC, no punctuation, no legal suffix
};

const char* to_string(Normalizer n);
std::optional<Normalizer> normalizer_from_string(std::string_view word);
// "trim, lower, nfc, url_host, company_name": for error messages and the reference.
std::string normalizer_names();

// The result of normalizing: the text, or nullopt when the input is not valid UTF-8 (text
// that PostgreSQL hands out always is; anything else is reported, never silently repaired).
std::optional<std::string> normalize(Normalizer n, std::string_view text);
// Applies each normalizer in order.
std::optional<std::string> normalize(const std::vector<Normalizer>& ns, std::string_view text);

}  // namespace mdsync::mapping
