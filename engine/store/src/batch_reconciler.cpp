#include "batch_reconciler.hpp"

#include <algorithm>
#include <optional>
#include <pqxx/pqxx>
#include <set>

#include "captured_change.hpp"
#include "field_transforms.hpp"
#include "mdsync/core/change_outcome.hpp"
#include "mdsync/core/reconciler.hpp"
#include "mdsync/core/utf8.hpp"
#include "mdsync/log/event_log.hpp"
#include "mdsync/store/duplicate_resolution.hpp"
#include "mdsync/store/pg_arrays.hpp"
#include "prepared_statement.hpp"
#include "savepoint.hpp"

namespace mdsync::store {

namespace {

// `values` with any text that is not UTF-8 made readable, so that keeping a change as an error
// cannot itself fail on it.
core::FieldValues readable(core::FieldValues values) {
  for (auto& [field, value] : values)
    if (value && !core::is_valid_utf8(*value)) value = core::utf8_lossy(*value);
  return values;
}

// `base` is the side's base of the record (empty for a row not linked yet): a mapped field
// whose side value still holds its base is read as the base itself, so a formatting-only
// edit under a normalizer is no change.
core::Change to_change(const CapturedRow& row, const std::string& side,
                       const config::EntityConfig& entity, const FieldTransforms& transforms,
                       const core::FieldValues& base) {
  core::Change change;
  change.side = side;
  change.seq = row.seq;
  change.entity = row.entity;
  change.row_key = row.row_key;
  change.op = row.op;
  change.commit_time_us = row.captured_at_us;
  for (const auto& [field, type] : entity.fields) {
    auto it = row.values.find(field);
    if (it == row.values.end()) continue;
    // Text that is not UTF-8 (a side database in SQL_ASCII) cannot be stored or compared as
    // text: the field is an invalid value, shown with its bad bytes replaced. Every other value
    // is kept whole, however large (the core holds it to the size limit): the base must be
    // what the side holds, or every write-back to the row would be superseded.
    if (it->second && !core::is_valid_utf8(*it->second)) {
      change.values[field] = core::utf8_lossy(*it->second);
      change.unconvertible[field] = "is not valid UTF-8 text";
      continue;
    }
    if (auto bad = row.invalid.find(field); bad != row.invalid.end()) {
      change.values[field] = it->second;
      change.unconvertible[field] = bad->second;
      continue;
    }
    if (const mapping::FieldTransform* t = transforms.find(entity.name, side, field)) {
      auto b = base.find(field);
      const mapping::Converted c =
          t->to_canonical(it->second, b == base.end() ? core::Value{} : b->second);
      change.values[field] = c.ok() ? c.value() : it->second;
      if (!c.ok()) change.unconvertible[field] = c.reason();
      continue;
    }
    auto canonical = core::canonicalize(type, it->second);
    change.values[field] = canonical ? *canonical : it->second;
    if (!canonical)
      change.unconvertible[field] =
          "'" + it->second.value_or("") + "' is not a valid " + std::string(core::to_string(type));
  }
  return change;
}

}  // namespace

core::Change captured_change(const CapturedRow& row, const std::string& side,
                             const config::EntityConfig& entity, const FieldTransforms& transforms,
                             const core::FieldValues& base) {
  return to_change(row, side, entity, transforms, base);
}

BatchReconciler::BatchReconciler(pqxx::transaction_base& tx, const config::Config& config,
                                 const core::Ruleset& rs, const FieldTransforms& transforms,
                                 Mode mode)
    : tx_(tx),
      config_(config),
      rs_(rs),
      transforms_(transforms),
      mode_(mode),
      repo_(tx, mode == Mode::kBuffered ? RecordRepository::Mode::kBuffered
                                        : RecordRepository::Mode::kImmediate),
      matches_(tx, std::any_of(config.entities.begin(), config.entities.end(),
                               [](const auto& e) { return !e.match.empty(); })),
      state_of_([this](std::int64_t id) { return state_of(id); }) {}

const core::RecordState* BatchReconciler::state_of(std::int64_t id) {
  if (auto it = states_.find(id); it != states_.end()) return &it->second;
  if (auto it = loaded_.find(id); it != loaded_.end()) return &it->second;
  auto it = candidates_.find(id);
  if (it == candidates_.end()) {
    auto state = repo_.load(id);
    if (!state) return nullptr;
    it = candidates_.emplace(id, std::move(*state)).first;
  }
  return &it->second;
}

void BatchReconciler::prefetch(
    const std::vector<std::pair<std::string, const CapturedRow*>>& rows) {
  // The batch's reads in two statements before any change is decided: the golden ids of every
  // row, then those records, locked. The per-change savepoints then hold only writes.
  std::set<RecordRepository::RowRef> refs;
  for (const auto& [side, row] : rows)
    // A key that is not UTF-8 (a side in SQL_ASCII) cannot be looked up in the control store:
    // its change is kept as an error, and the batch goes on.
    if (!row->row_key.empty() && core::is_valid_utf8(row->row_key))
      refs.emplace(row->entity, side, row->row_key);
  for (auto& [ref, gid] : repo_.find_by_keys(refs, &link_states_)) links_[ref] = gid;
  std::vector<std::int64_t> linked_ids;
  for (const auto& [ref, gid] : links_)
    if (!loaded_.count(gid) && !states_.count(gid)) linked_ids.push_back(gid);
  std::sort(linked_ids.begin(), linked_ids.end());
  linked_ids.erase(std::unique(linked_ids.begin(), linked_ids.end()), linked_ids.end());
  for (auto& [gid, state] : repo_.load_many(linked_ids)) loaded_.emplace(gid, std::move(state));
  // A row with no link may be held by a create conflict (its later changes attach to it).
  std::set<RecordRepository::RowRef> unlinked;
  for (const RecordRepository::RowRef& ref : refs)
    if (!links_.count(ref) && !unlinked_prefetched_.count(ref)) unlinked.insert(ref);
  for (auto& [ref, id] : repo_.open_create_conflicts(unlinked)) create_conflicts_[ref] = id;
  unlinked_prefetched_.insert(unlinked.begin(), unlinked.end());
  // And what the match keys of a row with no link find in the store, per entity and side in
  // one statement (the keys as reconcile() builds them for a row with no base).
  std::map<std::pair<const config::EntityConfig*, std::string>, std::vector<mapping::MatchKey>>
      keys;
  for (const auto& [side, row] : rows) {
    if (row->op != core::Op::kUpsert || row->row_key.empty() || row->left_scope) continue;
    const RecordRepository::RowRef ref{row->entity, side, row->row_key};
    if (!unlinked.count(ref) || create_conflicts_.count(ref)) continue;
    const config::EntityConfig* entity = config_.entity(row->entity);
    if (entity == nullptr || entity->match.empty()) continue;
    const core::Change change = to_change(*row, side, *entity, transforms_, {});
    std::vector<mapping::MatchKey>& all = keys[{entity, side}];
    for (mapping::MatchKey& k : mapping::match_keys(entity->match, change.values))
      all.push_back(std::move(k));
  }
  // The records those keys found, loaded together (match_row reads each candidate's state).
  std::vector<std::int64_t> found;
  for (const auto& [of, all] : keys)
    for (std::int64_t gid : matches_.prefetch(*of.first, of.second, all))
      if (!states_.count(gid) && !loaded_.count(gid) && !candidates_.count(gid))
        found.push_back(gid);
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end()), found.end());
  for (auto& [gid, state] : repo_.load_many(found)) candidates_.emplace(gid, std::move(state));
}

