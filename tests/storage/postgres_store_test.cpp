// PostgreSQL-only storage tests: what the conformance suite cannot see through
// the Store interface (migrations under concurrency, the pool, LISTEN/NOTIFY,
// passwords in messages, secrets at rest, reconnecting). Each test gets a
// database of its own on the test server (tests/storage/pg_cluster.h).
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <latch>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "lib/crypto/hash.h"
#include "lib/domain/error.h"
#include "storage/store.h"
#include "tests/storage/backends.h"
#include "tests/storage/pg_cluster.h"

namespace llmproxy::storage {
namespace {

namespace conf = conformance;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

Connection connection(const std::string& name) {
  Connection c;
  c.name = name;
  c.provider = Provider::kOpenAI;
  c.endpoint = "https://" + name + ".example.com/v1";
  c.api_key = "sk-" + name + "-0123456789";
  c.timeout_ms = 30'000;
  return c;
}

VirtualKey vkey(const std::string& name) {
  VirtualKey k;
  k.name = name;
  k.key_hash = crypto::sha256_hex("sk-virtual-" + name);
  k.key_hint = "sk-vi…" + name;
  return k;
}

UsageRecord usage(TimeMs ts, const std::string& request_id) {
  UsageRecord r;
  r.ts = ts;
  r.request_id = request_id;
  r.vkey_name = "master";
  r.model = "gpt-test";
  r.status = 200;
  r.latency_ms = 10;
  return r;
}

// The message of the llmproxy::Error fn throws; fails the test when it throws
// nothing or another kind.
template <class Fn>
std::string error_of(ErrorKind want, Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(static_cast<int>(e.kind()), static_cast<int>(want)) << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not an llmproxy::Error: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "nothing was thrown";
  return "";
}

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    conf::reset_test_secret();
    url_ = pgtest::create_database();
  }
  void TearDown() override {
    conf::reset_test_secret();
    pgtest::drop_database(url_);
  }

  std::unique_ptr<Store> open(const std::string& url = "") {
    return open_store({"postgres", url.empty() ? url_ : url});
  }
  std::vector<std::vector<std::string>> sql(const std::string& q) { return pgtest::query(url_, q); }

  std::string url_;
};

// ---- migrations ---------------------------------------------------------------

TEST_F(PostgresStoreTest, MigrationsAreAppliedOnceAndRecorded) {
  auto first = open();
  const int version = first->schema_version();
  ASSERT_GT(version, 0);
  auto applied = sql("SELECT version, applied_at FROM schema_migrations ORDER BY version");
  ASSERT_EQ(applied.size(), static_cast<std::size_t>(version));
  for (int v = 1; v <= version; ++v) EXPECT_EQ(applied[v - 1][0], std::to_string(v));
  first->insert_connection(connection("kept"));
  const std::int64_t config_version = first->config_version();

  // Run twice more: once beside the open store, once after it is closed.
  auto second = open();
  first.reset();
  second.reset();
  auto third = open();
  EXPECT_EQ(third->schema_version(), version);
  EXPECT_EQ(sql("SELECT version, applied_at FROM schema_migrations ORDER BY version"), applied)
      << "a migration ran again";
  EXPECT_EQ(sql("SELECT count(*) FROM meta"), (std::vector<std::vector<std::string>>{{"1"}}));
  EXPECT_EQ(third->config_version(), config_version);
  EXPECT_EQ(third->list_connections().size(), 1u);
}

TEST_F(PostgresStoreTest, StoresOpeningAtOnceOnAnEmptyDatabaseMigrateOnce) {
  constexpr int kStores = 6;
  std::vector<std::unique_ptr<Store>> stores(kStores);
  std::vector<std::string> errors(kStores);
  std::latch start(kStores);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStores; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();  // all open together
      try {
        stores[i] = open();
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kStores; ++i) {
    ASSERT_EQ(errors[i], "") << "store " << i << " failed to open";
    ASSERT_NE(stores[i], nullptr);
  }
  const int version = stores[0]->schema_version();
  EXPECT_EQ(
      sql("SELECT count(*), count(DISTINCT version) FROM schema_migrations"),
      (std::vector<std::vector<std::string>>{{std::to_string(version), std::to_string(version)}}));
  EXPECT_EQ(sql("SELECT value FROM meta WHERE key = 'config_version'"),
            (std::vector<std::vector<std::string>>{{"1"}}));
  std::set<Id> ids;
  for (int i = 0; i < kStores; ++i) {
    EXPECT_EQ(stores[i]->schema_version(), version);
    ids.insert(stores[i]->insert_connection(connection("from-" + std::to_string(i))));
  }
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kStores));
}

