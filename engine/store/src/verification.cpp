#include "mdsync/store/verification.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <pqxx/pqxx>
#include <set>
#include <vector>

#include "captured_change.hpp"
#include "field_transforms.hpp"
#include "mdsync/core/reconciler.hpp"
#include "mdsync/store/pg_arrays.hpp"
#include "mdsync/store/record_repository.hpp"
#include "mdsync/store/side.hpp"
#include "mdsync/store/steward_actions.hpp"

namespace mdsync::store {

const char* to_string(Difference::Kind kind) {
  switch (kind) {
    case Difference::Kind::kValue:
      return "value";
    case Difference::Kind::kUnlinked:
      return "unlinked";
    case Difference::Kind::kMissing:
      return "missing";
  }
  return "?";
}

namespace {

// A field whose side value differs from golden under its unit's compare (or cannot be read).
struct FieldDifference {
  std::string field;
  core::Value side_value;
  core::Value golden_value;
  std::string unreadable;
};

std::vector<FieldDifference> differing_fields(const core::EntityRules& rules,
                                              const std::string& side, const core::Change& change,
                                              const core::FieldValues& golden,
                                              const core::RecordState* state) {
  std::vector<FieldDifference> out;
  for (const auto& [field, value] : change.values) {
    if (!rules.holds(side, field)) continue;
    const core::Unit* unit = rules.unit_of_field(field);
    if (unit == nullptr) continue;
    // A unit a conflict holds is meant to differ until the steward decides (guarantee 1).
    if (state != nullptr && state->conflict_on(unit->name) != nullptr) continue;
    auto g = golden.find(field);
    const core::Value golden_value = g == golden.end() ? core::Value{} : g->second;
    if (auto bad = change.unconvertible.find(field); bad != change.unconvertible.end()) {
      out.push_back({field, value, golden_value, bad->second});
      continue;
    }
    if (!core::values_equal(rules.type_of(field), unit->policy.compare, value, golden_value))
      out.push_back({field, value, golden_value, ""});
  }
  return out;
}

// A row (or link) that seemed to differ on the first, unlocked read.
struct Candidate {
  Difference::Kind kind = Difference::Kind::kValue;
  std::string row_key;
  std::int64_t golden_id = 0;
};

class Verifier {
 public:
  Verifier(pqxx::connection_base& control, const config::Config& config, const core::Ruleset& rs,
           const VerifyOptions& options, const std::function<void(const Difference&)>& report)
      : control_(control),
        config_(config),
        rs_(rs),
        options_(options),
        report_(report),
        transforms_(config) {}

  void entity(const config::EntityConfig& entity, const core::EntityRules& rules) {
    for (const config::SideMapping& m : entity.mappings) side(entity, rules, m.side);
  }

  VerifySummary summary;

 private:
  // One side of one entity: its rows in key order through a snapshot, then its links.
  void side(const config::EntityConfig& entity, const core::EntityRules& rules,
            const std::string& side_name) {
    const config::SideConfig* side_config = config_.side(side_name);
    if (side_config == nullptr) return;
    // Two connections: the snapshot holds one open while the second looks at rows again.
    std::unique_ptr<Side> scan = make_side(config_, *side_config);
    std::unique_ptr<Side> probe = make_side(config_, *side_config);
    // Rows only: a row whose change is captured and not reconciled yet is confirmed (and found
    // in flight) like any other, so the capture table is never held in memory.
    std::unique_ptr<SideSnapshot> snapshot = scan->open_snapshot(Side::SnapshotReads::kRowsOnly);

    for (;;) {
      if (stopping()) return;
      const std::vector<CapturedRow> rows = snapshot->next(entity, options_.chunk_rows);
      if (rows.empty()) break;
      summary.rows_checked += static_cast<std::int64_t>(rows.size());
      std::vector<Candidate> candidates = row_candidates(entity, rules, side_name, rows);
      confirm(entity, rules, side_name, *probe, candidates);
    }

    std::string after;
    for (;;) {
      if (stopping()) return;
      std::vector<std::string> keys;
      std::map<std::string, std::int64_t> golden_of;
      {
        pqxx::read_transaction tx(control_);
        for (const auto& r : tx.exec_params(
                 "SELECT c.row_key, c.golden_id FROM mdsync.crosswalk c"
                 " JOIN mdsync.golden g ON g.id = c.golden_id"
                 " WHERE c.entity = $1 AND c.side = $2 AND c.state = 'linked' AND c.row_key > $3"
                 " AND NOT g.deleted AND NOT ($2 = ANY (g.detached))"
                 " ORDER BY c.row_key LIMIT $4",
                 entity.name, side_name, after, static_cast<std::int64_t>(options_.chunk_rows))) {
          keys.push_back(r[0].as<std::string>());
          golden_of[keys.back()] = r[1].as<std::int64_t>();
        }
      }
      if (keys.empty()) break;
      after = keys.back();
      summary.links_checked += static_cast<std::int64_t>(keys.size());
      const std::set<std::string> present = snapshot->present(entity, keys);
      std::vector<Candidate> candidates;
      for (const std::string& key : keys)
        if (!present.count(key))
          candidates.push_back({Difference::Kind::kMissing, key, golden_of[key]});
      confirm(entity, rules, side_name, *probe, candidates);
    }
  }

