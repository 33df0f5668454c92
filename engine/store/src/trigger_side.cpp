// The trigger side's construction, connection and set-up: binding to a control store and
// checking its stamp, and checking the config's mapping against the live tables (mismatches,
// drift).

#include "trigger_side.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <pqxx/pqxx>

#include "field_transforms.hpp"
#include "savepoint.hpp"
#include "side_stamp.hpp"
#include "side_table_sql.hpp"
#include "trigger_side_sql.hpp"

namespace mdsync::store {

TriggerSide::TriggerSide(const config::Config& config, const config::SideConfig& side)
    : config_(config), side_(side), transforms_(std::make_unique<FieldTransforms>(config)) {}

TriggerSide::~TriggerSide() = default;

std::vector<std::string> TriggerSide::mapping_drift(pqxx::transaction_base& tx) {
  std::map<std::string, std::set<std::string>> gone;
  for (const config::EntityConfig& entity : config_.entities)
    if (const config::SideMapping* m = entity.mapping_for(side_.name))
      gone[entity.name] = drifted_columns(tx, *m);
  return drift_messages(gone);
}

std::vector<std::string> TriggerSide::drift_messages(
    const std::map<std::string, std::set<std::string>>& gone_by_entity) const {
  std::vector<std::string> out;
  for (const config::EntityConfig& entity : config_.entities) {
    const config::SideMapping* m = entity.mapping_for(side_.name);
    auto gone = gone_by_entity.find(entity.name);
    if (m == nullptr || gone == gone_by_entity.end()) continue;
    const std::vector<std::string> structural = structural_columns(*m);
    for (const std::string& col : gone->second) {
      std::string what;
      for (const auto& [field, column] : m->columns)
        if (column == col) what += (what.empty() ? "" : ", ") + entity.name + "." + field;
      const bool whole = std::find(structural.begin(), structural.end(), col) != structural.end();
      out.push_back("side " + side_.name + ": column '" + col + "' of " + m->schema + "." +
                    m->table + " is gone (dropped or renamed since init)" +
                    (whole ? "; nothing of the table is captured"
                           : ": " + what + " is neither captured nor written") +
                    "; fix the side or the mapping (" + config_.path + ") and rerun `mdsync init`");
    }
  }
  return out;
}

std::vector<std::string> TriggerSide::mapping_drift() {
  pqxx::read_transaction tx(conn());
  return mapping_drift(tx);
}

pqxx::connection_base& TriggerSide::conn() {
  if (conn_ && conn_->is_open()) return *conn_;
  // The mark is set per writing transaction (apply_once), not for the session: a session
  // setting would outlive the engine's writes (a connection pooler hands the server session to
  // other clients) and be readable by any code the session runs meanwhile.
  PgConnection fresh = connect(side_.dsn, "side " + side_.name);
  if (bound_) {
    // One statement per connection: the side must be stamped for this engine's store.
    pqxx::read_transaction tx(*fresh);
    const std::optional<Stamp> stamp = read_stamp(tx);
    require_owner(stamp ? stamp->store_id : std::string(), stamp ? describe(*stamp) : "");
  }
  conn_ = std::move(fresh);
  return *conn_;
}

void TriggerSide::reset() {
  conn_.reset();
}

void TriggerSide::bind(const StoreIdentity& store, const SideKey& key) {
  if (bound_ && store.store_id == store_.store_id && key.secret == key_.secret) return;
  store_ = store;
  key_ = key;
  bound_ = true;
  conn_.reset();  // the next connection carries the new mark
}

void TriggerSide::require_owner(const std::string& owner, const std::string& owner_text) const {
  if (owner == store_.store_id) return;
  if (owner.empty())
    throw SideOwnershipError("side " + side_.name + " is not stamped for any control store;" +
                             " run `mdsync init` to install capture and stamp it for this one" +
                             " (store " + store_.store_id + ")");
  throw SideOwnershipError(
      "side " + side_.name + " belongs to another control store (" +
      (owner_text.empty() ? "store " + owner : owner_text) + "), not to this one (store " +
      store_.store_id + ", " + store_.description +
      "): nothing is read from or written to it. To sync it from this store, stop the other "
      "store's service and run `mdsync init --adopt-side " +
      side_.name + "` with this config; otherwise remove the side from this config");
}

void TriggerSide::hold_ownership(pqxx::transaction_base& tx) {
  if (!bound_) return;
  const std::optional<Stamp> stamp = read_stamp_locked(tx);
  require_owner(stamp ? stamp->store_id : std::string(), stamp ? describe(*stamp) : "");
}

namespace {

// The checks of one entity's mapping against the live side, each adding the mismatches it
// finds to `problems`, with the config path that names the thing to fix.
struct MappingCheck {
  pqxx::transaction_base& tx;
  pqxx::connection_base& c;
  const config::Config& config;
  const std::string& side;
  const config::EntityConfig& entity;
  const config::SideMapping& m;
  std::vector<std::string>& problems;
  const std::string where = "entities." + entity.name + ".sides." + side;
  const std::string tbl = "side " + side + ": table " + m.schema + "." + m.table;
  ColumnTypes types = {};

