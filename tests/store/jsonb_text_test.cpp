// The JSON text of value maps and provenance (engine/store/src/jsonb_text.*): what it writes
// parses to the same values with nlohmann::json, what nlohmann writes (escaped to ASCII or
// not) reads back the same, jsonb's own text form reads, and malformed text is an error that
// says where and what was expected.
#include "jsonb_text.hpp"

#include "mdsync/core/utf8.hpp"
#include "mdsync/store/record_repository.hpp"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mdsync::store {
namespace {

using nlohmann::json;

// UTF-8 text of any code point but NUL (PostgreSQL's text holds none), weighted towards what
// JSON escapes: quotes, backslashes, slashes and control characters.
rc::Gen<std::string> gen_text() {
  return rc::gen::map(
      rc::gen::container<std::vector<std::uint32_t>>(rc::gen::oneOf(
          rc::gen::element<std::uint32_t>('"', '\\', '/', '\n', '\t', '\b', '\f', '\r', 0x1F, 0x7F),
          rc::gen::inRange<std::uint32_t>(0x01, 0x80), rc::gen::inRange<std::uint32_t>(0x80, 0x800),
          rc::gen::inRange<std::uint32_t>(0x800, 0xD800),
          rc::gen::inRange<std::uint32_t>(0xE000, 0x10000),
          rc::gen::inRange<std::uint32_t>(0x10000, 0x110000))),
      [](const std::vector<std::uint32_t>& cps) {
        std::string s;
        for (std::uint32_t cp : cps) core::append_utf8(s, cp);
        return s;
      });
}

rc::Gen<core::FieldValues> gen_values() {
  return rc::gen::container<core::FieldValues>(
      gen_text(), rc::gen::map(rc::gen::maybe(gen_text()), [](rc::Maybe<std::string> m) {
        return m ? core::Value{*m} : core::Value{};
      }));
}

json oracle(const core::FieldValues& values) {
  json j = json::object();
  for (const auto& [field, value] : values) j[field] = value ? json(*value) : json(nullptr);
  return j;
}

RC_GTEST_PROP(JsonbText, ValuesRoundTripAndParseAsTheOracleDoes, ()) {
  const core::FieldValues values = *gen_values();
  const std::string text = values_to_json(values);
  RC_ASSERT(values_from_json(text) == values);
  RC_ASSERT(json::parse(text) == oracle(values));
  // The oracle's text, escaped to ASCII (\uXXXX, surrogate pairs) and not, reads the same.
  RC_ASSERT(values_from_json(oracle(values).dump(-1, ' ', true)) == values);
  RC_ASSERT(values_from_json(oracle(values).dump(2)) == values);
}

RC_GTEST_PROP(JsonbText, ProvenanceRoundTrips, ()) {
  const auto units = *rc::gen::container<std::map<std::string, core::Provenance>>(
      gen_text(), rc::gen::build<core::Provenance>(
                      rc::gen::set(&core::Provenance::side, gen_text()),
                      rc::gen::set(&core::Provenance::steward, gen_text()),
                      rc::gen::set(&core::Provenance::time_us, rc::gen::arbitrary<std::int64_t>()),
                      rc::gen::set(&core::Provenance::seeded, rc::gen::arbitrary<bool>())));
  const std::string text = provenance_json_text(units);
  const auto back = provenance_from_json_text(text);
  RC_ASSERT(back.size() == units.size());
  for (const auto& [unit, p] : units) {
    const core::Provenance& q = back.at(unit);
    RC_ASSERT(q.side == p.side);
    RC_ASSERT(q.steward == p.steward);
    RC_ASSERT(q.time_us == p.time_us);
    RC_ASSERT(q.seeded == p.seeded);
    // A member holding its default is left out.
    const json o = json::parse(text).at(unit);
    RC_ASSERT(o.contains("side") == !p.side.empty());
    RC_ASSERT(o.contains("steward") == !p.steward.empty());
    RC_ASSERT(o.contains("time_us") == (p.time_us != 0));
    if (p.time_us != 0) RC_ASSERT(o.at("time_us").get<std::int64_t>() == p.time_us);
    RC_ASSERT(o.contains("seeded") == p.seeded);
  }
}

TEST(JsonbText, ProvenanceLeavesDefaultsOut) {
  std::map<std::string, core::Provenance> units;
  units["city"] = core::Provenance{"erp", "", 0};
  units["email"] = core::Provenance{"", "alice", 1700000000000001};
  units["email"].seeded = true;
  units["zip"] = core::Provenance{};
  EXPECT_EQ(provenance_json_text(units),
            R"({"city":{"side":"erp"},"email":{"steward":"alice","time_us":1700000000000001,)"
            R"("seeded":true},"zip":{}})");
  // Written in full (before), it reads the same.
  const auto full = provenance_from_json_text(
      R"({"city": {"side": "erp", "steward": "", "time_us": 0}, "zip": {}})");
  EXPECT_EQ(full.at("city").side, "erp");
  EXPECT_EQ(full.at("city").steward, "");
  EXPECT_EQ(full.at("city").time_us, 0);
  EXPECT_EQ(full.at("zip").side, "");
}

TEST(JsonbText, ReadsJsonbsOwnTextForm) {
  // As PostgreSQL prints jsonb (", " and ": " separators, control characters as \u00XX), and
  // the escapes other writers use.
  EXPECT_EQ(
      values_from_json(
          R"({"a": "x\"y\\z\/", "zip": null, "name": "Caf\u00e9 \ud83d\ude00 é\n\u001f"})"),
      (core::FieldValues{{"a", "x\"y\\z/"}, {"zip", std::nullopt}, {"name", "Café 😀 é\n\x1f"}}));
  EXPECT_EQ(values_from_json("  {}  "), core::FieldValues{});
  const auto prov = provenance_from_json_text(
      R"({"city": {"side": "erp", "steward": "", "time_us": 1700000000000001}, )"
      R"("email": {"side": null, "steward": "alice", "time_us": -5, "seeded": true, "later": [1, {"x": 2.5e3}]}})");
  EXPECT_EQ(prov.at("city").side, "erp");
  EXPECT_EQ(prov.at("city").time_us, 1700000000000001);
  EXPECT_FALSE(prov.at("city").seeded);
  EXPECT_EQ(prov.at("email").side, "");
  EXPECT_EQ(prov.at("email").steward, "alice");
  EXPECT_EQ(prov.at("email").time_us, -5);
  EXPECT_TRUE(prov.at("email").seeded);
}

