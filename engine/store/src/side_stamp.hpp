// A trigger side's ownership stamp (mdsync.owner): the control store the side belongs to,
// read inside a side transaction, and the advisory lock that keeps the engine's writes off a
// side while `init --adopt-side` moves it to another store.
#pragma once

#include <optional>
#include <string>

namespace pqxx {
class transaction_base;
}

namespace mdsync::store {

// Held shared by the engine's writing transactions on a side and exclusively by `init
// --adopt-side`, so nothing is written to a side for a store that no longer owns it. Any
// fixed number works: "mdsyncOW".
constexpr long long kOwnerLock = 0x6d6473796e634f57;

// A side's mdsync.owner row: the control store it belongs to.
struct Stamp {
  std::string store_id, control, stamped_at;
};

// The side's stamp; none when the side has no mdsync.owner table or row.
std::optional<Stamp> read_stamp(pqxx::transaction_base& tx);
// The same after waiting for kOwnerLock (shared) in the same statement that asks whether the
// table exists: a writing transaction's two statements before it writes. The stamp is read by
// a statement of its own, whose snapshot is taken after the lock is granted.
std::optional<Stamp> read_stamp_locked(pqxx::transaction_base& tx);

// "store <id>, <control>, stamped <when> UTC", for messages.
std::string describe(const Stamp& s);

}  // namespace mdsync::store
