#include "mdsync/store/pg_arrays.hpp"

#include <string_view>

namespace mdsync::store {

namespace {

// Every element is double-quoted, so only '"' and '\' need escaping, and an element that
// reads NULL (or is empty, or has braces, commas or spaces) stays the text it is. The text
// between two of them goes in one append: a batch's arrays carry every value it writes.
void append_quoted(std::string& s, std::string_view item) {
  s += '"';
  std::size_t start = 0;
  for (std::size_t at = item.find_first_of("\"\\"); at != std::string_view::npos;
       at = item.find_first_of("\"\\", start)) {
    s.append(item.substr(start, at - start));
    s += '\\';
    s += item[at];
    start = at + 1;
  }
  s.append(item.substr(start));
  s += '"';
}

// What the elements take once quoted, if nothing needs escaping: reserved up front.
template <typename Items, typename SizeOf>
std::size_t literal_size(const Items& items, SizeOf size_of) {
  std::size_t n = 2;
  for (const auto& item : items) n += size_of(item) + 3;
  return n;
}

}  // namespace

std::string pg_text_array(const std::vector<std::string>& items) {
  std::string s;
  s.reserve(literal_size(items, [](const std::string& i) { return i.size(); }));
  s += '{';
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) s += ',';
    append_quoted(s, items[i]);
  }
  s += '}';
  return s;
}

std::string pg_nullable_text_array(const std::vector<std::optional<std::string>>& items) {
  std::string s;
  s.reserve(literal_size(items, [](const auto& i) { return i ? i->size() : 4; }));
  s += '{';
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) s += ',';
    if (items[i])
      append_quoted(s, *items[i]);
    else
      s += "NULL";  // unquoted: the NULL element
  }
  s += '}';
  return s;
}

std::string pg_bigint_array(const std::vector<std::int64_t>& items) {
  std::string s = "{";
  for (std::size_t i = 0; i < items.size(); ++i) s += (i ? "," : "") + std::to_string(items[i]);
  return s + "}";
}

}  // namespace mdsync::store
