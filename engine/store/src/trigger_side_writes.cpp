// Write-backs to a trigger side (TriggerSide::apply): one side transaction per attempt,
// retried on deadlock, run as a sequence of stages (WritePass) from the idempotency keys to
// the results in request order; write_chunk.cpp holds the statements that write.

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <thread>
#include <tuple>

#include "field_transforms.hpp"
#include "mdsync/store/crash_points.hpp"
#include "mdsync/store/pg_arrays.hpp"
#include "side_table_sql.hpp"
#include "trigger_side.hpp"
#include "trigger_side_sql.hpp"
#include "write_chunk.hpp"

namespace mdsync::store {

std::int64_t TriggerSide::highest_applied_id() {
  pqxx::read_transaction tx(conn());
  return tx.exec1("SELECT coalesce(max(outbox_id), 0) FROM mdsync.applied")[0].as<std::int64_t>();
}

std::vector<WriteResult> TriggerSide::apply(const std::vector<WriteRequest>& requests) {
  // A deadlock with a user's transaction that locks the same rows in another order (or a
  // serialization failure) aborts the side transaction: nothing of it took effect, so it is
  // simply run again. Users' transactions come and go; a few attempts get through.
  for (int attempt = 1;; ++attempt) {
    try {
      return apply_once(requests);
    } catch (const pqxx::statement_completion_unknown&) {
      throw;  // the outcome is unknown: the idempotency keys settle it on the next pass
    } catch (const pqxx::transaction_rollback& e) {
      ++contention_retries_;
      if (attempt >= kContentionAttempts)
        throw SideContention("side " + side_.name +
                             ": write-backs kept deadlocking with other "
                             "transactions (" +
                             std::to_string(attempt) + " attempts): " + first_line(e.what()));
      std::this_thread::sleep_for(std::chrono::milliseconds(20 * attempt));
    }
  }
}

namespace {

// The text between the double quotes after `marker` in a server message ("constraint \"x\"").
std::optional<std::string> quoted_after(const std::string& message, const std::string& marker) {
  const std::size_t at = message.find(marker + "\"");
  if (at == std::string::npos) return std::nullopt;
  const std::size_t from = at + marker.size() + 1;
  const std::size_t to = message.find('"', from);
  if (to == std::string::npos) return std::nullopt;
  return message.substr(from, to - from);
}

// An idempotency key the side holds (mdsync.applied): the request was applied by an earlier
// attempt, with the row key it recorded, or withdrawn (cancelled).
struct Recorded {
  std::optional<std::string> row_key;
  bool cancelled = false;
};

// A row of `SELECT outbox_id, row_key, cancelled FROM mdsync.applied`.
Recorded recorded_of(const pqxx::row& row) {
  return Recorded{
      row[1].is_null() ? std::nullopt : std::optional<std::string>(row[1].as<std::string>()),
      row[2].as<bool>()};
}

// The value -> rows map of a lookup table: each row holding the value, with its key and its
// `within` columns, as text.
using LookupRows =
    std::map<std::string, std::vector<std::pair<std::string, std::vector<core::Value>>>>;

// One attempt of TriggerSide::apply inside its side transaction, as the stages it runs in
// order: find the idempotency keys already recorded, record withdrawn writes as cancelled,
// put the values in the side's terms (a value the side cannot hold fails its row alone),
// resolve lookups, group the rest by table, kind and column set and write each group a chunk
// at a time (write_chunk.cpp: lock, check the base, write and record the idempotency keys; a
// refused chunk redone row by row), classify the side's refusals, then mark which superseded
// rows have captured changes still to reconcile. Results are kept in request order.
class WritePass {
 public:
  WritePass(pqxx::transaction_base& tx, pqxx::connection_base& c, const config::Config& config,
            const std::string& side, const FieldTransforms& transforms,
            const std::vector<WriteRequest>& requests)
      : tx_(tx),
        c_(c),
        config_(config),
        side_(side),
        transforms_(transforms),
        requests_(requests),
        results_(requests.size()),
        prepared_(requests.size()),
        skip_(requests.size(), false) {}

  void find_recorded();
  void record_cancellations();
  void to_side_terms();
  void resolve_lookups();
  std::vector<WriteGroup> group();
  void write(const std::vector<WriteGroup>& groups);
  void classify_refusals();
  void mark_unreconciled();
  std::vector<WriteResult> results() && { return std::move(results_); }

