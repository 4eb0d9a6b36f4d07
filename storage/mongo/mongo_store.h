// The MongoDB backend, through libmongoc/libbson. One client per store, used
// under a mutex (libmongoc clients are not thread-safe). Objects keep the
// integer ids the rest of the program uses: `_id` is taken from a counter
// document in `meta`, incremented with findAndModify ($inc, upsert).
//
// Multi-document changes (a cascading delete, a caller's transaction) run in a
// server transaction when the deployment supports them (a replica set or a
// sharded cluster with sessions). On a standalone server they are written in
// a safe order — dependents created last, deleted first, the config version
// bumped last — and transaction() keeps an undo journal, so a failure inside
// fn puts back what fn had written (other clients may see the writes in the
// meantime: a standalone has no isolation to offer) and, if fn had bumped the
// config version, bumps it once more, so that a reader which loaded the
// writes before they were taken back reloads.
//
// wait_for_change() watches the config version document through a change
// stream, on a client of its own, where the deployment has change streams
// (a replica set or a sharded cluster); a standalone server refuses them, and
// serve then polls.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "storage/store_base.h"

namespace llmproxy::storage {

namespace mongo {
struct Client;
struct Watch;
}  // namespace mongo

class MongoStore final : public StoreBase {
 public:
  // url: mongodb://… or mongodb+srv://…; the database is the URL's path
  // (default llm_proxy). Connects and applies missing migrations. Throws
  // kInvalid for a malformed URL, kStorage when the server cannot be reached;
  // no message ever contains the password.
  MongoStore(const std::string& url, crypto::SecretBox box);
  ~MongoStore() override;
  MongoStore(const MongoStore&) = delete;
  MongoStore& operator=(const MongoStore&) = delete;

  std::string_view backend() const override { return "mongodb"; }
  std::string describe() const override { return describe_; }
  int schema_version() override;
  bool ping() override;
  void transaction(const std::function<void()>& fn) override;
  std::int64_t config_version() override;
  bool wait_for_change(std::chrono::milliseconds timeout) override;
  void interrupt_wait() override;

  void insert_usage(std::span<const UsageRecord> records) override;
  std::vector<UsageRecord> list_usage(const UsageQuery& q) override;
  std::vector<UsageGroup> aggregate_usage(const UsageQuery& q, UsageGroupBy by) override;

  // True when multi-document changes run in server transactions (replica set
  // or sharded cluster); false on a standalone (safe order + undo journal).
  bool uses_server_transactions() const;

 protected:
  Id insert_row(const Table& table, const Fields& fields) override;
  bool update_row(const Table& table, Id id, const Fields& fields) override;
  std::int64_t delete_rows(const Table& table, const char* column, Id id) override;
  void select_rows(const Table& table, const Match& where, const Order& order,
                   const RowFn& each) override;
  void bump_config_version() override;
  void read_consistently(const std::function<std::int64_t()>& read) override;
  // No foreign keys: StoreBase checks references and cascades deletes.
  bool enforces_references() const override { return false; }

 private:
  // Waits until `deadline` or interrupt_wait(); true when interrupted.
  bool sleep_until(std::chrono::steady_clock::time_point deadline);

  std::unique_ptr<mongo::Client> db_;
  std::string describe_;
  std::recursive_mutex mu_;

  // wait_for_change's change stream, used by one waiter at a time.
  std::mutex watch_mu_;
  std::unique_ptr<mongo::Watch> watch_;
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  bool wake_ = false;  // interrupt_wait() was called
};

}  // namespace llmproxy::storage