TEST(JsonbText, WritesEveryControlCharacterEscaped) {
  EXPECT_EQ(values_to_json({{"f", std::string("a\x01\x1f\"\\\b\f\n\r\t\x7f")}}),
            "{\"f\":\"a\\u0001\\u001f\\\"\\\\\\b\\f\\n\\r\\t\x7f\"}");
  EXPECT_EQ(values_to_json({{"f", std::nullopt}, {"g", ""}}), R"({"f":null,"g":""})");
}

std::string error_of(const std::string& text) {
  try {
    values_from_json(text);
  } catch (const JsonTextError& e) {
    return e.what();
  }
  return "no error";
}

TEST(JsonbText, MalformedTextNamesWhereAndWhat) {
  EXPECT_EQ(error_of(R"({"f": 12})"),
            "malformed JSON at offset 6: expected a text or null for field f");
  EXPECT_EQ(error_of(R"({"f": "x"} x)"),
            "malformed JSON at offset 11: expected the end of the text");
  EXPECT_EQ(error_of(R"({"f": "x")"), "malformed JSON at offset 9: expected ',' or '}'");
  EXPECT_EQ(error_of(R"({"f": "x)"), "malformed JSON at offset 8: expected the end of a string");
  EXPECT_EQ(error_of(R"({"f": "\ud83d"})"),
            "malformed JSON at offset 13: expected a low surrogate after a high one");
  EXPECT_EQ(error_of(R"({"f": "\ude00"})"),
            "malformed JSON at offset 13: expected a high surrogate before a low one");
  EXPECT_EQ(
      error_of(R"({"f": "\x"})"),
      "malformed JSON at offset 8: expected an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)");
  EXPECT_EQ(error_of("{\"f\": \"a\nb\"}"),
            "malformed JSON at offset 8: expected no raw control character in a string");
  EXPECT_EQ(error_of("{\"f\": \"\xff\"}"),
            "malformed JSON at offset 9: expected UTF-8 text in a string");
  EXPECT_EQ(error_of("[]"), "malformed JSON at offset 0: expected an object");
  EXPECT_EQ(error_of(""), "malformed JSON at offset 0: expected an object");
  EXPECT_THROW(provenance_from_json_text(R"({"u": {"time_us": 1.5}})"), JsonTextError);
  EXPECT_THROW(provenance_from_json_text(R"({"u": {"time_us": 99999999999999999999}})"),
               JsonTextError);
  EXPECT_THROW(values_to_json({{"f", std::string("\xc3")}}), JsonTextError);
}

}  // namespace
}  // namespace mdsync::store