 private:
  const config::SideMapping* side_mapping(const std::string& entity) const {
    const config::EntityConfig* e = config_.entity(entity);
    return e ? e->mapping_for(side_) : nullptr;
  }
  // Request k's row fails alone: the side cannot hold the value of `field`.
  void fail(std::size_t k, const std::string& field, const std::string& why) {
    skip_[k] = true;
    results_[k].status = WriteResult::Status::kUnwritable;
    results_[k].field = field;
    results_[k].error = why;
  }
  bool writes_drifted_column(std::size_t k, const config::SideMapping& m);
  // The columns and types of the mapping's table, read once per attempt: the drift check and
  // the writes take them from the same catalog read.
  const ColumnTypes& types_of(const config::SideMapping& m);
  void resolve_lookup(const std::string& entity, const std::string& field,
                      const std::set<std::string>& wanted, bool within_round);
  std::map<std::size_t, std::vector<core::Value>> lookup_context(const config::EntityConfig& entity,
                                                                 const config::SideMapping& m,
                                                                 const mapping::Lookup& l,
                                                                 const std::string& field);
  LookupRows lookup_rows(const config::SideMapping& m, const mapping::Lookup& l,
                         const std::set<std::string>& wanted);
  const config::SideMapping* to_write(std::size_t k);
  void write_group(const WriteGroup& g, const ColumnTypes& types);
  void write_one_by_one(const WriteGroup& g, const ColumnTypes& types, bool batchable,
                        bool has_json_column, const std::vector<const Prepared*>& reqs,
                        const std::vector<WriteResult*>& res);
  void classify_refusal(std::size_t k);