  // Reads the table's columns; false (a problem) when there is no such table.
  bool read_table() {
    // The table's columns with their types, in one read; a view or anything else that is not
    // a table counts as missing (capture triggers need a table).
    for (const auto& row :
         tx.exec_params("SELECT a.attname, format_type(a.atttypid, NULL), format_type(a.atttypid, "
                        "a.atttypmod),"
                        " ty.typnamespace <> 'pg_catalog'::regnamespace"
                        " FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid"
                        " JOIN pg_type ty ON ty.oid = a.atttypid"
                        " JOIN pg_namespace n ON n.oid = t.relnamespace"
                        " WHERE n.nspname = $1 AND t.relname = $2 AND t.relkind IN ('r', 'p')"
                        " AND a.attnum > 0 AND NOT a.attisdropped",
                        m.schema, m.table))
      types[row[0].as<std::string>()] = {row[1].as<std::string>(), row[2].as<std::string>(),
                                         row[3].as<bool>()};
    if (!types.empty()) return true;
    problems.push_back("side " + side + ": table " + m.schema + "." + m.table +
                       " does not exist (" + where + ".table in " + config.path + ")");
    return false;
  }

  bool require(const std::string& column, const std::string& what) {
    if (types.count(column)) return true;
    problems.push_back(tbl + " has no column '" + column + "' (" + what + ")");
    return false;
  }

  // The key, mapped and scope columns exist; a local time mapped to an instant has a zone.
  void columns() {
    for (const std::string& k : m.key_columns) require(k, where + ".key");
    for (const auto& [field, column] : m.columns) {
      if (!require(column, "mapped to " + entity.name + "." + field + " in " + where + ".columns"))
        continue;
      // A local time means an instant only in a zone; without one every value read would be
      // wrong by the side's offset, so the zone must be declared.
      if (entity.type_of(field) == core::FieldType::kTimestamptz && m.timezone.empty() &&
          types.at(column).base == "timestamp without time zone")
        problems.push_back(tbl + " column '" + column + "' is a timestamp without time zone, " +
                           "mapped to the timestamptz field " + entity.name + "." + field +
                           ": declare the zone its local times are in (\"timezone\": " +
                           "\"Europe/Brussels\" in " + where + " or sides." + side + ")");
    }
    for (std::size_t i = 0; i < m.scope.size(); ++i)
      require(m.scope[i].column, where + ".scope.where[" + std::to_string(i) + "]");
  }

  void soft_delete() {
    if (m.soft_delete && require(m.soft_delete->column, where + ".soft_delete")) {
      const std::string& type = types.at(m.soft_delete->column).base;
      const bool flag = m.soft_delete->kind == mapping::SoftDeleteKind::kFlag;
      if (flag && type != "boolean")
        problems.push_back(tbl + " column '" + m.soft_delete->column + "' is " + type +
                           "; a soft_delete flag must be boolean (" + where + ".soft_delete)");
      if (!flag && type.rfind("timestamp", 0) != 0 && type != "date")
        problems.push_back(tbl + " column '" + m.soft_delete->column + "' is " + type +
                           "; a soft_delete timestamp must be a timestamp or date (" + where +
                           ".soft_delete)");
    }
  }

  void delete_guards() {
    for (std::size_t i = 0; i < m.delete_guards.size(); ++i) {
      const mapping::DeleteGuard& g = m.delete_guards[i];
      const std::string at = where + ".delete_guard" +
                             (m.delete_guards.size() > 1 ? "[" + std::to_string(i) + "]" : "");
      const std::string schema = g.schema.empty() ? m.schema : g.schema;
      const ColumnTypes guard =
          column_types(tx, c.quote_name(schema) + "." + c.quote_name(g.table));
      if (guard.empty()) {
        problems.push_back("side " + side + ": delete guard table " + schema + "." + g.table +
                           " does not exist (" + at + ")");
        continue;
      }
      auto guard_has = [&](const std::string& column, const std::string& what) {
        if (!guard.count(column))
          problems.push_back("side " + side + ": delete guard table " + schema + "." + g.table +
                             " has no column '" + column + "' (" + what + ")");
      };
      for (const auto& [guard_col, row_col] : g.on) {
        guard_has(guard_col, at + ".on");
        require(row_col, at + ".on." + guard_col);
      }
      for (const mapping::Predicate& p : g.where) guard_has(p.column, at + ".where");
    }
  }

