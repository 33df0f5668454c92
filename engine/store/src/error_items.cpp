#include "mdsync/store/error_items.hpp"

#include <algorithm>
#include <pqxx/pqxx>

#include "mdsync/core/decision.hpp"
#include "mdsync/store/conflict_queue.hpp"
#include "mdsync/store/database_errors.hpp"
#include "mdsync/store/record_repository.hpp"
#include "mdsync/store/ruleset_store.hpp"
#include "mdsync/store/side.hpp"
#include "mdsync/store/steward_actions.hpp"

namespace mdsync::store {

using nlohmann::json;

namespace {

constexpr const char* kUtc = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";

// Both kinds of item in one shape. A capture error's golden id is the record its row is linked
// to now (if any); a failed write-back's `at` is when the side refused it.
std::string items_sql() {
  return "SELECT * FROM ("
         " SELECT 'c' AS k, e.id AS n, e.side, e.entity, e.row_key,"
         "  (SELECT x.golden_id FROM mdsync.crosswalk x WHERE x.entity = e.entity"
         "   AND x.side = e.side AND x.row_key = e.row_key) AS golden_id,"
         "  e.op, e.\"values\"::text AS vals, e.error, e.at AS at_ts,"
         "  NULL::integer AS attempts, e.status, e.handled_at, e.handled_by, e.note,"
         "  e.side || '#' || e.seq AS source"
         " FROM mdsync.capture_error e"
         " UNION ALL"
         " SELECT 'w', o.id, o.side, o.entity, o.row_key, o.golden_id, o.kind, o.\"values\"::text,"
         "  coalesce(o.last_error, ''), coalesce(o.done_at, o.created_at), o.attempts,"
         "  coalesce(o.review, 'open'), o.reviewed_at, o.reviewed_by, o.review_note,"
         "  'outbox#' || o.id"
         " FROM mdsync.outbox o WHERE o.status = 'failed') i";
}

std::string item_columns() {
  const std::string utc = kUtc;
  return "k, n, side, entity, row_key, golden_id, op, vals, error,"
         " to_char(at_ts AT TIME ZONE 'UTC', " +
         utc + "), attempts, status, to_char(handled_at AT TIME ZONE 'UTC', " + utc +
         "), handled_by, note, source";
}

json item_json(const pqxx::row& r) {
  auto text = [&](int i) { return r[i].is_null() ? json(nullptr) : json(r[i].as<std::string>()); };
  json j;
  const std::string k = r[0].as<std::string>();
  j["id"] = k + r[1].as<std::string>();
  j["kind"] = k == "c" ? "capture_error" : "writeback_failed";
  j["side"] = r[2].as<std::string>();
  j["entity"] = r[3].as<std::string>();
  j["row_key"] = text(4);
  j["golden_id"] = r[5].is_null() ? json(nullptr) : json(r[5].as<std::int64_t>());
  j["op"] = r[6].as<std::string>();
  j["values"] = json::parse(r[7].as<std::string>());
  j["error"] = r[8].as<std::string>();
  j["at"] = text(9);
  j["attempts"] = r[10].is_null() ? json(nullptr) : json(r[10].as<std::int64_t>());
  j["status"] = r[11].as<std::string>();
  j["handled_at"] = text(12);
  j["handled_by"] = text(13);
  j["note"] = text(14);
  j["source"] = r[15].as<std::string>();
  return j;
}

}  // namespace

std::optional<ErrorItemId> parse_error_item_id(const std::string& text) {
  if (text.size() < 2 || text.size() > 19 || (text[0] != 'c' && text[0] != 'w')) return {};
  if (text.find_first_not_of("0123456789", 1) != std::string::npos) return {};
  return ErrorItemId{text[0], std::stoll(text.substr(1))};
}

json list_error_items(pqxx::connection_base& conn, const ErrorFilter& f) {
  pqxx::read_transaction tx(conn);
  const pqxx::result r = tx.exec_params(
      "SELECT " + item_columns() + " FROM (" + items_sql() +
          ") l WHERE ($1::text IS NULL OR side = $1) AND ($2::text IS NULL OR entity = $2)"
          " AND ($3 = 'all' OR status = $3) ORDER BY at_ts, k, n",
      f.side, f.entity, f.status);
  json out = json::array();
  for (const auto& row : r) out.push_back(item_json(row));
  return out;
}

json show_error_item(pqxx::connection_base& conn, const ErrorItemId& id) {
  pqxx::read_transaction tx(conn);
  const pqxx::result r = tx.exec_params(
      "SELECT " + item_columns() + " FROM (" + items_sql() + ") l WHERE k = $1 AND n = $2",
      std::string(1, id.kind), id.number);
  if (r.empty()) throw StewardError("no error item " + id.text());
  return item_json(r[0]);
}

std::vector<std::string> handle_error_items(pqxx::connection_base& conn,
                                            const config::Config& config,
                                            const std::vector<ErrorItemId>& given,
                                            const ErrorAction& action) {
  std::vector<ErrorItemId> ids;
  for (const ErrorItemId& id : given)
    if (std::none_of(ids.begin(), ids.end(), [&](const ErrorItemId& o) {
          return o.kind == id.kind && o.number == id.number;
        }))
      ids.push_back(id);
  const bool retry = action.kind == ErrorAction::Kind::kRetry;
  const bool replans = retry && std::any_of(ids.begin(), ids.end(),
                                            [](const ErrorItemId& i) { return i.kind == 'w'; });
  // One transaction at a time on the connection: the ruleset is read before ours opens.
  std::optional<core::Ruleset> rs;
  if (replans) rs = load_ruleset(conn, config);
  const std::int64_t version = rs ? rs->version : latest_ruleset_version(conn).value_or(0);

  pqxx::work tx(conn);
  struct Item {
    ErrorItemId id;
    std::string side, entity, row_key, error, source;
    std::optional<std::int64_t> golden_id;
  };
  std::vector<Item> items;
  std::vector<std::string> problems;
  for (const ErrorItemId& id : ids) {
    const pqxx::result r =
        id.kind == 'c'
            ? tx.exec_params(
                  "SELECT e.side, e.entity, e.row_key, e.error, e.side || '#' || e.seq, e.status,"
                  " (SELECT x.golden_id FROM mdsync.crosswalk x WHERE x.entity = e.entity"
                  "  AND x.side = e.side AND x.row_key = e.row_key)"
                  " FROM mdsync.capture_error e WHERE e.id = $1 FOR UPDATE OF e",
                  id.number)
            : tx.exec_params(
                  "SELECT side, entity, row_key, coalesce(last_error, ''), 'outbox#' || id,"
                  " coalesce(review, 'open'), golden_id FROM mdsync.outbox"
                  " WHERE id = $1 AND status = 'failed' FOR UPDATE",
                  id.number);
    if (r.empty()) {
      problems.push_back("no error item " + id.text() +
                         (id.kind == 'c' ? " (no such capture error)"
                                         : " (no failed write-back with that outbox id)"));
      continue;
    }
    Item item{
        id,
        r[0][0].as<std::string>(),
        r[0][1].as<std::string>(),
        r[0][2].is_null() ? std::string() : r[0][2].as<std::string>(),
        r[0][3].as<std::string>(),
        r[0][4].as<std::string>(),
        r[0][6].is_null() ? std::nullopt : std::optional<std::int64_t>(r[0][6].as<std::int64_t>())};
    const std::string status = r[0][5].as<std::string>();
    if (status != "open") {
      problems.push_back(id.text() + " is already " + status);
      continue;
    }
    if (retry && id.kind == 'c') {
      const config::EntityConfig* e = config.entity(item.entity);
      if (item.row_key.empty()) {
        problems.push_back(id.text() +
                           " has no row key (the side captured a NULL or empty key)"
                           ", so its row cannot be read again: discard it");
        continue;
      }
      if (e == nullptr || e->mapping_for(item.side) == nullptr || !config.side(item.side)) {
        problems.push_back(id.text() + ": entity '" + item.entity + "' is not mapped on side " +
                           item.side + " in the config, so its row cannot be read: discard it");
        continue;
      }
    }
    if (retry && id.kind == 'w') {
      if (rs->find(item.entity) == nullptr || !item.golden_id) {
        problems.push_back(id.text() + ": entity '" + item.entity +
                           "' has no rules in the ruleset in force: discard it");
        continue;
      }
    }
    items.push_back(std::move(item));
  }
  if (!problems.empty()) throw StewardRefusals(std::move(problems));

  std::vector<std::string> lines;
  RecordRepository repo(tx);
  const std::string who = "steward:" + action.steward;
  const std::optional<std::string> note =
      action.note.empty() ? std::nullopt : std::optional<std::string>(action.note);
  const std::string status = retry ? "retried" : "discarded";
  for (const Item& item : items) {
    std::string did;
    if (retry && item.id.kind == 'c') {
      // The row as it is now, not the change that failed: later changes of the row may have
      // been reconciled since, and replaying the old values would undo them.
      std::string op;
      try {
        op = make_side(config, *config.side(item.side))
                 ->recapture_row(*config.entity(item.entity), item.row_key);
      } catch (const std::exception&) {
        rethrow_for_steward("side " + item.side, "");
      }
      did = "re-captured " + item.side + " " + item.entity + " row " + item.row_key +
            " as it is now (" +
            (op == "U"   ? "upsert"
             : op == "L" ? "out of scope"
                         : "delete") +
            "); the engine reconciles it on its next pass";
    } else if (retry) {
      // A retry is the steward saying the side accepts the write now: the write_refused
      // conflicts the refusal opened for that side stop holding the record's units.
      const auto closed =
          tx.exec_params(
                "UPDATE mdsync.conflict SET status = 'dismissed', resolved_at = now(),"
                " resolved_by = $3, note = 'closed by errors retry'"
                " WHERE golden_id = $1 AND side = $2 AND kind = 'write_refused'"
                " AND status = 'open'",
                *item.golden_id, item.side, who)
              .affected_rows();
      auto state = repo.load(*item.golden_id);
      if (!state)
        throw StewardError(item.id.text() + ": golden record " + std::to_string(*item.golden_id) +
                           " is missing");
      repo.plan_and_enqueue(*rs->find(item.entity), config.side_names(), *item.golden_id, *state);
      const auto pending =
          tx.exec_params1(
                "SELECT count(*) FROM mdsync.outbox WHERE golden_id = $1 AND status = 'pending'",
                *item.golden_id)[0]
              .as<std::int64_t>();
      did = "planned the write-backs of " + item.entity + " " + std::to_string(*item.golden_id) +
            " again (" + std::to_string(pending) + " pending)" +
            (closed ? "; closed " + std::to_string(closed) + " write_refused conflict(s)" : "");
    } else {
      did = "discarded";
    }
    if (item.id.kind == 'c')
      tx.exec_params(
          "UPDATE mdsync.capture_error SET status = $2, handled_at = now(), handled_by = $3,"
          " note = $4 WHERE id = $1",
          item.id.number, status, who, note);
    else
      tx.exec_params(
          "UPDATE mdsync.outbox SET review = $2, reviewed_at = now(), reviewed_by = $3,"
          " review_note = $4 WHERE id = $1",
          item.id.number, status, who, note);
    repo.audit_event(item.entity, item.golden_id, retry ? "error_retry" : "error_discard", who,
                     version,
                     (item.id.kind == 'c' ? "change " + item.source + " from "
                                          : "write-back " + item.source + " to ") +
                         item.side + " (" + item.error + "): " + did +
                         (action.note.empty() ? "" : "; note: " + action.note));
    lines.push_back(item.id.text() + ": " + did);
  }
  // A re-captured row also NOTIFYs on its side, unless that side's notify is off.
  if (retry) notify_engine(tx, "retry");
  tx.commit();
  return lines;
}

}  // namespace mdsync::store
