// The control store's versioned schema: migrations embedded from schema/control at build
// time and applied in order, each once, under an advisory lock, so `mdsync init` is
// idempotent and a newer binary upgrades an older control store.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace pqxx {
class connection_base;
}

namespace mdsync::store {

struct Migration {
  int version;
  const char* name;
  const char* sql;
};

const std::vector<Migration>& control_migrations();  // generated, ascending version

// Applies the migrations the store lacks; returns the names applied (empty: up to date).
// Throws if the store's schema is newer than this binary knows.
std::vector<std::string> migrate_control(pqxx::connection_base& conn);

// The store's schema version, 0 when `mdsync init` never ran.
int control_schema_version(pqxx::connection_base& conn);

// The control store lacks its schema, or a migration this binary carries.
class SchemaMissing : public std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Throws SchemaMissing saying to run `mdsync init` unless every migration this binary knows
// is recorded: one cheap statement, for every command that needs the control schema.
void require_control_schema(pqxx::connection_base& conn);

}  // namespace mdsync::store