  void zone() {
    // The zone converts inside the trigger too: it must be one the side's server knows.
    if (!m.timezone.empty()) {
      try {
        Savepoint savepoint(tx, "check_zone");
        tx.exec_params("SELECT now() AT TIME ZONE $1", m.timezone);
        savepoint.release();
      } catch (const pqxx::sql_error& e) {
        problems.push_back("side " + side + ": the server does not know the time zone '" +
                           m.timezone + "' of " + where + ": " + first_line(e.what()));
      }
    }
  }

  void scope_evaluates() {
    // The scope and the guards run inside the side's own writes (the trigger) and deletes: a
    // literal the column's type cannot take ('abc' for an integer id) would make every write to
    // the table fail, so they are tried on the live table first. Planned, not run: LIMIT 0.
    if (!m.scope.empty() || m.soft_delete || !m.delete_guards.empty()) {
      const SideTableSql sql(c, entity, m, types);
      std::string guards;
      for (const mapping::DeleteGuard& g : m.delete_guards)
        guards += (guards.empty() ? "" : " OR ") + sql.guard_vetoes("t", g);
      try {
        Savepoint savepoint(tx, "check_scope");
        tx.exec("SELECT 1 FROM " + sql.table() + " t WHERE " + sql.present("t") +
                (guards.empty() ? "" : " AND (" + guards + ")") + " LIMIT 0");
        savepoint.release();
      } catch (const pqxx::sql_error& e) {
        problems.push_back(tbl + ": the scope, soft_delete or delete_guard of " + where +
                           " cannot be evaluated: " + first_line(e.what()));
      }
    }
  }

  void lookups() {
    for (const mapping::FieldMapping& fm : m.fields) {
      if (!fm.lookup) continue;
      const mapping::Lookup& l = *fm.lookup;
      const std::string schema = l.schema.empty() ? m.schema : l.schema;
      const std::string at = where + ".columns." + fm.field + ".lookup in " + config.path;
      std::map<std::string, std::string> has;  // column -> type
      for (const auto& row : tx.exec_params(
               "SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a"
               " JOIN pg_class t ON t.oid = a.attrelid "
               "JOIN pg_namespace n ON n.oid = t.relnamespace "
               "WHERE n.nspname = $1 AND t.relname = $2 AND t.relkind IN ('r', 'p', 'v', 'm') "
               "AND a.attnum > 0 AND NOT a.attisdropped",
               schema, l.table))
        has[row[0].as<std::string>()] = row[1].as<std::string>();
      if (has.empty()) {
        problems.push_back("side " + side + ": lookup table " + schema + "." + l.table + " of " +
                           entity.name + "." + fm.field + " does not exist (" + at + ")");
        continue;
      }
      std::vector<std::pair<std::string, std::string>> needed = {{l.key, "key"},
                                                                 {l.value, "value"}};
      for (const auto& [lookup_column, field] : l.within)
        needed.emplace_back(lookup_column, "within, for field " + field);
      for (const auto& [col, what] : needed)
        if (!has.count(col))
          problems.push_back("side " + side + ": lookup table " + schema + "." + l.table +
                             " has no column '" + col + "' (" + what + " of " + entity.name + "." +
                             fm.field + " in " + at + ")");
      if (!l.value_path.empty() && has.count(l.value) && has.at(l.value) != "jsonb" &&
          has.at(l.value) != "json")
        problems.push_back("side " + side + ": lookup table " + schema + "." + l.table +
                           " column '" + l.value + "' is " + has.at(l.value) +
                           "; a value_path reads into a jsonb column (" + at + ")");
    }
  }
};

}  // namespace

void TriggerSide::check_mappings() {
  std::vector<std::string> problems;
  pqxx::read_transaction tx(conn());
  for (const config::EntityConfig& entity : config_.entities) {
    const config::SideMapping* m = entity.mapping_for(side_.name);
    if (m == nullptr) continue;
    MappingCheck check{tx, tx.conn(), config_, side_.name, entity, *m, problems};
    if (!check.read_table()) continue;
    const std::size_t problems_before = problems.size();
    check.columns();
    check.soft_delete();
    check.delete_guards();
    check.zone();
    // Tried only when nothing above found a problem: a missing column would fail it anyway.
    if (problems.size() == problems_before) check.scope_evaluates();
    check.lookups();
  }
  if (!problems.empty()) {
    std::string msg;
    for (const auto& p : problems) msg += (msg.empty() ? "" : "\n") + p;
    throw MappingError(msg);
  }
}

}  // namespace mdsync::store
