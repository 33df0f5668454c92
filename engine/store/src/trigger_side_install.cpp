// `mdsync init` on a trigger side: the mdsync schema, capture table, stamp, capture role, the
// SECURITY DEFINER capture functions with their trigger bodies, the triggers and privileges,
// installed idempotently (a second run changes nothing) and upgraded in place.

#include <algorithm>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <sstream>

#include "mdsync/store/grants.hpp"
#include "savepoint.hpp"
#include "side_stamp.hpp"
#include "side_table_sql.hpp"
#include "trigger_side.hpp"
#include "trigger_side_sql.hpp"

namespace mdsync::store {

namespace {

// Whether a field changed between rows `now` and `before`, as the capture trigger asks it.
// `as_text`: the column's type has no equality operator in pg_catalog (hstore, an extension's
// type), where the trigger's fixed search_path finds operators; its values compare as text.
std::string field_changed(pqxx::connection_base& c, const SideTableSql& sql,
                          const mapping::FieldMapping& fm, const std::string& now_row,
                          const std::string& before_row, bool as_text) {
  std::string now = now_row + "." + c.quote_name(fm.column),
              before = before_row + "." + c.quote_name(fm.column);
  if (!fm.json_path.empty()) {
    now += " #> " + path_array(c, fm.json_path);
    before += " #> " + path_array(c, fm.json_path);
  }
  if (as_text)
    return sql.as_text(fm.column, now) + " IS DISTINCT FROM " + sql.as_text(fm.column, before);
  return sql.comparable(fm.column, now) + " IS DISTINCT FROM " + sql.comparable(fm.column, before);
}

// The search_path the capture functions run with (SECURITY DEFINER): nothing a user can
// create objects in, so no operator or function of the body can be replaced under it.
constexpr const char* kCaptureSearchPath = "pg_catalog, pg_temp";

// {"a","b"} as a text[] literal for the trigger body.
std::string text_array_literal(pqxx::connection_base& c, const std::vector<std::string>& items) {
  std::string out = "ARRAY[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + c.quote(items[i]);
  return out + "]::text[]";
}

// The trigger's reads of fields when a mapped column may be gone (dropped or renamed since
// init): PL/pgSQL fails a statement naming NEW.col when col is gone, even in a CASE branch not
// taken, so each field whose column is still there is read by EXECUTE, which parses only what
// runs. `diff`: only the fields that changed between NEW and OLD. Appends to d.
std::string drifted_reads(pqxx::connection_base& c, const SideTableSql& sql,
                          const std::set<std::string>& text_compared, bool diff) {
  std::ostringstream b;
  for (const mapping::FieldMapping& fm : sql.mapping().fields) {
    const std::string value = "jsonb_build_object($3, " + captured_expr(c, sql, fm, "($1)") + ")";
    const std::string query =
        diff ? "SELECT CASE WHEN " +
                   field_changed(c, sql, fm, "($1)", "($2)", text_compared.count(fm.column) > 0) +
                   " THEN " + value + " ELSE '{}'::jsonb END"
             : "SELECT " + value;
    b << "      IF " << c.quote(fm.column) << " = ANY(cols) THEN EXECUTE " << c.quote(query)
      << " INTO part USING NEW, " << (diff ? "OLD" : "NULL::text") << ", " << c.quote(fm.field)
      << "; d := d || part; END IF;\n";
  }
  return b.str();
}

// Builds the row trigger body for one entity's table. Field names (config-checked) key the
// captured jsonb; identifiers are quoted by the server's rules, literals escaped. A field at a
// jsonb path is compared and captured at its path only: an edit of another key of the same
// object is no change of the field, so it costs the side no capture row and the engine no
// work (the engine still reads only the key, as it would after extracting it itself).
//
// The engine's sessions carry their side secret in mdsync.origin; the body holds only its
// sha256 (pg_proc.prosrc is readable by anyone), and any other value is captured as usual.
// A session that sets nothing pays one current_setting.
//
// A row is "present" while it is in the scope and not soft-deleted. Only present rows are
// captured: a row that becomes present is captured whole, like an insert; one that stops
// being present is captured as 'D' when it was soft-deleted and as 'L' when it left the scope
// (the engine stops syncing it, and deletes nothing); edits of rows that are not present are
// not the engine's business. A changed key is the old row's end and a new row's start.
std::string trigger_body(pqxx::connection_base& c, const config::EntityConfig& entity,
                         const SideTableSql& sql, const std::string& origin_sha256,
                         const std::set<std::string>& text_compared) {
  const std::string ent = c.quote(entity.name);
  const config::SideMapping& m = sql.mapping();
  std::ostringstream diff;
  for (const mapping::FieldMapping& fm : m.fields)
    diff << "    IF " << field_changed(c, sql, fm, "NEW", "OLD", text_compared.count(fm.column) > 0)
         << " THEN d := d || "
         << "jsonb_build_object(" << c.quote(fm.field) << ", " << captured_expr(c, sql, fm, "NEW")
         << "); END IF;\n";
  const std::vector<std::string> read = read_columns(m);
  std::ostringstream b;
  b << "DECLARE o text := current_setting('mdsync.origin', true); d jsonb := '{}'::jsonb;"
       " was_in boolean := false; now_in boolean := false; cols text[]; part jsonb;\n"
       "BEGIN\n"
       "  IF o <> '' AND encode(sha256(convert_to(o, 'UTF8')), 'hex') = "
    << c.quote(origin_sha256)
    << " THEN RETURN NULL; END IF;\n"
       // The side's schema may have moved since init: a column the mapping reads that is gone
       // must never fail the application's write. The engine reports the drift (status).
       "  SELECT coalesce(array_agg(a.attname::text), '{}') INTO cols FROM pg_attribute a"
       " WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped"
       " AND a.attname = ANY("
    << text_array_literal(c, read)
    << ");\n"
       "  IF NOT cols @> "
    << text_array_literal(c, structural_columns(m))
    << " THEN RETURN NULL; END IF;\n"
       "  IF TG_OP <> 'INSERT' THEN was_in := "
    << sql.present("OLD")
    << "; END IF;\n  IF TG_OP <> 'DELETE' THEN now_in := " << sql.present("NEW")
    << "; END IF;\n"
       "  IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND ("
    << sql.key_columns("NEW") << ") IS DISTINCT FROM (" << sql.key_columns("OLD")
    << ")) THEN\n"
       "    IF was_in THEN INSERT INTO mdsync.capture (entity, op, row_key) VALUES ("
    << ent << ", 'D', " << sql.key_text("OLD")
    << "); END IF;\n"
       "    IF TG_OP = 'DELETE' THEN RETURN NULL; END IF;\n"
       "    was_in := false;\n"
       "  END IF;\n"
       "  IF NOT now_in THEN\n"
       "    IF was_in THEN INSERT INTO mdsync.capture (entity, op, row_key) VALUES ("
    << ent << ", CASE WHEN " << sql.live("NEW") << " THEN 'L' ELSE 'D' END, " << sql.key_text("NEW")
    << "); END IF;\n"
       "    RETURN NULL;\n"
       "  END IF;\n"
       "  IF NOT was_in THEN\n"
       "    IF cardinality(cols) = "
    << read.size() << " THEN\n      d := " << full_row_expr(c, sql, "NEW") << ";\n    ELSE\n"
    << drifted_reads(c, sql, text_compared, false)
    << "    END IF;\n"
       "  ELSIF cardinality(cols) = "
    << read.size() << " THEN\n"
    << diff.str() << "  ELSE\n"
    << drifted_reads(c, sql, text_compared, true)
    << "  END IF;\n"
       "  IF was_in AND d = '{}'::jsonb THEN RETURN NULL; END IF;\n"
       "  INSERT INTO mdsync.capture (entity, op, row_key, changed) VALUES ("
    << ent << ", 'U', " << sql.key_text("NEW")
    << ", d);\n"
       "  RETURN NULL;\n"
       "END";
  return b.str();
}

// Parses `exprs` over the table (as `t`) under the capture functions' search_path, as the
// trigger will: PREPARE resolves every operator and function without reading the table (or
// needing SELECT on it). Returns the error, empty when everything resolves.
std::string resolve_error(pqxx::work& tx, const SideTableSql& sql, const std::string& exprs) {
  // exec_params: in libpqxx 6.4 a failing exec() aborts the whole transaction (savepoint.hpp).
  Savepoint savepoint(tx, "capture_search_path");  // never released: undoes the SET LOCAL
  try {
    tx.exec_params(std::string("SET LOCAL search_path = ") + kCaptureSearchPath);
    tx.exec_params("PREPARE mdsync_capture_probe AS SELECT " + exprs + " FROM " + sql.table() +
                   " t");
    tx.exec_params("DEALLOCATE mdsync_capture_probe");  // not transactional
    return "";
  } catch (const pqxx::sql_error& e) {
    if (e.sqlstate() != "42883" && e.sqlstate() != "42725") throw;  // not an operator lookup
    return first_line(e.what());
  }
}

// The columns whose change the trigger must compare as text (see field_changed); throws
// MappingError when something else in the trigger does not resolve under its search_path (a
// scope predicate on such a column).
std::set<std::string> text_compared_columns(pqxx::work& tx, pqxx::connection_base& c,
                                            const config::EntityConfig& entity,
                                            const std::string& side, const SideTableSql& sql) {
  const config::SideMapping& m = sql.mapping();
  std::set<std::string> as_text;
  std::string all = sql.present("t") + ", " + full_row_expr(c, sql, "t") + ", " + sql.key_text("t");
  for (const mapping::FieldMapping& fm : m.fields)
    all += ", " + field_changed(c, sql, fm, "t", "t", false);
  if (resolve_error(tx, sql, all).empty()) return as_text;
  // Something does not resolve: find the comparisons that need text, then try again.
  all = sql.present("t") + ", " + full_row_expr(c, sql, "t") + ", " + sql.key_text("t");
  for (const mapping::FieldMapping& fm : m.fields) {
    const bool text = !resolve_error(tx, sql, field_changed(c, sql, fm, "t", "t", false)).empty();
    if (text) as_text.insert(fm.column);
    all += ", " + field_changed(c, sql, fm, "t", "t", text);
  }
  if (const std::string why = resolve_error(tx, sql, all); !why.empty())
    throw MappingError("side " + side + ": table " + m.schema + "." + m.table + " of " +
                       entity.name + ": the capture trigger runs with search_path " +
                       kCaptureSearchPath +
                       " and cannot evaluate its scope or soft_delete: " + why);
  return as_text;
}

const char* const kGrantsHint =
    "; have a DBA run, as a superuser, the script `mdsync init --print-grants` prints, then run "
    "`mdsync init` again";

// The capture role exists and mdsync's own role may use it (it creates the capture functions
// and then hands them to it). Creating the role needs CREATEROLE; a DBA can do it instead.
void ensure_capture_role(pqxx::work& tx, const std::string& side, const std::string& role_name,
                         std::vector<std::string>& changed) {
  const pqxx::row me = tx.exec1(
      "SELECT current_user, rolsuper, rolcreaterole FROM pg_roles"
      " WHERE rolname = current_user");
  const std::string user = me[0].as<std::string>();
  const bool super = me[1].as<bool>(), createrole = me[2].as<bool>();
  const std::string role = tx.quote_name(role_name);
  if (tx.exec_params("SELECT 1 FROM pg_roles WHERE rolname = $1", role_name).empty()) {
    if (!super && !createrole)
      throw CapturePrivilegeError("side " + side + ": the capture role " + role_name +
                                  " does not exist, and " + user +
                                  ", the role mdsync connects as, may not create roles"
                                  " (CREATEROLE)" +
                                  kGrantsHint);
    Savepoint savepoint(tx, "create_capture_role");
    try {
      tx.exec_params("CREATE ROLE " + role + " NOLOGIN");  // exec_params: see resolve_error
      savepoint.release();
      changed.push_back("created role " + role_name);
    } catch (const pqxx::sql_error& e) {
      // Roles are cluster-wide: another init (another side on this cluster) made it just now.
      if (e.sqlstate() != "42710" && e.sqlstate() != "23505") throw;
    }
  }
  if (!super &&
      !tx.exec_params1("SELECT pg_has_role(current_user, $1, 'USAGE')", role_name)[0].as<bool>()) {
    Savepoint savepoint(tx, "join_capture_role");
    try {
      tx.exec_params("GRANT " + role + " TO " + tx.quote_name(user));
      savepoint.release();
      changed.push_back("granted role " + role_name + " to " + user);
    } catch (const pqxx::insufficient_privilege&) {
      throw CapturePrivilegeError("side " + side + ": " + user +
                                  ", the role mdsync connects as, is not a member of the capture"
                                  " role " +
                                  role_name + " and may not make itself one" + kGrantsHint);
    }
  }
}

// The steps of `init` on a trigger side, in one transaction: each creates or changes what
// is missing or different and says so in `changed`, so a second run changes nothing.
struct CaptureInstall {
  CaptureInstall(pqxx::work& tx, const std::string& capture_role, std::vector<std::string>& changed)
      : tx(tx),
        c(tx.conn()),
        capture_role(capture_role),
        role(c.quote_name(capture_role)),
        changed(changed) {}

