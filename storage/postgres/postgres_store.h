// The PostgreSQL backend, through libpq. Several threads may use one store at
// once: it keeps a small pool of connections, each with its own prepared
// statements, and binds a connection to the calling thread for the length of
// a transaction (so nested calls on that thread join it). Configuration
// changes bump meta.config_version and send NOTIFY llm_proxy_config in the same
// transaction; wait_for_change() LISTENs on a connection of its own.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "storage/sql/sql_store.h"

namespace llmproxy::storage {

namespace pg {
class Conn;
class Pool;
class Rows;
class Params;
}  // namespace pg

class PostgresStore final : public sql::SqlStore {
 public:
  // conninfo is what libpq takes: a postgres:// or postgresql:// URL or a
  // "host=… dbname=…" string. Connects and applies missing migrations. Throws
  // kInvalid for a malformed conninfo, kStorage when the server cannot be
  // reached; no message ever contains the password.
  PostgresStore(const std::string& conninfo, crypto::SecretBox box);
  ~PostgresStore() override;
  PostgresStore(const PostgresStore&) = delete;
  PostgresStore& operator=(const PostgresStore&) = delete;

  std::string_view backend() const override { return "postgres"; }
  std::string describe() const override { return describe_; }
  int schema_version() override;
  bool ping() override;
  void transaction(const std::function<void()>& fn) override;
  bool wait_for_change(std::chrono::milliseconds timeout) override;
  void interrupt_wait() override;

  void insert_usage(std::span<const UsageRecord> records) override;
  std::vector<UsageGroup> aggregate_usage(const UsageQuery& q, UsageGroupBy by) override;

  // The NOTIFY channel configuration changes are announced on; the payload is
  // the new config_version.
  static constexpr const char* kNotifyChannel = "llm_proxy_config";

 protected:
  std::int64_t run(const std::string& sql, const std::vector<Value>& params,
                   const EachRow& each) override;
  void bump_config_version() override;
  void read_consistently(const std::function<std::int64_t()>& read) override;

 private:
  class Lease;

  // Runs fn in a transaction begun with begin_sql, or inside the transaction
  // this thread already has on this store.
  void in_transaction(const char* begin_sql, const std::function<void()>& fn);
  // Runs one prepared statement on this thread's transaction connection or
  // on a pooled one.
  pg::Rows query(const std::string& sql, const pg::Params& params);

  std::string describe_;
  std::vector<std::string> passwords_;  // redacted from every message
  std::unique_ptr<pg::Pool> pool_;

  // wait_for_change's LISTEN connection, used by one waiter at a time.
  std::mutex listen_mu_;
  std::unique_ptr<pg::Conn> listen_;
  int wake_fd_ = -1;  // eventfd that interrupt_wait() signals
};

}  // namespace llmproxy::storage
