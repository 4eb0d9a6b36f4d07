// Unit tests for choosing the database: storage::parse_location and
// storage::resolve_location (--db over LLM_PROXY_DB over DB_TYPE + DB_DSN over
// ./llm-proxy.db).
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "lib/domain/error.h"
#include "storage/store.h"

namespace llmproxy::storage {
namespace {

void expect_invalid(const std::function<void()>& fn) {
  try {
    fn();
    ADD_FAILURE() << "expected Error(kInvalid), nothing was thrown";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalid) << e.what();
    EXPECT_STRNE(e.what(), "");
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected Error(kInvalid), got: " << e.what();
  }
}

void expect_location(const Location& got, const std::string& backend, const std::string& target) {
  EXPECT_EQ(got.backend, backend);
  EXPECT_EQ(got.target, target);
}

// ---- parse_location --------------------------------------------------------------------------

TEST(ParseLocation, SqliteUrls) {
  expect_location(parse_location("sqlite:///var/lib/llm-proxy/t.db"), "sqlite",
                  "/var/lib/llm-proxy/t.db");
  expect_location(parse_location("sqlite:rel/t.db"), "sqlite", "rel/t.db");
  expect_location(parse_location("sqlite:t.db"), "sqlite", "t.db");
}

TEST(ParseLocation, PlainPaths) {
  expect_location(parse_location("/abs/path.db"), "sqlite", "/abs/path.db");
  expect_location(parse_location("rel/path.db"), "sqlite", "rel/path.db");
  expect_location(parse_location("llm-proxy.db"), "sqlite", "llm-proxy.db");
  expect_location(parse_location("./with:colon.db"), "sqlite", "./with:colon.db");
}

TEST(ParseLocation, ServerUrlsKeepTheWholeUrl) {
  const std::string pg = "postgres://user:pw@db.example:5432/llmproxy?sslmode=require";
  expect_location(parse_location(pg), "postgres", pg);
  const std::string pgl = "postgresql://user@localhost/llmproxy";
  expect_location(parse_location(pgl), "postgres", pgl);
  const std::string mongo = "mongodb://user:pw@mongo1:27017,mongo2:27017/llmproxy?replicaSet=rs0";
  expect_location(parse_location(mongo), "mongodb", mongo);
  const std::string srv = "mongodb+srv://cluster0.example.net/llmproxy";
  expect_location(parse_location(srv), "mongodb", srv);
}

TEST(ParseLocation, RejectsUnknownSchemesAndEmptyValues) {
  for (const char* bad : {"mysql://host/db", "ftp://host/x.db", "http://host/x", "redis://h", "",
                          "sqlite:", "sqlite://"}) {
    SCOPED_TRACE(bad);
    expect_invalid([&] { (void)parse_location(bad); });
  }
}

TEST(ParseLocation, UnknownSchemeMessageNamesIt) {
  try {
    (void)parse_location("mysql://host/db");
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mysql"), std::string::npos) << e.what();
  }
}

// ---- resolve_location ------------------------------------------------------------------------

class ResolveLocation : public ::testing::Test {
 protected:
  static constexpr const char* kVars[] = {"LLM_PROXY_DB", "DB_TYPE", "DB_DSN"};

  void SetUp() override {
    for (const char* v : kVars) {
      const char* old = std::getenv(v);
      saved_[v] = old ? std::optional<std::string>(old) : std::nullopt;
      unsetenv(v);
    }
  }
  void TearDown() override {
    for (const char* v : kVars) {
      if (saved_[v])
        setenv(v, saved_[v]->c_str(), 1);
      else
        unsetenv(v);
    }
  }
  static void set(const char* name, const char* value) { setenv(name, value, 1); }