  // The mdsync schema and its tables: capture, its row index and epoch, applied (the
  // idempotency keys), owner (the stamp) and wake.
  void ensure_tables() {
    if (!tx.exec1("SELECT to_regnamespace('mdsync') IS NOT NULL")[0].as<bool>()) {
      tx.exec("CREATE SCHEMA mdsync");
      changed.push_back("created schema mdsync");
    }
    if (!tx.exec1("SELECT to_regclass('mdsync.capture') IS NOT NULL")[0].as<bool>()) {
      tx.exec(
          "CREATE TABLE mdsync.capture ("
          " seq bigserial PRIMARY KEY, entity text NOT NULL, op \"char\" NOT NULL,"
          " row_key text, changed jsonb NOT NULL DEFAULT '{}',"
          " captured_at timestamptz NOT NULL DEFAULT clock_timestamp())");
      changed.push_back("created table mdsync.capture");
    }
    if (!tx.exec1("SELECT to_regclass('mdsync.capture_row') IS NOT NULL")[0].as<bool>()) {
      // Write-backs ask whether a row has changes still to reconcile.
      tx.exec("CREATE INDEX capture_row ON mdsync.capture (entity, row_key)");
      changed.push_back("created index mdsync.capture_row");
    }
    if (!tx.exec1("SELECT to_regclass('mdsync.capture_epoch') IS NOT NULL")[0].as<bool>()) {
      tx.exec("CREATE TABLE mdsync.capture_epoch AS SELECT gen_random_uuid()::text AS epoch");
      changed.push_back("created table mdsync.capture_epoch");
    }
    if (!tx.exec1("SELECT to_regclass('mdsync.applied') IS NOT NULL")[0].as<bool>()) {
      tx.exec(
          "CREATE TABLE mdsync.applied ("
          " outbox_id bigint PRIMARY KEY, row_key text,"
          " applied_at timestamptz NOT NULL DEFAULT now())");
      changed.push_back("created table mdsync.applied");
    }
    // A withdrawn write-back's id, recorded so that it is never applied (control migration
    // 0004).
    if (tx.exec1("SELECT count(*) FROM pg_attribute WHERE attrelid = 'mdsync.applied'::regclass"
                 " AND attname = 'cancelled' AND NOT attisdropped")[0]
            .as<int>() == 0) {
      tx.exec("ALTER TABLE mdsync.applied ADD COLUMN cancelled boolean NOT NULL DEFAULT false");
      changed.push_back("added column mdsync.applied.cancelled");
    }
    if (!tx.exec1("SELECT to_regclass('mdsync.owner') IS NOT NULL")[0].as<bool>()) {
      tx.exec(
          "CREATE TABLE mdsync.owner ("
          " singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),"
          " store_id uuid NOT NULL, control text NOT NULL,"
          " stamped_at timestamptz NOT NULL DEFAULT now())");
      changed.push_back("created table mdsync.owner");
    }
    if (!tx.exec1("SELECT to_regclass('mdsync.wake') IS NOT NULL")[0].as<bool>()) {
      // Whether the engine is waiting for a NOTIFY (set by the service when a pass finds
      // nothing, cleared when one finds work). A transaction that NOTIFYs commits under a global
      // lock, one flush after another; notifying only while the engine waits keeps a busy
      // side's commits from queueing behind each other.
      tx.exec(
          "CREATE TABLE mdsync.wake ("
          " singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),"
          " engine_waiting boolean NOT NULL DEFAULT false)");
      tx.exec("INSERT INTO mdsync.wake DEFAULT VALUES");
      changed.push_back("created table mdsync.wake");
    }
  }

