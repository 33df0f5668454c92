#include "mdsync/store/engine_lease.hpp"

#include <pqxx/pqxx>

namespace mdsync::store {

namespace {

// Any fixed number works, as long as nothing else in the control database uses it: "mdsyncLE".
constexpr long long kEngineLease = 0x6d6473796e634c45;

}  // namespace

void take_engine_lease(pqxx::connection_base& control) {
  pqxx::nontransaction tx(control);
  // pg_advisory_lock waits like any lock, so lock_timeout bounds the wait for a holder that
  // is on its way out; a live holder is still there afterwards.
  tx.exec("SET lock_timeout = '3s'");
  bool taken = false;
  try {
    tx.exec_params("SELECT pg_advisory_lock($1::bigint)", kEngineLease);
    taken = true;
  } catch (const pqxx::sql_error& e) {
    if (e.sqlstate() != "55P03") throw;  // lock_not_available: the lease is held
  }
  tx.exec("RESET lock_timeout");
  if (taken) return;
  // pg_locks shows a bigint key as its high and low 32 bits (objsubid 1).
  const pqxx::result holder = tx.exec_params(
      "SELECT l.pid, coalesce(nullif(a.application_name, ''), 'unknown'),"
      " coalesce(a.client_hostname, host(a.client_addr), CASE WHEN a.pid IS NOT NULL AND"
      "  a.backend_start IS NOT NULL THEN 'local socket' END, 'unknown'),"
      " coalesce(to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC',"
      "  'unknown')"
      " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
      " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
      " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
      " AND l.classid = ($1::bigint >> 32)::oid AND l.objid = ($1::bigint & 4294967295)::oid",
      kEngineLease);
  std::string who = "a session that has just ended";
  if (!holder.empty())
    who = "server pid " + holder[0][0].as<std::string>() + ", application_name '" +
          holder[0][1].as<std::string>() + "', from " + holder[0][2].as<std::string>() +
          ", connected since " + holder[0][3].as<std::string>();
  throw LeaseHeld(
      "another mdsync engine holds this control store's lease (" + who +
      "): one engine per control store; stop it (or wait for it to finish) and try again");
}

}  // namespace mdsync::store
