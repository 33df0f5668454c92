// Fuzzy matching by similarity: the Jaro-Winkler measure on known pairs, its symmetry and
// bounds, thresholds (a record is near enough at the threshold and not a thousandth below), the
// blocking keys a fuzzy lookup reads, and how a fuzzy find reads in a decision's reason.
#include "mdsync/mapping/similarity.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "mdsync/mapping/match_keys.hpp"

namespace mdsync::mapping {
namespace {

TEST(Similarity, KnownJaroWinklerValues) {
  // The textbook pairs (Winkler 1990), in thousandths.
  EXPECT_EQ(similarity_permille("martha", "marhta"), 961);
  EXPECT_EQ(similarity_permille("dwayne", "duane"), 840);
  EXPECT_EQ(similarity_permille("dixon", "dicksonx"), 813);
  // No common prefix bonus below 0.7 Jaro.
  EXPECT_EQ(similarity_permille("crate", "trace"), 733);
  // Company names after company_name: a name and the same name with more words.
  EXPECT_EQ(similarity_permille("acme", "acme holdings"), 862);
  EXPECT_EQ(similarity_permille("acme", "acme international"), 844);
  EXPECT_EQ(similarity_permille("abc", "xyz"), 0);
  EXPECT_EQ(similarity_permille("", "acme"), 0);
}

TEST(Similarity, EqualIsOneAndOnlyEqualIsOne) {
  EXPECT_EQ(similarity_permille("acme", "acme"), 1000);
  EXPECT_EQ(similarity_permille("", ""), 1000);
  // Long texts one letter apart would round to 1.000: they are not the same key value.
  const std::string a(2000, 'a');
  std::string b = a;
  b.back() = 'b';
  EXPECT_EQ(similarity_permille(a, b), 999);
}

TEST(Similarity, ComparesCodePointsNotBytes) {
  // "é" is two bytes and one letter: one letter differs, as between "ecole" and "ecolf".
  EXPECT_EQ(similarity_permille("\xC3\xA9"
                                "cole",
                                "ecole"),
            similarity_permille("xcole", "ecole"));
  EXPECT_EQ(similarity_permille("caf\xC3\xA9", "cafe"), similarity_permille("cafx", "cafe"));
  // Malformed bytes never equal a letter, and never crash.
  EXPECT_LT(similarity_permille("caf\xFF", "caf\xC3\xBF"), 1000);
  EXPECT_EQ(similarity_permille("\xE2\x82", "\xE2\x82"), 1000);
}

TEST(Similarity, SymmetricAndBoundedOnRandomText) {
  std::mt19937 rng(20240611);
  std::printf("seed 20240611\n");
  const std::vector<std::string> pieces = {
      "a", "b", "c", "e", " ", "\xC3\xA9", "\xF0\x9F\x98\x80", "acme", "\xFF", "z"};
  std::uniform_int_distribution<std::size_t> piece(0, pieces.size() - 1), len(0, 12);
  for (int i = 0; i < 2000; ++i) {
    std::string a, b;
    for (std::size_t n = len(rng); n > 0; --n) a += pieces[piece(rng)];
    for (std::size_t n = len(rng); n > 0; --n) b += pieces[piece(rng)];
    const int ab = similarity_permille(a, b);
    EXPECT_EQ(ab, similarity_permille(b, a)) << "'" << a << "' '" << b << "'";
    EXPECT_GE(ab, 0);
    EXPECT_LE(ab, 1000);
    EXPECT_EQ(ab == 1000, a == b) << "'" << a << "' '" << b << "'";
  }
}

TEST(Similarity, PermilleText) {
  EXPECT_EQ(permille_text(862), "0.862");
  EXPECT_EQ(permille_text(1000), "1.000");
  EXPECT_EQ(permille_text(5), "0.005");
  EXPECT_EQ(permille_text(0), "0.000");
}

MatchKey fuzzy_name(const std::string& value, int threshold) {
  return MatchKey{"name", value, true, threshold};
}

TEST(Similarity, ThresholdIsInclusiveAndExact) {
  // "Acme" ~ "Acme Holdings, Inc." after company_name: 0.862.
  const std::string acme = *normalize(Normalizer::kCompanyName, "Acme");
  const std::string holdings = *normalize(Normalizer::kCompanyName, "Acme Holdings, Inc.");
  ASSERT_EQ(acme, "acme");
  ASSERT_EQ(holdings, "acme holdings");
  EXPECT_EQ(near_enough(fuzzy_name(acme, 862), holdings), 862);
  EXPECT_EQ(near_enough(fuzzy_name(acme, 850), holdings), 862);
  EXPECT_EQ(near_enough(fuzzy_name(acme, 863), holdings), std::nullopt);
  EXPECT_EQ(near_enough(fuzzy_name(acme, 1000), holdings), std::nullopt);
  EXPECT_EQ(near_enough(fuzzy_name(acme, 1000), "acme"), 1000);
  // The default proposes the pair of the issue, not a name with a long extra word.
  EXPECT_TRUE(near_enough(fuzzy_name(acme, kDefaultFuzzyThresholdPermille), holdings));
  EXPECT_FALSE(near_enough(fuzzy_name(acme, kDefaultFuzzyThresholdPermille), "acme international"));
}

// The table of engine/mapping/MAPPING.md ("Fuzzy keys"), after company_name, so the reference
// cannot drift from the measure.
TEST(Similarity, TheReferenceTable) {
  const auto sim = [](const std::string& a, const std::string& b) {
    return similarity_permille(*normalize(Normalizer::kCompanyName, a),
                               *normalize(Normalizer::kCompanyName, b));
  };
  EXPECT_EQ(sim("ACME GmbH", "Acme Inc."), 1000);
  EXPECT_EQ(sim("Globex Corporation", "Globex"), 1000);
  EXPECT_EQ(sim("Initech Systems Ltd", "Initech"), 893);
  EXPECT_EQ(sim("Acme Holdings, Inc.", "Acme"), 862);
  EXPECT_EQ(sim("Acme International", "Acme"), 844);
  EXPECT_EQ(sim("Deutsche Telekom", "Deutsche Bank"), 879);
}

TEST(Similarity, FuzzyKeysCarryTheirThreshold) {
  MatchSpec spec;
  spec.keys.push_back({{"website"}, {Normalizer::kUrlHost}});
  spec.fuzzy.push_back({{"name"}, {Normalizer::kCompanyName}, 900});
  const auto keys = match_keys(spec, {{"website", "acme.com"}, {"name", "Acme Inc."}});
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].threshold_permille, 0);
  EXPECT_TRUE(keys[1].fuzzy);
  EXPECT_EQ(keys[1].threshold_permille, 900);
}