  // Stamps the side for `store`: a first stamp, an adoption (`adopting`: stamped for another
  // store), or the store's description brought up to date.
  void ensure_stamp(const std::optional<Stamp>& stamp, bool adopting, const StoreIdentity& store) {
    if (!stamp) {
      tx.exec_params("INSERT INTO mdsync.owner (store_id, control) VALUES ($1, $2)", store.store_id,
                     store.description);
      changed.push_back("stamped for control store " + store.store_id + " (" + store.description +
                        ")");
    } else if (adopting) {
      // Waits for the old store's engine to finish a write in progress; after this commits,
      // that engine finds the new stamp and refuses the side.
      tx.exec_params("SELECT pg_advisory_xact_lock($1::bigint)", kOwnerLock);
      tx.exec_params("UPDATE mdsync.owner SET store_id = $1, control = $2, stamped_at = now()",
                     store.store_id, store.description);
      // The other store's capture bookkeeping (done markers by epoch and sequence) and its
      // outbox ids mean nothing here: a new epoch keeps its sequences apart from ours, and its
      // idempotency keys would collide with this store's outbox ids.
      tx.exec("UPDATE mdsync.capture_epoch SET epoch = gen_random_uuid()::text");
      const auto cleared = tx.exec("DELETE FROM mdsync.applied").affected_rows();
      const auto pending = tx.exec1("SELECT count(*) FROM mdsync.capture")[0].as<std::int64_t>();
      changed.push_back(
          "adopted from " + describe(*stamp) + ": stamped for control store " + store.store_id +
          " (" + store.description + "); new capture epoch; cleared " + std::to_string(cleared) +
          " write-back idempotency keys (mdsync.applied); " + std::to_string(pending) +
          " captured changes not yet reconciled are kept for this store");
    } else if (stamp->control != store.description) {
      tx.exec_params("UPDATE mdsync.owner SET control = $1", store.description);
      changed.push_back("stamp: control store now reached as " + store.description);
    }
  }

