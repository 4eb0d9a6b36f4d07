#include "storage/sqlite/sqlite_store.h"

#include <sqlite3.h>

#include <array>
#include <new>
#include <vector>

#include "lib/domain/error.h"
#include "lib/domain/time.h"
#include "storage/percentile.h"
#include "storage/secrets.h"

namespace llmproxy::storage {

// Versioned schema. Each entry is applied once, in order, inside a transaction;
// never edit an entry that has shipped, append a new one.
static constexpr std::array<const char*, 4> kMigrations = {R"sql(
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
INSERT INTO meta (key, value) VALUES ('config_version', 1);

CREATE TABLE connections (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  name          TEXT NOT NULL UNIQUE,
  provider      TEXT NOT NULL,
  endpoint      TEXT NOT NULL DEFAULT '',
  api_version   TEXT NOT NULL DEFAULT '',
  region        TEXT NOT NULL DEFAULT '',
  access_key_id TEXT NOT NULL DEFAULT '',
  secrets       TEXT NOT NULL DEFAULT '',
  timeout_ms    INTEGER NOT NULL,
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL
);

CREATE TABLE models (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  name         TEXT NOT NULL UNIQUE,
  remote       TEXT NOT NULL,
  conn_id      INTEGER NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
  input_price  REAL,
  output_price REAL,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL
);
CREATE INDEX models_conn ON models(conn_id);

CREATE TABLE vkeys (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  name       TEXT NOT NULL UNIQUE,
  key_hash   TEXT NOT NULL UNIQUE,
  key_hint   TEXT NOT NULL,
  enabled    INTEGER NOT NULL DEFAULT 1,
  expires_at INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE assignments (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  vkey_id      INTEGER NOT NULL REFERENCES vkeys(id) ON DELETE CASCADE,
  conn_id      INTEGER REFERENCES connections(id) ON DELETE CASCADE,
  model_id     INTEGER REFERENCES models(id) ON DELETE CASCADE,
  tps          REAL,
  rpm          INTEGER,
  token_limit  INTEGER,
  token_window TEXT NOT NULL DEFAULT 'day',
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL,
  CHECK ((conn_id IS NULL) <> (model_id IS NULL))
);
CREATE INDEX assignments_vkey ON assignments(vkey_id);
CREATE INDEX assignments_conn ON assignments(conn_id);
CREATE INDEX assignments_model ON assignments(model_id);

CREATE TABLE usage_records (
  id                INTEGER PRIMARY KEY AUTOINCREMENT,
  ts                INTEGER NOT NULL,
  request_id        TEXT NOT NULL,
  vkey_id           INTEGER,
  vkey_name         TEXT NOT NULL DEFAULT '',
  assignment_id     INTEGER,
  model             TEXT NOT NULL DEFAULT '',
  conn_id           INTEGER,
  conn_name         TEXT NOT NULL DEFAULT '',
  status            INTEGER NOT NULL,
  latency_ms        REAL NOT NULL,
  ttft_ms           REAL,
  prompt_tokens     INTEGER NOT NULL DEFAULT 0,
  completion_tokens INTEGER NOT NULL DEFAULT 0,
  cost              REAL NOT NULL DEFAULT 0
);
CREATE INDEX usage_ts ON usage_records(ts);
CREATE INDEX usage_vkey_ts ON usage_records(vkey_id, ts);
CREATE INDEX usage_assignment_ts ON usage_records(assignment_id, ts);
)sql",
                                                            R"sql(
ALTER TABLE connections ADD COLUMN options TEXT NOT NULL DEFAULT '{}';
)sql",
                                                            R"sql(
-- No query selects by assignment (token windows are rebuilt from a ts range
-- grouped by assignment), and every index costs a b-tree insert per record.
DROP INDEX IF EXISTS usage_assignment_ts;
)sql",
                                                            R"sql(
-- The admin API's users. Not configuration: changes leave config_version alone.
CREATE TABLE admin_users (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  username      TEXT NOT NULL UNIQUE,
  role          TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL
);
)sql"};