TEST_F(PostgresStoreTest, ProcessesOpeningAtOnceMigrateOnce) {
  // Separate processes, as when serve and a CLI command start together.
  constexpr int kProcs = 4;
  std::vector<pid_t> pids;
  for (int i = 0; i < kProcs; ++i) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int rc = 0;
      try {
        auto s = open();
        s->insert_vkey(vkey("proc-" + std::to_string(i)));
      } catch (...) {
        rc = 1;
      }
      std::_Exit(rc);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a process failed to open";
  }
  auto s = open();
  EXPECT_EQ(sql("SELECT count(*) FROM schema_migrations"),
            (std::vector<std::vector<std::string>>{{std::to_string(s->schema_version())}}));
  EXPECT_EQ(s->list_vkeys().size(), static_cast<std::size_t>(kProcs));
}

TEST_F(PostgresStoreTest, SchemaHasTheUsageIndexes) {
  auto s = open();
  auto rows =
      sql("SELECT indexdef FROM pg_indexes WHERE tablename = 'usage_records' ORDER BY indexname");
  std::string all;
  for (const auto& r : rows) all += r[0] + "\n";
  EXPECT_NE(all.find("(ts)"), std::string::npos) << all;
  EXPECT_NE(all.find("(vkey_id, ts)"), std::string::npos) << all;
}

// ---- threads and the pool -----------------------------------------------------

TEST_F(PostgresStoreTest, ManyThreadsShareOneStore) {
  auto s = open();
  const std::int64_t v0 = s->config_version();
  constexpr int kThreads = 8, kEach = 15;  // more threads than pooled connections
  std::vector<std::vector<Id>> ids(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (int i = 0; i < kEach; ++i) {
          std::string name = "t" + std::to_string(t) + "-" + std::to_string(i);
          if (i % 3 == 0) {
            s->transaction([&] {
              ids[t].push_back(s->insert_connection(connection(name)));
              s->insert_vkey(vkey(name));
            });
          } else {
            ids[t].push_back(s->insert_connection(connection(name)));
          }
          std::vector<UsageRecord> batch = {usage(1000 + i, name)};
          s->insert_usage(batch);
          s->list_connections();
        }
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<Id> all;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(errors[t], "") << "thread " << t;
    all.insert(ids[t].begin(), ids[t].end());
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads * kEach));
  EXPECT_EQ(s->list_connections().size(), static_cast<std::size_t>(kThreads * kEach));
  EXPECT_EQ(s->list_usage({}).size(), static_cast<std::size_t>(kThreads * kEach));
  EXPECT_GE(s->config_version(), v0 + kThreads * kEach);
}

TEST_F(PostgresStoreTest, ATransactionBelongsToItsThread) {
  auto s = open();
  std::mutex mu;
  std::condition_variable cv;
  int step = 0;
  auto wait_for = [&](int n) {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return step >= n; });
  };
  auto go = [&](int n) {
    std::lock_guard lock(mu);
    step = n;
    cv.notify_all();
  };
  std::thread writer([&] {
    s->transaction([&] {
      s->insert_connection(connection("uncommitted"));
      go(1);
      wait_for(2);
    });
    go(3);
  });
  wait_for(1);
  // Another thread on the same store is not inside the writer's transaction.
  EXPECT_EQ(s->find_connection("uncommitted"), std::nullopt);
  EXPECT_TRUE(s->list_connections().empty());
  go(2);
  wait_for(3);
  writer.join();
  EXPECT_NE(s->find_connection("uncommitted"), std::nullopt);
}

