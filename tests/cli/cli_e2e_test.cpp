// End-to-end tests of the llm-proxy binary: each test runs the built CLI as a
// child process against its own temporary directory and checks stdout, stderr,
// the exit code and, where the contract is about what is stored, the SQLite
// files themselves.
//
// With LLM_PROXY_TEST_CLI_PG=1 the same tests run against PostgreSQL instead:
// each test gets a database of its own on the server tests/storage/pg_cluster.h
// finds (LLM_PROXY_TEST_PG_URL=postgres://…, the CTest fixture's cluster, or a
// private cluster started for the run), the CLI gets the encryption key through
// LLM_PROXY_SECRET_FILE, "what is stored" is every table's rows as text, and
// the few tests about SQLite's files are skipped.
//
// With LLM_PROXY_TEST_CLI_MONGO=1 they run against MongoDB: each test gets a
// database of its own on the server tests/storage/mongo_test_server.h finds
// (LLM_PROXY_TEST_MONGODB_URI, else tests/storage/fake_mongod.py, the
// wire-protocol test server, started for the test process; the output says
// which), "what is stored" is every document of every collection as JSON.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/storage/mongo_test_server.h"
#include "tests/storage/pg_cluster.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
namespace mongotest = llmproxy::storage::mongotest;
using nlohmann::json;

// ---- running the binary ------------------------------------------------------------

struct RunResult {
  int code = -1;
  std::string out;
  std::string err;
};

// Environment overrides for the child: a value sets the variable, nullopt
// removes it. The variables that choose the database or the secret are always
// removed first, so the caller's environment cannot leak into a test.
using Env = std::map<std::string, std::optional<std::string>>;

const char* const kScrubbed[] = {"LLM_PROXY_DB", "DB_TYPE", "DB_DSN", "LLM_PROXY_SECRET",
                                 "LLM_PROXY_SECRET_FILE"};

// PostgreSQL mode (see the top of the file). LLM_PROXY_TEST_CLI_PG may also be
// the path of a pg_cluster.sh state file, which CTest passes this way (one
// variable, as gtest_discover_tests cannot set two).
bool on_postgres() {
  static const bool pg = [] {
    const char* v = std::getenv("LLM_PROXY_TEST_CLI_PG");
    if (!v || !*v || std::string(v) == "0") return false;
    if (std::string(v).find('/') != std::string::npos) setenv("LLM_PROXY_TEST_PG_STATE", v, 1);
    return true;
  }();
  return pg;
}

// MongoDB mode (see the top of the file).
bool on_mongo() {
  static const bool mongo = [] {
    const char* v = std::getenv("LLM_PROXY_TEST_CLI_MONGO");
    return v && *v && std::string(v) != "0";
  }();
  return mongo;
}

// PostgreSQL and MongoDB need a key from outside (no key file is created
// beside a server database).
bool on_server() {
  return on_postgres() || on_mongo();
}

// In PostgreSQL or MongoDB mode, the key file every run gets as
// LLM_PROXY_SECRET_FILE (which SQLite ignores, so the SQLite-path tests keep
// their key files).
const std::string& server_key_file() {
  static const std::string path = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string file = std::string(tmp && *tmp ? tmp : "/tmp") + "/llm-proxy-e2e-server-key-" +
                       std::to_string(getpid());
    std::ofstream(file) << "cli-e2e-server-secret\n";
    return file;
  }();
  return path;
}

// `input`, when given, is the child's standard input (else /dev/null).
RunResult run(const std::vector<std::string>& args, const Env& env = {},
              const std::string& cwd = {}, const std::optional<std::string>& input = {}) {
  // Everything the child needs is prepared before fork.
  std::vector<std::string> argv_s{LLM_PROXY_BIN};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) {
    std::string entry(*e);
    std::string name = entry.substr(0, entry.find('='));
    bool drop = env.count(name) > 0;
    for (const char* s : kScrubbed) drop = drop || name == s;
    if (!drop) env_s.push_back(entry);
  }
  for (const auto& [name, value] : env)
    if (value) env_s.push_back(name + "=" + *value);
  if (on_server() && env.count("LLM_PROXY_SECRET_FILE") == 0)
    env_s.push_back("LLM_PROXY_SECRET_FILE=" + server_key_file());
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  int out_pipe[2], err_pipe[2], in_pipe[2] = {-1, -1};
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0 ||
      (input && pipe2(in_pipe, O_CLOEXEC) != 0)) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return {};
  }
  pid_t pid = fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return {};
  }
  if (pid == 0) {
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(126);
    int stdin_fd = input ? in_pipe[0] : open("/dev/null", O_RDONLY);
    if (stdin_fd >= 0) dup2(stdin_fd, 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (input) {
    // Fits in the pipe's buffer; the read end is still open here, so the write
    // cannot fail even when the child exits without reading.
    if (write(in_pipe[1], input->data(), input->size()) != static_cast<ssize_t>(input->size()))
      ADD_FAILURE() << "write to the child's stdin: " << std::strerror(errno);
    close(in_pipe[1]);
    close(in_pipe[0]);
  }

  RunResult r;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      ADD_FAILURE() << "poll: " << std::strerror(errno);
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::ostream& operator<<(std::ostream& os, const RunResult& r) {
  return os << "exit " << r.code << "\n--- stdout ---\n" << r.out << "--- stderr ---\n" << r.err;
}

// ---- helpers --------------------------------------------------------------------------

std::string sha256_hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr), 1);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);) out.push_back(line);
  return out;
}

bool is_id(const std::string& s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// Parses stdout as exactly one JSON document (trailing text makes parse fail).
json parse_doc(const RunResult& r) {
  EXPECT_EQ(r.code, 0) << r;
  try {
    return json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "stdout is not one JSON document: " << e.what() << "\n" << r;
    return nullptr;
  }
}

// An error: the given exit code, nothing on stdout, one line on stderr that
// mentions `mention`.
void expect_error(const RunResult& r, int code, const std::string& mention = {}) {
  EXPECT_EQ(r.code, code) << r;
  EXPECT_EQ(r.out, "") << r;
  ASSERT_FALSE(r.err.empty()) << r;
  EXPECT_EQ(r.err.back(), '\n') << r;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "stderr must be one line\n" << r;
  EXPECT_NE(r.err.find("error"), std::string::npos) << r;
  if (!mention.empty()) {
    EXPECT_NE(r.err.find(mention), std::string::npos) << r;
  }
}

// ---- direct SQLite (or PostgreSQL) access ---------------------------------------------

using Rows = std::vector<std::vector<std::string>>;

Rows query(const std::string& db_path, const std::string& sql) {
  Rows rows;
  if (db_path.starts_with("postgres")) {  // NULL reads as "NULL", as below
    try {
      rows = llmproxy::storage::pgtest::query(db_path, sql, "NULL");
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
    return rows;
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << "cannot open " << db_path << ": " << sqlite3_errmsg(db);
    sqlite3_close(db);
    return rows;
  }
  sqlite3_busy_timeout(db, 10000);
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << "cannot prepare " << sql << ": " << sqlite3_errmsg(db);
  } else {
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int i = 0; i < sqlite3_column_count(st); ++i) {
        const unsigned char* text = sqlite3_column_text(st, i);
        row.push_back(text ? reinterpret_cast<const char*>(text) : "NULL");
      }
      rows.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE) ADD_FAILURE() << "cannot run " << sql << ": " << sqlite3_errmsg(db);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rows;
}

std::string query_one(const std::string& db_path, const std::string& sql) {
  Rows rows = query(db_path, sql);
  if (rows.size() != 1 || rows[0].size() != 1) {
    ADD_FAILURE() << sql << " returned " << rows.size() << " rows";
    return {};
  }
  return rows[0][0];
}

