#include "mdsync/store/pg_arrays.hpp"

namespace mdsync::store {

std::string pg_text_array(const std::vector<std::string>& items) {
  std::string s = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    s += i ? ",\"" : "\"";
    for (char c : items[i]) {
      if (c == '"' || c == '\\') s += '\\';
      s += c;
    }
    s += '"';
  }
  return s + "}";
}

std::string pg_bigint_array(const std::vector<std::int64_t>& items) {
  std::string s = "{";
  for (std::size_t i = 0; i < items.size(); ++i) s += (i ? "," : "") + std::to_string(items[i]);
  return s + "}";
}

}  // namespace mdsync::store
