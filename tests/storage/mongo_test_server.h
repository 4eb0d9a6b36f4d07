// The MongoDB server the storage tests create their databases on.
//
//   - LLM_PROXY_TEST_MONGODB_URI: an existing server (mongodb://host:port,
//     options allowed, e.g. ?replicaSet=rs0 or, with credentials,
//     ?authSource=admin; the path is replaced: each test gets a database of
//     its own on it, dropped afterwards);
//   - otherwise tests/storage/fake_mongod.py, a wire-protocol test server this
//     process starts on a free loopback port on first use (and that exits with
//     this process). It reports itself as a standalone, so the backend's
//     no-transaction path is what runs.
// Which one ran is printed once per process.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace llmproxy::storage::mongotest {

// A URL naming a new database no other test (or test process) uses.
std::string create_database();
// Drops the database `url` names (nothing to do on the test server, whose
// data dies with it; done anyway, through the same command a real server gets).
void drop_database(const std::string& url);
// The server's URL naming database `db` (with the server's options).
std::string url_for(const std::string& db);
// True when the tests run against tests/storage/fake_mongod.py.
bool using_test_server();

// Raw access for tests that look behind the Store interface, on the database
// `url` names. JSON in is MongoDB extended JSON ({"$numberLong": "…"} for
// int64); documents out are relaxed extended JSON (numbers as plain numbers).
// Throw std::runtime_error on any failure.
std::vector<std::string> collection_names(const std::string& url);
std::vector<std::string> find(const std::string& url, const std::string& collection,
                              const std::string& filter_json = "{}");
std::int64_t count(const std::string& url, const std::string& collection,
                   const std::string& filter_json = "{}");
void insert(const std::string& url, const std::string& collection, const std::string& doc_json);
// Reserves the next value of the store's id counter for `collection` (the
// counter document the backend allocates _ids from).
std::int64_t next_id(const std::string& url, const std::string& collection);

}  // namespace llmproxy::storage::mongotest
