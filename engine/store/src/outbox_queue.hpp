// The write-back queue (mdsync.outbox) as the engine reads and settles it, one side at a time:
// the next writes to send, a batch the side could not take, and what each write came to.
// Every statement's cost follows the batch, not the length of the queue.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mdsync/store/side.hpp"

namespace pqxx {
class transaction_base;
}  // namespace pqxx

namespace mdsync::store {

struct QueuedWrites {
  std::vector<WriteRequest> requests;
  std::vector<std::int64_t> golden_ids;  // requests[k] writes record golden_ids[k]
  // The lowest id of a queued write met (sent or not), 0 if none: where the next walk may start.
  std::int64_t first_queued_id = 0;
};

// Up to `limit` writes to send to `side`, in id order, one per record: the record's oldest
// queued write (a later write of the same record may need the key an earlier insert is about
// to get, and expects what the earlier ones will have written). A record whose oldest write
// backs off (not_before) waits whole. The walk starts after id `after` (0: the queue's start);
// writes below it are not met.
QueuedWrites next_queued_writes(pqxx::transaction_base& tx, const std::string& side, int limit,
                                std::int64_t after = 0);

// The side could not take the batch at all (unreachable, refused the transaction): every write
// stays queued, its attempt counted with the error.
void count_failed_attempt(pqxx::transaction_base& tx, const std::vector<WriteRequest>& requests,
                          const std::string& error);

// What each write of a batch came to, saved to the outbox in one statement.
class OutboxOutcomes {
 public:
  void add(std::int64_t id, const char* status, const std::string& row_key,
           const std::string& error);
  void save(pqxx::transaction_base& tx) const;

 private:
  std::vector<std::string> ids_, statuses_, row_keys_, errors_;
};

}  // namespace mdsync::store
