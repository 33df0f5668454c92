// Match keys: how rows that already exist on several sides are recognized as one record.
// An entity's match config names exact keys (a normalized website host, a customer number)
// and fuzzy keys (a normalized company name); this builds a record's keys from its
// canonical values and decides, from the records each key finds, to link, create or ask.
#pragma once

#include <string>
#include <vector>

#include "mdsync/core/value.hpp"
#include "mdsync/mapping/normalizer.hpp"

namespace mdsync::mapping {

// One key: a field, or several for a composite key (country and VAT number), each value
// normalized in order by `normalize`.
struct MatchKeySpec {
  std::vector<std::string> fields;
  std::vector<Normalizer> normalize = {};
  std::string name() const;  // "website", "country+vat"
};

struct MatchSpec {
  std::vector<MatchKeySpec> keys;   // exact: one record found links to it
  std::vector<MatchKeySpec> fuzzy;  // a find only asks the steward (possible_duplicate)
  bool empty() const { return keys.empty() && fuzzy.empty(); }
};

struct MatchKey {
  std::string name;   // MatchKeySpec::name()
  std::string value;  // the normalized value; a composite key's parts joined by U+001F
  bool fuzzy = false;
};

// A record's keys, exact ones first, in config order. A key whose field is NULL, empty
// after normalization or missing from `values`, or does not normalize (not UTF-8), is left
// out: an empty key never matches anything.
std::vector<MatchKey> match_keys(const MatchSpec& spec, const core::FieldValues& values);

// What one key found: the golden ids of the records holding the same key value.
struct KeyHits {
  MatchKey key;
  std::vector<std::string> records;
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