// A COUNT(*) result; -1 when the query failed (already reported).
std::int64_t count_of(const std::string& text) {
  return is_id(text) ? std::stoll(text) : -1;
}

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// ---- fixture ------------------------------------------------------------------------------

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/llm-proxy-e2e-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    db_ = dir_ + "/t.db";
    if (on_postgres()) {
      try {
        db_ = llmproxy::storage::pgtest::create_database();
      } catch (const std::exception& e) {
        FAIL() << e.what();
      }
    } else if (on_mongo()) {
      try {
        db_ = mongotest::create_database();  // prints which server the tests run against
      } catch (const std::exception& e) {
        FAIL() << e.what();
      }
    }
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    try {
      if (on_postgres() && db_.starts_with("postgres"))
        llmproxy::storage::pgtest::drop_database(db_);
      else if (on_mongo() && db_.starts_with("mongodb"))
        mongotest::drop_database(db_);
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
  }

  // Runs with `--db <dir>/t.db` (or the test's PostgreSQL URL) appended.
  RunResult cli(std::vector<std::string> args, const Env& env = {}) {
    args.push_back("--db");
    args.push_back(db_);
    return run(args, env);
  }

  // Runs with `--db …` appended and `input` as standard input.
  RunResult cli_in(std::vector<std::string> args, const std::string& input) {
    args.push_back("--db");
    args.push_back(db_);
    return run(args, {}, {}, input);
  }

  // Runs with --json appended; expects success and one JSON document.
  json cli_json(std::vector<std::string> args, const Env& env = {}) {
    args.push_back("--json");
    return parse_doc(cli(std::move(args), env));
  }

  // Runs a plain-mode `add` and returns the id it prints (its only output).
  std::string add(std::vector<std::string> args) {
    RunResult r = cli(std::move(args));
    EXPECT_EQ(r.code, 0) << r;
    std::vector<std::string> ls = lines(r.out);
    EXPECT_GE(ls.size(), 1u) << r;
    if (ls.empty()) return {};
    EXPECT_TRUE(is_id(ls[0])) << r;
    return ls[0];
  }

  // Everything stored (every row of every table, or every document of every
  // collection), so that "bad input changes nothing" can be checked. Read
  // in-process rather than through `list` commands: it sees what no command
  // shows (the change counter, timestamps), and each CLI run under the
  // sanitizers costs more than the query.
  std::string snapshot() const {
    std::string s;
    if (on_mongo()) {
      try {
        std::vector<std::string> colls = mongotest::collection_names(db_);
        std::sort(colls.begin(), colls.end());
        for (const std::string& coll : colls) {
          s += "[" + coll + "]\n";
          for (const std::string& doc : mongotest::find(db_, coll)) s += doc + "\n";
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
      return s;
    }
    bool pg = on_postgres();
    for (const char* table : {"meta", "connections", "models", "vkeys", "plans", "assignments",
                              "admin_users", "usage_records", "schema_migrations"}) {
      s += std::string("[") + table + "]\n";
      std::string sql = pg ? std::string("SELECT t::text FROM ") + table + " t ORDER BY 1"
                           : std::string("SELECT * FROM ") + table + " ORDER BY 1";
      for (const auto& row : query(db_, sql)) {
        for (const std::string& cell : row) s += cell + "|";
        s += "\n";
      }
    }
    return s;
  }

  // ---- what is stored, behind the CLI (SQL, or the MongoDB documents) ----

  std::string stored_config_version() const {
    if (on_mongo()) {
      auto docs = mongo_find("meta", R"({"_id": "config_version"})");
      if (docs.size() != 1) {
        ADD_FAILURE() << "meta.config_version: " << docs.size() << " documents";
        return {};
      }
      return docs[0]["value"].dump();
    }
    return query_one(db_, "SELECT value FROM meta WHERE key = 'config_version'");
  }

  // A text column of the row (document) with this id.
  std::string stored_text(const std::string& table, const std::string& id,
                          const std::string& column) const {
    if (on_mongo()) {
      auto docs = mongo_find(table, id_filter("id", id));
      if (docs.size() != 1 || !docs[0][column].is_string()) {
        ADD_FAILURE() << table << " " << id << ": no text " << column;
        return {};
      }
      return docs[0][column].get<std::string>();
    }
    return query_one(db_, "SELECT " + column + " FROM " + table + " WHERE id = " + id);
  }

  // How many rows (documents) of `table` have this id in `column`, or this text.
  std::int64_t count_with_id(const std::string& table, const std::string& column,
                             const std::string& id) const {
    if (on_mongo())
      return static_cast<std::int64_t>(mongo_find(table, id_filter(column, id)).size());
    return count_of(
        query_one(db_, "SELECT COUNT(*) FROM " + table + " WHERE " + column + " = " + id));
  }
  std::int64_t count_with_text(const std::string& table, const std::string& column,
                               const std::string& text) const {
    if (on_mongo())
      return static_cast<std::int64_t>(mongo_find(table, json{{column, text}}.dump()).size());
    return count_of(
        query_one(db_, "SELECT COUNT(*) FROM " + table + " WHERE " + column + " = '" + text + "'"));
  }

  std::vector<json> mongo_find(const std::string& coll, const std::string& filter) const {
    std::vector<json> out;
    try {
      for (const std::string& doc : mongotest::find(db_, coll, filter))
        out.push_back(json::parse(doc));
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
    return out;
  }
  // Ids are int64 in the documents, `_id` for the document's own.
  static std::string id_filter(const std::string& column, const std::string& id) {
    return json{{column == "id" ? "_id" : column, {{"$numberLong", id}}}}.dump();
  }

  // The SQLite files: the database and, when present, its WAL and shared memory.
  std::vector<fs::path> db_files() const {
    std::vector<fs::path> out;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"})
      if (fs::exists(db_ + suffix)) out.emplace_back(db_ + suffix);
    return out;
  }
  bool db_files_contain(const std::string& needle) const {
    if (on_mongo()) {  // every document of every collection, as JSON
      try {
        for (const std::string& coll : mongotest::collection_names(db_))
          for (const std::string& doc : mongotest::find(db_, coll))
            if (doc.find(needle) != std::string::npos) return true;
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
      return false;
    }
    if (on_postgres()) {  // every row of every table, as text
      for (const char* table : {"meta", "connections", "models", "vkeys", "plans", "assignments",
                                "usage_records", "schema_migrations", "admin_users"}) {
        for (const auto& row : query(db_, std::string("SELECT t::text FROM ") + table + " t"))
          if (row[0].find(needle) != std::string::npos) return true;
      }
      return false;
    }
    for (const auto& p : db_files())
      if (read_file(p).find(needle) != std::string::npos) return true;
    return false;
  }

  std::string dir_;
  std::string db_;
};

// ---- connections ---------------------------------------------------------------------------

TEST_F(Cli, ConnectionAddPrintsOnlyTheNewId) {
  RunResult r = cli({"connection", "add", "--name", "demo", "--provider", "mock"});
  ASSERT_EQ(r.code, 0) << r;
  std::vector<std::string> ls = lines(r.out);
  ASSERT_EQ(ls.size(), 1u) << r;
  EXPECT_TRUE(is_id(ls[0])) << r;
  EXPECT_EQ(r.out, ls[0] + "\n");

  RunResult second = cli({"connection", "add", "--name", "demo2", "--provider", "mock"});
  ASSERT_EQ(second.code, 0) << second;
  EXPECT_NE(second.out, r.out) << "each connection gets its own id";
}

TEST_F(Cli, ConnectionListIsAJsonArray) {
  json empty = cli_json({"connection", "list"});
  ASSERT_TRUE(empty.is_array());
  EXPECT_TRUE(empty.empty());

  std::string id = add({"connection", "add", "--name", "google-ai", "--provider", "google",
                        "--api-key", "AIzaSy-PLAINTEXT-SECRET-123"});
  add({"connection", "add", "--name", "local", "--provider", "vllm", "--endpoint",
       "http://gpu1:8000/v1"});
  json all = cli_json({"connection", "list"});
  ASSERT_TRUE(all.is_array());
  ASSERT_EQ(all.size(), 2u);
  const json& g = all[0];
  EXPECT_EQ(g["id"], std::stoll(id));
  EXPECT_EQ(g["name"], "google-ai");
  EXPECT_EQ(g["provider"], "google");
  EXPECT_TRUE(g["endpoint"].is_string());
  EXPECT_TRUE(g["endpoint"].get<std::string>().starts_with("https://")) << g.dump();
  ASSERT_TRUE(g["api_key"].is_string()) << g.dump();
  EXPECT_NE(g["api_key"], "AIzaSy-PLAINTEXT-SECRET-123");
  EXPECT_EQ(all[1]["name"], "local");
  EXPECT_EQ(all[1]["provider"], "vllm");
  EXPECT_EQ(all[1]["endpoint"], "http://gpu1:8000/v1");
  EXPECT_TRUE(all[1]["api_key"].is_null()) << all[1].dump();

  // The plain table lists both, with the key masked.
  RunResult plain = cli({"connection", "list"});
  ASSERT_EQ(plain.code, 0) << plain;
  EXPECT_NE(plain.out.find("google-ai"), std::string::npos) << plain;
  EXPECT_NE(plain.out.find("http://gpu1:8000/v1"), std::string::npos) << plain;
  EXPECT_EQ(plain.out.find("PLAINTEXT"), std::string::npos) << plain;
}

TEST_F(Cli, ConnectionShowByIdAndByNameAgree) {
  std::string id = add({"connection", "add", "--name", "google-ai", "--provider", "google",
                        "--api-key", "AIzaSy-PLAINTEXT-SECRET-123"});
  json by_id = cli_json({"connection", "show", id});
  json by_name = cli_json({"connection", "show", "google-ai"});
  ASSERT_TRUE(by_id.is_object());
  EXPECT_EQ(by_id, by_name);
  EXPECT_EQ(by_id["id"], std::stoll(id));
  EXPECT_EQ(by_id["name"], "google-ai");
  EXPECT_EQ(by_id["provider"], "google");

  RunResult plain = cli({"connection", "show", "google-ai"});
  ASSERT_EQ(plain.code, 0) << plain;
  EXPECT_NE(plain.out.find("google-ai"), std::string::npos) << plain;
  EXPECT_EQ(plain.out.find("PLAINTEXT"), std::string::npos) << plain;
}

TEST_F(Cli, ConnectionUpdateChangesTheGivenFieldsOnly) {
  std::string id =
      add({"connection", "add", "--name", "local", "--provider", "openai-compatible", "--endpoint",
           "http://old.example:8000/v1", "--api-key", "first-upstream-key-0001"});
  json before = cli_json({"connection", "show", "local"});
  ASSERT_EQ(before["timeout"], 600.0);

  json j = cli_json({"connection", "update", "local", "--endpoint", "https://new.example/v1",
                     "--api-key", "second-upstream-key-0002", "--timeout", "2.5", "--header",
                     "X-Team: search", "--header", "X-Trace: on"});
  EXPECT_EQ(j["id"], std::stoll(id));
  EXPECT_EQ(j["name"], "local");
  EXPECT_EQ(j["provider"], "openai-compatible");
  EXPECT_EQ(j["endpoint"], "https://new.example/v1");
  ASSERT_TRUE(j["timeout"].is_number());
  EXPECT_DOUBLE_EQ(j["timeout"].get<double>(), 2.5);
  ASSERT_TRUE(j["api_key"].is_string());
  EXPECT_NE(j["api_key"], before["api_key"]) << "the masked key reflects the new key";
  EXPECT_EQ(j.dump().find("second-upstream-key"), std::string::npos) << j.dump();
  ASSERT_TRUE(j["headers"].is_object()) << j.dump();
  EXPECT_EQ(j["headers"].size(), 2u) << j.dump();
  EXPECT_TRUE(j["headers"].contains("X-Team")) << j.dump();
  EXPECT_TRUE(j["headers"].contains("X-Trace")) << j.dump();

  // What update printed is what is stored.
  json shown = cli_json({"connection", "show", id});
  EXPECT_EQ(shown["endpoint"], "https://new.example/v1");
  EXPECT_DOUBLE_EQ(shown["timeout"].get<double>(), 2.5);
  EXPECT_EQ(shown["api_key"], j["api_key"]);
  EXPECT_EQ(shown["headers"], j["headers"]);

  // --header replaces the whole set; other fields stay.
  json k = cli_json({"connection", "update", id, "--header", "X-Other: 1"});
  EXPECT_EQ(k["headers"].size(), 1u) << k.dump();
  EXPECT_TRUE(k["headers"].contains("X-Other")) << k.dump();
  EXPECT_EQ(k["endpoint"], "https://new.example/v1");
  EXPECT_DOUBLE_EQ(k["timeout"].get<double>(), 2.5);

  // Plain-mode update prints the fields.
  RunResult plain = cli({"connection", "update", "local", "--timeout", "30"});
  ASSERT_EQ(plain.code, 0) << plain;
  EXPECT_NE(plain.out.find("local"), std::string::npos) << plain;
  EXPECT_DOUBLE_EQ(cli_json({"connection", "show", "local"})["timeout"].get<double>(), 30.0);
}

TEST_F(Cli, ConnectionRemoveByNameAndById) {
  std::string a = add({"connection", "add", "--name", "a", "--provider", "mock"});
  std::string b = add({"connection", "add", "--name", "b", "--provider", "mock"});
  RunResult r = cli({"connection", "remove", "a"});
  ASSERT_EQ(r.code, 0) << r;
  expect_error(cli({"connection", "show", "a"}), 3, "a");
  expect_error(cli({"connection", "show", a}), 3, a);

  RunResult rj = cli({"connection", "remove", b, "--json"});
  ASSERT_EQ(rj.code, 0) << rj;
  EXPECT_TRUE(json::accept(rj.out)) << rj;
  EXPECT_TRUE(cli_json({"connection", "list"}).empty());
}

TEST_F(Cli, ConnectionRemoveInUseNeedsForce) {
  add({"connection", "add", "--name", "c", "--provider", "mock"});
  add({"model", "add", "--name", "m", "--remote", "r", "--conn-id", "c"});
  add({"vkey", "add", "--name", "k", "--conn-id", "c"});
  std::string before = snapshot();
  expect_error(cli({"connection", "remove", "c"}), 4, "c");
  EXPECT_EQ(snapshot(), before);

  RunResult r = cli({"connection", "remove", "c", "--force"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(cli_json({"connection", "list"}).empty());
  EXPECT_TRUE(cli_json({"model", "list"}).empty()) << "its models go with it";
  EXPECT_TRUE(cli_json({"assignment", "list"}).empty()) << "its assignments go with it";
  json keys = cli_json({"vkey", "list"});
  ASSERT_EQ(keys.size(), 1u) << "the key itself stays";
  EXPECT_TRUE(keys[0]["assignments"].empty());
}

TEST_F(Cli, GlobalFlagsBeforeOrAfterTheSubcommand) {
  // --json and --db before the subcommand.
  RunResult r1 =
      run({"--json", "--db", db_, "connection", "add", "--name", "one", "--provider", "mock"});
  json one = parse_doc(r1);
  EXPECT_EQ(one["name"], "one");
  // ... after it.
  RunResult r2 =
      run({"connection", "add", "--name", "two", "--provider", "mock", "--db", db_, "--json"});
  json two = parse_doc(r2);
  EXPECT_EQ(two["name"], "two");
  // ... between the group and the command, and mixed.
  RunResult r3 = run({"connection", "--db", db_, "--json", "list"});
  RunResult r4 = run({"--json", "connection", "list", "--db", db_});
  RunResult r5 = run({"--json", "--db", db_, "connection", "list"});
  RunResult r6 = run({"connection", "list", "--db", db_, "--json"});
  json all = parse_doc(r5);
  ASSERT_TRUE(all.is_array());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0]["name"], "one");
  EXPECT_EQ(all[1]["name"], "two");
  EXPECT_EQ(parse_doc(r3), all);
  EXPECT_EQ(parse_doc(r4), all);
  EXPECT_EQ(parse_doc(r6), all);

  // Without --json the same command prints a table, not JSON.
  RunResult plain = run({"connection", "list", "--db", db_});
  ASSERT_EQ(plain.code, 0) << plain;
  EXPECT_FALSE(json::accept(plain.out)) << plain;
  EXPECT_NE(plain.out.find("one"), std::string::npos) << plain;
}

// ---- provider secrets at rest ---------------------------------------------------------

TEST_F(Cli, ProviderApiKeyIsEncryptedAtRestWithAKeyFile) {
  if (on_server()) GTEST_SKIP() << "SQLite's key file beside the database";
  const std::string secret = "AIzaSy-PLAINTEXT-SECRET-123";
  add({"connection", "add", "--name", "google-ai", "--provider", "google", "--api-key", secret});
  ASSERT_FALSE(db_files().empty());
  EXPECT_TRUE(db_files_contain("google-ai")) << "positive control: the files hold the name";
  EXPECT_FALSE(db_files_contain(secret));
  EXPECT_FALSE(db_files_contain("PLAINTEXT-SECRET"));

  std::string stored = query_one(db_, "SELECT secrets FROM connections WHERE name = 'google-ai'");
  EXPECT_FALSE(stored.empty());
  EXPECT_EQ(stored.find(secret), std::string::npos) << stored;

  // The key file sits beside the database, readable by the owner only.
  struct stat st {};
  ASSERT_EQ(stat((db_ + ".key").c_str(), &st), 0) << "missing " << db_ << ".key";
  EXPECT_EQ(st.st_mode & 0777, 0600);
  std::string key_file = read_file(db_ + ".key");
  EXPECT_FALSE(key_file.empty());

  // Later runs reuse it: the key still decrypts and the file is unchanged.
  json shown = cli_json({"connection", "show", "google-ai"});
  ASSERT_TRUE(shown["api_key"].is_string());
  EXPECT_NE(shown["api_key"], secret);
  EXPECT_EQ(shown.dump().find(secret), std::string::npos);
  add({"connection", "add", "--name", "second", "--provider", "openai", "--api-key",
       "sk-second-upstream-secret"});
  EXPECT_EQ(read_file(db_ + ".key"), key_file);
  EXPECT_EQ(cli_json({"connection", "list"}).size(), 2u);
  EXPECT_FALSE(db_files_contain("sk-second-upstream-secret"));
}

TEST_F(Cli, ProviderApiKeyUnderLlmProxySecret) {
  const std::string secret = "AIzaSy-PLAINTEXT-SECRET-123";
  Env one{{"LLM_PROXY_SECRET", "operator-secret-one"}};
  RunResult r =
      cli({"connection", "add", "--name", "google-ai", "--provider", "google", "--api-key", secret},
          one);
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_FALSE(fs::exists(db_ + ".key")) << "no key file when LLM_PROXY_SECRET is set";
  EXPECT_FALSE(db_files_contain(secret));

  json same = cli_json({"connection", "list"}, one);
  ASSERT_EQ(same.size(), 1u);
  EXPECT_EQ(same[0]["name"], "google-ai");

  // A different secret cannot decrypt: a storage failure, reported on one line
  // that does not reveal either secret.
  Env two{{"LLM_PROXY_SECRET", "operator-secret-two"}};
  RunResult bad = cli({"connection", "list"}, two);
  expect_error(bad, 1);
  EXPECT_EQ(bad.err.find(secret), std::string::npos) << bad;
  EXPECT_EQ(bad.err.find("operator-secret"), std::string::npos) << bad;
  RunResult bad_json = cli({"connection", "list", "--json"}, two);
  expect_error(bad_json, 1);

  // Nothing was damaged: the right secret still works.
  EXPECT_EQ(cli_json({"connection", "show", "google-ai"}, one)["name"], "google-ai");
}

// ---- models -----------------------------------------------------------------------------------

TEST_F(Cli, ModelLifecycle) {
  std::string conn = add({"connection", "add", "--name", "google-ai", "--provider", "google",
                          "--api-key", "AIzaSy-PLAINTEXT-SECRET-123"});
  std::string other = add({"connection", "add", "--name", "local", "--provider", "mock"});

  // Plain add prints only the id; --conn-id takes a name or an id.
  RunResult r = cli({"model", "add", "--name", "gemini-flash", "--remote", "gemini-1.5-flash",
                     "--conn-id", "google-ai", "--input-price", "0.075", "--output-price", "0.30"});
  ASSERT_EQ(r.code, 0) << r;
  ASSERT_EQ(lines(r.out).size(), 1u) << r;
  std::string flash = lines(r.out)[0];
  ASSERT_TRUE(is_id(flash)) << r;
  json echo =
      cli_json({"model", "add", "--name", "echo", "--remote", "echo-1", "--conn-id", other});
  EXPECT_EQ(echo["name"], "echo");
  EXPECT_EQ(echo["remote"], "echo-1");
  EXPECT_EQ(echo["conn_id"], std::stoll(other));
  EXPECT_TRUE(echo["input_price"].is_null());
  EXPECT_TRUE(echo["output_price"].is_null());

  json m = cli_json({"model", "show", flash});
  EXPECT_EQ(m["id"], std::stoll(flash));
  EXPECT_EQ(m["name"], "gemini-flash");
  EXPECT_EQ(m["remote"], "gemini-1.5-flash");
  EXPECT_EQ(m["conn_id"], std::stoll(conn));
  EXPECT_DOUBLE_EQ(m["input_price"].get<double>(), 0.075);
  EXPECT_DOUBLE_EQ(m["output_price"].get<double>(), 0.30);
  EXPECT_EQ(cli_json({"model", "show", "gemini-flash"}), m);

  json all = cli_json({"model", "list"});
  ASSERT_TRUE(all.is_array());
  EXPECT_EQ(all.size(), 2u);
  for (const std::string& ref : {std::string("google-ai"), conn}) {
    json filtered = cli_json({"model", "list", "--conn-id", ref});
    ASSERT_EQ(filtered.size(), 1u) << ref;
    EXPECT_EQ(filtered[0]["name"], "gemini-flash");
  }
  json on_other = cli_json({"model", "list", "--conn-id", "local"});
  ASSERT_EQ(on_other.size(), 1u);
  EXPECT_EQ(on_other[0]["name"], "echo");

  RunResult plain = cli({"model", "list"});
  ASSERT_EQ(plain.code, 0) << plain;
  EXPECT_NE(plain.out.find("gemini-1.5-flash"), std::string::npos) << plain;
  EXPECT_NE(plain.out.find("echo-1"), std::string::npos) << plain;

  // Update: new remote, price, and a move to another connection by id.
  json u = cli_json({"model", "update", "gemini-flash", "--remote", "gemini-2.0-flash",
                     "--output-price", "0.40", "--conn-id", other});
  EXPECT_EQ(u["remote"], "gemini-2.0-flash");
  EXPECT_DOUBLE_EQ(u["output_price"].get<double>(), 0.40);
  EXPECT_DOUBLE_EQ(u["input_price"].get<double>(), 0.075) << "unchanged";
  EXPECT_EQ(u["conn_id"], std::stoll(other));
  EXPECT_EQ(cli_json({"model", "show", flash}), u);
  EXPECT_TRUE(cli_json({"model", "list", "--conn-id", "google-ai"}).empty());

  ASSERT_EQ(cli({"model", "remove", "gemini-flash"}).code, 0);
  expect_error(cli({"model", "show", flash}), 3);
  RunResult rm = cli({"model", "remove", "echo", "--json"});
  ASSERT_EQ(rm.code, 0) << rm;
  EXPECT_TRUE(json::accept(rm.out)) << rm;
  EXPECT_TRUE(cli_json({"model", "list"}).empty());
  EXPECT_EQ(cli_json({"connection", "list"}).size(), 2u) << "connections stay";
}

TEST_F(Cli, ModelRemoveInUseNeedsForce) {
  add({"connection", "add", "--name", "c", "--provider", "mock"});
  add({"model", "add", "--name", "m", "--remote", "r", "--conn-id", "c"});
  add({"vkey", "add", "--name", "k", "--model-id", "m"});
  std::string before = snapshot();
  expect_error(cli({"model", "remove", "m"}), 4, "m");
  EXPECT_EQ(snapshot(), before);
  ASSERT_EQ(cli({"model", "remove", "m", "--force"}).code, 0);
  EXPECT_TRUE(cli_json({"assignment", "list"}).empty());
  EXPECT_EQ(cli_json({"vkey", "list"}).size(), 1u);
}

// ---- virtual keys ---------------------------------------------------------------------------

class VkeyCli : public Cli {
 protected:
  void SetUp() override {
    Cli::SetUp();
    conn_ = add({"connection", "add", "--name", "c1", "--provider", "mock"});
    conn2_ = add({"connection", "add", "--name", "c2", "--provider", "mock"});
    model_ = add({"model", "add", "--name", "m1", "--remote", "r1", "--conn-id", "c1"});
  }

  std::string key_hash_of(const std::string& id) { return stored_text("vkeys", id, "key_hash"); }

  std::string conn_, conn2_, model_;
};

const std::regex kGeneratedKey("sk-[A-Za-z0-9_-]{43,}");

TEST_F(VkeyCli, AddGeneratesAKeyShownOnce) {
  RunResult r = cli({"vkey", "add", "--name", "Mobile-App", "--model-id", "m1"});
  ASSERT_EQ(r.code, 0) << r;
  std::vector<std::string> ls = lines(r.out);
  ASSERT_EQ(ls.size(), 2u) << "id line then key line\n" << r;
  const std::string id = ls[0];
  const std::string key = ls[1];
  EXPECT_TRUE(is_id(id)) << r;
  EXPECT_TRUE(key.starts_with("sk-")) << key;
  EXPECT_GE(key.size(), 3u + 43u) << key;
  EXPECT_TRUE(std::regex_match(key, kGeneratedKey)) << key;

  // Never shown again: not by list or show, plain or JSON.
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"vkey", "list"},
                                             {"vkey", "list", "--json"},
                                             {"vkey", "show", id},
                                             {"vkey", "show", "Mobile-App", "--json"},
                                             {"assignment", "list", "--json"}}) {
    RunResult s = cli(args);
    ASSERT_EQ(s.code, 0) << s;
    EXPECT_EQ(s.out.find(key), std::string::npos) << s;
    EXPECT_EQ(s.out.find(key.substr(3, 20)), std::string::npos) << s;
  }
  json shown = cli_json({"vkey", "show", id});
  EXPECT_FALSE(shown.contains("key")) << shown.dump();
  EXPECT_EQ(shown["id"], std::stoll(id));
  EXPECT_EQ(shown["name"], "Mobile-App");
  EXPECT_EQ(shown["enabled"], true);
  EXPECT_TRUE(shown["expires"].is_null());
  ASSERT_TRUE(shown["key_hint"].is_string());
  std::string hint = shown["key_hint"];
  EXPECT_FALSE(hint.empty());
  EXPECT_LT(hint.size(), key.size());
  EXPECT_EQ(hint.find(key.substr(3)), std::string::npos) << hint;
  json listed = cli_json({"vkey", "list"});
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_FALSE(listed[0].contains("key"));
  EXPECT_EQ(listed[0]["key_hint"], hint);

  // At rest only the SHA-256 of the key.
  EXPECT_EQ(key_hash_of(id), sha256_hex(key));
  EXPECT_TRUE(db_files_contain(sha256_hex(key)));
  EXPECT_FALSE(db_files_contain(key));
  EXPECT_FALSE(db_files_contain(key.substr(3)));
}

