#include "mdsync/store/ruleset_store.hpp"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

namespace mdsync::store {

std::optional<std::int64_t> latest_ruleset_version(pqxx::connection_base& conn) {
  // Asked before every batch: one statement, one round trip (a read_transaction added BEGIN,
  // SET TRANSACTION and ROLLBACK).
  pqxx::nontransaction tx(conn);
  const auto r = tx.exec("SELECT max(version) FROM mdsync.ruleset");
  if (r[0][0].is_null()) return std::nullopt;
  return r[0][0].as<std::int64_t>();
}

std::optional<StoredRuleset> latest_ruleset(pqxx::connection_base& conn) {
  pqxx::read_transaction tx(conn);
  const auto r =
      tx.exec("SELECT version, texts::text FROM mdsync.ruleset ORDER BY version DESC LIMIT 1");
  if (r.empty()) return std::nullopt;
  StoredRuleset s;
  s.version = r[0][0].as<std::int64_t>();
  const auto j = nlohmann::json::parse(r[0][1].as<std::string>());
  for (auto it = j.begin(); it != j.end(); ++it) s.texts[it.key()] = it.value().get<std::string>();
  return s;
}

std::int64_t apply_ruleset(pqxx::connection_base& conn, const rules::RuleTexts& texts,
                           bool* created) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, text] : texts) j[name] = text;
  // Through mdsync.apply_ruleset (migration 0008): a steward's role may execute it without any
  // privilege on the table, and it records the session user as the one who applied.
  pqxx::work tx(conn);
  const pqxx::row r = tx.exec_params1(
      "SELECT applied_version, created FROM mdsync.apply_ruleset($1::jsonb)", j.dump());
  tx.commit();
  if (created) *created = r[1].as<bool>();
  return r[0].as<std::int64_t>();
}

core::Ruleset load_ruleset(pqxx::connection_base& conn, const config::Config& config) {
  auto stored = latest_ruleset(conn);
  if (!stored)
    throw std::runtime_error(
        "no ruleset has been applied to the control store; run `mdsync rules apply`");
  core::Ruleset rs = rules::check_rules(stored->texts, config.rules_context(),
                                        "ruleset v" + std::to_string(stored->version));
  rs.version = stored->version;
  return rs;
}

}  // namespace mdsync::store
