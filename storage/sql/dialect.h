// Statement text for the rows the common layer reads and writes, in one SQL
// dialect: SQLite numbers its parameters ?1, ?2, …, PostgreSQL $1, $2, …
#pragma once

#include <string>
#include <vector>

#include "storage/rows.h"
#include "storage/store.h"

namespace llmproxy::storage::sql {

struct Dialect {
  const char* name;        // "SQLite", "PostgreSQL": for messages
  char placeholder;        // '?' or '$'
  const char* byte_order;  // what ORDER BY appends to compare text byte for byte
  const char* day_of_ts;   // ts (epoch ms) as its UTC day, YYYY-MM-DD
  const char* assignment;  // assignment_id as text

  // The n-th parameter (1-based).
  std::string param(std::size_t n) const { return placeholder + std::to_string(n); }

  // INSERT INTO t (a, b) VALUES (?1, ?2) RETURNING id
  std::string insert(const Table& t, const Fields& f) const;
  // UPDATE t SET a = ?1, b = ?2 WHERE id = ?3 (the id is the last parameter)
  std::string update(const Table& t, const Fields& f) const;
  // DELETE FROM t WHERE column = ?1
  std::string remove(const Table& t, const char* column) const;
  // SELECT <t's columns> FROM t
  std::string select_from(const Table& t) const;
  // SELECT <t's columns> FROM t [WHERE column = ?1] ORDER BY …
  std::string select(const Table& t, const Match& where, const Order& order) const;
  // What a usage aggregate groups by.
  const char* group_key(UsageGroupBy by) const;
  // "WHERE …" for a usage query (empty when it has no condition); appends
  // its parameters to params.
  std::string usage_where(const UsageQuery& q, std::vector<Value>& params) const;
};

// The values of f, in order, as statement parameters.
std::vector<Value> values(const Fields& f);

}  // namespace llmproxy::storage::sql
