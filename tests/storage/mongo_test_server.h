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

#include <string>

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

}  // namespace llmproxy::storage::mongotest
