#include "mdsync/store/audit_chain.hpp"

#include <pqxx/pqxx>
#include <stdexcept>

namespace mdsync::store {

using nlohmann::json;

namespace {

// The content of a link must be byte for byte what the control store hashes when it links a
// row (schema/control/0012_audit_chain_per_transaction.sql: mdsync.audit_chain_tail and the
// leader's trigger; 0006_audit_chain.sql for links made before it). Each link is checked
// against its audit row (still there, content unchanged), the link before it (chain_seq one
// more, prev_hash its hash) and, for the last, audit_head; audit rows no link names were
// inserted past the trigger. In one statement, so all of it is read in one snapshot.
constexpr const char* kVerifySql = R"sql(
WITH links AS (
  SELECT c.chain_seq, c.audit_id, c.prev_hash, c.hash, a.id IS NOT NULL AS present,
         lag(c.chain_seq, 1, 0::bigint) OVER w AS prev_seq,
         lag(c.hash, 1, decode(repeat('00', 32), 'hex')) OVER w AS prev_link_hash,
         sha256(c.prev_hash || convert_to(jsonb_build_array(
           c.chain_seq, a.id, (extract(epoch FROM a.at) * 1000000)::bigint, a.entity,
           a.golden_id, a.unit, a.decision, a.old_value::text, a.new_value::text,
           a.proposed::text, a.source, a.rule, a.ruleset_version, a.reason)::text, 'UTF8'))
           AS recomputed
  FROM mdsync.audit_chain c LEFT JOIN mdsync.audit a ON a.id = c.audit_id
  WINDOW w AS (ORDER BY c.chain_seq)),
first_break AS (
  SELECT chain_seq, audit_id, prev_seq,
         CASE WHEN NOT present THEN 'missing'
              WHEN chain_seq <> prev_seq + 1 THEN 'gap'
              WHEN prev_hash <> prev_link_hash THEN 'link'
              ELSE 'content' END AS problem
  FROM links
  WHERE NOT present OR chain_seq <> prev_seq + 1 OR prev_hash <> prev_link_hash
     OR recomputed <> hash
  ORDER BY chain_seq LIMIT 1),
last_link AS (
  SELECT chain_seq, audit_id, hash FROM mdsync.audit_chain ORDER BY chain_seq DESC LIMIT 1),
unchained AS (
  SELECT min(a.id) AS first_id, count(*) AS n FROM mdsync.audit a
  WHERE NOT EXISTS (SELECT FROM mdsync.audit_chain c WHERE c.audit_id = a.id))
SELECT (SELECT count(*) FROM mdsync.audit), h.seq, encode(h.hash, 'hex'),
       b.chain_seq, b.audit_id, b.problem, b.prev_seq,
       l.chain_seq, l.audit_id, l.hash = h.hash, u.first_id, u.n
FROM unchained u
  LEFT JOIN mdsync.audit_head h ON true
  LEFT JOIN first_break b ON true
  LEFT JOIN last_link l ON true
)sql";

std::optional<std::int64_t> opt(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<std::int64_t>();
}

std::string seq_range(std::int64_t from, std::int64_t to) {
  return from == to ? "chain_seq " + std::to_string(from)
                    : "chain_seq " + std::to_string(from) + ".." + std::to_string(to);
}

}  // namespace

json AuditChainReport::to_json() const {
  json j = {{"intact", intact()}, {"rows", rows}, {"head", nullptr}, {"first_broken", nullptr}};
  if (head_seq) j["head"] = {{"seq", *head_seq}, {"hash", head_hash}};
  if (first_broken) {
    const AuditChainBreak& b = *first_broken;
    j["first_broken"] = {{"id", b.id ? json(*b.id) : json(nullptr)},
                         {"chain_seq", b.chain_seq ? json(*b.chain_seq) : json(nullptr)},
                         {"problem", b.problem}};
  }
  return j;
}

AuditChainReport verify_audit_chain(pqxx::connection_base& conn) {
  pqxx::read_transaction tx(conn);
  if (!tx.exec1("SELECT to_regclass('mdsync.audit_chain') IS NOT NULL")[0].as<bool>())
    throw std::runtime_error(
        "the control store has no audit chain (its schema is older than mdsync's): run "
        "`mdsync init` to upgrade it, which links the existing audit rows into the chain");
  const pqxx::row r = tx.exec1(kVerifySql);
  AuditChainReport report;
  report.rows = r[0].as<std::int64_t>();
  report.head_seq = opt(r[1]);
  if (!r[2].is_null()) report.head_hash = r[2].as<std::string>();
  const auto break_seq = opt(r[3]);
  const auto last_seq = opt(r[7]);
  const auto last_id = opt(r[8]);
  const std::int64_t chain_end = last_seq.value_or(0);

  if (break_seq) {
    const std::int64_t seq = *break_seq;
    const std::int64_t id = r[4].as<std::int64_t>();
    const std::string problem = r[5].as<std::string>();
    const std::int64_t prev = r[6].as<std::int64_t>();
    AuditChainBreak b{id, seq, ""};
    if (problem == "missing")
      b.problem = "the row is missing: link " + std::to_string(seq) +
                  " of the chain names audit id " + std::to_string(id) +
                  ", which is no longer in mdsync.audit (deleted)";
    else if (problem == "gap")
      b.problem = "rows are missing before it: " + seq_range(prev + 1, seq - 1) +
                  " of the chain are gone (deleted)";
    else if (problem == "link")
      b.problem = "its prev_hash does not match the hash of the row before it (chain_seq " +
                  std::to_string(prev) + "): one of the two links was rewritten";
    else
      b.problem =
          "its content no longer matches its hash: the row was changed after it was written";
    report.first_broken = b;
  } else if (!report.head_seq) {
    report.first_broken = AuditChainBreak{std::nullopt, std::nullopt,
                                          "mdsync.audit_head is missing (its row was deleted)"};
  } else if (*report.head_seq > chain_end) {
    report.first_broken = AuditChainBreak{
        std::nullopt, chain_end + 1,
        "rows were removed from the end: audit_head is at chain_seq " +
            std::to_string(*report.head_seq) + ", the chain ends at " + std::to_string(chain_end) +
            (last_id ? " (audit id " + std::to_string(*last_id) + ")" : std::string())};
  } else if (*report.head_seq < chain_end || (last_seq && !r[9].as<bool>())) {
    report.first_broken = AuditChainBreak{
        last_id, last_seq,
        "the last row does not match audit_head (chain_seq " + std::to_string(*report.head_seq) +
            ", hash " + report.head_hash + "): the end of the chain or the head was rewritten"};
  } else if (const auto unchained = opt(r[10])) {
    report.first_broken = AuditChainBreak{
        unchained, std::nullopt,
        "the row is not in the chain: it was inserted with the chain's trigger bypassed (" +
            r[11].as<std::string>() + " such row(s))"};
  }
  return report;
}

}  // namespace mdsync::store
