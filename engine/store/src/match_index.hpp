// The control store's match-key index (schema/control/0003_match_keys.sql, 0011) and the
// decision it serves: when a row appears on a side without a link, is it a record the engine
// already has (link it), a new one (create it), a row another side holds back (create the
// record and link that row to it), or possibly one of several (ask the steward)?
//
// The index holds each live golden record's keys (record_keys: of its golden values and of what
// each linked side holds; a fuzzy key under its blocking keys, with its value to compare), and
// the exact keys of each row an open unauthorized_create or possible_duplicate conflict holds
// (a CRM prospect the ERP has not made a customer yet), built from the held values. A batch
// sees its own changes before they are written: records it created or whose key fields it
// changed, and rows it held, are looked up by their current keys, and flush() writes them
// once, at the end.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
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

  // A row held by an open conflict (no record yet), as find() reports it.
  struct HeldRow {
    std::int64_t conflict_id = 0;
    std::string side, row_key;
  };
  struct Found {
    // Per key: records found by an exact key, or near enough by a fuzzy key (golden ids), and
    // rows held on sides other than the one looking ("held:" and the conflict id).
    std::vector<mapping::KeyHits> hits;
    std::map<std::int64_t, HeldRow> held;  // by conflict id
  };
  // What each key finds, as this batch sees it: live records holding the same value (exact
  // keys) or a value near enough (fuzzy keys), and rows of sides other than `side` held by
  // open conflicts that hold the same value (exact keys).
  Found find(const config::EntityConfig& entity, const std::string& side,
             const std::vector<mapping::MatchKey>& keys);
  // Reads what these keys (of many rows of `side`) find in the store, in one statement, so
  // that find() for those rows sends none: the store's keys do not change before flush(), and
  // what the batch itself changes find() sees as always.
  // Returns the records the store's keys found (golden ids), for the caller to load at once.
  std::vector<std::int64_t> prefetch(const config::EntityConfig& entity, const std::string& side,
                                     const std::vector<mapping::MatchKey>& keys);
  // The row open conflict `conflict_id` holds changed: it was held (an unauthorized_create or
  // possible_duplicate opened), a later capture attached to its conflict, or it is gone from
  // its side (`gone`). Reads the conflict (one statement): later finds see the row's keys as
  // its held values now make them, none once the conflict is closed or the row gone; flush()
  // stores them.
  void held_changed(const config::EntityConfig& entity, std::int64_t conflict_id,
                    bool gone = false);
  // The same, for the row (entity, side, row_key) if an open conflict holds it: it was deleted
  // on its side, so it is no longer a candidate.
  void held_row_gone(const config::EntityConfig& entity, const std::string& side,
                     const std::string& row_key);
  // The values the row conflict `conflict_id` holds (those that opened it, then each later
  // capture attached), as this batch sees them.
  core::FieldValues held_values(std::int64_t conflict_id);
  // The record's golden values as the batch now has them (created, key fields changed,
  // deleted): later finds see them, and flush() stores them.
  void changed(const config::EntityConfig& entity, std::int64_t golden_id,
               const core::RecordState& now);
  // The same, with the record's keys already built (record_keys of its state).
  void changed(const config::EntityConfig& entity, std::int64_t golden_id,
               std::vector<mapping::MatchKey> keys);
  // A possible_duplicate conflict on `side` names these records: flush() records them and
  // cancels their pending inserts into `side`, after the batch has planned its write-backs.
  void hold_inserts(std::int64_t conflict_id, const std::string& side,
                    const std::vector<std::int64_t>& candidates);
  // Writes the keys of the records changed() named, the keys of the held rows held_changed()
  // named, and the candidates of conflicts opened. A record changed() named whose exact key
  // finds a row held on a side where the record has no row is held back from that side too
  // (a candidate of the row's conflict): inserting it there would duplicate the held row. Then
  // cancels any pending insert of an open conflict's candidate into the conflict's side (the
  // batch may have planned one). Call it after the batch's write-backs are planned.
  void flush();

 private:
  // Rebuilds the entity's keys (records' and held rows') when they were built with another
  // match spec (or never).
  void ensure_current(const config::EntityConfig& entity);

  struct Current {
    std::string entity;
    std::vector<mapping::MatchKey> keys;  // empty for a deleted record
  };
  struct Held {
    std::string entity, side, row_key;
    core::FieldValues values;
    std::vector<mapping::MatchKey> keys;  // exact keys only; empty once closed or gone
  };
  // What one indexed value finds in the store: a record (its compared value) or a held row.
  struct Stored {
    bool held = false;
    std::int64_t id = 0;  // golden id, or conflict id of a held row
    std::string compared, side, row_key;
  };
  // entity, looking side, key name, indexed value, fuzzy
  using StoredKey = std::tuple<std::string, std::string, std::string, std::string, bool>;
  // Reads the store for the indexed values not read yet in this transaction.
  void read_stored(const config::EntityConfig& entity, const std::string& side,
                   const std::vector<mapping::MatchKey>& keys);

  pqxx::transaction_base& tx_;
  bool matching_;
  std::map<StoredKey, std::vector<Stored>> stored_;
  std::map<std::int64_t, Current> changed_;
  // changed_ by key (entity, name, value, fuzzy; a fuzzy key by each of its blocking keys), so
  // a find does not scan every record the batch changed (sync --initial changes them all).
  using ChangedKey = std::tuple<std::string, std::string, std::string, bool>;
  std::map<ChangedKey, std::set<std::int64_t>> changed_keys_;
  std::map<std::int64_t, Held> held_rows_;                  // by conflict id
  std::map<ChangedKey, std::set<std::int64_t>> held_keys_;  // held_rows_ by exact key
  std::set<std::string> checked_;  // entities whose spec was compared this transaction
  struct HeldInserts {
    std::int64_t conflict_id;
    std::string side;
    std::vector<std::int64_t> candidates;
  };
  std::vector<HeldInserts> held_;
};

