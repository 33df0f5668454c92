// `mdsync verify`: what every side holds, compared with golden field by field through the
// mappings, a chunk of rows at a time (memory follows the chunk, not the table). It finds what
// capture never saw: a TRUNCATE, a write made with triggers disabled, a restore from a backup.
// With `repair`, each difference is handed to the core's repair decisions (or captured again).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "mdsync/config/config.hpp"
#include "mdsync/core/ruleset.hpp"
#include "mdsync/core/value.hpp"

namespace pqxx {
class connection_base;
}

namespace mdsync::store {

struct VerifyOptions {
  std::optional<std::string> entity;  // all entities when empty
  bool repair = false;
  std::size_t chunk_rows = 1000;
  // Asked between chunks: true ends the walk there (what was confirmed stays reported).
  std::function<bool()> stop_requested = {};
};

// One difference, confirmed: a second look, with the record locked, still saw it and no
// captured change or queued write-back in flight explains it.
struct Difference {
  enum class Kind {
    kValue,     // a linked row holds another value than golden (field names which)
    kUnlinked,  // a row takes part on the side, but no record links it
    kMissing,   // a record links a row the side no longer holds (or no longer takes part)
  };
  Kind kind = Kind::kValue;
  std::string entity;
  std::string side;
  std::string row_key;
  std::int64_t golden_id = 0;  // 0: no record
  std::string field;           // kValue: the field; "*record*" for a row of a deleted record
  core::Value side_value;      // kValue: what the side holds, in canonical terms
  core::Value golden_value;    // kValue: golden
  std::string unreadable;      // kValue: why the side's value could not be read, if so
  std::string repair;          // with repair: what was done, or why nothing was
  bool repaired = false;       // with repair: a write-back, conflict or capture now handles it
};
const char* to_string(Difference::Kind kind);  // value, unlinked, missing

struct VerifySummary {
  std::int64_t rows_checked = 0;   // side rows read
  std::int64_t links_checked = 0;  // links whose row was looked for
  std::int64_t differences = 0;
  std::int64_t repaired = 0;          // differences a repair now handles
  std::int64_t conflicts_opened = 0;  // of those, left to a steward
  std::int64_t in_flight = 0;         // seemed to differ, but a capture or write-back explains it
};

// Thrown when verify cannot run as asked (an entity without rules in force); the message is
// for the operator.
class VerifyError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Compares every side of every entity asked for with golden, calling `report` for each
// confirmed difference as it is found. With `options.repair`, the record's second look and
// its repair commit together, and a running engine is woken to send the write-backs.
VerifySummary verify_sides(pqxx::connection_base& control, const config::Config& config,
                           const core::Ruleset& rs, const VerifyOptions& options,
                           const std::function<void(const Difference&)>& report);

}  // namespace mdsync::store
