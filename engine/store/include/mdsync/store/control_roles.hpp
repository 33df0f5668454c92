// The control store's roles at `mdsync init`: the service, steward and viewer roles of the
// config's `roles` are created when missing (which needs CREATEROLE, or a DBA who ran the
// `--print-grants` script first), and given exactly the privileges grants.hpp says.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "mdsync/config/config.hpp"

namespace pqxx {
class connection_base;
}

namespace mdsync::store {

// init may not create a missing role; the message names it and points to `--print-grants`.
class ControlPrivilegeError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Creates the missing roles and (re)grants every privilege, in one transaction; returns a line
// per role it created.
std::vector<std::string> install_control_roles(pqxx::connection_base& conn,
                                               const config::RolesConfig& roles);

}  // namespace mdsync::store