// A prepared statement with typed binding and reading. Columns and parameters
// are 0-based here (SQLite binds from 1).
class SqliteStore::Statement {
 public:
  Statement(sqlite3* db, std::string_view sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &st_, nullptr) !=
        SQLITE_OK) {
      throw storage_error(std::string("SQLite: ") + sqlite3_errmsg(db));
    }
  }
  ~Statement() { sqlite3_finalize(st_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  template <class... Args>
  Statement& bind_all(const Args&... args) {
    return bind_from(0, args...);
  }
  // Binds args to the parameters first, first + 1, ...
  template <class... Args>
  Statement& bind_from(int first, const Args&... args) {
    int i = first;
    (bind(i++, args), ...);
    return *this;
  }
  void bind(int i, std::int64_t v) { sqlite3_bind_int64(st_, i + 1, v); }
  void bind(int i, int v) { sqlite3_bind_int64(st_, i + 1, v); }
  void bind(int i, bool v) { sqlite3_bind_int64(st_, i + 1, v ? 1 : 0); }
  void bind(int i, double v) { sqlite3_bind_double(st_, i + 1, v); }
  void bind(int i, std::string_view v) {
    sqlite3_bind_text(st_, i + 1, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void bind(int i, const std::string& v) { bind(i, std::string_view(v)); }
  void bind(int i, const char* v) { bind(i, std::string_view(v)); }
  void bind(int i, std::nullopt_t) { sqlite3_bind_null(st_, i + 1); }
  template <class T>
  void bind(int i, const std::optional<T>& v) {
    if (v) bind(i, *v);
    else sqlite3_bind_null(st_, i + 1);
  }

  // Returns true while there is a row. Constraint violations become kConflict
  // (unique) or kInvalid (foreign key, check) with SQLite's own wording.
  bool step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    std::string msg = sqlite3_errmsg(db_);
    int ext = sqlite3_extended_errcode(db_);
    sqlite3_reset(st_);
    if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY) throw conflict(msg);
    if ((ext & 0xff) == SQLITE_CONSTRAINT) throw invalid(msg);
    throw storage_error("SQLite: " + msg);
  }
  void run() {
    while (step()) {
    }
  }
  void reset() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }

  bool is_null(int c) { return sqlite3_column_type(st_, c) == SQLITE_NULL; }
  std::int64_t i64(int c) { return sqlite3_column_int64(st_, c); }
  double dbl(int c) { return sqlite3_column_double(st_, c); }
  std::string text(int c) {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, c));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(st_, c))) : "";
  }
  std::optional<std::int64_t> opt_i64(int c) {
    return is_null(c) ? std::nullopt : std::optional(i64(c));
  }
  std::optional<double> opt_dbl(int c) { return is_null(c) ? std::nullopt : std::optional(dbl(c)); }

 private:
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

using Statement = SqliteStore::Statement;

