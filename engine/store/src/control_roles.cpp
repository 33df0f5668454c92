#include "mdsync/store/control_roles.hpp"

#include <pqxx/pqxx>

#include "mdsync/store/grants.hpp"
#include "savepoint.hpp"

namespace mdsync::store {

std::vector<std::string> install_control_roles(pqxx::connection_base& conn,
                                               const config::RolesConfig& roles) {
  std::vector<std::string> created;
  pqxx::work tx(conn);
  const pqxx::row me = tx.exec1(
      "SELECT current_user, rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user");
  const std::string user = me[0].as<std::string>();
  const bool may_create = me[1].as<bool>();
  for (const std::string* role : {&roles.service, &roles.steward, &roles.viewer}) {
    if (!tx.exec_params("SELECT 1 FROM pg_roles WHERE rolname = $1", *role).empty()) continue;
    if (!may_create)
      throw ControlPrivilegeError(
          "control store: the role " + *role + " (config `roles`) does not exist, and " + user +
          ", the role mdsync init connects as, may not create roles (CREATEROLE); have a DBA run "
          "the script `mdsync init --print-grants` prints, then run init again");
    Savepoint savepoint(tx, "create_control_role");
    try {
      tx.exec_params("CREATE ROLE " + tx.quote_name(*role) + " NOLOGIN");
      savepoint.release();
      created.push_back("created role " + *role);
    } catch (const pqxx::sql_error& e) {
      // Roles are cluster-wide: another init on this cluster made it just now.
      if (e.sqlstate() != "42710" && e.sqlstate() != "23505") throw;
    }
  }
  for (const std::string& statement : control_privileges(roles)) tx.exec_params(statement);
  tx.commit();
  return created;
}

}  // namespace mdsync::store
