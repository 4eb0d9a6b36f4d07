#include "storage/sql/sql_store.h"

#include "storage/mappers.h"

namespace llmproxy::storage::sql {

std::int64_t SqlStore::config_version() {
  std::optional<std::int64_t> version;
  run("SELECT value FROM meta WHERE key = 'config_version'", {},
      [&](const RowReader& r) { version = r.i64(0); });
  if (!version)
    throw storage_error(std::string(dialect_.name) + ": meta.config_version is missing");
  return *version;
}

Id SqlStore::insert_row(const Table& table, const Fields& fields) {
  Id id = 0;
  run(dialect_.insert(table, fields), values(fields), [&](const RowReader& r) { id = r.i64(0); });
  return id;
}

bool SqlStore::update_row(const Table& table, Id id, const Fields& fields) {
  std::vector<Value> params = values(fields);
  params.emplace_back(id);
  return run(dialect_.update(table, fields), params, nullptr) > 0;
}

std::int64_t SqlStore::delete_rows(const Table& table, const char* column, Id id) {
  return run(dialect_.remove(table, column), {Value(id)}, nullptr);
}

void SqlStore::select_rows(const Table& table, const Match& where, const Order& order,
                           const RowFn& each) {
  std::vector<Value> params;
  if (where.column) params.push_back(where.value);
  run(dialect_.select(table, where, order), params,
      [&](const RowReader& r) { each(NamedRow(table, r)); });
}

std::vector<UsageRecord> SqlStore::list_usage(const UsageQuery& q) {
  std::vector<Value> params;
  std::string sql = dialect_.select_from(kUsageRecords) + " " + dialect_.usage_where(q, params) +
                    " ORDER BY ts DESC, id DESC";
  if (q.limit) {
    params.emplace_back(static_cast<std::int64_t>(q.limit));
    sql += " LIMIT " + dialect_.param(params.size());
  }
  std::vector<UsageRecord> out;
  run(sql, params,
      [&](const RowReader& r) { out.push_back(read_usage(NamedRow(kUsageRecords, r))); });
  return out;
}

}  // namespace llmproxy::storage::sql
