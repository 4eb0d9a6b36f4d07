#include "storage/sqlite/sqlite_store.h"

#include <sqlite3.h>

#include "storage/mappers.h"
#include "storage/sql/transaction.h"
#include "storage/sqlite/driver.h"

namespace llmproxy::storage {

using sqlite::Statement;

SqliteStore::SqliteStore(std::string path, crypto::SecretBox box)
    : SqlStore(box, sql::Dialect{.name = "SQLite",
                                 .placeholder = '?',
                                 .byte_order = "",
                                 .day_of_ts = "strftime('%Y-%m-%d', ts / 1000, 'unixepoch')",
                                 .assignment = "CAST(assignment_id AS TEXT)"}),
      path_(std::move(path)) {
  int rc =
      sqlite3_open_v2(path_.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw storage_error("cannot open SQLite database " + path_ + ": " + msg);
  }
  try {
    // The busy timeout makes a writer wait for another process's write lock
    // instead of failing; WAL lets readers (serve) run beside a writer (CLI).
    sqlite3_busy_timeout(db_, 5000);
    exec("PRAGMA journal_mode = WAL");
    exec("PRAGMA synchronous = NORMAL");
    exec("PRAGMA foreign_keys = ON");
    sqlite::register_percentile(db_, path_);
    std::lock_guard lock(mu_);
    sqlite::migrate(db_, path_);
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

SqliteStore::~SqliteStore() {
  sqlite3_close(db_);
}

void SqliteStore::exec(const std::string& sql) {
  sqlite::exec(db_, sql, path_);
}

std::int64_t SqliteStore::run(const std::string& sql, const std::vector<Value>& params,
                              const EachRow& each) {
  std::lock_guard lock(mu_);
  Statement st(db_, sql);
  st.bind_all(params);
  while (st.step()) {
    if (each) each(st);
  }
  return sqlite3_changes(db_);
}

int SqliteStore::schema_version() {
  std::int64_t version = 0;
  run("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", {},
      [&](const sql::RowReader& r) { version = r.i64(0); });
  return static_cast<int>(version);
}

bool SqliteStore::ping() {
  try {
    bool answered = false;
    run("SELECT 1 FROM meta LIMIT 1", {}, [&](const sql::RowReader&) { answered = true; });
    return answered;
  } catch (const Error&) {
    return false;
  }
}

void SqliteStore::transaction(const std::function<void()>& fn) {
  std::lock_guard lock(mu_);
  if (tx_depth_ > 0) {  // join the outer transaction
    ++tx_depth_;
    try {
      fn();
    } catch (...) {
      --tx_depth_;
      throw;
    }
    --tx_depth_;
    return;
  }
  sql::Transaction tx([&](const std::string& s) { exec(s); }, "BEGIN IMMEDIATE");
  tx_depth_ = 1;
  try {
    fn();
  } catch (...) {
    tx_depth_ = 0;
    throw;
  }
  tx_depth_ = 0;
  tx.commit();
}

void SqliteStore::bump_config_version() {
  run("UPDATE meta SET value = value + 1 WHERE key = 'config_version'", {}, nullptr);
}

void SqliteStore::read_consistently(const std::function<std::int64_t()>& read) {
  // One read transaction so that the parts agree with each other and the
  // version; inside a caller's transaction, that one already gives this.
  std::lock_guard lock(mu_);
  if (tx_depth_ > 0) {
    read();
    return;
  }
  sql::Transaction tx([&](const std::string& s) { exec(s); }, "BEGIN");
  read();
  tx.commit();
}

void SqliteStore::insert_usage(std::span<const UsageRecord> records) {
  if (records.empty()) return;
  std::lock_guard lock(mu_);
  // Multi-row INSERTs: one statement execution (and one AUTOINCREMENT
  // bookkeeping write) per kRowsPerInsert records instead of per record.
  constexpr std::size_t kRowsPerInsert = 64;
  const Fields shape = usage_fields(records.front());
  auto insert_sql = [&](std::size_t rows) {
    std::string cols, row;
    for (const Field& f : shape.list()) {
      cols += cols.empty() ? "" : ", ";
      cols += f.column;
      row += row.empty() ? "(?" : ",?";
    }
    row += ")";
    std::string sql = "INSERT INTO usage_records (" + cols + ") VALUES ";
    for (std::size_t i = 0; i < rows; ++i) sql += i ? "," + row : row;
    return sql;
  };
  auto insert = [&](Statement& st, std::span<const UsageRecord> rows) {
    int base = 0;
    for (const UsageRecord& r : rows) {
      // (The usage writer runs for every request: no second copy of the values.)
      Fields fields = usage_fields(r);
      st.bind_all(fields, base);
      base += static_cast<int>(fields.list().size());
    }
    st.run();
    st.reset();
  };
  transaction([&] {
    std::size_t full = records.size() / kRowsPerInsert * kRowsPerInsert;
    if (full) {
      Statement st(db_, insert_sql(kRowsPerInsert));
      for (std::size_t at = 0; at < full; at += kRowsPerInsert)
        insert(st, records.subspan(at, kRowsPerInsert));
    }
    if (full < records.size()) {
      Statement st(db_, insert_sql(records.size() - full));
      insert(st, records.subspan(full));
    }
  });
}

std::vector<UsageGroup> SqliteStore::aggregate_usage(const UsageQuery& q, UsageGroupBy by) {
  const char* key = dialect().group_key(by);
  std::vector<Value> params;
  std::string sql = std::string("SELECT ") + key +
                    " AS g, COUNT(*), SUM(status >= 400), SUM(prompt_tokens), "
                    "SUM(completion_tokens), SUM(cost), AVG(latency_ms), "
                    "percentile_nearest_rank(latency_ms, 50), "
                    "percentile_nearest_rank(latency_ms, 95), "
                    "percentile_nearest_rank(latency_ms, 99) FROM usage_records " +
                    dialect().usage_where(q, params) + " GROUP BY g ORDER BY g";
  std::vector<UsageGroup> out;
  run(sql, params, [&](const sql::RowReader& r) {
    out.push_back(UsageGroup{r.text(0), r.i64(1), r.i64(2), r.i64(3), r.i64(4), r.real(5),
                             r.real(6), r.real(7), r.real(8), r.real(9)});
  });
  return out;
}

}  // namespace llmproxy::storage
