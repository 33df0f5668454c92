#include "mdsync/mapping/match_keys.hpp"

#include <set>

namespace mdsync::mapping {

namespace {

std::string join(const std::set<std::string>& ids) {
  std::string out;
  for (const std::string& id : ids) out += (out.empty() ? "" : ", ") + id;
  return out;
}

// "website 'example.com' finds 12, 17"; composite parts are shown separated by " / ".
std::string describe_hit(const KeyHits& h) {
  std::string shown;
  for (char c : h.key.value) shown += c == '\x1f' ? std::string(" / ") : std::string(1, c);
  std::set<std::string> ids(h.records.begin(), h.records.end());
  return (h.key.fuzzy ? "fuzzy key " : "key ") + h.key.name + " '" + shown + "' finds " + join(ids);
}

void add_keys(const std::vector<MatchKeySpec>& specs, bool fuzzy, const core::FieldValues& values,
              std::vector<MatchKey>& out) {
  for (const MatchKeySpec& spec : specs) {
    std::string key;
    bool complete = !spec.fields.empty();
    for (std::size_t i = 0; i < spec.fields.size() && complete; ++i) {
      const auto it = values.find(spec.fields[i]);
      if (it == values.end() || !it->second) {
        complete = false;
        break;
      }
      const auto part = normalize(spec.normalize, *it->second);
      if (!part || part->empty()) {
        complete = false;
        break;
      }
      if (i > 0) key += '\x1f';
      key += *part;
    }
    if (complete) out.push_back(MatchKey{spec.name(), std::move(key), fuzzy});
  }
}

}  // namespace

std::string MatchKeySpec::name() const {
  std::string out;
  for (const std::string& f : fields) out += (out.empty() ? "" : "+") + f;
  return out;
}

std::vector<MatchKey> match_keys(const MatchSpec& spec, const core::FieldValues& values) {
  std::vector<MatchKey> out;
  add_keys(spec.keys, false, values, out);
  add_keys(spec.fuzzy, true, values, out);
  return out;
}

MatchDecision decide_match(const std::vector<KeyHits>& hits) {
  std::set<std::string> exact, fuzzy;
  std::string exact_why, fuzzy_why;
  for (const KeyHits& h : hits) {
    if (h.records.empty()) continue;
    std::set<std::string>& into = h.key.fuzzy ? fuzzy : exact;
    into.insert(h.records.begin(), h.records.end());
    std::string& why = h.key.fuzzy ? fuzzy_why : exact_why;
    why += (why.empty() ? "" : "; ") + describe_hit(h);
  }
  MatchDecision d;
  if (exact.size() == 1) {
    d.outcome = MatchOutcome::kLink;
    d.candidates.assign(exact.begin(), exact.end());
  } else if (exact.size() > 1) {
    d.outcome = MatchOutcome::kPossibleDuplicate;
    d.candidates.assign(exact.begin(), exact.end());
    d.reason = "ambiguous match: " + exact_why;
  } else if (!fuzzy.empty()) {
    d.outcome = MatchOutcome::kPossibleDuplicate;
    d.candidates.assign(fuzzy.begin(), fuzzy.end());
    d.reason = "only a fuzzy match: " + fuzzy_why;
  }
  return d;
}

const char* to_string(MatchOutcome o) {
  switch (o) {
    case MatchOutcome::kCreate:
      return "create";
    case MatchOutcome::kLink:
      return "link";
    case MatchOutcome::kPossibleDuplicate:
      return "possible_duplicate";
  }
  return "?";
}

}  // namespace mdsync::mapping
