#include "mdsync/store/record_view.hpp"

#include <pqxx/pqxx>

#include "jsonb_text.hpp"
#include "mdsync/store/conflict_queue.hpp"
#include "mdsync/store/pg_arrays.hpp"
#include "mdsync/store/side.hpp"

namespace mdsync::store {

using nlohmann::json;

namespace {

constexpr const char* kUtc = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";

json audit_rows(pqxx::transaction_base& tx, const AuditFilter& f) {
  const pqxx::result r = tx.exec_params(
      std::string("SELECT id, to_char(at AT TIME ZONE 'UTC', ") + kUtc +
          "), entity, golden_id, unit, decision, old_value::text, new_value::text,"
          " proposed::text, source, rule, ruleset_version, reason FROM mdsync.audit"
          " WHERE ($1::text IS NULL OR entity = $1) AND ($2::bigint IS NULL OR golden_id = $2)"
          " AND ($3::timestamptz IS NULL OR at >= $3::timestamptz) ORDER BY id LIMIT $4",
      f.entity, f.golden_id, f.since, f.limit);
  json out = json::array();
  auto parsed = [](const pqxx::field& fld) {
    return fld.is_null() ? json(nullptr) : json::parse(fld.as<std::string>());
  };
  for (const auto& row : r) {
    out.push_back(
        {{"id", row[0].as<std::int64_t>()},
         {"at", row[1].as<std::string>()},
         {"entity", row[2].as<std::string>()},
         {"golden_id", row[3].is_null() ? json(nullptr) : json(row[3].as<std::int64_t>())},
         {"unit", row[4].as<std::string>()},
         {"decision", row[5].as<std::string>()},
         {"old", parsed(row[6])},
         {"new", parsed(row[7])},
         {"proposed", parsed(row[8])},
         {"source", row[9].as<std::string>()},
         {"rule", row[10].as<std::string>()},
         {"ruleset_version", row[11].as<std::int64_t>()},
         {"reason", row[12].as<std::string>()}});
  }
  return out;
}

}  // namespace

json show_record(pqxx::connection_base& conn, const config::Config& config,
                 const std::string& entity, const std::string& id, bool history) {
  if (config.entity(entity) == nullptr) throw StewardError("'" + entity + "' is not an entity");
  pqxx::read_transaction tx(conn);
  std::optional<std::int64_t> gid;
  const auto colon = id.find(':');
  if (colon != std::string::npos) {
    const std::string side = id.substr(0, colon), key = id.substr(colon + 1);
    if (config.side(side) == nullptr)
      throw StewardError("'" + side + "' is not a side; use SIDE:ROWKEY or a golden id");
    const auto r = tx.exec_params(
        "SELECT golden_id FROM mdsync.crosswalk WHERE entity = $1 AND side = $2 AND row_key = $3",
        entity, side, key);
    if (r.empty()) throw StewardError("no " + entity + " record is linked to " + id);
    gid = r[0][0].as<std::int64_t>();
  } else {
    if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos || id.size() > 18)
      throw StewardError("'" + id + "' is neither a golden id nor SIDE:ROWKEY");
    gid = std::stoll(id);
  }
  const auto g = tx.exec_params(
      std::string("SELECT \"values\"::text, provenance::text, deleted, to_char(created_at AT TIME "
                  "ZONE 'UTC', ") +
          kUtc + "), to_char(updated_at AT TIME ZONE 'UTC', " + kUtc +
          ") FROM mdsync.golden WHERE id = $1 AND entity = $2",
      *gid, entity);
  if (g.empty()) throw StewardError("no " + entity + " record with golden id " + id);
  json j;
  j["entity"] = entity;
  j["golden_id"] = *gid;
  j["values"] = json::parse(g[0][0].as<std::string>());
  // In full, whatever the stored form (defaults are left out of it): unit -> {side, steward,
  // time_us}, and seeded when true.
  j["provenance"] = json::object();
  for (const auto& [unit, p] :
       provenance_from_json_text(std::string_view(g[0][1].c_str(), g[0][1].size()))) {
    json u = {{"side", p.side}, {"steward", p.steward}, {"time_us", p.time_us}};
    if (p.seeded) u["seeded"] = true;
    j["provenance"][unit] = std::move(u);
  }
  j["deleted"] = g[0][2].as<bool>();
  j["created_at"] = g[0][3].as<std::string>();
  j["updated_at"] = g[0][4].as<std::string>();
  j["sides"] = json::object();
  for (const auto& row :
       tx.exec_params("SELECT side, row_key, base::text, state FROM mdsync.crosswalk "
                      "WHERE golden_id = $1 ORDER BY side",
                      *gid))
    j["sides"][row[0].as<std::string>()] = {{"row_key", row[1].as<std::string>()},
                                            {"base", json::parse(row[2].as<std::string>())},
                                            {"state", row[3].as<std::string>()}};
  j["open_conflicts"] = json::array();
  for (const auto& row : tx.exec_params(
           "SELECT id, unit, kind, reason FROM mdsync.conflict WHERE golden_id = $1 AND status = "
           "'open' ORDER BY id",
           *gid))
    j["open_conflicts"].push_back({{"id", row[0].as<std::int64_t>()},
                                   {"unit", row[1].as<std::string>()},
                                   {"kind", row[2].as<std::string>()},
                                   {"reason", row[3].as<std::string>()}});
  j["pending_writebacks"] = tx.exec_params1(
                                  "SELECT count(*) FROM mdsync.outbox WHERE golden_id = $1"
                                  " AND status IN ('pending', 'cancelling')",
                                  *gid)[0]
                                .as<std::int64_t>();
  if (history) {
    AuditFilter f;
    f.golden_id = gid;
    j["history"] = audit_rows(tx, f);
  }
  return j;
}

