#include "mdsync/mapping/match_keys.hpp"

#include <algorithm>
#include <set>

#include "mdsync/mapping/similarity.hpp"

namespace mdsync::mapping {

namespace {

std::string shown(const std::string& value) {
  std::string out;
  for (char c : value) out += c == '\x1f' ? std::string(" / ") : std::string(1, c);
  return out;
}

// "key website 'example.com' finds 12, 17"; composite parts are shown separated by " / ". A
// fuzzy key says what each record holds and how near it is: "fuzzy key name 'acme' finds 12
// ('acme holdings' 0.862)".
std::string describe_hit(const KeyHits& h) {
  std::set<std::string> ids(h.records.begin(), h.records.end());
  std::string found;
  for (const std::string& id : ids) {
    found += (found.empty() ? "" : ", ") + id;
    if (auto n = h.near.find(id); n != h.near.end())
      found += " ('" + shown(n->second.value) + "' " +
               permille_text(n->second.similarity_permille) + ")";
  }
  return (h.key.fuzzy ? "fuzzy key " : "key ") + h.key.name + " '" + shown(h.key.value) +
         "' finds " + found;
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
    if (complete)
      out.push_back(
          MatchKey{spec.name(), std::move(key), fuzzy, fuzzy ? spec.threshold_permille : 0});
  }
}

}  // namespace

std::string MatchKeySpec::name() const {
  std::string out;
  for (const std::string& f : fields) out += (out.empty() ? "" : "+") + f;
  return out;
}

bool MatchSpec::reads(std::string_view field) const {
  for (const auto* list : {&keys, &fuzzy})
    for (const MatchKeySpec& k : *list)
      if (std::find(k.fields.begin(), k.fields.end(), field) != k.fields.end()) return true;
  return false;
}

std::vector<MatchKey> match_keys(const MatchSpec& spec, const core::FieldValues& values) {
  std::vector<MatchKey> out;
  add_keys(spec.keys, false, values, out);
  add_keys(spec.fuzzy, true, values, out);
  return out;
}

std::vector<std::string> fuzzy_blocks(const std::string& value) {
  constexpr std::size_t kWords = 4, kBlock = 3;
  std::vector<std::string> words;
  std::string word;
  auto end_word = [&] {
    if (!word.empty() && words.size() < kWords) words.push_back(word);
    word.clear();
  };
  for (char c : value) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\x1f')
      end_word();
    else
      word += c;
  }
  end_word();
  auto code_points = [](const std::string& w) {
    std::size_t n = 0;
    for (char c : w) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    return n;
  };
  const bool longer = std::any_of(words.begin(), words.end(),
                                  [&](const std::string& w) { return code_points(w) > 1; });
  std::vector<std::string> out;
  for (const std::string& w : words) {
    if (longer && code_points(w) <= 1) continue;
    // The first kBlock code points, whole: a continuation byte never starts a block's end.
    std::size_t cut = 0, seen = 0;
    while (cut < w.size()) {
      if ((static_cast<unsigned char>(w[cut]) & 0xC0) != 0x80 && seen++ == kBlock) break;
      ++cut;
    }
    std::string block = w.substr(0, cut);
    if (std::find(out.begin(), out.end(), block) == out.end()) out.push_back(std::move(block));
  }
  return out;
}

std::optional<int> near_enough(const MatchKey& key, const std::string& record_value) {
  const int s = similarity_permille(key.value, record_value);
  if (s < key.threshold_permille) return std::nullopt;
  return s;
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
