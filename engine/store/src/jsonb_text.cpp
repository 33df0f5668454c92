#include "jsonb_text.hpp"

#include <cctype>
#include <charconv>
#include <utility>

#include "mdsync/core/utf8.hpp"
#include "mdsync/store/record_repository.hpp"

namespace mdsync::store {

namespace {

constexpr char kHex[] = "0123456789abcdef";

// The two-character escapes, as {letter after the backslash, character}, read both ways: the
// reader reads them all, the writer writes them for these characters (never needing \/) and
// \u00XX for the other control characters.
constexpr std::pair<char, char> kEscapes[] = {{'"', '"'},  {'\\', '\\'}, {'/', '/'},  {'b', '\b'},
                                              {'f', '\f'}, {'n', '\n'},  {'r', '\r'}, {'t', '\t'}};

// The character `letter` stands for after a backslash, or 0.
char unescaped(char letter) {
  for (const auto& [l, c] : kEscapes)
    if (l == letter) return c;
  return 0;
}

// The letter that stands for `c` after a backslash (the writer asks only for control
// characters, quotes and backslashes), or 0: then it is written as \u00XX.
char escape_letter(char c) {
  for (const auto& [l, ch] : kEscapes)
    if (ch == c) return l;
  return 0;
}

// A reader over one JSON text. Every error names the offset and what was expected there.
class Cursor {
 public:
  explicit Cursor(std::string_view text) : s_(text) {}

  [[noreturn]] void fail(const std::string& expected) const {
    throw JsonTextError("malformed JSON at offset " + std::to_string(i_) + ": expected " +
                        expected);
  }

  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }

  bool at(char c) {
    ws();
    return i_ < s_.size() && s_[i_] == c;
  }

  void expect(char c, const char* what) {
    if (!at(c)) fail(what);
    ++i_;
  }

  bool literal(std::string_view word) {
    ws();
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  bool null() { return literal("null"); }

  std::string string() {
    expect('"', "a string");
    std::string out;
    for (;;) {
      const std::size_t start = i_;
      while (i_ < s_.size() && s_[i_] != '"' && s_[i_] != '\\' &&
             static_cast<unsigned char>(s_[i_]) >= 0x20)
        ++i_;
      out.append(s_.substr(start, i_ - start));
      if (i_ >= s_.size()) fail("the end of a string");
      const char c = s_[i_++];
      if (c == '"') break;
      if (c != '\\') {
        --i_;
        fail("no raw control character in a string");
      }
      if (i_ >= s_.size()) fail("an escape");
      const char letter = s_[i_++];
      if (const char plain = unescaped(letter)) {
        out += plain;
        continue;
      }
      if (letter != 'u') {
        --i_;
        fail("an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)");
      }
      std::uint32_t cp = hex4();
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (s_.substr(i_, 2) != "\\u") fail("a low surrogate after a high one");
        i_ += 2;
        const std::uint32_t low = hex4();
        if (low < 0xDC00 || low > 0xDFFF) fail("a low surrogate after a high one");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
      } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        fail("a high surrogate before a low one");
      }
      core::append_utf8(out, cp);
    }
    if (!core::is_valid_utf8(out)) fail("UTF-8 text in a string");
    return out;
  }