namespace {

constexpr const char* kConnectionCols =
    "id, name, provider, endpoint, api_version, region, access_key_id, secrets, timeout_ms, "
    "created_at, updated_at, options";
constexpr const char* kModelCols =
    "id, name, remote, conn_id, input_price, output_price, created_at, updated_at";
constexpr const char* kVkeyCols =
    "id, name, key_hash, key_hint, enabled, expires_at, created_at, updated_at";
constexpr const char* kAssignmentCols =
    "id, vkey_id, conn_id, model_id, tps, rpm, token_limit, token_window, created_at, updated_at";
constexpr const char* kAdminUserCols = "id, username, role, password_hash, created_at, updated_at";
constexpr const char* kUsageCols =
    "id, ts, request_id, vkey_id, vkey_name, assignment_id, model, conn_id, conn_name, status, "
    "latency_ms, ttft_ms, prompt_tokens, completion_tokens, cost";

std::string select(const char* cols, const char* table, std::string_view tail) {
  return std::string("SELECT ") + cols + " FROM " + table + " " + std::string(tail);
}

Connection read_connection(Statement& st, const crypto::SecretBox& box) {
  Connection c;
  c.id = st.i64(0);
  c.name = st.text(1);
  std::string provider = st.text(2);
  auto parsed = parse_provider(provider);
  if (!parsed) throw storage_error("connection '" + c.name + "' has unknown provider " + provider);
  c.provider = *parsed;
  c.endpoint = st.text(3);
  c.api_version = st.text(4);
  c.region = st.text(5);
  c.access_key_id = st.text(6);
  c.timeout_ms = st.i64(8);
  c.created_at = st.i64(9);
  c.updated_at = st.i64(10);
  c.options = st.text(11);
  open_connection_secrets(box, st.text(7), c);
  return c;
}

ProviderModel read_model(Statement& st) {
  ProviderModel m;
  m.id = st.i64(0);
  m.name = st.text(1);
  m.remote = st.text(2);
  m.conn_id = st.i64(3);
  m.input_price = st.opt_dbl(4);
  m.output_price = st.opt_dbl(5);
  m.created_at = st.i64(6);
  m.updated_at = st.i64(7);
  return m;
}

VirtualKey read_vkey(Statement& st) {
  VirtualKey k;
  k.id = st.i64(0);
  k.name = st.text(1);
  k.key_hash = st.text(2);
  k.key_hint = st.text(3);
  k.enabled = st.i64(4) != 0;
  k.expires_at = st.opt_i64(5);
  k.created_at = st.i64(6);
  k.updated_at = st.i64(7);
  return k;
}

Assignment read_assignment(Statement& st) {
  Assignment a;
  a.id = st.i64(0);
  a.vkey_id = st.i64(1);
  a.conn_id = st.opt_i64(2);
  a.model_id = st.opt_i64(3);
  a.limits.tps = st.opt_dbl(4);
  a.limits.rpm = st.opt_i64(5);
  a.limits.token_limit = st.opt_i64(6);
  a.limits.token_window = parse_token_window(st.text(7)).value_or(TokenWindow::kDay);
  a.created_at = st.i64(8);
  a.updated_at = st.i64(9);
  return a;
}

AdminUser read_admin_user(Statement& st) {
  AdminUser u;
  u.id = st.i64(0);
  u.username = st.text(1);
  std::string role = st.text(2);
  auto parsed = parse_admin_role(role);
  if (!parsed) throw storage_error("admin user '" + u.username + "' has unknown role " + role);
  u.role = *parsed;
  u.password_hash = st.text(3);
  u.created_at = st.i64(4);
  u.updated_at = st.i64(5);
  return u;
}

UsageRecord read_usage(Statement& st) {
  UsageRecord r;
  r.id = st.i64(0);
  r.ts = st.i64(1);
  r.request_id = st.text(2);
  r.vkey_id = st.opt_i64(3);
  r.vkey_name = st.text(4);
  r.assignment_id = st.opt_i64(5);
  r.model = st.text(6);
  r.conn_id = st.opt_i64(7);
  r.conn_name = st.text(8);
  r.status = static_cast<int>(st.i64(9));
  r.latency_ms = st.dbl(10);
  r.ttft_ms = st.opt_dbl(11);
  r.prompt_tokens = st.i64(12);
  r.completion_tokens = st.i64(13);
  r.cost = st.dbl(14);
  return r;
}

template <class T, class Reader>
std::vector<T> collect(Statement& st, Reader&& read) {
  std::vector<T> out;
  while (st.step()) out.push_back(read(st));
  return out;
}

template <class T>
std::optional<T> first(std::vector<T> v) {
  if (v.empty()) return std::nullopt;
  return std::move(v.front());
}

TimeMs stamp(TimeMs t, TimeMs now) { return t ? t : now; }

// Runs a write whose unique-constraint violation means `taken` (a message
// naming what is already in use) rather than SQLite's own wording.
void run_unique(Statement& st, const std::string& taken) {
  try {
    st.run();
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kConflict) throw conflict(taken);
    throw;
  }
}

// WHERE clause and parameters shared by list_usage and aggregate_usage.
struct UsageWhere {
  std::string sql;
  std::vector<std::int64_t> args;
};

