// What must be written to each side so that it holds the golden record: computed from the
// golden values and each side's base (plus writes already in flight), so that a write is
// conditional on the side still holding the base (guarantee 4) and nothing is written twice.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "mdsync/core/record_state.hpp"
#include "mdsync/core/ruleset.hpp"

namespace mdsync::core {

struct RowWrite {
  enum class Kind { kInsert, kUpdate, kDelete };
  std::string side;
  Kind kind = Kind::kUpdate;
  FieldValues values;    // kInsert: every field; kUpdate: the fields to set
  FieldValues expected;  // kUpdate: what the side must still hold for those fields
};
const char* to_string(RowWrite::Kind k);

// `in_flight`: per side, values of write-backs already queued but not yet confirmed; a
// side with an entry and no base has an insert in flight. Units held by an open conflict
// are not written. Sides are visited in `sides` order, so the result is deterministic.
std::vector<RowWrite> plan_writebacks(const EntityRules& rules, const RecordState& state,
                                      const std::vector<std::string>& sides,
                                      const std::map<std::string, FieldValues>& in_flight);

}  // namespace mdsync::core
