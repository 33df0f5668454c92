// The ownership ruleset as data: for each entity, who owns which field (or field group),
// what happens on a foreign write or a concurrent edit, how values compare and validate.
// This is what stewards write in rule files and what the reconciliation core consumes;
// it holds no behaviour beyond lookups, so both sides can share it without I/O.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "mdsync/core/short_string.hpp"

namespace mdsync::core {

// The owner word that marks a field as owned by no single side.
inline constexpr const char* kShared = "shared";

enum class FieldType { kText, kInteger, kNumeric, kBoolean, kDate, kTimestamptz, kJson };
enum class ForeignWrite { kRevert, kQuarantine };
enum class OnConflict { kQuarantine, kLastWriterWins, kPriority };
enum class Compare { kExact, kTrim, kCaseInsensitive };
enum class DeletePropagation { kDelete, kDeactivate };
enum class ForeignDelete { kRestore, kQuarantine };
// What a create by a side that does not own a unit does with that side's value of it.
enum class OnCreate {
  kDefault,  // the rule's default value (or NULL); the side's value is a foreign write
  kAccept,   // the side's value seeds golden until the owner gives one (marked in provenance)
};

const char* to_string(FieldType v);
const char* to_string(ForeignWrite v);
const char* to_string(OnConflict v);
const char* to_string(Compare v);
const char* to_string(OnCreate v);

struct Validation {
  bool required = false;
  std::optional<std::size_t> max_length;  // in Unicode code points
  std::optional<std::string> pattern;     // ECMAScript regex, must match the whole value
  std::optional<std::string> min;         // exact decimal text
  std::optional<std::string> max;         // exact decimal text
  std::optional<std::vector<std::string>> one_of;
  // `pattern` compiled once when the rules are read; validation compiles it itself if absent.
  std::shared_ptr<const std::regex> compiled_pattern;

  bool empty() const { return !required && !max_length && !pattern && !min && !max && !one_of; }
};

// The policy of one unit: a single field, or a named group of fields decided as one.
struct FieldPolicy {
  std::string owner;  // a side name, or kShared
  ForeignWrite on_foreign_write = ForeignWrite::kRevert;
  OnConflict on_conflict = OnConflict::kQuarantine;
  Compare compare = Compare::kExact;
  Validation validate;
  std::optional<std::string> default_value;  // golden value for a field another side creates
  OnCreate on_create = OnCreate::kDefault;   // owned units: a non-owner's create may seed them
  bool is_shared() const { return owner == kShared; }
};

// One side whose delete is authoritative, and how that delete reaches the other sides.
struct SideDelete {
  std::string side;
  DeletePropagation propagate = DeletePropagation::kDelete;
  std::string deactivate_field;  // with kDeactivate: the boolean field set to false
};

struct DeletePolicy {
  // The sides whose delete is authoritative, each with its own propagation, in `priority`
  // order; empty: no side may delete. (A rule file's {"owner": "erp", ...} lists one.)
  std::vector<SideDelete> sides;
  // Another side's delete: its row is re-created (restore) or a foreign_delete conflict waits
  // for a steward (quarantine), the row staying gone meanwhile.
  ForeignDelete on_foreign_delete = ForeignDelete::kRestore;

  // The side's own rule, or nullptr when its delete is a foreign delete.
  const SideDelete* of(const std::string& side) const;
  // "erp owns deletes", "erp and crm own deletes", "no side owns deletes".
  std::string owners_text() const;
};

// A decision unit: one field, or a group whose members are owned and resolved together.
struct Unit {
  std::string name;                  // field name, or group name
  std::vector<std::string> members;  // {name} for a plain field
  FieldPolicy policy;
  // "customer.email owner=crm on_foreign_write=revert", made once by prepare() and shared by
  // every decision on this unit; null until then (decisions then make their own).
  std::shared_ptr<const std::string> rule_text = nullptr;
  // The members' types, in member order, filled by prepare(); empty until then.
  std::vector<FieldType> member_types = {};
  // The members' names as decisions record them, filled by prepare(); empty until then.
  std::vector<ShortString> member_names = {};
  bool is_group() const { return members.size() != 1 || members.front() != name; }
};

// Where a field sits among an entity's units: the unit (its index in `units`) and the member.
struct FieldSlot {
  std::string field;
  std::uint32_t unit = 0;
  std::uint32_t member = 0;
};

struct EntityRules {
  std::string entity;
  std::vector<std::pair<std::string, FieldType>> fields;  // canonical fields, config order
  std::vector<std::string> priority;                      // sides, most trusted first
  std::vector<std::string> create;                        // sides allowed to create records
  DeletePolicy delete_policy;
  FieldPolicy default_policy;
  // Every field of the entity belongs to exactly one unit; order follows the entity's
  // field order in the config, so plans print deterministically.
  std::vector<Unit> units;
  // Fields a side has no column for (the config leaves them unmapped there), by side; a side
  // not listed holds every field. Such a field is never captured from nor written to that
  // side. Filled from the config by the rules reader.
  std::map<std::string, std::vector<std::string>> unmapped = {};

  // Whether `side` has a column for `field`.
  bool holds(const std::string& side, const std::string& field) const;
  // Whether `side` has a column for every member of `unit` (a group is mapped whole or not).
  bool holds(const std::string& side, const Unit& unit) const;
  FieldType type_of(const std::string& field) const;  // kText if unknown
  const Unit* unit_of_field(const std::string& field) const;
  // Every unit member, sorted by field name as field maps are, filled by prepare(); empty
  // until then (decisions then make their own). Sorted like a change's fields, so a change is
  // matched to its units by walking forward rather than by one search per field.
  std::vector<FieldSlot> field_slots;
  const Unit* unit_named(const std::string& name) const;
  bool may_create(const std::string& side) const;
  // Position of a side in the priority list; sides not listed rank after all listed ones.
  std::size_t priority_rank(const std::string& side) const;
};

// The rule text of a unit as decisions cite it.
std::string describe_rule(const std::string& entity, const Unit& unit);

// The field slots of `rules` as prepare() files them.
std::vector<FieldSlot> make_field_slots(const EntityRules& rules);

// Precomputes what decisions reuse (rule texts, compiled patterns). Readers of rules call
// it once; the core works without it, only slower.
void prepare(EntityRules& rules);

struct Ruleset {
  std::int64_t version = 0;  // 0 until applied to a control store
  std::map<std::string, EntityRules> entities;
  const EntityRules* find(const std::string& entity) const;
};

}  // namespace mdsync::core
