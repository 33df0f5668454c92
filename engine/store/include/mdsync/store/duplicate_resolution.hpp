// An answer to a `possible_duplicate` or `unauthorized_create` conflict: the row the conflict
// holds is the record SIDE:ROWKEY (or golden id) stands for (a steward's `conflicts resolve ID
// --link`, or the engine when another side's new row matches the held row by an exact key), or
// a new record (`--create`; for an unauthorized_create, created although the side is not in
// the create list). Either way the row is linked and its held values (the values that opened
// the conflict, with the later captures attached to it) are reconciled as the engine reconciles
// a row linked by a match key, in one audited control transaction.
#pragma once

#include <cstdint>
#include <string>

#include "mdsync/config/config.hpp"
#include "mdsync/core/record_state.hpp"
#include "mdsync/core/ruleset.hpp"

namespace pqxx {
class connection_base;
class transaction_base;
}  // namespace pqxx

namespace mdsync::store {

struct DuplicateResolution {
  enum class Kind { kLink, kCreate };
  Kind kind = Kind::kLink;
  std::string target;  // kLink: "SIDE:ROWKEY" of a linked row, or a golden id
  std::string steward;
  std::string note;
};

// Returns the plan as text. Throws StewardError (conflict_queue.hpp) for a request that
// cannot be carried out: unknown conflict or row, another kind of conflict, a record that
// already has a row on the conflict's side, a side that may not create records.
std::string resolve_duplicate(pqxx::connection_base& conn, const config::Config& config,
                              std::int64_t id, const DuplicateResolution& resolution);
// The same inside the caller's transaction, under ruleset `rs` (the engine applying a
// steward's queued action).
std::string resolve_duplicate_in(pqxx::transaction_base& tx, const config::Config& config,
                                 const core::Ruleset& rs, std::int64_t id,
                                 const DuplicateResolution& resolution);

class FieldTransforms;

// The engine's own answer to a held row (a CRM prospect whose create the rules refused, held by
// an unauthorized_create; or a row held by a possible_duplicate) when another side's new row,
// which that side may create, found it as its only candidate by an exact key: record
// `golden_id`, just created from that new row (`state`: as the caller's batch has it), is the
// held row's record. The held row is linked to it (not inserted a second time on its side),
// its held values are reconciled against it as `--link` does, and the conflict is closed with
// an audited resolution under `source` (the new row's change) naming the match (`matched_by`).
// `state` is updated and saved; the caller plans the record's write-backs. Throws if the
// conflict is no longer open or the record already has a row on the held row's side.
struct LinkedRow {
  std::string side, row_key;
};
LinkedRow link_held_row(pqxx::transaction_base& tx, const config::Config& config,
                        const core::Ruleset& rs, const FieldTransforms& transforms,
                        std::int64_t conflict_id, std::int64_t golden_id, core::RecordState& state,
                        const std::string& source, const std::string& matched_by);

}  // namespace mdsync::store