// The values a held row's conflict holds: its side's values in `values_json` (the conflict's
// "values"), then each later capture of that side in `attached_json`, later ones winning.
core::FieldValues held_row_values(const std::string& side, const std::string& values_json,
                                  const std::string& attached_json);

// "crm row 'b1f...' (held by conflict 7)".
std::string held_row_name(const MatchIndex::HeldRow& row);

// Whether a plan created or deleted the record, or changed a golden value a key is built from:
// only then do its keys need recomputing.
bool plan_changes_keys(const mapping::MatchSpec& spec, const core::Plan& plan);

// A live record's keys: from golden and from what each linked side holds (its base), so a row
// that appears on a side is found by the values the other sides hold, whoever owns the key's
// fields (a website the CRM owns, which golden has not taken yet, still links a CRM row to the
// ERP's record). None for a deleted record.
std::vector<mapping::MatchKey> record_keys(const mapping::MatchSpec& spec,
                                           const core::RecordState& state);

// Whether two sets of record_keys hold the same keys (in any order).
bool same_keys(const std::vector<mapping::MatchKey>& a, const std::vector<mapping::MatchKey>& b);

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
  // kCreate: the row held by this open conflict on another side is the same record (the only
  // candidate an exact key found): once this row creates the record, link_held_row links it.
  std::int64_t held_link = 0;
  MatchIndex::HeldRow held_link_row;  // that row
  std::string held_link_reason;       // which key found it
  // kPossibleDuplicate: held rows of other sides it may be, with their held values.
  std::vector<std::pair<MatchIndex::HeldRow, core::FieldValues>> held_candidates;
};

// The record as the caller sees it now (nullptr: there is none), and how to name one in a
// reason ("record 12").
using StateOf = std::function<const core::RecordState*(std::int64_t)>;
using NameOf = std::function<std::string(std::int64_t)>;
std::string record_name(std::int64_t golden_id);

// Builds the row's keys from its canonical `values` and decides (mapping::decide_match) among
// the live records and the held rows of other sides they find. A record the decision would
// link to that already has a row on `side` is a duplicate within that side: possible_duplicate,
// never a second link. A held row found alone by the exact keys is `held_link`: the row creates
// the record (if its side may), and the held row is linked to it.
RowMatch match_row(MatchIndex& index, const config::EntityConfig& entity, const std::string& side,
                   const core::FieldValues& values, const StateOf& state_of,
                   const NameOf& name_of = record_name);

// The golden ids a possible_duplicate conflict names (duplicate_candidate).
std::vector<std::int64_t> duplicate_candidates(pqxx::transaction_base& tx,
                                               std::int64_t conflict_id);

// The plan of a possible duplicate: a `possible_duplicate` conflict on the record unit
// (no golden record yet) holding the row's values, each candidate's golden values and each
// held candidate's held values, and its audited decision. Nothing is created.
core::Plan duplicate_plan(const std::string& entity, const std::string& side,
                          const std::string& source, std::int64_t ruleset_version,
                          const core::FieldValues& values, const RowMatch& match,
                          const StateOf& state_of, const NameOf& name_of = record_name);

}  // namespace mdsync::store
