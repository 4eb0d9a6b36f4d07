// The embedded default backend. One SQLite connection per store, in WAL mode
// with a busy timeout so that the CLI can write while `serve` reads. Used
// under a mutex: one connection serves one caller at a time.
#pragma once

#include <mutex>
#include <string>

#include "storage/sql/sql_store.h"

struct sqlite3;

namespace llmproxy::storage {

class SqliteStore final : public sql::SqlStore {
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

  void insert_usage(std::span<const UsageRecord> records) override;
  std::vector<UsageGroup> aggregate_usage(const UsageQuery& q, UsageGroupBy by) override;

 protected:
  std::int64_t run(const std::string& sql, const std::vector<Value>& params,
                   const EachRow& each) override;
  void bump_config_version() override;
  void read_consistently(const std::function<std::int64_t()>& read) override;

 private:
  void exec(const std::string& sql);

  std::string path_;
  sqlite3* db_ = nullptr;
  std::recursive_mutex mu_;
  int tx_depth_ = 0;
};

}  // namespace llmproxy::storage
