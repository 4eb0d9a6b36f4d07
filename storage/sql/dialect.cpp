#include "storage/sql/dialect.h"

namespace llmproxy::storage::sql {

std::string Dialect::insert(const Table& t, const Fields& f) const {
  std::string cols, params;
  std::size_t n = 0;
  for (const Field& field : f.list()) {
    if (n) {
      cols += ", ";
      params += ", ";
    }
    cols += field.column;
    params += param(++n);
  }
  return std::string("INSERT INTO ") + t.name + " (" + cols + ") VALUES (" + params +
         ") RETURNING id";
}

std::string Dialect::update(const Table& t, const Fields& f) const {
  std::string sql = std::string("UPDATE ") + t.name + " SET ";
  std::size_t n = 0;
  for (const Field& field : f.list()) {
    if (n) sql += ", ";
    sql += std::string(field.column) + " = " + param(++n);
  }
  return sql + " WHERE id = " + param(n + 1);
}

std::string Dialect::remove(const Table& t, const char* column) const {
  return std::string("DELETE FROM ") + t.name + " WHERE " + column + " = " + param(1);
}

std::string Dialect::select_from(const Table& t) const {
  std::string sql = "SELECT ";
  for (std::size_t i = 0; i < t.columns.size(); ++i) {
    if (i) sql += ", ";
    sql += t.columns[i];
  }
  return sql + " FROM " + t.name;
}

std::string Dialect::select(const Table& t, const Match& where, const Order& order) const {
  std::string sql = select_from(t);
  if (where.column) sql += std::string(" WHERE ") + where.column + " = " + param(1);
  sql += std::string(" ORDER BY ") + order.column;
  if (order.bytes) sql += byte_order;
  return sql;
}

const char* Dialect::group_key(UsageGroupBy by) const {
  switch (by) {
    case UsageGroupBy::kDay:
      return day_of_ts;
    case UsageGroupBy::kModel:
      return "model";
    case UsageGroupBy::kKey:
      return "vkey_name";
    case UsageGroupBy::kConnection:
      return "conn_name";
    case UsageGroupBy::kAssignment:
      return assignment;
  }
  return "model";
}

std::string Dialect::usage_where(const UsageQuery& q, std::vector<Value>& params) const {
  std::string sql;
  auto add = [&](const char* cond, std::int64_t v) {
    sql += sql.empty() ? "WHERE " : " AND ";
    params.emplace_back(v);
    sql += cond + param(params.size());
  };
  if (q.vkey_id) add("vkey_id = ", *q.vkey_id);
  if (q.since) add("ts >= ", *q.since);
  if (q.until) add("ts < ", *q.until);
  return sql;
}

std::vector<Value> values(const Fields& f) {
  std::vector<Value> out;
  out.reserve(f.list().size());
  for (const Field& field : f.list()) out.push_back(field.value);
  return out;
}

}  // namespace llmproxy::storage::sql
