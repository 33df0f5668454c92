#include "mdsync/config/config.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

#include "mdsync/core/value.hpp"
#include "mdsync/rules/located_json.hpp"

namespace mdsync::config {

using rules::Diagnostic;
using rules::JsonNode;

const std::string* SideMapping::column_of(const std::string& field) const {
  for (const auto& [f, c] : columns)
    if (f == field) return &c;
  return nullptr;
}

const SideMapping* EntityConfig::mapping_for(const std::string& side) const {
  for (const SideMapping& m : mappings)
    if (m.side == side) return &m;
  return nullptr;
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
  for (const EntityConfig& e : entities) ctx.entities[e.name] = e.fields;
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
          error(pos, "environment variable " + var + " is not set");
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
  check.only_keys(root, "the config", {"control", "rules", "sides", "entities", "service"});

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
      check.only_keys(m.value, where, {"dsn", "capture", "notify"});
      SideConfig side;
      side.name = m.key;
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
      check.only_keys(e.value, where, {"fields", "sides"});
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
          check.only_keys(s.value, mwhere, {"schema", "table", "key", "columns"});
          SideMapping mapping;
          mapping.side = s.key;
          if (auto v = check.string(s.value, "schema", mwhere, false)) mapping.schema = *v;
          if (auto v = check.string(s.value, "table", mwhere, true)) mapping.table = *v;
          if (auto v = check.string(s.value, "key", mwhere, true)) mapping.key_column = *v;
          if (const JsonNode* cols = check.object(s.value, "columns", mwhere, true)) {
            std::set<std::string> seen;
            for (const auto& c : cols->members) {
              if (!field_names.count(c.key)) {
                check.error(c.key_pos, "entity " + entity.name + " has no field '" + c.key + "'");
                continue;
              }
              if (!c.value.is_string() || c.value.text.empty()) {
                check.error(c.value.pos, mwhere + ".columns." + c.key + " must name a column");
                continue;
              }
              if (!seen.insert(c.value.text).second)
                check.error(c.value.pos, "column '" + c.value.text + "' is mapped twice");
              if (c.value.text == mapping.key_column)
                check.error(c.value.pos,
                            "column '" + c.value.text + "' is the row key; the key is not a field");
            }
            for (const auto& [field, type] : entity.fields) {
              (void)type;
              const JsonNode* col = cols->find(field);
              if (col == nullptr) {
                check.error(cols->pos, mwhere + ".columns has no column for field '" + field + "'");
              } else if (col->is_string()) {
                mapping.columns.emplace_back(field, col->text);
              }
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
      cfg.entities.push_back(std::move(entity));
    }
    if (entities->members.empty()) check.error(entities->pos, "the config has no entities");
  }

  if (const JsonNode* service = check.object(root, "service", "the config", false)) {
    check.only_keys(*service, "service",
                    {"poll_interval_ms", "batch_size", "writeback_backoff_initial_ms",
                     "writeback_backoff_max_ms"});
    if (auto v = check.positive_int(*service, "poll_interval_ms", "service"))
      cfg.service.poll_interval_ms = *v;
    if (auto v = check.positive_int(*service, "batch_size", "service")) cfg.service.batch_size = *v;
    if (auto v = check.positive_int(*service, "writeback_backoff_initial_ms", "service"))
      cfg.service.writeback_backoff_initial_ms = *v;
    if (auto v = check.positive_int(*service, "writeback_backoff_max_ms", "service"))
      cfg.service.writeback_backoff_max_ms = *v;
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
