// A savepoint inside a transaction, for isolating one piece of work (a change of a batch, a
// chunk of write-backs): leaving the scope without release(), by an exception, rolls the
// transaction back to it, so the piece's statements are undone and the transaction goes on.
//
// Not pqxx::subtransaction: in libpqxx 6.4 it sends its SAVEPOINT only when its first
// statement goes through exec(). Through exec_params() no savepoint is made, its abort undoes
// nothing, and one failed statement aborts the whole enclosing transaction (jtv/libpqxx#512).
// The store's statements are all parameterized, so the savepoint is made explicitly here.
#pragma once

#include <pqxx/pqxx>
#include <string>

namespace mdsync::store {

class Savepoint {
 public:
  Savepoint(pqxx::transaction_base& tx, const std::string& name)
      : tx_(tx), name_(tx.quote_name(name)) {
    tx_.exec("SAVEPOINT " + name_);
  }
  ~Savepoint() {
    if (released_) return;
    try {
      tx_.exec("ROLLBACK TO SAVEPOINT " + name_ + "; RELEASE SAVEPOINT " + name_);
    } catch (...) {
      // The connection is gone; the caller's next statement reports that.
    }
  }
  Savepoint(const Savepoint&) = delete;
  Savepoint& operator=(const Savepoint&) = delete;

  // Keeps what was done since the savepoint as part of the enclosing transaction.
  void release() {
    tx_.exec("RELEASE SAVEPOINT " + name_);
    released_ = true;
  }

 private:
  pqxx::transaction_base& tx_;
  std::string name_;
  bool released_ = false;
};

}  // namespace mdsync::store
