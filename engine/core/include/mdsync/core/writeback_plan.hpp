// What must be written to each side so that it holds the golden record: computed from the
// golden values, each side's base and the write-backs already queued, so that a write is
// conditional on the side still holding the base (guarantee 4), nothing is written twice, and
// a queued write the record no longer wants (an insert into a side whose record was deleted
// meanwhile, an update of a row that is gone) is withdrawn rather than applied.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
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
// "insert", "update", "delete" (as the outbox stores them); nullopt for any other word.
std::optional<RowWrite::Kind> row_write_kind_from_string(std::string_view word);

// A write-back queued earlier and not yet confirmed by its side.
struct PendingWrite {
  std::int64_t id = 0;  // the outbox id; queued writes of a record apply in id order
  std::string side;
  RowWrite::Kind kind = RowWrite::Kind::kUpdate;
  FieldValues values;
  // What an update expects the row to hold before it applies (it is conditional on it).
  FieldValues expected;
  // Already withdrawn (its side has yet to confirm): it will not apply, so neither will what
  // was planned on top of it.
  bool withdrawn = false;
};

struct WritebackPlan {
  std::vector<RowWrite> writes;      // to queue, in `sides` order
  std::vector<std::int64_t> cancel;  // pending writes to withdraw, ascending
};

// `pending`: the record's queued writes, any order. A pending write is withdrawn when the
// record no longer wants it: every insert and update once the record is deleted; an update or
// a delete of a side with no linked row (its row is gone: the record is inserted again there
// instead); an insert into a side that has a linked row again (matched, restored); a delete of
// a record that is no longer deleted (a vetoed delete); anything to a detached side. Pending
// inserts and updates that stay count as what the side will hold, so the same values are not
// queued twice and a new update expects what they will have written. Units held by an open
// conflict are not written (an insert leaves out a unit held by an invalid_value conflict
// opened for its side: a value the side cannot hold; it gets the unit once the steward
// decides). A field a side has no column for (EntityRules::unmapped) is never written there.
// Sides are visited in `sides` order, so the result is deterministic.
WritebackPlan plan_writebacks(const EntityRules& rules, const RecordState& state,
                              const std::vector<std::string>& sides,
                              const std::vector<PendingWrite>& pending);

}  // namespace mdsync::core
