// The SQLite driver: prepared statements with typed binding and reading, plain
// scripts, and the one SQL function SQLite lacks (a nearest-rank percentile).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "storage/rows.h"
#include "storage/sql/row_reader.h"

struct sqlite3;
struct sqlite3_stmt;

namespace llmproxy::storage::sqlite {

// A prepared statement. Columns and parameters are 0-based here (SQLite binds
// from 1).
class Statement final : public sql::RowReader {
 public:
  Statement(sqlite3* db, std::string_view sql);
  ~Statement() override;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  void bind(int i, const Value& v);
  // Binds params to the parameters first, first + 1, ...
  void bind_all(const std::vector<Value>& params, int first = 0);
  // Binds the fields' values in order, without copying them out first.
  void bind_all(const Fields& fields, int first = 0);

  // Returns true while there is a row. Constraint violations become
  // UniqueViolation (unique) or kInvalid (foreign key, check) with SQLite's
  // own wording.
  bool step();
  void run() {
    while (step()) {
    }
  }
  void reset();

  bool is_null(int c) const override;
  std::int64_t i64(int c) const override;
  double real(int c) const override;
  std::string text(int c) const override;
  bool boolean(int c) const override { return i64(c) != 0; }

 private:
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

// Runs a script of statements without parameters or rows. `where` names the
// database in the message.
void exec(sqlite3* db, const std::string& sql, const std::string& where);

// percentile_nearest_rank(value, p): the aggregate behind UsageGroup's latency
// percentiles (storage/percentile.h).
void register_percentile(sqlite3* db, const std::string& where);

// Applies the migrations (storage/sqlite/migrations.cpp) not yet applied, up
// to version `up_to` (the tests build a database of an earlier schema with it,
// to upgrade).
void migrate(sqlite3* db, const std::string& where, std::size_t up_to = SIZE_MAX);

}  // namespace llmproxy::storage::sqlite
