#include "mdsync/core/ruleset.hpp"

#include <algorithm>

namespace mdsync::core {

const char* to_string(ForeignWrite v) {
  return v == ForeignWrite::kRevert ? "revert" : "quarantine";
}

const char* to_string(OnConflict v) {
  switch (v) {
    case OnConflict::kQuarantine:
      return "quarantine";
    case OnConflict::kLastWriterWins:
      return "last_writer_wins";
    case OnConflict::kPriority:
      return "priority";
  }
  return "?";
}

const char* to_string(Compare v) {
  switch (v) {
    case Compare::kExact:
      return "exact";
    case Compare::kTrim:
      return "trim";
    case Compare::kCaseInsensitive:
      return "case_insensitive";
  }
  return "?";
}

const char* to_string(OnCreate v) {
  return v == OnCreate::kAccept ? "accept" : "default";
}

const SideDelete* DeletePolicy::of(const std::string& side) const {
  for (const SideDelete& d : sides)
    if (d.side == side) return &d;
  return nullptr;
}

std::string DeletePolicy::owners_text() const {
  if (sides.empty()) return "no side owns deletes";
  std::string out;
  for (std::size_t i = 0; i < sides.size(); ++i)
    out += (i == 0 ? "" : i + 1 == sides.size() ? " and " : ", ") + sides[i].side;
  return out + (sides.size() == 1 ? " owns deletes" : " own deletes");
}

bool EntityRules::holds(const std::string& side, const std::string& field) const {
  if (unmapped.empty()) return true;
  auto it = unmapped.find(side);
  return it == unmapped.end() ||
         std::find(it->second.begin(), it->second.end(), field) == it->second.end();
}

bool EntityRules::holds(const std::string& side, const Unit& unit) const {
  if (unmapped.empty()) return true;
  return std::all_of(unit.members.begin(), unit.members.end(),
                     [&](const std::string& m) { return holds(side, m); });
}

FieldType EntityRules::type_of(const std::string& field) const {
  for (const auto& [name, type] : fields)
    if (name == field) return type;
  return FieldType::kText;
}

std::string describe_rule(const std::string& entity, const Unit& unit) {
  const FieldPolicy& p = unit.policy;
  std::string s = entity + "." + unit.name + " owner=" + p.owner;
  if (p.is_shared())
    s += std::string(" on_conflict=") + to_string(p.on_conflict);
  else
    s += std::string(" on_foreign_write=") + to_string(p.on_foreign_write);
  if (p.compare != Compare::kExact) s += std::string(" compare=") + to_string(p.compare);
  if (!p.is_shared() && p.on_create == OnCreate::kAccept) s += " on_create=accept";
  return s;
}

std::vector<FieldSlot> make_field_slots(const EntityRules& rules) {
  std::vector<FieldSlot> slots;
  for (std::size_t u = 0; u < rules.units.size(); ++u) {
    const std::vector<std::string>& members = rules.units[u].members;
    for (std::size_t m = 0; m < members.size(); ++m)
      slots.push_back(
          FieldSlot{members[m], static_cast<std::uint32_t>(u), static_cast<std::uint32_t>(m)});
  }
  // A field in two units is a broken ruleset the rules reader refuses; should one get here
  // anyway, the first unit holds it.
  std::stable_sort(slots.begin(), slots.end(),
                   [](const FieldSlot& a, const FieldSlot& b) { return a.field < b.field; });
  slots.erase(
      std::unique(slots.begin(), slots.end(),
                  [](const FieldSlot& a, const FieldSlot& b) { return a.field == b.field; }),
      slots.end());
  return slots;
}

void prepare(EntityRules& rules) {
  rules.field_slots = make_field_slots(rules);
  for (Unit& unit : rules.units) {
    unit.member_types.clear();
    for (const std::string& m : unit.members) unit.member_types.push_back(rules.type_of(m));
    unit.member_names.assign(unit.members.begin(), unit.members.end());
    unit.rule_text = std::make_shared<const std::string>(describe_rule(rules.entity, unit));
    Validation& v = unit.policy.validate;
    if (v.pattern && !v.compiled_pattern) {
      try {
        v.compiled_pattern = std::make_shared<const std::regex>(*v.pattern, std::regex::ECMAScript);
      } catch (const std::regex_error&) {
        // Left uncompiled: validation reports the value invalid rather than crash.
      }
    }
  }
}

const Unit* EntityRules::unit_of_field(const std::string& field) const {
  for (const Unit& u : units)
    if (std::find(u.members.begin(), u.members.end(), field) != u.members.end()) return &u;
  return nullptr;
}

const Unit* EntityRules::unit_named(const std::string& name) const {
  for (const Unit& u : units)
    if (u.name == name) return &u;
  return nullptr;
}

bool EntityRules::may_create(const std::string& side) const {
  return std::find(create.begin(), create.end(), side) != create.end();
}

std::size_t EntityRules::priority_rank(const std::string& side) const {
  auto it = std::find(priority.begin(), priority.end(), side);
  return static_cast<std::size_t>(it - priority.begin());
}

const EntityRules* Ruleset::find(const std::string& entity) const {
  auto it = entities.find(entity);
  return it == entities.end() ? nullptr : &it->second;
}

}  // namespace mdsync::core
