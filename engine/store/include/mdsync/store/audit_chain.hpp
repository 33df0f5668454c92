// Verifying the audit trail's hash chain (schema/control/0006_audit_chain.sql): that no audit
// row was changed, removed from the middle or the end, or slipped in past the chain. The
// chain is recomputed from the rows alone, never with a function the store holds, so a
// function rewritten in the database cannot vouch for a rewritten row.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace pqxx {
class connection_base;
}

namespace mdsync::store {

struct AuditChainBreak {
  std::optional<std::int64_t> id;         // the audit row; none when no row can be named
  std::optional<std::int64_t> chain_seq;  // its place in the chain (or the first missing one)
  std::string problem;                    // what is wrong, for a steward or an auditor
};

struct AuditChainReport {
  std::int64_t rows = 0;                 // rows in mdsync.audit
  std::optional<std::int64_t> head_seq;  // audit_head; none if its row is gone
  std::string head_hash;                 // hex
  std::optional<AuditChainBreak> first_broken;

  bool intact() const { return !first_broken.has_value(); }
  // {"intact", "rows", "head": {"seq", "hash"} | null, "first_broken": null | {"id",
  // "chain_seq", "problem"}} (README, "JSON output").
  nlohmann::json to_json() const;
};

// One read-only statement over the whole chain. Throws std::runtime_error if the store has
// no chain yet (a store older than migration 0006: `mdsync init` upgrades it).
AuditChainReport verify_audit_chain(pqxx::connection_base& conn);

}  // namespace mdsync::store
