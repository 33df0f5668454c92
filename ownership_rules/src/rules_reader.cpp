#include "mdsync/rules/rules_reader.hpp"

#include "mdsync/core/validation.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

namespace mdsync::rules {

RuleTexts read_rules_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw std::runtime_error("cannot read rules folder '" + dir +
                             "': " + (ec ? ec.message() : std::string("not a folder")));
  }
  RuleTexts texts;
  fs::directory_iterator it(dir, ec);
  if (ec) throw std::runtime_error("cannot read rules folder '" + dir + "': " + ec.message());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) throw std::runtime_error("cannot read rules folder '" + dir + "': " + ec.message());
    const fs::path& path = it->path();
    if (path.extension() != ".json") continue;
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;
    std::ifstream in(path, std::ios::binary);
    std::ostringstream content;
    content << in.rdbuf();
    if (!in || in.bad()) throw std::runtime_error("cannot read rules file '" + path.string() + "'");
    texts[path.filename().string()] = content.str();
  }
  if (ec) throw std::runtime_error("cannot read rules folder '" + dir + "': " + ec.message());
  return texts;
}

namespace {

using core::FieldPolicy;
using core::FieldType;
using Kind = JsonNode::Kind;
using Fields = std::vector<std::pair<std::string, FieldType>>;

const std::vector<std::string> kTopKeys = {"entity",  "priority", "create", "delete",
                                           "default", "groups",   "fields"};
const std::vector<std::string> kFieldPolicyKeys = {
    "owner", "on_foreign_write", "on_conflict", "compare", "validate", "default", "on_create"};
const std::vector<std::string> kDefaultPolicyKeys = {"owner", "on_foreign_write", "on_conflict",
                                                     "compare", "on_create"};
const std::vector<std::string> kValidateKeys = {"required", "max_length", "pattern",
                                                "min",      "max",        "one_of"};
const std::vector<std::string> kDeleteKeys = {"owner", "propagate", "on_foreign_delete"};
const std::vector<std::string> kSideDeleteKeys = {"propagate"};

template <typename E>
using Words = std::vector<std::pair<const char*, E>>;

const Words<core::ForeignWrite> kForeignWriteWords = {
    {"revert", core::ForeignWrite::kRevert}, {"quarantine", core::ForeignWrite::kQuarantine}};
const Words<core::OnConflict> kOnConflictWords = {
    {"quarantine", core::OnConflict::kQuarantine},
    {"last_writer_wins", core::OnConflict::kLastWriterWins},
    {"priority", core::OnConflict::kPriority}};
const Words<core::Compare> kCompareWords = {{"exact", core::Compare::kExact},
                                            {"trim", core::Compare::kTrim},
                                            {"case_insensitive", core::Compare::kCaseInsensitive}};
const Words<core::OnCreate> kOnCreateWords = {{"default", core::OnCreate::kDefault},
                                              {"accept", core::OnCreate::kAccept}};

std::string join(const std::vector<std::string>& items, const char* sep = ", ") {
  std::string out;
  for (const std::string& s : items) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

std::string bracketed(const std::vector<std::string>& items) {
  return "[" + join(items) + "]";
}

bool contains(const std::vector<std::string>& items, const std::string& s) {
  return std::find(items.begin(), items.end(), s) != items.end();
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// " (did you mean 'owner'?)" for a near miss, else "".
std::string suggestion(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  // One typo in a short word, two in a longer one.
  std::size_t best_distance = word.size() <= 4 ? 2 : 3;
  for (const std::string& c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

// How a value is named in a message: "number 5", "string \"x\"", "object".
std::string found(const JsonNode& v) {
  switch (v.kind) {
    case Kind::kNumber:
      return "number " + v.text;
    case Kind::kString:
      return "string \"" + v.text + "\"";
    case Kind::kBool:
      return v.text;
    default:
      return JsonNode::kind_name(v.kind);
  }
}

bool is_numeric(FieldType t) {
  return t == FieldType::kNumeric || t == FieldType::kInteger;
}

std::size_t code_points(const std::string& s) {
  std::size_t n = 0;
  for (char c : s)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  return n;
}

// Why `value` fails `v` for a field of `type`, or nullopt if it passes.
std::optional<std::string> validation_failure(const core::Validation& v, FieldType type,
                                              const std::string& value) {
  if (v.max_length && code_points(value) > *v.max_length)
    return "it is longer than max_length " + std::to_string(*v.max_length);
  if (v.pattern && value.size() > core::kMaxPatternInputBytes)
    return "it is longer than the " + std::to_string(core::kMaxPatternInputBytes) +
           " bytes a pattern is checked on";
  if (v.pattern && !std::regex_match(value, std::regex(*v.pattern, std::regex::ECMAScript)))
    return "it does not match the pattern";
  if (is_numeric(type) && (v.min || v.max)) {
    const auto d = core::canonical_decimal(value);
    if (d && v.min && core::compare_decimal(*d, *v.min) < 0) return "it is below min " + *v.min;
    if (d && v.max && core::compare_decimal(*d, *v.max) > 0) return "it is above max " + *v.max;
  }
  if (v.one_of && !contains(*v.one_of, value)) return "it is not one of " + join(*v.one_of);
  return std::nullopt;
}

struct Group {
  std::string name;
  SourcePos pos;
  std::vector<std::string> members;
};

// Checks one rules file of a known entity; every problem is appended to `diags`.
class FileChecker {
 public:
  FileChecker(std::string file, std::string file_name, std::string entity, const Fields& fields,
              const RulesContext& ctx, std::vector<Diagnostic>& diags)
      : file_(std::move(file)),
        file_name_(std::move(file_name)),
        entity_(std::move(entity)),
        fields_(fields),
        ctx_(ctx),
        diags_(diags) {
    for (const auto& [name, type] : fields_) field_names_.push_back(name);
  }

  std::optional<core::EntityRules> check(const JsonNode& root) {
    if (!root.is_object()) {
      error(root.pos,
            std::string("a rules file must be a JSON object ({ \"entity\": ... }), found ") +
                JsonNode::kind_name(root.kind));
      return std::nullopt;
    }
    check_keys(root, kTopKeys, "at the top level");
    check_entity(root);

    core::EntityRules rules;
    rules.entity = entity_;
    rules.fields = fields_;
    rules.priority = ctx_.sides;
    rules.create = ctx_.sides;
    if (const JsonNode* p = root.find("priority")) {
      rules.priority = side_list(*p, "priority");
      if (p->is_array() && p->items.empty()) error(p->pos, "priority must list at least one side");
    }
    if (const JsonNode* c = root.find("create")) rules.create = side_list(*c, "create");
    if (const JsonNode* d = root.find("delete"))
      rules.delete_policy = delete_policy(*d, rules.priority);

    parse_groups(root.find("groups"));

    FieldPolicy& def = rules.default_policy;
    def.owner = !rules.priority.empty() ? rules.priority.front()
                : !ctx_.sides.empty()   ? ctx_.sides.front()
                                        : std::string();
    // Where each unit's owner is said, for the checks against the config's mappings: the
    // fields entry's owner, else default's, else the first side of priority.
    SourcePos default_owner_pos = root.pos;
    if (const JsonNode* p = root.find("priority"); p && p->is_array() && !p->items.empty())
      default_owner_pos = p->items.front().pos;
    std::map<std::string, SourcePos> owner_pos;  // by field or group name
    bool default_gives_owner = false;
    if (const JsonNode* d = root.find("default")) {
      if (!d->is_object()) {
        type_error(*d, "default", "an object (a field policy)");
      } else {
        check_keys(*d, kDefaultPolicyKeys, "in default");
        default_gives_owner = d->find("owner") != nullptr;
        if (default_gives_owner) default_owner_pos = d->find("owner")->pos;
        def = parse_policy(*d, "default", {}, def);
      }
    }

    std::map<std::string, FieldPolicy> policies;  // by field or group name
    if (const JsonNode* f = root.find("fields")) {
      if (!f->is_object()) {
        type_error(*f, "fields", "an object (field or group name -> policy)");
      } else {
        for (const JsonNode::Member& m : f->members) {
          std::vector<std::string> members;
          if (contains(field_names_, m.key)) {
            auto g = group_of_.find(m.key);
            if (g != group_of_.end()) {
              error(m.key_pos, "field '" + m.key + "' is in group '" + g->second +
                                   "'; give its policy on the group instead");
              continue;
            }
            members = {m.key};
          } else if (const Group* g = find_group(m.key)) {
            members = g->members;
          } else if (declared_groups_.count(m.key)) {
            continue;  // a broken group, already reported
          } else {
            std::vector<std::string> names = field_names_;
            for (const Group& gr : groups_) names.push_back(gr.name);
            error(m.key_pos,
                  "entity " + entity_ + " has no field '" + m.key + "'" + suggestion(m.key, names));
            continue;
          }
          if (!m.value.is_object()) {
            type_error(m.value, m.key, "an object (a field policy)");
            continue;
          }
          const std::string where = "fields." + m.key;
          check_keys(m.value, kFieldPolicyKeys, "in " + where);
          if (!default_gives_owner && !m.value.find("owner"))
            error(m.value.pos,
                  "missing key 'owner' in " + where + " (no \"default\" policy gives one)");
          if (const JsonNode* o = m.value.find("owner")) owner_pos[m.key] = o->pos;
          policies[m.key] = parse_policy(m.value, m.key, members, def);
        }
      }
    }

    if (errors_ > 0) return std::nullopt;

    for (const Group& g : groups_) {
      auto p = policies.find(g.name);
      rules.units.push_back(core::Unit{g.name, g.members, p != policies.end() ? p->second : def});
    }
    for (const std::string& f : field_names_) {
      if (group_of_.count(f)) continue;
      auto p = policies.find(f);
      rules.units.push_back(core::Unit{f, {f}, p != policies.end() ? p->second : def});
    }
    // A unit stands where its earliest member stands in the entity's field order.
    auto first_index = [&](const core::Unit& u) {
      std::ptrdiff_t first = static_cast<std::ptrdiff_t>(field_names_.size());
      for (const std::string& m : u.members)
        first = std::min(
            first, std::find(field_names_.begin(), field_names_.end(), m) - field_names_.begin());
      return first;
    };
    std::stable_sort(
        rules.units.begin(), rules.units.end(),
        [&](const core::Unit& a, const core::Unit& b) { return first_index(a) < first_index(b); });

    // Fields a side has no column for (the config leaves them unmapped there).
    if (auto u = ctx_.unmapped.find(entity_); u != ctx_.unmapped.end())
      for (const auto& [side, fields] : u->second)
        if (!fields.empty()) rules.unmapped[side] = fields;
    for (const core::Unit& unit : rules.units) {
      auto pos = owner_pos.find(unit.name);
      check_mapped(rules, unit, pos == owner_pos.end() ? default_owner_pos : pos->second,
                   pos == owner_pos.end());
    }
    for (const auto& [p, side] : deactivations_) {
      const std::string field = p->text.substr(std::string("deactivate:").size());
      for (const std::string& other : ctx_.sides)
        if (other != side && !rules.holds(other, field))
          error(p->pos, "propagate '" + p->text + "'" +
                            (side.empty() ? std::string() : " of " + side) + ": " + other +
                            " has no column for '" + field + "' (the config leaves it unmapped" +
                            " there), so the record could not be deactivated on " + other +
                            "; propagate \"delete\" instead, or map the field on " + other);
    }
    if (errors_ > 0) return std::nullopt;
    return rules;
  }

 private:
  // A side maps all of a group's fields or none (a group is written whole), and a unit's owner
  // maps the unit: an owner that has no column for its field could never give it a value.
  void check_mapped(const core::EntityRules& rules, const core::Unit& unit, SourcePos owner_at,
                    bool owner_from_default) {
    if (rules.unmapped.empty()) return;
    if (unit.is_group()) {
      const Group* g = find_group(unit.name);
      for (const std::string& side : ctx_.sides) {
        std::vector<std::string> has, lacks;
        for (const std::string& m : unit.members) (rules.holds(side, m) ? has : lacks).push_back(m);
        if (!has.empty() && !lacks.empty())
          error(g ? g->pos : owner_at,
                "group '" + unit.name + "': " + side + " maps " + join(has) + " but not " +
                    join(lacks) + "; a group is written whole, so a side maps all of its fields " +
                    "or none");
      }
    }
    const std::string& owner = unit.policy.owner;
    if (unit.policy.is_shared()) {
      if (std::none_of(ctx_.sides.begin(), ctx_.sides.end(),
                       [&](const std::string& side) { return rules.holds(side, unit); }))
        error(owner_at, (unit.is_group() ? "group '" : "shared field '") + unit.name +
                            "' is mapped on no side; map it on at least one");
      return;
    }
    std::vector<std::string> lacks;
    for (const std::string& m : unit.members)
      if (!rules.holds(owner, m)) lacks.push_back(m);
    if (lacks.empty()) return;
    std::vector<std::string> holders;
    for (const std::string& side : ctx_.sides)
      if (rules.holds(side, unit)) holders.push_back(side);
    error(owner_at, "owner '" + owner + "'" + (owner_from_default ? " (from default)" : "") +
                        " of " + (unit.is_group() ? "group '" : "'") + unit.name +
                        "' has no column for " + join(lacks) +
                        " (the config leaves it unmapped there); an owner must hold its field" +
                        (holders.empty() ? std::string(", and no side maps it")
                                         : ": give it to " + join(holders, " or ")) +
                        (owner_from_default ? " in fields." + unit.name : std::string()));
  }

  void error(SourcePos pos, std::string message) {
    diags_.push_back(Diagnostic{file_, pos, std::move(message)});
    ++errors_;
  }

  void type_error(const JsonNode& v, const std::string& key, const std::string& expected) {
    error(v.pos, "'" + key + "' must be " + expected + ", found " + found(v));
  }

  std::string sides_text() const { return ctx_.sides.empty() ? "(none)" : join(ctx_.sides); }

  void check_keys(const JsonNode& obj, const std::vector<std::string>& allowed,
                  const std::string& where) {
    for (const JsonNode::Member& m : obj.members)
      if (!contains(allowed, m.key))
        error(m.key_pos, "unknown key '" + m.key + "' " + where + suggestion(m.key, allowed) +
                             "; allowed keys: " + join(allowed));
  }

  void check_entity(const JsonNode& root) {
    const JsonNode* e = root.find("entity");
    if (!e) {
      error(root.pos, "missing key 'entity' (it must be \"" + entity_ + "\", as the file name " +
                          file_name_ + " says)");
    } else if (!e->is_string()) {
      type_error(*e, "entity", "a string");
    } else if (e->text != entity_) {
      error(e->pos, "entity '" + e->text + "' does not match the file name " + file_name_ +
                        "; it must be \"" + entity_ + "\"");
    }
  }

  std::vector<std::string> side_list(const JsonNode& v, const std::string& key) {
    std::vector<std::string> out;
    if (!v.is_array()) {
      type_error(v, key, "an array of side names");
      return out;
    }
    for (const JsonNode& item : v.items) {
      if (!item.is_string()) {
        error(item.pos, "'" + key + "' lists side names, found " + found(item));
      } else if (!contains(ctx_.sides, item.text)) {
        error(item.pos, "unknown side '" + item.text + "' in " + key +
                            suggestion(item.text, ctx_.sides) + "; known sides: " + sides_text());
      } else if (contains(out, item.text)) {
        error(item.pos, "side '" + item.text + "' is listed twice in " + key);
      } else {
        out.push_back(item.text);
      }
    }
    return out;
  }

  // `delete` in either form: {"owner": "erp", "propagate": ...} (one side's delete counts) or
  // {"erp": {"propagate": ...}, "crm": {...}} (each listed side's delete counts, with its own
  // propagation); both take "on_foreign_delete". Sides are kept in `priority` order.
  core::DeletePolicy delete_policy(const JsonNode& v, const std::vector<std::string>& priority) {
    core::DeletePolicy out;
    if (!v.is_object()) {
      type_error(v, "delete",
                 "an object such as {\"owner\": \"erp\"} or {\"erp\": {\"propagate\": "
                 "\"delete\"}, \"crm\": {\"propagate\": \"delete\"}}");
      return out;
    }
    const auto per_side = [&](const JsonNode::Member& m) {
      return !contains(kDeleteKeys, m.key) && contains(ctx_.sides, m.key);
    };
    if (std::none_of(v.members.begin(), v.members.end(), per_side)) {
      for (const JsonNode::Member& m : v.members)
        if (!contains(kDeleteKeys, m.key))
          error(m.key_pos, "unknown key '" + m.key + "' in delete" +
                               suggestion(m.key, kDeleteKeys) +
                               "; allowed keys: " + join(kDeleteKeys) + ", or side names (" +
                               sides_text() + ") each with its own {\"propagate\": ...}");
      core::SideDelete owner_rule;
      const JsonNode* owner = v.find("owner");
      if (!owner) {
        error(v.pos,
              "missing key 'owner' in delete (the side whose delete is authoritative), or list "
              "the sides whose delete counts: {\"erp\": {\"propagate\": \"delete\"}, ...}");
      } else if (!owner->is_string()) {
        type_error(*owner, "owner", "a side name");
      } else if (!contains(ctx_.sides, owner->text)) {
        error(owner->pos, "delete owner '" + owner->text + "' is not a side" +
                              suggestion(owner->text, ctx_.sides) +
                              "; known sides: " + sides_text());
      } else {
        owner_rule.side = owner->text;
      }
      if (const JsonNode* p = v.find("propagate")) propagate(*p, owner_rule);
      if (!owner_rule.side.empty()) out.sides.push_back(owner_rule);
    } else {
      for (const JsonNode::Member& m : v.members) {
        if (m.key == "on_foreign_delete") continue;
        if (m.key == "owner" || m.key == "propagate") {
          error(m.key_pos, "'" + m.key + "' cannot be mixed with side entries in delete; " +
                               "give each side whose delete counts its own entry, such as " +
                               "\"erp\": {\"propagate\": \"delete\"}");
          continue;
        }
        if (!contains(ctx_.sides, m.key)) {
          std::vector<std::string> words = ctx_.sides;
          words.push_back("on_foreign_delete");
          error(m.key_pos, "unknown key '" + m.key + "' in delete" + suggestion(m.key, words) +
                               "; it lists sides (" + sides_text() +
                               ") whose delete counts, and on_foreign_delete");
          continue;
        }
        core::SideDelete rule;
        rule.side = m.key;
        if (!m.value.is_object()) {
          type_error(m.value, m.key, "an object such as {\"propagate\": \"delete\"}");
          continue;
        }
        check_keys(m.value, kSideDeleteKeys, "in delete." + m.key);
        if (const JsonNode* p = m.value.find("propagate")) propagate(*p, rule);
        out.sides.push_back(rule);
      }
      // Kept in priority order, so rules spelled in another order decide (and diff) alike.
      std::stable_sort(out.sides.begin(), out.sides.end(),
                       [&](const core::SideDelete& a, const core::SideDelete& b) {
                         return rank(priority, a.side) < rank(priority, b.side);
                       });
    }
    if (const JsonNode* f = v.find("on_foreign_delete")) {
      if (!f->is_string()) {
        type_error(*f, "on_foreign_delete", "a string (\"restore\" or \"quarantine\")");
      } else if (f->text == "restore") {
        out.on_foreign_delete = core::ForeignDelete::kRestore;
      } else if (f->text == "quarantine") {
        out.on_foreign_delete = core::ForeignDelete::kQuarantine;
      } else {
        error(f->pos, "on_foreign_delete: '" + f->text + "' is not one of restore, quarantine");
      }
    }
    return out;
  }

  static std::size_t rank(const std::vector<std::string>& priority, const std::string& side) {
    return static_cast<std::size_t>(std::find(priority.begin(), priority.end(), side) -
                                    priority.begin());
  }

  // "propagate": "delete" or "deactivate:<field>", into `rule`; its position is kept for the
  // checks against the config's mappings.
  void propagate(const JsonNode& p, core::SideDelete& rule) {
    const std::string prefix = "deactivate:";
    if (!p.is_string()) {
      type_error(p, "propagate", "a string (\"delete\" or \"deactivate:<field>\")");
    } else if (p.text == "delete") {
      rule.propagate = core::DeletePropagation::kDelete;
    } else if (p.text.compare(0, prefix.size(), prefix) == 0) {
      const std::string field = p.text.substr(prefix.size());
      auto it = std::find_if(fields_.begin(), fields_.end(),
                             [&](const auto& f) { return f.first == field; });
      if (it == fields_.end()) {
        error(p.pos, "propagate '" + p.text + "': entity " + entity_ + " has no field '" + field +
                         "'" + suggestion(field, field_names_));
      } else if (it->second != FieldType::kBoolean) {
        error(p.pos, "propagate '" + p.text + "': field '" + field + "' is " +
                         core::to_string(it->second) + ", not boolean");
      } else {
        rule.propagate = core::DeletePropagation::kDeactivate;
        rule.deactivate_field = field;
        deactivations_.push_back({&p, rule.side});
      }
    } else {
      error(p.pos, "propagate: '" + p.text + "' is not one of delete, deactivate:<field>");
    }
  }

  const Group* find_group(const std::string& name) const {
    for (const Group& g : groups_)
      if (g.name == name) return &g;
    return nullptr;
  }

  void parse_groups(const JsonNode* v) {
    if (!v) return;
    if (!v->is_object()) {
      type_error(*v, "groups", "an object (group name -> array of field names)");
      return;
    }
    for (const JsonNode::Member& m : v->members) {
      declared_groups_.insert(m.key);
      bool ok = true;
      if (contains(field_names_, m.key)) {
        error(m.key_pos, "group '" + m.key + "' has the name of a field of " + entity_ +
                             "; give the group another name");
        ok = false;
      }
      if (!m.value.is_array()) {
        type_error(m.value, m.key, "an array of field names");
        continue;
      }
      if (m.value.items.empty()) {
        error(m.value.pos, "group '" + m.key + "' is empty");
        ok = false;
      }
      Group g{m.key, m.key_pos, {}};
      for (const JsonNode& item : m.value.items) {
        if (!item.is_string()) {
          error(item.pos, "group '" + m.key + "' lists field names, found " + found(item));
          ok = false;
        } else if (!contains(field_names_, item.text)) {
          error(item.pos, "group '" + m.key + "': entity " + entity_ + " has no field '" +
                              item.text + "'" + suggestion(item.text, field_names_));
          ok = false;
        } else if (contains(g.members, item.text)) {
          error(item.pos, "field '" + item.text + "' is listed twice in group '" + m.key + "'");
          ok = false;
        } else if (auto other = group_of_.find(item.text); other != group_of_.end()) {
          error(item.pos, "field '" + item.text + "' is in groups '" + other->second + "' and '" +
                              m.key + "'");
          ok = false;
        } else {
          g.members.push_back(item.text);
        }
      }
      if (!ok) continue;
      for (const std::string& f : g.members) group_of_[f] = g.name;
      groups_.push_back(std::move(g));
    }
  }

  template <typename E>
  std::optional<E> word(const JsonNode* v, const std::string& key, const Words<E>& words) {
    if (!v) return std::nullopt;
    std::vector<std::string> names;
    for (const auto& w : words) names.push_back(w.first);
    if (!v->is_string()) {
      type_error(*v, key, "one of " + join(names));
      return std::nullopt;
    }
    for (const auto& w : words)
      if (v->text == w.first) return w.second;
    error(v->pos,
          key + ": '" + v->text + "' is not one of " + join(names) + suggestion(v->text, names));
    return std::nullopt;
  }

  // The policy given by `v` (an object whose keys were already checked), starting from
  // `base`. `unit` names the field or group ("default" for the default policy), `members`
  // its fields (empty for the default policy).
  FieldPolicy parse_policy(const JsonNode& v, const std::string& unit,
                           const std::vector<std::string>& members, FieldPolicy base) {
    FieldPolicy p = std::move(base);
    const bool is_default = members.empty();
    const bool is_group = !is_default && (members.size() != 1 || members.front() != unit);
    const std::string subject = is_group ? "group '" + unit + "'" : "'" + unit + "'";
    if (const JsonNode* owner = v.find("owner")) {
      if (!owner->is_string()) {
        type_error(*owner, "owner", "a side name or \"shared\"");
      } else if (owner->text != core::kShared && !contains(ctx_.sides, owner->text)) {
        std::vector<std::string> words = ctx_.sides;
        words.push_back(core::kShared);
        error(owner->pos, "owner '" + owner->text + "' is not a side" +
                              suggestion(owner->text, words) + "; known sides: " + sides_text() +
                              " (or \"shared\")");
      } else {
        p.owner = owner->text;
      }
    }
    const JsonNode* fw = v.find("on_foreign_write");
    if (auto w = word(fw, "on_foreign_write", kForeignWriteWords)) p.on_foreign_write = *w;
    const JsonNode* oc = v.find("on_conflict");
    if (auto w = word(oc, "on_conflict", kOnConflictWords)) p.on_conflict = *w;
    const JsonNode* cmp = v.find("compare");
    if (auto w = word(cmp, "compare", kCompareWords)) p.compare = *w;
    const JsonNode* on_create = v.find("on_create");
    if (auto w = word(on_create, "on_create", kOnCreateWords)) p.on_create = *w;
    if (!is_default) {
      if (on_create && p.is_shared())
        error(on_create->pos, "on_create applies to owned fields only; " + subject +
                                  " is shared (a create already takes it from the creating side)");
      if (oc && !p.is_shared())
        error(oc->pos, "on_conflict applies to shared fields only; " + subject + " is owned by " +
                           p.owner + " (use on_foreign_write)");
      if (fw && p.is_shared())
        error(fw->pos, "on_foreign_write applies to owned fields only; " + subject +
                           " is shared (use on_conflict)");
      if (cmp && p.compare != core::Compare::kExact &&
          std::none_of(members.begin(), members.end(),
                       [&](const std::string& m) { return type_of(m) == FieldType::kText; }))
        error(cmp->pos, "compare '" + std::string(core::to_string(p.compare)) +
                            "' applies to text fields only; " + subject + " has none" +
                            " (numbers always compare by value)");
    }
    if (is_default) return p;  // validate and default values are per field (keys checked)
    if (const JsonNode* val = v.find("validate"))
      parse_validate(*val, subject, members, is_group, p);
    if (const JsonNode* d = v.find("default")) parse_default(*d, unit, is_group, p);
    return p;
  }

  FieldType type_of(const std::string& field) const {
    for (const auto& [name, type] : fields_)
      if (name == field) return type;
    return FieldType::kText;
  }

  // The first member whose type fails `ok`, described for a message ("'name' is text").
  std::optional<std::string> wrong_member(const std::vector<std::string>& members,
                                          const std::string& subject, bool is_group,
                                          bool (*ok)(FieldType)) {
    for (const std::string& m : members) {
      const FieldType t = type_of(m);
      if (ok(t)) continue;
      if (!is_group) return subject + " is " + core::to_string(t);
      return subject + " has " + core::to_string(t) + " field '" + m + "'";
    }
    return std::nullopt;
  }

  std::optional<std::string> decimal(const JsonNode& v, const std::string& key) {
    if (!v.is_number() && !v.is_string()) {
      type_error(v, key, "a decimal number (a JSON number or a string such as \"0.10\")");
      return std::nullopt;
    }
    auto d = core::canonical_decimal(v.text);
    if (!d)
      error(v.pos,
            key + " must be a plain decimal such as 0, -5 or \"1000.00\", found " + found(v));
    return d;
  }

  void parse_validate(const JsonNode& v, const std::string& subject,
                      const std::vector<std::string>& members, bool is_group, FieldPolicy& p) {
    if (!v.is_object()) {
      type_error(v, "validate", "an object");
      return;
    }
    check_keys(v, kValidateKeys, "in validate");
    core::Validation out;
    const auto is_text = [](FieldType t) { return t == FieldType::kText; };
    const auto numeric = [](FieldType t) { return is_numeric(t); };
    if (const JsonNode* r = v.find("required")) {
      if (r->is_bool())
        out.required = r->text == "true";
      else
        type_error(*r, "required", "true or false");
    }
    if (const JsonNode* ml = v.find("max_length")) {
      const bool digits = ml->is_number() && !ml->text.empty() &&
                          std::all_of(ml->text.begin(), ml->text.end(),
                                      [](char c) { return c >= '0' && c <= '9'; });
      if (!digits || ml->text.size() > 9) {
        error(ml->pos, "max_length must be a non-negative integer, found " + found(*ml));
      } else {
        out.max_length = static_cast<std::size_t>(std::stoul(ml->text));
        if (auto why = wrong_member(members, subject, is_group, is_text))
          error(ml->pos, "max_length applies to text fields only; " + *why);
      }
    }
    if (const JsonNode* pat = v.find("pattern")) {
      if (!pat->is_string()) {
        type_error(*pat, "pattern", "a string (a regular expression)");
      } else {
        try {
          out.compiled_pattern =
              std::make_shared<const std::regex>(pat->text, std::regex::ECMAScript);
          out.pattern = pat->text;
          if (auto why = wrong_member(members, subject, is_group, is_text))
            error(pat->pos, "pattern applies to text fields only; " + *why);
          if (auto hazard = core::pattern_hazard(pat->text)) error(pat->pos, "pattern: " + *hazard);
        } catch (const std::regex_error& e) {
          error(pat->pos, "pattern does not compile: " + std::string(e.what()));
        }
      }
    }
    const JsonNode* min = v.find("min");
    const JsonNode* max = v.find("max");
    for (const JsonNode* bound : {min, max}) {
      if (!bound) continue;
      const std::string key = bound == min ? "min" : "max";
      auto d = decimal(*bound, key);
      if (!d) continue;
      (bound == min ? out.min : out.max) = d;
      if (auto why = wrong_member(members, subject, is_group, numeric))
        error(bound->pos, key + " applies to numeric and integer fields only; " + *why);
    }
    if (out.min && out.max && core::compare_decimal(*out.min, *out.max) > 0)
      error(min->pos, "min " + *out.min + " is greater than max " + *out.max);
    if (const JsonNode* one = v.find("one_of")) {
      if (!one->is_array()) {
        type_error(*one, "one_of", "an array of strings");
      } else if (one->items.empty()) {
        error(one->pos, "one_of must list at least one value");
      } else {
        std::vector<std::string> values;
        for (const JsonNode& item : one->items) {
          if (item.is_string())
            values.push_back(item.text);
          else
            error(item.pos, "one_of lists strings, found " + found(item));
        }
        out.one_of = values;
      }
    }
    p.validate = out;
  }

  void parse_default(const JsonNode& d, const std::string& unit, bool is_group, FieldPolicy& p) {
    if (is_group) {
      error(d.pos, "a default value applies to a single field, not to group '" + unit + "'");
      return;
    }
    std::string raw;
    switch (d.kind) {
      case Kind::kString:
      case Kind::kNumber:
      case Kind::kBool:
        raw = d.text;
        break;
      case Kind::kNull:
        p.default_value.reset();
        return;
      default:
        type_error(d, "default", "a string, a number, true, false or null");
        return;
    }
    const FieldType type = type_of(unit);
    const auto value = core::canonicalize(type, raw);
    if (!value || !*value) {
      error(d.pos, "default " + found(d) + " is not a valid " + core::to_string(type) +
                       " value for '" + unit + "'");
      return;
    }
    if (auto why = validation_failure(p.validate, type, **value)) {
      error(d.pos, "default " + found(d) + " fails the validate rules of '" + unit + "': " + *why);
      return;
    }
    p.default_value = **value;
  }

  std::string file_;
  std::string file_name_;
  std::string entity_;
  const Fields& fields_;
  const RulesContext& ctx_;
  std::vector<Diagnostic>& diags_;
  std::size_t errors_ = 0;
  std::vector<std::string> field_names_;
  std::vector<Group> groups_;                    // valid groups, in file order
  std::map<std::string, std::string> group_of_;  // field -> its group
  std::set<std::string> declared_groups_;        // every group name, valid or not
  // Each "propagate": "deactivate:<field>" read, with the side it is for ("" if not known).
  std::vector<std::pair<const JsonNode*, std::string>> deactivations_;
};

}  // namespace

core::Ruleset check_rules(const RuleTexts& texts, const RulesContext& ctx, const std::string& dir) {
  const auto path = [&](const std::string& name) { return dir.empty() ? name : dir + "/" + name; };
  std::vector<Diagnostic> diags;
  core::Ruleset ruleset;
  std::vector<std::string> entity_names;
  for (const auto& [name, fields] : ctx.entities) entity_names.push_back(name);
  const std::string suffix = ".json";

  for (const auto& [name, text] : texts) {
    const std::string file = path(name);
    std::optional<JsonNode> root;
    try {
      root = parse_located_json(text, file);
    } catch (const CheckError& e) {
      diags.insert(diags.end(), e.diagnostics().begin(), e.diagnostics().end());
    }
    const bool json_name = name.size() > suffix.size() &&
                           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    const std::string base = json_name ? name.substr(0, name.size() - suffix.size()) : name;
    auto entity = ctx.entities.find(base);
    if (!json_name || entity == ctx.entities.end()) {
      diags.push_back(Diagnostic{file, SourcePos{},
                                 "file name '" + name + "' names no entity of the config" +
                                     suggestion(base, entity_names) +
                                     "; rules files are named <entity>.json, for entities: " +
                                     (entity_names.empty() ? "(none)" : join(entity_names))});
      continue;
    }
    if (!root) continue;
    FileChecker checker(file, name, base, entity->second, ctx, diags);
    if (auto rules = checker.check(*root)) {
      core::prepare(*rules);
      ruleset.entities[base] = std::move(*rules);
    }
  }
  for (const std::string& entity : entity_names) {
    if (texts.count(entity + suffix)) continue;
    diags.push_back(
        Diagnostic{path(entity + suffix), SourcePos{},
                   "no rules file for entity '" + entity + "' (expected " + entity + suffix + ")"});
  }
  if (!diags.empty()) {
    std::stable_sort(diags.begin(), diags.end(), [](const Diagnostic& a, const Diagnostic& b) {
      if (a.file != b.file) return a.file < b.file;
      if (a.pos.line != b.pos.line) return a.pos.line < b.pos.line;
      return a.pos.column < b.pos.column;
    });
    throw CheckError(std::move(diags));
  }
  return ruleset;
}

namespace {

std::string quoted(const std::string& s) {
  return "\"" + s + "\"";
}

std::string validate_text(const core::Validation& v) {
  std::vector<std::string> parts;
  if (v.required) parts.push_back("required");
  if (v.max_length) parts.push_back("max_length=" + std::to_string(*v.max_length));
  if (v.pattern) parts.push_back("pattern=" + quoted(*v.pattern));
  if (v.min) parts.push_back("min=" + *v.min);
  if (v.max) parts.push_back("max=" + *v.max);
  if (v.one_of) parts.push_back("one_of=" + bracketed(*v.one_of));
  return "validate{" + join(parts, " ") + "}";
}

// The policy as it decides: on_foreign_write for owned units, on_conflict for shared ones.
std::string policy_text(const FieldPolicy& p) {
  std::string out = "owner=" + p.owner;
  if (p.is_shared())
    out += std::string(" on_conflict=") + core::to_string(p.on_conflict);
  else
    out += std::string(" on_foreign_write=") + core::to_string(p.on_foreign_write);
  out += std::string(" compare=") + core::to_string(p.compare);
  if (!p.is_shared() && p.on_create == core::OnCreate::kAccept) out += " on_create=accept";
  if (!p.validate.empty()) out += " " + validate_text(p.validate);
  if (p.default_value) out += " default=" + quoted(*p.default_value);
  return out;
}

std::string propagate_text(const core::SideDelete& d) {
  return d.propagate == core::DeletePropagation::kDelete ? "delete"
                                                         : "deactivate:" + d.deactivate_field;
}

// One side: "owner=erp propagate=delete", as the one-owner form reads; several:
// "erp propagate=deactivate:active, crm propagate=delete".
std::string delete_text(const core::DeletePolicy& d) {
  if (d.sides.empty()) return "no side may delete";
  std::string out;
  if (d.sides.size() == 1) {
    out = "owner=" + d.sides.front().side + " propagate=" + propagate_text(d.sides.front());
  } else {
    for (const core::SideDelete& s : d.sides)
      out += (out.empty() ? "" : ", ") + s.side + " propagate=" + propagate_text(s);
  }
  if (d.on_foreign_delete == core::ForeignDelete::kQuarantine)
    out += " on_foreign_delete=quarantine";
  return out;
}

template <typename T>
std::string opt_text(const std::optional<T>& v, std::string (*show)(const T&)) {
  return v ? show(*v) : std::string("(none)");
}

void diff_policy(const std::string& prefix, const FieldPolicy& a, const FieldPolicy& b,
                 std::vector<std::string>& out) {
  if (a.owner != b.owner) {
    std::string line = prefix + "owner " + a.owner + " -> " + b.owner;
    if (a.is_shared() != b.is_shared()) {
      line += b.is_shared()
                  ? std::string(", on_conflict=") + core::to_string(b.on_conflict)
                  : std::string(", on_foreign_write=") + core::to_string(b.on_foreign_write);
    }
    out.push_back(line);
  }
  if (a.is_shared() && b.is_shared() && a.on_conflict != b.on_conflict)
    out.push_back(prefix + "on_conflict " + core::to_string(a.on_conflict) + " -> " +
                  core::to_string(b.on_conflict));
  if (!a.is_shared() && !b.is_shared() && a.on_foreign_write != b.on_foreign_write)
    out.push_back(prefix + "on_foreign_write " + core::to_string(a.on_foreign_write) + " -> " +
                  core::to_string(b.on_foreign_write));
  if (a.compare != b.compare)
    out.push_back(prefix + "compare " + core::to_string(a.compare) + " -> " +
                  core::to_string(b.compare));
  if (!a.is_shared() && !b.is_shared() && a.on_create != b.on_create)
    out.push_back(prefix + "on_create " + core::to_string(a.on_create) + " -> " +
                  core::to_string(b.on_create));
  const core::Validation& va = a.validate;
  const core::Validation& vb = b.validate;
  const auto str = [](const std::string& s) { return s; };
  const auto quote = [](const std::string& s) { return quoted(s); };
  const auto size = [](const std::size_t& n) { return std::to_string(n); };
  const auto list = [](const std::vector<std::string>& l) { return bracketed(l); };
  if (va.required != vb.required)
    out.push_back(prefix + "validate.required " + (va.required ? "true" : "false") + " -> " +
                  (vb.required ? "true" : "false"));
  if (va.max_length != vb.max_length)
    out.push_back(prefix + "validate.max_length " + opt_text<std::size_t>(va.max_length, size) +
                  " -> " + opt_text<std::size_t>(vb.max_length, size));
  if (va.pattern != vb.pattern)
    out.push_back(prefix + "validate.pattern " + opt_text<std::string>(va.pattern, quote) + " -> " +
                  opt_text<std::string>(vb.pattern, quote));
  if (va.min != vb.min)
    out.push_back(prefix + "validate.min " + opt_text<std::string>(va.min, str) + " -> " +
                  opt_text<std::string>(vb.min, str));
  if (va.max != vb.max)
    out.push_back(prefix + "validate.max " + opt_text<std::string>(va.max, str) + " -> " +
                  opt_text<std::string>(vb.max, str));
  if (va.one_of != vb.one_of)
    out.push_back(prefix + "validate.one_of " +
                  opt_text<std::vector<std::string>>(va.one_of, list) + " -> " +
                  opt_text<std::vector<std::string>>(vb.one_of, list));
  if (a.default_value != b.default_value)
    out.push_back(prefix + "default " + opt_text<std::string>(a.default_value, quote) + " -> " +
                  opt_text<std::string>(b.default_value, quote));
}

void diff_entity(const core::EntityRules& a, const core::EntityRules& b,
                 std::vector<std::string>& out) {
  const std::string e = a.entity;
  if (a.priority != b.priority)
    out.push_back(e + ": priority " + bracketed(a.priority) + " -> " + bracketed(b.priority));
  if (a.create != b.create)
    out.push_back(e + ": create " + bracketed(a.create) + " -> " + bracketed(b.create));
  const std::string da = delete_text(a.delete_policy), db = delete_text(b.delete_policy);
  if (da != db) out.push_back(e + ": delete " + da + " -> " + db);

  std::vector<const core::Unit*> order;
  for (const core::Unit& u : b.units) order.push_back(&u);
  for (const core::Unit& u : a.units)
    if (!b.unit_named(u.name)) order.push_back(&u);
  for (const core::Unit* u : order) {
    const core::Unit* ua = a.unit_named(u->name);
    const core::Unit* ub = b.unit_named(u->name);
    const std::string prefix = e + "." + u->name + ": ";
    if (ua && ub && ua->is_group() == ub->is_group()) {
      if (ua->members != ub->members)
        out.push_back(prefix + "group members " + bracketed(ua->members) + " -> " +
                      bracketed(ub->members));
      diff_policy(prefix, ua->policy, ub->policy, out);
      continue;
    }
    if (ua) {
      out.push_back(prefix + (ua->is_group() ? "group removed" : "removed"));
    }
    if (ub) {
      out.push_back(prefix +
                    (ub->is_group() ? "group " + bracketed(ub->members) + " added: "
                                    : std::string("added: ")) +
                    policy_text(ub->policy));
    }
  }
}

}  // namespace

std::vector<std::string> diff_rules(const core::Ruleset& from, const core::Ruleset& to) {
  std::vector<std::string> out;
  std::set<std::string> names;
  for (const auto& [name, rules] : from.entities) names.insert(name);
  for (const auto& [name, rules] : to.entities) names.insert(name);
  for (const std::string& name : names) {
    const core::EntityRules* a = from.find(name);
    const core::EntityRules* b = to.find(name);
    if (!a)
      out.push_back(name + ": entity added");
    else if (!b)
      out.push_back(name + ": entity removed");
    else
      diff_entity(*a, *b, out);
  }
  return out;
}

std::string describe(const core::EntityRules& rules) {
  const auto list = [](const std::vector<std::string>& l) {
    return l.empty() ? std::string("(none)") : join(l);
  };
  std::string out = "entity " + rules.entity + "\n";
  out += "priority: " + list(rules.priority) + "\n";
  out += "create: " + list(rules.create) + "\n";
  out += "delete: " + delete_text(rules.delete_policy) + "\n";
  out += "default: " + policy_text(rules.default_policy) + "\n";
  constexpr std::size_t kWidth = 24;
  for (const core::Unit& u : rules.units) {
    std::string line = u.name;
    line += line.size() < kWidth ? std::string(kWidth - line.size(), ' ') : std::string(" ");
    line += policy_text(u.policy);
    if (u.is_group()) line += " members=" + bracketed(u.members);
    std::vector<std::string> lacking;
    for (const auto& [side, fields] : rules.unmapped)
      if (!rules.holds(side, u)) lacking.push_back(side);
    if (!lacking.empty()) line += " unmapped on " + join(lacking);
    out += line + "\n";
  }
  return out;
}

}  // namespace mdsync::rules
