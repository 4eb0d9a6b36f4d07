#include "tests/storage/backends.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

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

}  // namespace

std::vector<BackendFactory> conformance_backends() {
  // Backends that need a server (postgres, mongodb) are added here, listed
  // only when their test server is configured.
  return {
      BackendFactory{.name = "sqlite", .create = create_sqlite},
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
