// MongoDB-only storage tests: what the conformance suite cannot see through the
// Store interface (the documents and indexes behind it, migrations run twice,
// passwords in messages, DB_TYPE/DB_DSN, which path multi-document changes
// take). Each test gets a database of its own (tests/storage/mongo_test_server.h).
#include <gtest/gtest.h>
#include <mongoc/mongoc.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "lib/crypto/hash.h"
#include "lib/domain/error.h"
#include "storage/mongo/mongo_store.h"
#include "storage/store.h"
#include "tests/storage/backends.h"
#include "tests/storage/mongo_test_server.h"

namespace llmproxy::storage {
namespace {

namespace conf = conformance;

Connection connection(const std::string& name) {
  Connection c;
  c.name = name;
  c.provider = Provider::kOpenAI;
  c.endpoint = "https://" + name + ".example.com/v1";
  c.api_key = "sk-live-" + name + "-0123456789";
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

// Direct access to the test database, beside the store.
class RawDb {
 public:
  explicit RawDb(const std::string& url) {
    mongoc_init();
    client_ = mongoc_client_new(url.c_str());
    mongoc_uri_t* uri = mongoc_uri_new(url.c_str());
    db_ = mongoc_uri_get_database(uri);
    mongoc_uri_destroy(uri);
  }
  ~RawDb() { mongoc_client_destroy(client_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  // Every document of a collection (or of a cursor-returning command), as
  // canonical extended JSON.
  std::vector<std::string> find(const char* coll, const char* filter_json = "{}",
                                const char* opts_json = "{}") {
    bson_t* filter = bson_new_from_json(reinterpret_cast<const uint8_t*>(filter_json), -1, nullptr);
    bson_t* opts = bson_new_from_json(reinterpret_cast<const uint8_t*>(opts_json), -1, nullptr);
    mongoc_collection_t* c = mongoc_client_get_collection(client_, db_.c_str(), coll);
    mongoc_cursor_t* cur = mongoc_collection_find_with_opts(c, filter, opts, nullptr);
    bson_destroy(opts);
    std::vector<std::string> out = drain(cur);
    mongoc_collection_destroy(c);
    bson_destroy(filter);
    return out;
  }
  std::vector<std::string> indexes(const char* coll) {
    mongoc_collection_t* c = mongoc_client_get_collection(client_, db_.c_str(), coll);
    mongoc_cursor_t* cur = mongoc_collection_find_indexes_with_opts(c, nullptr);
    std::vector<std::string> out = drain(cur);
    mongoc_collection_destroy(c);
    return out;
  }
  // Inserts a document; returns the reply (with writeErrors) as JSON.
  std::string insert(const char* coll, const char* json, bool* ok) {
    bson_t* doc = bson_new_from_json(reinterpret_cast<const uint8_t*>(json), -1, nullptr);
    mongoc_collection_t* c = mongoc_client_get_collection(client_, db_.c_str(), coll);
    bson_t reply;
    bson_error_t e;
    *ok = mongoc_collection_insert_one(c, doc, nullptr, &reply, &e);
    std::string out = json_of(&reply) + " " + e.message;
    bson_destroy(&reply);
    mongoc_collection_destroy(c);
    bson_destroy(doc);
    return out;
  }

 private:
  static std::string json_of(const bson_t* d) {
    char* s = bson_as_relaxed_extended_json(d, nullptr);
    std::string out = s ? s : "";
    bson_free(s);
    return out;
  }
  static std::vector<std::string> drain(mongoc_cursor_t* cur) {
    std::vector<std::string> out;
    const bson_t* d = nullptr;
    while (mongoc_cursor_next(cur, &d)) out.push_back(json_of(d));
    bson_error_t e;
    if (mongoc_cursor_error(cur, &e)) ADD_FAILURE() << "cursor: " << e.message;
    mongoc_cursor_destroy(cur);
    return out;
  }

  mongoc_client_t* client_ = nullptr;
  std::string db_;
};

bool contains(const std::vector<std::string>& docs, const std::string& needle) {
  for (const std::string& d : docs)
    if (d.find(needle) != std::string::npos) return true;
  return false;
}

class MongoStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = mongotest::create_database();
    conf::reset_test_secret();
  }
  void TearDown() override {
    ::unsetenv("DB_TYPE");
    ::unsetenv("DB_DSN");
    conf::reset_test_secret();
    mongotest::drop_database(url_);
  }
  std::unique_ptr<Store> open() { return open_store({"mongodb", url_}); }

  std::string url_;
};

TEST_F(MongoStoreTest, StandaloneServersTakeTheSafeOrderPath) {
  auto store = open();
  auto* mongo = dynamic_cast<MongoStore*>(store.get());
  ASSERT_NE(mongo, nullptr);
  if (mongotest::using_test_server()) {
    EXPECT_FALSE(mongo->uses_server_transactions())
        << "the test server reports a standalone: no transactions";
  }
  std::cout << "MongoDB multi-document changes: "
            << (mongo->uses_server_transactions() ? "server transactions"
                                                  : "safe order + undo journal (standalone)")
            << "\n";
}

// 1: the configuration and usage collections; 2: admin_users; 3: plans.
constexpr int kLatestMigration = 3;

TEST_F(MongoStoreTest, MigrationsAreRecordedAndSafeToRunTwice) {
  {
    auto store = open();
    store->insert_connection(connection("before-reopen"));
    EXPECT_EQ(store->schema_version(), kLatestMigration);
  }
  const std::int64_t version = open()->config_version();
  for (int i = 0; i < 2; ++i) {
    auto again = open();
    EXPECT_EQ(again->schema_version(), kLatestMigration);
    EXPECT_EQ(again->config_version(), version) << "reopening must not reset config_version";
    EXPECT_EQ(again->list_connections().size(), 1u);
  }
  RawDb raw(url_);
  EXPECT_EQ(raw.find("schema_migrations").size(), static_cast<std::size_t>(kLatestMigration));
}

TEST_F(MongoStoreTest, UniqueIndexesMatchSqlitesConstraints) {
  open();
  RawDb raw(url_);
  auto has_unique = [&](const char* coll, const char* key) {
    for (const std::string& ix : raw.indexes(coll)) {
      if (ix.find(std::string("\"key\" : { \"") + key + "\" : 1 }") != std::string::npos &&
          ix.find("\"unique\" : true") != std::string::npos)
        return true;
    }
    return false;
  };
  EXPECT_TRUE(has_unique("connections", "name"));
  EXPECT_TRUE(has_unique("models", "name"));
  EXPECT_TRUE(has_unique("vkeys", "name"));
  EXPECT_TRUE(has_unique("vkeys", "key_hash"));
  EXPECT_TRUE(has_unique("admin_users", "username"));
  EXPECT_TRUE(has_unique("plans", "name"));
}

TEST_F(MongoStoreTest, DuplicateKeysFailWithTheServersErrorShape) {
  auto store = open();
  store->insert_vkey(vkey("taken"));
  RawDb raw(url_);
  bool ok = true;
  std::string reply = raw.insert("vkeys", R"({"_id": 999, "name": "other", "key_hash": "x"})", &ok);
  EXPECT_TRUE(ok) << reply;
  reply = raw.insert("vkeys", R"({"_id": 1000, "name": "taken", "key_hash": "y"})", &ok);
  EXPECT_FALSE(ok);
  EXPECT_NE(reply.find("11000"), std::string::npos) << reply;
  EXPECT_NE(reply.find("E11000 duplicate key error"), std::string::npos) << reply;
  EXPECT_NE(reply.find("keyPattern"), std::string::npos) << reply;
}

TEST_F(MongoStoreTest, IdsComeFromCountersAndDocumentsUseThemAsId) {
  auto store = open();
  Id a = store->insert_connection(connection("first"));
  Id b = store->insert_connection(connection("second"));
  EXPECT_EQ(b, a + 1);
  RawDb raw(url_);
  EXPECT_TRUE(contains(raw.find("meta", R"({"_id": "counter:connections"})"),
                       "\"value\" : " + std::to_string(b)));
  EXPECT_TRUE(contains(raw.find("connections"), "\"_id\" : " + std::to_string(a)));
  // A failed insert does not reuse an id (like a SQL sequence).
  EXPECT_THROW(store->insert_connection(connection("first")), Error);
  EXPECT_GT(store->insert_connection(connection("third")), b + 1);
}

TEST_F(MongoStoreTest, CursorsReturnEverythingAcrossBatches) {
  auto store = open();
  std::vector<UsageRecord> batch;
  for (int i = 0; i < 25; ++i) {
    UsageRecord r;
    r.ts = 1'767'225'600'000 + i;
    r.request_id = "req-" + std::to_string(i);
    r.status = 200;
    batch.push_back(r);
  }
  store->insert_usage(batch);
  RawDb raw(url_);
  // Batches of 4: one find and several getMore round trips.
  auto docs = raw.find("usage_records", "{}", R"({"batchSize": 4, "sort": {"ts": 1}})");
  ASSERT_EQ(docs.size(), 25u);
  EXPECT_NE(docs[0].find("req-0\""), std::string::npos) << docs[0];
  EXPECT_NE(docs[24].find("req-24\""), std::string::npos) << docs[24];
  EXPECT_EQ(store->list_usage({}).size(), 25u);
}

TEST_F(MongoStoreTest, SecretsAreSealedInTheDocuments) {
  auto store = open();
  Connection c = connection("sealed");
  c.api_key = "sk-live-SECRET-1234567890";
  c.headers = {{"X-Api-Key", "HEADER-SECRET-4242424242"}};
  store->insert_connection(c);
  RawDb raw(url_);
  auto docs = raw.find("connections");
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_NE(docs[0].find("sealed"), std::string::npos);
  EXPECT_EQ(docs[0].find("sk-live-SECRET-1234567890"), std::string::npos) << docs[0];
  EXPECT_EQ(docs[0].find("HEADER-SECRET-4242424242"), std::string::npos) << docs[0];
}

TEST_F(MongoStoreTest, PasswordsNeverAppearInMessages) {
  const std::string pw = "Pa55w0rd-Never-Shown";
  // Nothing listens on port 1: unreachable.
  const std::string url = "mongodb://llm:" + pw + "@127.0.0.1:1/db?serverSelectionTimeoutMS=300";
  try {
    open_store({"mongodb", url});
    ADD_FAILURE() << "opened a store on an unreachable server";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kStorage);
    EXPECT_EQ(std::string(e.what()).find(pw), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("127.0.0.1"), std::string::npos) << e.what();
  }
  // Malformed: bad input, still without the password.
  try {
    open_store({"mongodb", "mongodb://llm:" + pw + "@/db?notAnOption=" + pw});
    ADD_FAILURE() << "accepted a URL without a host";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalid) << e.what();
    EXPECT_EQ(std::string(e.what()).find(pw), std::string::npos) << e.what();
  }
  // describe() of a working store.
  auto store = open();
  EXPECT_EQ(store->describe().find('@'), std::string::npos) << store->describe();
}

TEST_F(MongoStoreTest, DbTypeAndDsnSelectMongodb) {
  ::setenv("DB_TYPE", "mongodb", 1);
  ::setenv("DB_DSN", url_.c_str(), 1);
  Location where = resolve_location(std::nullopt);
  EXPECT_EQ(where.backend, "mongodb");
  auto store = open_store(where);
  EXPECT_EQ(store->backend(), "mongodb");
  store->insert_connection(connection("via-env"));
  EXPECT_NE(open()->find_connection("via-env"), std::nullopt);
}

TEST_F(MongoStoreTest, TheDatabaseDefaultsToLlmProxy) {
  if (!mongotest::using_test_server())
    GTEST_SKIP() << "would write to the database llm_proxy of a real server";
  const std::string url = mongotest::url_for("");
  auto store = open_store({"mongodb", url});
  EXPECT_NE(store->describe().find("/llm_proxy"), std::string::npos) << store->describe();
}

TEST_F(MongoStoreTest, ACaughtErrorInsideATransactionLeavesItUsable) {
  auto store = open();
  if (dynamic_cast<MongoStore&>(*store).uses_server_transactions())
    GTEST_SKIP() << "a server transaction is aborted by the server on a write error";
  store->insert_connection(connection("taken"));
  store->transaction([&] {
    store->insert_connection(connection("kept"));
    EXPECT_THROW(store->insert_connection(connection("taken")), Error);
    store->insert_connection(connection("also-kept"));
  });
  auto other = open();
  EXPECT_NE(other->find_connection("kept"), std::nullopt);
  EXPECT_NE(other->find_connection("also-kept"), std::nullopt);
}

// Without server transactions a command's writes are visible before it
// fails; a reader that loaded them then must see the version move once more
// when they are taken back, or it would keep serving what never happened.
TEST_F(MongoStoreTest, AReaderThatSawARolledBackWriteIsToldToReload) {
  auto store = open();
  if (dynamic_cast<MongoStore&>(*store).uses_server_transactions())
    GTEST_SKIP() << "a server transaction's writes are not visible before it commits";
  auto reader = open();
  std::int64_t seen = 0;
  EXPECT_THROW(store->transaction([&] {
    store->insert_connection(connection("transient"));
    ConfigData during = reader->load_config();  // what serve would load now
    ASSERT_EQ(during.connections.size(), 1u);
    seen = during.version;
    throw std::runtime_error("the command fails after its first write");
  }),
               std::runtime_error);
  ASSERT_GT(seen, 0);
  EXPECT_NE(reader->config_version(), seen) << "the reader would keep the rolled-back config";
  EXPECT_GT(reader->config_version(), seen) << "the version never goes back";
  ConfigData after = reader->load_config();
  EXPECT_TRUE(after.connections.empty());
  EXPECT_EQ(store->find_connection("transient"), std::nullopt);
}

// ---- change notification -------------------------------------------------------

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A standalone server has no change streams (it answers $changeStream with
// error 40573, as the wire-protocol test server does): serve polls.
TEST_F(MongoStoreTest, WaitForChangeFallsBackToPollingOnAStandalone) {
  auto store = open();
  if (dynamic_cast<MongoStore&>(*store).uses_server_transactions())
    GTEST_SKIP() << "a replica set has change streams";
  for (int i = 0; i < 2; ++i) {
    auto t0 = Clock::now();
    EXPECT_FALSE(store->wait_for_change(milliseconds(5000))) << "call " << i;
    EXPECT_LT(Clock::now() - t0, milliseconds(2500)) << "call " << i << " waited";
  }
}

// On a replica set (LLM_PROXY_TEST_MONGODB_URI=…?replicaSet=…) a change stream on
// the config version wakes the waiter.
TEST_F(MongoStoreTest, WaitForChangeWakesOnACommittedChange) {
  auto watcher = open();
  if (!dynamic_cast<MongoStore&>(*watcher).uses_server_transactions())
    GTEST_SKIP() << "change streams need a replica set (this server is a standalone)";
  auto writer = open();
  // The first call opens the stream and returns at once.
  auto t0 = Clock::now();
  EXPECT_TRUE(watcher->wait_for_change(milliseconds(5000)));
  EXPECT_LT(Clock::now() - t0, milliseconds(2500));

  // A change committed once the stream is open is delivered, whenever the
  // wait begins.
  const std::int64_t v0 = watcher->config_version();
  writer->insert_connection(connection("notified"));
  t0 = Clock::now();
  EXPECT_TRUE(watcher->wait_for_change(milliseconds(20'000)));
  EXPECT_LT(Clock::now() - t0, milliseconds(5'000)) << "not woken by the change";
  EXPECT_GT(watcher->config_version(), v0);

  // Nothing committed: the wait runs out its timeout.
  EXPECT_THROW(writer->transaction([&] {
    writer->insert_connection(connection("rolled-back"));
    throw std::runtime_error("abort");
  }),
               std::runtime_error);
  t0 = Clock::now();
  EXPECT_TRUE(watcher->wait_for_change(milliseconds(600)));
  EXPECT_GE(Clock::now() - t0, milliseconds(550)) << "woken by a rolled-back change";

  // Usage is not configuration.
  UsageRecord r;
  r.ts = 1'700'000'000'000;
  r.request_id = "u";
  r.model = "m";
  r.status = 200;
  writer->insert_usage(std::vector<UsageRecord>{r});
  t0 = Clock::now();
  EXPECT_TRUE(watcher->wait_for_change(milliseconds(600)));
  EXPECT_GE(Clock::now() - t0, milliseconds(550)) << "woken by a usage insert";

  // interrupt_wait() ends the next wait at once.
  watcher->interrupt_wait();
  t0 = Clock::now();
  EXPECT_TRUE(watcher->wait_for_change(milliseconds(30'000)));
  EXPECT_LT(Clock::now() - t0, milliseconds(2'000));
}

}  // namespace
}  // namespace llmproxy::storage