  // The rows of a chunk that seem to differ, from one unlocked read of their links and records.
  std::vector<Candidate> row_candidates(const config::EntityConfig& entity,
                                        const core::EntityRules& rules, const std::string& side,
                                        const std::vector<CapturedRow>& rows) {
    std::vector<std::string> keys;
    for (const CapturedRow& row : rows) keys.push_back(row.row_key);
    struct Linked {
      std::int64_t golden_id;
      std::string state;
      core::FieldValues base, golden;
      bool deleted, detached;
    };
    std::map<std::string, Linked> linked;
    {
      pqxx::read_transaction tx(control_);
      for (const auto& r : tx.exec_params(
               "SELECT c.row_key, c.golden_id, c.state, c.base::text, g.\"values\"::text,"
               " g.deleted, $2 = ANY (g.detached)"
               " FROM mdsync.crosswalk c JOIN mdsync.golden g ON g.id = c.golden_id"
               " WHERE c.entity = $1 AND c.side = $2 AND c.row_key = ANY ($3::text[])",
               entity.name, side, pg_text_array(keys)))
        linked[r[0].as<std::string>()] = Linked{r[1].as<std::int64_t>(),
                                                r[2].as<std::string>(),
                                                values_from_json(r[3].as<std::string>()),
                                                values_from_json(r[4].as<std::string>()),
                                                r[5].as<bool>(),
                                                r[6].as<bool>()};
    }
    std::vector<Candidate> out;
    for (const CapturedRow& row : rows) {
      auto it = linked.find(row.row_key);
      if (it == linked.end() || it->second.state != "linked") {
        out.push_back({Difference::Kind::kUnlinked, row.row_key, 0});
        continue;
      }
      const Linked& l = it->second;
      if (l.detached) continue;
      if (l.deleted ||
          !differing_fields(rules, side, captured_change(row, side, entity, transforms_, l.base),
                            l.golden, nullptr)
               .empty())
        out.push_back({Difference::Kind::kValue, row.row_key, l.golden_id});
    }
    return out;
  }

