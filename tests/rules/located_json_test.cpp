#include "mdsync/rules/located_json.hpp"

#include <gtest/gtest.h>

#include <string>

namespace mdsync::rules {
namespace {

JsonNode parse(const std::string& text) {
  return parse_located_json(text, "t.json");
}

// The single diagnostic a broken text gives, as "file:line:col: message".
std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const CheckError& e) {
    EXPECT_EQ(e.diagnostics().size(), 1u);
    return e.diagnostics().front().to_string();
  }
  return "(no error)";
}

void expect_pos(const SourcePos& pos, int line, int column) {
  EXPECT_EQ(pos.line, line);
  EXPECT_EQ(pos.column, column);
}

TEST(LocatedJson, PositionsAcrossLines) {
  const JsonNode root = parse("{\n  \"a\": [1, 2],\n  \"b\": {\"c\": \"x\"}\n}");
  ASSERT_TRUE(root.is_object());
  expect_pos(root.pos, 1, 1);
  ASSERT_EQ(root.members.size(), 2u);
  EXPECT_EQ(root.members[0].key, "a");
  expect_pos(root.members[0].key_pos, 2, 3);
  const JsonNode& a = root.members[0].value;
  ASSERT_TRUE(a.is_array());
  expect_pos(a.pos, 2, 8);
  ASSERT_EQ(a.items.size(), 2u);
  expect_pos(a.items[0].pos, 2, 9);
  expect_pos(a.items[1].pos, 2, 12);
  const JsonNode* b = root.find("b");
  ASSERT_NE(b, nullptr);
  expect_pos(b->pos, 3, 8);
  expect_pos(b->members[0].key_pos, 3, 9);
  expect_pos(b->members[0].value.pos, 3, 14);
  EXPECT_EQ(b->find("c")->text, "x");
  EXPECT_EQ(root.find("zz"), nullptr);
  EXPECT_EQ(a.find("a"), nullptr);  // not an object
}

TEST(LocatedJson, ColumnsCountCodePointsAndTabs) {
  // é and ü are two bytes each, 😀 four; each is one column.
  const JsonNode root = parse("{\"é\": \"ü😀\", \"k\": 1,\t\"t\": true}");
  expect_pos(root.members[1].key_pos, 1, 13);
  expect_pos(root.members[1].value.pos, 1, 18);
  expect_pos(root.members[2].key_pos, 1, 21);
  EXPECT_EQ(root.members[0].key, "é");
  EXPECT_EQ(root.members[0].value.text, "ü😀");
}

TEST(LocatedJson, CrLfLineBreaksAndByteOrderMark) {
  EXPECT_EQ(error_of("{\r\n\"a\": tru\r\n}"),
            "t.json:2:6: expected a value, found 'tru' (the only JSON words are true, false and "
            "null; text goes in double quotes)");
  // The mark is not a column.
  EXPECT_EQ(error_of("\xEF\xBB\xBF{\"a\": x}"),
            "t.json:1:7: expected a value, found 'x' (the only JSON words are true, false and "
            "null; text goes in double quotes)");
}

TEST(LocatedJson, ScalarsKeepTheirText) {
  const JsonNode root = parse(R"([-0.10, 1.5e+10, 0, true, false, null, "s"])");
  ASSERT_EQ(root.items.size(), 7u);
  EXPECT_TRUE(root.items[0].is_number());
  EXPECT_EQ(root.items[0].text, "-0.10");
  EXPECT_EQ(root.items[1].text, "1.5e+10");
  EXPECT_EQ(root.items[2].text, "0");
  EXPECT_TRUE(root.items[3].is_bool());
  EXPECT_EQ(root.items[3].text, "true");
  EXPECT_EQ(root.items[4].text, "false");
  EXPECT_TRUE(root.items[5].is_null());
  EXPECT_TRUE(root.items[6].is_string());
  EXPECT_TRUE(parse("{}").members.empty());
  EXPECT_TRUE(parse(" [ ] ").items.empty());
  EXPECT_EQ(parse("  42 ").text, "42");
  EXPECT_STREQ(JsonNode::kind_name(JsonNode::Kind::kObject), "object");
  EXPECT_STREQ(JsonNode::kind_name(JsonNode::Kind::kBool), "boolean");
}