TEST_F(VkeyCli, AddJsonCarriesTheKeyOnce) {
  json j = cli_json({"vkey", "add", "--name", "ci", "--conn-id", "c1"});
  ASSERT_TRUE(j.is_object());
  ASSERT_TRUE(j["key"].is_string()) << j.dump();
  std::string key = j["key"];
  EXPECT_TRUE(std::regex_match(key, kGeneratedKey)) << key;
  EXPECT_TRUE(is_id(std::to_string(j["id"].get<long long>())));
  EXPECT_EQ(j["name"], "ci");
  EXPECT_EQ(j["enabled"], true);
  EXPECT_TRUE(j["key_hint"].is_string());
  ASSERT_TRUE(j["assignments"].is_array());
  ASSERT_EQ(j["assignments"].size(), 1u);
  EXPECT_EQ(j["assignments"][0]["conn_id"], std::stoll(conn_));
  EXPECT_EQ(sha256_hex(key), key_hash_of(std::to_string(j["id"].get<long long>())));
  EXPECT_FALSE(db_files_contain(key));
}

TEST_F(VkeyCli, GivenKeyIsUsedAsIs) {
  RunResult r = cli({"vkey", "add", "--name", "ci", "--key", "sk-proxy-123", "--conn-id", "c1"});
  ASSERT_EQ(r.code, 0) << r;
  std::vector<std::string> ls = lines(r.out);
  ASSERT_EQ(ls.size(), 2u) << r;
  EXPECT_EQ(ls[1], "sk-proxy-123");
  EXPECT_EQ(key_hash_of(ls[0]), sha256_hex("sk-proxy-123"));
  EXPECT_TRUE(db_files_contain(sha256_hex("sk-proxy-123")));
  EXPECT_FALSE(db_files_contain("sk-proxy-123"));
  json shown = cli_json({"vkey", "show", "ci"});
  EXPECT_NE(shown["key_hint"], "sk-proxy-123");
  EXPECT_EQ(shown.dump().find("sk-proxy-123"), std::string::npos) << shown.dump();
}

TEST_F(VkeyCli, RotateReplacesTheHash) {
  RunResult r = cli({"vkey", "add", "--name", "app", "--model-id", "m1", "--rpm", "7"});
  ASSERT_EQ(r.code, 0) << r;
  ASSERT_EQ(lines(r.out).size(), 2u) << r;
  const std::string id = lines(r.out)[0];
  const std::string old_key = lines(r.out)[1];
  const std::string old_hash = sha256_hex(old_key);
  ASSERT_EQ(key_hash_of(id), old_hash);
  json before = cli_json({"vkey", "show", id});

  RunResult rot = cli({"vkey", "rotate", "app"});
  ASSERT_EQ(rot.code, 0) << rot;
  std::vector<std::string> ls = lines(rot.out);
  ASSERT_EQ(ls.size(), 2u) << rot;
  EXPECT_EQ(ls[0], id);
  const std::string new_key = ls[1];
  EXPECT_TRUE(std::regex_match(new_key, kGeneratedKey)) << new_key;
  EXPECT_NE(new_key, old_key);
  EXPECT_EQ(key_hash_of(id), sha256_hex(new_key));
  EXPECT_EQ(count_with_text("vkeys", "key_hash", old_hash), 0);
  EXPECT_FALSE(db_files_contain(new_key));

  json after = cli_json({"vkey", "show", id});
  EXPECT_NE(after["key_hint"], before["key_hint"]);
  EXPECT_EQ(after["name"], "app");
  EXPECT_EQ(after["assignments"].size(), 1u) << "assignments survive a rotation";
  EXPECT_EQ(after["assignments"][0]["rpm"], 7);

  // JSON rotation with a given key.
  json j = cli_json({"vkey", "rotate", id, "--key", "sk-rotated-given-1"});
  EXPECT_EQ(j["key"], "sk-rotated-given-1");
  EXPECT_EQ(key_hash_of(id), sha256_hex("sk-rotated-given-1"));
  EXPECT_EQ(count_with_text("vkeys", "key_hash", sha256_hex(new_key)), 0);
  EXPECT_FALSE(db_files_contain("sk-rotated-given-1"));
}

TEST_F(VkeyCli, DisableAndEnable) {
  std::string id = add({"vkey", "add", "--name", "app", "--conn-id", "c1"});
  EXPECT_EQ(cli_json({"vkey", "show", id})["enabled"], true);
  json d = cli_json({"vkey", "disable", "app"});
  EXPECT_EQ(d["enabled"], false);
  EXPECT_FALSE(d.contains("key"));
  EXPECT_EQ(cli_json({"vkey", "show", "app"})["enabled"], false);
  EXPECT_EQ(cli_json({"vkey", "list"})[0]["enabled"], false);
  json e = cli_json({"vkey", "enable", id});
  EXPECT_EQ(e["enabled"], true);
  EXPECT_EQ(cli_json({"vkey", "show", "app"})["enabled"], true);
}

TEST_F(VkeyCli, ExpiryIsStored) {
  json exact = cli_json(
      {"vkey", "add", "--name", "a", "--conn-id", "c1", "--expires", "2099-06-30T12:00:00Z"});
  EXPECT_EQ(exact["expires"], "2099-06-30T12:00:00Z");
  // A bare date is the last valid day: the key expires at the end of it.
  json day = cli_json({"vkey", "add", "--name", "b", "--conn-id", "c1", "--expires", "2099-12-31"});
  EXPECT_EQ(day["expires"], "2100-01-01T00:00:00Z");
  json cleared = cli_json({"vkey", "update", "a", "--expires", "never"});
  EXPECT_TRUE(cleared["expires"].is_null());
  EXPECT_TRUE(cli_json({"vkey", "show", "a"})["expires"].is_null());
}

