// The record writes of a batch, kept and sent as one multi-row statement per table: golden
// inserts and updates, crosswalk links and bases, conflicts opened, audit rows and queued
// write-backs. RecordRepository fills it in buffered mode and flushes it before anything it
// reads or writes directly, so the transaction always sees the batch's writes in the order
// they were made; a batch of any size costs a handful of statements, not several per row.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace pqxx {
class transaction_base;
}

namespace mdsync::store {

class RecordWriteBuffer {
 public:
  struct Golden {
    std::int64_t id = 0;
    std::string entity;              // inserts only
    std::string values, provenance;  // jsonb texts
    bool deleted = false;
    std::string detached;  // a text[] literal
  };
  struct Link {
    std::string entity, side, row_key;
    std::int64_t golden_id = 0;
    std::string base;  // jsonb text
  };
  struct Conflict {
    std::int64_t id = 0;
    std::string entity;
    std::optional<std::int64_t> golden_id;
    std::string side, row_key, unit, kind, values, reason, source;
    std::int64_t ruleset_version = 0;
    std::string vetoed_by;
  };
  struct Audit {
    std::string entity;
    std::optional<std::int64_t> golden_id;
    std::string unit, decision;
    std::optional<std::string> old_value, new_value, proposed;  // jsonb texts, or SQL NULL
    std::string source, rule;
    std::int64_t ruleset_version = 0;
    std::string reason;
  };
  struct Outbox {
    std::string side, entity;
    std::int64_t golden_id = 0;
    std::string kind, values, expected;
    std::int64_t delay_ms = 0;
  };

  // Ids for rows that others will reference before the rows are sent, taken from the tables'
  // own sequences a block at a time (ids a batch does not use are gaps, as after a rollback).
  std::int64_t next_golden_id(pqxx::transaction_base& tx);
  std::int64_t next_conflict_id(pqxx::transaction_base& tx);

  void insert_golden(Golden g) { golden_inserts_.push_back(std::move(g)), grew(); }
  void update_golden(Golden g) { golden_updates_.push_back(std::move(g)), grew(); }
  // A link must be sent before a later write of the same crosswalk row, so adding one whose
  // row already has a buffered link or base flushes first (`tx`).
  void link(pqxx::transaction_base& tx, Link l);
  // Forgets the record's link to the side (as a link, it flushes first when the crosswalk row
  // already has a buffered link; a link added after it flushes it first).
  void unlink(pqxx::transaction_base& tx, std::int64_t golden_id, const std::string& side);
  void save_base(std::int64_t golden_id, const std::string& side, std::string base);
  // Withdraws the record's pending writes of these kinds to the side (a text[] literal).
  void withdraw(pqxx::transaction_base& tx, std::int64_t golden_id, const std::string& side,
                std::string kinds, std::string why);
  void open_conflict(Conflict c) { conflicts_.push_back(std::move(c)), grew(); }
  void audit(Audit a) { audits_.push_back(std::move(a)), grew(); }
  void enqueue(Outbox o) { outbox_.push_back(std::move(o)), grew(); }

  // True once enough rows are kept that sending them now keeps memory bounded.
  bool full() const { return rows_ >= kFlushRows; }
  bool empty() const { return rows_ == 0; }
  // Sends everything kept, in dependency order: golden rows first (everything else names
  // them), then unlinks, links, bases, withdrawals, conflicts, audit rows and write-backs. Throws
  // what the store refused (a row linked to another record, a unit with an open conflict already);
  // the caller's transaction is then aborted.
  void flush(pqxx::transaction_base& tx);

 private:
  static constexpr std::size_t kFlushRows = 5000;
  void grew() { ++rows_; }
  std::int64_t take(pqxx::transaction_base& tx, const char* table, std::vector<std::int64_t>& pool,
                    std::size_t& block);

  std::vector<Golden> golden_inserts_, golden_updates_;
  std::vector<Link> links_;
  std::set<std::pair<std::int64_t, std::string>> linked_;  // (golden id, side) of links_
  std::set<std::tuple<std::string, std::string, std::string>> link_keys_;
  std::set<std::pair<std::int64_t, std::string>> unlinked_;  // (golden id, side)
  std::vector<std::tuple<std::int64_t, std::string, std::string>> bases_;
  std::set<std::pair<std::int64_t, std::string>> based_;
  struct Withdrawal {
    std::int64_t golden_id;
    std::string side, kinds, why;
  };
  std::vector<Withdrawal> withdrawals_;
  std::vector<Conflict> conflicts_;
  std::vector<Audit> audits_;
  std::vector<Outbox> outbox_;
  std::size_t rows_ = 0;
  std::vector<std::int64_t> golden_pool_, conflict_pool_;
  std::size_t golden_block_ = 8, conflict_block_ = 4;
};

}  // namespace mdsync::store
