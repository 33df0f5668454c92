#include "batch_reconciler.hpp"

#include <algorithm>
#include <optional>
#include <pqxx/pqxx>
#include <set>

#include "captured_change.hpp"
#include "field_transforms.hpp"
#include "mdsync/core/reconciler.hpp"
#include "mdsync/core/utf8.hpp"
#include "mdsync/log/event_log.hpp"
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
                                 const core::Ruleset& rs, const FieldTransforms& transforms)
    : tx_(tx),
      config_(config),
      rs_(rs),
      transforms_(transforms),
      repo_(tx),
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
  if ((!gid || retired) && row.op == core::Op::kDelete)
    return;  // a row the engine does not sync is gone or left again: nothing to reconcile
  const config::SideMapping* mapping = entity->mapping_for(side);
  const bool soft_deletes = mapping != nullptr && mapping->soft_delete.has_value();
  try {
    Savepoint change_savepoint(tx_, "change");
    bool linked_by_match = false;
    core::RecordState state;
    if (gid) {
      if (auto cached = states_.find(*gid); cached != states_.end()) {
        state = cached->second;
      } else if (auto first = loaded_.find(*gid); first != loaded_.end()) {
        state = first->second;
      }
    }
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
      repo_.audit_event(row.entity, *gid, "left_scope", side + "#" + std::to_string(row.seq),
                        rs_.version, "the row left " + side + "'s scope; it is no longer synced");
      change_savepoint.release();
      link_states_[ref] = "out_of_scope";
      states_[*gid] = std::move(state);
      ++result.captured;
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
    if (!gid) {
      if (auto held = repo_.open_create_conflict(row.entity, side, row.row_key)) {
        core::Plan plan;
        plan.source = side + "#" + std::to_string(row.seq);
        plan.ruleset_version = rs_.version;
        plan.attached.push_back(core::ConflictAttached{*held, side, change.values});
        repo_.persist_plan(row.entity, std::nullopt, side, row.row_key, plan, state);
        change_savepoint.release();
        links_.erase(ref);
        ++result.captured;
        ++result.held;
        return;
      }
      // Match keys: a row that already exists as a record is linked to it, not created.
      if (!entity->match.empty() && row.op == core::Op::kUpsert) {
        const RowMatch m = match_row(matches_, *entity, side, change.values, state_of_);
        if (m.outcome == mapping::MatchOutcome::kPossibleDuplicate) {
          const core::Plan plan =
              duplicate_plan(row.entity, side, side + "#" + std::to_string(row.seq), rs_.version,
                             change.values, m, state_of_);
          state.open_conflicts.push_back(core::OpenConflict{
              0, core::kRecordUnit, core::ConflictKind::kPossibleDuplicate, side});
          repo_.persist_plan(row.entity, std::nullopt, side, row.row_key, plan, state);
          change_savepoint.release();
          matches_.hold_inserts(state.open_conflicts.back().id, side, m.candidates);
          ++result.captured;
          ++result.conflicts_opened;
          ++result.possible_duplicates;
          return;
        }
        if (m.outcome == mapping::MatchOutcome::kLink) {
          gid = m.target;
          state = *state_of(*gid);
          // No base yet: the decision rule compares the row with golden field by field. The
          // row is read against golden, so a formatting-only difference (a URL and its host
          // under a normalizer) is agreement, not a change.
          state.bases[side] = {};
          change = to_change(row, side, *entity, transforms_, state.golden);
          repo_.cancel_pending(*gid, side, {"insert"}, kLinkedNotInserted);
          linked_by_match = true;
        }
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
    change_savepoint.release();
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
    if (gid && !entity->match.empty()) matches_.changed(*entity, *gid, state);
    if (log::enabled(log::Level::kDebug))
      log::debug("plan", {{"golden_id", gid.value_or(0)}, {"text", plan.to_text()}});
    result.conflicts_opened += static_cast<int>(plan.opened.size());
    ++result.captured;
    if (gid) {
      states_[*gid] = std::move(state);
      touched_[*gid] = rules;
    }
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const std::exception& e) {
    // The savepoint undid this change's writes; the cached state of its record (if any) is
    // still the one before it.
    keep_as_error(e.what());
  }
}

void BatchReconciler::finish() {
  for (const auto& [gid, rules] : touched_)
    repo_.plan_and_enqueue(*rules, config_.side_names(), gid, states_[gid]);
  matches_.flush();
}

}  // namespace mdsync::store
