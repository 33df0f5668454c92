// PostgreSQL errors as a steward reads them, at the edge of the CLI: which database, which
// object, and what to do (grant this, run `mdsync init`), never libpq's CONTEXT or parameter
// lines. One place maps a libpqxx exception to that message, by its SQLSTATE (or, where
// libpqxx 6.4 drops it, by its exception class).
#pragma once

#include <stdexcept>
#include <string>

namespace mdsync::store {

// A database refused a statement; the message is already the steward's.
class DatabaseError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The message for `e` raised by a statement against `database` ("control store", "side crm"),
// run as `role` (the session user, for a grant hint; empty when not known). An exception that
// is not a libpqxx one yields its what() unchanged.
std::string steward_message(const std::exception& e, const std::string& database,
                            const std::string& role);

// Inside a catch block: rethrows the exception in flight, a libpqxx one as DatabaseError with
// steward_message(), any other unchanged.
[[noreturn]] void rethrow_for_steward(const std::string& database, const std::string& role);

}  // namespace mdsync::store