TEST_F(PostgresStoreTest, ACaughtErrorInsideATransactionLeavesItUsable) {
  auto s = open();
  s->insert_connection(connection("taken"));
  s->transaction([&] {
    s->insert_connection(connection("before"));
    EXPECT_THROW(s->insert_connection(connection("taken")), Error);
    s->insert_connection(connection("after"));
  });
  EXPECT_NE(s->find_connection("before"), std::nullopt);
  EXPECT_NE(s->find_connection("after"), std::nullopt);
  EXPECT_EQ(s->list_connections().size(), 3u);
}

TEST_F(PostgresStoreTest, ReconnectsAfterTheServerDropsItsConnections) {
  auto s = open();
  Id id = s->insert_connection(connection("survivor"));
  const std::string db = sql("SELECT current_database()")[0][0];
  auto kill = [&] {
    pgtest::query(pgtest::admin_url(),
                  "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + db +
                      "' AND pid <> pg_backend_pid()");
  };
  kill();
  EXPECT_NE(s->get_connection(id), std::nullopt) << "a read after the drop";
  kill();
  EXPECT_GT(s->insert_connection(connection("after-drop")), id) << "a write after the drop";
  kill();
  EXPECT_TRUE(s->ping());
  kill();
  std::vector<UsageRecord> batch = {usage(1, "after-drop")};
  s->insert_usage(batch);
  EXPECT_EQ(s->list_usage({}).size(), 1u);
}

// ---- change notification ------------------------------------------------------

