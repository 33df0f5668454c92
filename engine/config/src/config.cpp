#include "mdsync/config/config.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

#include "mdsync/core/value.hpp"
#include "mdsync/mapping/field_transform.hpp"
#include "mdsync/mapping/time_zone.hpp"
#include "mdsync/rules/located_json.hpp"

namespace mdsync::config {

using rules::Diagnostic;
using rules::JsonNode;

const std::string* SideMapping::column_of(const std::string& field) const {
  for (const auto& [f, c] : columns)
    if (f == field) return &c;
  return nullptr;
}

const mapping::FieldMapping* SideMapping::field_mapping(const std::string& field) const {
  for (const mapping::FieldMapping& f : fields)
    if (f.field == field) return &f;
  return nullptr;
}

std::vector<std::string> SideMapping::features() const {
  std::vector<std::string> out;
  if (key_columns.size() > 1) out.push_back("composite key");
  if (!timezone.empty()) out.push_back("timezone");
  if (!scope.empty()) out.push_back("scope");
  if (soft_delete) out.push_back("soft_delete");
  if (!delete_guards.empty()) out.push_back("delete_guard");
  for (const mapping::FieldMapping& f : fields) {
    if (!f.json_path.empty()) out.push_back(f.field + ": json_path");
    if (f.lookup) out.push_back(f.field + ": lookup");
    if (!f.value_map.empty()) out.push_back(f.field + ": map");
    if (f.scale) out.push_back(f.field + ": scale");
    if (!f.normalize.empty()) out.push_back(f.field + ": normalize");
  }
  return out;
}

const SideMapping* EntityConfig::mapping_for(const std::string& side) const {
  for (const SideMapping& m : mappings)
    if (m.side == side) return &m;
  return nullptr;
}

std::optional<core::FieldType> EntityConfig::type_of(const std::string& field) const {
  for (const auto& [name, type] : fields)
    if (name == field) return type;
  return std::nullopt;
}

std::vector<std::string> Config::side_names() const {
  std::vector<std::string> names;
  for (const SideConfig& s : sides) names.push_back(s.name);
  return names;
}

const EntityConfig* Config::entity(const std::string& name) const {
  for (const EntityConfig& e : entities)
    if (e.name == name) return &e;
  return nullptr;
}

const SideConfig* Config::side(const std::string& name) const {
  for (const SideConfig& s : sides)
    if (s.name == name) return &s;
  return nullptr;
}

rules::RulesContext Config::rules_context() const {
  rules::RulesContext ctx;
  ctx.sides = side_names();
  for (const EntityConfig& e : entities) {
    ctx.entities[e.name] = e.fields;
    for (const SideMapping& m : e.mappings)
      for (const auto& [field, type] : e.fields) {
        (void)type;
        if (m.column_of(field) == nullptr) ctx.unmapped[e.name][m.side].push_back(field);
      }
  }
  return ctx;
}

namespace {

// Collects problems so one run reports all of them.
class Checker {
 public:
  explicit Checker(std::string file) : file_(std::move(file)) {}

  void error(const rules::SourcePos& pos, std::string message) {
    diags_.push_back(Diagnostic{file_, pos, std::move(message)});
  }
  void finish() {
    if (!diags_.empty()) throw rules::CheckError(std::move(diags_));
  }

  // Reports keys of `obj` not in `allowed`.
  void only_keys(const JsonNode& obj, const std::string& where,
                 std::initializer_list<const char*> allowed) {
    for (const auto& m : obj.members) {
      bool ok = false;
      for (const char* a : allowed) ok = ok || m.key == a;
      if (ok) continue;
      std::string list;
      for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
      error(m.key_pos, "unknown key '" + m.key + "' in " + where + " (allowed: " + list + ")");
    }
  }

  const JsonNode* object(const JsonNode& parent, const char* key, const std::string& where,
                         bool required) {
    const JsonNode* n = parent.find(key);
    if (n == nullptr) {
      if (required) error(parent.pos, where + " needs \"" + key + "\"");
      return nullptr;
    }
    if (!n->is_object()) {
      error(n->pos, where + "." + key + " must be an object, not " + JsonNode::kind_name(n->kind));
      return nullptr;
    }
    return n;
  }

  std::optional<std::string> string(const JsonNode& parent, const char* key,
                                    const std::string& where, bool required) {
    const JsonNode* n = parent.find(key);
    if (n == nullptr) {
      if (required) error(parent.pos, where + " needs \"" + key + "\"");
      return std::nullopt;
    }
    if (!n->is_string()) {
      error(n->pos, where + "." + key + " must be a string, not " + JsonNode::kind_name(n->kind));
      return std::nullopt;
    }
    return n->text;
  }

  std::optional<int> positive_int(const JsonNode& parent, const char* key,
                                  const std::string& where) {
    const JsonNode* n = parent.find(key);
    if (n == nullptr) return std::nullopt;
    static const std::regex kInt("[1-9][0-9]{0,8}");
    if (!n->is_number() || !std::regex_match(n->text, kInt)) {
      error(n->pos, where + "." + key + " must be a positive whole number");
      return std::nullopt;
    }
    return std::stoi(n->text);
  }

  // Expands ${VAR} from the environment.
  std::string expand(const std::string& text, const rules::SourcePos& pos) {
    std::string out;
    for (std::size_t i = 0; i < text.size();) {
      if (text.compare(i, 2, "${") == 0) {
        const std::size_t end = text.find('}', i + 2);
        if (end == std::string::npos) {
          error(pos, "unterminated ${ in \"" + text.substr(i) + "\"");
          return text;
        }
        const std::string var = text.substr(i + 2, end - i - 2);
        const char* value = std::getenv(var.c_str());
        if (value == nullptr) {
          error(pos, "environment variable " + var +
                         " is not set: export it, or for the systemd service set it in the unit's "
                         "EnvironmentFile (/etc/mdsync/mdsync.env)");
        } else {
          out += value;
        }
        i = end + 1;
      } else {
        out += text[i++];
      }
    }
    return out;
  }

