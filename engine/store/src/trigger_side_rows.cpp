// A trigger side's current rows: read as capture would deliver them, the snapshot `sync
// --initial` reads (capture table and rows in one repeatable-read transaction, rows through a
// cursor), and one row captured again as it is now (`errors retry`).

#include <algorithm>
#include <functional>
#include <limits>
#include <optional>
#include <pqxx/pqxx>

#include "mdsync/store/pg_arrays.hpp"
#include "savepoint.hpp"
#include "side_table_sql.hpp"
#include "trigger_side.hpp"
#include "trigger_side_sql.hpp"

namespace mdsync::store {

std::string TriggerSide::recapture_row(const config::EntityConfig& entity,
                                       const std::string& row_key) {
  const config::SideMapping& m = mapping_of(entity, side_.name);
  pqxx::connection_base& c = conn();
  pqxx::work tx(c);
  const ColumnTypes types = column_types(tx, table_name(c, m));
  const SideTableSql sql(c, entity, m, types);
  // The same SQL as the trigger: presence, liveness, the full row.
  // FOR SHARE: a change of the row in flight commits (and is captured) first.
  const pqxx::row r = tx.exec_params1(
      "WITH cur AS (SELECT " + sql.present("t") + " AS p, " + sql.live("t") + " AS l, " +
          full_row_expr(c, sql, "t") + " AS j FROM " + sql.table() + " t WHERE " +
          sql.key_equals("t", "$2::text") +
          " FOR SHARE OF t)"
          " INSERT INTO mdsync.capture (entity, op, row_key, changed)"
          " SELECT $1, CASE WHEN cur.p THEN 'U' WHEN cur.l THEN 'L' ELSE 'D' END, $2::text,"
          "  CASE WHEN cur.p THEN cur.j ELSE '{}'::jsonb END"
          " FROM (VALUES (1)) one LEFT JOIN cur ON true RETURNING op",
      entity.name, row_key);
  tx.commit();
  return r[0].as<std::string>();
}

namespace {

// Rows of current_rows_sql (one result row per field, in row order) added to `rows`; the first
// fields may continue the last row there.
void append_current_rows(const pqxx::result& r, const std::string& entity,
                         std::vector<CapturedRow>& rows) {
  for (const auto& row : r) {
    const auto n = row[0].as<std::int64_t>();
    if (rows.empty() || rows.back().seq != n) {
      CapturedRow cr;
      cr.seq = n;
      cr.entity = entity;
      cr.row_key = row[1].is_null() ? std::string() : row[1].as<std::string>();
      rows.push_back(std::move(cr));
    }
    add_field(rows.back(), row[2], row[3]);
  }
}

// Runs `query_where(condition)` with `keys` as $1, the condition matching a row `t` to the
// key `k.key` through the key's own columns (an index). A key the key column cannot hold (its
// type changed since the row was linked) fails that cast: the keys are then compared as text,
// reading the whole table, so such a row reads as not there.
pqxx::result exec_by_keys(pqxx::transaction_base& tx, const SideTableSql& sql,
                          const std::function<std::string(const std::string&)>& query_where,
                          const std::vector<std::string>& keys) {
  {
    Savepoint keyed(tx, "mdsync_by_keys");
    try {
      pqxx::result r =
          tx.exec_params(query_where(sql.key_equals("t", "k.key")), pg_text_array(keys));
      keyed.release();
      return r;
    } catch (const pqxx::data_exception&) {
    }
  }
  return tx.exec_params(query_where(sql.key_text("t") + " = k.key"), pg_text_array(keys));
}

}  // namespace

std::string TriggerSide::current_rows_sql(pqxx::transaction_base& tx,
                                          const config::EntityConfig& entity) {
  const config::SideMapping& m = mapping_of(entity, side_.name);
  pqxx::connection_base& c = conn();
  const ColumnTypes types = column_types(tx, table_name(c, m));
  const SideTableSql sql(c, entity, m, types);
  return "SELECT s.n, s.k, e.key, e.value FROM (SELECT " + sql.key_text("t") + " AS k, " +
         full_row_expr(c, sql, "t") + " AS j, row_number() OVER (ORDER BY " + sql.key_columns("t") +
         ") AS n FROM " + sql.table() + " t WHERE " + sql.present("t") +
         ") s LEFT JOIN LATERAL jsonb_each_text(s.j) e ON true ORDER BY s.n";
}

std::vector<CapturedRow> TriggerSide::current_rows(pqxx::transaction_base& tx,
                                                   const config::EntityConfig& entity) {
  std::vector<CapturedRow> rows;
  append_current_rows(tx.exec(current_rows_sql(tx, entity)), entity.name, rows);
  resolve_lookups(tx, rows);
  return rows;
}

std::vector<CapturedRow> TriggerSide::read_current_rows(const config::EntityConfig& entity) {
  pqxx::read_transaction tx(conn());
  return current_rows(tx, entity);
}

std::map<std::string, RowNow> TriggerSide::read_rows(const config::EntityConfig& entity,
                                                     const std::vector<std::string>& keys) {
  std::map<std::string, RowNow> out;
  if (keys.empty()) return out;
  const config::SideMapping& m = mapping_of(entity, side_.name);
  pqxx::connection_base& c = conn();
  pqxx::read_transaction tx(c);
  const ColumnTypes types = column_types(tx, table_name(c, m));
  const SideTableSql sql(c, entity, m, types);
  // The same SQL as the trigger for presence, liveness and the full row; one result row per
  // field of a row that takes part, one with NULL fields for any other key.
  auto rows_where = [&](const std::string& key_matches) {
    return "SELECT k.key, r.p, r.l, r.there, e.key, e.value FROM unnest($1::text[]) k(key)"
           " LEFT JOIN LATERAL (SELECT " +
           sql.present("t") + " AS p, " + sql.live("t") + " AS l, " + full_row_expr(c, sql, "t") +
           " AS j, true AS there FROM " + sql.table() + " t WHERE " + key_matches +
           ") r ON true"
           " LEFT JOIN LATERAL jsonb_each_text(CASE WHEN r.p THEN r.j END) e ON true"
           " ORDER BY k.key";
  };
  const pqxx::result r = exec_by_keys(tx, sql, rows_where, keys);
  std::vector<CapturedRow> rows;
  for (const auto& row : r) {
    const auto key = row[0].as<std::string>();
    RowNow& now = out[key];
    const bool present = !row[1].is_null() && row[1].as<bool>();
    const bool live = !row[2].is_null() && row[2].as<bool>();
    const bool there = !row[3].is_null();
    now.state = present ? RowNow::State::kTakesPart
                : live  ? RowNow::State::kOutOfScope
                : there ? RowNow::State::kSoftDeleted
                        : RowNow::State::kGone;
    if (!present) continue;
    if (rows.empty() || rows.back().row_key != key) {
      CapturedRow cr;
      cr.seq = static_cast<std::int64_t>(rows.size()) + 1;
      cr.entity = entity.name;
      cr.row_key = key;
      rows.push_back(std::move(cr));
    }
    add_field(rows.back(), row[4], row[5]);
  }
  resolve_lookups(tx, rows);
  for (CapturedRow& row : rows) out[row.row_key].row = std::move(row);
  for (const auto& row :
       tx.exec_params("SELECT DISTINCT row_key FROM mdsync.capture WHERE entity = $1"
                      " AND row_key = ANY($2::text[])",
                      entity.name, pg_text_array(keys)))
    if (auto it = out.find(row[0].as<std::string>()); it != out.end())
      it->second.capture_waiting = true;
  for (const std::string& key : keys) out.try_emplace(key);
  return out;
}

// What `sync --initial` reads of a trigger side: one repeatable-read transaction held open
// while the snapshot lives, the capture table read first and each entity's rows through a
// server-side cursor.
class TriggerSnapshot final : public SideSnapshot {
 public:
  TriggerSnapshot(TriggerSide& side, Side::SnapshotReads reads);

