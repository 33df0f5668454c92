#include "mdsync/store/steward_actions.hpp"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <thread>

#include "mdsync/log/event_log.hpp"
#include "mdsync/store/conflict_queue.hpp"
#include "mdsync/store/duplicate_resolution.hpp"
#include "mdsync/store/record_repository.hpp"
#include "mdsync/store/wake_listeners.hpp"
#include "savepoint.hpp"

namespace mdsync::store {

namespace {

const char* kind_word(StewardRequest::Kind kind) {
  switch (kind) {
    case StewardRequest::Kind::kTake:
      return "take";
    case StewardRequest::Kind::kValue:
      return "value";
    case StewardRequest::Kind::kDismiss:
      return "dismiss";
    case StewardRequest::Kind::kLink:
      return "link";
    case StewardRequest::Kind::kCreate:
      return "create";
  }
  return "?";
}

std::string first_line(const std::string& s) {
  return s.substr(0, s.find('\n'));
}

// One queued action, carried out inside `tx` with the code a privileged CLI runs.
std::string apply_one(pqxx::transaction_base& tx, const config::Config& config,
                      const core::Ruleset& rs, const pqxx::row& a) {
  const std::string kind = a[0].as<std::string>();
  std::vector<std::int64_t> ids;
  for (const auto& id : nlohmann::json::parse(a[1].as<std::string>()))
    ids.push_back(id.get<std::int64_t>());
  const std::string who =
      a[6].as<std::string>() + (a[7].is_null() ? std::string() : " as " + a[7].as<std::string>());
  const std::string note = a[5].is_null() ? std::string() : a[5].as<std::string>();
  if (kind == "link" || kind == "create") {
    DuplicateResolution d;
    d.kind = kind == "link" ? DuplicateResolution::Kind::kLink : DuplicateResolution::Kind::kCreate;
    d.target = a[4].is_null() ? std::string() : a[4].as<std::string>();
    d.steward = who;
    d.note = note;
    return resolve_duplicate_in(tx, config, rs, ids.front(), d);
  }
  core::Resolution r;
  r.kind = kind == "take"    ? core::Resolution::Kind::kTakeSide
           : kind == "value" ? core::Resolution::Kind::kValue
                             : core::Resolution::Kind::kDismiss;
  r.side = a[2].is_null() ? std::string() : a[2].as<std::string>();
  if (!a[3].is_null()) r.values = values_from_json(a[3].as<std::string>());
  r.steward = who;
  r.note = note;
  r.time_us = a[8].as<std::int64_t>();  // when the steward decided, not when it was applied
  return resolve_conflicts_in(tx, config, rs, ids, r);
}

}  // namespace

ControlAccess control_access(pqxx::connection_base& conn) {
  pqxx::read_transaction tx(conn);
  const pqxx::row r = tx.exec1(
      "SELECT has_table_privilege('mdsync.golden', 'UPDATE'),"
      " to_regprocedure('mdsync.request_steward_action(text, bigint[], text, jsonb, text,"
      " text, text)') IS NOT NULL AND has_function_privilege('mdsync.request_steward_action("
      "text, bigint[], text, jsonb, text, text, text)', 'EXECUTE')");
  if (r[0].as<bool>()) return ControlAccess::kWrite;
  return r[1].as<bool>() ? ControlAccess::kRequest : ControlAccess::kRead;
}

std::int64_t request_steward_action(pqxx::connection_base& conn, const StewardRequest& q) {
  std::vector<std::string> ids;
  for (std::int64_t id : q.conflict_ids) ids.push_back(std::to_string(id));
  std::string array = "{";
  for (std::size_t i = 0; i < ids.size(); ++i) array += (i ? "," : "") + ids[i];
  array += "}";
  pqxx::work tx(conn);
  const std::int64_t id =
      tx.exec_params1(
            "SELECT mdsync.request_steward_action($1, $2::bigint[], nullif($3, ''),"
            " $4::jsonb, nullif($5, ''), nullif($6, ''), nullif($7, ''))",
            std::string(kind_word(q.kind)), array, q.take_side,
            q.kind == StewardRequest::Kind::kValue
                ? std::optional<std::string>(values_to_json(q.values))
                : std::optional<std::string>(),
            q.link_target, q.note, q.display_as)[0]
          .as<std::int64_t>();
  tx.commit();
  return id;
}

StewardActionState wait_for_steward_action(pqxx::connection_base& conn, std::int64_t id,
                                           std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    StewardActionState s;
    {
      pqxx::read_transaction tx(conn);
      const pqxx::row r = tx.exec_params1(
          "SELECT status, coalesce(result, '') FROM mdsync.steward_action WHERE id = $1", id);
      s.status = r[0].as<std::string>();
      s.result = r[1].as<std::string>();
    }
    if (s.status != "pending" || std::chrono::steady_clock::now() >= deadline) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void notify_engine(pqxx::transaction_base& tx, const std::string& what) {
  tx.exec_params("SELECT pg_notify($1, $2)", std::string(kStewardChannel), what);
}

int apply_steward_actions(pqxx::connection_base& control, const config::Config& config,
                          const core::Ruleset& rs) {
  std::vector<std::int64_t> pending;
  {
    pqxx::read_transaction tx(control);
    for (const auto& row : tx.exec("SELECT id FROM mdsync.steward_action WHERE status = 'pending'"
                                   " ORDER BY id LIMIT 100"))
      pending.push_back(row[0].as<std::int64_t>());
  }
  int handled = 0;
  for (std::int64_t id : pending) {
    pqxx::work tx(control);
    const pqxx::result a = tx.exec_params(
        "SELECT kind, array_to_json(conflict_ids)::text, take_side, value::text, link_target,"
        " note, requested_by, display_as, (extract(epoch FROM requested_at) * 1000000)::bigint"
        " FROM mdsync.steward_action WHERE id = $1 AND status = 'pending' FOR UPDATE",
        id);
    if (a.empty()) continue;
    std::string status = "applied", result;
    try {
      Savepoint savepoint(tx, "steward_action");
      result = apply_one(tx, config, rs, a[0]);
      savepoint.release();
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const StewardRefusals& e) {
      status = "refused";
      for (const std::string& p : e.problems()) result += (result.empty() ? "" : "; ") + p;
    } catch (const std::exception& e) {
      // The savepoint undid whatever the action began; the steward reads why.
      status = "refused";
      result = first_line(e.what());
    }
    tx.exec_params(
        "UPDATE mdsync.steward_action SET status = $2, done_at = now(), result = $3"
        " WHERE id = $1",
        id, status, result);
    tx.commit();
    log::info("steward_action", {{"id", id},
                                 {"status", status},
                                 {"requested_by", a[0][6].as<std::string>()},
                                 {"kind", a[0][0].as<std::string>()}});
    ++handled;
  }
  return handled;
}

}  // namespace mdsync::store