 private:
  std::string file_;
  std::vector<Diagnostic> diags_;
};

bool is_name(const std::string& s) {
  static const std::regex kName("[a-z][a-z0-9_]{0,62}");
  return std::regex_match(s, kName);
}

bool is_field_name(const std::string& s) {
  static const std::regex kField("[A-Za-z_][A-Za-z0-9_]{0,62}");
  return std::regex_match(s, kField);
}

// A SQL identifier as PostgreSQL will take it once quoted: any text but NUL, at most 63
// bytes (a longer name would be cut silently and could name another column).
std::optional<std::string> identifier(Checker& check, const JsonNode* n, const std::string& where,
                                      const char* what = "a column") {
  if (n == nullptr) return std::nullopt;
  if (!n->is_string() || n->text.empty()) {
    check.error(n->pos, where + " must name " + what);
    return std::nullopt;
  }
  if (n->text.find('\0') != std::string::npos) {
    check.error(n->pos, where + ": a name cannot hold a NUL character");
    return std::nullopt;
  }
  if (n->text.size() > 63) {
    check.error(n->pos, where + ": '" + n->text +
                            "' is longer than 63 bytes, which PostgreSQL would cut short");
    return std::nullopt;
  }
  return n->text;
}

std::optional<std::string> required_identifier(Checker& check, const JsonNode& parent,
                                               const char* key, const std::string& where,
                                               const char* what = "a column") {
  const JsonNode* n = parent.find(key);
  if (n == nullptr) {
    check.error(parent.pos, where + " needs \"" + key + "\"");
    return std::nullopt;
  }
  return identifier(check, n, where + "." + key, what);
}

std::string path_text(const std::vector<std::string>& path) {
  std::string out;
  for (const std::string& p : path) out += std::string(out.empty() ? "" : ", ") + "\"" + p + "\"";
  return "[" + out + "]";
}

// Normalizer words of a "normalize" array; reports unknown ones.
std::optional<std::vector<mapping::Normalizer>> normalizers(Checker& check, const JsonNode& n,
                                                            const std::string& where) {
  if (!n.is_array() || n.items.empty()) {
    check.error(n.pos, where + " must list normalizers, such as [\"trim\", \"lower\"] (known: " +
                           mapping::normalizer_names() + ")");
    return std::nullopt;
  }
  std::vector<mapping::Normalizer> out;
  bool ok = true;
  for (const JsonNode& item : n.items) {
    const auto norm = item.is_string() ? mapping::normalizer_from_string(item.text) : std::nullopt;
    if (!norm) {
      check.error(item.pos, "unknown normalizer " +
                                (item.is_string() ? "'" + item.text + "'"
                                                  : std::string(JsonNode::kind_name(item.kind))) +
                                " in " + where + " (known: " + mapping::normalizer_names() + ")");
      ok = false;
      continue;
    }
    out.push_back(*norm);
  }
  if (!ok) return std::nullopt;
  return out;
}

// A predicate literal: a string, a plain decimal number, true/false, or null.
std::optional<mapping::Literal> literal(Checker& check, const JsonNode& n,
                                        const std::string& where) {
  mapping::Literal l;
  switch (n.kind) {
    case JsonNode::Kind::kNull:
      return l;
    case JsonNode::Kind::kString:
      if (n.text.find('\0') != std::string::npos) {
        check.error(n.pos, where + ": a value cannot hold a NUL character");
        return std::nullopt;
      }
      l.kind = mapping::Literal::Kind::kString;
      l.value = n.text;
      return l;
    case JsonNode::Kind::kNumber:
      if (!core::canonical_decimal(n.text)) {
        check.error(n.pos, where + ": write the number " + n.text +
                               " as plain digits (such as 100000 or 0.5)");
        return std::nullopt;
      }
      l.kind = mapping::Literal::Kind::kNumber;
      l.value = n.text;
      return l;
    case JsonNode::Kind::kBool:
      l.kind = mapping::Literal::Kind::kBoolean;
      l.value = n.text;
      return l;
    default:
      check.error(n.pos, where + " must be a string, a number, true, false or null, not " +
                             std::string(JsonNode::kind_name(n.kind)));
      return std::nullopt;
  }
}

// {"column": "is_company", "eq": true}: one column, exactly one operator, literals only.
std::optional<mapping::Predicate> predicate(Checker& check, const JsonNode& n,
                                            const std::string& where) {
  static const char* const kExample = "{\"column\": \"is_company\", \"eq\": true}";
  if (!n.is_object()) {
    check.error(n.pos, where + " must be an object such as " + kExample);
    return std::nullopt;
  }
  check.only_keys(n, where, {"column", "eq", "ne", "in", "not_in"});
  mapping::Predicate p;
  const auto column = required_identifier(check, n, "column", where);
  const std::pair<const char*, mapping::PredicateOp> ops[] = {
      {"eq", mapping::PredicateOp::kEq},
      {"ne", mapping::PredicateOp::kNe},
      {"in", mapping::PredicateOp::kIn},
      {"not_in", mapping::PredicateOp::kNotIn}};
  const JsonNode* operand = nullptr;
  int found = 0;
  for (const auto& [word, op] : ops)
    if (const JsonNode* v = n.find(word)) {
      ++found;
      operand = v;
      p.op = op;
    }
  if (found != 1) {
    check.error(n.pos, where + " needs exactly one of eq, ne, in, not_in, as in " + kExample);
    return std::nullopt;
  }
  bool ok = column.has_value();
  const std::string owhere = where + "." + mapping::to_string(p.op);
  if (p.op == mapping::PredicateOp::kEq || p.op == mapping::PredicateOp::kNe) {
    if (auto l = literal(check, *operand, owhere))
      p.values.push_back(*l);
    else
      ok = false;
  } else if (!operand->is_array() || operand->items.empty()) {
    check.error(operand->pos, owhere + " must list one or more values");
    ok = false;
  } else {
    for (const JsonNode& item : operand->items) {
      if (auto l = literal(check, item, owhere))
        p.values.push_back(*l);
      else
        ok = false;
    }
  }
  if (!ok) return std::nullopt;
  p.column = *column;
  return p;
}

std::vector<mapping::Predicate> predicates(Checker& check, const JsonNode& n,
                                           const std::string& where) {
  std::vector<mapping::Predicate> out;
  if (!n.is_array() || n.items.empty()) {
    check.error(
        n.pos,
        where + " must list predicates such as [{\"column\": \"is_company\", \"eq\": true}]");
    return out;
  }
  for (std::size_t i = 0; i < n.items.size(); ++i)
    if (auto p = predicate(check, n.items[i], where + "[" + std::to_string(i) + "]"))
      out.push_back(std::move(*p));
  return out;
}

// A field's mapping where it is positioned, so contradictions between fields can name the
// place of the second one.
struct LocatedField {
  mapping::FieldMapping mapping;
  rules::SourcePos column_pos;
};

// A path of object keys into a jsonb value (["vat"], ["en_US"]) into `out`.
bool object_keys(Checker& check, const JsonNode& path, const std::string& where,
                 const char* example, std::vector<std::string>& out) {
  if (!path.is_array() || path.items.empty()) {
    check.error(path.pos,
                where + " must list the keys leading to the value, such as [" + example + "]");
    return false;
  }
  bool ok = true;
  for (const JsonNode& k : path.items) {
    if (!k.is_string() || k.text.find('\0') != std::string::npos) {
      check.error(k.pos, where + " lists object keys (strings without NUL)");
      ok = false;
      continue;
    }
    out.push_back(k.text);
  }
  return ok;
}

// "name": "accountName", or an object with "column" and the mapping options.
std::optional<LocatedField> field_mapping(Checker& check, const JsonNode::Member& c,
                                          core::FieldType type, const std::string& where) {
  const JsonNode& v = c.value;
  LocatedField out;
  out.mapping.field = c.key;
  if (v.is_string()) {
    auto column = identifier(check, &v, where);
    if (!column) return std::nullopt;
    out.mapping.column = *column;
    out.column_pos = v.pos;
    return out;
  }
  if (!v.is_object()) {
    check.error(v.pos, where + " must name a column");
    return std::nullopt;
  }
  check.only_keys(v, where,
                  {"column", "json_path", "lookup", "map", "scale", "normalize", "write_as"});
  bool ok = true;
  mapping::FieldMapping& fm = out.mapping;
  if (auto column = required_identifier(check, v, "column", where)) {
    fm.column = *column;
    out.column_pos = v.find("column")->pos;
  } else {
    ok = false;
  }
  const JsonNode* path = v.find("json_path");
  if (path != nullptr && !object_keys(check, *path, where + ".json_path", "\"vat\"", fm.json_path))
    ok = false;
  const JsonNode* lookup = v.find("lookup");
  if (lookup != nullptr) {
    const std::string lwhere = where + ".lookup";
    if (!lookup->is_object()) {
      check.error(lookup->pos, lwhere +
                                   " must be an object such as {\"table\": \"res_country\", "
                                   "\"key\": \"id\", \"value\": \"code\"}");
      ok = false;
    } else {
      check.only_keys(*lookup, lwhere, {"schema", "table", "key", "value", "value_path", "within"});
      mapping::Lookup l;
      if (const JsonNode* schema = lookup->find("schema")) {
        if (auto s = identifier(check, schema, lwhere + ".schema", "a schema")) l.schema = *s;
      }
      auto table = required_identifier(check, *lookup, "table", lwhere, "a table");
      auto key = required_identifier(check, *lookup, "key", lwhere);
      auto value = required_identifier(check, *lookup, "value", lwhere);
      if (const JsonNode* vp = lookup->find("value_path");
          vp != nullptr &&
          !object_keys(check, *vp, lwhere + ".value_path", "\"en_US\"", l.value_path))
        ok = false;
      // The fields it names are checked with the side's other columns (mapping_columns).
      if (const JsonNode* within = lookup->find("within")) {
        if (!within->is_object() || within->members.empty()) {
          check.error(within->pos, lwhere +
                                       ".within must map lookup-table columns to fields of this "
                                       "entity, such as {\"country_id\": \"country\"}");
          ok = false;
        } else {
          for (const auto& w : within->members) {
            auto col = identifier(check, &w.value, lwhere + ".within." + w.key, "a field");
            JsonNode key_node;
            key_node.kind = JsonNode::Kind::kString;
            key_node.text = w.key;
            key_node.pos = w.key_pos;
            auto lcol = identifier(check, &key_node, lwhere + ".within");
            if (col && lcol)
              l.within.emplace_back(*lcol, *col);
            else
              ok = false;
          }
        }
      }
      if (table && key && value) {
        l.table = *table;
        l.key = *key;
        l.value = *value;
        fm.lookup = l;
      } else {
        ok = false;
      }
      if (path != nullptr) {
        check.error(
            lookup->pos,
            where + ": a lookup reads a foreign-key column, so it cannot also have a json_path");
        ok = false;
      }
    }
  }
  const JsonNode* map = v.find("map");
  if (map != nullptr) {
    if (!map->is_object() || map->members.empty()) {
      check.error(map->pos, where +
                                ".map must be an object of canonical value -> side value, "
                                "such as {\"BE\": \"Belgium\"}");
      ok = false;
    } else {
      for (const auto& m : map->members) {
        if (m.value.is_string() || m.value.is_number() || m.value.is_bool()) {
          fm.value_map.emplace_back(m.key, m.value.text);
        } else {
          check.error(m.value.pos, where + ".map." + m.key +
                                       " must be the side's value (a string, "
                                       "number or boolean), not " +
                                       JsonNode::kind_name(m.value.kind));
          ok = false;
        }
      }
      if (type == core::FieldType::kJson) {
        check.error(map->pos, where + ": a value map does not apply to json fields");
        ok = false;
      }
    }
  }
  const JsonNode* scale = v.find("scale");
  if (scale != nullptr) {
    static const std::regex kScale("-?[0-9]{1,3}");
    if (!scale->is_number() || !std::regex_match(scale->text, kScale) ||
        std::abs(std::stoi(scale->text)) > mapping::kMaxScale) {
      check.error(scale->pos, where + ".scale must be a whole number from -" +
                                  std::to_string(mapping::kMaxScale) + " to " +
                                  std::to_string(mapping::kMaxScale) +
                                  " (6: the side stores millionths)");
      ok = false;
    } else if (type != core::FieldType::kNumeric && type != core::FieldType::kInteger) {
      check.error(scale->pos, where + ": scale applies to numeric and integer fields; " + c.key +
                                  " is " + core::to_string(type));
      ok = false;
    } else if (map != nullptr) {
      check.error(scale->pos, where + ": a field cannot have both a value map and a scale");
      ok = false;
    } else {
      fm.scale = std::stoi(scale->text);
    }
  }
  if (const JsonNode* norm = v.find("normalize")) {
    if (auto ns = normalizers(check, *norm, where + ".normalize")) {
      if (type != core::FieldType::kText) {
        check.error(norm->pos, where + ": normalizers apply to text fields; " + c.key + " is " +
                                   core::to_string(type));
        ok = false;
      } else {
        fm.normalize = *ns;
      }
    } else {
      ok = false;
    }
  }
  const JsonNode* write_as = v.find("write_as");
  if (write_as != nullptr) {
    if (!write_as->is_string() || write_as->text.find('\0') != std::string::npos) {
      check.error(write_as->pos, where + ".write_as must be a text such as \"https://{value}\"");
      ok = false;
    } else {
      fm.write_as = write_as->text;
    }
  }
  if (!ok) return std::nullopt;
  // What is left to check needs the transform itself: a map that is not one-to-one (also
  // after the normalizers) cannot be read back.
  try {
    const mapping::FieldTransform transform(type, fm);
    if (map != nullptr)
      for (const auto& m : map->members)
        if (auto problem = transform.check_round_trip(m.key)) {
          check.error(m.key_pos, where + ".map." + m.key + " does not round-trip: " + *problem);
          ok = false;
        }
  } catch (const std::invalid_argument& e) {
    check.error(map != nullptr        ? map->pos
                : write_as != nullptr ? write_as->pos
                                      : v.pos,
                where + ": " + e.what());
    ok = false;
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<mapping::SoftDelete> soft_delete(Checker& check, const JsonNode& n,
                                               const std::string& where) {
  if (!n.is_object()) {
    check.error(n.pos, where +
                           " must be an object such as {\"column\": \"deletedAt\", \"kind\": "
                           "\"timestamp\"} or {\"column\": \"active\", \"kind\": \"flag\"}");
    return std::nullopt;
  }
  check.only_keys(n, where, {"column", "kind", "deleted_when"});
  mapping::SoftDelete sd;
  auto column = required_identifier(check, n, "column", where);
  auto kind = check.string(n, "kind", where, true);
  bool ok = column && kind;
  if (kind && *kind == "timestamp") {
    sd.kind = mapping::SoftDeleteKind::kTimestamp;
  } else if (kind && *kind == "flag") {
    sd.kind = mapping::SoftDeleteKind::kFlag;
  } else if (kind) {
    check.error(n.find("kind")->pos, where + ".kind: '" + *kind +
                                         "' is not a kind (timestamp: set when deleted; flag: a "
                                         "boolean column)");
    ok = false;
  }
  if (const JsonNode* d = n.find("deleted_when")) {
    if (!d->is_bool()) {
      check.error(d->pos, where + ".deleted_when must be true or false");
      ok = false;
    } else if (kind && *kind != "flag") {
      check.error(d->pos, where +
                              ".deleted_when applies to a flag; a timestamp marks deletion "
                              "by being set");
      ok = false;
    } else {
      sd.deleted_value = d->text == "true";
    }
  }
  if (!ok) return std::nullopt;
  sd.column = *column;
  return sd;
}

std::optional<mapping::DeleteGuard> delete_guard(Checker& check, const JsonNode& n,
                                                 const std::string& where) {
  if (!n.is_object()) {
    check.error(n.pos, where +
                           " must be an object such as {\"table\": \"account_move\", \"on\": "
                           "{\"partner_id\": \"id\"}, \"where\": [...], \"reason\": \"...\"}");
    return std::nullopt;
  }
  check.only_keys(n, where, {"schema", "table", "on", "where", "reason"});
  mapping::DeleteGuard g;
  bool ok = true;
  if (const JsonNode* schema = n.find("schema")) {
    if (auto s = identifier(check, schema, where + ".schema", "a schema"))
      g.schema = *s;
    else
      ok = false;
  }
  if (auto table = required_identifier(check, n, "table", where, "a table"))
    g.table = *table;
  else
    ok = false;
  const JsonNode* on = n.find("on");
  if (on == nullptr) {
    check.error(n.pos, where +
                           " needs \"on\": which of its columns refer to the row, such as "
                           "{\"partner_id\": \"id\"}");
    ok = false;
  } else if (!on->is_object() || on->members.empty()) {
    check.error(on->pos, where +
                             ".on must be an object of guard column -> this row's column, "
                             "such as {\"partner_id\": \"id\"}");
    ok = false;
  } else {
    for (const auto& m : on->members) {
      if (m.key.empty() || m.key.size() > 63 || m.key.find('\0') != std::string::npos) {
        check.error(m.key_pos, where + ".on: '" + m.key + "' is not a column name");
        ok = false;
        continue;
      }
      if (auto col = identifier(check, &m.value, where + ".on." + m.key))
        g.on.emplace_back(m.key, *col);
      else
        ok = false;
    }
  }
  if (const JsonNode* w = n.find("where")) {
    g.where = predicates(check, *w, where + ".where");
    if (!w->is_array() || g.where.size() != w->items.size()) ok = false;
  }
  if (auto reason = check.string(n, "reason", where, false)) {
    if (reason->empty()) {
      check.error(n.find("reason")->pos, where + ".reason must say why the delete is refused");
      ok = false;
    }
    g.reason = *reason;
  } else {
    g.reason = "rows in " + g.table + " refer to it";
  }
  if (!ok) return std::nullopt;
  return g;
}

// {"field": "website", "normalize": ["url_host"]} or {"fields": ["country", "vat"]}.
std::optional<mapping::MatchKeySpec> match_key(Checker& check, const JsonNode& n,
                                               const EntityConfig& entity, const std::string& where,
                                               bool fuzzy) {
  if (!n.is_object()) {
    check.error(n.pos, where +
                           " must be an object such as {\"field\": \"website\", "
                           "\"normalize\": [\"url_host\"]}");
    return std::nullopt;
  }
  check.only_keys(n, where, {"field", "fields", "normalize", "threshold"});
  mapping::MatchKeySpec key;
  bool ok = true;
  const JsonNode* one = n.find("field");
  const JsonNode* many = n.find("fields");
  std::vector<const JsonNode*> names;
  if ((one == nullptr) == (many == nullptr)) {
    check.error(n.pos, where + " needs either \"field\" or \"fields\" (a composite key)");
    return std::nullopt;
  }
  if (one != nullptr) {
    names.push_back(one);
  } else if (!many->is_array() || many->items.empty()) {
    check.error(many->pos, where + ".fields must list the fields of the key");
    return std::nullopt;
  } else {
    for (const JsonNode& item : many->items) names.push_back(&item);
  }
  bool all_text = true;
  for (const JsonNode* name : names) {
    if (!name->is_string()) {
      check.error(name->pos, where + " names fields with strings, not " +
                                 std::string(JsonNode::kind_name(name->kind)));
      ok = false;
      continue;
    }
    const auto type = entity.type_of(name->text);
    if (!type) {
      check.error(name->pos, "entity " + entity.name + " has no field '" + name->text + "'");
      ok = false;
      continue;
    }
    if (std::find(key.fields.begin(), key.fields.end(), name->text) != key.fields.end()) {
      check.error(name->pos, where + " lists field '" + name->text + "' twice");
      ok = false;
      continue;
    }
    all_text = all_text && *type == core::FieldType::kText;
    key.fields.push_back(name->text);
  }
  if (const JsonNode* norm = n.find("normalize")) {
    if (auto ns = normalizers(check, *norm, where + ".normalize")) {
      if (!all_text) {
        check.error(norm->pos, where + ": normalizers apply to text fields only");
        ok = false;
      }
      key.normalize = *ns;
    } else {
      ok = false;
    }
  }
  if (const JsonNode* t = n.find("threshold")) {
    // Thousandths: the similarity a steward reads in a possible_duplicate's reason is the
    // number compared with the threshold, with no float rounding in between.
    static const std::regex kThreshold("(0|1)(\\.[0-9]{1,3})?");
    if (!fuzzy) {
      check.error(t->pos, where +
                              ": a threshold applies to fuzzy keys only (an exact key "
                              "links on equal values)");
      ok = false;
    } else if (!t->is_number() || !std::regex_match(t->text, kThreshold)) {
      check.error(t->pos, where +
                              ".threshold must be a similarity above 0 and at most 1, with "
                              "at most 3 decimals, such as 0.85");
      ok = false;
    } else {
      const std::size_t dot = t->text.find('.');
      std::string frac = dot == std::string::npos ? "" : t->text.substr(dot + 1);
      frac.resize(3, '0');
      key.threshold_permille = (t->text[0] - '0') * 1000 + std::stoi(frac);
      if (key.threshold_permille == 0 || key.threshold_permille > 1000) {
        check.error(t->pos, where +
                                ".threshold must be a similarity above 0 and at most 1, "
                                "such as 0.85 (" +
                                t->text + " would " +
                                (key.threshold_permille == 0 ? "propose every record"
                                                             : "never propose anything") +
                                ")");
        ok = false;
      }
    }
  }
  if (!ok) return std::nullopt;
  return key;
}

void match_spec(Checker& check, const JsonNode& n, EntityConfig& entity, const std::string& where) {
  check.only_keys(n, where, {"keys", "fuzzy"});
  std::set<std::pair<std::vector<std::string>, std::vector<mapping::Normalizer>>> seen;
  for (const char* list : {"keys", "fuzzy"}) {
    const JsonNode* items = n.find(list);
    if (items == nullptr) continue;
    const std::string lwhere = where + "." + list;
    if (!items->is_array() || items->items.empty()) {
      check.error(items->pos, lwhere +
                                  " must list match keys, such as [{\"field\": \"website\", "
                                  "\"normalize\": [\"url_host\"]}]");
      continue;
    }
    for (std::size_t i = 0; i < items->items.size(); ++i) {
      auto key = match_key(check, items->items[i], entity, lwhere + "[" + std::to_string(i) + "]",
                           std::string(list) == "fuzzy");
      if (!key) continue;
      if (!seen.emplace(key->fields, key->normalize).second) {
        check.error(items->items[i].pos, "match key " + key->name() + " is listed twice");
        continue;
      }
      // A key links a row of one side to a record another side's row made: it needs two sides
      // that map every field of it (a side with no column for one never has the key).
      std::vector<std::string> holders;
      for (const SideMapping& m : entity.mappings)
        if (std::all_of(key->fields.begin(), key->fields.end(),
                        [&](const std::string& f) { return m.column_of(f) != nullptr; }))
          holders.push_back(m.side);
      if (!entity.mappings.empty() && holders.size() < 2) {
        check.error(items->items[i].pos,
                    "match key " + key->name() + ": " +
                        (holders.empty() ? std::string("no side") : "only " + holders.front()) +
                        " maps every field of it; a key links rows of two sides, so at least " +
                        "two sides must map its fields");
        continue;
      }
      (std::string(list) == "keys" ? entity.match.keys : entity.match.fuzzy).push_back(*key);
    }
  }
  if (n.find("keys") == nullptr && n.find("fuzzy") == nullptr)
    check.error(n.pos, where + " needs \"keys\" (exact match keys) or \"fuzzy\" (or both)");
}

std::string time_zone(Checker& check, const JsonNode& parent, const std::string& where) {
  const JsonNode* n = parent.find("timezone");
  if (n == nullptr) return {};
  if (!n->is_string() || !mapping::is_known_time_zone(n->text)) {
    check.error(n->pos, where +
                            ".timezone must be an IANA time zone such as \"Europe/Brussels\" "
                            "or \"UTC\"" +
                            (n->is_string() ? ", not '" + n->text + "'" : std::string()));
    return {};
  }
  return n->text;
}

// "key": "id", or ["company_id", "code"] for a composite key.
void mapping_key(Checker& check, const JsonNode& side_map, const std::string& where,
                 SideMapping& m) {
  const JsonNode* k = side_map.find("key");
  if (k == nullptr) {
    check.error(side_map.pos, where + " needs \"key\"");
    return;
  }
  if (k->is_string()) {
    if (auto col = identifier(check, k, where + ".key")) {
      m.key_columns = {*col};
      m.key_column = *col;
    }
    return;
  }
  if (!k->is_array() || k->items.empty()) {
    check.error(k->pos, where +
                            ".key must name the key column, or list the columns of a "
                            "composite key such as [\"company_id\", \"code\"]");
    return;
  }
  for (const JsonNode& item : k->items) {
    auto col = identifier(check, &item, where + ".key");
    if (!col) continue;
    if (std::find(m.key_columns.begin(), m.key_columns.end(), *col) != m.key_columns.end()) {
      check.error(item.pos, "key column '" + *col + "' is listed twice");
      continue;
    }
    m.key_columns.push_back(*col);
  }
  if (m.key_columns.size() == 1) m.key_column = m.key_columns.front();
}

// "columns": a column, or a column with mapping options, for every field, or null for a field
// the side has no column for (it is then never captured there nor written there). Two fields
// may share a jsonb column only at paths that do not overlap; a plain column holds one field.
void mapping_columns(Checker& check, const JsonNode& cols, const EntityConfig& entity,
                     const std::string& where, SideMapping& m) {
  std::map<std::string, LocatedField> parsed;
  for (const auto& c : cols.members) {
    const auto type = entity.type_of(c.key);
    if (!type) {
      check.error(c.key_pos, "entity " + entity.name + " has no field '" + c.key + "'");
      continue;
    }
    if (c.value.kind == JsonNode::Kind::kNull) continue;  // unmapped on this side
    auto located = field_mapping(check, c, *type, where + ".columns." + c.key);
    if (!located) continue;
    const mapping::FieldMapping& fm = located->mapping;
    for (const auto& [other_field, other] : parsed) {
      const mapping::FieldMapping& o = other.mapping;
      if (o.column != fm.column) continue;
      if (fm.json_path.empty() && o.json_path.empty()) {
        check.error(located->column_pos, "column '" + fm.column + "' is mapped twice");
      } else if (fm.json_path.empty() || o.json_path.empty()) {
        check.error(located->column_pos, "column '" + fm.column + "' holds field " +
                                             (fm.json_path.empty() ? o.field : fm.field) +
                                             " at a json_path, so it " + "cannot also hold field " +
                                             (fm.json_path.empty() ? fm.field : o.field) +
                                             " as a whole");
      } else if (fm.json_path == o.json_path) {
        check.error(located->column_pos, "json_path " + path_text(fm.json_path) + " of column '" +
                                             fm.column + "' is mapped twice (fields " + o.field +
                                             " and " + fm.field + ")");
      } else {
        const std::size_t n = std::min(fm.json_path.size(), o.json_path.size());
        if (std::equal(fm.json_path.begin(), fm.json_path.begin() + n, o.json_path.begin()))
          check.error(located->column_pos, "json_path " + path_text(fm.json_path) + " of column '" +
                                               fm.column + "' overlaps field " + o.field + "'s " +
                                               path_text(o.json_path) +
                                               ": writing one would overwrite the other");
      }
    }
    for (const std::string& k : m.key_columns)
      if (fm.column == k)
        check.error(located->column_pos,
                    "column '" + fm.column + "' is the row key; the key is not a field");
    parsed.emplace(c.key, std::move(*located));
  }
  for (const auto& [field, type] : entity.fields) {
    (void)type;
    const auto it = parsed.find(field);
    if (it != parsed.end()) {
      m.columns.emplace_back(field, it->second.mapping.column);
      m.fields.push_back(it->second.mapping);
    } else if (cols.find(field) == nullptr) {
      check.error(cols.pos, where + ".columns has no column for field '" + field + "' (write \"" +
                                field + "\": null if " + m.side + " does not hold it)");
    }
  }
  // A lookup `within` another field compares the lookup table with that field's column on the
  // same row, so the field must be one this side maps to a column of its own.
  for (const auto& [field, located] : parsed) {
    if (!located.mapping.lookup) continue;
    for (const auto& [lookup_column, other] : located.mapping.lookup->within) {
      const std::string at = where + ".columns." + field + ".lookup.within." + lookup_column;
      const auto o = parsed.find(other);
      if (other == field)
        check.error(located.column_pos, at + ": a lookup cannot be within its own field");
      else if (o == parsed.end())
        check.error(located.column_pos, at + ": '" + other + "' is not a field this side maps");
      else if (!o->second.mapping.json_path.empty())
        check.error(located.column_pos, at + ": field " + other +
                                            " is at a json_path; within needs a field held "
                                            "in a column of its own");
      else if (o->second.mapping.lookup && !o->second.mapping.lookup->within.empty())
        check.error(located.column_pos, at + ": field " + other +
                                            " is itself looked up within another field; one "
                                            "level of within is supported");
    }
  }
}
}  // namespace

Config parse_config(const std::string& text, const std::string& path) {
  const JsonNode root = rules::parse_located_json(text, path);
  Checker check(path);
  Config cfg;
  cfg.path = path;
  cfg.base_dir = std::filesystem::path(path).parent_path().string();
  if (cfg.base_dir.empty()) cfg.base_dir = ".";
  if (!root.is_object()) {
    check.error(root.pos, "the config must be a JSON object");
    check.finish();
  }
  check.only_keys(root, "the config",
                  {"control", "rules", "sides", "entities", "service", "initial_sync", "roles"});

  if (auto control = check.string(root, "control", "the config", true))
    cfg.control_dsn = check.expand(*control, root.find("control")->pos);
  std::string rules_dir = "rules";
  if (auto r = check.string(root, "rules", "the config", false))
    rules_dir = check.expand(*r, root.find("rules")->pos);
  cfg.rules_dir =
      std::filesystem::path(rules_dir).is_absolute()
          ? rules_dir
          : (std::filesystem::path(cfg.base_dir) / rules_dir).lexically_normal().string();

  if (const JsonNode* sides = check.object(root, "sides", "the config", true)) {
    for (const auto& m : sides->members) {
      const std::string where = "sides." + m.key;
      if (!is_name(m.key) || m.key == core::kShared || m.key == "golden" || m.key == "steward") {
        check.error(m.key_pos, "side name '" + m.key +
                                   "' must be lower-case letters, digits and _ (and not "
                                   "shared, golden or steward)");
        continue;
      }
      if (!m.value.is_object()) {
        check.error(m.value.pos, where + " must be an object");
        continue;
      }
      check.only_keys(
          m.value, where,
          {"dsn", "capture", "notify", "timezone", "circuit_breaker", "max_writes_per_s"});
      SideConfig side;
      side.name = m.key;
      side.timezone = time_zone(check, m.value, where);
      if (auto dsn = check.string(m.value, "dsn", where, true))
        side.dsn = check.expand(*dsn, m.value.find("dsn")->pos);
      if (auto capture = check.string(m.value, "capture", where, false);
          capture && *capture != "trigger")
        check.error(m.value.find("capture")->pos,
                    where + ".capture: '" + *capture + "' is not supported (use \"trigger\")");
      if (const JsonNode* n = m.value.find("notify")) {
        if (!n->is_bool())
          check.error(n->pos, where + ".notify must be true or false");
        else
          side.notify = n->text == "true";
      }
      if (const JsonNode* cb = check.object(m.value, "circuit_breaker", where, false)) {
        const std::string cwhere = where + ".circuit_breaker";
        check.only_keys(*cb, cwhere, {"failures", "open_s", "max_open_s"});
        CircuitBreakerConfig& c = side.circuit_breaker;
        if (auto v = check.positive_int(*cb, "failures", cwhere)) c.failures = *v;
        if (auto v = check.positive_int(*cb, "open_s", cwhere)) c.open_s = *v;
        // Unless given, the maximum follows a longer open_s rather than refusing it.
        const auto max_open = check.positive_int(*cb, "max_open_s", cwhere);
        c.max_open_s = max_open ? *max_open : std::max(c.max_open_s, c.open_s);
        if (c.max_open_s < c.open_s)
          check.error(cb->find("max_open_s")->pos,
                      cwhere + ".max_open_s (" + std::to_string(c.max_open_s) +
                          ") must be at least open_s (" + std::to_string(c.open_s) +
                          "): re-openings only get longer");
      }
      side.max_writes_per_s = check.positive_int(m.value, "max_writes_per_s", where);
      cfg.sides.push_back(std::move(side));
    }
    if (cfg.sides.size() < 2) check.error(sides->pos, "the config needs at least two sides");
  }

  if (const JsonNode* entities = check.object(root, "entities", "the config", true)) {
    for (const auto& e : entities->members) {
      const std::string where = "entities." + e.key;
      if (!is_name(e.key)) {
        check.error(e.key_pos,
                    "entity name '" + e.key + "' must be lower-case letters, digits and _");
        continue;
      }
      if (!e.value.is_object()) {
        check.error(e.value.pos, where + " must be an object");
        continue;
      }
      check.only_keys(e.value, where, {"fields", "sides", "match", "label"});
      EntityConfig entity;
      entity.name = e.key;
      std::set<std::string> field_names;
      if (const JsonNode* fields = check.object(e.value, "fields", where, true)) {
        for (const auto& f : fields->members) {
          if (!is_field_name(f.key)) {
            check.error(f.key_pos, "field name '" + f.key + "' must be letters, digits and _");
            continue;
          }
          const auto type =
              f.value.is_string() ? core::field_type_from_string(f.value.text) : std::nullopt;
          if (!type) {
            check.error(f.value.pos, where + ".fields." + f.key +
                                         ": type must be one of text, integer, numeric, "
                                         "boolean, date, timestamptz, json");
            continue;
          }
          entity.fields.emplace_back(f.key, *type);
          field_names.insert(f.key);
        }
        if (fields->members.empty()) check.error(fields->pos, where + " has no fields");
      }
      if (const JsonNode* maps = check.object(e.value, "sides", where, true)) {
        for (const auto& s : maps->members) {
          const std::string mwhere = where + ".sides." + s.key;
          if (cfg.side(s.key) == nullptr) {
            check.error(s.key_pos, "'" + s.key + "' is not a side of this config");
            continue;
          }
          if (!s.value.is_object()) {
            check.error(s.value.pos, mwhere + " must be an object");
            continue;
          }
          check.only_keys(s.value, mwhere,
                          {"schema", "table", "key", "columns", "timezone", "scope", "soft_delete",
                           "delete_guard"});
          SideMapping mapping;
          mapping.side = s.key;
          if (auto v = check.string(s.value, "schema", mwhere, false)) mapping.schema = *v;
          if (auto v = check.string(s.value, "table", mwhere, true)) mapping.table = *v;
          mapping_key(check, s.value, mwhere, mapping);
          mapping.timezone = time_zone(check, s.value, mwhere);
          if (mapping.timezone.empty()) mapping.timezone = cfg.side(s.key)->timezone;
          if (const JsonNode* cols = check.object(s.value, "columns", mwhere, true))
            mapping_columns(check, *cols, entity, mwhere, mapping);
          if (const JsonNode* scope = s.value.find("scope")) {
            if (!scope->is_object()) {
              check.error(scope->pos, mwhere +
                                          ".scope must be an object such as {\"where\": "
                                          "[{\"column\": \"is_company\", \"eq\": true}]}");
            } else {
              check.only_keys(*scope, mwhere + ".scope", {"where"});
              if (const JsonNode* w = scope->find("where"))
                mapping.scope = predicates(check, *w, mwhere + ".scope.where");
              else
                check.error(scope->pos, mwhere + ".scope needs \"where\"");
            }
          }
          if (const JsonNode* sd = s.value.find("soft_delete")) {
            mapping.soft_delete = soft_delete(check, *sd, mwhere + ".soft_delete");
            if (mapping.soft_delete) {
              const rules::SourcePos pos = sd->find("column")->pos;
              const std::string& col = mapping.soft_delete->column;
              for (const mapping::FieldMapping& f : mapping.fields)
                if (f.column == col)
                  check.error(pos, "soft_delete column '" + col + "' is also mapped as field '" +
                                       f.field +
                                       "': a column either marks deletion or holds a field");
              for (const std::string& k : mapping.key_columns)
                if (k == col) check.error(pos, "soft_delete column '" + col + "' is the row key");
            }
          }
          if (const JsonNode* guards = s.value.find("delete_guard")) {
            const std::string gwhere = mwhere + ".delete_guard";
            if (guards->is_array()) {
              if (guards->items.empty()) check.error(guards->pos, gwhere + " lists no guard");
              for (std::size_t i = 0; i < guards->items.size(); ++i)
                if (auto g = delete_guard(check, guards->items[i],
                                          gwhere + "[" + std::to_string(i) + "]"))
                  mapping.delete_guards.push_back(std::move(*g));
            } else if (auto g = delete_guard(check, *guards, gwhere)) {
              mapping.delete_guards.push_back(std::move(*g));
            }
          }
          entity.mappings.push_back(std::move(mapping));
        }
        for (const SideConfig& side : cfg.sides)
          if (entity.mapping_for(side.name) == nullptr)
            check.error(maps->pos, where + " has no mapping for side '" + side.name + "'");
        // Keep mappings in side order so every loop over sides is deterministic.
        std::vector<SideMapping> ordered;
        for (const SideConfig& side : cfg.sides)
          if (const SideMapping* m = entity.mapping_for(side.name)) ordered.push_back(*m);
        entity.mappings = std::move(ordered);
      }
      if (const JsonNode* fields = e.value.find("fields");
          fields != nullptr && !entity.mappings.empty())
        for (const auto& [field, type] : entity.fields) {
          (void)type;
          if (std::none_of(entity.mappings.begin(), entity.mappings.end(),
                           [&](const SideMapping& m) { return m.column_of(field) != nullptr; }))
            check.error(fields->find(field) ? fields->find(field)->pos : fields->pos,
                        where + ".fields." + field +
                            " is mapped on no side (every side's column is null); map it on "
                            "the side that owns it, or remove the field");
        }
      if (const JsonNode* match = e.value.find("match")) {
        if (!match->is_object())
          check.error(match->pos, where +
                                      ".match must be an object such as {\"keys\": "
                                      "[{\"field\": \"website\", \"normalize\": [\"url_host\"]}]}");
        else
          match_spec(check, *match, entity, where + ".match");
      }
      // The field that names a record for people (conflicts list and show): `label`, else a
      // text field called `name`.
      if (auto label = check.string(e.value, "label", where, false)) {
        if (entity.type_of(*label))
          entity.label_field = *label;
        else
          check.error(e.value.find("label")->pos,
                      where + ".label: '" + *label + "' is not a field of the entity");
      } else if (entity.type_of("name") == core::FieldType::kText) {
        entity.label_field = "name";
      }
      cfg.entities.push_back(std::move(entity));
    }
    if (entities->members.empty()) check.error(entities->pos, "the config has no entities");
  }

  if (const JsonNode* service = check.object(root, "service", "the config", false)) {
    check.only_keys(
        *service, "service",
        {"poll_interval_ms", "batch_size", "writeback_backoff_initial_ms",
         "writeback_backoff_max_ms", "verify_interval_s", "verify_repair", "http_listen"});
    if (auto v = check.positive_int(*service, "poll_interval_ms", "service"))
      cfg.service.poll_interval_ms = *v;
    if (auto v = check.positive_int(*service, "batch_size", "service")) cfg.service.batch_size = *v;
    if (auto v = check.positive_int(*service, "writeback_backoff_initial_ms", "service"))
      cfg.service.writeback_backoff_initial_ms = *v;
    if (auto v = check.positive_int(*service, "writeback_backoff_max_ms", "service"))
      cfg.service.writeback_backoff_max_ms = *v;
    if (auto v = check.positive_int(*service, "verify_interval_s", "service"))
      cfg.service.verify_interval_s = *v;
    if (const JsonNode* n = service->find("verify_repair")) {
      if (!n->is_bool())
        check.error(n->pos, "service.verify_repair must be true or false");
      else
        cfg.service.verify_repair = n->text == "true";
    }
    if (auto v = check.string(*service, "http_listen", "service", false)) {
      // "PORT" (on loopback), "HOST:PORT" or "[IPv6]:PORT"; port 0 takes a free one (logged).
      static const std::regex kListen(R"((?:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):)?([0-9]{1,5}))");
      std::smatch m;
      if (!std::regex_match(*v, m, kListen) || std::stol(m[2].str()) > 65535) {
        check.error(service->find("http_listen")->pos,
                    "service.http_listen must be PORT, HOST:PORT or [IPv6]:PORT (such as "
                    "\"127.0.0.1:9187\"), not '" +
                        *v + "'");
      } else {
        std::string host = m[1].matched ? m[1].str() : "127.0.0.1";
        if (host.front() == '[') host = host.substr(1, host.size() - 2);
        cfg.service.http_host = host;
        cfg.service.http_port = std::stoi(m[2].str());
      }
    }
  }
  if (const JsonNode* initial = check.object(root, "initial_sync", "the config", false)) {
    check.only_keys(*initial, "initial_sync", {"max_overwrite_share"});
    if (const JsonNode* n = initial->find("max_overwrite_share")) {
      // A share, not an amount: a plain decimal from 0 to 1.
      static const std::regex kShare("0|1|0\\.[0-9]{1,6}|1\\.0{1,6}");
      if (!n->is_number() || !std::regex_match(n->text, kShare))
        check.error(n->pos,
                    "initial_sync.max_overwrite_share must be a number from 0 to 1 (0.1: "
                    "refuse when more than 10% of a side's values would be overwritten)");
      else
        cfg.initial_sync.max_overwrite_share = std::stod(n->text);
    }
  }
  if (const JsonNode* roles = check.object(root, "roles", "the config", false)) {
    check.only_keys(*roles, "roles", {"capture", "service", "steward", "viewer"});
    std::set<std::string> seen;
    for (auto [key, target] :
         {std::pair{"capture", &cfg.roles.capture}, std::pair{"service", &cfg.roles.service},
          std::pair{"steward", &cfg.roles.steward}, std::pair{"viewer", &cfg.roles.viewer}}) {
      auto name = check.string(*roles, key, "roles", false);
      if (!name) continue;
      const rules::SourcePos& pos = roles->find(key)->pos;
      if (!is_name(*name) || name->rfind("pg_", 0) == 0)
        check.error(pos, std::string("roles.") + key + ": '" + *name +
                             "' must be lower-case letters, digits and _ (at most 63, not "
                             "starting with pg_)");
      else
        *target = *name;
    }
    for (const std::string* r :
         {&cfg.roles.capture, &cfg.roles.service, &cfg.roles.steward, &cfg.roles.viewer})
      if (!seen.insert(*r).second)
        check.error(roles->pos, "roles: '" + *r + "' is named for two roles; each needs its own");
  }
  check.finish();
  return cfg;
}

Config load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw std::runtime_error("cannot read config file '" + path +
                             "' (give --config FILE or set MDSYNC_CONFIG)");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path);
}

namespace {

std::string percent_decode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> dsn_parameter(const std::string& dsn, const std::string& key) {
  static const std::regex kUri(R"(^postgres(ql)?://([^/?]*)(/([^?]*))?(\?(.*))?$)");
  std::smatch m;
  if (std::regex_match(dsn, m, kUri)) {
    // postgresql://[user[:password]@][host][:port][/dbname][?key=value&...]
    const std::string query = m[6].str();
    for (std::size_t at = 0; at <= query.size();) {
      const std::size_t end = std::min(query.find('&', at), query.size());
      const std::string item = query.substr(at, end - at);
      const std::size_t eq = item.find('=');
      if (eq != std::string::npos && percent_decode(item.substr(0, eq)) == key)
        return percent_decode(item.substr(eq + 1));
      at = end + 1;
    }
    const std::string authority = m[2].str();
    const std::size_t at_sign = authority.rfind('@');
    const std::string userinfo = at_sign == std::string::npos ? "" : authority.substr(0, at_sign);
    std::string hostport = at_sign == std::string::npos ? authority : authority.substr(at_sign + 1);
    if (key == "user" && !userinfo.empty())
      return percent_decode(userinfo.substr(0, userinfo.find(':')));
    if (key == "dbname" && m[3].matched && !m[4].str().empty()) return percent_decode(m[4].str());
    const std::size_t bracket = hostport.rfind(']');
    const std::size_t colon = hostport.rfind(':');
    const bool has_port =
        colon != std::string::npos && (bracket == std::string::npos || colon > bracket);
    if (key == "host" && !hostport.empty() && (!has_port || colon > 0)) {
      std::string host = percent_decode(has_port ? hostport.substr(0, colon) : hostport);
      if (host.size() > 2 && host.front() == '[' && host.back() == ']')  // an IPv6 literal
        host = host.substr(1, host.size() - 2);
      return host;
    }
    if (key == "port" && has_port) return hostport.substr(colon + 1);
    return std::nullopt;
  }
  // key = value pairs; a value is a run of non-space characters or single-quoted with \' and
  // \\ escapes. The last mention of a key wins, as in libpq.
  std::optional<std::string> found;
  std::size_t i = 0;
  auto skip_space = [&] {
    while (i < dsn.size() && std::isspace(static_cast<unsigned char>(dsn[i]))) ++i;
  };
  while (true) {
    skip_space();
    if (i >= dsn.size()) break;
    std::string k;
    while (i < dsn.size() && dsn[i] != '=' && !std::isspace(static_cast<unsigned char>(dsn[i])))
      k += dsn[i++];
    skip_space();
    if (i >= dsn.size() || dsn[i] != '=') break;  // malformed: libpq reports it when connecting
    ++i;
    skip_space();
    std::string v;
    if (i < dsn.size() && dsn[i] == '\'') {
      for (++i; i < dsn.size() && dsn[i] != '\''; ++i) {
        if (dsn[i] == '\\' && i + 1 < dsn.size()) ++i;
        v += dsn[i];
      }
      ++i;
    } else {
      while (i < dsn.size() && !std::isspace(static_cast<unsigned char>(dsn[i]))) {
        if (dsn[i] == '\\' && i + 1 < dsn.size()) ++i;
        v += dsn[i++];
      }
    }
    if (k == key) found = v;
  }
  return found;
}

std::string redact_dsn(const std::string& dsn) {
  // URI form: scheme://user:password@host...
  static const std::regex kUriPassword(R"(^([a-z]+://[^:/@]*):[^@]*@)");
  static const std::regex kQueryPassword(R"(([?&]password=)[^&]*)");
  // key=value form: password=secret or password='se cret'
  static const std::regex kKvPassword(R"((password\s*=\s*)('([^'\\]|\\.)*'|\S+))");
  std::string out = std::regex_replace(dsn, kUriPassword, "$1:****@");
  out = std::regex_replace(out, kQueryPassword, "$1****");
  out = std::regex_replace(out, kKvPassword, "$1****");
  return out;
}

}  // namespace mdsync::config