TEST_F(VkeyCli, SeveralTargetsMakeSeveralAssignmentsWithTheLimits) {
  json j = cli_json({"vkey", "add", "--name", "batch", "--conn-id", "c1", "--conn-id", conn2_,
                     "--model-id", "m1", "--tps", "5", "--rpm", "100", "--token-limit", "100000",
                     "--token-window", "hour"});
  ASSERT_TRUE(j["assignments"].is_array());
  ASSERT_EQ(j["assignments"].size(), 3u) << j.dump();
  std::vector<long long> conns, models;
  for (const json& a : j["assignments"]) {
    EXPECT_EQ(a["vkey_id"], j["id"]);
    EXPECT_DOUBLE_EQ(a["tps"].get<double>(), 5.0);
    EXPECT_EQ(a["rpm"], 100);
    EXPECT_EQ(a["token_limit"], 100000);
    EXPECT_EQ(a["token_window"], "hour");
    EXPECT_NE(a["conn_id"].is_null(), a["model_id"].is_null()) << "exactly one target";
    if (!a["conn_id"].is_null()) conns.push_back(a["conn_id"]);
    if (!a["model_id"].is_null()) models.push_back(a["model_id"]);
  }
  std::sort(conns.begin(), conns.end());
  EXPECT_EQ(conns, (std::vector<long long>{std::stoll(conn_), std::stoll(conn2_)}));
  EXPECT_EQ(models, (std::vector<long long>{std::stoll(model_)}));

  json listed = cli_json({"assignment", "list", "--vkey-id", "batch"});
  EXPECT_EQ(listed.size(), 3u);
  json shown = cli_json({"vkey", "show", "batch"});
  EXPECT_EQ(shown["assignments"], j["assignments"]);
}

TEST_F(VkeyCli, RemoveCascadesToAssignments) {
  std::string keep = add({"vkey", "add", "--name", "keep", "--conn-id", "c1"});
  std::string gone = add({"vkey", "add", "--name", "gone", "--conn-id", "c1", "--model-id", "m1"});
  ASSERT_EQ(count_with_id("assignments", "vkey_id", gone), 2);
  RunResult r = cli({"vkey", "remove", "gone"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(count_with_id("assignments", "vkey_id", gone), 0);
  EXPECT_EQ(count_with_id("vkeys", "id", gone), 0);
  expect_error(cli({"vkey", "show", gone}), 3);
  json left = cli_json({"assignment", "list"});
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0]["vkey_id"], std::stoll(keep));
  json keys = cli_json({"vkey", "list"});
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0]["name"], "keep");
}

// ---- assignments ----------------------------------------------------------------------------

TEST_F(VkeyCli, AssignmentLifecycle) {
  std::string k = add({"vkey", "add", "--name", "app"});
  std::string other = add({"vkey", "add", "--name", "other", "--conn-id", "c1"});
  EXPECT_TRUE(cli_json({"assignment", "list", "--vkey-id", "app"}).empty());

  RunResult r = cli({"assignment", "add", "--vkey-id", "app", "--model-id", "m1", "--tps", "2.5",
                     "--rpm", "60", "--token-limit", "5000", "--token-window", "month"});
  ASSERT_EQ(r.code, 0) << r;
  ASSERT_EQ(lines(r.out).size(), 1u) << r;
  std::string a = lines(r.out)[0];
  ASSERT_TRUE(is_id(a)) << r;
  json by_conn = cli_json({"assignment", "add", "--vkey-id", k, "--conn-id", conn2_});
  EXPECT_EQ(by_conn["vkey_id"], std::stoll(k));
  EXPECT_EQ(by_conn["conn_id"], std::stoll(conn2_));
  EXPECT_TRUE(by_conn["model_id"].is_null());
  EXPECT_TRUE(by_conn["tps"].is_null());
  EXPECT_TRUE(by_conn["rpm"].is_null());
  EXPECT_TRUE(by_conn["token_limit"].is_null());

  json mine = cli_json({"assignment", "list", "--vkey-id", "app"});
  ASSERT_EQ(mine.size(), 2u);
  EXPECT_EQ(cli_json({"assignment", "list", "--vkey-id", k}), mine);
  EXPECT_EQ(cli_json({"assignment", "list"}).size(), 3u);
  json first = mine[0]["id"] == std::stoll(a) ? mine[0] : mine[1];
  EXPECT_EQ(first["model_id"], std::stoll(model_));
  EXPECT_TRUE(first["conn_id"].is_null());
  EXPECT_DOUBLE_EQ(first["tps"].get<double>(), 2.5);
  EXPECT_EQ(first["rpm"], 60);
  EXPECT_EQ(first["token_limit"], 5000);
  EXPECT_EQ(first["token_window"], "month");

  // --rpm 0 removes that limit and keeps the others.
  json u = cli_json({"assignment", "update", a, "--rpm", "0"});
  EXPECT_TRUE(u["rpm"].is_null()) << u.dump();
  EXPECT_DOUBLE_EQ(u["tps"].get<double>(), 2.5);
  EXPECT_EQ(u["token_limit"], 5000);
  EXPECT_EQ(u["token_window"], "month");
  json u2 = cli_json({"assignment", "update", a, "--tps", "10", "--token-limit", "0"});
  EXPECT_DOUBLE_EQ(u2["tps"].get<double>(), 10.0);
  EXPECT_TRUE(u2["token_limit"].is_null());
  EXPECT_TRUE(u2["rpm"].is_null());
  json stored = cli_json({"assignment", "list", "--vkey-id", "app"});
  bool found = false;
  for (const json& s : stored)
    if (s["id"] == std::stoll(a)) {
      found = true;
      EXPECT_EQ(s, u2);
    }
  EXPECT_TRUE(found);

  ASSERT_EQ(cli({"assignment", "remove", a}).code, 0);
  EXPECT_EQ(cli_json({"assignment", "list", "--vkey-id", "app"}).size(), 1u);
  expect_error(cli({"assignment", "remove", a}), 3, a);
  EXPECT_EQ(cli_json({"assignment", "list", "--vkey-id", other}).size(), 1u);
}

// ---- new limits, key-wide limits and plans ---------------------------------------------------

// The limit fields of an assignment (or plan) JSON, for comparing limit sets.
json limit_fields(const json& j) {
  json out = json::object();
  for (const char* f : {"tps", "rpm", "rph", "rpd", "token_limit", "token_window", "budget",
                        "budget_window", "max_parallel", "reserve_tokens"})
    out[f] = j[f];
  return out;
}

TEST_F(VkeyCli, NewLimitFlagsOnAssignmentsAndKeys) {
  json j = cli_json({"vkey",
                     "add",
                     "--name",
                     "team",
                     "--model-id",
                     "m1",
                     "--rph",
                     "100",
                     "--rpd",
                     "1000",
                     "--budget",
                     "2.5",
                     "--budget-window",
                     "day",
                     "--max-parallel",
                     "3",
                     "--reserve-tokens",
                     "256",
                     "--key-budget",
                     "50",
                     "--key-budget-window",
                     "month",
                     "--key-token-limit",
                     "100000",
                     "--key-token-window",
                     "hour"});
  ASSERT_EQ(j["assignments"].size(), 1u) << j.dump();
  json a = j["assignments"][0];
  EXPECT_EQ(a["rph"], 100);
  EXPECT_EQ(a["rpd"], 1000);
  EXPECT_DOUBLE_EQ(a["budget"].get<double>(), 2.5);
  EXPECT_EQ(a["budget_window"], "day");
  EXPECT_EQ(a["max_parallel"], 3);
  EXPECT_EQ(a["reserve_tokens"], 256);
  EXPECT_TRUE(a["plan"].is_null());
  EXPECT_EQ(a["effective"], limit_fields(a)) << "without a plan its own limits apply";
  EXPECT_DOUBLE_EQ(j["key_budget"].get<double>(), 50.0);
  EXPECT_EQ(j["key_budget_window"], "month");
  EXPECT_EQ(j["key_token_limit"], 100000);
  EXPECT_EQ(j["key_token_window"], "hour");

  // 0 removes a limit and keeps the others; windows stay as they were.
  std::string id = std::to_string(a["id"].get<long long>());
  json u = cli_json({"assignment", "update", id, "--rph", "0", "--budget", "0", "--rpd", "500"});
  EXPECT_TRUE(u["rph"].is_null());
  EXPECT_TRUE(u["budget"].is_null());
  EXPECT_EQ(u["rpd"], 500);
  EXPECT_EQ(u["max_parallel"], 3);
  EXPECT_EQ(u["budget_window"], "day");
  json k = cli_json({"vkey", "update", "team", "--key-budget", "0", "--key-token-limit", "5"});
  EXPECT_TRUE(k["key_budget"].is_null());
  EXPECT_EQ(k["key_token_limit"], 5);
  EXPECT_EQ(k["key_token_window"], "hour");
  EXPECT_EQ(k["name"], "team");

  // Key-wide limits need no assignment; shown compactly in the listings.
  json bare = cli_json({"vkey", "add", "--name", "bare", "--key-budget", "10"});
  EXPECT_TRUE(bare["assignments"].empty());
  EXPECT_DOUBLE_EQ(bare["key_budget"].get<double>(), 10.0);
  RunResult list = cli({"vkey", "list"});
  ASSERT_EQ(list.code, 0) << list;
  EXPECT_NE(list.out.find("KEY_LIMITS"), std::string::npos) << list;
  EXPECT_NE(list.out.find("budget=$10/month"), std::string::npos) << list;
  RunResult grants = cli({"assignment", "list"});
  EXPECT_NE(grants.out.find("rpd=500 parallel=3 reserve=256"), std::string::npos) << grants;
}

TEST_F(VkeyCli, PlanLifecycle) {
  RunResult r = cli({"plan", "add", "--name", "free", "--rpm", "10", "--token-limit", "10000",
                     "--token-window", "day", "--budget", "5", "--budget-window", "month"});
  ASSERT_EQ(r.code, 0) << r;
  ASSERT_EQ(lines(r.out).size(), 1u) << r;
  std::string id = lines(r.out)[0];
  ASSERT_TRUE(is_id(id)) << r;

  json p = cli_json({"plan", "show", "free"});
  EXPECT_EQ(p["id"], std::stoll(id));
  EXPECT_EQ(p["name"], "free");
  EXPECT_EQ(p["rpm"], 10);
  EXPECT_EQ(p["token_limit"], 10000);
  EXPECT_EQ(p["token_window"], "day");
  EXPECT_DOUBLE_EQ(p["budget"].get<double>(), 5.0);
  EXPECT_EQ(p["budget_window"], "month");
  for (const char* unset : {"tps", "rph", "rpd", "max_parallel", "reserve_tokens"})
    EXPECT_TRUE(p[unset].is_null()) << unset;
  EXPECT_EQ(p["assignments"], 0);
  EXPECT_EQ(cli_json({"plan", "show", id}), p);

  json all = cli_json({"plan", "add", "--name", "premium", "--tps", "20", "--rph", "5000", "--rpd",
                       "50000", "--max-parallel", "8", "--reserve-tokens", "2048"});
  EXPECT_EQ(all["max_parallel"], 8);
  json listed = cli_json({"plan", "list"});
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0]["name"], "free");
  EXPECT_EQ(listed[1]["name"], "premium");
  RunResult plain = cli({"plan", "list"});
  EXPECT_NE(plain.out.find("rpm=10 tokens=10000/day budget=$5/month"), std::string::npos) << plain;

  json u = cli_json(
      {"plan", "update", "free", "--name", "starter", "--rpm", "20", "--token-limit", "0"});
  EXPECT_EQ(u["name"], "starter");
  EXPECT_EQ(u["rpm"], 20);
  EXPECT_TRUE(u["token_limit"].is_null());
  EXPECT_DOUBLE_EQ(u["budget"].get<double>(), 5.0);
  expect_error(cli({"plan", "show", "free"}), 3, "free");

  ASSERT_EQ(cli({"plan", "remove", "starter"}).code, 0);
  ASSERT_EQ(cli({"plan", "remove", all["name"]}).code, 0);
  EXPECT_TRUE(cli_json({"plan", "list"}).empty());
}

TEST_F(VkeyCli, AnAssignmentsOwnLimitsOverrideItsPlans) {
  add({"plan", "add", "--name", "free", "--rpm", "10", "--token-limit", "10000", "--token-window",
       "day", "--budget", "5", "--max-parallel", "2"});
  json k = cli_json({"vkey", "add", "--name", "app", "--model-id", "m1", "--conn-id", "c2",
                     "--plan", "free", "--rpm", "20"});
  ASSERT_EQ(k["assignments"].size(), 2u) << k.dump();
  for (const json& a : k["assignments"]) {
    EXPECT_EQ(a["plan"], "free");
    EXPECT_EQ(a["rpm"], 20);  // its own, as stored
    EXPECT_TRUE(a["token_limit"].is_null());
    const json& e = a["effective"];
    EXPECT_EQ(e["rpm"], 20) << "the assignment's own value wins";
    EXPECT_EQ(e["token_limit"], 10000) << "the plan's where it sets none";
    EXPECT_EQ(e["token_window"], "day");
    EXPECT_DOUBLE_EQ(e["budget"].get<double>(), 5.0);
    EXPECT_EQ(e["max_parallel"], 2);
  }
  std::string a = std::to_string(k["assignments"][0]["id"].get<long long>());

  // A plan change reaches every assignment on it.
  cli_json({"plan", "update", "free", "--token-limit", "500", "--token-window", "hour"});
  for (const json& g : cli_json({"assignment", "list", "--vkey-id", "app"})) {
    EXPECT_EQ(g["effective"]["token_limit"], 500);
    EXPECT_EQ(g["effective"]["token_window"], "hour");
  }
  EXPECT_EQ(cli_json({"plan", "show", "free"})["assignments"], 2);

  // Detach with "none", attach by id.
  json none = cli_json({"assignment", "update", a, "--plan", "none"});
  EXPECT_TRUE(none["plan"].is_null());
  EXPECT_EQ(none["effective"], limit_fields(none));
  std::string plan_id = std::to_string(cli_json({"plan", "show", "free"})["id"].get<long long>());
  EXPECT_EQ(cli_json({"assignment", "update", a, "--plan", plan_id})["plan"], "free");
  json third = cli_json({"assignment", "add", "--vkey-id", "app", "--conn-id", "c1", "--plan",
                         "free", "--budget", "1"});
  EXPECT_DOUBLE_EQ(third["effective"]["budget"].get<double>(), 1.0);
  RunResult shown = cli({"vkey", "show", "app"});
  EXPECT_NE(shown.out.find("plan=free rpm=20"), std::string::npos) << shown;

  // In use: refused, nothing changed; --force detaches, own limits stay.
  std::string before = snapshot();
  expect_error(cli({"plan", "remove", "free"}), 4, "free");
  EXPECT_EQ(snapshot(), before);
  ASSERT_EQ(cli({"plan", "remove", "free", "--force"}).code, 0);
  json left = cli_json({"assignment", "list", "--vkey-id", "app"});
  ASSERT_EQ(left.size(), 3u);
  for (const json& g : left) {
    EXPECT_TRUE(g["plan"].is_null());
    EXPECT_EQ(g["effective"], limit_fields(g));
  }
  EXPECT_EQ(left[0]["rpm"], 20);
  EXPECT_TRUE(cli_json({"plan", "list"}).empty());
}