TEST(Similarity, BlockingKeys) {
  EXPECT_EQ(fuzzy_blocks("acme holdings"), (std::vector<std::string>{"acm", "hol"}));
  EXPECT_EQ(fuzzy_blocks("acme"), (std::vector<std::string>{"acm"}));
  // Near names share a block: "acme" is compared with "acme holdings".
  EXPECT_EQ(fuzzy_blocks("acme")[0], fuzzy_blocks("acme holdings")[0]);
  // Short words whole, one-letter words only when there is nothing longer, four words at most,
  // each block once.
  EXPECT_EQ(fuzzy_blocks("ab c de"), (std::vector<std::string>{"ab", "de"}));
  EXPECT_EQ(fuzzy_blocks("a b"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(fuzzy_blocks("one two three four five"),
            (std::vector<std::string>{"one", "two", "thr", "fou"}));
  EXPECT_EQ(fuzzy_blocks("acme acmeco"), (std::vector<std::string>{"acm"}));
  // Code points, not bytes: a block never ends inside a letter.
  EXPECT_EQ(fuzzy_blocks("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"),
            (std::vector<std::string>{"\xC3\xA9\xC3\xA9\xC3\xA9"}));
  // A composite key's parts are words too.
  EXPECT_EQ(fuzzy_blocks("acme\x1f"
                         "brussels"),
            (std::vector<std::string>{"acm", "bru"}));
  EXPECT_TRUE(fuzzy_blocks("").empty());
  EXPECT_TRUE(fuzzy_blocks("   ").empty());
}

TEST(Similarity, AFuzzyFindSaysHowNear) {
  KeyHits h{fuzzy_name("acme", 850), {"g9"}};
  h.near["g9"] = Near{"acme holdings", 862};
  const MatchDecision d = decide_match({h});
  EXPECT_EQ(d.outcome, MatchOutcome::kPossibleDuplicate);
  EXPECT_EQ(d.reason, "only a fuzzy match: fuzzy key name 'acme' finds g9 ('acme holdings' 0.862)");
}

}  // namespace
}  // namespace mdsync::mapping
