// Opening PostgreSQL connections for the control store and the sides, with errors a
// steward can act on and never a password in them. The only place a DSN becomes a
// connection, so session settings (UTC, ISO dates, the engine's origin mark) are uniform.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

namespace pqxx {
class connection_base;
}

namespace mdsync::store {

// Owns a libpqxx connection without exposing libpqxx's headers to every includer.
struct ConnectionDeleter {
  void operator()(pqxx::connection_base* conn) const;
};
using PgConnection = std::unique_ptr<pqxx::connection_base, ConnectionDeleter>;

// A database could not be reached or refused us; transient from the service's view.
class ConnectionError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Connects and prepares the session: TimeZone UTC, DateStyle ISO. `what` names the database
// in messages ("control store", "side crm"). The engine's mark on its side writes (the side's
// secret as `mdsync.origin`, which the capture trigger recognizes) is set per writing
// transaction by the trigger side (TriggerSide::apply), never for a session.
PgConnection connect(const std::string& dsn, const std::string& what);

// The application_name every later connection of this process sets ("mdsync run", "mdsync
// sync"; "mdsync" until set), so pg_stat_activity shows what each mdsync session is doing
// and a lease holder can be named.
void set_application_name(const std::string& name);
inline constexpr const char* kServiceApplicationName = "mdsync run";

}  // namespace mdsync::store
