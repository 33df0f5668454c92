#include "side_stamp.hpp"

#include <pqxx/pqxx>

namespace mdsync::store {

std::optional<Stamp> read_stamp(pqxx::transaction_base& tx) {
  if (!tx.exec1("SELECT to_regclass('mdsync.owner') IS NOT NULL")[0].as<bool>())
    return std::nullopt;
  const pqxx::result r = tx.exec(
      "SELECT store_id::text, control,"
      " to_char(stamped_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC'"
      " FROM mdsync.owner");
  if (r.empty()) return std::nullopt;
  return Stamp{r[0][0].as<std::string>(), r[0][1].as<std::string>(), r[0][2].as<std::string>()};
}

std::string describe(const Stamp& s) {
  return "store " + s.store_id + ", " + s.control + ", stamped " + s.stamped_at;
}

}  // namespace mdsync::store
