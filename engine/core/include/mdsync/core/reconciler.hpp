// The reconciliation core: (rules, record state, change) -> plan and new state. Pure: no
// I/O, no clock, no logging, so every guarantee can be tested here by value. DESIGN.md's
// decision rule is implemented unit by unit (a field, or a group decided as one).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "mdsync/core/change.hpp"
#include "mdsync/core/decision.hpp"
#include "mdsync/core/record_state.hpp"
#include "mdsync/core/ruleset.hpp"

namespace mdsync::core {

struct Reconciliation {
  Plan plan;
  RecordState after;  // new conflicts carry id 0 until the store saves them
};

// Decides one change against the record's state. `state.exists` false with an upsert is
// a create from `change.side`.
Reconciliation reconcile(const EntityRules& rules, std::int64_t ruleset_version,
                         const RecordState& state, const Change& change);

// The same decision, updating `state` in place: the engine's hot path, which costs nothing
// for the fields a change does not touch (no copy of the record).
Plan reconcile_in_place(const EntityRules& rules, std::int64_t ruleset_version, RecordState& state,
                        const Change& change);

// A steward's decision on an open conflict.
struct Resolution {
  // For a foreign_delete conflict: kTakeSide with the deleting side accepts the delete,
  // kDismiss restores the row.
  enum class Kind { kTakeSide, kValue, kDismiss };
  Kind kind = Kind::kTakeSide;
  std::string side;    // kTakeSide: the value the engine last saw on that side
  FieldValues values;  // kValue: explicit values for the unit's members
  std::string steward;
  std::string note;
  // When the steward decided (microseconds since the epoch, from the caller's clock): a later
  // side edit wins a last_writer_wins unit over it, an earlier one does not.
  std::int64_t time_us = 0;
};

// Thrown when a resolution cannot be applied (unknown side, invalid explicit value, a
// conflict kind that needs another command); the message is for the steward.
class ResolutionError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

Reconciliation resolve(const EntityRules& rules, std::int64_t ruleset_version,
                       const RecordState& state, const OpenConflict& conflict,
                       const Resolution& resolution);

}  // namespace mdsync::core

namespace mdsync::core {

// A side refused a propagated delete (a delete guard: the ERP keeps a customer with unpaid
// invoices). The record lives on: it is no longer deleted, so the write-back plan restores it
// where it was deleted, and a foreign_delete conflict, opened for `deleting_side`, names the
// reason; the steward accepts the delete (--take deleting_side, vetoed again while the reason
// holds) or dismisses it.
Reconciliation veto_delete(const EntityRules& rules, std::int64_t ruleset_version,
                           const RecordState& state, const std::string& vetoing_side,
                           const std::string& deleting_side, const std::string& reason);

// A golden value `side` cannot hold (outside its value map, finer than its scale, a code its
// lookup table lacks): the value was valid where it came from, so golden keeps it, and an
// invalid_value conflict holds the field's unit for the steward (take a side's value, or set
// one every side can hold). While it is open the unit is not written, so the other fields of
// the row still are. Nothing happens if the unit is already held. `kind` write_refused: the
// side's database refused the value (a unique index, a CHECK, a trigger); the same hold, so
// the steward can set a value the side accepts, take the side's, or dismiss to try again.
Reconciliation unwritable_value(const EntityRules& rules, std::int64_t ruleset_version,
                                const RecordState& state, const std::string& side,
                                const std::string& field, const std::string& reason,
                                ConflictKind kind = ConflictKind::kInvalidValue);

// `mdsync verify --repair`: `side`'s linked row holds `held` (canonical values, read after the
// record was locked, no capture of the row waiting) where its base says otherwise: a change that
// bypassed capture (triggers disabled, a restore from backup, a migration). The base becomes
// what the side holds. Then, per unit the side holds whose value differs from golden, unless a
// conflict holds it or a member is in `unreadable`: a unit another side owns is repaired (golden
// stays; the write-back plan writes it to `side`, conditional on the value just read); a unit
// `side` owns or shares opens an uncaptured_value conflict, since its value may be a real edit or
// an old one a restore brought back: the steward takes it (--take side) or dismisses it (golden
// goes back).
Reconciliation repair_drift(const EntityRules& rules, std::int64_t ruleset_version,
                            const RecordState& state, const std::string& side,
                            const FieldValues& held,
                            const std::map<std::string, std::string>& unreadable = {});

// `mdsync verify --repair`: the record's linked row on `side` is gone (a TRUNCATE, a delete with
// triggers disabled) and no captured delete explains it. The link goes (plan.unlink_source).
// A side whose deletes count, or any side when the rules quarantine foreign deletes, opens a
// foreign_delete conflict: the steward accepts the delete (--take side) or dismisses it (the row
// is re-created). Otherwise the row is repaired: re-created on `side` from golden. Nothing is
// decided while a record-level conflict is open.
Reconciliation repair_missing_row(const EntityRules& rules, std::int64_t ruleset_version,
                                  const RecordState& state, const std::string& side);

// A steward accepts a create that the create list refused (an unauthorized_create): the
// record is created from the side's row as if the side might create it. Ownership still
// applies field by field: a field another side owns takes its rule's default.
Plan create_allowed_by_steward(const EntityRules& rules, std::int64_t ruleset_version,
                               RecordState& state, const Change& change,
                               const std::string& steward);

}  // namespace mdsync::core
