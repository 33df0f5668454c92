// The mdsync.json configuration: the control store, the sides, and each entity's canonical
// fields with how every side maps them to its own table, key and columns. Loading checks
// everything that can be checked without a database and names file, line and column.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "mdsync/core/ruleset.hpp"
#include "mdsync/rules/rules_reader.hpp"

namespace mdsync::config {

struct SideConfig {
  std::string name;
  std::string dsn;     // libpq DSN or URI, ${VAR} already expanded; may hold a password
  bool notify = true;  // a statement trigger NOTIFYs mdsync_capture on every captured change
};

// How one side stores an entity: a table, the row key column, and a column per field.
struct SideMapping {
  std::string side;
  std::string schema = "public";
  std::string table;
  std::string key_column;
  std::vector<std::pair<std::string, std::string>> columns;  // field -> column, field order
  const std::string* column_of(const std::string& field) const;
};

struct EntityConfig {
  std::string name;
  std::vector<std::pair<std::string, core::FieldType>> fields;  // config order
  std::vector<SideMapping> mappings;                            // side order
  const SideMapping* mapping_for(const std::string& side) const;
};

struct ServiceConfig {
  int poll_interval_ms = 500;
  int batch_size = 500;
  int writeback_backoff_initial_ms = 500;
  int writeback_backoff_max_ms = 30000;
};

struct Config {
  std::string path;      // the file it was read from
  std::string base_dir;  // relative paths resolve against this folder
  std::string control_dsn;
  std::string rules_dir;  // absolute, or relative to base_dir already resolved
  std::vector<SideConfig> sides;
  std::vector<EntityConfig> entities;
  ServiceConfig service;

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

// A DSN or URI with any password replaced by "****", safe for logs and error messages.
std::string redact_dsn(const std::string& dsn);

}  // namespace mdsync::config
