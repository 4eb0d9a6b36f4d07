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
};

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
