// Reads and checks stewards' ownership rule files (one `<entity>.json` per entity) into the
// core's Ruleset. Every problem is reported with file, line and column, and all problems of
// a folder are reported together, so one `mdsync rules check` run shows everything to fix.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "mdsync/core/ruleset.hpp"
#include "mdsync/core/value.hpp"
#include "mdsync/rules/located_json.hpp"

namespace mdsync::rules {

// What the rules are checked against: the config's sides, each entity's canonical fields, in
// config order, and the fields a side has no column for.
struct RulesContext {
  std::vector<std::string> sides;
  std::map<std::string, std::vector<std::pair<std::string, core::FieldType>>> entities;
  // entity -> side -> fields the side's mapping leaves unmapped; absent: it maps every field.
  std::map<std::string, std::map<std::string, std::vector<std::string>>> unmapped = {};
};

// Rule file texts by file name ("customer.json"), as read from a folder or stored as a
// ruleset version in the control store.
using RuleTexts = std::map<std::string, std::string>;

// Reads every `*.json` file of `dir` (not recursive). Throws std::runtime_error if the
// folder cannot be read.
RuleTexts read_rules_dir(const std::string& dir);

// Parses and checks all rule texts against the context. Every entity of the context needs
// exactly one file named after it; every file must name an entity of the context.
// Throws CheckError listing every problem found. `dir` prefixes file names in diagnostics.
core::Ruleset check_rules(const RuleTexts& texts, const RulesContext& ctx,
                          const std::string& dir = "");

// A steward-readable, line-per-change description of what changes between two checked
// rulesets ("customer.email: owner crm -> erp"); empty when they decide alike.
std::vector<std::string> diff_rules(const core::Ruleset& from, const core::Ruleset& to);

// A canonical, human-readable rendering of one entity's rules (used by `rules show`).
std::string describe(const core::EntityRules& rules);

}  // namespace mdsync::rules
