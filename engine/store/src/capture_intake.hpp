// How a batch takes in captured rows, in the service's passes and in `sync --initial` alike:
// rows the control store reconciled before (their side's cleanup did not happen) are skipped,
// the sides' rows are decided in capture-time order (each side's own rows in sequence order,
// the commit order of one row's changes: guarantee 6), and the rows read are marked reconciled
// in the batch's own transaction.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "mdsync/store/side.hpp"

namespace pqxx {
class transaction_base;
}

namespace mdsync::store {

// Of `seqs` read from `side`'s capture table `epoch`, those reconciled before.
std::set<std::int64_t> reconciled_before(pqxx::transaction_base& tx, const std::string& side,
                                         const std::string& epoch,
                                         const std::vector<std::int64_t>& seqs);

// Records `seqs` as reconciled (once; a row marked before stays marked).
void mark_reconciled(pqxx::transaction_base& tx, const std::string& side, const std::string& epoch,
                     const std::vector<std::int64_t>& seqs);

// The same, and the side's last capture time set to now (the service's batches).
void mark_reconciled_now(pqxx::transaction_base& tx, const std::string& side,
                         const std::string& epoch, const std::vector<std::int64_t>& seqs);

// One side's rows to decide, in its own sequence order.
struct SideRows {
  std::string side;
  std::string epoch;
  std::vector<const CapturedRow*> rows;
};

// Calls `decide` for every row of every side, the earliest capture time first.
void in_capture_order(
    const std::vector<SideRows>& sides,
    const std::function<void(const SideRows& side, const CapturedRow& row)>& decide);

}  // namespace mdsync::store