  const CaptureBatch& captures() const override { return captures_; }
  std::int64_t count(const config::EntityConfig& entity) override;
  std::set<std::string> present(const config::EntityConfig& entity,
                                const std::vector<std::string>& keys) override;
  std::vector<CapturedRow> next(const config::EntityConfig& entity, std::size_t max_rows) override;

 private:
  TriggerSide& side_;
  std::unique_ptr<pqxx::transaction_base> tx_;
  CaptureBatch captures_;
  std::string cursor_entity_;         // the entity whose cursor is open
  std::optional<CapturedRow> carry_;  // a row whose fields continue in the next fetch
  bool cursor_done_ = false;
};

std::unique_ptr<SideSnapshot> TriggerSide::open_snapshot(SnapshotReads reads) {
  return std::make_unique<TriggerSnapshot>(*this, reads);
}

TriggerSnapshot::TriggerSnapshot(TriggerSide& side, Side::SnapshotReads reads) : side_(side) {
  // One snapshot for the capture table and the rows: a capture row is either older than what
  // the rows show (its change is in them) or not visible here at all (it comes after).
  tx_ = std::make_unique<
      pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only>>(
      side_.conn());
  if (reads == Side::SnapshotReads::kCapturesAndRows)
    captures_ = side_.read_capture_in(*tx_, std::numeric_limits<int>::max());
}

std::int64_t TriggerSnapshot::count(const config::EntityConfig& entity) {
  const config::SideMapping& m = mapping_of(entity, side_.side_.name);
  pqxx::connection_base& c = side_.conn();
  const ColumnTypes types = column_types(*tx_, table_name(c, m));  // sql keeps a reference
  const SideTableSql sql(c, entity, m, types);
  return tx_->exec1("SELECT count(*) FROM " + sql.table() + " t WHERE " + sql.present("t"))[0]
      .as<std::int64_t>();
}

std::set<std::string> TriggerSnapshot::present(const config::EntityConfig& entity,
                                               const std::vector<std::string>& keys) {
  std::set<std::string> out;
  if (keys.empty()) return out;
  const config::SideMapping& m = mapping_of(entity, side_.side_.name);
  pqxx::connection_base& c = side_.conn();
  const ColumnTypes types = column_types(*tx_, table_name(c, m));  // sql keeps a reference
  const SideTableSql sql(c, entity, m, types);
  auto present_where = [&](const std::string& key_matches) {
    return "SELECT k.key FROM unnest($1::text[]) k(key) WHERE EXISTS (SELECT 1 FROM " +
           sql.table() + " t WHERE " + key_matches + " AND " + sql.present("t") + ")";
  };
  for (const auto& row : exec_by_keys(*tx_, sql, present_where, keys))
    out.insert(row[0].as<std::string>());
  return out;
}

std::vector<CapturedRow> TriggerSnapshot::next(const config::EntityConfig& entity,
                                               std::size_t max_rows) {
  if (cursor_entity_ != entity.name) {
    if (!cursor_entity_.empty()) tx_->exec("CLOSE mdsync_snapshot");
    tx_->exec("DECLARE mdsync_snapshot NO SCROLL CURSOR FOR " +
              side_.current_rows_sql(*tx_, entity));
    cursor_entity_ = entity.name;
    carry_.reset();
    cursor_done_ = false;
  }
  std::vector<CapturedRow> rows;
  if (carry_) {
    rows.push_back(std::move(*carry_));
    carry_.reset();
  }
  // A row has one result row per mapped field, so a fetch of max_rows times that ends on a
  // row's last field; should it not, the last row is carried into the next chunk, where its
  // remaining fields arrive.
  const std::size_t fields =
      std::max<std::size_t>(1, mapping_of(entity, side_.side_.name).fields.size());
  const std::size_t want = std::max<std::size_t>(1, max_rows) * fields;
  while (!cursor_done_ && rows.size() <= 1) {
    const pqxx::result r =
        tx_->exec("FETCH FORWARD " + std::to_string(want) + " FROM mdsync_snapshot");
    if (r.size() < want) cursor_done_ = true;
    append_current_rows(r, entity.name, rows);
  }
  if (!cursor_done_ && !rows.empty()) {
    carry_ = std::move(rows.back());
    rows.pop_back();
  }
  side_.resolve_lookups(*tx_, rows);
  return rows;
}

}  // namespace mdsync::store
