#include "tests/storage/backends.h"

#include <sqlite3.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

#include "storage/mongo/documents.h"
#include "storage/mongo/driver.h"
#include "storage/postgres/driver.h"
#include "storage/sqlite/driver.h"
#include "tests/storage/mongo_test_server.h"
#include "tests/storage/pg_cluster.h"

namespace llmproxy::storage::conformance {
namespace {

void set_secret(std::string_view secret) {
  if (::setenv("LLM_PROXY_SECRET", std::string(secret).c_str(), 1) != 0) {
    throw std::runtime_error(std::string("setenv LLM_PROXY_SECRET: ") + std::strerror(errno));
  }
}

// A new directory under $TMPDIR (or /tmp), removed by cleanup.
std::string make_temp_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/llmproxy-storage-test-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + templ + ": " + std::strerror(errno));
  }
  return templ;
}

TestDatabase create_sqlite() {
  std::string dir = make_temp_dir();
  return TestDatabase{
      .location = Location{"sqlite", dir + "/test.db"},
      .cleanup =
          [dir] {
            std::error_code ec;
            std::filesystem::remove_all(dir, ec);
          },
  };
}

// A database of its own on the test server (tests/storage/pg_cluster.h says
// which server; without PostgreSQL this throws, and the test fails).
TestDatabase create_postgres() {
  std::string url = pgtest::create_database();
  return TestDatabase{
      .location = Location{"postgres", url},
      .cleanup = [url] { pgtest::drop_database(url); },
  };
}

// A database of its own on a real server (LLM_PROXY_TEST_MONGODB_URI) or on
// the wire-protocol test server (tests/storage/mongo_test_server.h).
TestDatabase create_mongodb() {
  std::string url = mongotest::create_database();
  return TestDatabase{
      .location = Location{"mongodb", url},
      .cleanup = [url] { mongotest::drop_database(url); },
  };
}

// ---- databases of the schema before plans ------------------------------------
// The schema comes from the backend's own migrations, stopped early (shipped
// migrations never change); the rows are written as that release wrote them,
// bypassing the store, whose mappers know only the current columns.

// Replaces every `from` in s with `to`.
void replace_all(std::string& s, std::string_view from, const std::string& to) {
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

// The rows backends.h lists, in SQL both SQLite and PostgreSQL run.
std::string previous_rows_sql() {
  std::string sql = R"sql(
UPDATE meta SET value = :config_version WHERE key = 'config_version';
INSERT INTO connections (name, provider, endpoint, timeout_ms, created_at, updated_at)
  VALUES ('old-conn', 'openai', 'https://old.example.com/v1', 30000, :created, :updated);
INSERT INTO models (name, remote, conn_id, input_price, created_at, updated_at)
  SELECT 'old-model', 'gpt-old', id, 2.5, :created, :updated FROM connections;
INSERT INTO vkeys (name, key_hash, key_hint, enabled, expires_at, created_at, updated_at)
  VALUES ('old-key', ':key_hash', 'sk-ol...key', FALSE, :expiry, :created, :updated);
INSERT INTO assignments (vkey_id, conn_id, tps, rpm, token_limit, token_window, created_at,
                         updated_at)
  SELECT vkeys.id, connections.id, 2.5, 120, 50000, 'hour', :created, :updated
  FROM vkeys, connections;
INSERT INTO assignments (vkey_id, model_id, created_at, updated_at)
  SELECT vkeys.id, models.id, :created, :updated FROM vkeys, models;
INSERT INTO usage_records (ts, request_id, vkey_id, vkey_name, model, status, latency_ms,
                           prompt_tokens, completion_tokens, cost)
  SELECT :usage_ts, 'old-req', id, name, 'old-model', 200, 12.5, 10, 20, 0.0001 FROM vkeys;
INSERT INTO admin_users (username, role, password_hash, created_at, updated_at)
  VALUES ('old-admin', 'viewer', ':admin_hash', :created, :updated);
)sql";
  replace_all(sql, ":config_version", std::to_string(kPreviousConfigVersion));
  replace_all(sql, ":created", std::to_string(kPreviousCreated));
  replace_all(sql, ":updated", std::to_string(kPreviousUpdated));
  replace_all(sql, ":key_hash", std::string(kPreviousKeyHash));
  replace_all(sql, ":expiry", std::to_string(kPreviousExpiry));
  replace_all(sql, ":usage_ts", std::to_string(kPreviousUsageTs));
  replace_all(sql, ":admin_hash", std::string(kPreviousAdminHash));
  return sql;
}

TestDatabase create_previous_sqlite() {
  TestDatabase db = create_sqlite();
  const std::string& path = db.location.target;
  sqlite3* handle = nullptr;
  if (sqlite3_open(path.c_str(), &handle) != SQLITE_OK) {
    sqlite3_close(handle);
    throw std::runtime_error("cannot create " + path);
  }
  try {
    sqlite::migrate(handle, path, 4);
    sqlite::exec(handle, previous_rows_sql(), path);
  } catch (...) {
    sqlite3_close(handle);
    throw;
  }
  sqlite3_close(handle);
  return db;
}

