// The control store's match-key index (schema/control/0003_match_keys.sql) and the decision
// it serves: when a row appears on a side without a link, is it a record the engine already
// has (link it), a new one (create it), or possibly one of several (ask the steward)?
//
// The index holds each live golden record's keys (record_keys: of its golden values and of what
// each linked side holds).
// A batch sees its own changes before they are written: records it created or whose key
// fields it changed are looked up by their current keys, not by the rows the index still
// holds for them, and flush() writes their keys once, at the end of the batch.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "mdsync/config/config.hpp"
#include "mdsync/core/decision.hpp"
#include "mdsync/core/record_state.hpp"
#include "mdsync/mapping/match_keys.hpp"

namespace pqxx {
class transaction_base;
}

namespace mdsync::store {

class MatchIndex {
 public:
  // `matching`: some entity has a match spec, so flush() also keeps the candidates of open
  // possible_duplicate conflicts out of their conflict's side (one statement per batch).
  explicit MatchIndex(pqxx::transaction_base& tx, bool matching = true)
      : tx_(tx), matching_(matching) {}

  // What each key finds: live records holding the same key value, as this batch sees them.
  std::vector<mapping::KeyHits> find(const config::EntityConfig& entity,
                                     const std::vector<mapping::MatchKey>& keys);
  // The record's golden values as the batch now has them (created, key fields changed,
  // deleted): later finds see them, and flush() stores them.
  void changed(const config::EntityConfig& entity, std::int64_t golden_id,
               const core::RecordState& now);
  // A possible_duplicate conflict on `side` names these records: flush() records them and
  // cancels their pending inserts into `side`, after the batch has planned its write-backs.
  void hold_inserts(std::int64_t conflict_id, const std::string& side,
                    const std::vector<std::int64_t>& candidates);
  // Writes the keys of the records changed() named and the candidates of conflicts opened, and
  // cancels any pending insert of an open possible_duplicate conflict's candidate into its
  // side (the batch may have planned one for a candidate it changed). Call it after the
  // batch's write-backs are planned.
  void flush();

 private:
  // Rebuilds the entity's keys when they were built with another match spec (or never).
  void ensure_current(const config::EntityConfig& entity);

  struct Current {
    std::string entity;
    std::vector<mapping::MatchKey> keys;  // empty for a deleted record
  };
  pqxx::transaction_base& tx_;
  bool matching_;
  std::map<std::int64_t, Current> changed_;
  // changed_ by key (entity, name, value, fuzzy), so a find does not scan every record the
  // batch changed (sync --initial changes them all).
  using ChangedKey = std::tuple<std::string, std::string, std::string, bool>;
  std::map<ChangedKey, std::set<std::int64_t>> changed_keys_;
  std::set<std::string> checked_;  // entities whose spec was compared this transaction
  struct Held {
    std::int64_t conflict_id;
    std::string side;
    std::vector<std::int64_t> candidates;
  };
  std::vector<Held> held_;
};

// Whether a plan created or deleted the record, or changed a golden value a key is built from:
// only then do its keys need recomputing.
bool plan_changes_keys(const mapping::MatchSpec& spec, const core::Plan& plan);

// A live record's keys: from golden and from what each linked side holds (its base), so a row
// that appears on a side is found by the values the other sides hold, whoever owns the key's
// fields (a website the CRM owns, which golden has not taken yet, still links a CRM row to the
// ERP's record). None for a deleted record.
std::vector<mapping::MatchKey> record_keys(const mapping::MatchSpec& spec,
                                           const core::RecordState& state);

// The outbox note of a record's insert into a side that was not made: the side already holds
// the row, now linked by a match key.
inline constexpr const char* kLinkedNotInserted =
    "not inserted: the side already holds the row, linked by a match key";

// A row's match, in golden ids.
struct RowMatch {
  mapping::MatchOutcome outcome = mapping::MatchOutcome::kCreate;
  std::int64_t target = 0;               // kLink: the record to link the row to
  std::vector<std::int64_t> candidates;  // kPossibleDuplicate: the records it may be
  std::string reason;                    // kPossibleDuplicate: which key found what
};

// The record as the caller sees it now (nullptr: there is none), and how to name one in a
// reason ("record 12").
using StateOf = std::function<const core::RecordState*(std::int64_t)>;
using NameOf = std::function<std::string(std::int64_t)>;
std::string record_name(std::int64_t golden_id);

// Builds the row's keys from its canonical `values` and decides (mapping::decide_match) among
// the live records they find. A record the decision would link to that already has a row on
// `side` is a duplicate within that side: possible_duplicate, never a second link.
RowMatch match_row(MatchIndex& index, const config::EntityConfig& entity, const std::string& side,
                   const core::FieldValues& values, const StateOf& state_of,
                   const NameOf& name_of = record_name);

// The golden ids a possible_duplicate conflict names (duplicate_candidate).
std::vector<std::int64_t> duplicate_candidates(pqxx::transaction_base& tx,
                                               std::int64_t conflict_id);

// The plan of a possible duplicate: a `possible_duplicate` conflict on the record unit
// (no golden record yet) holding the row's values and each candidate's golden values, and its
// audited decision. Nothing is created.
core::Plan duplicate_plan(const std::string& entity, const std::string& side,
                          const std::string& source, std::int64_t ruleset_version,
                          const core::FieldValues& values, const RowMatch& match,
                          const StateOf& state_of, const NameOf& name_of = record_name);

}  // namespace mdsync::store
