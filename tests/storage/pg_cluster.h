// The PostgreSQL server the storage tests create their databases on, and a
// little raw SQL access for the tests that look behind the Store interface.
//
// The server is, in order of preference:
//   - LLM_PROXY_TEST_PG_URL: an existing server (a role that may CREATE
//     DATABASE), e.g. a CI service container;
//   - LLM_PROXY_TEST_PG_STATE: the state file of a private cluster that
//     tests/storage/pg_cluster.sh started (CTest does this once, as the
//     fixture around every PostgreSQL test);
//   - otherwise a private cluster this process starts with pg_cluster.sh on
//     first use and stops at exit (the test binary run by hand).
// A missing PostgreSQL installation is an error, not a reason to skip.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace llmproxy::storage::pgtest {

// A superuser (or CREATEDB) URL of the server, to its maintenance database.
// Throws std::runtime_error, with what to do, when there is no server.
const std::string& admin_url();

// `url` with its database name replaced by `db`.
std::string with_database(std::string_view url, std::string_view db);

// Creates an empty database with a name no other test (or test process) uses
// and returns its URL.
std::string create_database();
// Drops the database `url` names, closing whatever is still connected to it.
void drop_database(const std::string& url);

// Runs sql (one or more statements) on url; returns the last statement's rows
// as text, NULL as null_text. Throws std::runtime_error on any failure.
std::vector<std::vector<std::string>> query(const std::string& url, const std::string& sql,
                                            std::string_view null_text = "");

}  // namespace llmproxy::storage::pgtest
