#include "mdsync/store/pg_arrays.hpp"

namespace mdsync::store {

namespace {

// Every element is double-quoted, so only '"' and '\' need escaping, and an element that
// reads NULL (or is empty, or has braces, commas or spaces) stays the text it is.
void append_quoted(std::string& s, const std::string& item) {
  s += '"';
  for (char c : item) {
    if (c == '"' || c == '\\') s += '\\';
    s += c;
  }
  s += '"';
}

}  // namespace

std::string pg_text_array(const std::vector<std::string>& items) {
  std::string s = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) s += ',';
    append_quoted(s, items[i]);
  }
  return s + "}";
}

std::string pg_nullable_text_array(const std::vector<std::optional<std::string>>& items) {
  std::string s = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) s += ',';
    if (items[i])
      append_quoted(s, *items[i]);
    else
      s += "NULL";  // unquoted: the NULL element
  }
  return s + "}";
}

std::string pg_bigint_array(const std::vector<std::int64_t>& items) {
  std::string s = "{";
  for (std::size_t i = 0; i < items.size(); ++i) s += (i ? "," : "") + std::to_string(items[i]);
  return s + "}";
}

}  // namespace mdsync::store
