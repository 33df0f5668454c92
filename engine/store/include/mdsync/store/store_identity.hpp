// Who a control store is, to the sides it serves: its id (stamped on each side by `mdsync
// init`, checked by the engine on every side connection) and, per side, the secret the
// engine's side sessions carry in `mdsync.origin` so the capture trigger skips their writes
// (no echo) while any other session's writes are captured whatever it sets.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace pqxx {
class connection_base;
}

namespace mdsync::store {

struct StoreIdentity {
  std::string store_id;  // a uuid
  // "host=... port=... dbname=..." of the control store, without credentials: shown on a
  // side that belongs to it, so a DBA can tell which deployment that is.
  std::string description;
};

// What the engine proves itself with on one side.
struct SideKey {
  std::string secret;         // hex(sha256(store secret || ':' || side)): set as mdsync.origin
  std::string secret_sha256;  // hex(sha256(secret)): all the side's trigger holds
};

// Reads the store's identity (migration 0005); throws telling to run `mdsync init` when the
// store has none yet.
StoreIdentity load_store_identity(pqxx::connection_base& control);

// Every side's key, derived in SQL on the control store (the store secret never leaves it
// whole).
std::map<std::string, SideKey> load_side_keys(pqxx::connection_base& control,
                                              const std::vector<std::string>& sides);

}  // namespace mdsync::store