TEST(LocatedJson, Escapes) {
  EXPECT_EQ(parse(R"("\"\\\/\b\f\n\r\t")").text, "\"\\/\b\f\n\r\t");
  EXPECT_EQ(parse(R"("\u0041\u00e9\u20AC")").text, "A\xC3\xA9\xE2\x82\xAC");
  EXPECT_EQ(parse(R"("\uD83D\uDE00")").text, "\xF0\x9F\x98\x80");
  EXPECT_EQ(parse(R"("a\u0000b")").text, std::string("a\0b", 3));
  // A value after an escape is still located in code points of the source.
  const JsonNode root = parse(R"(["\u00e9", 1])");
  expect_pos(root.items[1].pos, 1, 12);
}

TEST(LocatedJson, NestingLimit) {
  EXPECT_NO_THROW(parse(std::string(256, '[') + std::string(256, ']')));
  EXPECT_EQ(error_of(std::string(257, '[') + std::string(257, ']')),
            "t.json:1:257: nesting is too deep (more than 256 levels of objects and arrays)");
}

TEST(LocatedJson, DiagnosticAndCheckErrorText) {
  Diagnostic d{"rules/a.json", SourcePos{3, 7}, "bad"};
  EXPECT_EQ(d.to_string(), "rules/a.json:3:7: bad");
  EXPECT_EQ((Diagnostic{"", SourcePos{1, 2}, "x"}).to_string(), "1:2: x");
  CheckError e({d, Diagnostic{"b.json", SourcePos{}, "worse"}});
  EXPECT_STREQ(e.what(), "rules/a.json:3:7: bad\nb.json:1:1: worse");
  EXPECT_EQ(e.diagnostics().size(), 2u);
}

struct ErrorCase {
  const char* name;
  std::string text;
  std::string expected;
};

class LocatedJsonErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(LocatedJsonErrors, ReportsPositionAndMessage) {
  EXPECT_EQ(error_of(GetParam().text), GetParam().expected);
}

const char* const kWord =
    " (the only JSON words are true, false and null; text goes in double quotes)";

