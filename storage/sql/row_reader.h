// One row of a SQL result by 0-based column index: what the SQLite and
// PostgreSQL drivers implement, and the adapter that lets the shared mappers
// (storage/mappers.h) read it by column name.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "storage/rows.h"

namespace llmproxy::storage::sql {

class RowReader {
 public:
  virtual ~RowReader() = default;
  virtual bool is_null(int column) const = 0;
  virtual std::int64_t i64(int column) const = 0;
  virtual double real(int column) const = 0;
  virtual std::string text(int column) const = 0;
  virtual bool boolean(int column) const = 0;
};

// A row selected with exactly `table`'s columns, in that order.
class NamedRow final : public FieldReader {
 public:
  NamedRow(const Table& table, const RowReader& row) : table_(table), row_(row) {}

  std::int64_t i64(std::string_view c) const override { return row_.i64(index(c)); }
  std::optional<std::int64_t> opt_i64(std::string_view c) const override {
    int i = index(c);
    return row_.is_null(i) ? std::nullopt : std::optional(row_.i64(i));
  }
  double real(std::string_view c) const override { return row_.real(index(c)); }
  std::optional<double> opt_real(std::string_view c) const override {
    int i = index(c);
    return row_.is_null(i) ? std::nullopt : std::optional(row_.real(i));
  }
  std::string text(std::string_view c) const override { return row_.text(index(c)); }
  bool boolean(std::string_view c) const override { return row_.boolean(index(c)); }

 private:
  int index(std::string_view column) const {
    const auto& cols = table_.columns;
    auto it = std::find(cols.begin(), cols.end(), column);
    if (it == cols.end())
      throw storage_error("no column " + std::string(column) + " in " + table_.name);
    return static_cast<int>(it - cols.begin());
  }

  const Table& table_;
  const RowReader& row_;
};

}  // namespace llmproxy::storage::sql
