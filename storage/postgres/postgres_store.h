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

#include "storage/store.h"

namespace llmproxy::storage {

namespace pg {
class Conn;
class Pool;
class Rows;
class Params;
}  // namespace pg

class PostgresStore final : public Store {
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
  std::int64_t config_version() override;
  ConfigData load_config() override;
  bool wait_for_change(std::chrono::milliseconds timeout) override;
  void interrupt_wait() override;

  Id insert_connection(const Connection& c) override;
  void update_connection(const Connection& c) override;
  bool delete_connection(Id id) override;
  std::optional<Connection> get_connection(Id id) override;
  std::optional<Connection> find_connection(std::string_view name) override;
  std::vector<Connection> list_connections() override;

  Id insert_model(const ProviderModel& m) override;
  void update_model(const ProviderModel& m) override;
  bool delete_model(Id id) override;
  std::optional<ProviderModel> get_model(Id id) override;
  std::optional<ProviderModel> find_model(std::string_view name) override;
  std::vector<ProviderModel> list_models(std::optional<Id> conn_id) override;

  Id insert_vkey(const VirtualKey& k) override;
  void update_vkey(const VirtualKey& k) override;
  bool delete_vkey(Id id) override;
  std::optional<VirtualKey> get_vkey(Id id) override;
  std::optional<VirtualKey> find_vkey(std::string_view name) override;
  std::optional<VirtualKey> find_vkey_by_hash(std::string_view key_hash) override;
  std::vector<VirtualKey> list_vkeys() override;

  Id insert_assignment(const Assignment& a) override;
  void update_assignment(const Assignment& a) override;
  bool delete_assignment(Id id) override;
  std::optional<Assignment> get_assignment(Id id) override;
  std::vector<Assignment> list_assignments(std::optional<Id> vkey_id) override;

  Id insert_admin_user(const AdminUser& u) override;
  void update_admin_user(const AdminUser& u) override;
  bool delete_admin_user(Id id) override;
  std::optional<AdminUser> find_admin_user(std::string_view username) override;
  std::vector<AdminUser> list_admin_users() override;

  void insert_usage(std::span<const UsageRecord> records) override;
  std::vector<UsageRecord> list_usage(const UsageQuery& q) override;
  std::vector<UsageGroup> aggregate_usage(const UsageQuery& q, UsageGroupBy by) override;

  // The NOTIFY channel configuration changes are announced on; the payload is
  // the new config_version.
  static constexpr const char* kNotifyChannel = "llm_proxy_config";

 private:
  class Lease;

  void migrate();
  // Runs fn in a transaction begun with begin_sql, or inside the transaction
  // this thread already has on this store.
  void in_transaction(const char* begin_sql, const std::function<void()>& fn);
  // Runs a configuration write and the version bump (with its NOTIFY)
  // atomically.
  template <class Fn>
  auto config_write(Fn&& fn);
  void bump_config_version(pg::Conn& c);
  // Runs one prepared statement on this thread's transaction connection or
  // on a pooled one.
  pg::Rows query(const std::string& sql, const pg::Params& params);

  crypto::SecretBox box_;
  std::string describe_;
  std::vector<std::string> passwords_;  // redacted from every message
  std::unique_ptr<pg::Pool> pool_;

  // wait_for_change's LISTEN connection, used by one waiter at a time.
  std::mutex listen_mu_;
  std::unique_ptr<pg::Conn> listen_;
  int wake_fd_ = -1;  // eventfd that interrupt_wait() signals
};

}  // namespace llmproxy::storage