  std::int64_t integer() {
    ws();
    std::int64_t v = 0;
    const char* first = s_.data() + i_;
    const char* last = s_.data() + s_.size();
    const auto [end, ec] = std::from_chars(first, last, v);
    if (ec != std::errc() || end == first) fail("an integer");
    i_ += static_cast<std::size_t>(end - first);
    if (i_ < s_.size() && (s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E')) fail("an integer");
    return v;
  }

  bool boolean() {
    if (literal("true")) return true;
    if (literal("false")) return false;
    fail("true or false");
  }

  // Calls member(key) for each member of an object; member reads the value.
  template <typename Member>
  void object(Member&& member) {
    expect('{', "an object");
    if (at('}')) {
      ++i_;
      return;
    }
    for (;;) {
      std::string key = string();
      expect(':', "':'");
      member(std::move(key));
      if (at(',')) {
        ++i_;
        continue;
      }
      expect('}', "',' or '}'");
      return;
    }
  }

  void skip_value(int depth = 0) {
    if (depth > 64) fail("less nesting");
    ws();
    if (i_ >= s_.size()) fail("a value");
    switch (s_[i_]) {
      case '"':
        string();
        return;
      case '{':
        object([&](std::string) { skip_value(depth + 1); });
        return;
      case '[':
        ++i_;
        if (at(']')) {
          ++i_;
          return;
        }
        for (;;) {
          skip_value(depth + 1);
          if (at(',')) {
            ++i_;
            continue;
          }
          expect(']', "',' or ']'");
          return;
        }
      default:
        if (null() || literal("true") || literal("false")) return;
        number();
    }
  }

  void end() {
    ws();
    if (i_ != s_.size()) fail("the end of the text");
  }

 private:
  std::uint32_t hex4() {
    if (i_ + 4 > s_.size()) fail("four hex digits");
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= static_cast<std::uint32_t>(c - 'A' + 10);
      else
        fail("four hex digits");
    }
    return v;
  }

  void number() {
    const std::size_t start = i_;
    while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '-' ||
                              s_[i_] == '+' || s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E'))
      ++i_;
    if (i_ == start) fail("a value");
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

core::FieldValues values_at(Cursor& in) {
  core::FieldValues out;
  in.object([&](std::string field) {
    if (in.null()) {
      out[std::move(field)] = core::Value{};
      return;
    }
    if (!in.at('"')) in.fail("a text or null for field " + field);
    out[std::move(field)] = core::Value{in.string()};
  });
  return out;
}

std::string string_or_empty(Cursor& in) {
  return in.null() ? std::string() : in.string();
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  if (!core::is_valid_utf8(s)) throw JsonTextError("text that is not UTF-8 cannot be JSON");
  out += '"';
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.substr(start, i - start));
    start = i + 1;
    out += '\\';
    if (const char letter = escape_letter(static_cast<char>(c))) {
      out += letter;
    } else {
      out += "u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  out.append(s.substr(start));
  out += '"';
}

std::string values_to_json(const core::FieldValues& values) {
  std::string out = "{";
  for (const auto& [field, value] : values) {
    if (out.size() > 1) out += ',';
    append_json_string(out, field);
    out += ':';
    if (value)
      append_json_string(out, *value);
    else
      out += "null";
  }
  out += '}';
  return out;
}

core::FieldValues values_from_json(std::string_view text) {
  Cursor in(text);
  core::FieldValues out = values_at(in);
  in.end();
  return out;
}

std::string provenance_json_text(const std::map<std::string, core::Provenance>& prov) {
  // A member that holds its default (no side, no steward, time 0, not seeded) is left out: the
  // reader puts it back. Written in full, provenance was about two thirds of a golden row,
  // which every change of the record rewrites (tools/bench-sync, latency: the golden UPDATE).
  std::string out = "{";
  for (const auto& [unit, p] : prov) {
    if (out.size() > 1) out += ',';
    append_json_string(out, unit);
    out += ":{";
    const std::size_t open = out.size();
    auto member = [&](const char* key) {
      if (out.size() > open) out += ',';
      out += key;
    };
    if (!p.side.empty()) {
      member("\"side\":");
      append_json_string(out, p.side);
    }
    if (!p.steward.empty()) {
      member("\"steward\":");
      append_json_string(out, p.steward);
    }
    if (p.time_us != 0) {
      member("\"time_us\":");
      out += std::to_string(p.time_us);
    }
    if (p.seeded) member("\"seeded\":true");
    out += '}';
  }
  out += '}';
  return out;
}

std::map<std::string, core::Provenance> provenance_from_json_text(std::string_view text) {
  Cursor in(text);
  std::map<std::string, core::Provenance> out;
  in.object([&](std::string unit) {
    core::Provenance p;
    in.object([&](std::string key) {
      if (key == "side")
        p.side = string_or_empty(in);
      else if (key == "steward")
        p.steward = string_or_empty(in);
      else if (key == "time_us")
        p.time_us = in.null() ? 0 : in.integer();
      else if (key == "seeded")
        p.seeded = in.null() ? false : in.boolean();
      else
        in.skip_value();
    });
    out[std::move(unit)] = std::move(p);
  });
  in.end();
  return out;
}

}  // namespace mdsync::store