INSTANTIATE_TEST_SUITE_P(
    All, LocatedJsonErrors,
    ::testing::Values(
        ErrorCase{"Empty", "",
                  "t.json:1:1: the file is empty: expected a JSON value such as { ... }"},
        ErrorCase{"Blank", "  \n   ",
                  "t.json:2:4: the file is empty: expected a JSON value such as { ... }"},
        ErrorCase{"OpenBrace", "{",
                  "t.json:1:2: expected a member name in double quotes, found end of file"},
        ErrorCase{"UnclosedObject", "{\n  \"a\": 1",
                  "t.json:2:9: expected ',' or '}' after object member, found end of file (the "
                  "'{' at line 1, column 1 is never closed)"},
        ErrorCase{"MissingComma", "{\"a\": 1\n \"b\": 2}",
                  "t.json:2:2: expected ',' or '}' after object member, found '\"'"},
        ErrorCase{"TrailingCommaObject", "{\"a\": 1,\n}",
                  "t.json:1:8: trailing comma before '}' is not allowed"},
        ErrorCase{"TrailingCommaArray", "[1,]",
                  "t.json:1:3: trailing comma before ']' is not allowed"},
        ErrorCase{"MissingArrayComma", "[1 2]",
                  "t.json:1:4: expected ',' or ']' after array element, found '2'"},
        ErrorCase{"UnclosedArray", "[1,\n2",
                  "t.json:2:2: expected ',' or ']' after array element, found end of file (the "
                  "'[' at line 1, column 1 is never closed)"},
        ErrorCase{"MissingColon", "{\"a\" 1}", "t.json:1:6: expected ':' after key 'a', found '1'"},
        ErrorCase{"UnquotedKey", "{owner: 1}",
                  "t.json:1:2: expected a member name in double quotes, found 'owner'"},
        ErrorCase{"SingleQuotedKey", "{'a': 1}",
                  "t.json:1:2: member names must be in double quotes (\"), not single quotes"},
        ErrorCase{"SingleQuotedValue", "{\"a\": 'x'}",
                  "t.json:1:7: strings must be in double quotes (\"), not single quotes"},
        ErrorCase{"Comment", "// rules\n{}", "t.json:1:1: comments are not allowed in JSON"},
        ErrorCase{"DuplicateKey", "{\"a\": 1,\n \"a\": 2}",
                  "t.json:2:2: duplicate key 'a' (first at line 1, column 2)"},
        ErrorCase{"TrailingContent", "{\"a\": 1}}",
                  "t.json:1:9: unexpected '}' after the end of the JSON value (a file holds "
                  "exactly one value)"},
        ErrorCase{"SecondValue", "{} {}",
                  "t.json:1:4: unexpected '{' after the end of the JSON value (a file holds "
                  "exactly one value)"},
        ErrorCase{"UnterminatedString", "{\"a\": \"abc",
                  "t.json:1:7: unterminated string: no closing '\"' before the end of the file"},
        ErrorCase{"StringIntoLineBreak", "{\"a\": \"ab\ncd\"}",
                  "t.json:1:7: unterminated string: it runs into a line break (write \\n for a "
                  "line break inside a string)"},
        ErrorCase{"ControlCharacter", "\"a\tb\"",
                  "t.json:1:3: control character U+0009 in string; write it as an escape such "
                  "as \\t or \\u0009"},
        ErrorCase{"InvalidEscape", "[\"ok\", \"\\x41\"]",
                  "t.json:1:9: invalid escape '\\x' in string; the escapes are \\\" \\\\ \\/ \\b "
                  "\\f \\n \\r \\t \\uXXXX"},
        ErrorCase{"ShortUnicodeEscape", "\"\\u12\"",
                  "t.json:1:2: invalid \\u escape: expected 4 hex digits after \\u"},
        ErrorCase{"LoneHighSurrogate", "\"\\uD83D\"",
                  "t.json:1:2: lone surrogate \\uD83D in string: a high surrogate must be "
                  "followed by a low surrogate \\uDC00-\\uDFFF"},
        ErrorCase{"HighSurrogateThenLetter", "\"ab\\uD83Dx\"",
                  "t.json:1:4: lone surrogate \\uD83D in string: a high surrogate must be "
                  "followed by a low surrogate \\uDC00-\\uDFFF"},
        ErrorCase{"HighSurrogateThenBmp", "\"\\uD83D\\u0041\"",
                  "t.json:1:2: lone surrogate \\uD83D in string: a high surrogate must be "
                  "followed by a low surrogate \\uDC00-\\uDFFF"},
        ErrorCase{"LoneLowSurrogate", "\"\\uDE00\"",
                  "t.json:1:2: lone surrogate \\uDE00 in string: a low surrogate must follow a "
                  "high surrogate \\uD800-\\uDBFF"},
        ErrorCase{"InvalidUtf8", "\"a\xFF\"",
                  "t.json:1:3: invalid UTF-8 byte 0xFF in string (save the file as UTF-8)"},
        ErrorCase{"OverlongUtf8", "\"\xC0\xAF\"",
                  "t.json:1:2: invalid UTF-8 byte 0xC0 in string (save the file as UTF-8)"},
        ErrorCase{"EncodedSurrogate", "\"\xED\xA0\x80\"",
                  "t.json:1:2: invalid UTF-8 byte 0xED in string (save the file as UTF-8)"},
        ErrorCase{"TruncatedUtf8", "\"\xE2\x82\"",
                  "t.json:1:2: invalid UTF-8 byte 0xE2 in string (save the file as UTF-8)"},
        ErrorCase{"InvalidUtf8OutsideString", "[\xFF]",
                  "t.json:1:2: expected a value, found invalid UTF-8 byte 0xFF (save the file "
                  "as UTF-8)"},
        ErrorCase{"NonAsciiOutsideString", "[1, é]", "t.json:1:5: expected a value, found 'é'"},
        ErrorCase{"LeadingZero", "[01]",
                  "t.json:1:2: invalid number: leading zeros are not allowed (write 7, not 07)"},
        ErrorCase{"LoneMinus", "[-]", "t.json:1:2: invalid number: expected a digit after '-'"},
        ErrorCase{"DotWithoutDigits", "[1.]",
                  "t.json:1:4: invalid number: expected a digit after '.'"},
        ErrorCase{"EmptyExponent", "[1e+]",
                  "t.json:1:5: invalid number: expected a digit in the exponent"},
        ErrorCase{"LeadingDot", "[.5]",
                  "t.json:1:2: invalid number: a JSON number starts with '-' or a digit (write "
                  "0.5, not .5)"},
        ErrorCase{"Hex", "[0x10]", "t.json:1:2: invalid number '0x10'"},
        ErrorCase{"TwoDots", "[1.2.3]", "t.json:1:2: invalid number '1.2.3'"},
        ErrorCase{"CapitalTrue", "[True]",
                  std::string("t.json:1:2: expected a value, found 'True'") + kWord},
        ErrorCase{"ShortNull", "[nul]",
                  std::string("t.json:1:2: expected a value, found 'nul'") + kWord},
        ErrorCase{"LongTrue", "[truex]",
                  std::string("t.json:1:2: expected a value, found 'truex'") + kWord},
        ErrorCase{"CloseWithoutValue", "{\"a\": }", "t.json:1:7: expected a value, found '}'"}),
    [](const ::testing::TestParamInfo<ErrorCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace mdsync::rules
