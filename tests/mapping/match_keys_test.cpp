// Match keys from canonical values, and the link/create/ask decision from what they find.
#include "mdsync/mapping/match_keys.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mdsync::mapping {
namespace {

MatchSpec customer_spec() {
  MatchSpec spec;
  spec.keys.push_back({{"website"}, {Normalizer::kUrlHost}});
  spec.keys.push_back({{"customer_no"}, {}});
  spec.keys.push_back({{"country", "vat"}, {Normalizer::kTrim}});
  spec.fuzzy.push_back({{"name"}, {Normalizer::kCompanyName}});
  return spec;
}

std::vector<std::string> keys_text(const std::vector<MatchKey>& keys) {
  std::vector<std::string> out;
  for (const MatchKey& k : keys) {
    std::string v;
    for (char c : k.value) v += c == '\x1f' ? std::string("|") : std::string(1, c);
    out.push_back(std::string(k.fuzzy ? "~" : "") + k.name + "=" + v);
  }
  return out;
}

TEST(MatchKeys, NormalizedExactAndFuzzyKeys) {
  const core::FieldValues record = {{"website", "HTTPS://WWW.Acme.com/contact"},
                                    {"customer_no", "C-0042"},
                                    {"country", "BE "},
                                    {"vat", " BE0123456789"},
                                    {"name", "ACME Inc."}};
  EXPECT_EQ(keys_text(match_keys(customer_spec(), record)),
            (std::vector<std::string>{"website=acme.com", "customer_no=C-0042",
                                      "country+vat=BE|BE0123456789", "~name=acme"}));
}

TEST(MatchKeys, EmptyAndNullKeysNeverMatch) {
  const core::FieldValues record = {{"website", "   "},  // empty once normalized
                                    {"customer_no", std::nullopt},
                                    {"country", "BE"},  // vat missing: no composite key
                                    {"name", "\xFF"}};  // not UTF-8
  EXPECT_TRUE(match_keys(customer_spec(), record).empty());
  EXPECT_TRUE(match_keys(customer_spec(), {}).empty());
  EXPECT_TRUE(match_keys(MatchSpec{}, {{"website", "acme.com"}}).empty());
}

TEST(MatchKeys, SameCompanyTwoSpellingsSameKeys) {
  const auto a = match_keys(customer_spec(),
                            {{"website", "https://www.acme.com/"}, {"name", "Acme GmbH & Co. KG"}});
  const auto b = match_keys(customer_spec(), {{"website", "acme.com"}, {"name", "ACME gmbh"}});
  EXPECT_EQ(keys_text(a), keys_text(b));
}

KeyHits hit(std::string name, std::string value, bool fuzzy, std::vector<std::string> ids) {
  return KeyHits{MatchKey{std::move(name), std::move(value), fuzzy}, std::move(ids)};
}

TEST(MatchKeys, DecideCreateLinkOrAsk) {
  EXPECT_EQ(decide_match({}).outcome, MatchOutcome::kCreate);
  EXPECT_EQ(decide_match({hit("website", "acme.com", false, {})}).outcome, MatchOutcome::kCreate);

  // Two keys finding the same record: one record, linked.
  const MatchDecision link =
      decide_match({hit("website", "acme.com", false, {"g7"}),
                    hit("customer_no", "C-1", false, {"g7"}), hit("name", "acme", true, {"g9"})});
  EXPECT_EQ(link.outcome, MatchOutcome::kLink);
  EXPECT_EQ(link.candidates, std::vector<std::string>{"g7"});

  const MatchDecision ambiguous = decide_match(
      {hit("website", "acme.com", false, {"g7", "g3"}), hit("customer_no", "C-1", false, {"g8"})});
  EXPECT_EQ(ambiguous.outcome, MatchOutcome::kPossibleDuplicate);
  EXPECT_EQ(ambiguous.candidates, (std::vector<std::string>{"g3", "g7", "g8"}));
  EXPECT_EQ(ambiguous.reason,
            "ambiguous match: key website 'acme.com' finds g3, g7; key customer_no 'C-1' finds g8");

  const MatchDecision fuzzy = decide_match({hit("name", "acme", true, {"g9"}), hit("country+vat",
                                                                                   "BE\x1f"
                                                                                   "BE01",
                                                                                   false, {})});
  EXPECT_EQ(fuzzy.outcome, MatchOutcome::kPossibleDuplicate);
  EXPECT_EQ(fuzzy.candidates, std::vector<std::string>{"g9"});
  EXPECT_EQ(fuzzy.reason, "only a fuzzy match: fuzzy key name 'acme' finds g9");
  EXPECT_STREQ(to_string(fuzzy.outcome), "possible_duplicate");
}

TEST(MatchKeys, DecisionDoesNotDependOnHitOrder) {
  const std::vector<KeyHits> hits = {hit("website", "a.com", false, {"g2"}),
                                     hit("customer_no", "1", false, {"g1"})};
  const std::vector<KeyHits> reversed(hits.rbegin(), hits.rend());
  EXPECT_EQ(decide_match(hits).candidates, decide_match(reversed).candidates);
  EXPECT_EQ(decide_match(hits).outcome, decide_match(reversed).outcome);
}

}  // namespace
}  // namespace mdsync::mapping
