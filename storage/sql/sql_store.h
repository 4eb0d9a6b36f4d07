// What SQLite and PostgreSQL share on top of StoreBase: the row primitives as
// statements in the backend's dialect, the config version in table `meta`,
// and the usage list. The schema's foreign keys enforce references and
// cascades. A backend supplies run(): one statement through its driver.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "storage/sql/dialect.h"
#include "storage/sql/row_reader.h"
#include "storage/store_base.h"

namespace llmproxy::storage::sql {

class SqlStore : public StoreBase {
 public:
  std::int64_t config_version() override;
  std::vector<UsageRecord> list_usage(const UsageQuery& q) override;

 protected:
  SqlStore(crypto::SecretBox box, Dialect dialect) : StoreBase(box), dialect_(dialect) {}

  using EachRow = std::function<void(const RowReader&)>;
  // Runs one statement with these parameters, hands each result row to
  // `each` (when given) and returns how many rows it changed. Unique
  // violations throw UniqueViolation, other constraint violations kInvalid.
  virtual std::int64_t run(const std::string& sql, const std::vector<Value>& params,
                           const EachRow& each) = 0;

  Id insert_row(const Table& table, const Fields& fields) override;
  bool update_row(const Table& table, Id id, const Fields& fields) override;
  std::int64_t delete_rows(const Table& table, const char* column, Id id) override;
  void select_rows(const Table& table, const Match& where, const Order& order,
                   const RowFn& each) override;
  bool enforces_references() const override { return true; }

  const Dialect& dialect() const { return dialect_; }

 private:
  Dialect dialect_;
};

}  // namespace llmproxy::storage::sql
