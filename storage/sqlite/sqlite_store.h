// The embedded default backend. One SQLite connection per store, in WAL mode
// with a busy timeout so that the CLI can write while `serve` reads.
#pragma once

#include <mutex>
#include <string>

#include "storage/store.h"

struct sqlite3;

namespace llmproxy::storage {

class SqliteStore final : public Store {
 public:
  SqliteStore(std::string path, crypto::SecretBox box);
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  std::string_view backend() const override { return "sqlite"; }
  std::string describe() const override { return "sqlite:" + path_; }
  int schema_version() override;
  bool ping() override;
  void transaction(const std::function<void()>& fn) override;
  std::int64_t config_version() override;
  ConfigData load_config() override;

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

  class Statement;  // RAII prepared statement, defined in the .cpp

 private:
  void migrate();
  void exec(const char* sql);
  void bump_config_version();
  // Runs a config write and the version bump atomically.
  template <class Fn>
  auto config_write(Fn&& fn);

  std::string path_;
  crypto::SecretBox box_;
  sqlite3* db_ = nullptr;
  std::recursive_mutex mu_;
  int tx_depth_ = 0;
};

}  // namespace llmproxy::storage
