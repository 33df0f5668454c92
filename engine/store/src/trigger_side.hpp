// The PostgreSQL trigger side: a side database whose changes row triggers capture into its
// mdsync.capture table, and which the engine writes back to conditionally and idempotently.
// All SQL against such a side lives in the trigger_side*.cpp files (set-up, install, capture,
// writes, current rows) and the helpers they share (trigger_side_sql, side_stamp, write_chunk).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "mdsync/config/config.hpp"
#include "mdsync/store/db_connection.hpp"
#include "mdsync/store/side.hpp"
#include "mdsync/store/store_identity.hpp"

namespace pqxx {
class connection_base;
class transaction_base;
}  // namespace pqxx

namespace mdsync::store {

class FieldTransforms;
class TriggerSnapshot;

class TriggerSide final : public Side {
 public:
  TriggerSide(const config::Config& config, const config::SideConfig& side);
  ~TriggerSide() override;

  const std::string& name() const override { return side_.name; }

  // Set-up (trigger_side.cpp; install_capture in trigger_side_install.cpp).
  void bind(const StoreIdentity& store, const SideKey& key) override;
  void check_mappings() override;
  std::vector<std::string> install_capture(const StoreIdentity& store, const SideKey& key,
                                           bool adopt) override;
  std::vector<std::string> mapping_drift() override;
  void reset() override;

  // Capture read and acknowledge (trigger_side_capture.cpp).
  CaptureBatch read_capture(int limit) override;
  std::int64_t capture_backlog() override;
  void set_engine_waiting(bool waiting) override;
  void forget_capture(const std::vector<std::int64_t>& seqs) override;

  // Current rows (trigger_side_rows.cpp).
  std::unique_ptr<SideSnapshot> open_snapshot(SnapshotReads reads) override;
  std::vector<CapturedRow> read_current_rows(const config::EntityConfig& entity) override;
  std::map<std::string, RowNow> read_rows(const config::EntityConfig& entity,
                                          const std::vector<std::string>& keys) override;
  std::string recapture_row(const config::EntityConfig& entity,
                            const std::string& row_key) override;

  // Apply writes (trigger_side_writes.cpp).
  std::vector<WriteResult> apply(const std::vector<WriteRequest>& requests) override;
  std::int64_t contention_retries() const override { return contention_retries_; }
  std::int64_t highest_applied_id() override;

 private:
  friend class TriggerSnapshot;
  pqxx::connection_base& conn();
  // The capture rows (up to `limit`), read in `tx` after checking the side's stamp.
  CaptureBatch read_capture_in(pqxx::transaction_base& tx, int limit);
  // The SELECT of the entity's rows that take part, one result row per field (s.n, s.k, key,
  // value) in key order (current_rows, the snapshot's cursor).
  std::string current_rows_sql(pqxx::transaction_base& tx, const config::EntityConfig& entity);
  void resolve_lookups(pqxx::transaction_base& tx, std::vector<CapturedRow>& rows);
  std::vector<CapturedRow> current_rows(pqxx::transaction_base& tx,
                                        const config::EntityConfig& entity);
  // One attempt of apply, in one side transaction (the stages of WritePass).
  std::vector<WriteResult> apply_once(const std::vector<WriteRequest>& requests);
  std::vector<std::string> mapping_drift(pqxx::transaction_base& tx);
  // The drift messages of the columns each entity's table no longer has (drifted_columns).
  std::vector<std::string> drift_messages(
      const std::map<std::string, std::set<std::string>>& gone_by_entity) const;
  // Throws SideOwnershipError unless `owner` (mdsync.owner's store_id; empty: no stamp) is the
  // bound store.
  void require_owner(const std::string& owner, const std::string& owner_text = {}) const;
  // In a writing transaction of a bound store: waits for an `--adopt-side` in progress and
  // checks the stamp, so nothing is written to a side that has just been moved.
  void hold_ownership(pqxx::transaction_base& tx);

  const config::Config& config_;
  const config::SideConfig& side_;
  PgConnection conn_;
  std::unique_ptr<FieldTransforms> transforms_;
  std::int64_t contention_retries_ = 0;
  bool bound_ = false;
  std::set<std::string> drift_logged_;  // mapping drift already in the log
  StoreIdentity store_;
  SideKey key_;
};

}  // namespace mdsync::store