// ---- usage -----------------------------------------------------------------------------------

class UsageCli : public VkeyCli {
 protected:
  void SetUp() override {
    VkeyCli::SetUp();
    ASSERT_NO_FATAL_FAILURE(k1_ = add({"vkey", "add", "--name", "k1", "--conn-id", "c1"}));
    ASSERT_NO_FATAL_FAILURE(k2_ = add({"vkey", "add", "--name", "k2", "--conn-id", "c1"}));
  }

  void insert(std::int64_t ts, const std::string& request_id, const std::string& vkey_id,
              const std::string& vkey_name, const std::string& model, int status, double latency_ms,
              int prompt, int completion, double cost, const std::string& assignment_id = {}) {
    if (on_mongo()) {  // the document the backend writes, with an id from its counter
      auto i64 = [](std::int64_t v) { return json{{"$numberLong", std::to_string(v)}}; };
      auto dbl = [](double v) {
        std::ostringstream os;
        os.precision(17);
        os << v;
        return json{{"$numberDouble", os.str()}};
      };
      try {
        json doc = {{"_id", i64(mongotest::next_id(db_, "usage_records"))},
                    {"ts", i64(ts)},
                    {"request_id", request_id},
                    {"vkey_id", i64(std::stoll(vkey_id))},
                    {"vkey_name", vkey_name},
                    {"assignment_id",
                     assignment_id.empty() ? json(nullptr) : i64(std::stoll(assignment_id))},
                    {"model", model},
                    {"conn_id", i64(std::stoll(conn_))},
                    {"conn_name", "c1"},
                    {"status", i64(status)},
                    {"latency_ms", dbl(latency_ms)},
                    {"ttft_ms", nullptr},
                    {"prompt_tokens", i64(prompt)},
                    {"completion_tokens", i64(completion)},
                    {"cost", dbl(cost)}};
        mongotest::insert(db_, "usage_records", doc.dump());
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
      return;
    }
    std::ostringstream sql;
    sql.precision(17);
    sql << "INSERT INTO usage_records (ts, request_id, vkey_id, vkey_name, assignment_id, model,"
           " conn_id, conn_name, status, latency_ms, ttft_ms, prompt_tokens, completion_tokens,"
           " cost) VALUES ("
        << ts << ", '" << request_id << "', " << vkey_id << ", '" << vkey_name << "', "
        << (assignment_id.empty() ? "NULL" : assignment_id) << ", '" << model << "', " << conn_
        << ", 'c1', " << status << ", " << latency_ms << ", NULL, " << prompt << ", " << completion
        << ", " << cost << ")";
    query(db_, sql.str());
  }

  // 2026-01-10T10:00:00Z, 2026-01-10T11:00:00Z, 2026-01-11T09:00:00Z
  static constexpr std::int64_t kJan10_10 = 1768039200000;
  static constexpr std::int64_t kJan10_11 = kJan10_10 + 3600000;
  static constexpr std::int64_t kJan11_09 = kJan10_10 + 23 * 3600000LL;

  void insert_fixture() {
    insert(kJan10_10, "req-1", k1_, "k1", "m1", 200, 100, 10, 20, 0.5);
    insert(kJan10_11, "req-2", k2_, "k2", "m2", 500, 300, 1, 2, 0.25);
    insert(kJan11_09, "req-3", k1_, "k1", "m2", 200, 50, 100, 200, 1.0);
  }

  std::string k1_, k2_;
};

TEST_F(UsageCli, EmptyUsageIsAnEmptyArray) {
  RunResult r = cli({"usage", "--json"});
  ASSERT_EQ(r.code, 0) << r;
  json j = parse_doc(r);
  ASSERT_TRUE(j.is_array());
  EXPECT_TRUE(j.empty());
  for (const char* by : {"day", "model", "key"}) {
    json g = cli_json({"usage", "--by", by});
    ASSERT_TRUE(g.is_array()) << by;
    EXPECT_TRUE(g.empty()) << by;
  }
}

TEST_F(UsageCli, ListsRecordsNewestFirst) {
  insert_fixture();
  json j = cli_json({"usage"});
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 3u) << j.dump();
  EXPECT_EQ(j[0]["request_id"], "req-3");
  EXPECT_EQ(j[1]["request_id"], "req-2");
  EXPECT_EQ(j[2]["request_id"], "req-1");
  const json& r2 = j[1];
  EXPECT_EQ(r2["prompt_tokens"], 1);
  EXPECT_EQ(r2["completion_tokens"], 2);
  EXPECT_DOUBLE_EQ(r2["cost"].get<double>(), 0.25);
  EXPECT_EQ(r2["status"], 500);
  EXPECT_DOUBLE_EQ(r2["latency_ms"].get<double>(), 300.0);
  EXPECT_EQ(r2["model"], "m2");
  EXPECT_EQ(r2["vkey_name"], "k2");
  EXPECT_EQ(r2["vkey_id"], std::stoll(k2_));
  EXPECT_EQ(r2["time"], "2026-01-10T11:00:00Z");
  EXPECT_EQ(j[0]["prompt_tokens"], 100);
  EXPECT_EQ(j[0]["completion_tokens"], 200);
  EXPECT_DOUBLE_EQ(j[0]["cost"].get<double>(), 1.0);

  json limited = cli_json({"usage", "--limit", "1"});
  ASSERT_EQ(limited.size(), 1u);
  EXPECT_EQ(limited[0]["request_id"], "req-3");

  RunResult plain = cli({"usage"});
  ASSERT_EQ(plain.code, 0) << plain;
  for (const char* id : {"req-1", "req-2", "req-3"})
    EXPECT_NE(plain.out.find(id), std::string::npos) << plain;
}

