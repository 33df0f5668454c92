// How the trigger side writes a chunk of write-backs to one table: the requests of one group
// (entity, kind, column set) in a few set-based statements inside a savepoint (apply_chunk),
// or one request alone (apply_one), each statement also recording the idempotency keys of
// the rows it wrote. TriggerSide::apply decides what goes into which chunk.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "mdsync/config/config.hpp"
#include "mdsync/store/side.hpp"
#include "side_table_sql.hpp"

namespace pqxx {
class connection_base;
class transaction_base;
}  // namespace pqxx

namespace mdsync::store {

class FieldTransforms;

// Rows per batched statement: large enough that a pass's writes to one table take a handful
// of statements, small enough that one refused row sends only this many to the row-by-row path.
constexpr std::size_t kChunkRows = 1000;

// A request as this side is written: its values in the side's terms (transforms applied,
// lookups resolved to the referenced keys). The request keeps the canonical values and the
// canonical expected base, which the condition of mapped fields is checked against.
struct Prepared {
  const WriteRequest* req = nullptr;
  core::FieldValues side;
};

// Requests of one entity, one kind and one set of columns: they share one statement.
struct WriteGroup {
  const config::SideMapping* mapping = nullptr;
  core::RowWrite::Kind kind = core::RowWrite::Kind::kUpdate;
  std::vector<std::string> fields;   // update: fields to set; insert: fields given; delete: none
  std::vector<std::size_t> members;  // indexes into the requests, in request order
  bool mapped = false;               // some field is not a plain column
  // The mapping uses row-level options (a composite key, a scope, a soft delete, a time zone,
  // delete guards) that only apply_chunk renders, so a refused chunk is redone through it one
  // row at a time rather than through apply_one.
  bool row_options = false;
  // Inserts that bring back a soft-deleted row of the record (its key is known): the row is
  // un-deleted and given the golden values instead of a new row being inserted.
  bool restore = false;
};

// Writes one chunk of a group in a few set-based statements inside a savepoint; fills the
// chunk's results. Throws (the savepoint rolled back, nothing of the chunk written) when the
// side refuses any row of it.
void apply_chunk(pqxx::transaction_base& tx, pqxx::connection_base& c,
                 const config::EntityConfig& entity, const FieldTransforms& transforms,
                 const std::string& side, const WriteGroup& g, const ColumnTypes& types,
                 const std::vector<const Prepared*>& all, const std::vector<WriteResult*>& res);

// Writes one request on its own, as a statement or two in a savepoint: the path of a chunk
// whose batched statement the side refused, so that the refused row fails alone.
void apply_one(pqxx::transaction_base& tx, pqxx::connection_base& c, const config::SideMapping& m,
               const WriteRequest& req, WriteResult& res);

}  // namespace mdsync::store
