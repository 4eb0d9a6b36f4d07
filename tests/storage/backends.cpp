#include "tests/storage/backends.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

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

}  // namespace

std::vector<BackendFactory> conformance_backends() {
  // Backends that need a server are always listed: a missing server fails
  // their tests rather than skipping them (packaging/install-deps.sh test
  // installs PostgreSQL).
  return {
      BackendFactory{.name = "sqlite", .create = create_sqlite},
      BackendFactory{.name = "postgres", .create = create_postgres},
      BackendFactory{.name = "mongodb", .create = create_mongodb},
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