  // The second look: the candidates' records locked (a batch of the engine waits for them, so
  // it cannot decide on their rows meanwhile), their queued writes and the rows read again,
  // then their links (after the rows: the engine links a row before it acknowledges the row's
  // capture). What still differs is reported once the transaction is over; with repair, it is
  // repaired in the same transaction.
  void confirm(const config::EntityConfig& entity, const core::EntityRules& rules,
               const std::string& side, Side& probe, const std::vector<Candidate>& candidates) {
    if (candidates.empty()) return;
    pqxx::work tx(control_);
    RecordRepository repo(tx);
    std::vector<std::int64_t> ids;
    std::vector<std::string> keys;
    std::set<RecordRepository::RowRef> unlinked;
    for (const Candidate& c : candidates) {
      if (c.golden_id != 0) ids.push_back(c.golden_id);
      keys.push_back(c.row_key);
      if (c.kind == Difference::Kind::kUnlinked) unlinked.insert({entity.name, side, c.row_key});
    }
    std::map<std::int64_t, core::RecordState> states = repo.load_many(ids);
    std::set<std::int64_t> writing;
    for (const auto& r : tx.exec_params(
             "SELECT DISTINCT golden_id FROM mdsync.outbox WHERE side = $1"
             " AND golden_id = ANY ($2::bigint[]) AND status IN ('pending', 'cancelling')",
             side, pg_bigint_array(ids)))
      writing.insert(r[0].as<std::int64_t>());
    const std::map<std::string, RowNow> now = probe.read_rows(entity, keys);
    // Each key's link as it is now: a linked candidate's record is locked, so its link holds.
    std::map<std::string, std::pair<std::int64_t, std::string>> link_of;
    for (const auto& r :
         tx.exec_params("SELECT row_key, golden_id, state FROM mdsync.crosswalk WHERE entity = $1"
                        " AND side = $2 AND row_key = ANY ($3::text[])",
                        entity.name, side, pg_text_array(keys)))
      link_of[r[0].as<std::string>()] = {r[1].as<std::int64_t>(), r[2].as<std::string>()};
    const auto held = repo.open_create_conflicts(unlinked);
    // An insert into this side whose result is not taken in yet: the row it made is on the side
    // but not linked. Until it is, an unlinked row may be that one.
    const bool inserting =
        !unlinked.empty() &&
        tx.exec_params1(
              "SELECT EXISTS (SELECT 1 FROM mdsync.outbox WHERE side = $1 AND entity = $2"
              " AND kind = 'insert' AND status IN ('pending', 'cancelling'))",
              side, entity.name)[0]
            .as<bool>();

    std::vector<Difference> found;
    bool acted = false;
    for (const Candidate& c : candidates) {
      const RowNow& row = now.at(c.row_key);
      if (row.capture_waiting) {
        ++summary.in_flight;
        continue;
      }
      Difference d;
      d.kind = c.kind;
      d.entity = entity.name;
      d.side = side;
      d.row_key = c.row_key;
      d.golden_id = c.golden_id;
      const auto link = link_of.find(c.row_key);
      if (c.kind == Difference::Kind::kUnlinked) {
        const RecordRepository::RowRef ref{entity.name, side, c.row_key};
        if (row.state != RowNow::State::kTakesPart || held.count(ref)) continue;
        if (link != link_of.end() && link->second.second == "linked") continue;
        if (inserting) {
          ++summary.in_flight;
          continue;
        }
        if (link != link_of.end()) d.golden_id = link->second.first;
        if (options_.repair) {
          // Captured as it is now: the engine links it by its match keys, creates a record or
          // asks a steward, as for any new row (and revives a retired link).
          probe.recapture_row(entity, c.row_key);
          repo.audit_event(
              entity.name, d.golden_id == 0 ? std::nullopt : std::optional(d.golden_id), "repair",
              "verify:" + side, rs_.version,
              side + " row " + c.row_key + " takes part but no record links it; captured again");
          d.repair = "captured again: the engine links it, creates a record or asks a steward";
          d.repaired = acted = true;
        }
        found.push_back(std::move(d));
        continue;
      }
      auto st = states.find(c.golden_id);
      // The record is gone, a write-back to this side is queued (it explains the row), or the
      // record was linked to another row since the first read.
      if (st == states.end() || writing.count(c.golden_id)) {
        ++summary.in_flight;
        continue;
      }
      if (link == link_of.end() || link->second != std::pair(c.golden_id, std::string("linked")))
        continue;
      core::RecordState& state = st->second;
      if (!state.bases.count(side)) continue;
      if (c.kind == Difference::Kind::kMissing || row.state != RowNow::State::kTakesPart) {
        if (row.state == RowNow::State::kTakesPart || state.deleted) continue;
        d.kind = Difference::Kind::kMissing;
        if (options_.repair)
          acted |= repair_missing(entity, rules, side, probe, repo, state, row, d);
        found.push_back(std::move(d));
        continue;
      }
      if (state.deleted) {
        d.field = core::kRecordUnit;
        d.side_value = "present";
        d.golden_value = "deleted";
        if (options_.repair) {
          repo.plan_and_enqueue(rules, config_.side_names(), c.golden_id, state);
          d.repair = "the delete is queued again";
          d.repaired = acted = true;
        }
        found.push_back(std::move(d));
        continue;
      }
      const core::Change change =
          captured_change(row.row, side, entity, transforms_, state.bases.at(side));
      const std::vector<FieldDifference> fields =
          differing_fields(rules, side, change, state.golden, &state);
      if (fields.empty()) continue;
      core::Reconciliation r;
      if (options_.repair) {
        r = core::repair_drift(rules, rs_.version, state, side, change.values,
                               change.unconvertible);
        repo.save_base(c.golden_id, side, r.after.bases.at(side));
        repo.persist_plan(entity.name, c.golden_id, side, c.row_key, r.plan, r.after);
        repo.plan_and_enqueue(rules, config_.side_names(), c.golden_id, r.after);
        summary.conflicts_opened += static_cast<std::int64_t>(r.plan.opened.size());
        acted = true;
      }
      for (const FieldDifference& f : fields) {
        Difference fd = d;
        fd.field = f.field;
        fd.side_value = f.side_value;
        fd.golden_value = f.golden_value;
        fd.unreadable = f.unreadable;
        if (options_.repair) describe_repair(rules, r, fd);
        found.push_back(std::move(fd));
      }
    }
    // Reported once committed: a repair the store refused is not announced as done.
    if (acted) {
      notify_engine(tx, "verify");
      tx.commit();
    }
    for (const Difference& d : found) emit(d);
  }

