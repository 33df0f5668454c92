#include "mdsync/store/initial_sync.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <set>

#include "batch_reconciler.hpp"
#include "capture_intake.hpp"
#include "mdsync/log/event_log.hpp"
#include "mdsync/store/engine_lease.hpp"
#include "mdsync/store/side.hpp"

namespace mdsync::store {

namespace {

// The capture table of initial sync rows kept as errors: they were read from the table, not
// captured (`errors retry` reads the row again by its key).
constexpr const char* kSnapshotEpoch = "initial sync";

// Rows of a side decided together: read, linked, decided and sent as one chunk.
constexpr std::size_t kChunkRows = 1000;

// The sides holding an entity, in the order their rows are taken in: the rules' `priority`
// first, then the other sides in config order. Links do not depend on it (every side's key
// values are looked up); it decides which side's row creates a record another side also holds.
std::vector<const config::SideConfig*> side_order(const config::Config& config,
                                                  const config::EntityConfig& entity,
                                                  const core::Ruleset& rs) {
  std::vector<const config::SideConfig*> out;
  const core::EntityRules* rules = rs.find(entity.name);
  if (rules == nullptr)
    throw std::runtime_error("entity " + entity.name + " has no rules in the ruleset in force");
  for (const std::string& name : rules->priority)
    if (const config::SideConfig* s = config.side(name); s && entity.mapping_for(name))
      out.push_back(s);
  for (const config::SideConfig& s : config.sides)
    if (entity.mapping_for(s.name) && std::find(out.begin(), out.end(), &s) == out.end())
      out.push_back(&s);
  return out;
}

bool empty_value(const std::optional<std::string>& v) {
  return !v || v->empty();
}

std::optional<std::string> json_value(const nlohmann::json& obj, const std::string& field) {
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// Every write-back pending once the decisions are made (`before`: the highest outbox id
// before this run), and each side's share of them.
void list_writes(pqxx::transaction_base& tx, std::int64_t before, bool keep,
                 InitialSyncReport& report) {
  // The side's counts, added for a side the snapshot did not read.
  auto counts_of = [&](const std::string& side) -> SideWrites& {
    for (SideWrites& s : report.sides)
      if (s.side == side) return s;
    report.sides.push_back(SideWrites{side});
    return report.sides.back();
  };
  // Read through a cursor, a chunk at a time: a first contact can queue millions of writes.
  tx.exec(
      "DECLARE mdsync_planned NO SCROLL CURSOR FOR"
      " SELECT o.side, o.entity, o.golden_id, o.kind, coalesce(x.row_key, ''),"
      " o.\"values\"::text, o.expected::text, coalesce(x.base, '{}')::text, o.id <= " +
      tx.quote(before) +
      " FROM mdsync.outbox o LEFT JOIN mdsync.crosswalk x"
      "  ON x.golden_id = o.golden_id AND x.side = o.side"
      " WHERE o.status = 'pending' ORDER BY o.side, o.entity, o.golden_id, o.id");
  for (;;) {
    const pqxx::result chunk = tx.exec("FETCH FORWARD 5000 FROM mdsync_planned");
    if (chunk.empty()) break;
    for (const auto& r : chunk) {
      PlannedWrite w;
      w.side = r[0].as<std::string>();
      w.entity = r[1].as<std::string>();
      w.golden_id = r[2].as<std::int64_t>();
      w.kind = r[3].as<std::string>();
      w.row_key = w.kind == "insert" ? std::string() : r[4].as<std::string>();
      const nlohmann::json values = nlohmann::json::parse(r[5].as<std::string>());
      const nlohmann::json expected = nlohmann::json::parse(r[6].as<std::string>());
      const nlohmann::json base = nlohmann::json::parse(r[7].as<std::string>());
      w.queued_before = r[8].as<bool>();
      SideWrites* counts = w.queued_before ? nullptr : &counts_of(w.side);
      if (w.kind == "update") {
        if (counts) ++counts->updates;
        for (auto it = values.begin(); it != values.end(); ++it) {
          PlannedWrite f = w;
          f.field = it.key();
          f.new_value = json_value(values, it.key());
          f.old_value = expected.contains(it.key()) ? json_value(expected, it.key())
                                                    : json_value(base, it.key());
          if (counts) {
            ++counts->fields;
            if (!empty_value(f.old_value) && f.old_value != f.new_value) {
              ++counts->overwrites;
              if (empty_value(f.new_value)) ++counts->blanks;
            }
          }
          if (keep) report.writes.push_back(std::move(f));
        }
        continue;
      }
      if (w.kind == "delete" && counts) {
        ++counts->deletes;
        // A deleted row loses every value it holds.
        for (auto it = base.begin(); it != base.end(); ++it)
          if (!empty_value(json_value(base, it.key()))) {
            ++counts->overwrites;
            ++counts->blanks;
          }
      }
      if (w.kind == "insert" && counts) ++counts->inserts;
      if (keep) report.writes.push_back(std::move(w));
    }
  }
  tx.exec("CLOSE mdsync_planned");
}

// The sides whose new writes replace more of their non-empty values than the share allows.
std::vector<std::string> past_share(const InitialSyncReport& report) {
  std::vector<std::string> out;
  for (const SideWrites& s : report.sides)
    if (s.overwrites > 0 && static_cast<double>(s.overwrites) >
                                report.max_overwrite_share * static_cast<double>(s.non_empty))
      out.push_back(s.side);
  return out;
}

// The possible duplicates the run opened for an entity's rows on a side, each with its
// candidates named by their rows (a dry run's record and conflict ids are rolled back).
std::vector<std::string> duplicates_since(pqxx::transaction_base& tx, std::int64_t after,
                                          const std::string& entity, const std::string& side,
                                          bool dry_run) {
  std::vector<std::string> lines;
  for (const auto& r : tx.exec_params(
           "SELECT c.id, c.row_key, c.reason, (SELECT string_agg('record ' || d.golden_id ||"
           "  coalesce(' (' || (SELECT string_agg(x.side || ' row ' || x.row_key, ', '"
           "   ORDER BY x.side) FROM mdsync.crosswalk x WHERE x.golden_id = d.golden_id) || ')',"
           "  ''), '; ' ORDER BY d.golden_id)"
           "  FROM mdsync.duplicate_candidate d WHERE d.conflict_id = c.id)"
           " FROM mdsync.conflict c WHERE c.id > $1 AND c.entity = $2 AND c.side = $3"
           " AND c.kind = 'possible_duplicate' AND c.status = 'open' ORDER BY c.id",
           after, entity, side)) {
    std::string line = dry_run ? std::string() : "conflict " + r[0].as<std::string>() + ": ";
    line += side + " row " + r[1].as<std::string>() + ": " + r[2].as<std::string>();
    if (!r[3].is_null()) line += "; candidates: " + r[3].as<std::string>();
    lines.push_back(std::move(line));
  }
  return lines;
}

}  // namespace

InitialSyncReport initial_sync(const config::Config& config, const InitialSyncOptions& options) {
  InitialSyncReport report;
  report.dry_run = options.dry_run;
  report.max_overwrite_share = config.initial_sync.max_overwrite_share;
  // A service reconciling and writing back meanwhile would race the rows being matched:
  // sync --initial (and its dry run, which decides with the same code) runs alone, holding
  // the engine lease.
  SyncEngine engine(config, options.seed);
  try {
    engine.connect_control();
  } catch (const LeaseHeld& e) {
    throw std::runtime_error(std::string(e.what()) +
                             ". sync --initial runs alone: stop the service before `sync "
                             "--initial`, and start it again afterwards");
  }

  // Write-backs queued by an earlier run go out first: a row a killed run inserted (the side
  // applied it, the control store never heard) is linked now, not read as a new row below.
  // (Not in a dry run, which changes nothing: it lists those writes as queued before.)
  if (!options.dry_run) report.delivered = engine.deliver_writebacks();

  // Every side's snapshot is taken before anything is decided: a side that cannot be read
  // stops the run with nothing changed. Its rows are then read a chunk at a time.
  std::map<std::string, std::unique_ptr<SideSnapshot>> snaps;
  auto open_snapshots = [&] {
    snaps.clear();
    for (const config::SideConfig& side : config.sides) {
      if (std::none_of(config.entities.begin(), config.entities.end(),
                       [&](const config::EntityConfig& e) { return e.mapping_for(side.name); }))
        continue;
      try {
        snaps[side.name] =
            engine.side_store(side.name).open_snapshot(Side::SnapshotReads::kCapturesAndRows);
      } catch (const SideOwnershipError&) {
        throw;
      } catch (const std::exception& e) {
        throw std::runtime_error("side " + side.name + " could not be read: " + e.what() +
                                 "; nothing was changed");
      }
    }
  };
  open_snapshots();
  for (const config::SideConfig& side : config.sides)
    if (snaps.count(side.name)) {
      SideWrites counts;
      counts.side = side.name;
      report.sides.push_back(counts);
    }

  std::map<std::string, std::vector<std::int64_t>> capture_seqs;  // every capture row read
  const InitialSyncReport read_report = report;
  bool row_by_row = false;
  auto decide = [&](pqxx::transaction_base& tx, const core::Ruleset& rs,
                    const FieldTransforms& transforms) {
    const std::int64_t outbox_before =
        tx.exec1("SELECT coalesce(max(id), 0) FROM mdsync.outbox")[0].as<std::int64_t>();
    const std::int64_t conflict_before =
        tx.exec1("SELECT coalesce(max(id), 0) FROM mdsync.conflict")[0].as<std::int64_t>();
    BatchReconciler batch(
        tx, config, rs, transforms,
        row_by_row ? BatchReconciler::Mode::kRowByRow : BatchReconciler::Mode::kBuffered);

    // Capture rows still on a side: a row the snapshot holds is read whole instead (its
    // captured changes are in it); a row gone from it (deleted, out of the scope) is decided
    // from its captures first, as the service would. Rows reconciled before are skipped.
    std::vector<SideRows> pending;
    std::vector<std::pair<std::string, const CapturedRow*>> gone_rows;
    for (auto& [side, snap] : snaps) {
      const CaptureBatch& captures = snap->captures();
      std::vector<std::int64_t>& seqs = capture_seqs[side];
      for (const CapturedRow& c : captures.rows) seqs.push_back(c.seq);
      if (seqs.empty()) continue;
      const std::set<std::int64_t> done = reconciled_before(tx, side, captures.epoch, seqs);
      std::map<std::string, std::vector<std::string>> keys;  // by entity
      for (const CapturedRow& c : captures.rows)
        if (!done.count(c.seq)) keys[c.entity].push_back(c.row_key);
      std::map<std::string, std::set<std::string>> present;
      for (const auto& [entity, of] : keys)
        if (const config::EntityConfig* e = config.entity(entity); e && e->mapping_for(side))
          present[entity] = snap->present(*e, of);
      SideRows gone{side, captures.epoch, {}};
      for (const CapturedRow& c : captures.rows) {
        if (done.count(c.seq)) continue;
        if (present[c.entity].count(c.row_key)) {
          ++report.captures_subsumed;
          continue;
        }
        gone.rows.push_back(&c);
        gone_rows.emplace_back(side, &c);
      }
      pending.push_back(std::move(gone));
    }
    // Captures of rows gone, in capture-time order across the sides (guarantee 6 per row).
    batch.prefetch(gone_rows);
    PassResult gone_result;
    in_capture_order(pending, [&](const SideRows& side, const CapturedRow& row) {
      batch.reconcile(side.side, side.epoch, row, gone_result);
      ++report.captures_applied;
    });
    batch.checkpoint();

    // The rows, side by side in each entity's order, a chunk at a time: each chunk's links,
    // records and match keys are read in a few statements, its decisions sent a table at a time.
    for (const config::EntityConfig& entity : config.entities) {
      for (const config::SideConfig* side : side_order(config, entity, rs)) {
        SideSnapshot& snap = *snaps.at(side->name);
        SideWrites& counts =
            *std::find_if(report.sides.begin(), report.sides.end(),
                          [&](const SideWrites& w) { return w.side == side->name; });
        InitialSyncStep step;
        step.entity = entity.name;
        step.side = side->name;
        InitialSyncProgress progress{entity.name, side->name, 0,
                                     options.progress ? snap.count(entity) : 0, false};
        PassResult r;
        for (;;) {
          const std::vector<CapturedRow> rows = snap.next(entity, kChunkRows);
          if (rows.empty()) break;
          std::vector<std::pair<std::string, const CapturedRow*>> chunk;
          for (const CapturedRow& row : rows) {
            chunk.emplace_back(side->name, &row);
            for (const auto& [field, value] : row.values)
              if (!empty_value(value)) ++counts.non_empty;
          }
          batch.prefetch(chunk);
          for (const CapturedRow& row : rows) batch.reconcile(side->name, kSnapshotEpoch, row, r);
          batch.checkpoint();
          step.rows += static_cast<std::int64_t>(rows.size());
          progress.done = step.rows;
          if (options.progress) options.progress(progress);
        }
        progress.finished = true;
        if (options.progress) options.progress(progress);
        step.created = r.created;
        step.linked = r.linked_by_match;
        step.possible_duplicates = r.possible_duplicates;
        step.other = r.held;
        step.errors = r.change_errors;
        step.already_linked = std::max(
            0, r.captured - r.created - r.linked_by_match - r.possible_duplicates - r.held);
        report.steps.push_back(std::move(step));
      }
    }
    // Write-backs are planned here, once, from every side's rows.
    batch.finish();
    for (InitialSyncStep& step : report.steps)
      step.duplicates =
          duplicates_since(tx, conflict_before, step.entity, step.side, options.dry_run);

    for (const auto& [side, seqs] : capture_seqs)
      mark_reconciled(tx, side, snaps.at(side)->captures().epoch, seqs);
    list_writes(tx, outbox_before, options.list_writes || options.dry_run, report);
    const std::vector<std::string> over = past_share(report);
    if (!options.accept_overwrites) report.refused = over;
    return !options.dry_run && report.refused.empty();
  };
  // Buffered first; a row that cannot be decided, or a write the store refuses, rolls the run
  // back and it is decided again row by row (from new snapshots), where that row alone is kept
  // as an error.
  bool committed = false;
  for (bool by_row : {false, true}) {
    row_by_row = by_row;
    report = read_report;
    capture_seqs.clear();
    try {
      if (by_row) open_snapshots();
      committed = engine.in_control_transaction(decide);
      break;
    } catch (const RowByRowNeeded& e) {
      log::info("initial_sync_row_by_row", {{"reason", std::string(e.what())}});
    }
  }
  // The snapshots end here: the sides' connections write back below.
  snaps.clear();
  if (!committed) return report;

  // The control store remembers the capture rows as done; drop them from the sides (one left
  // behind is skipped by the service).
  for (const auto& [side, seqs] : capture_seqs) {
    if (seqs.empty()) continue;
    try {
      engine.side_store(side).forget_capture(seqs);
    } catch (const std::exception& e) {
      log::warn("capture_not_forgotten", {{"side", side}, {"error", std::string(e.what())}});
    }
  }
  engine.refresh_statistics();
  report.writeback = engine.drain(std::chrono::seconds(30));
  engine.refresh_statistics(true);
  return report;
}

}  // namespace mdsync::store
