#include "mdsync/rules/located_json.hpp"

#include <cstdint>
#include <map>

#include "mdsync/core/utf8.hpp"

namespace mdsync::rules {

std::string Diagnostic::to_string() const {
  std::string out;
  if (!file.empty()) out = file + ":";
  out += std::to_string(pos.line) + ":" + std::to_string(pos.column) + ": " + message;
  return out;
}

namespace {

std::string join_diagnostics(const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  for (const Diagnostic& d : diagnostics) {
    if (!out.empty()) out += '\n';
    out += d.to_string();
  }
  return out;
}

}  // namespace

CheckError::CheckError(std::vector<Diagnostic> diagnostics)
    : std::runtime_error(join_diagnostics(diagnostics)), diagnostics_(std::move(diagnostics)) {}

const JsonNode* JsonNode::find(std::string_view key) const {
  if (kind != Kind::kObject) return nullptr;
  for (const Member& m : members)
    if (m.key == key) return &m.value;
  return nullptr;
}

const char* JsonNode::kind_name(Kind k) {
  switch (k) {
    case Kind::kNull:
      return "null";
    case Kind::kBool:
      return "boolean";
    case Kind::kNumber:
      return "number";
    case Kind::kString:
      return "string";
    case Kind::kArray:
      return "array";
    case Kind::kObject:
      return "object";
  }
  return "?";
}

namespace {

constexpr int kMaxDepth = 256;

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_word_char(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string hex(std::uint32_t value, int digits) {
  static const char* const kDigits = "0123456789ABCDEF";
  std::string out(static_cast<std::size_t>(digits), '0');
  for (int k = digits - 1; k >= 0; --k, value >>= 4)
    out[static_cast<std::size_t>(k)] = kDigits[value & 0xF];
  return out;
}

// Length of the well-formed UTF-8 sequence starting at `off` (no overlongs, no surrogates,
// nothing above U+10FFFF), or 0 if the bytes there are not one.
std::size_t utf8_length(std::string_view s, std::size_t off) {
  const auto byte = [&](std::size_t k) -> unsigned {
    return off + k < s.size() ? static_cast<unsigned char>(s[off + k]) : 0u;
  };
  const auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
    const unsigned b = byte(k);
    return off + k < s.size() && b >= lo && b <= hi;
  };
  const unsigned b0 = byte(0);
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    const unsigned lo = b0 == 0xE0 ? 0xA0 : 0x80;
    const unsigned hi = b0 == 0xED ? 0x9F : 0xBF;
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    const unsigned lo = b0 == 0xF0 ? 0x90 : 0x80;
    const unsigned hi = b0 == 0xF4 ? 0x8F : 0xBF;
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

class Parser {
 public:
  Parser(std::string_view text, const std::string& file) : text_(text), file_(file) {
    if (text_.substr(0, 3) == "\xEF\xBB\xBF") text_.remove_prefix(3);  // a UTF-8 byte order mark
  }

  JsonNode parse_document() {
    skip_ws();
    if (at_end()) fail_at(i_, "the file is empty: expected a JSON value such as { ... }");
    JsonNode root = parse_value(0);
    skip_ws();
    if (!at_end())
      fail_at(i_, "unexpected " + found(i_) +
                      " after the end of the JSON value (a file holds exactly one value)");
    return root;
  }

 private:
  bool at_end() const { return i_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[i_]; }

  // The position of byte `off`. Positions are mostly asked for in increasing order, so a
  // cursor is advanced from the last answer instead of rescanning from the start.
  SourcePos pos_at(std::size_t off) {
    if (off < cursor_off_) {
      cursor_off_ = 0;
      cursor_pos_ = SourcePos{};
    }
    for (; cursor_off_ < off && cursor_off_ < text_.size(); ++cursor_off_) {
      const auto c = static_cast<unsigned char>(text_[cursor_off_]);
      if (c == '\n') {
        ++cursor_pos_.line;
        cursor_pos_.column = 1;
      } else if ((c & 0xC0) != 0x80) {
        ++cursor_pos_.column;
      }
    }
    return cursor_pos_;
  }

  std::string where(std::size_t off) {
    const SourcePos p = pos_at(off);
    return "line " + std::to_string(p.line) + ", column " + std::to_string(p.column);
  }

  [[noreturn]] void fail_at(std::size_t off, const std::string& message) {
    throw CheckError({Diagnostic{file_, pos_at(off), message}});
  }

  // How to name what stands at `off` in a message: "end of file", "'}'", "'True'", ...
  std::string found(std::size_t off) const {
    if (off >= text_.size()) return "end of file";
    const auto c = static_cast<unsigned char>(text_[off]);
    if (is_word_char(static_cast<char>(c))) {
      std::size_t end = off;
      while (end < text_.size() && is_word_char(text_[end])) ++end;
      return "'" + std::string(text_.substr(off, end - off)) + "'";
    }
    if (c >= 0x21 && c <= 0x7E) return "'" + std::string(1, static_cast<char>(c)) + "'";
    if (c < 0x80) return "control character U+" + hex(c, 4);
    const std::size_t len = utf8_length(text_, off);
    if (len == 0) return "invalid UTF-8 byte 0x" + hex(c, 2) + " (save the file as UTF-8)";
    return "'" + std::string(text_.substr(off, len)) + "'";
  }

  void skip_ws() {
    while (!at_end()) {
      const char c = text_[i_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++i_;
    }
  }

  JsonNode parse_value(int depth) {
    JsonNode node;
    const std::size_t start = i_;
    node.pos = pos_at(start);
    const char c = peek();
    if (c == '{' || c == '[') {
      if (depth >= kMaxDepth)
        fail_at(start, "nesting is too deep (more than " + std::to_string(kMaxDepth) +
                           " levels of objects and arrays)");
      if (c == '{') {
        node.kind = JsonNode::Kind::kObject;
        parse_object(node, depth + 1);
      } else {
        node.kind = JsonNode::Kind::kArray;
        parse_array(node, depth + 1);
      }
    } else if (c == '"') {
      node.kind = JsonNode::Kind::kString;
      node.text = parse_string();
    } else if (c == '-' || is_digit(c)) {
      node.kind = JsonNode::Kind::kNumber;
      node.text = parse_number();
    } else if (is_word_char(c)) {
      std::size_t end = i_;
      while (end < text_.size() && is_word_char(text_[end])) ++end;
      const std::string_view word = text_.substr(i_, end - i_);
      if (word == "true" || word == "false") {
        node.kind = JsonNode::Kind::kBool;
        node.text = std::string(word);
      } else if (word == "null") {
        node.kind = JsonNode::Kind::kNull;
      } else {
        fail_at(start, "expected a value, found " + found(start) +
                           " (the only JSON words are true, false and null; text goes in "
                           "double quotes)");
      }
      i_ = end;
    } else if (c == '\'') {
      fail_at(start, "strings must be in double quotes (\"), not single quotes");
    } else if (c == '/') {
      fail_at(start, "comments are not allowed in JSON");
    } else if (c == '.' || c == '+') {
      fail_at(start,
              "invalid number: a JSON number starts with '-' or a digit (write 0.5, not .5)");
    } else {
      fail_at(start, "expected a value, found " + found(start));
    }
    return node;
  }

  void parse_object(JsonNode& node, int depth) {
    const std::size_t open = i_++;
    std::map<std::string, std::size_t> seen;  // key -> offset of its first occurrence
    skip_ws();
    if (peek() == '}') {
      ++i_;
      return;
    }
    std::size_t comma = std::string_view::npos;
    for (;;) {
      if (peek() != '"') {
        if (peek() == '}' && comma != std::string_view::npos)
          fail_at(comma, "trailing comma before '}' is not allowed");
        if (peek() == '\'')
          fail_at(i_, "member names must be in double quotes (\"), not single quotes");
        fail_at(i_, "expected a member name in double quotes, found " + found(i_));
      }
      const std::size_t key_off = i_;
      JsonNode::Member member;
      member.key = parse_string();
      member.key_pos = pos_at(key_off);
      auto [it, inserted] = seen.emplace(member.key, key_off);
      if (!inserted)
        fail_at(key_off, "duplicate key '" + member.key + "' (first at " + where(it->second) + ")");
      skip_ws();
      if (peek() != ':')
        fail_at(i_, "expected ':' after key '" + member.key + "', found " + found(i_));
      ++i_;
      skip_ws();
      member.value = parse_value(depth);
      node.members.push_back(std::move(member));
      skip_ws();
      if (peek() == ',') {
        comma = i_++;
        skip_ws();
        continue;
      }
      if (peek() == '}') {
        ++i_;
        return;
      }
      std::string message = "expected ',' or '}' after object member, found " + found(i_);
      if (at_end()) message += " (the '{' at " + where(open) + " is never closed)";
      fail_at(i_, message);
    }
  }

  void parse_array(JsonNode& node, int depth) {
    const std::size_t open = i_++;
    skip_ws();
    if (peek() == ']') {
      ++i_;
      return;
    }
    for (;;) {
      node.items.push_back(parse_value(depth));
      skip_ws();
      if (peek() == ',') {
        const std::size_t comma = i_++;
        skip_ws();
        if (peek() == ']') fail_at(comma, "trailing comma before ']' is not allowed");
        continue;
      }
      if (peek() == ']') {
        ++i_;
        return;
      }
      std::string message = "expected ',' or ']' after array element, found " + found(i_);
      if (at_end()) message += " (the '[' at " + where(open) + " is never closed)";
      fail_at(i_, message);
    }
  }

  // Four hex digits at i_ (after "\u"); advances past them.
  std::uint32_t read_hex4(std::size_t escape_off) {
    std::uint32_t value = 0;
    for (int k = 0; k < 4; ++k) {
      const int h = at_end() ? -1 : hex_value(text_[i_]);
      if (h < 0) fail_at(escape_off, "invalid \\u escape: expected 4 hex digits after \\u");
      value = value * 16 + static_cast<std::uint32_t>(h);
      ++i_;
    }
    return value;
  }

  std::string parse_string() {
    const std::size_t open = i_++;
    std::string out;
    for (;;) {
      if (at_end())
        fail_at(open, "unterminated string: no closing '\"' before the end of the file");
      const auto c = static_cast<unsigned char>(text_[i_]);
      if (c == '"') {
        ++i_;
        return out;
      }
      if (c == '\\') {
        parse_escape(open, out);
      } else if (c == '\n' || c == '\r') {
        fail_at(open,
                "unterminated string: it runs into a line break (write \\n for a line break "
                "inside a string)");
      } else if (c < 0x20) {
        fail_at(i_, "control character U+" + hex(c, 4) +
                        " in string; write it as an escape such as \\t or \\u" + hex(c, 4));
      } else if (c < 0x80) {
        out += static_cast<char>(c);
        ++i_;
      } else {
        const std::size_t len = utf8_length(text_, i_);
        if (len == 0)
          fail_at(i_, "invalid UTF-8 byte 0x" + hex(c, 2) + " in string (save the file as UTF-8)");
        out.append(text_.substr(i_, len));
        i_ += len;
      }
    }
  }

  void parse_escape(std::size_t open, std::string& out) {
    const std::size_t escape = i_++;
    if (at_end()) fail_at(open, "unterminated string: no closing '\"' before the end of the file");
    const char e = text_[i_++];
    switch (e) {
      case '"':
        out += '"';
        return;
      case '\\':
        out += '\\';
        return;
      case '/':
        out += '/';
        return;
      case 'b':
        out += '\b';
        return;
      case 'f':
        out += '\f';
        return;
      case 'n':
        out += '\n';
        return;
      case 'r':
        out += '\r';
        return;
      case 't':
        out += '\t';
        return;
      case 'u':
        break;
      default:
        fail_at(escape, std::string("invalid escape ") +
                            (e > 0x20 && e < 0x7F ? "'\\" + std::string(1, e) + "' " : "") +
                            "in string; the escapes are \\\" \\\\ \\/ \\b \\f \\n \\r \\t "
                            "\\uXXXX");
    }
    std::uint32_t cp = read_hex4(escape);
    if (cp >= 0xDC00 && cp <= 0xDFFF)
      fail_at(escape,
              "lone surrogate \\u" + hex(cp, 4) +
                  " in string: a low surrogate must follow a high surrogate \\uD800-\\uDBFF");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (text_.substr(i_, 2) != "\\u")
        fail_at(escape, "lone surrogate \\u" + hex(cp, 4) +
                            " in string: a high surrogate must be followed by a low surrogate "
                            "\\uDC00-\\uDFFF");
      const std::size_t second = i_;
      i_ += 2;
      const std::uint32_t low = read_hex4(second);
      if (low < 0xDC00 || low > 0xDFFF)
        fail_at(escape, "lone surrogate \\u" + hex(cp, 4) +
                            " in string: a high surrogate must be followed by a low surrogate "
                            "\\uDC00-\\uDFFF");
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    core::append_utf8(out, cp);
  }

  std::string parse_number() {
    const std::size_t start = i_;
    if (peek() == '-') {
      ++i_;
      if (!is_digit(peek())) fail_at(start, "invalid number: expected a digit after '-'");
    }
    if (peek() == '0') {
      ++i_;
      if (is_digit(peek()))
        fail_at(start, "invalid number: leading zeros are not allowed (write 7, not 07)");
    } else {
      while (is_digit(peek())) ++i_;
    }
    if (peek() == '.') {
      ++i_;
      if (!is_digit(peek())) fail_at(i_, "invalid number: expected a digit after '.'");
      while (is_digit(peek())) ++i_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++i_;
      if (peek() == '+' || peek() == '-') ++i_;
      if (!is_digit(peek())) fail_at(i_, "invalid number: expected a digit in the exponent");
      while (is_digit(peek())) ++i_;
    }
    if (is_word_char(peek()) || peek() == '.') {
      std::size_t end = i_;
      while (end < text_.size() && (is_word_char(text_[end]) || text_[end] == '.')) ++end;
      fail_at(start, "invalid number '" + std::string(text_.substr(start, end - start)) + "'");
    }
    return std::string(text_.substr(start, i_ - start));
  }

  std::string_view text_;
  const std::string& file_;
  std::size_t i_ = 0;
  std::size_t cursor_off_ = 0;
  SourcePos cursor_pos_;
};

}  // namespace

JsonNode parse_located_json(std::string_view text, const std::string& file) {
  return Parser(text, file).parse_document();
}

}  // namespace mdsync::rules
