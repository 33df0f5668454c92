// Who may do what on mdsync's objects, said in one place: the privileges `mdsync init` leaves
// on a side's mdsync schema, and the script `mdsync init --print-grants` prints for a DBA, who
// runs it as a superuser so that init then needs no CREATEROLE. Built from the config alone,
// without connecting.
#pragma once

#include <string>
#include <vector>

#include "mdsync/config/config.hpp"

namespace mdsync::store {

// An identifier quoted by PostgreSQL's rule ("a""b"), for SQL written without a connection.
std::string quote_ident(const std::string& name);

// The statements that leave a side's schema mdsync with exactly what capture needs: nothing
// for PUBLIC (no schema usage, no table, sequence or function privilege), and for the capture
// role USAGE on the schema, INSERT on mdsync.capture and USAGE on `capture_sequence` (its
// serial's sequence, already quoted). The capture functions run as that role (SECURITY
// DEFINER); the engine's own role owns the tables.
std::vector<std::string> side_capture_privileges(const config::RolesConfig& roles,
                                                 const std::string& capture_sequence);

// The statements that give the control store's roles exactly what they do (README
// "Security"), after revoking whatever they and PUBLIC had on schema mdsync:
// - viewer: reads everything but the store's secret;
// - steward: reads as the viewer, and decides through mdsync's functions only
//   (request_steward_action, apply_ruleset), never writing a table;
// - service: the engine: reads everything, writes the record tables, appends to the audit
//   (no UPDATE, DELETE or TRUNCATE of it), marks stewards' actions done.
// The role `mdsync init` connects as owns the schema and everything in it.
std::vector<std::string> control_privileges(const config::RolesConfig& roles);

// The role mdsync connects to a side as: the DSN's `user`, else $PGUSER, else the login name
// (libpq's own defaults).
std::string side_login_role(const config::SideConfig& side);

// The DBA's script: a section for the control store (`-- control store: ...`: the service,
// steward and viewer roles, and schema mdsync owned by the role init connects as, so that init
// needs neither CREATEROLE nor CREATE there; init itself then grants what each role may do),
// and one per side (`-- side NAME: ...`, to run in that side's database): the capture role,
// its membership for the role mdsync connects as, schema mdsync owned by that role, and the
// privileges init and the engine need on the mapped tables.
std::string grants_script(const config::Config& config);

}  // namespace mdsync::store