TEST_F(UsageCli, AggregatesByDayModelAndKey) {
  insert_fixture();
  json day = cli_json({"usage", "--by", "day"});
  ASSERT_EQ(day.size(), 2u) << day.dump();
  EXPECT_EQ(day[0]["group"], "2026-01-10");
  EXPECT_EQ(day[0]["requests"], 2);
  EXPECT_EQ(day[0]["errors"], 1);
  EXPECT_EQ(day[0]["prompt_tokens"], 11);
  EXPECT_EQ(day[0]["completion_tokens"], 22);
  EXPECT_EQ(day[0]["total_tokens"], 33);
  EXPECT_DOUBLE_EQ(day[0]["cost"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(day[0]["avg_latency_ms"].get<double>(), 200.0);
  // Nearest rank over {100, 300}: p50 is the 1st value, p95 and p99 the 2nd.
  EXPECT_DOUBLE_EQ(day[0]["p50_latency_ms"].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(day[0]["p95_latency_ms"].get<double>(), 300.0);
  EXPECT_DOUBLE_EQ(day[0]["p99_latency_ms"].get<double>(), 300.0);
  EXPECT_EQ(day[1]["group"], "2026-01-11");
  for (const char* p : {"p50_latency_ms", "p95_latency_ms", "p99_latency_ms"})
    EXPECT_DOUBLE_EQ(day[1][p].get<double>(), 50.0) << p;
  EXPECT_EQ(day[1]["requests"], 1);
  EXPECT_EQ(day[1]["errors"], 0);
  EXPECT_DOUBLE_EQ(day[1]["cost"].get<double>(), 1.0);

  json model = cli_json({"usage", "--by", "model"});
  ASSERT_EQ(model.size(), 2u) << model.dump();
  EXPECT_EQ(model[0]["group"], "m1");
  EXPECT_EQ(model[0]["requests"], 1);
  EXPECT_EQ(model[0]["prompt_tokens"], 10);
  EXPECT_EQ(model[1]["group"], "m2");
  EXPECT_EQ(model[1]["requests"], 2);
  EXPECT_EQ(model[1]["prompt_tokens"], 101);
  EXPECT_EQ(model[1]["completion_tokens"], 202);
  EXPECT_DOUBLE_EQ(model[1]["cost"].get<double>(), 1.25);

  json key = cli_json({"usage", "--by", "key"});
  ASSERT_EQ(key.size(), 2u) << key.dump();
  EXPECT_EQ(key[0]["group"], "k1");
  EXPECT_EQ(key[0]["requests"], 2);
  EXPECT_DOUBLE_EQ(key[0]["cost"].get<double>(), 1.5);
  EXPECT_EQ(key[1]["group"], "k2");
  EXPECT_EQ(key[1]["requests"], 1);
  EXPECT_EQ(key[1]["errors"], 1);

  RunResult plain = cli({"usage", "--by", "model"});
  ASSERT_EQ(plain.code, 0) << plain;
  EXPECT_NE(plain.out.find("P50_MS"), std::string::npos) << plain;
  EXPECT_NE(plain.out.find("P99_MS"), std::string::npos) << plain;
  EXPECT_NE(plain.out.find("m1"), std::string::npos) << plain;
  EXPECT_NE(plain.out.find("m2"), std::string::npos) << plain;
}

TEST_F(UsageCli, FiltersByKeyAndTime) {
  insert_fixture();
  for (const std::string& ref : {std::string("k1"), k1_}) {
    json j = cli_json({"usage", "--vkey-id", ref});
    ASSERT_EQ(j.size(), 2u) << ref;
    EXPECT_EQ(j[0]["request_id"], "req-3");
    EXPECT_EQ(j[1]["request_id"], "req-1");
  }
  json k2_models = cli_json({"usage", "--vkey-id", "k2", "--by", "model"});
  ASSERT_EQ(k2_models.size(), 1u);
  EXPECT_EQ(k2_models[0]["group"], "m2");
  EXPECT_EQ(k2_models[0]["requests"], 1);

  json since = cli_json({"usage", "--since", "2026-01-11"});
  ASSERT_EQ(since.size(), 1u) << since.dump();
  EXPECT_EQ(since[0]["request_id"], "req-3");
  json since_exact = cli_json({"usage", "--since", "2026-01-10T11:00:00Z"});
  ASSERT_EQ(since_exact.size(), 2u) << "--since is inclusive";
  json until = cli_json({"usage", "--until", "2026-01-10T11:00:00Z"});
  ASSERT_EQ(until.size(), 1u);
  EXPECT_EQ(until[0]["request_id"], "req-1");
  json both = cli_json({"usage", "--vkey-id", "k1", "--since", "2026-01-10T10:30:00Z"});
  ASSERT_EQ(both.size(), 1u);
  EXPECT_EQ(both[0]["request_id"], "req-3");
}

TEST_F(UsageCli, SinceAcceptsADurationAgo) {
  std::int64_t now = now_ms();
  insert(now - 3600000, "recent", k1_, "k1", "m1", 200, 10, 1, 1, 0.1);
  insert(now - 48 * 3600000LL, "two-days-ago", k1_, "k1", "m1", 200, 10, 1, 1, 0.1);
  insert(now - 10 * 86400000LL, "ten-days-ago", k1_, "k1", "m1", 200, 10, 1, 1, 0.1);
  json day = cli_json({"usage", "--since", "24h"});
  ASSERT_EQ(day.size(), 1u) << day.dump();
  EXPECT_EQ(day[0]["request_id"], "recent");
  json week = cli_json({"usage", "--since", "7d"});
  ASSERT_EQ(week.size(), 2u) << week.dump();
  EXPECT_EQ(week[1]["request_id"], "two-days-ago");
  EXPECT_EQ(cli_json({"usage"}).size(), 3u);
}

TEST_F(UsageCli, BudgetsShowSpendInTheCurrentWindow) {
  std::string a1 =
      std::to_string(cli_json({"vkey", "show", "k1"})["assignments"][0]["id"].get<long long>());
  std::string a2 =
      std::to_string(cli_json({"vkey", "show", "k2"})["assignments"][0]["id"].get<long long>());
  add({"plan", "add", "--name", "paid", "--budget", "10"});  // per month
  cli_json({"assignment", "update", a1, "--plan", "paid"});
  cli_json({"vkey", "update", "k1", "--key-budget", "3", "--key-budget-window", "day"});
  cli_json({"assignment", "update", a2, "--budget", "2", "--budget-window", "total"});
  EXPECT_TRUE(cli_json({"usage", "--budgets", "--vkey-id", "k1"}).size() == 2u);

  std::int64_t now = now_ms();
  insert(now, "a1-now", k1_, "k1", "m1", 200, 10, 1, 1, 0.5, a1);
  insert(now, "a1-now-2", k1_, "k1", "m1", 200, 10, 1, 1, 1.25, a1);
  insert(now, "k1-unrouted", k1_, "k1", "m1", 404, 10, 0, 0, 0.25);  // the key's, no assignment
  insert(now - 40 * 86400000LL, "a1-old", k1_, "k1", "m1", 200, 10, 1, 1, 100, a1);
  insert(now - 400 * 86400000LL, "a2-old", k2_, "k2", "m1", 200, 10, 1, 1, 0.75, a2);
  insert(now, "a2-now", k2_, "k2", "m1", 200, 10, 1, 1, 0.5, a2);

  json b = cli_json({"usage", "--budgets"});
  ASSERT_EQ(b.size(), 3u) << b.dump();
  // k1's assignment: the plan's $10 per month; this month's records only.
  EXPECT_EQ(b[0]["scope"], "assignment");
  EXPECT_EQ(b[0]["vkey_name"], "k1");
  EXPECT_EQ(b[0]["assignment_id"], std::stoll(a1));
  EXPECT_EQ(b[0]["conn_id"], std::stoll(conn_));
  EXPECT_EQ(b[0]["plan"], "paid");
  EXPECT_EQ(b[0]["budget_window"], "month");
  EXPECT_DOUBLE_EQ(b[0]["budget"].get<double>(), 10.0);
  EXPECT_DOUBLE_EQ(b[0]["spent"].get<double>(), 1.75);
  EXPECT_DOUBLE_EQ(b[0]["remaining"].get<double>(), 8.25);
  ASSERT_TRUE(b[0]["window_start"].is_string());
  EXPECT_TRUE(b[0]["window_start"].get<std::string>().ends_with("-01T00:00:00Z")) << b[0];
  // k1 as a whole: $3 per day, every record of the key today.
  EXPECT_EQ(b[1]["scope"], "key");
  EXPECT_EQ(b[1]["vkey_name"], "k1");
  EXPECT_TRUE(b[1]["assignment_id"].is_null());
  EXPECT_TRUE(b[1]["plan"].is_null());
  EXPECT_EQ(b[1]["budget_window"], "day");
  EXPECT_DOUBLE_EQ(b[1]["spent"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(b[1]["remaining"].get<double>(), 1.0);
  EXPECT_TRUE(b[1]["window_start"].get<std::string>().ends_with("T00:00:00Z")) << b[1];
  // k2's own $2 in total: all its records, overspent.
  EXPECT_EQ(b[2]["vkey_name"], "k2");
  EXPECT_TRUE(b[2]["plan"].is_null());
  EXPECT_EQ(b[2]["budget_window"], "total");
  EXPECT_TRUE(b[2]["window_start"].is_null());
  EXPECT_TRUE(b[2]["window_end"].is_null());
  EXPECT_DOUBLE_EQ(b[2]["spent"].get<double>(), 1.25);
  EXPECT_DOUBLE_EQ(b[2]["remaining"].get<double>(), 0.75);

  json only = cli_json({"usage", "--budgets", "--vkey-id", "k2"});
  ASSERT_EQ(only.size(), 1u);
  EXPECT_EQ(only[0], b[2]);
  RunResult plain = cli({"usage", "--budgets"});
  ASSERT_EQ(plain.code, 0) << plain;
  for (const char* text : {"REMAINING_USD", "paid", "8.250000", "1.000000", "total"})
    EXPECT_NE(plain.out.find(text), std::string::npos) << text << "\n" << plain;
}

// ---- errors ------------------------------------------------------------------------------------

struct ErrorCase {
  std::string name;
  std::vector<std::string> args;
  int code;
  std::string mention;  // the message names the offending value
};

void PrintTo(const ErrorCase& c, std::ostream* os) {
  *os << c.name;
}

class CliErrors : public Cli, public ::testing::WithParamInterface<ErrorCase> {
 protected:
  void SetUp() override {
    Cli::SetUp();
    ASSERT_NO_FATAL_FAILURE(add({"connection", "add", "--name", "c1", "--provider", "mock"}));
    ASSERT_NO_FATAL_FAILURE(add({"connection", "add", "--name", "c2", "--provider", "openai",
                                 "--api-key", "sk-upstream-secret-xyz"}));
    ASSERT_NO_FATAL_FAILURE(
        add({"model", "add", "--name", "m1", "--remote", "r1", "--conn-id", "c1"}));
    ASSERT_NO_FATAL_FAILURE(add({"vkey", "add", "--name", "k1", "--key", "sk-existing-key-1",
                                 "--model-id", "m1", "--rpm", "10"}));
    ASSERT_NO_FATAL_FAILURE(add({"plan", "add", "--name", "p1", "--rpm", "5"}));
    ASSERT_NO_FATAL_FAILURE(add({"plan", "add", "--name", "p2", "--budget", "5"}));
    ASSERT_NO_FATAL_FAILURE(
        add({"vkey", "add", "--name", "k2", "--conn-id", "c2", "--plan", "p1"}));
  }
};

TEST_P(CliErrors, ExitCodeOneLineAndNothingChanged) {
  const ErrorCase& c = GetParam();
  std::string before = snapshot();
  ASSERT_EQ(cli_json({"assignment", "list"}).size(), 2u);

  expect_error(cli(c.args), c.code, c.mention);
  std::vector<std::string> with_json = c.args;
  with_json.push_back("--json");
  expect_error(cli(with_json), c.code, c.mention);

  EXPECT_EQ(snapshot(), before);
}

using Args = std::vector<std::string>;

const ErrorCase kErrorCases[] = {
    // Usage errors: 2.
    {"UnknownProvider", Args{"connection", "add", "--name", "x", "--provider", "nope"}, 2, "nope"},
    {"FtpEndpoint",
     Args{"connection", "add", "--name", "x", "--provider", "openai", "--endpoint", "ftp://x"}, 2,
     "ftp://x"},
    {"EndpointWithoutHost",
     Args{"connection", "add", "--name", "x", "--provider", "openai", "--endpoint", "http://"}, 2,
     "http://"},
    {"EndpointWithCredentials",
     Args{"connection", "add", "--name", "x", "--provider", "openai", "--endpoint",
          "https://user:pw@host.example"},
     2, "--endpoint"},
    {"EndpointBadPort",
     Args{"connection", "add", "--name", "x", "--provider", "openai", "--endpoint",
          "https://host.example:99999"},
     2, "--endpoint"},
    {"AzureWithoutApiKey",
     Args{"connection", "add", "--name", "x", "--provider", "azure", "--endpoint",
          "https://a.openai.azure.com"},
     2, "--api-key"},
    {"AllDigitName", Args{"connection", "add", "--name", "123", "--provider", "mock"}, 2, "123"},
    {"ConnectionMissingName", Args{"connection", "add", "--provider", "mock"}, 2, "--name"},
    {"ConnectionMissingProvider", Args{"connection", "add", "--name", "x"}, 2, "--provider"},
    {"UnknownFlag", Args{"connection", "add", "--name", "x", "--provider", "mock", "--bogus"}, 2,
     "--bogus"},
    {"UnknownCommand", Args{"frobnicate"}, 2, ""},
    {"MissingSubcommand", Args{"connection"}, 2, ""},
    {"ShowWithoutReference", Args{"connection", "show"}, 2, ""},
    {"UpdateBadEndpoint", Args{"connection", "update", "c1", "--endpoint", "ftp://x"}, 2,
     "ftp://x"},
    {"UpdateZeroTimeout", Args{"connection", "update", "c2", "--timeout", "0"}, 2, "--timeout"},
    {"UpdateNonNumericTimeout", Args{"connection", "update", "c2", "--timeout", "soon"}, 2, "soon"},
    {"UpdateValidTimeoutBadHeader",
     Args{"connection", "update", "c2", "--timeout", "2.5", "--header", "NoColon"}, 2, "NoColon"},
    {"ModelMissingRemote", Args{"model", "add", "--name", "x", "--conn-id", "c1"}, 2, "--remote"},
    {"ModelMissingConn", Args{"model", "add", "--name", "x", "--remote", "r"}, 2, "--conn-id"},
    {"ModelNegativePrice",
     Args{"model", "add", "--name", "x", "--remote", "r", "--conn-id", "c1", "--input-price", "-1"},
     2, "--input-price"},
    {"VkeyMissingName", Args{"vkey", "add", "--model-id", "m1"}, 2, "--name"},
    {"NegativeTps", Args{"vkey", "add", "--name", "x", "--model-id", "m1", "--tps", "-1"}, 2,
     "--tps"},
    {"NegativeRpm", Args{"vkey", "add", "--name", "x", "--model-id", "m1", "--rpm", "-5"}, 2,
     "--rpm"},
    {"NegativeTokenLimit",
     Args{"vkey", "add", "--name", "x", "--model-id", "m1", "--token-limit", "-100"}, 2,
     "--token-limit"},
    {"BadTokenWindow",
     Args{"vkey", "add", "--name", "x", "--model-id", "m1", "--token-window", "weekly"}, 2,
     "weekly"},
    {"NonNumericTps", Args{"vkey", "add", "--name", "x", "--model-id", "m1", "--tps", "abc"}, 2,
     "abc"},
    {"FractionalRpm", Args{"vkey", "add", "--name", "x", "--model-id", "m1", "--rpm", "1.5"}, 2,
     "1.5"},
    {"LimitsWithoutTarget", Args{"vkey", "add", "--name", "x", "--tps", "5"}, 2, ""},
    {"KeyTooShort", Args{"vkey", "add", "--name", "x", "--key", "short", "--model-id", "m1"}, 2,
     "--key"},
    {"ExpiresInPast",
     Args{"vkey", "add", "--name", "x", "--model-id", "m1", "--expires", "2020-01-01"}, 2,
     "--expires"},
    {"ExpiresNotADate",
     Args{"vkey", "add", "--name", "x", "--model-id", "m1", "--expires", "2026-02-30"}, 2,
     "2026-02-30"},
    {"RotateKeyTooShort", Args{"vkey", "rotate", "k2", "--key", "short"}, 2, "--key"},
    {"AssignmentBothTargets",
     Args{"assignment", "add", "--vkey-id", "k2", "--conn-id", "c1", "--model-id", "m1"}, 2, ""},
    {"AssignmentNoTarget", Args{"assignment", "add", "--vkey-id", "k2"}, 2, ""},
    {"AssignmentMissingVkey", Args{"assignment", "add", "--conn-id", "c1"}, 2, "--vkey-id"},
    {"AssignmentUpdateNegativeRpm", Args{"assignment", "update", "1", "--rpm", "-5"}, 2, "--rpm"},
    {"AssignmentUpdateBadWindow", Args{"assignment", "update", "1", "--token-window", "weekly"}, 2,
     "weekly"},
    {"AssignmentIdNotANumber", Args{"assignment", "update", "abc", "--rpm", "1"}, 2, "abc"},
    {"UsageBadBy", Args{"usage", "--by", "weekly"}, 2, "weekly"},
    {"UsageBadSince", Args{"usage", "--since", "yesterday"}, 2, "yesterday"},
    {"UsageSinceAfterUntil", Args{"usage", "--since", "2026-02-01", "--until", "2026-01-01"}, 2,
     ""},
    {"UsageNegativeLimit", Args{"usage", "--limit", "-1"}, 2, "--limit"},
    {"NegativeRph", Args{"vkey", "add", "--name", "x", "--model-id", "m1", "--rph", "-1"}, 2,
     "--rph"},
    {"NegativeRpd", Args{"assignment", "update", "1", "--rpd", "-1"}, 2, "--rpd"},
    {"NegativeBudget", Args{"vkey", "add", "--name", "x", "--model-id", "m1", "--budget", "-5"}, 2,
     "--budget"},
    {"NonNumericBudget", Args{"assignment", "update", "1", "--budget", "lots"}, 2, "lots"},
    {"BadBudgetWindow",
     Args{"vkey", "add", "--name", "x", "--model-id", "m1", "--budget-window", "weekly"}, 2,
     "weekly"},
    {"NegativeMaxParallel", Args{"assignment", "update", "1", "--max-parallel", "-2"}, 2,
     "--max-parallel"},
    {"FractionalMaxParallel", Args{"assignment", "update", "1", "--max-parallel", "1.5"}, 2, "1.5"},
    {"NegativeReserveTokens",
     Args{"assignment", "add", "--vkey-id", "k2", "--model-id", "m1", "--reserve-tokens", "-1"}, 2,
     "--reserve-tokens"},
    {"ValidRpmBadBudgetWindow",
     Args{"assignment", "update", "1", "--rpm", "7", "--budget-window", "weekly"}, 2, "weekly"},
    {"NegativeKeyBudget", Args{"vkey", "add", "--name", "x", "--key-budget", "-1"}, 2,
     "--key-budget"},
    {"BadKeyBudgetWindow", Args{"vkey", "update", "k1", "--key-budget-window", "weekly"}, 2,
     "weekly"},
    {"NegativeKeyTokenLimit", Args{"vkey", "update", "k1", "--key-token-limit", "-1"}, 2,
     "--key-token-limit"},
    {"RenameWithBadKeyTokenWindow",
     Args{"vkey", "update", "k2", "--name", "renamed", "--key-token-window", "weekly"}, 2,
     "weekly"},
    {"PlanWithoutTarget", Args{"vkey", "add", "--name", "x", "--plan", "p1"}, 2, ""},
    {"PlanMissingName", Args{"plan", "add", "--rpm", "5"}, 2, "--name"},
    {"PlanAllDigitName", Args{"plan", "add", "--name", "42"}, 2, "42"},
    {"PlanNamedNone", Args{"plan", "add", "--name", "none"}, 2, "none"},
    {"PlanNegativeRpm", Args{"plan", "add", "--name", "x", "--rpm", "-1"}, 2, "--rpm"},
    {"PlanUpdateBadWindow", Args{"plan", "update", "p1", "--token-window", "weekly"}, 2, "weekly"},
    {"PlanUpdateNegativeBudget", Args{"plan", "update", "p2", "--name", "p3", "--budget", "-1"}, 2,
     "--budget"},
    {"PlansDoNotNest", Args{"plan", "add", "--name", "x", "--plan", "p1"}, 2, "--plan"},
    {"PlanWithoutSubcommand", Args{"plan"}, 2, ""},
    {"UsageBudgetsWithBy", Args{"usage", "--budgets", "--by", "day"}, 2, "--by"},
    {"UsageBudgetsWithSince", Args{"usage", "--budgets", "--since", "24h"}, 2, "--since"},
    // Not found: 3.
    {"ShowMissingConnectionId", Args{"connection", "show", "999"}, 3, "999"},
    {"ShowMissingConnectionName", Args{"connection", "show", "nope"}, 3, "nope"},
    {"RemoveMissingConnection", Args{"connection", "remove", "nope"}, 3, "nope"},
    {"UpdateMissingConnection", Args{"connection", "update", "nope", "--timeout", "5"}, 3, "nope"},
    {"ShowMissingModel", Args{"model", "show", "nope"}, 3, "nope"},
    {"RemoveMissingModelId", Args{"model", "remove", "999"}, 3, "999"},
    {"ModelAddMissingConnection",
     Args{"model", "add", "--name", "x", "--remote", "r", "--conn-id", "nope"}, 3, "nope"},
    {"ModelUpdateMissingConnection", Args{"model", "update", "m1", "--conn-id", "nope"}, 3, "nope"},
    {"ModelListMissingConnection", Args{"model", "list", "--conn-id", "nope"}, 3, "nope"},
    {"ShowMissingVkey", Args{"vkey", "show", "nope"}, 3, "nope"},
    {"RemoveMissingVkey", Args{"vkey", "remove", "999"}, 3, "999"},
    {"DisableMissingVkey", Args{"vkey", "disable", "nope"}, 3, "nope"},
    {"RotateMissingVkey", Args{"vkey", "rotate", "nope"}, 3, "nope"},
    {"VkeyAddMissingModel", Args{"vkey", "add", "--name", "x", "--model-id", "nope"}, 3, "nope"},
    {"VkeyAddSecondTargetMissing",
     Args{"vkey", "add", "--name", "x", "--model-id", "m1", "--conn-id", "nope"}, 3, "nope"},
    {"AssignmentAddMissingKey", Args{"assignment", "add", "--vkey-id", "nope", "--model-id", "m1"},
     3, "nope"},
    {"AssignmentAddMissingModel",
     Args{"assignment", "add", "--vkey-id", "k2", "--model-id", "nope"}, 3, "nope"},
    {"AssignmentAddMissingConnection",
     Args{"assignment", "add", "--vkey-id", "k2", "--conn-id", "nope"}, 3, "nope"},
    {"AssignmentListMissingKey", Args{"assignment", "list", "--vkey-id", "nope"}, 3, "nope"},
    {"AssignmentUpdateMissing", Args{"assignment", "update", "999", "--rpm", "1"}, 3, "999"},
    {"AssignmentRemoveMissing", Args{"assignment", "remove", "999"}, 3, "999"},
    {"UsageMissingKey", Args{"usage", "--vkey-id", "nope"}, 3, "nope"},
    {"UsageBudgetsMissingKey", Args{"usage", "--budgets", "--vkey-id", "nope"}, 3, "nope"},
    {"ShowMissingPlan", Args{"plan", "show", "nope"}, 3, "nope"},
    {"UpdateMissingPlan", Args{"plan", "update", "999", "--rpm", "1"}, 3, "999"},
    {"RemoveMissingPlan", Args{"plan", "remove", "nope", "--force"}, 3, "nope"},
    {"VkeyAddMissingPlan", Args{"vkey", "add", "--name", "x", "--model-id", "m1", "--plan", "nope"},
     3, "nope"},
    {"AssignmentAddMissingPlan",
     Args{"assignment", "add", "--vkey-id", "k2", "--model-id", "m1", "--plan", "nope"}, 3, "nope"},
    {"AssignmentUpdateMissingPlan",
     Args{"assignment", "update", "1", "--rpm", "3", "--plan", "nope"}, 3, "nope"},
    // Conflicts: 4.
    {"DuplicateConnectionName", Args{"connection", "add", "--name", "c1", "--provider", "mock"}, 4,
     "c1"},
    {"RenameConnectionToTakenName", Args{"connection", "update", "c2", "--name", "c1"}, 4, "c1"},
    {"DuplicateModelName", Args{"model", "add", "--name", "m1", "--remote", "r", "--conn-id", "c2"},
     4, "m1"},
    {"DuplicateVkeyName", Args{"vkey", "add", "--name", "k1", "--model-id", "m1"}, 4, "k1"},
    {"RenameVkeyToTakenName", Args{"vkey", "update", "k2", "--name", "k1"}, 4, "k1"},
    {"DuplicateKey",
     Args{"vkey", "add", "--name", "x", "--key", "sk-existing-key-1", "--model-id", "m1"}, 4,
     "key"},
    {"RotateToTakenKey", Args{"vkey", "rotate", "k2", "--key", "sk-existing-key-1"}, 4, "key"},
    {"RemoveConnectionUsedByModel", Args{"connection", "remove", "c1"}, 4, "c1"},
    {"RemoveConnectionUsedByAssignment", Args{"connection", "remove", "c2"}, 4, "c2"},
    {"RemoveModelUsedByAssignment", Args{"model", "remove", "m1"}, 4, "m1"},
    {"DuplicateAssignment", Args{"assignment", "add", "--vkey-id", "k1", "--model-id", "m1"}, 4,
     ""},
    {"DuplicatePlanName", Args{"plan", "add", "--name", "p1"}, 4, "p1"},
    {"RenamePlanToTakenName", Args{"plan", "update", "p2", "--name", "p1"}, 4, "p1"},
    {"RemovePlanInUse", Args{"plan", "remove", "p1"}, 4, "p1"},
};

INSTANTIATE_TEST_SUITE_P(Cases, CliErrors, ::testing::ValuesIn(kErrorCases),
                         [](const ::testing::TestParamInfo<ErrorCase>& info) {
                           return info.param.name;
                         });

TEST_F(Cli, ErrorsNeverPrintTheUpstreamSecret) {
  add({"connection", "add", "--name", "c2", "--provider", "openai", "--api-key",
       "sk-upstream-secret-xyz"});
  for (const auto& args : std::vector<Args>{{"connection", "add", "--name", "c2", "--provider",
                                             "openai", "--api-key", "sk-upstream-secret-xyz"},
                                            {"connection", "update", "c2", "--endpoint", "ftp://x",
                                             "--api-key", "sk-upstream-secret-xyz"}}) {
    RunResult r = cli(args);
    EXPECT_NE(r.code, 0) << r;
    EXPECT_EQ(r.err.find("sk-upstream-secret-xyz"), std::string::npos) << r;
    EXPECT_EQ(r.out.find("sk-upstream-secret-xyz"), std::string::npos) << r;
  }
}

TEST_F(Cli, DatabaseInMissingDirectoryIsAStorageFailure) {
  const std::string missing = dir_ + "/missing";
  expect_error(run({"connection", "list", "--db", missing + "/t.db"}), 1);
  expect_error(run({"--json", "--db", missing + "/t.db", "connection", "add", "--name", "x",
                    "--provider", "mock"}),
               1);
  expect_error(run({"connection", "list"}, {{"LLM_PROXY_DB", "sqlite://" + missing + "/t.db"}}), 1);
  EXPECT_FALSE(fs::exists(missing)) << "the directory is not created";
}

TEST_F(Cli, UnsupportedDatabaseUrlIsAUsageError) {
  expect_error(run({"connection", "list", "--db", "ftp://host/x.db"}, {}, dir_), 2, "ftp");
  expect_error(run({"connection", "list"}, {{"LLM_PROXY_DB", "mysql://host/db"}}, dir_), 2,
               "mysql");
  EXPECT_FALSE(fs::exists(dir_ + "/llm-proxy.db")) << "no fallback to the default";
}

TEST_F(Cli, HalfAnEnvironmentLocationIsAUsageError) {
  expect_error(run({"connection", "list"}, {{"DB_TYPE", "sqlite"}}, dir_), 2, "DB_DSN");
  expect_error(run({"connection", "list"}, {{"DB_DSN", db_}}, dir_), 2, "DB_TYPE");
  expect_error(run({"connection", "list"}, {{"DB_TYPE", "oracle"}, {"DB_DSN", db_}}, dir_), 2,
               "oracle");
  EXPECT_FALSE(fs::exists(db_));
  EXPECT_FALSE(fs::exists(dir_ + "/llm-proxy.db")) << "no fallback to the default";
}

// ---- help
// ------------------------------------------------------------------------------------------

TEST_F(Cli, TopLevelHelp) {
  RunResult r = run({"--help"}, {}, dir_);
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("Examples"), std::string::npos) << r;
  for (const char* word :
       {"connection", "model", "vkey", "assignment", "plan", "usage", "--db", "--json"})
    EXPECT_NE(r.out.find(word), std::string::npos) << word << "\n" << r;
  EXPECT_FALSE(fs::exists(dir_ + "/llm-proxy.db")) << "--help opens no database";
}

TEST_F(Cli, CommandHelpShowsExamples) {
  for (const auto& args : std::vector<Args>{{"vkey", "add", "--help"},
                                            {"connection", "add", "--help"},
                                            {"model", "add", "--help"},
                                            {"assignment", "update", "--help"},
                                            {"plan", "add", "--help"},
                                            {"usage", "--help"}}) {
    RunResult r = run(args, {}, dir_);
    EXPECT_EQ(r.code, 0) << r;
    EXPECT_NE(r.out.find("Examples"), std::string::npos) << r;
    EXPECT_NE(r.out.find("llm-proxy " + args[0]), std::string::npos) << r;
  }
  RunResult vk = run({"vkey", "add", "--help"}, {}, dir_);
  for (const char* flag : {"--name",
                           "--key",
                           "--conn-id",
                           "--model-id",
                           "--tps",
                           "--rpm",
                           "--rph",
                           "--rpd",
                           "--token-limit",
                           "--token-window",
                           "--budget",
                           "--budget-window",
                           "--max-parallel",
                           "--reserve-tokens",
                           "--plan",
                           "--key-budget",
                           "--key-budget-window",
                           "--key-token-limit",
                           "--key-token-window",
                           "--expires"})
    EXPECT_NE(vk.out.find(flag), std::string::npos) << flag << "\n" << vk;
  EXPECT_FALSE(fs::exists(dir_ + "/llm-proxy.db"));
}

// ---- database selection --------------------------------------------------------------------

TEST_F(Cli, DatabaseFromLlmProxyDbUrl) {
  const std::string path = dir_ + "/from-url.db";
  Env env{{"LLM_PROXY_DB", "sqlite://" + path}};  // sqlite:///abs/path
  ASSERT_EQ(("sqlite://" + path).substr(0, 10), "sqlite:///");
  RunResult r = run({"connection", "add", "--name", "via-url", "--provider", "mock"}, env, dir_);
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(fs::exists(path));
  EXPECT_TRUE(fs::exists(path + ".key"));
  EXPECT_FALSE(fs::exists(dir_ + "/llm-proxy.db"));
  json j = parse_doc(run({"connection", "list", "--json", "--db", path}));
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["name"], "via-url");
  EXPECT_EQ(parse_doc(run({"connection", "list", "--json"}, env)), j);
}

TEST_F(Cli, DatabaseFromDbTypeAndDsn) {
  const std::string path = dir_ + "/from-dsn.db";
  Env env{{"DB_TYPE", "sqlite"}, {"DB_DSN", path}};
  RunResult r = run({"connection", "add", "--name", "via-dsn", "--provider", "mock"}, env, dir_);
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(fs::exists(path));
  EXPECT_FALSE(fs::exists(dir_ + "/llm-proxy.db"));
  json j = parse_doc(run({"--json", "--db", path, "connection", "list"}));
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["name"], "via-dsn");
}

TEST_F(Cli, DatabaseFromPlainPathAndRelativeUrl) {
  RunResult abs =
      run({"connection", "add", "--name", "a", "--provider", "mock", "--db", dir_ + "/plain.db"});
  ASSERT_EQ(abs.code, 0) << abs;
  EXPECT_TRUE(fs::exists(dir_ + "/plain.db"));
  // Relative paths are relative to the working directory.
  RunResult rel = run({"connection", "list", "--json", "--db", "plain.db"}, {}, dir_);
  json j = parse_doc(rel);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["name"], "a");
  RunResult rel_url = run({"connection", "list", "--json", "--db", "sqlite:plain.db"}, {}, dir_);
  EXPECT_EQ(parse_doc(rel_url), j);
}

TEST_F(Cli, DefaultDatabaseInWorkingDirectory) {
  RunResult r = run({"connection", "add", "--name", "dflt", "--provider", "mock"}, {}, dir_);
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(fs::exists(dir_ + "/llm-proxy.db"));
  struct stat st {};
  ASSERT_EQ(stat((dir_ + "/llm-proxy.db.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  json j = parse_doc(run({"connection", "list", "--json", "--db", dir_ + "/llm-proxy.db"}));
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["name"], "dflt");
}

TEST_F(Cli, DbFlagWinsOverEnvironment) {
  const std::string from_env = dir_ + "/env.db";
  const std::string from_dsn = dir_ + "/dsn.db";
  const std::string from_flag = dir_ + "/flag.db";
  Env env{{"LLM_PROXY_DB", "sqlite://" + from_env}, {"DB_TYPE", "sqlite"}, {"DB_DSN", from_dsn}};
  RunResult r =
      run({"connection", "add", "--name", "x", "--provider", "mock", "--db", from_flag}, env, dir_);
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(fs::exists(from_flag));
  EXPECT_FALSE(fs::exists(from_env));
  EXPECT_FALSE(fs::exists(from_dsn));
  // Without the flag, LLM_PROXY_DB wins over DB_TYPE + DB_DSN.
  RunResult r2 = run({"connection", "add", "--name", "y", "--provider", "mock"}, env, dir_);
  ASSERT_EQ(r2.code, 0) << r2;
  EXPECT_TRUE(fs::exists(from_env));
  EXPECT_FALSE(fs::exists(from_dsn));
  EXPECT_FALSE(fs::exists(dir_ + "/llm-proxy.db"));
}

// ---- admin users ------------------------------------------------------------------------

// The admin CLI's users, checked through the CLI and, for what is stored, the
// database itself.
class AdminCli : public Cli {
 protected:
  static constexpr const char* kPassword = "correct horse battery staple";
  static constexpr const char* kNewPassword = "Tr0ub4dor&3-but-longer";

  RunResult add_user(const std::string& name, const std::string& password,
                     std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"admin", "add", "--username", name, "--password-stdin"};
    args.insert(args.end(), extra.begin(), extra.end());
    RunResult r = cli_in(args, password + "\n");
    outputs_ += r.out + r.err;
    return r;
  }

  std::string stored_hash(const std::string& name) const {
    if (on_mongo()) {
      auto docs = mongo_find("admin_users", json{{"username", name}}.dump());
      if (docs.size() != 1 || !docs[0]["password_hash"].is_string()) {
        ADD_FAILURE() << "admin_users " << name << ": " << docs.size() << " documents";
        return {};
      }
      return docs[0]["password_hash"].get<std::string>();
    }
    return query_one(db_, "SELECT password_hash FROM admin_users WHERE username = '" + name + "'");
  }
  std::string user_count() const {
    if (on_mongo()) return std::to_string(mongo_find("admin_users", "{}").size());
    return query_one(db_, "SELECT COUNT(*) FROM admin_users");
  }

  // True when `encoded` is "pbkdf2-sha256$<iterations>$<salt>$<hash>" with
  // hash = PBKDF2-HMAC-SHA256(password, salt), computed here with OpenSSL.
  static bool hash_matches(const std::string& encoded, const std::string& password) {
    std::vector<std::string> parts;
    std::stringstream ss(encoded);
    for (std::string part; std::getline(ss, part, '$');) parts.push_back(part);
    if (parts.size() != 4 || parts[0] != "pbkdf2-sha256") return false;
    int iterations = std::stoi(parts[1]);
    std::string salt(parts[2].size(), '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(salt.data()),
                            reinterpret_cast<const unsigned char*>(parts[2].data()),
                            static_cast<int>(parts[2].size()));
    if (n < 0) return false;
    n -= static_cast<int>(std::count(parts[2].begin(), parts[2].end(), '='));
    salt.resize(static_cast<std::size_t>(n));
    unsigned char key[32];
    if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                          reinterpret_cast<const unsigned char*>(salt.data()),
                          static_cast<int>(salt.size()), iterations, EVP_sha256(), sizeof key,
                          key) != 1)
      return false;
    std::string b64(4 * ((sizeof key + 2) / 3) + 1, '\0');
    int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), key, sizeof key);
    b64.resize(static_cast<std::size_t>(len));
    return b64 == parts[3];
  }

  std::string outputs_;  // everything add_user printed
};

