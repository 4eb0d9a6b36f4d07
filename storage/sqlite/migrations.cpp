#include <sqlite3.h>

#include <algorithm>
#include <array>

#include "lib/domain/time.h"
#include "storage/sql/transaction.h"
#include "storage/sqlite/driver.h"

namespace llmproxy::storage::sqlite {
namespace {

// Versioned schema. Each entry is applied once, in order, inside a transaction;
// never edit an entry that has shipped, append a new one.
constexpr std::array<const char*, 5> kMigrations = {R"sql(
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
)sql",
                                                    R"sql(
-- Plans (named limit sets), the limits added to assignments, and key-wide
-- limits. New columns are NULL (unlimited) or the type's default window, so
-- existing rows keep meaning what they meant.
CREATE TABLE plans (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  name           TEXT NOT NULL UNIQUE,
  tps            REAL,
  rpm            INTEGER,
  rph            INTEGER,
  rpd            INTEGER,
  token_limit    INTEGER,
  token_window   TEXT NOT NULL DEFAULT 'day',
  budget         REAL,
  budget_window  TEXT NOT NULL DEFAULT 'month',
  max_parallel   INTEGER,
  reserve_tokens INTEGER,
  created_at     INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL
);

-- Deleting a plan detaches it: its assignments keep their own limits.
ALTER TABLE assignments ADD COLUMN plan_id INTEGER REFERENCES plans(id) ON DELETE SET NULL;
ALTER TABLE assignments ADD COLUMN rph INTEGER;
ALTER TABLE assignments ADD COLUMN rpd INTEGER;
ALTER TABLE assignments ADD COLUMN budget REAL;
ALTER TABLE assignments ADD COLUMN budget_window TEXT NOT NULL DEFAULT 'month';
ALTER TABLE assignments ADD COLUMN max_parallel INTEGER;
ALTER TABLE assignments ADD COLUMN reserve_tokens INTEGER;
-- For ON DELETE SET NULL, which otherwise scans every assignment.
CREATE INDEX assignments_plan ON assignments(plan_id);

ALTER TABLE vkeys ADD COLUMN token_limit INTEGER;
ALTER TABLE vkeys ADD COLUMN token_window TEXT NOT NULL DEFAULT 'day';
ALTER TABLE vkeys ADD COLUMN budget REAL;
ALTER TABLE vkeys ADD COLUMN budget_window TEXT NOT NULL DEFAULT 'month';
)sql"};

}  // namespace

void migrate(sqlite3* db, const std::string& where, std::size_t up_to) {
  // BEGIN IMMEDIATE takes the write lock first, so two processes starting at
  // once apply each migration exactly once.
  sql::Transaction tx([&](const std::string& s) { exec(db, s, where); }, "BEGIN IMMEDIATE");
  exec(db,
       "CREATE TABLE IF NOT EXISTS schema_migrations ("
       " version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
       where);
  std::int64_t have = 0;
  {  // finalised before any migration runs: DROP fails under an open read
    Statement cur(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    cur.step();
    have = cur.i64(0);
  }
  const std::size_t last = std::min(up_to, kMigrations.size());
  for (std::size_t v = static_cast<std::size_t>(have); v < last; ++v) {
    exec(db, kMigrations[v], where);
    Statement record(db, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)");
    record.bind_all({Value(static_cast<std::int64_t>(v + 1)), Value(now_ms())});
    record.run();
  }
  tx.commit();
}

}  // namespace llmproxy::storage::sqlite
