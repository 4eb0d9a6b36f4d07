// A SQL transaction as a scope: BEGIN when made, COMMIT on commit(), ROLLBACK
// when left without one (fn threw, or the COMMIT itself failed). `exec` runs
// one plain statement on the transaction's connection.
#pragma once

#include <exception>
#include <functional>
#include <string>

namespace llmproxy::storage::sql {

class Transaction {
 public:
  using Exec = std::function<void(const std::string&)>;

  Transaction(Exec exec, const std::string& begin) : exec_(std::move(exec)) { exec_(begin); }
  ~Transaction() {
    if (done_) return;
    try {
      exec_("ROLLBACK");
    } catch (const std::exception&) {
      // a dead connection rolled back on its own; the failure that brought us
      // here is the one to report
    }
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void commit() {
    exec_("COMMIT");
    done_ = true;
  }

 private:
  Exec exec_;
  bool done_ = false;
};

}  // namespace llmproxy::storage::sql