TEST_F(AdminCli, AddPrintsOnlyTheIdAndListShowsNoSecrets) {
  RunResult r = add_user("alice", kPassword);
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(is_id(lines(r.out).at(0))) << r;
  EXPECT_EQ(r.out, lines(r.out).at(0) + "\n") << r;

  RunResult viewer = cli_in({"admin", "add", "--username", "Bob.Smith@example-corp", "--role",
                             "viewer", "--password-stdin", "--json"},
                            std::string(kNewPassword) + "\n");
  outputs_ += viewer.out + viewer.err;
  json v = parse_doc(viewer);
  EXPECT_EQ(v["username"], "Bob.Smith@example-corp");
  EXPECT_EQ(v["role"], "viewer");
  std::vector<std::string> keys;
  for (auto it = v.begin(); it != v.end(); ++it) keys.push_back(it.key());
  std::sort(keys.begin(), keys.end());  // exactly these, never a hash
  EXPECT_EQ(keys, (std::vector<std::string>{"created_at", "id", "role", "updated_at", "username"}));

  json all = cli_json({"admin", "list"});
  ASSERT_EQ(all.size(), 2u) << all.dump();
  EXPECT_EQ(all[0]["username"], "Bob.Smith@example-corp");  // by username, byte order
  EXPECT_EQ(all[0]["role"], "viewer");
  EXPECT_EQ(all[1]["username"], "alice");
  EXPECT_EQ(all[1]["role"], "admin");  // the default
  EXPECT_EQ(all[1]["id"], std::stoll(lines(r.out).at(0)));
  EXPECT_EQ(all[0], v);

  RunResult plain = cli({"admin", "list"});
  ASSERT_EQ(plain.code, 0) << plain;
  EXPECT_NE(plain.out.find("alice"), std::string::npos) << plain;
  EXPECT_NE(plain.out.find("viewer"), std::string::npos) << plain;
  outputs_ += all.dump() + plain.out + plain.err;
  for (const char* secret : {kPassword, kNewPassword, "pbkdf2", "password_hash"})
    EXPECT_EQ(outputs_.find(secret), std::string::npos) << secret << " in\n" << outputs_;

  // What is stored is a PBKDF2 hash of exactly the line given (no newline).
  EXPECT_TRUE(hash_matches(stored_hash("alice"), kPassword)) << stored_hash("alice");
  EXPECT_TRUE(stored_hash("alice").starts_with("pbkdf2-sha256$600000$"));
}