std::optional<std::int64_t> BatchReconciler::create_conflict(const RecordRepository::RowRef& ref) {
  if (!create_conflicts_stale_ && unlinked_prefetched_.count(ref)) {
    auto it = create_conflicts_.find(ref);
    if (it == create_conflicts_.end()) return std::nullopt;
    return it->second;
  }
  return repo_.open_create_conflict(std::get<0>(ref), std::get<1>(ref), std::get<2>(ref));
}

void BatchReconciler::reconcile(const std::string& side, const std::string& epoch,
                                const CapturedRow& row, PassResult& result) {
  // Each change is isolated: one the engine cannot reconcile is kept in capture_error with
  // the reason, and the rest of the batch proceeds.
  auto keep_as_error = [&](const std::string& why) {
    tx_.exec_params(
        "INSERT INTO mdsync.capture_error (side, epoch, seq, entity, op, row_key, \"values\","
        " error) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)",
        side, epoch, row.seq, row.entity,
        std::string(row.op == core::Op::kDelete ? "delete" : "upsert"),
        row.row_key.empty() ? std::optional<std::string>()
                            : std::optional<std::string>(core::utf8_lossy(row.row_key)),
        values_to_json(readable(row.values)), why);
    log::error("change_not_reconciled",
               {{"side", side}, {"seq", row.seq}, {"entity", row.entity}, {"error", why}});
    ++result.change_errors;
    result.tally.add_change(side, row.entity, "error");
  };
  const config::EntityConfig* entity = config_.entity(row.entity);
  const core::EntityRules* rules = rs_.find(row.entity);
  if (entity == nullptr || rules == nullptr) {
    keep_as_error("entity '" + row.entity + "' is not in the config or the ruleset in force");
    return;
  }
  if (row.row_key.empty()) {
    keep_as_error("the row key is NULL or empty; the row cannot be linked");
    return;
  }
  if (!core::is_valid_utf8(row.row_key)) {
    keep_as_error("the row key is not valid UTF-8 text; the row cannot be linked");
    return;
  }
  const RecordRepository::RowRef ref{row.entity, side, row.row_key};
  std::optional<std::int64_t> gid;
  if (auto link = links_.find(ref); link != links_.end()) gid = link->second;
  // A retired link (the row left the scope, or was soft-deleted) is not synced; only the
  // row's coming back (an upsert: the trigger captures it whole) picks it up again.
  const bool retired = gid && link_states_.count(ref) && link_states_[ref] != "linked";
  if ((!gid || retired) && row.op == core::Op::kDelete) {
    // A row the engine does not sync is gone or left again: nothing to reconcile. A row held
    // by a conflict is no match candidate any more.
    if (!gid && !entity->match.empty()) {
      repo_.flush();  // the held row's conflict may be this batch's
      matches_.held_row_gone(*entity, side, row.row_key);
    }
    return;
  }
  const config::SideMapping* mapping = entity->mapping_for(side);
  const bool soft_deletes = mapping != nullptr && mapping->soft_delete.has_value();
  try {
    // Row by row, the change's writes are undone alone if it fails; buffered, a failure sends
    // the whole batch to the row-by-row path (catch below), so no savepoint is needed.
    std::optional<Savepoint> change_savepoint;
    if (mode_ == Mode::kRowByRow) change_savepoint.emplace(tx_, "change");
    auto release = [&] {
      if (change_savepoint) change_savepoint->release();
    };
    bool linked_by_match = false;
    core::RecordState state;
    if (gid) {
      if (auto cached = states_.find(*gid); cached != states_.end()) {
        state = cached->second;
      } else if (auto first = loaded_.find(*gid); first != loaded_.end()) {
        state = first->second;
      }
    }
    // The record's keys as stored (or as this batch last set them), so that a change which
    // leaves them as they are (most do: a key field rarely changes) costs no key rewrite.
    const std::vector<mapping::MatchKey> keys_before = gid && !entity->match.empty()
                                                           ? record_keys(entity->match, state)
                                                           : std::vector<mapping::MatchKey>{};
    auto detach = [&](bool on) {
      auto& d = state.detached;
      d.erase(std::remove(d.begin(), d.end(), side), d.end());
      if (on) d.push_back(side);
    };
    if (row.left_scope) {
      // The row stays where it is and the record lives on elsewhere; the engine only stops
      // syncing it (and does not re-create the record there).
      repo_.retire(*gid, side, "out_of_scope");
      state.bases.erase(side);
      detach(true);
      repo_.save_golden(*gid, state);
      // The row no longer gives the record keys (record_keys reads the linked sides).
      if (!entity->match.empty()) matches_.changed(*entity, *gid, state);
      repo_.audit_event(row.entity, *gid, "left_scope", side + "#" + std::to_string(row.seq),
                        rs_.version, "the row left " + side + "'s scope; it is no longer synced");
      release();
      link_states_[ref] = "out_of_scope";
      states_[*gid] = std::move(state);
      ++result.captured;
      result.tally.add_change(side, row.entity, "unchanged");
      return;
    }
    std::string revived;  // the retired link's state, when the row came back
    if (retired) {
      if (state.deleted || !state.exists) {
        // The record is gone: a row that comes back is a new record.
        repo_.unlink(*gid, side);
        gid.reset();
        state = core::RecordState{};
      } else {
        // Back in scope or un-deleted: synced again from the base it had, and a restore
        // queued for it is not needed any more.
        revived = link_states_[ref];
        state.bases[side] = repo_.revive(*gid, side);
        detach(false);
        repo_.cancel_pending(*gid, side, {"insert"});
      }
    }
    auto base = state.bases.find(side);
    core::Change change = to_change(row, side, *entity, transforms_,
                                    base == state.bases.end() ? core::FieldValues{} : base->second);
    // A row another side holds back that this row's exact keys found alone (match_row): once
    // this row creates the record, that row is linked to it (link_held_row).
    std::int64_t held_link = 0;
    std::string held_link_why;
    if (!gid) {
      if (auto held = create_conflict(ref)) {
        core::Plan plan;
        plan.source = side + "#" + std::to_string(row.seq);
        plan.ruleset_version = rs_.version;
        plan.attached.push_back(core::ConflictAttached{*held, side, change.values});
        repo_.persist_plan(row.entity, std::nullopt, side, row.row_key, plan, state);
        repo_.flush();
        if (!entity->match.empty()) matches_.held_changed(*entity, *held);
        release();
        links_.erase(ref);
        ++result.captured;
        ++result.held;
        result.tally.add_change(side, row.entity, "quarantined");
        return;
      }
      // Match keys: a row that already exists as a record is linked to it, not created.
      if (!entity->match.empty() && row.op == core::Op::kUpsert) {
        const RowMatch m = match_row(matches_, *entity, side, change.values, state_of_);
        if (m.outcome == mapping::MatchOutcome::kPossibleDuplicate) {
          repo_.flush();
          create_conflicts_stale_ = true;
          const core::Plan plan =
              duplicate_plan(row.entity, side, side + "#" + std::to_string(row.seq), rs_.version,
                             change.values, m, state_of_);
          state.open_conflicts.push_back(core::OpenConflict{
              0, core::kRecordUnit, core::ConflictKind::kPossibleDuplicate, side});
          repo_.persist_plan(row.entity, std::nullopt, side, row.row_key, plan, state);
          repo_.flush();
          matches_.held_changed(*entity, state.open_conflicts.back().id);
          release();
          matches_.hold_inserts(state.open_conflicts.back().id, side, m.candidates);
          ++result.captured;
          ++result.conflicts_opened;
          ++result.possible_duplicates;
          result.tally.add_change(side, row.entity, "quarantined");
          return;
        }
        if (m.outcome == mapping::MatchOutcome::kLink) {
          gid = m.target;
          state = *state_of(*gid);
          // No base yet: the decision rule compares the row with golden field by field. The
          // row is read against golden, so a formatting-only difference (a URL and its host
          // under a normalizer) is agreement, not a change.
          state.bases[side] = {};
          // A side whose deactivating delete detached it holds a row of the record again.
          detach(false);
          change = to_change(row, side, *entity, transforms_, state.golden);
          repo_.cancel_pending(*gid, side, {"insert"}, kLinkedNotInserted);
          linked_by_match = true;
        }
        held_link = m.held_link;
        held_link_why = m.held_link_reason;
      }
    }

    const core::Plan plan = core::reconcile_in_place(*rules, rs_.version, state, change);
    const bool created = !gid && state.exists;
    if (created) {
      gid = repo_.create_golden(row.entity, state);
      repo_.link(row.entity, side, row.row_key, *gid, state.bases[side]);
    } else if (gid) {
      repo_.save_golden(*gid, state);
      if (plan.unlink_source && soft_deletes)
        repo_.retire(*gid, side, "deleted");  // the row is still there, and can come back
      else if (plan.unlink_source)
        repo_.unlink(*gid, side);
      else if (linked_by_match)
        repo_.link(row.entity, side, row.row_key, *gid, state.bases[side]);
      else
        repo_.save_base(*gid, side, state.bases[side]);
    }
    repo_.persist_plan(row.entity, gid, side, row.row_key, plan, state);
    std::optional<LinkedRow> held_linked;
    if (!gid && !plan.opened.empty()) create_conflicts_stale_ = true;  // a row held now
    if (created && held_link != 0) {
      repo_.flush();
      create_conflicts_stale_ = true;
      held_linked = link_held_row(tx_, config_, rs_, transforms_, held_link, *gid, state,
                                  side + "#" + std::to_string(row.seq), held_link_why);
      matches_.held_changed(*entity, held_link);
    } else if (!gid && !entity->match.empty()) {
      // Held (unauthorized_create): a match candidate for the rows other sides create later.
      repo_.flush();
      for (const core::OpenConflict& c : state.open_conflicts)
        if (c.kind == core::ConflictKind::kUnauthorizedCreate && c.id != 0)
          matches_.held_changed(*entity, c.id);
    }
    release();
    if (held_linked) {
      const RecordRepository::RowRef linked{row.entity, held_linked->side, held_linked->row_key};
      links_[linked] = *gid;
      link_states_[linked] = "linked";
      log::info("held_row_linked", {{"golden_id", *gid},
                                    {"side", held_linked->side},
                                    {"row_key", held_linked->row_key},
                                    {"conflict_id", held_link}});
    }
    // Only a change that was kept moves the batch's view of the links_.
    if (created || linked_by_match) {
      links_[ref] = *gid;
      link_states_[ref] = "linked";
    } else if (gid && plan.unlink_source && soft_deletes) {
      link_states_[ref] = "deleted";
    } else if (gid && plan.unlink_source) {
      links_.erase(ref);
    } else if (!revived.empty()) {
      link_states_[ref] = "linked";
    } else if (!gid) {
      links_.erase(ref);
    }
    if (created) ++result.created;
    if (!gid && row.op == core::Op::kUpsert) ++result.held;  // an unauthorized create
    if (linked_by_match) ++result.linked_by_match;
    // Keys come from golden and from what each side holds: any reconciled change may move them.
    if (gid && !entity->match.empty()) {
      std::vector<mapping::MatchKey> keys = record_keys(entity->match, state);
      if (!same_keys(keys_before, keys)) matches_.changed(*entity, *gid, std::move(keys));
    }
    if (log::enabled(log::Level::kDebug))
      log::debug("plan", {{"golden_id", gid.value_or(0)}, {"text", plan.to_text()}});
    result.conflicts_opened += static_cast<int>(plan.opened.size());
    ++result.captured;
    const core::ChangeOutcome outcome = core::change_outcome(plan);
    result.tally.add_change(side, row.entity, core::to_string(outcome));
    // Timed from its capture: a row read from a snapshot (sync --initial) has no capture time.
    if (gid && row.captured_at_us > 0 &&
        (outcome == core::ChangeOutcome::kApplied || outcome == core::ChangeOutcome::kReverted))
      result.captured_at_us.emplace_back(*gid, row.captured_at_us);
    if (gid) {
      states_[*gid] = std::move(state);
      touched_[*gid] = rules;
    }
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const std::exception& e) {
    if (mode_ == Mode::kBuffered)
      throw RowByRowNeeded(side + " row " + core::utf8_lossy(row.row_key) + " of " + row.entity +
                           ": " + e.what());
    // The savepoint undid this change's writes; the cached state of its record (if any) is
    // still the one before it.
    keep_as_error(e.what());
  }
}

