// What the engine knows of one record when a change arrives: the golden values and where
// each came from, each linked side's base (what the engine last saw there or wrote there),
// and the conflicts that hold some of its units.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mdsync/core/value.hpp"

namespace mdsync::core {

enum class ConflictKind {
  kConcurrentEdit,
  kForeignWrite,
  kInvalidValue,
  kUnauthorizedCreate,
  kForeignDelete,
  kPossibleDuplicate,
  kWriteRefused,  // a side's database refused a write of the unit (a constraint, a trigger)
  // `verify --repair` found, on a side that owns or shares the unit, a value no captured change
  // explains (a write with capture bypassed, a restore from a backup): a real edit or stale?
  kUncapturedValue
};
const char* to_string(ConflictKind k);
std::optional<ConflictKind> conflict_kind_from_string(std::string_view word);

// Who set a golden unit last: a side (with that side's commit time) or a steward.
struct Provenance {
  std::string side;     // empty when a steward set it
  std::string steward;  // empty when a side set it
  std::int64_t time_us = 0;
  // `side` created the record and its value seeded a unit another side owns (on_create:
  // accept): the owner has given no value yet, and its first one replaces the seed.
  bool seeded = false;
};

struct OpenConflict {
  std::int64_t id = 0;  // 0 until the store has saved it
  std::string unit;     // field or group name; kRecordUnit for record-level conflicts
  ConflictKind kind = ConflictKind::kConcurrentEdit;
  std::string side;  // the side whose change opened it
  // A foreign_delete opened because this side's delete guard refused the delete: the record
  // is restored on `side` meanwhile, instead of staying deleted there until the steward
  // decides. Empty for every other conflict.
  std::string vetoed_by = {};
};

// The unit name of conflicts about the whole record (creates and deletes).
inline constexpr const char* kRecordUnit = "*record*";

struct RecordState {
  bool exists = false;   // a golden record exists
  bool deleted = false;  // the golden record was deleted by a side whose delete counts
  FieldValues golden;
  std::map<std::string, Provenance> provenance;  // by unit name
  std::map<std::string, FieldValues> bases;      // by side; absent: no linked row there
  std::vector<OpenConflict> open_conflicts;
  // Sides whose row was deleted by their own authoritative delete under a deactivation
  // policy: the record lives on elsewhere, but is not re-created there.
  std::vector<std::string> detached;

  const OpenConflict* conflict_on(const std::string& unit) const;
};

}  // namespace mdsync::core
