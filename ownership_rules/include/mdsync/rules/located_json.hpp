// A JSON reader that remembers where every value and key stands in the source text, so
// that a steward's broken rules or config file gets an error naming line and column.
// Numbers keep their source text, so `"min": 0.10` reaches the core as an exact decimal.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mdsync::rules {

struct SourcePos {
  int line = 1;    // 1-based
  int column = 1;  // 1-based, counted in Unicode code points
};

// A problem in a named source file, at a position. to_string(): "file:line:column: message".
struct Diagnostic {
  std::string file;
  SourcePos pos;
  std::string message;
  std::string to_string() const;
};

// Thrown by readers with every diagnostic they found; what() lists them, one per line.
class CheckError : public std::runtime_error {
 public:
  explicit CheckError(std::vector<Diagnostic> diagnostics);
  const std::vector<Diagnostic>& diagnostics() const { return diagnostics_; }

 private:
  std::vector<Diagnostic> diagnostics_;
};

class JsonNode {
 public:
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  struct Member;

  Kind kind = Kind::kNull;
  SourcePos pos;                // where the value starts
  std::string text;             // kString: decoded UTF-8; kNumber: source text; kBool: true|false
  std::vector<JsonNode> items;  // kArray
  std::vector<Member> members;  // kObject, in source order (duplicate keys are a parse error)

  bool is_object() const { return kind == Kind::kObject; }
  bool is_array() const { return kind == Kind::kArray; }
  bool is_string() const { return kind == Kind::kString; }
  bool is_number() const { return kind == Kind::kNumber; }
  bool is_bool() const { return kind == Kind::kBool; }
  bool is_null() const { return kind == Kind::kNull; }
  const JsonNode* find(std::string_view key) const;  // nullptr if absent or not an object
  static const char* kind_name(Kind k);              // "object", "string", ...
};

struct JsonNode::Member {
  std::string key;
  SourcePos key_pos;
  JsonNode value;
};

// Parses strict JSON (RFC 8259; no comments, no trailing commas, duplicate keys rejected).
// Throws CheckError with one diagnostic naming `file`, line and column of the first error.
JsonNode parse_located_json(std::string_view text, const std::string& file);

}  // namespace mdsync::rules
