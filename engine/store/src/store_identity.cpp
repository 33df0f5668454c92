#include "mdsync/store/store_identity.hpp"

#include <pqxx/pqxx>
#include <stdexcept>

#include "mdsync/store/pg_arrays.hpp"

namespace mdsync::store {

StoreIdentity load_store_identity(pqxx::connection_base& control) {
  pqxx::read_transaction tx(control);
  if (!tx.exec1("SELECT to_regclass('mdsync.store_identity') IS NOT NULL")[0].as<bool>())
    throw std::runtime_error(
        "the control store has no identity yet (it predates this mdsync); run `mdsync init`");
  const pqxx::result r = tx.exec("SELECT store_id::text FROM mdsync.store_identity");
  if (r.size() != 1)
    throw std::runtime_error("mdsync.store_identity on the control store must hold one row");
  StoreIdentity id;
  id.store_id = r[0][0].as<std::string>();
  // What the session is connected to, not the DSN: that has no password to leave out, and names
  // the store the same way whichever DSN reached it.
  const char* host = control.hostname();
  const char* port = control.port();
  const char* db = control.dbname();
  id.description = std::string("host=") + (host && *host ? host : "localhost") +
                   " port=" + (port && *port ? port : "5432") + " dbname=" + (db ? db : "");
  return id;
}

std::map<std::string, SideKey> load_side_keys(pqxx::connection_base& control,
                                              const std::vector<std::string>& sides) {
  std::map<std::string, SideKey> keys;
  pqxx::read_transaction tx(control);
  for (const auto& row : tx.exec_params(
           "SELECT s.side, k.secret, encode(sha256(convert_to(k.secret, 'UTF8')), 'hex')"
           " FROM mdsync.store_identity i, unnest($1::text[]) AS s(side),"
           " LATERAL (SELECT encode(sha256(convert_to(i.secret || ':' || s.side, 'UTF8')),"
           " 'hex') AS secret) k",
           pg_text_array(sides)))
    keys[row[0].as<std::string>()] = SideKey{row[1].as<std::string>(), row[2].as<std::string>()};
  return keys;
}

}  // namespace mdsync::store