UsageWhere usage_where(const UsageQuery& q) {
  UsageWhere w;
  auto add = [&](const char* cond, std::int64_t v) {
    w.sql += w.sql.empty() ? "WHERE " : " AND ";
    w.sql += cond;
    w.args.push_back(v);
  };
  if (q.vkey_id) add("vkey_id = ?", *q.vkey_id);
  if (q.since) add("ts >= ?", *q.since);
  if (q.until) add("ts < ?", *q.until);
  return w;
}

void bind_usage_where(Statement& st, const UsageWhere& w) {
  for (std::size_t i = 0; i < w.args.size(); ++i) st.bind(static_cast<int>(i), w.args[i]);
}

// percentile_nearest_rank(value, p): the aggregate behind UsageGroup's
// latency percentiles (storage/percentile.h); SQLite has no percentile of its
// own. NULL values are skipped; NULL for a group without values.
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

SqliteStore::SqliteStore(std::string path, crypto::SecretBox box)
    : path_(std::move(path)), box_(box) {
  int rc = sqlite3_open_v2(path_.c_str(), &db_,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
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
    if (sqlite3_create_function_v2(db_, "percentile_nearest_rank", 2,
                                   SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr, nullptr,
                                   percentile_step, percentile_final, nullptr) != SQLITE_OK) {
      throw storage_error("SQLite (" + path_ + "): " + sqlite3_errmsg(db_));
    }
    migrate();
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

SqliteStore::~SqliteStore() { sqlite3_close(db_); }

void SqliteStore::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw storage_error("SQLite (" + path_ + "): " + msg);
  }
}