json audit_log(pqxx::connection_base& conn, const AuditFilter& filter) {
  pqxx::read_transaction tx(conn);
  return audit_rows(tx, filter);
}

std::map<std::int64_t, std::string> record_labels(pqxx::connection_base& conn,
                                                  const config::Config& config,
                                                  const std::vector<std::int64_t>& golden_ids) {
  std::map<std::int64_t, std::string> labels;
  std::vector<std::string> entities, fields;
  for (const config::EntityConfig& e : config.entities)
    if (!e.label_field.empty()) {
      entities.push_back(e.name);
      fields.push_back(e.label_field);
    }
  if (entities.empty() || golden_ids.empty()) return labels;
  pqxx::read_transaction tx(conn);
  for (const auto& row : tx.exec_params(
           "SELECT g.id, g.\"values\" ->> l.field FROM mdsync.golden g"
           " JOIN unnest($2::text[], $3::text[]) AS l(entity, field) ON l.entity = g.entity"
           " WHERE g.id = ANY($1::bigint[])",
           pg_bigint_array(golden_ids), pg_text_array(entities), pg_text_array(fields)))
    if (!row[1].is_null()) labels[row[0].as<std::int64_t>()] = row[1].as<std::string>();
  return labels;
}

json status_report(pqxx::connection_base& conn, const config::Config& config, StatusDetail detail) {
  json j;
  json sides = json::object();
  {
    pqxx::read_transaction tx(conn);
    const auto v = tx.exec("SELECT max(version) FROM mdsync.ruleset");
    j["ruleset_version"] = v[0][0].is_null() ? json(nullptr) : json(v[0][0].as<std::int64_t>());
    for (const config::SideConfig& side : config.sides) {
      json s;
      const auto st = tx.exec_params(
          std::string("SELECT to_char(last_capture_at AT TIME ZONE 'UTC', ") + kUtc +
              "), to_char(last_writeback_at AT TIME ZONE 'UTC', " + kUtc +
              "), last_error, to_char(last_error_at AT TIME ZONE 'UTC', " + kUtc +
              "), consecutive_failures, contention_retries,"
              " to_char(paused_at AT TIME ZONE 'UTC', " +
              kUtc +
              "), paused_by, pause_note, circuit, to_char(circuit_opened_at AT TIME ZONE 'UTC', " +
              kUtc + "), to_char(circuit_retry_at AT TIME ZONE 'UTC', " + kUtc +
              "), to_char(throttled_since AT TIME ZONE 'UTC', " + kUtc +
              ") FROM mdsync.side_state WHERE side = $1",
          side.name);
      auto text = [](const pqxx::field& f) {
        return f.is_null() ? json(nullptr) : json(f.as<std::string>());
      };
      s["last_capture_at"] = st.empty() ? json(nullptr) : text(st[0][0]);
      s["last_writeback_at"] = st.empty() ? json(nullptr) : text(st[0][1]);
      s["last_error"] = st.empty() ? json(nullptr) : text(st[0][2]);
      s["last_error_at"] = st.empty() ? json(nullptr) : text(st[0][3]);
      s["consecutive_failures"] = st.empty() ? 0 : st[0][4].as<int>();
      s["contention_retries"] = st.empty() ? 0 : st[0][5].as<std::int64_t>();
      // Paused (`mdsync pause`): capture goes on, nothing is written to the side.
      s["paused"] = !st.empty() && !st[0][6].is_null();
      s["paused_at"] = st.empty() ? json(nullptr) : text(st[0][6]);
      s["paused_by"] = st.empty() ? json(nullptr) : text(st[0][7]);
      s["pause_note"] = st.empty() ? json(nullptr) : text(st[0][8]);
      // The circuit breaker as the engine holding the lease sees it: open, nothing of the
      // engine touches the side until circuit_retry_at, when one probe goes out (half_open).
      s["circuit"] = st.empty() ? json("closed") : json(st[0][9].as<std::string>());
      s["circuit_opened_at"] = st.empty() ? json(nullptr) : text(st[0][10]);
      s["circuit_retry_at"] = st.empty() ? json(nullptr) : text(st[0][11]);
      // The write rate limit (config), and whether it keeps queued write-backs waiting now.
      s["max_writes_per_s"] = side.max_writes_per_s ? json(*side.max_writes_per_s) : json(nullptr);
      s["throttled"] = !st.empty() && !st[0][12].is_null();
      s["throttled_since"] = st.empty() ? json(nullptr) : text(st[0][12]);
      const auto ob = tx.exec_params(
          "SELECT count(*) FILTER (WHERE status IN ('pending', 'cancelling')),"
          " count(*) FILTER (WHERE status = 'failed' AND review IS NULL),"
          " coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE status IN"
          " ('pending', 'cancelling'))), 0)::bigint FROM mdsync.outbox WHERE side = $1",
          side.name);
      s["writeback_pending"] = ob[0][0].as<std::int64_t>();
      // Open items only: a failed write-back a steward retried or discarded is history.
      s["writeback_failed"] = ob[0][1].as<std::int64_t>();
      s["writeback_lag_seconds"] = ob[0][2].as<std::int64_t>();
      // Rows whose write-backs keep being superseded with no change captured (they back off).
      s["writeback_stuck"] =
          detail == StatusDetail::kGauges
              ? json(nullptr)  // a walk of the side's links, too costly for every scrape
              : json(tx.exec_params1("SELECT count(*) FROM mdsync.crosswalk WHERE side = $1"
                                     " AND superseded_streak >= 2",
                                     side.name)[0]
                         .as<std::int64_t>());
      s["capture_errors"] =
          tx.exec_params1(
                "SELECT count(*) FROM mdsync.capture_error WHERE side = $1 AND status = 'open'",
                side.name)[0]
              .as<std::int64_t>();
      // The side's last episodes of going away and coming back, newest first; last_error
      // above is only the current one (cleared when the side recovers).
      s["recent_errors"] = json::array();
      if (detail == StatusDetail::kFull)
        for (const auto& row : tx.exec_params(
                 std::string("SELECT kind, message, to_char(at AT TIME ZONE 'UTC', ") + kUtc +
                     ") FROM mdsync.side_event WHERE side = $1 ORDER BY id DESC LIMIT 5",
                 side.name))
          s["recent_errors"].push_back({{"event", row[0].as<std::string>()},
                                        {"message", row[1].as<std::string>()},
                                        {"at", row[2].as<std::string>()}});
      sides[side.name] = s;
    }
    json conflicts = json::object();
    for (const auto& row :
         tx.exec("SELECT entity, kind, count(*) FROM mdsync.conflict WHERE status = 'open'"
                 " GROUP BY entity, kind ORDER BY entity, kind"))
      conflicts[row[0].as<std::string>()][row[1].as<std::string>()] = row[2].as<std::int64_t>();
    j["open_conflicts"] = conflicts;
  }
  for (const config::SideConfig& side : config.sides) {
    const std::unique_ptr<Side> store = make_side(config, side);
    try {
      sides[side.name]["capture_backlog"] = store->capture_backlog();
      sides[side.name]["reachable"] = true;
      sides[side.name]["mapping_drift"] =
          detail == StatusDetail::kFull ? json(store->mapping_drift()) : json::array();
    } catch (const std::exception& e) {
      sides[side.name]["capture_backlog"] = nullptr;
      sides[side.name]["reachable"] = false;
      sides[side.name]["mapping_drift"] = json::array();
      sides[side.name]["reach_error"] =
          std::string(e.what()).substr(0, std::string(e.what()).find('\n'));
    }
  }
  j["sides"] = sides;
  return j;
}

}  // namespace mdsync::store
