#include "mdsync/store/db_connection.hpp"

#include <pqxx/pqxx>

#include "mdsync/config/config.hpp"

namespace mdsync::store {

void ConnectionDeleter::operator()(pqxx::connection_base* conn) const {
  delete static_cast<pqxx::connection*>(conn);
}

namespace {
std::string& application_name() {
  static std::string name = "mdsync";
  return name;
}
}  // namespace

void set_application_name(const std::string& name) {
  application_name() = name;
}

PgConnection connect(const std::string& dsn, const std::string& what) {
  PgConnection conn;
  try {
    conn.reset(new pqxx::connection(dsn));
  } catch (const std::exception& e) {
    // libpq's message may echo connection parameters; keep its first line, which names the
    // cause, and show the DSN only redacted.
    std::string why = e.what();
    if (auto nl = why.find('\n'); nl != std::string::npos) why.resize(nl);
    throw ConnectionError("cannot connect to " + what + " (" + config::redact_dsn(dsn) +
                          "): " + why);
  }
  pqxx::nontransaction setup(*conn);
  // No JIT: our statements run for milliseconds, but inside a long transaction (sync
  // --initial) the rows it just wrote are not in the statistics yet, estimates swell past
  // jit_above_cost, and compiling took 150-280 ms a statement for 20 ms of work (bench-sync,
  // auto_explain: 3.5 s of a 20.7 s initial sync at 10,000 rows per side).
  setup.exec(
      "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'iso_8601'; "
      "SET extra_float_digits = 3; SET client_encoding = 'UTF8'; SET jit = off");
  setup.exec("SET application_name = " + setup.quote(application_name()));
  return conn;
}

}  // namespace mdsync::store
