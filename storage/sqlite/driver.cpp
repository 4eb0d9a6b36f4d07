#include "storage/sqlite/driver.h"

#include <sqlite3.h>

#include <new>

#include "storage/percentile.h"

namespace llmproxy::storage::sqlite {

Statement::Statement(sqlite3* db, std::string_view sql) : db_(db) {
  if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &st_, nullptr) !=
      SQLITE_OK) {
    throw storage_error(std::string("SQLite: ") + sqlite3_errmsg(db));
  }
}

Statement::~Statement() {
  sqlite3_finalize(st_);
}

void Statement::bind(int i, const Value& v) {
  int at = i + 1;
  if (const auto* n = std::get_if<std::int64_t>(&v)) {
    sqlite3_bind_int64(st_, at, *n);
  } else if (const auto* d = std::get_if<double>(&v)) {
    sqlite3_bind_double(st_, at, *d);
  } else if (const auto* s = std::get_if<std::string>(&v)) {
    sqlite3_bind_text(st_, at, s->data(), static_cast<int>(s->size()), SQLITE_TRANSIENT);
  } else if (const auto* b = std::get_if<bool>(&v)) {
    sqlite3_bind_int64(st_, at, *b ? 1 : 0);
  } else {
    sqlite3_bind_null(st_, at);
  }
}

void Statement::bind_all(const std::vector<Value>& params, int first) {
  for (const Value& v : params) bind(first++, v);
}

void Statement::bind_all(const Fields& fields, int first) {
  for (const Field& f : fields.list()) bind(first++, f.value);
}

bool Statement::step() {
  int rc = sqlite3_step(st_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  std::string msg = sqlite3_errmsg(db_);
  int ext = sqlite3_extended_errcode(db_);
  sqlite3_reset(st_);
  if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
    throw UniqueViolation(msg, msg);
  if ((ext & 0xff) == SQLITE_CONSTRAINT) throw invalid(msg);
  throw storage_error("SQLite: " + msg);
}

void Statement::reset() {
  sqlite3_reset(st_);
  sqlite3_clear_bindings(st_);
}

bool Statement::is_null(int c) const {
  return sqlite3_column_type(st_, c) == SQLITE_NULL;
}
std::int64_t Statement::i64(int c) const {
  return sqlite3_column_int64(st_, c);
}
double Statement::real(int c) const {
  return sqlite3_column_double(st_, c);
}

std::string Statement::text(int c) const {
  auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, c));
  return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(st_, c))) : "";
}

void exec(sqlite3* db, const std::string& sql, const std::string& where) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    throw storage_error("SQLite (" + where + "): " + msg);
  }
}

namespace {

// NULL values are skipped; NULL for a group without values.
struct PercentileState {
  std::vector<double> values;
  unsigned p = 0;
};

// The aggregate context holds a pointer to the state (SQLite zero-fills it);
// xFinal, which SQLite calls once for every context it allocated, frees it.
void percentile_step(sqlite3_context* ctx, int, sqlite3_value** argv) {
  auto* slot =
      static_cast<PercentileState**>(sqlite3_aggregate_context(ctx, sizeof(PercentileState*)));
  if (!slot) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  PercentileState*& state = *slot;
  try {
    if (!state) {
      std::int64_t p = sqlite3_value_int64(argv[1]);
      if (p <= 0 || p > 100) {
        sqlite3_result_error(ctx, "percentile_nearest_rank: p must be in 1..100", -1);
        return;
      }
      state = new PercentileState{{}, static_cast<unsigned>(p)};
    }
    if (sqlite3_value_type(argv[0]) != SQLITE_NULL)
      state->values.push_back(sqlite3_value_double(argv[0]));
  } catch (const std::bad_alloc&) {
    sqlite3_result_error_nomem(ctx);
  }
}

void percentile_final(sqlite3_context* ctx) {
  // 0 bytes: no allocation when step never ran (an empty group).
  auto* slot = static_cast<PercentileState**>(sqlite3_aggregate_context(ctx, 0));
  PercentileState* state = slot ? *slot : nullptr;
  if (!state || state->values.empty()) {
    sqlite3_result_null(ctx);
  } else {
    sqlite3_result_double(ctx, percentile_nearest_rank(state->values, state->p));
  }
  delete state;
  if (slot) *slot = nullptr;
}

}  // namespace

void register_percentile(sqlite3* db, const std::string& where) {
  if (sqlite3_create_function_v2(db, "percentile_nearest_rank", 2,
                                 SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr, nullptr,
                                 percentile_step, percentile_final, nullptr) != SQLITE_OK) {
    throw storage_error("SQLite (" + where + "): " + sqlite3_errmsg(db));
  }
}

}  // namespace llmproxy::storage::sqlite
