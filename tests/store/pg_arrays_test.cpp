// PostgreSQL array literals (engine/store/src/pg_arrays.*): every element double-quoted with only
// '"' and '\' escaped, NULL unquoted, checked against the plain definition of that literal.
#include "mdsync/store/pg_arrays.hpp"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace mdsync::store {
namespace {

std::string quoted(const std::string& item) {
  std::string s = "\"";
  for (char c : item) {
    if (c == '"' || c == '\\') s += '\\';
    s += c;
  }
  return s + "\"";
}

RC_GTEST_PROP(PgArrays, TextArrayQuotesEveryElement, (const std::vector<std::string>& items)) {
  std::string expected = "{";
  for (std::size_t i = 0; i < items.size(); ++i) expected += (i ? "," : "") + quoted(items[i]);
  RC_ASSERT(pg_text_array(items) == expected + "}");
}

RC_GTEST_PROP(PgArrays, NullableTextArrayKeepsNullApart, ()) {
  const auto items = *rc::gen::container<std::vector<std::optional<std::string>>>(rc::gen::map(
      rc::gen::maybe(rc::gen::arbitrary<std::string>()),
      [](rc::Maybe<std::string> m) { return m ? std::optional<std::string>(*m) : std::nullopt; }));
  std::string expected = "{";
  for (std::size_t i = 0; i < items.size(); ++i)
    expected += (i ? "," : "") + (items[i] ? quoted(*items[i]) : std::string("NULL"));
  RC_ASSERT(pg_nullable_text_array(items) == expected + "}");
}

TEST(PgArrays, EscapesQuotesAndBackslashesOnly) {
  EXPECT_EQ(pg_text_array({"a\"b\\c", "", "NULL", "{x, y}"}), R"({"a\"b\\c","","NULL","{x, y}"})");
  EXPECT_EQ(pg_nullable_text_array({std::nullopt, std::string("NULL")}), R"({NULL,"NULL"})");
  EXPECT_EQ(pg_bigint_array({-1, 0, 9007199254740993}), "{-1,0,9007199254740993}");
}

}  // namespace
}  // namespace mdsync::store
