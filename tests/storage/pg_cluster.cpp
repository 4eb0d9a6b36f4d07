#include "tests/storage/pg_cluster.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>

#include "storage/url.h"

#ifndef LLM_PROXY_PG_CLUSTER_SCRIPT
#error "LLM_PROXY_PG_CLUSTER_SCRIPT must name tests/storage/pg_cluster.sh"
#endif

namespace llmproxy::storage::pgtest {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// PG_CLUSTER_URL from a state file pg_cluster.sh wrote.
std::string url_from_state(const std::string& state) {
  std::ifstream in(state);
  if (!in) {
    throw std::runtime_error("no PostgreSQL test cluster: cannot read " + state +
                             " (LLM_PROXY_TEST_PG_STATE); the CTest fixture "
                             "storage.pg_cluster_start should have written it");
  }
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("PG_CLUSTER_URL=")) return line.substr(15);
  }
  throw std::runtime_error(state + " has no PG_CLUSTER_URL: the cluster did not start");
}

// Runs pg_cluster.sh; throws with its output when it fails.
void run_script(const std::string& action, const std::string& state) {
  std::string cmd =
      std::string("bash '") + LLM_PROXY_PG_CLUSTER_SCRIPT + "' " + action + " '" + state + "' 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("popen: " + std::string(std::strerror(errno)));
  std::string out;
  char buf[512];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int rc = ::pclose(p);
  if (rc != 0) {
    throw std::runtime_error("PostgreSQL test cluster: `pg_cluster.sh " + action + "` failed:\n" +
                             out);
  }
  if (action == "start") std::cerr << out;
}

// A cluster of this process's own, stopped when the process exits.
class PrivateCluster {
 public:
  PrivateCluster() {
    const std::string tmp = env("TMPDIR").empty() ? "/tmp" : env("TMPDIR");
    std::string dir = tmp + "/llmproxy-pg-state-XXXXXX";
    if (!::mkdtemp(dir.data())) throw std::runtime_error("mkdtemp: " + dir);
    dir_ = dir;
    state_ = dir + "/state";
    try {
      run_script("start", state_);
      url_ = url_from_state(state_);
    } catch (...) {
      stop();
      throw;
    }
  }
  ~PrivateCluster() { stop(); }
  PrivateCluster(const PrivateCluster&) = delete;
  PrivateCluster& operator=(const PrivateCluster&) = delete;

  const std::string& url() const { return url_; }

 private:
  void stop() {
    try {
      run_script("stop", state_);
    } catch (const std::exception& e) {
      std::cerr << e.what() << "\n";
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string dir_, state_, url_;
};

std::string find_admin_url() {
  if (std::string url = env("LLM_PROXY_TEST_PG_URL"); !url.empty()) return url;
  if (std::string state = env("LLM_PROXY_TEST_PG_STATE"); !state.empty()) {
    return url_from_state(state);
  }
  static PrivateCluster cluster;  // stopped by static destruction at exit
  return cluster.url();
}

struct ConnFree {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct ResultFree {
  void operator()(PGresult* r) const { PQclear(r); }
};

std::string quote_ident(std::string_view name) {
  std::string out = "\"";
  for (char ch : name) {
    if (ch == '"') out += '"';
    out += ch;
  }
  return out + "\"";
}

// The database name in a URL (what with_database replaces).
std::string database_of(const std::string& url) {
  PQconninfoOption* opts = PQconninfoParse(url.c_str(), nullptr);
  std::string db;
  for (PQconninfoOption* o = opts; o && o->keyword; ++o)
    if (std::string_view(o->keyword) == "dbname" && o->val) db = o->val;
  PQconninfoFree(opts);
  return db;
}

}  // namespace

const std::string& admin_url() {
  // Not a function-local static initialised by a throwing call: every caller
  // after a failure sees the same failure again instead of a retry.
  static std::once_flag once;
  static std::string url;
  static std::string error;
  std::call_once(once, [] {
    try {
      url = find_admin_url();
    } catch (const std::exception& e) {
      error = e.what();
      std::cerr << "\n*** PostgreSQL storage tests cannot run: " << error << "\n";
    }
  });
  if (!error.empty()) throw std::runtime_error(error);
  return url;
}

std::string with_database(std::string_view url, std::string_view db) {
  auto parts = llmproxy::storage::split_url(url);
  if (!parts) {  // keyword/value: the last dbname wins
    return std::string(url) + " dbname='" + std::string(db) + "'";
  }
  return parts->with_path(db);
}

std::string create_database() {
  static std::atomic<int> counter{0};
  static const unsigned salt = std::random_device{}();
  char name[64];
  std::snprintf(name, sizeof name, "llmproxy_test_%d_%d_%08x", static_cast<int>(::getpid()),
                ++counter, salt);
  query(admin_url(), std::string("CREATE DATABASE ") + name);
  return with_database(admin_url(), name);
}

void drop_database(const std::string& url) {
  query(admin_url(), "DROP DATABASE IF EXISTS " + quote_ident(database_of(url)) + " WITH (FORCE)");
}

std::vector<std::vector<std::string>> query(const std::string& url, const std::string& sql,
                                            std::string_view null_text) {
  std::unique_ptr<PGconn, ConnFree> conn(PQconnectdb(url.c_str()));
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
    throw std::runtime_error("cannot connect to the PostgreSQL test server: " +
                             std::string(conn ? PQerrorMessage(conn.get()) : "out of memory"));
  }
  PQsetNoticeProcessor(
      conn.get(), [](void*, const char*) {}, nullptr);
  std::unique_ptr<PGresult, ResultFree> res(PQexec(conn.get(), sql.c_str()));
  auto status = PQresultStatus(res.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    throw std::runtime_error("PostgreSQL test query failed: " + sql + ": " +
                             PQerrorMessage(conn.get()));
  }
  std::vector<std::vector<std::string>> rows;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    auto& row = rows.emplace_back();
    for (int c = 0; c < PQnfields(res.get()); ++c) {
      row.emplace_back(PQgetisnull(res.get(), r, c) ? null_text : PQgetvalue(res.get(), r, c));
    }
  }
  return rows;
}

}  // namespace llmproxy::storage::pgtest