void SqliteStore::migrate() {
  std::lock_guard lock(mu_);
  // BEGIN IMMEDIATE takes the write lock first, so two processes starting at
  // once apply each migration exactly once.
  exec("BEGIN IMMEDIATE");
  try {
    exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
    std::int64_t have = 0;
    {  // finalised before any migration runs: DROP fails under an open read
      Statement cur(db_, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
      cur.step();
      have = cur.i64(0);
    }
    for (std::size_t v = static_cast<std::size_t>(have); v < kMigrations.size(); ++v) {
      exec(kMigrations[v]);
      Statement(db_, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
          .bind_all(static_cast<std::int64_t>(v + 1), now_ms())
          .run();
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

int SqliteStore::schema_version() {
  std::lock_guard lock(mu_);
  Statement st(db_, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  st.step();
  return static_cast<int>(st.i64(0));
}

bool SqliteStore::ping() {
  std::lock_guard lock(mu_);
  try {
    Statement st(db_, "SELECT 1 FROM meta LIMIT 1");
    return st.step();
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
  exec("BEGIN IMMEDIATE");
  tx_depth_ = 1;
  try {
    fn();
    tx_depth_ = 0;
    exec("COMMIT");
  } catch (...) {
    tx_depth_ = 0;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void SqliteStore::bump_config_version() {
  Statement(db_, "UPDATE meta SET value = value + 1 WHERE key = 'config_version'").run();
}

template <class Fn>
auto SqliteStore::config_write(Fn&& fn) {
  using R = decltype(fn());
  if constexpr (std::is_void_v<R>) {
    transaction([&] {
      fn();
      bump_config_version();
    });
  } else {
    R result{};
    transaction([&] {
      result = fn();
      bump_config_version();
    });
    return result;
  }
}

std::int64_t SqliteStore::config_version() {
  std::lock_guard lock(mu_);
  Statement st(db_, "SELECT value FROM meta WHERE key = 'config_version'");
  if (!st.step()) throw storage_error("SQLite: meta.config_version is missing");
  return st.i64(0);
}

ConfigData SqliteStore::load_config() {
  ConfigData data;
  // One read transaction so that the parts agree with each other and the
  // version; inside a caller's transaction, that one already gives this.
  std::lock_guard lock(mu_);
  bool own = tx_depth_ == 0;
  if (own) exec("BEGIN");
  try {
    data.version = config_version();
    data.connections = list_connections();
    data.models = list_models(std::nullopt);
    data.vkeys = list_vkeys();
    data.assignments = list_assignments(std::nullopt);
    if (own) exec("COMMIT");
  } catch (...) {
    if (own) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  return data;
}

// ---- connections ----------------------------------------------------------

Id SqliteStore::insert_connection(const Connection& c) {
  std::lock_guard lock(mu_);
  TimeMs now = now_ms();
  return config_write([&] {
    Statement st(db_,
                 "INSERT INTO connections (name, provider, endpoint, api_version, region, "
                 "access_key_id, secrets, timeout_ms, created_at, updated_at, options) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    st.bind_all(c.name, to_string(c.provider), c.endpoint, c.api_version, c.region,
                c.access_key_id, seal_connection_secrets(box_, c), c.timeout_ms,
                stamp(c.created_at, now), stamp(c.updated_at, now), c.options);
    run_unique(st, "a connection named '" + c.name + "' already exists");
    return static_cast<Id>(sqlite3_last_insert_rowid(db_));
  });
}

void SqliteStore::update_connection(const Connection& c) {
  std::lock_guard lock(mu_);
  config_write([&] {
    Statement st(db_,
                 "UPDATE connections SET name = ?, provider = ?, endpoint = ?, api_version = ?, "
                 "region = ?, access_key_id = ?, secrets = ?, timeout_ms = ?, updated_at = ?, "
                 "options = ? WHERE id = ?");
    st.bind_all(c.name, to_string(c.provider), c.endpoint, c.api_version, c.region,
                c.access_key_id, seal_connection_secrets(box_, c), c.timeout_ms, now_ms(),
                c.options, c.id);
    run_unique(st, "a connection named '" + c.name + "' already exists");
    if (sqlite3_changes(db_) == 0) throw not_found("connection " + std::to_string(c.id));
  });
}

bool SqliteStore::delete_connection(Id id) {
  std::lock_guard lock(mu_);
  return config_write([&] {
    Statement(db_, "DELETE FROM connections WHERE id = ?").bind_all(id).run();
    return sqlite3_changes(db_) > 0;
  });
}

std::optional<Connection> SqliteStore::get_connection(Id id) {
  std::lock_guard lock(mu_);
  Statement st(db_, select(kConnectionCols, "connections", "WHERE id = ?"));
  st.bind_all(id);
  return first(collect<Connection>(st, [&](Statement& s) { return read_connection(s, box_); }));
}

std::optional<Connection> SqliteStore::find_connection(std::string_view name) {
  std::lock_guard lock(mu_);
  Statement st(db_, select(kConnectionCols, "connections", "WHERE name = ?"));
  st.bind_all(name);
  return first(collect<Connection>(st, [&](Statement& s) { return read_connection(s, box_); }));
}

std::vector<Connection> SqliteStore::list_connections() {
  std::lock_guard lock(mu_);
  Statement st(db_, select(kConnectionCols, "connections", "ORDER BY id"));
  return collect<Connection>(st, [&](Statement& s) { return read_connection(s, box_); });
}

// ---- models -----------------------------------------------------------------

Id SqliteStore::insert_model(const ProviderModel& m) {
  std::lock_guard lock(mu_);
  TimeMs now = now_ms();
  return config_write([&] {
    Statement st(db_,
                 "INSERT INTO models (name, remote, conn_id, input_price, output_price, "
                 "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)");
    st.bind_all(m.name, m.remote, m.conn_id, m.input_price, m.output_price,
                stamp(m.created_at, now), stamp(m.updated_at, now));
    run_unique(st, "a model named '" + m.name + "' already exists");
    return static_cast<Id>(sqlite3_last_insert_rowid(db_));
  });
}

void SqliteStore::update_model(const ProviderModel& m) {
  std::lock_guard lock(mu_);
  config_write([&] {
    Statement st(db_,
                 "UPDATE models SET name = ?, remote = ?, conn_id = ?, input_price = ?, "
                 "output_price = ?, updated_at = ? WHERE id = ?");
    st.bind_all(m.name, m.remote, m.conn_id, m.input_price, m.output_price, now_ms(), m.id);
    run_unique(st, "a model named '" + m.name + "' already exists");
    if (sqlite3_changes(db_) == 0) throw not_found("model " + std::to_string(m.id));
  });
}

bool SqliteStore::delete_model(Id id) {
  std::lock_guard lock(mu_);
  return config_write([&] {
    Statement(db_, "DELETE FROM models WHERE id = ?").bind_all(id).run();
    return sqlite3_changes(db_) > 0;
  });
}

std::optional<ProviderModel> SqliteStore::get_model(Id id) {
  std::lock_guard lock(mu_);
  Statement st(db_, select(kModelCols, "models", "WHERE id = ?"));
  st.bind_all(id);
  return first(collect<ProviderModel>(st, read_model));
}

std::optional<ProviderModel> SqliteStore::find_model(std::string_view name) {
  std::lock_guard lock(mu_);
  Statement st(db_, select(kModelCols, "models", "WHERE name = ?"));
  st.bind_all(name);
  return first(collect<ProviderModel>(st, read_model));
}

std::vector<ProviderModel> SqliteStore::list_models(std::optional<Id> conn_id) {
  std::lock_guard lock(mu_);
  Statement st(db_, select(kModelCols, "models", "WHERE (?1 IS NULL OR conn_id = ?1) ORDER BY id"));
  st.bind_all(conn_id);
  return collect<ProviderModel>(st, read_model);
}

// ---- virtual keys -------------------------------------------------------------

Id SqliteStore::insert_vkey(const VirtualKey& k) {
  std::lock_guard lock(mu_);
  TimeMs now = now_ms();
  return config_write([&] {
    if (find_vkey(k.name)) throw conflict("a virtual key named '" + k.name + "' already exists");
    Statement st(db_,
                 "INSERT INTO vkeys (name, key_hash, key_hint, enabled, expires_at, created_at, "
                 "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)");
    st.bind_all(k.name, k.key_hash, k.key_hint, k.enabled, k.expires_at, stamp(k.created_at, now),
                stamp(k.updated_at, now));
    run_unique(st, "that key is already in use");
    return static_cast<Id>(sqlite3_last_insert_rowid(db_));
  });
}

void SqliteStore::update_vkey(const VirtualKey& k) {
  std::lock_guard lock(mu_);
  config_write([&] {
    if (auto other = find_vkey(k.name); other && other->id != k.id)
      throw conflict("a virtual key named '" + k.name + "' already exists");
    Statement st(db_,
                 "UPDATE vkeys SET name = ?, key_hash = ?, key_hint = ?, enabled = ?, "
                 "expires_at = ?, updated_at = ? WHERE id = ?");
    st.bind_all(k.name, k.key_hash, k.key_hint, k.enabled, k.expires_at, now_ms(), k.id);
    run_unique(st, "that key is already in use");
    if (sqlite3_changes(db_) == 0) throw not_found("virtual key " + std::to_string(k.id));
  });
}

bool SqliteStore::delete_vkey(Id id) {
  std::lock_guard lock(mu_);
  return config_write([&] {
    Statement(db_, "DELETE FROM vkeys WHERE id = ?").bind_all(id).run();
    return sqlite3_changes(db_) > 0;
  });
}

std::optional<VirtualKey> SqliteStore::get_vkey(Id id) {
  std::lock_guard lock(mu_);
  Statement st(db_, select(kVkeyCols, "vkeys", "WHERE id = ?"));
  st.bind_all(id);
  return first(collect<VirtualKey>(st, read_vkey));
}

std::optional<VirtualKey> SqliteStore::find_vkey(std::string_view name) {
  std::lock_guard lock(mu_);
  Statement st(db_, select(kVkeyCols, "vkeys", "WHERE name = ?"));
  st.bind_all(name);
  return first(collect<VirtualKey>(st, read_vkey));
}

std::optional<VirtualKey> SqliteStore::find_vkey_by_hash(std::string_view key_hash) {
  std::lock_guard lock(mu_);
  Statement st(db_, select(kVkeyCols, "vkeys", "WHERE key_hash = ?"));
  st.bind_all(key_hash);
  return first(collect<VirtualKey>(st, read_vkey));
}

std::vector<VirtualKey> SqliteStore::list_vkeys() {
  std::lock_guard lock(mu_);
  Statement st(db_, select(kVkeyCols, "vkeys", "ORDER BY id"));
  return collect<VirtualKey>(st, read_vkey);
}

// ---- assignments ------------------------------------------------------------

Id SqliteStore::insert_assignment(const Assignment& a) {
  std::lock_guard lock(mu_);
  TimeMs now = now_ms();
  return config_write([&] {
    Statement st(db_,
                 "INSERT INTO assignments (vkey_id, conn_id, model_id, tps, rpm, token_limit, "
                 "token_window, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    st.bind_all(a.vkey_id, a.conn_id, a.model_id, a.limits.tps, a.limits.rpm,
                a.limits.token_limit, to_string(a.limits.token_window), stamp(a.created_at, now),
                stamp(a.updated_at, now));
    st.run();
    return static_cast<Id>(sqlite3_last_insert_rowid(db_));
  });
}

void SqliteStore::update_assignment(const Assignment& a) {
  std::lock_guard lock(mu_);
  config_write([&] {
    Statement st(db_,
                 "UPDATE assignments SET vkey_id = ?, conn_id = ?, model_id = ?, tps = ?, rpm = ?, "
                 "token_limit = ?, token_window = ?, updated_at = ? WHERE id = ?");
    st.bind_all(a.vkey_id, a.conn_id, a.model_id, a.limits.tps, a.limits.rpm,
                a.limits.token_limit, to_string(a.limits.token_window), now_ms(), a.id);
    st.run();
    if (sqlite3_changes(db_) == 0) throw not_found("assignment " + std::to_string(a.id));
  });
}

bool SqliteStore::delete_assignment(Id id) {
  std::lock_guard lock(mu_);
  return config_write([&] {
    Statement(db_, "DELETE FROM assignments WHERE id = ?").bind_all(id).run();
    return sqlite3_changes(db_) > 0;
  });
}

std::optional<Assignment> SqliteStore::get_assignment(Id id) {
  std::lock_guard lock(mu_);
  Statement st(db_, select(kAssignmentCols, "assignments", "WHERE id = ?"));
  st.bind_all(id);
  return first(collect<Assignment>(st, read_assignment));
}

std::vector<Assignment> SqliteStore::list_assignments(std::optional<Id> vkey_id) {
  std::lock_guard lock(mu_);
  Statement st(db_, select(kAssignmentCols, "assignments",
                           "WHERE (?1 IS NULL OR vkey_id = ?1) ORDER BY id"));
  st.bind_all(vkey_id);
  return collect<Assignment>(st, read_assignment);
}

// ---- admin users ----------------------------------------------------------------
// Not configuration (serve's snapshot has no users): no config_version bump.

Id SqliteStore::insert_admin_user(const AdminUser& u) {
  std::lock_guard lock(mu_);
  TimeMs now = now_ms();
  Statement st(db_,
               "INSERT INTO admin_users (username, role, password_hash, created_at, updated_at) "
               "VALUES (?, ?, ?, ?, ?)");
  st.bind_all(u.username, to_string(u.role), u.password_hash, stamp(u.created_at, now),
              stamp(u.updated_at, now));
  run_unique(st, "an admin user named '" + u.username + "' already exists");
  return static_cast<Id>(sqlite3_last_insert_rowid(db_));
}

void SqliteStore::update_admin_user(const AdminUser& u) {
  std::lock_guard lock(mu_);
  Statement st(db_,
               "UPDATE admin_users SET username = ?, role = ?, password_hash = ?, updated_at = ? "
               "WHERE id = ?");
  st.bind_all(u.username, to_string(u.role), u.password_hash, now_ms(), u.id);
  run_unique(st, "an admin user named '" + u.username + "' already exists");
  if (sqlite3_changes(db_) == 0) throw not_found("admin user " + std::to_string(u.id));
}

bool SqliteStore::delete_admin_user(Id id) {
  std::lock_guard lock(mu_);
  Statement(db_, "DELETE FROM admin_users WHERE id = ?").bind_all(id).run();
  return sqlite3_changes(db_) > 0;
}

std::optional<AdminUser> SqliteStore::find_admin_user(std::string_view username) {
  std::lock_guard lock(mu_);
  Statement st(db_, select(kAdminUserCols, "admin_users", "WHERE username = ?"));
  st.bind_all(username);
  return first(collect<AdminUser>(st, read_admin_user));
}

std::vector<AdminUser> SqliteStore::list_admin_users() {
  std::lock_guard lock(mu_);
  Statement st(db_, select(kAdminUserCols, "admin_users", "ORDER BY username"));
  return collect<AdminUser>(st, read_admin_user);
}

// ---- usage --------------------------------------------------------------------

void SqliteStore::insert_usage(std::span<const UsageRecord> records) {
  if (records.empty()) return;
  std::lock_guard lock(mu_);
  // Multi-row INSERTs: one statement execution (and one AUTOINCREMENT
  // bookkeeping write) per kRowsPerInsert records instead of per record.
  constexpr std::size_t kRowsPerInsert = 64;
  constexpr int kCols = 14;
  auto insert_sql = [](std::size_t rows) {
    std::string sql =
        "INSERT INTO usage_records (ts, request_id, vkey_id, vkey_name, assignment_id, model, "
        "conn_id, conn_name, status, latency_ms, ttft_ms, prompt_tokens, completion_tokens, "
        "cost) VALUES ";
    for (std::size_t i = 0; i < rows; ++i)
      sql += i ? ",(?,?,?,?,?,?,?,?,?,?,?,?,?,?)" : "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    return sql;
  };
  auto insert = [&](Statement& st, std::span<const UsageRecord> rows) {
    int base = 0;
    for (const UsageRecord& r : rows) {
      st.bind_from(base, r.ts, r.request_id, r.vkey_id, r.vkey_name, r.assignment_id, r.model,
                   r.conn_id, r.conn_name, r.status, r.latency_ms, r.ttft_ms, r.prompt_tokens,
                   r.completion_tokens, r.cost);
      base += kCols;
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

std::vector<UsageRecord> SqliteStore::list_usage(const UsageQuery& q) {
  std::lock_guard lock(mu_);
  UsageWhere w = usage_where(q);
  std::string tail = w.sql + " ORDER BY ts DESC, id DESC";
  if (q.limit) tail += " LIMIT " + std::to_string(q.limit);
  Statement st(db_, select(kUsageCols, "usage_records", tail));
  bind_usage_where(st, w);
  return collect<UsageRecord>(st, read_usage);
}

std::vector<UsageGroup> SqliteStore::aggregate_usage(const UsageQuery& q, UsageGroupBy by) {
  const char* key = "";
  switch (by) {
    case UsageGroupBy::kDay: key = "strftime('%Y-%m-%d', ts / 1000, 'unixepoch')"; break;
    case UsageGroupBy::kModel: key = "model"; break;
    case UsageGroupBy::kKey: key = "vkey_name"; break;
    case UsageGroupBy::kConnection: key = "conn_name"; break;
    case UsageGroupBy::kAssignment: key = "CAST(assignment_id AS TEXT)"; break;
  }
  std::lock_guard lock(mu_);
  UsageWhere w = usage_where(q);
  std::string sql = std::string("SELECT ") + key +
                    " AS g, COUNT(*), SUM(status >= 400), SUM(prompt_tokens), "
                    "SUM(completion_tokens), SUM(cost), AVG(latency_ms), "
                    "percentile_nearest_rank(latency_ms, 50), "
                    "percentile_nearest_rank(latency_ms, 95), "
                    "percentile_nearest_rank(latency_ms, 99) FROM usage_records " +
                    w.sql + " GROUP BY g ORDER BY g";
  Statement st(db_, sql);
  bind_usage_where(st, w);
  return collect<UsageGroup>(st, [](Statement& s) {
    return UsageGroup{s.text(0), s.i64(1), s.i64(2), s.i64(3), s.i64(4), s.dbl(5),
                      s.dbl(6),  s.dbl(7), s.dbl(8), s.dbl(9)};
  });
}

}  // namespace llmproxy::storage
