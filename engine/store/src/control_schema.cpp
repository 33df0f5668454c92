#include "mdsync/store/control_schema.hpp"

#include <pqxx/pqxx>
#include <set>
#include <stdexcept>

namespace mdsync::store {

namespace {
// Any fixed number works; it only keeps two `mdsync init` runs from migrating at once.
constexpr long long kMigrationLock = 0x6d6473796e63;  // "mdsync"
}  // namespace

int control_schema_version(pqxx::connection_base& conn) {
  pqxx::read_transaction tx(conn);
  const auto exists = tx.exec1("SELECT to_regclass('mdsync.schema_migrations') IS NOT NULL")[0];
  if (!exists.as<bool>()) return 0;
  return tx.exec1("SELECT coalesce(max(version), 0) FROM mdsync.schema_migrations")[0].as<int>();
}

void require_control_schema(pqxx::connection_base& conn) {
  pqxx::read_transaction tx(conn);
  const pqxx::row r = tx.exec1("SELECT to_regclass('mdsync.schema_migrations') IS NOT NULL");
  if (!r[0].as<bool>())
    throw SchemaMissing("the control store is not initialized: run `mdsync init`");
  std::set<int> recorded;
  for (const auto& row : tx.exec("SELECT version FROM mdsync.schema_migrations"))
    recorded.insert(row[0].as<int>());
  for (const Migration& m : control_migrations())
    if (!recorded.count(m.version))
      throw SchemaMissing(std::string("the control store's schema lacks migration ") + m.name +
                          " of this mdsync: run `mdsync init` to upgrade it");
}

std::vector<std::string> migrate_control(pqxx::connection_base& conn) {
  std::vector<std::string> applied;
  pqxx::work tx(conn);
  tx.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLock);
  // Only when missing: CREATE SCHEMA checks CREATE on the database even with IF NOT EXISTS, and
  // a DBA may have made the schema for a login that has no such privilege (--print-grants).
  if (!tx.exec1("SELECT to_regnamespace('mdsync') IS NOT NULL")[0].as<bool>())
    tx.exec("CREATE SCHEMA mdsync");
  tx.exec(
      "CREATE TABLE IF NOT EXISTS mdsync.schema_migrations ("
      " version integer PRIMARY KEY, name text NOT NULL,"
      " applied_at timestamptz NOT NULL DEFAULT now())");
  // Every migration the store has not recorded is applied, not only those above the highest
  // recorded: migrations written on parallel branches (0002 on one, 0003 on another) then all
  // reach a store that one of the branches had already upgraded.
  std::set<int> recorded;
  for (const auto& row : tx.exec("SELECT version FROM mdsync.schema_migrations"))
    recorded.insert(row[0].as<int>());
  const int current = recorded.empty() ? 0 : *recorded.rbegin();
  const auto& all = control_migrations();
  const int newest = all.empty() ? 0 : all.back().version;
  if (current > newest)
    throw std::runtime_error("the control store has schema version " + std::to_string(current) +
                             ", newer than this mdsync knows (" + std::to_string(newest) +
                             "); upgrade mdsync");
  for (const Migration& m : all) {
    if (recorded.count(m.version)) continue;
    tx.exec(m.sql);
    tx.exec_params("INSERT INTO mdsync.schema_migrations (version, name) VALUES ($1, $2)",
                   m.version, std::string(m.name));
    applied.emplace_back(m.name);
  }
  tx.commit();
  return applied;
}

}  // namespace mdsync::store
