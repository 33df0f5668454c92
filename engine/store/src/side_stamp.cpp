#include "side_stamp.hpp"

#include <pqxx/pqxx>

namespace mdsync::store {

namespace {

std::optional<Stamp> owner_row(pqxx::transaction_base& tx) {
  const pqxx::result r = tx.exec(
      "SELECT store_id::text, control,"
      " to_char(stamped_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC'"
      " FROM mdsync.owner");
  if (r.empty()) return std::nullopt;
  return Stamp{r[0][0].as<std::string>(), r[0][1].as<std::string>(), r[0][2].as<std::string>()};
}

}  // namespace

std::optional<Stamp> read_stamp(pqxx::transaction_base& tx) {
  if (!tx.exec1("SELECT to_regclass('mdsync.owner') IS NOT NULL")[0].as<bool>())
    return std::nullopt;
  return owner_row(tx);
}

std::optional<Stamp> read_stamp_locked(pqxx::transaction_base& tx) {
  // The table's existence is a catalog lookup, not read in the statement's snapshot, and
  // adoption changes the row, never the table.
  if (!tx.exec_params1("SELECT pg_advisory_xact_lock_shared($1::bigint),"
                       " to_regclass('mdsync.owner') IS NOT NULL",
                       kOwnerLock)[1]
           .as<bool>())
    return std::nullopt;
  return owner_row(tx);
}

std::string describe(const Stamp& s) {
  return "store " + s.store_id + ", " + s.control + ", stamped " + s.stamped_at;
}

}  // namespace mdsync::store