TEST_F(PostgresStoreTest, WaitForChangeWakesOnACommittedChange) {
  auto watcher = open();
  auto writer = open();
  // The first call sets up LISTEN and returns at once.
  auto t0 = Clock::now();
  EXPECT_TRUE(watcher->wait_for_change(milliseconds(5000)));
  EXPECT_LT(Clock::now() - t0, milliseconds(2500));

  const std::int64_t v0 = watcher->config_version();
  std::thread write([&] {
    std::this_thread::sleep_for(milliseconds(200));
    writer->insert_connection(connection("notified"));
  });
  t0 = Clock::now();
  EXPECT_TRUE(watcher->wait_for_change(milliseconds(20'000)));
  auto waited = Clock::now() - t0;
  write.join();
  EXPECT_LT(waited, milliseconds(10'000)) << "not woken by the NOTIFY";
  EXPECT_GT(watcher->config_version(), v0);

  // Nothing committed: the wait runs out its timeout.
  EXPECT_THROW(writer->transaction([&] {
    writer->insert_connection(connection("rolled-back"));
    throw std::runtime_error("abort");
  }),
               std::runtime_error);
  t0 = Clock::now();
  EXPECT_TRUE(watcher->wait_for_change(milliseconds(400)));
  EXPECT_GE(Clock::now() - t0, milliseconds(350)) << "woken by a rolled-back change";

  // Usage is not configuration.
  std::vector<UsageRecord> batch = {usage(1, "u")};
  writer->insert_usage(batch);
  t0 = Clock::now();
  EXPECT_TRUE(watcher->wait_for_change(milliseconds(400)));
  EXPECT_GE(Clock::now() - t0, milliseconds(350)) << "woken by a usage insert";
}

TEST_F(PostgresStoreTest, InterruptWaitEndsAWait) {
  auto s = open();
  EXPECT_TRUE(s->wait_for_change(milliseconds(5000)));  // sets up LISTEN
  std::thread interrupter([&] {
    std::this_thread::sleep_for(milliseconds(200));
    s->interrupt_wait();
  });
  auto t0 = Clock::now();
  EXPECT_TRUE(s->wait_for_change(milliseconds(30'000)));
  EXPECT_LT(Clock::now() - t0, milliseconds(10'000));
  interrupter.join();
}

TEST_F(PostgresStoreTest, WaitForChangeSurvivesALostListenConnection) {
  auto watcher = open();
  auto writer = open();
  EXPECT_TRUE(watcher->wait_for_change(milliseconds(5000)));
  pgtest::query(pgtest::admin_url(),
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE "
                "'LISTEN%' AND datname = '" +
                    sql("SELECT current_database()")[0][0] + "'");
  // Returns (the connection is gone), then listens again and is woken.
  EXPECT_TRUE(watcher->wait_for_change(milliseconds(5000)));
  EXPECT_TRUE(watcher->wait_for_change(milliseconds(5000)));
  std::thread write([&] {
    std::this_thread::sleep_for(milliseconds(200));
    writer->insert_vkey(vkey("after-reconnect"));
  });
  auto t0 = Clock::now();
  EXPECT_TRUE(watcher->wait_for_change(milliseconds(20'000)));
  EXPECT_LT(Clock::now() - t0, milliseconds(10'000));
  write.join();
}

// ---- connection strings and passwords -----------------------------------------

TEST_F(PostgresStoreTest, PasswordsNeverAppearInMessages) {
  // A role that must authenticate (pg_cluster.sh asks scram for it on TCP).
  const std::string password = "S3cret-P@ss/w0rd";
  const std::string encoded = "S3cret-P%40ss%2Fw0rd";
  const std::string db = sql("SELECT current_database()")[0][0];
  pgtest::query(pgtest::admin_url(),
                "DO $$ BEGIN CREATE ROLE llmproxy_pw LOGIN; EXCEPTION WHEN duplicate_object OR "
                "unique_violation THEN NULL; END $$; ALTER ROLE llmproxy_pw PASSWORD '" +
                    password + "'; ALTER DATABASE \"" + db + "\" OWNER TO llmproxy_pw");
  std::string rest = url_.substr(url_.find('@') + 1);  // host:port/db
  auto with_user = [&](const std::string& userinfo) {
    return "postgres://" + userinfo + "@" + rest;
  };

  // The right password (percent-encoded in the URL) opens the store.
  auto s = open(with_user("llmproxy_pw:" + encoded));
  EXPECT_EQ(s->describe().find("S3cret"), std::string::npos) << s->describe();
  EXPECT_NE(s->describe().find("llmproxy_pw@"), std::string::npos) << s->describe();
  s->insert_connection(connection("with-password"));
  s.reset();

  // postgresql:// and a keyword/value DSN work too.
  std::string pgl = "postgresql://llmproxy_pw:" + encoded + "@" + rest;
  EXPECT_EQ(open(pgl)->list_connections().size(), 1u);

  // A wrong password is a storage error that does not repeat it.
  std::unique_ptr<Store> wrong;
  std::string msg = error_of(ErrorKind::kStorage,
                             [&] { wrong = open(with_user("llmproxy_pw:Wr0ng-Pa55word%21")); });
  if (wrong) GTEST_SKIP() << "this server does not check passwords for llmproxy_pw on TCP";
  EXPECT_EQ(msg.find("Wr0ng-Pa55word"), std::string::npos) << msg;
  EXPECT_NE(msg.find("llmproxy_pw"), std::string::npos) << "names the user: " << msg;

  // Nothing listening.
  msg = error_of(ErrorKind::kStorage,
                 [&] { open("postgres://someone:Unreach4ble-Pw@127.0.0.1:1/db"); });
  EXPECT_EQ(msg.find("Unreach4ble-Pw"), std::string::npos) << msg;
  EXPECT_NE(msg.find("127.0.0.1"), std::string::npos) << "names the server: " << msg;

  // Malformed: bad input, still redacted.
  msg = error_of(ErrorKind::kInvalid,
                 [&] { open("postgres://someone:Malf0rmed-Pw@127.0.0.1:5432/db?bogus=1"); });
  EXPECT_EQ(msg.find("Malf0rmed-Pw"), std::string::npos) << msg;
  msg = error_of(ErrorKind::kInvalid,
                 [&] { open("postgres://someone:Bad%zzEncoding-Pw@127.0.0.1:5432/db"); });
  EXPECT_EQ(msg.find("Encoding-Pw"), std::string::npos) << msg;

  // Keyword/value form, also with the right password.
  msg = error_of(ErrorKind::kStorage, [&] {
    open("host=127.0.0.1 port=1 user=someone password='Kw-S3cret word' dbname=db");
  });
  EXPECT_EQ(msg.find("Kw-S3cret"), std::string::npos) << msg;
  const std::string port = rest.substr(rest.find(':') + 1, rest.find('/') - rest.find(':') - 1);
  auto kw = open("host=127.0.0.1 port=" + port + " user=llmproxy_pw password='" + password +
                 "' dbname='" + db + "'");
  EXPECT_EQ(kw->list_connections().size(), 1u);
  EXPECT_EQ(kw->describe().find("S3cret"), std::string::npos) << kw->describe();
  // Whatever libpq says about a conninfo it cannot parse, the password is not in it.
  msg = error_of(ErrorKind::kInvalid,
                 [&] { open("host=127.0.0.1 password='Unterminated-S3cret dbname=db"); });
  EXPECT_EQ(msg.find("Unterminated-S3cret"), std::string::npos) << msg;
  msg = error_of(ErrorKind::kInvalid,
                 [&] { open("host=127.0.0.1 password='it\\'s-Esc4ped' nonsense=1 dbname=db"); });
  EXPECT_EQ(msg.find("Esc4ped"), std::string::npos) << msg;
}

TEST_F(PostgresStoreTest, DbTypeAndDsnSelectPostgres) {
  ScopedEnv no_url("LLM_PROXY_DB", nullptr);
  ScopedEnv type("DB_TYPE", "postgres");
  ScopedEnv dsn("DB_DSN", url_.c_str());
  Location where = resolve_location(std::nullopt);
  EXPECT_EQ(where.backend, "postgres");
  auto s = open_store(where);
  EXPECT_EQ(s->backend(), "postgres");
  EXPECT_TRUE(s->ping());
}

TEST_F(PostgresStoreTest, DaysAreUtcWhateverTheSessionTimeZone) {
  // A record at 23:30 UTC is on the next day in Kiritimati (UTC+14) and one at
  // 00:30 UTC on the previous day in Los Angeles.
  const TimeMs jan1 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
  const TimeMs hour = 3'600'000;
  std::vector<UsageRecord> batch = {usage(jan1 + 23 * hour + hour / 2, "late"),
                                    usage(jan1 + 24 * hour + hour / 2, "early")};
  open()->insert_usage(batch);
  for (const char* tz : {"Pacific%2FKiritimati", "America%2FLos_Angeles", "UTC"}) {
    SCOPED_TRACE(tz);
    const char* sep = url_.find('?') == std::string::npos ? "?" : "&";
    auto s = open(url_ + sep + "options=-c%20TimeZone%3D" + tz);
    auto groups = s->aggregate_usage({}, UsageGroupBy::kDay);
    ASSERT_EQ(groups.size(), 2u);
    EXPECT_EQ(groups[0].group, "2026-01-01");
    EXPECT_EQ(groups[1].group, "2026-01-02");
  }
}

// ---- secrets ----------------------------------------------------------------------

TEST_F(PostgresStoreTest, SecretsAreSealedInTheTable) {
  auto s = open();
  Connection c = connection("at-rest");
  c.api_key = "sk-live-SECRET-1234567890";
  c.secret_access_key = "AWS-SECRET-ACCESS-KEY-0987654321";
  c.session_token = "AWS-SESSION-TOKEN-5555555555";
  c.headers = {{"X-Api-Key", "HEADER-SECRET-4242424242"}};
  c.id = s->insert_connection(c);
  Connection u = connection("updated");
  u.id = s->insert_connection(u);
  u.api_key = "sk-live-UPDATED-1122334455";
  s->update_connection(u);

  auto rows = sql("SELECT c::text, secrets FROM connections c ORDER BY id");
  ASSERT_EQ(rows.size(), 2u);
  std::string all = rows[0][0] + rows[1][0];
  ASSERT_NE(all.find("at-rest"), std::string::npos);
  EXPECT_TRUE(rows[0][1].starts_with("v1:")) << rows[0][1];
  for (const char* secret : {"sk-live-SECRET", "AWS-SECRET-ACCESS", "AWS-SESSION-TOKEN",
                             "HEADER-SECRET", "sk-live-UPDATED"}) {
    EXPECT_EQ(all.find(secret), std::string::npos) << secret << " stored in plaintext";
  }
  auto got = s->get_connection(c.id);
  ASSERT_NE(got, std::nullopt);
  c.created_at = got->created_at;
  c.updated_at = got->updated_at;
  EXPECT_EQ(got, c);
}

TEST_F(PostgresStoreTest, TheKeyComesFromTheEnvironmentOrANamedFile) {
  {
    auto s = open();
    s->insert_connection(connection("sealed"));
  }
  ScopedEnv no_secret("LLM_PROXY_SECRET", nullptr);
  {
    ScopedEnv no_file("LLM_PROXY_SECRET_FILE", nullptr);
    std::string msg = error_of(ErrorKind::kStorage, [&] { open(); });
    EXPECT_NE(msg.find("LLM_PROXY_SECRET"), std::string::npos) << msg;
  }
  // A key file (as SQLite keeps beside its database) holding the same secret.
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("llmproxy-pg-key-" + std::to_string(::getpid())))
          .string();
  std::filesystem::create_directories(dir);
  const std::string file = dir + "/key";
  std::ofstream(file) << "  " << conf::kTestSecret << "\n";
  {
    ScopedEnv key_file("LLM_PROXY_SECRET_FILE", file.c_str());
    auto s = open();
    auto c = s->find_connection("sealed");
    ASSERT_NE(c, std::nullopt);
    EXPECT_EQ(c->api_key, "sk-sealed-0123456789");
  }
  {
    const std::string missing = dir + "/missing";
    ScopedEnv key_file("LLM_PROXY_SECRET_FILE", missing.c_str());
    std::string msg = error_of(ErrorKind::kStorage, [&] { open(); });
    EXPECT_NE(msg.find(missing), std::string::npos) << msg;
    EXPECT_FALSE(std::filesystem::exists(missing)) << "the key file must not be created";
  }
  std::filesystem::remove_all(dir);
}

// ---- text ---------------------------------------------------------------------------

TEST_F(PostgresStoreTest, UsageTextIsStoredEvenWhenNotUtf8) {
  auto s = open();
  UsageRecord odd = usage(5, std::string("req-\xff\xfe-", 7) + std::string(1, '\0') + "end");
  odd.model = "caf\xc3\xa9 \xe2\x82\xac";  // valid UTF-8 stays as it is
  odd.vkey_name = "quote\" back\\slash {brace}, comma";
  std::vector<UsageRecord> batch = {odd, usage(6, "plain")};
  s->insert_usage(batch);
  auto out = s->list_usage({});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].request_id, "req-\xef\xbf\xbd\xef\xbf\xbd-end");
  EXPECT_EQ(out[1].model, odd.model);
  EXPECT_EQ(out[1].vkey_name, odd.vkey_name);
}

TEST_F(PostgresStoreTest, ConfigTextThatPostgresCannotHoldIsInvalid) {
  auto s = open();
  Connection nul = connection("nul");
  nul.name = std::string("a\0b", 3);
  error_of(ErrorKind::kInvalid, [&] { s->insert_connection(nul); });
  Connection latin1 = connection("latin1");
  latin1.name = "bad-\xff-utf8";
  error_of(ErrorKind::kInvalid, [&] { s->insert_connection(latin1); });
  EXPECT_TRUE(s->list_connections().empty());
}

TEST_F(PostgresStoreTest, LargeUsageBatchIsOneStatement) {
  auto s = open();
  std::vector<UsageRecord> batch;
  for (int i = 0; i < 20'000; ++i) batch.push_back(usage(i, "r" + std::to_string(i)));
  auto t0 = Clock::now();
  s->insert_usage(batch);
  auto took = Clock::now() - t0;
  UsageQuery newest;
  newest.limit = 1;
  EXPECT_EQ(s->list_usage(newest)[0].request_id, "r19999");
  EXPECT_EQ(sql("SELECT count(*), count(DISTINCT id) FROM usage_records"),
            (std::vector<std::vector<std::string>>{{"20000", "20000"}}));
  EXPECT_LT(took, milliseconds(20'000));
}

}  // namespace
}  // namespace llmproxy::storage
