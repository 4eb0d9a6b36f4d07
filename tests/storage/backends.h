// The backends the storage conformance suite runs against. Every entry of
// conformance_backends() gets the whole suite, with the test names suffixed by
// the entry's name. Adding a backend (postgres, mongodb) means adding one entry
// to the table in backends.cpp; the tests themselves do not change.
#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "storage/store.h"

namespace llmproxy::storage::conformance {

// The secret every test store is opened with (through LLM_PROXY_SECRET), so no
// key file is needed and runs are deterministic.
inline constexpr std::string_view kTestSecret = "storage-conformance-test-secret";

// One fresh, empty database for one test.
struct TestDatabase {
  // What open_store is given. It may be opened any number of times, also
  // while another store on it is still open.
  Location location;
  // Removes the database and everything create() made for it.
  std::function<void()> cleanup;
};

struct BackendFactory {
  // Equals Store::backend() of the stores opened on it; suffixes test names,
  // so letters, digits and underscores only.
  std::string name;
  // Makes a fresh, empty database. Throws when that is impossible.
  std::function<TestDatabase()> create;
  // Makes a fresh database of the schema before plans (SQLite 4, PostgreSQL
  // and MongoDB 2), holding what that release wrote: the rows below, for the
  // upgrade test.
  std::function<TestDatabase()> create_previous;
};

// What a database from create_previous holds, every row as the previous
// release stored it (config_version kPreviousConfigVersion; times
// kPreviousCreated / kPreviousUpdated unless said otherwise):
//   - connection "old-conn": openai, https://old.example.com/v1, timeout
//     30000 ms, no secrets;
//   - model "old-model" on it: remote "gpt-old", input price 2.5, no output
//     price;
//   - key "old-key": hash kPreviousKeyHash, hint "sk-ol...key", disabled,
//     expiring at kPreviousExpiry;
//   - assignments of old-key: to old-conn (tps 2.5, rpm 120, 50000 tokens per
//     hour), then to old-model (no limits);
//   - a usage record "old-req" of old-key at kPreviousUsageTs: model
//     old-model, status 200, 12.5 ms, 10 + 20 tokens, cost 0.0001;
//   - admin user "old-admin", viewer, hash kPreviousAdminHash.
inline constexpr std::int64_t kPreviousConfigVersion = 41;
inline constexpr std::int64_t kPreviousCreated = 1'735'689'600'000;  // 2025-01-01T00:00:00Z
inline constexpr std::int64_t kPreviousUpdated = kPreviousCreated + 1'000;
inline constexpr std::int64_t kPreviousExpiry = 1'798'761'599'999;  // 2026-12-31T23:59:59.999Z
inline constexpr std::int64_t kPreviousUsageTs = kPreviousCreated + 3'600'000;
inline constexpr std::string_view kPreviousKeyHash =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
inline constexpr std::string_view kPreviousAdminHash = "pbkdf2-sha256$1$c2FsdA==$aGFzaA==";

// Names the backend in GoogleTest's messages ("where GetParam() = sqlite").
inline void PrintTo(const BackendFactory& b, std::ostream* os) {
  *os << b.name;
}

// Every backend the suite runs against.
std::vector<BackendFactory> conformance_backends();

// Sets LLM_PROXY_SECRET to `secret` and opens the store at db.location.
std::unique_ptr<Store> open_test_store(const TestDatabase& db,
                                       std::string_view secret = kTestSecret);

// Sets LLM_PROXY_SECRET back to kTestSecret.
void reset_test_secret();

}  // namespace llmproxy::storage::conformance