  // The capture functions run as the capture role, whatever role writes the table, so an
  // application role needs no privilege on schema mdsync (and gets none).
  void ensure_function(const std::string& name, const std::string& body) {
    const pqxx::result r = tx.exec_params(
        "SELECT p.prosrc, p.prosecdef, coalesce(array_to_string(p.proconfig, ';'), ''),"
        " pg_get_userbyid(p.proowner) FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'mdsync' AND p.proname = $1",
        name);
    const std::string fn = "mdsync." + c.quote_name(name) + "()";
    const bool same_body = !r.empty() && r[0][0].as<std::string>() == body;
    const bool same_attributes =
        !r.empty() && r[0][1].as<bool>() &&
        r[0][2].as<std::string>() == std::string("search_path=") + kCaptureSearchPath;
    if (!same_body || !same_attributes) {
      tx.exec("CREATE OR REPLACE FUNCTION " + fn +
              " RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = " +
              kCaptureSearchPath + " AS " + c.quote(body));
      changed.push_back(r.empty() ? "created function mdsync." + name
                        : !same_body
                            ? "updated function mdsync." + name
                            : "made function mdsync." + name +
                                  " SECURITY DEFINER with search_path " + kCaptureSearchPath);
    }
    if (r.empty() || r[0][3].as<std::string>() != capture_role) {
      // A new owner needs CREATE on the function's schema: lent for the change only.
      tx.exec("GRANT CREATE ON SCHEMA mdsync TO " + role);
      tx.exec("ALTER FUNCTION " + fn + " OWNER TO " + role);
      tx.exec("REVOKE CREATE ON SCHEMA mdsync FROM " + role);
      changed.push_back("made role " + capture_role + " the owner of function mdsync." + name);
    }
  }

