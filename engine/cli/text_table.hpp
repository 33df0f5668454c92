// Plain aligned text for people at a terminal: columns as wide as their widest cell (counted
// in code points, so names with accents line up), two spaces apart, the last column unpadded.
// The CLI's lists print through it; --json output never does.
#pragma once

#include <map>
#include <ostream>
#include <string>
#include <vector>

namespace mdsync::cli {

class TextTable {
 public:
  explicit TextTable(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  // A line printed under the row added last, indented, outside the columns.
  void note(std::string line) { notes_[rows_.size() - 1] = std::move(line); }
  void print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
  std::map<std::size_t, std::string> notes_;
};

// A cell from text a user or a side wrote: control characters (a newline in a name) become
// spaces, and text longer than `max` code points is cut with an ellipsis.
std::string cell_text(const std::string& text, std::size_t max = 40);

}  // namespace mdsync::cli
