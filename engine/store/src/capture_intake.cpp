#include "capture_intake.hpp"

#include <pqxx/pqxx>

#include "mdsync/store/pg_arrays.hpp"

namespace mdsync::store {

std::set<std::int64_t> reconciled_before(pqxx::transaction_base& tx, const std::string& side,
                                         const std::string& epoch,
                                         const std::vector<std::int64_t>& seqs) {
  std::set<std::int64_t> done;
  if (seqs.empty()) return done;
  for (const auto& row :
       tx.exec_params("SELECT seq FROM mdsync.capture_done WHERE side = $1 AND epoch = $2"
                      " AND seq = ANY($3::bigint[])",
                      side, epoch, pg_bigint_array(seqs)))
    done.insert(row[0].as<std::int64_t>());
  return done;
}

void mark_reconciled(pqxx::transaction_base& tx, const std::string& side, const std::string& epoch,
                     const std::vector<std::int64_t>& seqs) {
  if (seqs.empty()) return;
  tx.exec_params(
      "INSERT INTO mdsync.capture_done (side, epoch, seq) SELECT $1, $2, unnest($3::bigint[])"
      " ON CONFLICT DO NOTHING",
      side, epoch, pg_bigint_array(seqs));
}

void in_capture_order(
    const std::vector<SideRows>& sides,
    const std::function<void(const SideRows& side, const CapturedRow& row)>& decide) {
  std::vector<std::size_t> next(sides.size(), 0);
  for (;;) {
    std::size_t pick = sides.size();
    for (std::size_t i = 0; i < sides.size(); ++i) {
      if (next[i] >= sides[i].rows.size()) continue;
      if (pick == sides.size() ||
          sides[i].rows[next[i]]->captured_at_us < sides[pick].rows[next[pick]]->captured_at_us)
        pick = i;
    }
    if (pick == sides.size()) return;
    decide(sides[pick], *sides[pick].rows[next[pick]++]);
  }
}

}  // namespace mdsync::store