  bool trigger_exists(const std::string& table_oid_expr, const std::string& name) {
    return !tx.exec_params(
                  "SELECT 1 FROM pg_trigger WHERE tgrelid = " + table_oid_expr + " AND tgname = $1",
                  name)
                .empty();
  }

  // The NOTIFY function, and its statement trigger on mdsync.capture where the side's config
  // wants notifications (`notify`).
  void ensure_notify(bool notify) {
    ensure_function("notify_capture",
                    "BEGIN IF EXISTS (SELECT FROM mdsync.wake WHERE engine_waiting) THEN"
                    " PERFORM pg_notify('mdsync_capture', ''); END IF; RETURN NULL; END");
    const bool has_notify = trigger_exists("'mdsync.capture'::regclass", "mdsync_notify");
    if (notify && !has_notify) {
      tx.exec(
          "CREATE TRIGGER mdsync_notify AFTER INSERT ON mdsync.capture "
          "FOR EACH STATEMENT EXECUTE FUNCTION mdsync.notify_capture()");
      changed.push_back("created NOTIFY trigger on mdsync.capture");
    } else if (!notify && has_notify) {
      tx.exec("DROP TRIGGER mdsync_notify ON mdsync.capture");
      changed.push_back("dropped NOTIFY trigger (notify is off for this side)");
    }
  }