  // A linked row the side no longer holds: a live row outside the scope is captured again (the
  // engine stops syncing it); a gone one goes to the core's repair (re-created, or a steward's
  // foreign_delete conflict).
  bool repair_missing(const config::EntityConfig& entity, const core::EntityRules& rules,
                      const std::string& side, Side& probe, RecordRepository& repo,
                      const core::RecordState& state, const RowNow& row, Difference& d) {
    if (row.state == RowNow::State::kOutOfScope) {
      probe.recapture_row(entity, d.row_key);
      repo.audit_event(
          entity.name, d.golden_id, "repair", "verify:" + side, rs_.version,
          side + " row " + d.row_key + " left the scope without a captured change; captured again");
      d.repair = "outside the scope: captured again, the engine stops syncing it";
      d.repaired = true;
      return true;
    }
    core::Reconciliation r = core::repair_missing_row(rules, rs_.version, state, side);
    if (r.plan.decisions.empty()) {
      d.repair = "not repaired: an open conflict holds the record";
      return false;
    }
    // A soft-deleted row keeps its link, retired: the insert that re-creates the record there
    // restores that row rather than adding a second one.
    if (r.plan.unlink_source) {
      if (row.state == RowNow::State::kSoftDeleted)
        repo.retire(d.golden_id, side, "deleted");
      else
        repo.unlink(d.golden_id, side);
    }
    repo.save_golden(d.golden_id, r.after);
    repo.persist_plan(entity.name, d.golden_id, side, d.row_key, r.plan, r.after);
    repo.plan_and_enqueue(rules, config_.side_names(), d.golden_id, r.after);
    d.repaired = true;
    if (!r.plan.opened.empty()) {
      ++summary.conflicts_opened;
      d.repair = "foreign_delete conflict " + std::to_string(r.after.open_conflicts.back().id) +
                 " opened: a steward accepts the delete or re-creates the row";
    } else {
      d.repair = "re-created from golden (insert queued)";
    }
    return true;
  }

  // What the repair decided for the unit of `d.field`.
  void describe_repair(const core::EntityRules& rules, const core::Reconciliation& r,
                       Difference& d) {
    if (!d.unreadable.empty()) {
      d.repair = "not repaired: the side's value cannot be read (" + d.unreadable + ")";
      return;
    }
    const core::Unit* unit = rules.unit_of_field(d.field);
    const std::string name = unit == nullptr ? d.field : unit->name;
    for (const core::UnitDecision& decision : r.plan.decisions) {
      if (decision.unit != name) continue;
      if (decision.outcome == core::Outcome::kRepair) {
        d.repair = "golden goes back (write-back queued)";
        d.repaired = true;
        return;
      }
      if (decision.outcome == core::Outcome::kQuarantine) {
        const core::OpenConflict* c = r.after.conflict_on(name);
        d.repair = "uncaptured_value conflict " + std::to_string(c == nullptr ? 0 : c->id) +
                   " opened: a steward takes the side's value or keeps golden";
        d.repaired = true;
        return;
      }
    }
    d.repair = "not repaired";
  }

  bool stopping() const { return options_.stop_requested && options_.stop_requested(); }

  void emit(const Difference& d) {
    ++summary.differences;
    if (d.repaired) ++summary.repaired;
    report_(d);
  }

  pqxx::connection_base& control_;
  const config::Config& config_;
  const core::Ruleset& rs_;
  const VerifyOptions& options_;
  const std::function<void(const Difference&)>& report_;
  FieldTransforms transforms_;
};

}  // namespace

VerifySummary verify_sides(pqxx::connection_base& control, const config::Config& config,
                           const core::Ruleset& rs, const VerifyOptions& options,
                           const std::function<void(const Difference&)>& report) {
  Verifier verifier(control, config, rs, options, report);
  // Every entity asked for needs rules in force, checked before any is verified.
  std::vector<std::pair<const config::EntityConfig*, const core::EntityRules*>> asked;
  for (const config::EntityConfig& entity : config.entities) {
    if (options.entity && *options.entity != entity.name) continue;
    const core::EntityRules* rules = rs.find(entity.name);
    if (rules == nullptr)
      throw VerifyError("entity " + entity.name +
                        " has no rules in the ruleset in force: run `mdsync rules apply` first");
    asked.emplace_back(&entity, rules);
  }
  for (const auto& [entity, rules] : asked) verifier.entity(*entity, *rules);
  return verifier.summary;
}

}  // namespace mdsync::store
