#include "text_table.hpp"

#include <algorithm>

#include "mdsync/core/utf8.hpp"

namespace mdsync::cli {

void TextTable::print(std::ostream& out) const {
  std::vector<std::size_t> widths;
  for (const auto& row : rows_)
    for (std::size_t c = 0; c < row.size(); ++c) {
      if (widths.size() <= c) widths.resize(c + 1, 0);
      widths[c] = std::max(widths[c], core::utf8_length(row[c]));
    }
  for (std::size_t r = 0; r < rows_.size(); ++r) {
    const auto& row = rows_[r];
    std::string line;
    for (std::size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line.append(widths[c] - core::utf8_length(row[c]) + 2, ' ');
    }
    out << line << "\n";
    if (const auto n = notes_.find(r); n != notes_.end()) out << "    " << n->second << "\n";
  }
}

std::string cell_text(const std::string& text, std::size_t max) {
  std::string clean = core::utf8_lossy(text);
  for (char& ch : clean)
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = ' ';
  if (core::utf8_length(clean) <= max) return clean;
  return core::utf8_prefix(clean, max - 1) + "\u2026";
}

}  // namespace mdsync::cli