  // The entity's capture function (its trigger body marked with the side secret's sha256)
  // and row trigger on its table.
  void ensure_capture_trigger(const config::EntityConfig& entity, const config::SideMapping* m,
                              const std::string& side, const std::string& secret_sha256) {
    const std::string function = "capture_" + entity.name;
    const std::string table = table_name(c, *m);
    const ColumnTypes types = column_types(tx, table);
    const SideTableSql sql(c, entity, *m, types);
    const std::set<std::string> as_text = text_compared_columns(tx, c, entity, side, sql);
    ensure_function(function, trigger_body(c, entity, sql, secret_sha256, as_text));
    const std::string trigger = "mdsync_capture_" + entity.name;
    if (!trigger_exists(c.quote(table) + "::regclass", trigger)) {
      tx.exec("CREATE TRIGGER " + c.quote_name(trigger) + " AFTER INSERT OR UPDATE OR DELETE ON " +
              table + " FOR EACH ROW EXECUTE FUNCTION mdsync." + c.quote_name(function) + "()");
      changed.push_back("created capture trigger on " + m->schema + "." + m->table);
    }
  }

  // Nothing on schema mdsync for PUBLIC, only capture rows for the capture role. Compared
  // before and after, so a second init reports nothing.
  void ensure_privileges(const config::RolesConfig& roles) {
    const std::string acls =
        "SELECT coalesce(string_agg(x, ';' ORDER BY x), '') FROM ("
        " SELECT 'schema:' || coalesce(nspacl::text, '') FROM pg_namespace"
        "  WHERE nspname = 'mdsync'"
        " UNION ALL SELECT 'rel:' || relname || ':' || coalesce(relacl::text, '') FROM pg_class"
        "  WHERE relnamespace = 'mdsync'::regnamespace"
        " UNION ALL SELECT 'fn:' || proname || ':' || coalesce(proacl::text, '') FROM pg_proc"
        "  WHERE pronamespace = 'mdsync'::regnamespace) s(x)";
    const std::string acls_before = tx.exec1(acls)[0].as<std::string>();
    const std::string sequence =
        tx.exec1("SELECT pg_get_serial_sequence('mdsync.capture', 'seq')")[0].as<std::string>();
    for (const std::string& statement : side_capture_privileges(roles, sequence))
      tx.exec(statement);
    if (tx.exec1(acls)[0].as<std::string>() != acls_before)
      changed.push_back("set privileges on schema mdsync: none for PUBLIC; role " + capture_role +
                        " may insert capture rows and read mdsync.wake only");
  }

  pqxx::work& tx;
  pqxx::connection_base& c;
  const std::string& capture_role;
  const std::string role;  // quoted
  std::vector<std::string>& changed;
};

}  // namespace

std::vector<std::string> TriggerSide::install_capture(const StoreIdentity& store,
                                                      const SideKey& key, bool adopt) {
  std::vector<std::string> changed;
  pqxx::connection_base& c = conn();
  pqxx::work tx(c);
  try {
    // Serializes concurrent `mdsync init` runs against the same side.
    tx.exec("SELECT pg_advisory_xact_lock(hashtext('mdsync.install_capture'))");
    // The stamp first: a side that belongs to another store is left exactly as it is.
    const std::optional<Stamp> stamp = read_stamp(tx);
    const bool adopting = stamp && stamp->store_id != store.store_id;
    if (adopting && !adopt)
      throw SideOwnershipError(
          "side " + side_.name + " belongs to another mdsync control store (" + describe(*stamp) +
          "); init changed nothing on it. To move it to this control store (store " +
          store.store_id + ", " + store.description +
          "), stop the other store's service and run `mdsync init --adopt-side " + side_.name +
          "` with this config: that re-stamps the side, gives its capture a new epoch and clears "
          "its write-back idempotency keys (mdsync.applied)");
    const std::string& capture_role = config_.roles.capture;
    ensure_capture_role(tx, side_.name, capture_role, changed);
    CaptureInstall install(tx, capture_role, changed);
    install.ensure_tables();
    install.ensure_stamp(stamp, adopting, store);
    install.ensure_notify(side_.notify);
    for (const config::EntityConfig& entity : config_.entities)
      if (const config::SideMapping* m = entity.mapping_for(side_.name))
        install.ensure_capture_trigger(entity, m, side_.name, key.secret_sha256);
    install.ensure_privileges(config_.roles);
  } catch (const pqxx::insufficient_privilege& e) {
    throw CapturePrivilegeError("side " + side_.name + ": " + first_line(e.what()) + kGrantsHint);
  }
  // An install that changed nothing writes nothing (not even a catalog row rewritten in place).
  if (changed.empty())
    tx.abort();
  else
    tx.commit();
  return changed;
}

}  // namespace mdsync::store
