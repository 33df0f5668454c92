#include "outbox_queue.hpp"

#include <algorithm>
#include <pqxx/pqxx>
#include <unordered_set>

#include "mdsync/store/pg_arrays.hpp"
#include "mdsync/store/record_repository.hpp"
#include "prepared_statement.hpp"

namespace mdsync::store {

namespace {

// The ids of the writes to send: the side's queue walked in id order (index
// outbox_queued_in_order), a page at a time, keeping the first write of each record met. Walked
// from the queue's start, the first met is the record's oldest queued write, so no probe of the
// queue per row is needed: a probe's plan depended on the statistics, and with statistics taken
// before a burst it scanned the whole queue for every row (245 ms a call at 10,000 queued).
// The walk still needs statistics that know most of the queue is done: taken while it was
// mostly pending (after sync --initial), they made the planner walk the primary key and filter,
// reading every write ever queued (18 ms a walk at 30,000 done), which is why sync --initial
// analyzes the queue again once its writes are sent (SyncEngine::refresh_statistics).
std::vector<std::int64_t> queue_heads(pqxx::transaction_base& tx, const std::string& side,
                                      int limit, std::int64_t after, std::int64_t& first) {
  const int page = std::max(2 * limit, 100);
  std::vector<std::int64_t> heads;
  std::unordered_set<std::int64_t> seen;  // records met, sent or waiting
  for (;;) {
    const pqxx::result rows =
        exec_prepared(tx, "mdsync_outbox_walk",
                      "SELECT id, golden_id, not_before > now() FROM mdsync.outbox"
                      " WHERE side = $1 AND status IN ('pending', 'cancelling') AND id > $2"
                      " AND id > 0"  // the walk's index, outbox_queued_in_order (0020)
                      " ORDER BY id LIMIT $3",
                      side, after, page);
    for (const auto& row : rows) {
      after = row[0].as<std::int64_t>();
      if (first == 0) first = after;
      if (!seen.insert(row[1].as<std::int64_t>()).second) continue;  // a later write
      if (!row[2].is_null() && row[2].as<bool>()) continue;          // backs off, whole
      heads.push_back(after);
      if (static_cast<int>(heads.size()) == limit) return heads;
    }
    if (static_cast<int>(rows.size()) < page) return heads;
  }
}

}  // namespace

QueuedWrites next_queued_writes(pqxx::transaction_base& tx, const std::string& side, int limit,
                                std::int64_t after) {
  QueuedWrites queued;
  const std::vector<std::int64_t> heads =
      queue_heads(tx, side, limit, after, queued.first_queued_id);
  if (heads.empty()) return queued;
  for (const auto& row : exec_prepared(
           tx, "mdsync_outbox_writes",
           "SELECT o.id, o.entity, o.golden_id, o.kind,"
           // An insert names the record's soft-deleted row, to restore it; an update or a delete
           // names the row that is synced.
           " CASE WHEN (o.kind = 'insert') = (x.state = 'deleted') THEN x.row_key END,"
           " o.\"values\"::text, o.expected::text, o.status"
           " FROM unnest($1::bigint[]) WITH ORDINALITY AS h(id, n)"
           " JOIN mdsync.outbox o ON o.id = h.id"
           " LEFT JOIN mdsync.crosswalk x ON x.golden_id = o.golden_id AND x.side = o.side"
           " ORDER BY h.n",
           pg_bigint_array(heads))) {
    // The status is checked here, not in SQL: a condition on it lets the planner read the
    // queue's partial index whole for every id when its statistics predate a burst (seen at
    // 190-220 ms a call after sync --initial); by id alone every plan is a key lookup or one
    // hash join.
    const std::string status = row[7].as<std::string>();
    if (status != "pending" && status != "cancelling") continue;  // taken meanwhile
    WriteRequest w;
    w.outbox_id = row[0].as<std::int64_t>();
    w.entity = row[1].as<std::string>();
    w.kind = core::row_write_kind_from_string(row[3].as<std::string>())
                 .value_or(core::RowWrite::Kind::kUpdate);
    w.row_key = row[4].is_null() ? std::string() : row[4].as<std::string>();
    w.values = values_from_json(row[5].as<std::string>());
    w.expected = values_from_json(row[6].as<std::string>());
    w.cancel = status == "cancelling";
    queued.requests.push_back(std::move(w));
    queued.golden_ids.push_back(row[2].as<std::int64_t>());
  }
  return queued;
}

void count_failed_attempt(pqxx::transaction_base& tx, const std::vector<WriteRequest>& requests,
                          const std::string& error) {
  std::vector<std::int64_t> ids;
  for (const WriteRequest& w : requests) ids.push_back(w.outbox_id);
  tx.exec_params(
      "UPDATE mdsync.outbox SET attempts = attempts + 1, last_error = $2"
      " WHERE id = ANY($1::bigint[])",
      pg_bigint_array(ids), error);
}

void OutboxOutcomes::add(std::int64_t id, const char* status, const std::string& row_key,
                         const std::string& error) {
  ids_.push_back(std::to_string(id));
  statuses_.push_back(status);
  row_keys_.push_back(row_key);
  errors_.push_back(error);
}

void OutboxOutcomes::save(pqxx::transaction_base& tx) const {
  if (ids_.empty()) return;
  tx.exec_params(
      "UPDATE mdsync.outbox o SET status = u.status, done_at = now(),"
      " row_key = nullif(u.row_key, ''),"
      // A superseded or withdrawn write keeps the note that says why.
      " last_error = CASE WHEN u.error <> '' THEN u.error"
      "  WHEN u.status = 'superseded' THEN o.last_error END,"
      " attempts = o.attempts + 1"
      " FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])"
      "  AS u(id, status, row_key, error) WHERE o.id = u.id",
      pg_text_array(ids_), pg_text_array(statuses_), pg_text_array(row_keys_),
      pg_text_array(errors_));
}

}  // namespace mdsync::store