template <typename Step>
void BatchReconciler::sending(Step&& step) {
  try {
    step();
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const std::exception& e) {
    if (mode_ == Mode::kBuffered)
      throw RowByRowNeeded(std::string("the store refused the batch's writes: ") + e.what());
    throw;
  }
}

void BatchReconciler::checkpoint() {
  sending([&] {
    repo_.flush();
    matches_.flush();
  });
  // The records touched so far are planned at finish, read back from the store: their ids wait
  // in the store too, so memory does not grow with the table.
  if (!touched_.empty()) {
    std::vector<std::int64_t> ids;
    std::vector<std::string> entities;
    for (const auto& [gid, rules] : touched_) {
      ids.push_back(gid);
      entities.push_back(rules->entity);
    }
    sending([&] {
      exec_prepared(tx_, "planning_queue_add",
                    "INSERT INTO mdsync.planning_queue (golden_id, entity)"
                    " SELECT * FROM unnest($1::bigint[], $2::text[]) ON CONFLICT DO NOTHING",
                    pg_bigint_array(ids), pg_text_array(entities));
    });
    checkpointed_ = true;
  }
  touched_.clear();
  states_.clear();
  loaded_.clear();
  candidates_.clear();
  links_.clear();
  link_states_.clear();
  create_conflicts_.clear();
  unlinked_prefetched_.clear();
  create_conflicts_stale_ = false;
}

