// For the config tests: every diagnostic a config text gets, as "file:line:column: message"
// (the file is always mdsync.json); none when it loads.
#pragma once

#include <string>
#include <vector>

#include "mdsync/config/config.hpp"

namespace mdsync::config {

inline std::vector<std::string> errors_of(const std::string& text) {
  try {
    parse_config(text, "mdsync.json");
  } catch (const rules::CheckError& e) {
    std::vector<std::string> out;
    for (const rules::Diagnostic& d : e.diagnostics()) out.push_back(d.to_string());
    return out;
  }
  return {};
}

}  // namespace mdsync::config