  std::map<std::string, std::optional<std::string>> saved_;
};

TEST_F(ResolveLocation, DefaultIsLlmProxyDbInTheWorkingDirectory) {
  expect_location(resolve_location(std::nullopt), "sqlite", "llm-proxy.db");
}

TEST_F(ResolveLocation, FlagWinsOverEverything) {
  set("LLM_PROXY_DB", "sqlite:///from/env.db");
  set("DB_TYPE", "sqlite");
  set("DB_DSN", "/from/dsn.db");
  expect_location(resolve_location(std::string("/from/flag.db")), "sqlite", "/from/flag.db");
  expect_location(resolve_location(std::string("postgres://h/db")), "postgres", "postgres://h/db");
}

TEST_F(ResolveLocation, FlagIsParsedLikeAUrl) {
  expect_location(resolve_location(std::string("sqlite:///abs/x.db")), "sqlite", "/abs/x.db");
  expect_invalid([] { (void)resolve_location(std::string("mysql://h/db")); });
  // A malformed flag fails even when the environment holds a good value.
  set("LLM_PROXY_DB", "/good.db");
  expect_invalid([] { (void)resolve_location(std::string("ftp://h/x")); });
}

TEST_F(ResolveLocation, LlmProxyDbWinsOverDbTypeAndDsn) {
  set("LLM_PROXY_DB", "sqlite:///from/env.db");
  set("DB_TYPE", "postgres");
  set("DB_DSN", "postgres://h/db");
  expect_location(resolve_location(std::nullopt), "sqlite", "/from/env.db");
  set("LLM_PROXY_DB", "mongodb://m/db");
  expect_location(resolve_location(std::nullopt), "mongodb", "mongodb://m/db");
  set("LLM_PROXY_DB", "plain/path.db");
  expect_location(resolve_location(std::nullopt), "sqlite", "plain/path.db");
}

TEST_F(ResolveLocation, MalformedLlmProxyDbIsInvalid) {
  set("LLM_PROXY_DB", "mysql://h/db");
  expect_invalid([] { (void)resolve_location(std::nullopt); });
}

TEST_F(ResolveLocation, EmptyVariablesCountAsUnset) {
  set("LLM_PROXY_DB", "");
  expect_location(resolve_location(std::nullopt), "sqlite", "llm-proxy.db");
  set("DB_TYPE", "sqlite");
  set("DB_DSN", "/from/dsn.db");
  expect_location(resolve_location(std::nullopt), "sqlite", "/from/dsn.db");
}

TEST_F(ResolveLocation, DbTypeAndDsn) {
  set("DB_TYPE", "sqlite");
  set("DB_DSN", "/abs/path.db");
  expect_location(resolve_location(std::nullopt), "sqlite", "/abs/path.db");
  set("DB_DSN", "rel/path.db");
  expect_location(resolve_location(std::nullopt), "sqlite", "rel/path.db");
  set("DB_DSN", "sqlite:///abs/url.db");
  expect_location(resolve_location(std::nullopt), "sqlite", "/abs/url.db");

  set("DB_TYPE", "postgres");
  set("DB_DSN", "postgres://user:pw@h:5432/db");
  expect_location(resolve_location(std::nullopt), "postgres", "postgres://user:pw@h:5432/db");
  set("DB_TYPE", "postgresql");
  expect_location(resolve_location(std::nullopt), "postgres", "postgres://user:pw@h:5432/db");

  set("DB_TYPE", "mongodb");
  set("DB_DSN", "mongodb://h:27017/db");
  expect_location(resolve_location(std::nullopt), "mongodb", "mongodb://h:27017/db");
}

TEST_F(ResolveLocation, DbTypeWithoutDsnIsInvalid) {
  set("DB_TYPE", "sqlite");
  expect_invalid([] { (void)resolve_location(std::nullopt); });
  set("DB_TYPE", "postgres");
  expect_invalid([] { (void)resolve_location(std::nullopt); });
}

TEST_F(ResolveLocation, DsnWithoutDbTypeIsInvalid) {
  set("DB_DSN", "/abs/path.db");
  expect_invalid([] { (void)resolve_location(std::nullopt); });
}

TEST_F(ResolveLocation, UnknownDbTypeIsInvalid) {
  set("DB_TYPE", "oracle");
  set("DB_DSN", "oracle://h/db");
  expect_invalid([] { (void)resolve_location(std::nullopt); });
  try {
    (void)resolve_location(std::nullopt);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("oracle"), std::string::npos) << e.what();
  }
}

TEST_F(ResolveLocation, FlagWinsEvenOverAHalfSetEnvironment) {
  set("DB_TYPE", "sqlite");  // no DB_DSN: invalid, but never looked at
  expect_location(resolve_location(std::string("/flag.db")), "sqlite", "/flag.db");
}

// ---- open_store --------------------------------------------------------------------------------

TEST(OpenStore, SqliteInAMissingDirectoryIsAStorageError) {
  try {
    (void)open_store(Location{"sqlite", "/nonexistent-llm-proxy-dir/sub/t.db"});
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kStorage) << e.what();
  }
}

TEST(OpenStore, UnknownBackendIsInvalid) {
  expect_invalid([] { (void)open_store(Location{"oracle", "oracle://h/db"}); });
}

}  // namespace
}  // namespace llmproxy::storage