TEST_F(AdminCli, DuplicateUsernameIsAConflict) {
  ASSERT_EQ(add_user("alice", kPassword).code, 0);
  std::string hash = stored_hash("alice");
  expect_error(add_user("alice", kNewPassword, {"--role", "viewer"}), 4, "alice");
  EXPECT_EQ(user_count(), "1");
  EXPECT_EQ(stored_hash("alice"), hash);
  EXPECT_EQ(cli_json({"admin", "list"})[0]["role"], "admin");
}

TEST_F(AdminCli, ShortOrMissingPasswordIsRefusedAndNothingIsWritten) {
  expect_error(add_user("alice", "short"), 2, "at least 12 characters");
  expect_error(add_user("alice", "elevenchars"), 2, "at least 12 characters");
  expect_error(add_user("alice", ""), 2, "password");
  expect_error(cli_in({"admin", "add", "--username", "alice", "--password-stdin"}, ""), 2,
               "password");
  // Without --password-stdin nothing is read, and nothing written.
  expect_error(cli_in({"admin", "add", "--username", "alice"}, std::string(kPassword) + "\n"), 2,
               "--password-stdin");
  // A password on the command line is not an option at all.
  expect_error(cli({"admin", "add", "--username", "alice", "--password", kPassword}), 2);
  EXPECT_EQ(user_count(), "0");
  EXPECT_TRUE(cli_json({"admin", "list"}).empty());
  RunResult tiny = add_user("alice", "pw-tiny-9");
  EXPECT_EQ((tiny.out + tiny.err).find("pw-tiny-9"), std::string::npos) << "never echoed\n" << tiny;

  // Exactly twelve characters (not bytes) is enough.
  ASSERT_EQ(add_user("alice", "twelve-chars").code, 0);
  expect_error(
      add_user("bob", "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"), 2,
      "at least 12 characters");  // 11 characters, 22 bytes
  EXPECT_EQ(user_count(), "1");
}

TEST_F(AdminCli, WindowsLineEndingIsNotPartOfThePassword) {
  RunResult r = cli_in({"admin", "add", "--username", "win", "--password-stdin"},
                       std::string(kPassword) + "\r\n");
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(hash_matches(stored_hash("win"), kPassword));
}

TEST_F(AdminCli, BadUsernameOrRoleIsRefused) {
  EXPECT_TRUE(cli_json({"admin", "list"}).empty());  // creates the database
  expect_error(add_user("bad name", kPassword), 2, "username");
  expect_error(add_user("semi;colon", kPassword), 2, "username");
  expect_error(add_user(std::string(65, 'a'), kPassword), 2, "username");
  expect_error(add_user("carol", kPassword, {"--role", "root"}), 2, "role");
  expect_error(cli_in({"admin", "add", "--password-stdin"}, std::string(kPassword) + "\n"), 2,
               "--username");
  EXPECT_EQ(user_count(), "0");
  ASSERT_EQ(add_user(std::string(64, 'a'), kPassword).code, 0);
}

TEST_F(AdminCli, DeleteRemovesTheUser) {
  ASSERT_EQ(add_user("alice", kPassword).code, 0);
  ASSERT_EQ(add_user("bob", kPassword).code, 0);
  RunResult r = cli({"admin", "delete", "alice"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.out, "");
  json all = cli_json({"admin", "list"});
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0]["username"], "bob");
  expect_error(cli({"admin", "delete", "alice"}), 3, "alice");
  EXPECT_EQ(cli_json({"admin", "delete", "bob"}), json({{"removed", "bob"}}));
  EXPECT_EQ(user_count(), "0");
}

TEST_F(AdminCli, PasswdChangesTheHash) {
  ASSERT_EQ(add_user("alice", kPassword).code, 0);
  const std::string before = stored_hash("alice");
  const std::string updated_before =
      cli_json({"admin", "list"})[0]["updated_at"].get<std::string>();

  RunResult r = cli_in({"admin", "passwd", "alice", "--password-stdin", "--json"},
                       std::string(kNewPassword) + "\n");
  json j = parse_doc(r);
  EXPECT_EQ(j["username"], "alice");
  EXPECT_EQ(j.count("password_hash"), 0u);
  EXPECT_EQ((r.out + r.err).find(kNewPassword), std::string::npos) << r;
  const std::string after = stored_hash("alice");
  EXPECT_NE(after, before);
  EXPECT_TRUE(hash_matches(after, kNewPassword));
  EXPECT_FALSE(hash_matches(after, kPassword));
  EXPECT_GE(j["updated_at"].get<std::string>(), updated_before);

  // Unknown user, short password: exit code, and the hash stays.
  expect_error(
      cli_in({"admin", "passwd", "nobody", "--password-stdin"}, std::string(kPassword) + "\n"), 3,
      "nobody");
  expect_error(cli_in({"admin", "passwd", "alice", "--password-stdin"}, "short\n"), 2,
               "at least 12 characters");
  expect_error(cli_in({"admin", "passwd", "alice"}, std::string(kPassword) + "\n"), 2,
               "--password-stdin");
  EXPECT_EQ(stored_hash("alice"), after);
}

TEST_F(AdminCli, SetRoleSwitchesBetweenAdminAndViewer) {
  ASSERT_EQ(add_user("alice", kPassword).code, 0);
  const std::string hash = stored_hash("alice");
  json j = cli_json({"admin", "set-role", "alice", "viewer"});
  EXPECT_EQ(j["role"], "viewer");
  EXPECT_EQ(cli_json({"admin", "list"})[0]["role"], "viewer");
  EXPECT_EQ(cli_json({"admin", "set-role", "alice", "admin"})["role"], "admin");
  RunResult plain = cli({"admin", "set-role", "alice", "viewer"});
  ASSERT_EQ(plain.code, 0) << plain;
  EXPECT_NE(plain.out.find("viewer"), std::string::npos) << plain;
  expect_error(cli({"admin", "set-role", "alice", "owner"}), 2, "role");
  expect_error(cli({"admin", "set-role", "nobody", "admin"}), 3, "nobody");
  EXPECT_EQ(stored_hash("alice"), hash) << "a role change keeps the password";
}

TEST_F(AdminCli, PasswordsAreNeverStoredInPlaintext) {
  ASSERT_EQ(add_user("alice", kPassword).code, 0);
  RunResult r =
      cli_in({"admin", "passwd", "alice", "--password-stdin"}, std::string(kNewPassword) + "\n");
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ((r.out + r.err).find(kNewPassword), std::string::npos) << r;
  EXPECT_TRUE(db_files_contain("alice")) << "sanity: this is where the user went";
  EXPECT_FALSE(db_files_contain(kPassword));
  EXPECT_FALSE(db_files_contain(kNewPassword));
}

// libmongoc initialises itself as the binary loads, whatever the backend, and
// prints "Falling back to malloc for counters." on stderr when a statistics
// file /dev/shm/mongoc-<pid> already exists (left by a killed process that had
// the same pid). The CLI's stderr must stay its own: one line on error, else
// nothing. The child creates the file for its own pid, then execs the binary
// under that pid.
TEST_F(Cli, AStaleMongocStatisticsFileDoesNotReachStderr) {
  int err_pipe[2];
  ASSERT_EQ(pipe(err_pipe), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    char path[64] = "/dev/shm/mongoc-";
    char digits[24];
    int n = 0;
    for (long v = getpid(); v > 0; v /= 10) digits[n++] = static_cast<char>('0' + v % 10);
    std::size_t len = std::strlen(path);
    while (n > 0) path[len++] = digits[--n];
    path[len] = '\0';
    int fd = open(path, O_CREAT | O_RDWR, 0600);
    if (fd >= 0) close(fd);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(err_pipe[1], 2);
    close(err_pipe[0]);
    execl(LLM_PROXY_BIN, LLM_PROXY_BIN, "--help", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(err_pipe[1]);
  std::string err;
  char buf[4096];
  for (ssize_t r; (r = read(err_pipe[0], buf, sizeof buf)) > 0;) err.append(buf, r);
  close(err_pipe[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  std::string shm = "/dev/shm/mongoc-" + std::to_string(pid);
  bool file_was_there = unlink(shm.c_str()) == 0;
  ASSERT_TRUE(file_was_there) << "the child did not create " << shm;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(err, "");
}

}  // namespace