TestDatabase create_previous_postgres() {
  TestDatabase db = create_postgres();
  {
    pg::Pool pool(db.location.target, {}, "the upgrade test's database");
    pg::migrate(pool, 2);
  }
  pgtest::query(db.location.target, previous_rows_sql());
  return db;
}

// The documents of backends.h's rows: every field the previous release wrote,
// NULL included. ids come from the store's counters, as the store's would.
void insert_previous_documents(mongo::Client& c) {
  auto add = [&](const char* coll, const Fields& f) {
    Id id = c.next_ids(coll, 1);
    mongo::Doc d;
    d.i64("_id", id);
    mongo::append_fields(d, f);
    c.insert(coll, d, id);
    return id;
  };
  auto stamped = [](Fields f) {
    f.i64("created_at", kPreviousCreated).i64("updated_at", kPreviousUpdated);
    return f;
  };
  Fields conn;
  conn.text("name", "old-conn")
      .text("provider", "openai")
      .text("endpoint", "https://old.example.com/v1")
      .text("api_version", "")
      .text("region", "")
      .text("access_key_id", "")
      .text("secrets", "")
      .i64("timeout_ms", 30000)
      .text("options", "{}");
  Id conn_id = add("connections", stamped(conn));
  Fields model;
  model.text("name", "old-model")
      .text("remote", "gpt-old")
      .i64("conn_id", conn_id)
      .real("input_price", 2.5)
      .opt_real("output_price", std::nullopt);
  Id model_id = add("models", stamped(model));
  Fields key;
  key.text("name", "old-key")
      .text("key_hash", std::string(kPreviousKeyHash))
      .text("key_hint", "sk-ol...key")
      .boolean("enabled", false)
      .i64("expires_at", kPreviousExpiry);
  Id key_id = add("vkeys", stamped(key));
  Fields to_conn;
  to_conn.i64("vkey_id", key_id)
      .i64("conn_id", conn_id)
      .opt_i64("model_id", std::nullopt)
      .real("tps", 2.5)
      .i64("rpm", 120)
      .i64("token_limit", 50000)
      .text("token_window", "hour");
  add("assignments", stamped(to_conn));
  Fields to_model;
  to_model.i64("vkey_id", key_id)
      .opt_i64("conn_id", std::nullopt)
      .i64("model_id", model_id)
      .opt_real("tps", std::nullopt)
      .opt_i64("rpm", std::nullopt)
      .opt_i64("token_limit", std::nullopt)
      .text("token_window", "day");
  add("assignments", stamped(to_model));
  Fields usage;
  usage.i64("ts", kPreviousUsageTs)
      .text("request_id", "old-req")
      .i64("vkey_id", key_id)
      .text("vkey_name", "old-key")
      .opt_i64("assignment_id", std::nullopt)
      .text("model", "old-model")
      .opt_i64("conn_id", std::nullopt)
      .text("conn_name", "")
      .i64("status", 200)
      .real("latency_ms", 12.5)
      .opt_real("ttft_ms", std::nullopt)
      .i64("prompt_tokens", 10)
      .i64("completion_tokens", 20)
      .real("cost", 0.0001);
  add("usage_records", usage);
  Fields admin;
  admin.text("username", "old-admin")
      .text("role", "viewer")
      .text("password_hash", std::string(kPreviousAdminHash));
  add("admin_users", stamped(admin));
  for (std::int64_t v = 1; v < kPreviousConfigVersion; ++v) c.bump_config_version();
}

TestDatabase create_previous_mongodb() {
  TestDatabase db = create_mongodb();
  mongo::init_driver_once();
  mongo::Client c;
  c.client = mongoc_client_new(db.location.target.c_str());
  if (!c.client) throw std::runtime_error("MongoDB client for " + db.location.target);
  mongoc_client_set_error_api(c.client, MONGOC_ERROR_API_VERSION_2);
  mongoc_uri_t* uri = mongoc_uri_new(db.location.target.c_str());
  c.db_name = mongoc_uri_get_database(uri);
  mongoc_uri_destroy(uri);
  mongo::migrate(c, 2);
  insert_previous_documents(c);
  return db;
}

}  // namespace

std::vector<BackendFactory> conformance_backends() {
  // Backends that need a server are always listed: a missing server fails
  // their tests rather than skipping them (packaging/install-deps.sh test
  // installs PostgreSQL).
  return {
      BackendFactory{
          .name = "sqlite", .create = create_sqlite, .create_previous = create_previous_sqlite},
      BackendFactory{.name = "postgres",
                     .create = create_postgres,
                     .create_previous = create_previous_postgres},
      BackendFactory{
          .name = "mongodb", .create = create_mongodb, .create_previous = create_previous_mongodb},
  };
}

std::unique_ptr<Store> open_test_store(const TestDatabase& db, std::string_view secret) {
  set_secret(secret);
  return open_store(db.location);
}

void reset_test_secret() {
  set_secret(kTestSecret);
}

}  // namespace llmproxy::storage::conformance
