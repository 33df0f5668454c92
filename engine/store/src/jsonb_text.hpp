// The JSON text of the control store's value maps ({field: text or null}) and provenance,
// written and read without building a document: a batch reads and writes several of them per
// record, and a nlohmann::json tree for each cost about a third of the engine's own CPU in a
// drain (perf, tools/bench-sync). Reading accepts any valid JSON text of those shapes (jsonb's
// output is one); anything else is an error that names what was expected.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>

#include "mdsync/core/record_state.hpp"
#include "mdsync/core/value.hpp"

namespace mdsync::store {

class JsonTextError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Appends `s` as a JSON string (quoted, escaped). Throws JsonTextError if `s` is not UTF-8.
void append_json_string(std::string& out, std::string_view s);

// Value maps: values_to_json and values_from_json (mdsync/store/record_repository.hpp),
// defined in jsonb_text.cpp.

// Provenance: {unit: {"side", "steward", "time_us", "seeded"}}, each member written only when
// it is not its default ("", "", 0, false), and read back as its default when absent (records
// written in full before read alike).
std::string provenance_json_text(const std::map<std::string, core::Provenance>& prov);
std::map<std::string, core::Provenance> provenance_from_json_text(std::string_view text);

}  // namespace mdsync::store
