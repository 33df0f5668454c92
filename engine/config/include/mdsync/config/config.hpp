// The mdsync.json configuration: the control store, the sides, and each entity's canonical
// fields with how every side maps them to its own table, key and columns (value transforms,
// jsonb paths, lookups, row scope, soft deletes, delete guards) and how existing records are
// matched. Loading checks everything that can be checked without a database and names file,
// line and column. The mapping options are described in engine/mapping/MAPPING.md.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mdsync/core/ruleset.hpp"
#include "mdsync/mapping/field_mapping.hpp"
#include "mdsync/mapping/match_keys.hpp"
#include "mdsync/mapping/side_rows.hpp"
#include "mdsync/rules/rules_reader.hpp"

namespace mdsync::config {

// A side's circuit breaker (`sides.NAME.circuit_breaker`): after `failures` consecutive
// failures the engine leaves the side alone for `open_s`, then probes it once; a failed probe
// opens it again for twice as long, up to `max_open_s`.
struct CircuitBreakerConfig {
  int failures = 5;
  int open_s = 30;
  int max_open_s = 300;
};

struct SideConfig {
  std::string name;
  std::string dsn;     // libpq DSN or URI, ${VAR} already expanded; may hold a password
  bool notify = true;  // a statement trigger NOTIFYs mdsync_capture on every captured change
  // IANA zone of the side's timestamp-without-time-zone columns; empty: none declared.
  std::string timezone = {};
  CircuitBreakerConfig circuit_breaker = {};
  // At most this many row writes a second are sent to the side, on average; none: no limit.
  std::optional<int> max_writes_per_s = std::nullopt;
};

// How one side stores an entity: a table, the row key, a column per field with how its value
// is found and transformed, which rows take part, and what stands for a deleted row.
struct SideMapping {
  std::string side;
  std::string schema = "public";
  std::string table;
  // The row key when it is one column; empty for a composite key (see key_columns), so code
  // that knows only single keys fails loudly instead of using part of a key.
  std::string key_column;
  std::vector<std::string> key_columns = {};  // the row key's columns, one or more
  // field -> column, field order. For a jsonb path the column is the jsonb column, for a
  // lookup the side's foreign-key column: `fields` says how to read and write them.
  std::vector<std::pair<std::string, std::string>> columns;
  std::vector<mapping::FieldMapping> fields = {};  // field order, one per field
  // Zone of timestamp-without-time-zone columns: this mapping's, else the side's; may be empty.
  std::string timezone = {};
  std::vector<mapping::Predicate> scope = {};  // a row takes part when all hold; empty: every row
  std::optional<mapping::SoftDelete> soft_delete = std::nullopt;
  std::vector<mapping::DeleteGuard> delete_guards = {};

  const std::string* column_of(const std::string& field) const;
  const mapping::FieldMapping* field_mapping(const std::string& field) const;
  // What this mapping uses beyond one plain column per field and a single-column key, one
  // phrase each ("composite key", "scope", "credit_limit: scale"). Empty for a plain mapping;
  // code that handles only plain mappings can refuse the others by name.
  std::vector<std::string> features() const;
};

struct EntityConfig {
  std::string name;
  std::vector<std::pair<std::string, core::FieldType>> fields;  // config order
  std::vector<SideMapping> mappings;                            // side order
  mapping::MatchSpec match = {};  // keys linking rows that already exist on several sides
  std::string label_field;        // names a record for people ("label"); empty: none
  const SideMapping* mapping_for(const std::string& side) const;
  std::optional<core::FieldType> type_of(const std::string& field) const;
};

struct ServiceConfig {
  int poll_interval_ms = 500;
  int batch_size = 500;
  int writeback_backoff_initial_ms = 500;
  int writeback_backoff_max_ms = 30000;
  // `run` walks every side against golden this often (`mdsync verify`); 0: never.
  int verify_interval_s = 0;
  bool verify_repair = false;  // and repairs what it finds, as `verify --repair`
  // /metrics, /healthz and /readyz (service.http_listen); no HTTP at all when the port is -1.
  std::string http_host = "127.0.0.1";
  int http_port = -1;
};

// `sync --initial` refuses to queue writes that would overwrite (or blank) more than this share
// of a side's non-empty values, unless told to accept them (--accept-overwrites).
struct InitialSyncConfig {
  double max_overwrite_share = 0.1;
};

// The PostgreSQL roles mdsync creates and grants (`roles` in mdsync.json): cluster-wide names,
// so two deployments on one cluster can keep theirs apart. `capture` owns the side's capture
// functions (SECURITY DEFINER); the others are for the control store.
struct RolesConfig {
  std::string capture = "mdsync_capture";
  std::string service = "mdsync_service";
  std::string steward = "mdsync_steward";
  std::string viewer = "mdsync_viewer";
};

struct Config {
  std::string path;      // the file it was read from
  std::string base_dir;  // relative paths resolve against this folder
  std::string control_dsn;
  std::string rules_dir;  // absolute, or relative to base_dir already resolved
  std::vector<SideConfig> sides;
  std::vector<EntityConfig> entities;
  ServiceConfig service;
  InitialSyncConfig initial_sync;
  RolesConfig roles;

  std::vector<std::string> side_names() const;
  const EntityConfig* entity(const std::string& name) const;
  const SideConfig* side(const std::string& name) const;
  rules::RulesContext rules_context() const;
};

// Reads and checks a config file. `${VAR}` in any string expands from the environment
// (an unset variable is an error naming it). Throws rules::CheckError (file:line:column)
// for content problems and std::runtime_error when the file cannot be read.
Config load_config(const std::string& path);

// Parses config text; `path` is used for messages and to resolve the rules folder.
Config parse_config(const std::string& text, const std::string& path);

// The value of a connection parameter (`user`, `dbname`, `host`, `port`) as the DSN or URI
// spells it, without connecting; nullopt when the DSN leaves it to libpq's defaults.
std::optional<std::string> dsn_parameter(const std::string& dsn, const std::string& key);

// A DSN or URI with any password replaced by "****", safe for logs and error messages.
std::string redact_dsn(const std::string& dsn);

}  // namespace mdsync::config