void BatchReconciler::finish() {
  sending([&] {
    // Records set aside at a checkpoint and not touched since, read back a chunk at a time in
    // id order (as the store has them, which is as the batch left them).
    std::int64_t after = 0;
    while (checkpointed_) {
      std::vector<std::int64_t> ids;
      std::map<std::int64_t, const core::EntityRules*> rules_of;
      const pqxx::result chunk =
          exec_prepared(tx_, "planning_queue_next",
                        "SELECT golden_id, entity FROM mdsync.planning_queue WHERE golden_id > $1"
                        " ORDER BY golden_id LIMIT 1000",
                        after);
      if (chunk.empty()) break;
      for (const auto& row : chunk) {
        const std::int64_t gid = row[0].as<std::int64_t>();
        after = gid;
        if (touched_.count(gid)) continue;  // planned below, as the batch holds it
        ids.push_back(gid);
        rules_of[gid] = rs_.find(row[1].as<std::string>());
      }
      const std::map<std::int64_t, core::RecordState> states = repo_.load_many(ids);
      std::vector<RecordRepository::Planned> records;
      for (const auto& [gid, state] : states)
        records.push_back(RecordRepository::Planned{rules_of[gid], gid, &state});
      repo_.plan_and_enqueue_many(records, config_.side_names());
    }
    if (checkpointed_) tx_.exec("DELETE FROM mdsync.planning_queue");  // this transaction's rows
    checkpointed_ = false;
    // The records the batch still holds, as it left them.
    std::vector<RecordRepository::Planned> records;
    for (const auto& [gid, rules] : touched_)
      records.push_back(RecordRepository::Planned{rules, gid, &states_[gid]});
    repo_.plan_and_enqueue_many(records, config_.side_names());
    repo_.flush();
    matches_.flush();
  });
}

}  // namespace mdsync::store