  pqxx::transaction_base& tx_;
  pqxx::connection_base& c_;
  const config::Config& config_;
  const std::string& side_;
  const FieldTransforms& transforms_;
  const std::vector<WriteRequest>& requests_;
  std::vector<WriteResult> results_;
  std::map<std::int64_t, Recorded> recorded_;  // by outbox id
  std::vector<Prepared> prepared_;
  std::vector<bool> skip_;  // failed before anything was written (fail)
  std::map<std::string, std::set<std::string>> drifted_;  // entity -> its mapped columns gone
  std::map<std::string, ColumnTypes> types_;              // by quoted table name
  // Lookups to resolve: (entity, field) -> side values wanted.
  std::map<std::pair<std::string, std::string>, std::set<std::string>> lookups_;
};

// Idempotency keys of the whole batch in one statement: a request found here was written
// by an earlier attempt that committed on this side while its control update was lost.
// A request found cancelled was withdrawn by an earlier attempt of its cancellation.
void WritePass::find_recorded() {
  std::vector<std::int64_t> ids;
  for (const WriteRequest& req : requests_) ids.push_back(req.outbox_id);
  if (!ids.empty())
    for (const auto& row :
         tx_.exec_params("SELECT outbox_id, row_key, cancelled FROM mdsync.applied"
                         " WHERE outbox_id = ANY($1::bigint[])",
                         pg_bigint_array(ids)))
      recorded_[row[0].as<std::int64_t>()] = recorded_of(row);
}

// Withdrawn writes not applied before are recorded as cancelled, in this transaction: the
// id can then never be applied by a late retry of the write itself.
void WritePass::record_cancellations() {
  std::vector<std::int64_t> cancelled;
  for (std::size_t k = 0; k < requests_.size(); ++k) {
    auto d = recorded_.find(requests_[k].outbox_id);
    if (d != recorded_.end() && d->second.cancelled) {
      results_[k].status = WriteResult::Status::kCancelled;
    } else if (requests_[k].cancel && d == recorded_.end()) {
      results_[k].status = WriteResult::Status::kCancelled;
      cancelled.push_back(requests_[k].outbox_id);
    }
  }
  if (cancelled.empty()) return;
  std::set<std::int64_t> recorded;
  for (const auto& row :
       tx_.exec_params("INSERT INTO mdsync.applied (outbox_id, row_key, cancelled)"
                       " SELECT unnest($1::bigint[]), NULL, true"
                       " ON CONFLICT DO NOTHING RETURNING outbox_id",
                       pg_bigint_array(cancelled)))
    recorded.insert(row[0].as<std::int64_t>());
  if (recorded.size() == cancelled.size()) return;
  // An id not recorded was applied after all, by an earlier attempt whose transaction
  // committed only now (its session outlived a broken connection): reported applied.
  for (const auto& row : tx_.exec_params("SELECT outbox_id, row_key, cancelled FROM mdsync.applied"
                                         " WHERE outbox_id = ANY($1::bigint[])",
                                         pg_bigint_array(cancelled))) {
    const auto id = row[0].as<std::int64_t>();
    if (recorded.count(id) || row[2].as<bool>()) continue;
    recorded_[id] = recorded_of(row);
    for (std::size_t k = 0; k < requests_.size(); ++k)
      if (requests_[k].outbox_id == id) results_[k].status = WriteResult::Status::kApplied;
  }
}

// Each value in the side's terms. A golden value this side cannot hold (outside its value
// map, more decimals than its scale, a code its lookup table lacks) fails this row's write
// alone, with the reason, and the golden value stays: the value was valid where it came
// from, so it is not the source's change that is wrong, and writing anything else (NULL, a
// rounded number) would be a wrong value on this side. The steward sees the failed write in
// the outbox and the log; the other rows and sides go on.
void WritePass::to_side_terms() {
  for (std::size_t k = 0; k < requests_.size(); ++k) {
    const WriteRequest& req = requests_[k];
    prepared_[k].req = &req;
    if (results_[k].status == WriteResult::Status::kCancelled) continue;
    results_[k].row_key = req.row_key;
    prepared_[k].side = req.values;
    if (recorded_.count(req.outbox_id) || req.cancel || req.kind == core::RowWrite::Kind::kDelete)
      continue;
    const config::SideMapping* m = side_mapping(req.entity);
    if (m == nullptr || writes_drifted_column(k, *m)) continue;
    for (auto& [field, value] : prepared_[k].side) {
      const mapping::FieldTransform* t = transforms_.find(req.entity, side_, field);
      if (t == nullptr) continue;
      const mapping::Converted s = t->to_side(value);
      if (!s.ok()) {
        fail(k, field, s.reason());
        break;
      }
      value = s.value();
      const mapping::FieldMapping* fm = m->field_mapping(field);
      if (fm && fm->lookup && value) lookups_[{req.entity, field}].insert(*value);
    }
  }
}

// A column dropped or renamed since init is not written (the capture trigger no longer
// reads it either) until the mapping and the side agree again: request k fails when it
// sets one.
bool WritePass::writes_drifted_column(std::size_t k, const config::SideMapping& m) {
  const WriteRequest& req = requests_[k];
  auto gone = drifted_.find(req.entity);
  if (gone == drifted_.end())
    gone = drifted_.emplace(req.entity, drifted_columns(types_of(m), m)).first;
  for (const auto& [field, value] : prepared_[k].side) {
    (void)value;
    const std::string* column = m.column_of(field);
    if (column == nullptr || !gone->second.count(*column)) continue;
    fail(k, field,
         "column '" + *column + "' of " + m.schema + "." + m.table +
             " is gone (dropped or renamed since init: mapping drift); not written, the golden "
             "value stays. Fix the side or the mapping and rerun `mdsync init`");
    break;
  }
  return skip_[k];
}

// A lookup within another field (a state's code within the row's country) is resolved after
// the others: its context is that field's side value, which may be a key just looked up.
void WritePass::resolve_lookups() {
  for (const bool within_round : {false, true})
    for (const auto& [what, wanted] : lookups_) {
      const mapping::Lookup& l = *side_mapping(what.first)->field_mapping(what.second)->lookup;
      if (l.within.empty() == within_round) continue;
      resolve_lookup(what.first, what.second, wanted, within_round);
    }
}

// Each side value of the field (as the requests of the entity set it) replaced by the key of
// the lookup row that holds it; a value no row holds, or several do, fails its request.
void WritePass::resolve_lookup(const std::string& entity_name, const std::string& field,
                               const std::set<std::string>& wanted, bool within_round) {
  const config::EntityConfig& entity = *config_.entity(entity_name);
  const config::SideMapping& m = *entity.mapping_for(side_);
  const mapping::Lookup& l = *m.field_mapping(field)->lookup;
  std::map<std::size_t, std::vector<core::Value>> context;
  if (within_round) context = lookup_context(entity, m, l, field);
  const LookupRows rows = lookup_rows(m, l, wanted);
  const std::string where = lookup_name(m, l);
  const std::string value_name =
      l.value + (l.value_path.empty() ? "" : " " + path_array_text(l.value_path));
  for (std::size_t k = 0; k < requests_.size(); ++k) {
    if (skip_[k] || requests_[k].entity != entity_name) continue;
    auto v = prepared_[k].side.find(field);
    if (v == prepared_[k].side.end() || !v->second) continue;
    std::vector<std::string> found;
    std::string within_text;
    if (auto f = rows.find(*v->second); f != rows.end())
      for (const auto& [key, within] : f->second)
        if (!within_round ||
            (within == context[k] &&
             std::none_of(within.begin(), within.end(), [](const core::Value& w) { return !w; })))
          found.push_back(key);
    for (std::size_t i = 0; within_round && i < l.within.size(); ++i)
      within_text += std::string(i ? " and " : " with ") + l.within[i].first + " = " +
                     core::show(context[k][i]);
    if (found.empty())
      fail(k, field,
           "'" + *v->second + "' is not a " + value_name + " of " + where + within_text +
               " (lookup)");
    else if (found.size() > 1)
      fail(k, field,
           "'" + *v->second + "' is the " + value_name + " of " + std::to_string(found.size()) +
               " rows of " + where + within_text + "; the lookup cannot tell which one");
    else
      v->second = found.front();
  }
}

// The context of each request of a lookup within other fields: the within fields' side
// values as the write sets them, else (an update that does not set them) as the row holds
// them now.
std::map<std::size_t, std::vector<core::Value>> WritePass::lookup_context(
    const config::EntityConfig& entity, const config::SideMapping& m, const mapping::Lookup& l,
    const std::string& field) {
  std::map<std::size_t, std::vector<core::Value>> context;
  std::map<std::size_t, std::vector<bool>> from_row;
  std::vector<std::string> rows_to_read;
  for (std::size_t k = 0; k < requests_.size(); ++k) {
    if (skip_[k] || requests_[k].entity != entity.name) continue;
    auto v = prepared_[k].side.find(field);
    if (v == prepared_[k].side.end() || !v->second) continue;
    for (const auto& [lookup_column, other] : l.within) {
      (void)lookup_column;
      auto o = prepared_[k].side.find(other);
      const bool read = o == prepared_[k].side.end() &&
                        requests_[k].kind == core::RowWrite::Kind::kUpdate &&
                        !requests_[k].row_key.empty();
      context[k].push_back(o == prepared_[k].side.end() ? core::Value{} : o->second);
      from_row[k].push_back(read);
      if (read) rows_to_read.push_back(requests_[k].row_key);
    }
  }
  if (rows_to_read.empty()) return context;
  const ColumnTypes types = column_types(tx_, table_name(c_, m));
  const SideTableSql sql(c_, entity, m, types);
  std::string sel = "SELECT u.k";
  for (const auto& [lookup_column, other] : l.within) {
    (void)lookup_column;
    sel += ", t." + c_.quote_name(*m.column_of(other)) + "::text";
  }
  std::map<std::string, pqxx::row> now;
  const pqxx::result r =
      tx_.exec_params(sel + " FROM " + sql.table() + " t JOIN unnest($1::text[]) u(k) ON " +
                          sql.key_equals("t", "u.k"),
                      pg_text_array(rows_to_read));
  for (const auto& row : r) now.emplace(row[0].as<std::string>(), row);
  for (auto& [k, ctx] : context) {
    auto row = now.find(requests_[k].row_key);
    for (std::size_t i = 0; i < ctx.size(); ++i)
      if (from_row[k][i] && row != now.end() && !row->second[static_cast<int>(i) + 1].is_null())
        ctx[i] = row->second[static_cast<int>(i) + 1].as<std::string>();
  }
  return context;
}

// The lookup table's rows that hold any of the wanted values.
LookupRows WritePass::lookup_rows(const config::SideMapping& m, const mapping::Lookup& l,
                                  const std::set<std::string>& wanted) {
  LookupRows rows;
  std::string sel = "SELECT " + lookup_value(c_, l, "l") + ", l." + c_.quote_name(l.key) + "::text";
  for (const auto& [lookup_column, other] : l.within) {
    (void)other;
    sel += ", l." + c_.quote_name(lookup_column) + "::text";
  }
  std::vector<std::string> values(wanted.begin(), wanted.end());
  for (const auto& r : tx_.exec_params(sel + " FROM " + lookup_table(c_, m, l) + " l WHERE " +
                                           lookup_value(c_, l, "l") + " = ANY($1::text[])",
                                       pg_text_array(values))) {
    std::vector<core::Value> within;
    for (std::size_t i = 0; i < l.within.size(); ++i) {
      const pqxx::field f = r[static_cast<int>(i) + 2];
      within.push_back(f.is_null() ? core::Value{} : core::Value{f.as<std::string>()});
    }
    rows[r[0].as<std::string>()].emplace_back(r[1].as<std::string>(), std::move(within));
  }
  return rows;
}

// The mapping request k is written with; null when it is not written (failed already,
// withdrawn, found applied, its row no longer linked, its entity not mapped here), its result
// then final.
const config::SideMapping* WritePass::to_write(std::size_t k) {
  const WriteRequest& req = requests_[k];
  WriteResult& res = results_[k];
  if (skip_[k] || res.status == WriteResult::Status::kCancelled) return nullptr;
  if (auto d = recorded_.find(req.outbox_id); d != recorded_.end()) {
    if (d->second.row_key) res.row_key = *d->second.row_key;
    return nullptr;
  }
  // A withdrawn write not found applied was recorded as cancelled above; one found applied
  // is reported applied, so the engine takes in what the side holds.
  if (req.cancel) return nullptr;
  // The row this update or delete was for is no longer linked (its link went after the write
  // was queued): nothing to write; the record is planned again.
  if (req.kind != core::RowWrite::Kind::kInsert && req.row_key.empty()) {
    res.status = WriteResult::Status::kSuperseded;
    return nullptr;
  }
  const config::SideMapping* m = side_mapping(req.entity);
  if (m == nullptr) {
    res.status = WriteResult::Status::kFailed;
    res.error = "entity " + req.entity + " is not mapped on side " + side_;
  }
  return m;
}

// The rest, grouped by entity, kind and columns (in order of first appearance): each group
// is written with a few statements per chunk instead of a few per row. The writes of one
// pass are of distinct records; grouping only reorders them inside the one side transaction.
std::vector<WriteGroup> WritePass::group() {
  std::vector<WriteGroup> groups;
  std::map<std::tuple<std::string, int, std::vector<std::string>>, std::size_t> group_of;
  for (std::size_t k = 0; k < requests_.size(); ++k) {
    const config::SideMapping* m = to_write(k);
    if (m == nullptr) continue;
    const WriteRequest& req = requests_[k];
    std::vector<std::string> fields;
    const bool restore =
        req.kind == core::RowWrite::Kind::kInsert && !req.row_key.empty() && m->soft_delete;
    if (req.kind == core::RowWrite::Kind::kUpdate) {
      for (const auto& [field, value] : req.values)
        if (m->column_of(field) != nullptr) fields.push_back(field);
    } else if (req.kind == core::RowWrite::Kind::kInsert) {
      for (const auto& [field, column] : m->columns)
        if (req.values.count(field)) fields.push_back(field);
    }
    bool mapped = false;
    for (const std::string& f : fields) mapped = mapped || !m->field_mapping(f)->plain();
    const bool row_options = m->key_columns.size() > 1 || !m->timezone.empty() ||
                             !m->scope.empty() || m->soft_delete || !m->delete_guards.empty();
    auto [it, added] = group_of.emplace(
        std::make_tuple(req.entity, static_cast<int>(req.kind) * 2 + (restore ? 1 : 0), fields),
        groups.size());
    if (added)
      groups.push_back(
          WriteGroup{m, req.kind, std::move(fields), {}, mapped, row_options, restore});
    groups[it->second].members.push_back(k);
  }
  return groups;
}

const ColumnTypes& WritePass::types_of(const config::SideMapping& m) {
  const std::string table = table_name(c_, m);
  auto t = types_.find(table);
  if (t == types_.end()) t = types_.emplace(table, column_types(tx_, table)).first;
  return t->second;
}

void WritePass::write(const std::vector<WriteGroup>& groups) {
  for (const WriteGroup& g : groups) write_group(g, types_of(*g.mapping));
}

// The group a chunk at a time, each chunk in one apply_chunk (a savepoint); a chunk the side
// refuses is redone row by row.
void WritePass::write_group(const WriteGroup& g, const ColumnTypes& types) {
  const config::EntityConfig& entity = *config_.entity(requests_[g.members.front()].entity);
  // An update with nothing to set or an insert of no column is malformed: the row-by-row
  // path reports the side's error for it.
  const bool batchable = g.kind == core::RowWrite::Kind::kDelete || !g.fields.empty();
  // apply_one compares with untyped parameters, which json (no equality operator) refuses;
  // a group with a json column is redone through apply_chunk, which compares it as jsonb.
  bool has_json_column = false;
  for (const std::string& f : g.fields) {
    auto col = types.find(g.mapping->field_mapping(f)->column);
    has_json_column = has_json_column || (col != types.end() && col->second.base == "json");
  }
  std::size_t next = 0;
  while (next < g.members.size()) {
    // A chunk holds each row key once: two writes of one row in one UPDATE ... FROM would
    // let only one of them take effect.
    std::vector<const Prepared*> reqs;
    std::vector<WriteResult*> res;
    std::set<std::string> keys;
    for (; next < g.members.size() && reqs.size() < kChunkRows; ++next) {
      const Prepared& p = prepared_[g.members[next]];
      if (g.kind != core::RowWrite::Kind::kInsert && !keys.insert(p.req->row_key).second) break;
      reqs.push_back(&p);
      res.push_back(&results_[g.members[next]]);
    }
    bool batched = false;
    if (batchable) {
      try {
        apply_chunk(tx_, c_, entity, transforms_, side_, g, types, reqs, res);
        batched = true;
      } catch (const pqxx::broken_connection&) {
        throw;
      } catch (const pqxx::transaction_rollback&) {
        throw;
      } catch (const std::runtime_error&) {
        // The side refused a row (pqxx::sql_error), the insert order did not hold, or the
        // mapping names a column the table lacks: the savepoint undid the whole chunk.
      }
    }
    if (!batched) {
      write_one_by_one(g, types, batchable, has_json_column, reqs, res);
      continue;
    }
    // One crash-point hit per row, as on the row-by-row path, so MDSYNC_CRASH_AFTER=N still
    // means "killed after the Nth write": here after the statement that made it, with the
    // side transaction still open.
    for (std::size_t k = 0; k < res.size(); ++k) crash_point("writeback.mid_side");
  }
}

// Row by row, each in its own savepoint: a row the side refuses fails alone. Mapped fields
// take the same statements as a chunk of one row, so their condition and their jsonb and
// lookup writes have one implementation.
void WritePass::write_one_by_one(const WriteGroup& g, const ColumnTypes& types, bool batchable,
                                 bool has_json_column, const std::vector<const Prepared*>& reqs,
                                 const std::vector<WriteResult*>& res) {
  const config::EntityConfig& entity = *config_.entity(requests_[g.members.front()].entity);
  for (std::size_t k = 0; k < reqs.size(); ++k) {
    *res[k] = WriteResult{WriteResult::Status::kApplied, reqs[k]->req->row_key, ""};
    if ((!g.mapped && !g.row_options && !has_json_column) || !batchable) {
      apply_one(tx_, c_, *g.mapping, *reqs[k]->req, *res[k]);
      continue;
    }
    try {
      apply_chunk(tx_, c_, entity, transforms_, side_, g, types, {reqs[k]}, {res[k]});
      crash_point("writeback.mid_side");
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const pqxx::transaction_rollback&) {
      throw;
    } catch (const pqxx::sql_error& e) {
      *res[k] =
          WriteResult{WriteResult::Status::kFailed, reqs[k]->req->row_key, first_line(e.what())};
      res[k]->sqlstate = e.sqlstate();
    } catch (const std::runtime_error& e) {
      *res[k] =
          WriteResult{WriteResult::Status::kFailed, reqs[k]->req->row_key, first_line(e.what())};
    }
  }
}

// A row the side's database refused (a unique index, a CHECK, a NOT NULL, a trigger) is a
// write_refused conflict for the steward when the refusal names a field this write sets.
void WritePass::classify_refusals() {
  for (std::size_t k = 0; k < requests_.size(); ++k)
    if (results_[k].status == WriteResult::Status::kFailed && !results_[k].sqlstate.empty())
      classify_refusal(k);
}

// A row write the side's database refused, made kUnwritable (refused) when the refusal names
// a field the write sets; else left kFailed.
void WritePass::classify_refusal(std::size_t k) {
  const WriteRequest& req = requests_[k];
  const core::FieldValues& side_values = prepared_[k].side;
  WriteResult& res = results_[k];
  const std::string& state = res.sqlstate;
  // Integrity constraints (class 23) and a trigger's RAISE EXCEPTION (P0001).
  if (state.compare(0, 2, "23") != 0 && state != "P0001") return;
  if (req.kind == core::RowWrite::Kind::kDelete || req.cancel) return;
  const config::SideMapping* m = side_mapping(req.entity);
  if (m == nullptr) return;
  // The columns the refusal names: NOT NULL names its column; a constraint or unique index
  // its columns (in the table's order).
  std::vector<std::string> columns;
  std::string what;
  if (state == "23502") {
    if (auto col = quoted_after(res.error, "column ")) columns.push_back(*col);
    what = "NOT NULL";
  } else if (auto name = quoted_after(res.error, "constraint ")) {
    what = "constraint " + *name;
    for (const auto& row : tx_.exec_params(
             "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = to_regclass($1)"
             " AND a.attnum IN (SELECT unnest(k.conkey) FROM pg_constraint k"
             "  WHERE k.conrelid = to_regclass($1) AND k.conname = $2"
             "  UNION SELECT unnest(i.indkey::int2[]) FROM pg_index i JOIN pg_class ic"
             "  ON ic.oid = i.indexrelid WHERE i.indrelid = to_regclass($1) AND ic.relname = $2)"
             " ORDER BY a.attnum",
             table_name(tx_.conn(), *m), *name))
      columns.push_back(row[0].as<std::string>());
  } else {
    what = "a trigger";
  }
  // The field it is about: the first one this write sets in those columns; a refusal that
  // names no column (a trigger) is about the write's field when it sets only one.
  std::string field;
  for (const std::string& col : columns)
    for (const auto& [f, v] : req.values) {
      (void)v;
      const std::string* c = m->column_of(f);
      if (field.empty() && c != nullptr && *c == col) field = f;
    }
  if (field.empty() && columns.empty() && req.values.size() == 1) field = req.values.begin()->first;
  if (field.empty()) return;  // stays a failed write-back, an error item (mdsync errors)
  const auto written = side_values.find(field);
  res.status = WriteResult::Status::kUnwritable;
  res.refused = true;
  res.field = field;
  res.error = side_ + "'s database refused " + *m->column_of(field) + " = " +
              (written == side_values.end() ? std::string("NULL") : core::show(written->second)) +
              " on " + m->schema + "." + m->table + " (" + what + "): " + res.error;
}

// Which superseded rows have captured changes still to reconcile (they explain the
// difference): one statement for the whole batch, asked only when something was superseded.
void WritePass::mark_unreconciled() {
  std::vector<std::size_t> superseded;
  std::vector<std::string> sup_entities, sup_keys;
  for (std::size_t k = 0; k < requests_.size(); ++k)
    if (results_[k].status == WriteResult::Status::kSuperseded && !results_[k].row_key.empty()) {
      superseded.push_back(k);
      sup_entities.push_back(requests_[k].entity);
      sup_keys.push_back(results_[k].row_key);
    }
  if (superseded.empty()) return;
  const pqxx::result r = tx_.exec_params(
      "SELECT u.i, EXISTS (SELECT 1 FROM mdsync.capture c WHERE c.entity = u.e"
      " AND c.row_key = u.k) FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(e, k, i)"
      " ORDER BY u.i",
      pg_text_array(sup_entities), pg_text_array(sup_keys));
  for (const auto& row : r)
    results_[superseded[row[0].as<std::size_t>() - 1]].unreconciled_capture = row[1].as<bool>();
}

}  // namespace

std::vector<WriteResult> TriggerSide::apply_once(const std::vector<WriteRequest>& requests) {
  pqxx::connection_base& c = conn();
  pqxx::work tx(c);
  hold_ownership(tx);
  // The engine's writes are this transaction's: the capture trigger skips exactly them.
  if (bound_) tx.exec_params("SELECT set_config('mdsync.origin', $1, true)", key_.secret);
  WritePass pass(tx, c, config_, side_.name, *transforms_, requests);
  pass.find_recorded();
  pass.record_cancellations();
  pass.to_side_terms();
  pass.resolve_lookups();
  pass.write(pass.group());
  pass.classify_refusals();
  pass.mark_unreconciled();
  tx.commit();
  return std::move(pass).results();
}

}  // namespace mdsync::store
