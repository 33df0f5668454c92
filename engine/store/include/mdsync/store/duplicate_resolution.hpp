// A steward's answer to a `possible_duplicate` or `unauthorized_create` conflict: the row the
// conflict holds is the record SIDE:ROWKEY (or golden id) stands for (`conflicts resolve ID
// --link`), or a new record (`--create`; for an unauthorized_create, created although the
// side is not in the create list). Either way the row is linked and its held values (the values
// that opened the conflict, with the later captures attached to it) are reconciled as the engine
// reconciles a row linked by a match key, in one audited control transaction.
#pragma once

#include <cstdint>
#include <string>

#include "mdsync/config/config.hpp"
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

}  // namespace mdsync::store
