// Match keys: how rows that already exist on several sides are recognized as one record.
// An entity's match config names exact keys (a normalized website host, a customer number)
// and fuzzy keys (a normalized company name, compared by similarity); this builds a record's
// keys from its canonical values and decides, from the records each key finds, to link,
// create or ask.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mdsync/core/value.hpp"
#include "mdsync/mapping/normalizer.hpp"

namespace mdsync::mapping {

// A fuzzy key's default threshold: "acme" ~ "acme holdings" (0.862) is proposed, "acme" ~
// "acme international" (0.844) is not (MAPPING.md has a table).
inline constexpr int kDefaultFuzzyThresholdPermille = 850;

// One key: a field, or several for a composite key (country and VAT number), each value
// normalized in order by `normalize`.
struct MatchKeySpec {
  std::vector<std::string> fields;
  std::vector<Normalizer> normalize = {};
  // Fuzzy keys only: the least similarity (similarity_permille of the two normalized values,
  // in thousandths) at which a record is proposed as a possible duplicate.
  int threshold_permille = kDefaultFuzzyThresholdPermille;
  std::string name() const;  // "website", "country+vat"
};

struct MatchSpec {
  std::vector<MatchKeySpec> keys;   // exact: one record found links to it
  std::vector<MatchKeySpec> fuzzy;  // a find only asks the steward (possible_duplicate)
  bool empty() const { return keys.empty() && fuzzy.empty(); }
  // Whether a key (exact or fuzzy) is built from `field`.
  bool reads(std::string_view field) const;
};

struct MatchKey {
  std::string name;   // MatchKeySpec::name()
  std::string value;  // the normalized value; a composite key's parts joined by U+001F
  bool fuzzy = false;
  int threshold_permille = 0;  // fuzzy: MatchKeySpec::threshold_permille
};

// A record's keys, exact ones first, in config order. A key whose field is NULL, empty
// after normalization or missing from `values`, or does not normalize (not UTF-8), is left
// out: an empty key never matches anything.
std::vector<MatchKey> match_keys(const MatchSpec& spec, const core::FieldValues& values);

// The blocking keys of a fuzzy key's value: a row is compared only with the records whose
// value shares one of them, so a lookup reads a few small blocks of the index, never every
// record. A block is the first three code points of a word (all of a shorter word) of the
// first four words; words are split at white space and between a composite key's parts, and
// one-letter words count only when there is no longer one. "acme holdings" -> "acm", "hol".
std::vector<std::string> fuzzy_blocks(const std::string& value);

// Whether a record's value of fuzzy key `key` is near enough to propose it: the similarity
// (0..1000) when it reaches the key's threshold.
std::optional<int> near_enough(const MatchKey& key, const std::string& record_value);

// What a record found by a fuzzy key holds, and how similar it is to the row's value.
struct Near {
  std::string value;
  int similarity_permille = 0;
};

// What one key found: the ids of the records holding the same key value (an exact key), or a
// value near enough to it (a fuzzy key: `near` says what and how near, by record id).
struct KeyHits {
  MatchKey key;
  std::vector<std::string> records;
  std::map<std::string, Near> near = {};
};

enum class MatchOutcome { kCreate, kLink, kPossibleDuplicate };

struct MatchDecision {
  MatchOutcome outcome = MatchOutcome::kCreate;
  std::vector<std::string> candidates;  // kLink: the one record; kPossibleDuplicate: all found
  std::string reason;                   // kPossibleDuplicate: what matched what, for the steward
};

// Exactly one record found by the exact keys (however many keys found it) links to it. More
// than one is ambiguous, and a find by fuzzy keys alone is only a suspicion: both are a
// possible_duplicate for the steward, never a silent merge. Nothing found creates.
// Candidates come out sorted, so the decision does not depend on the order of `hits`.
MatchDecision decide_match(const std::vector<KeyHits>& hits);

const char* to_string(MatchOutcome o);

}  // namespace mdsync::mapping
