#include "tests/storage/mongo_test_server.h"

#include <fcntl.h>
#include <mongoc/mongoc.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "storage/url.h"

#ifndef LLM_PROXY_FAKE_MONGOD
#error "LLM_PROXY_FAKE_MONGOD must name tests/storage/fake_mongod.py"
#endif
#ifndef LLM_PROXY_PYTHON
#define LLM_PROXY_PYTHON "python3"
#endif

namespace llmproxy::storage::mongotest {
namespace {

struct ServerState {
  std::string base;     // mongodb://host:port (no path)
  std::string options;  // "?…" or empty
  bool fake = false;
  pid_t pid = -1;
  int stdin_fd = -1;  // closing it makes the test server exit
};

// Starts fake_mongod.py and reads the port it prints.
void start_fake(ServerState& s) {
  int in[2], out[2];
  if (::pipe(in) != 0 || ::pipe(out) != 0)
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::close(in[1]);
    ::close(out[0]);
    ::execlp(LLM_PROXY_PYTHON, LLM_PROXY_PYTHON, LLM_PROXY_FAKE_MONGOD, "--port", "0",
             static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::fcntl(in[1], F_SETFD, FD_CLOEXEC);
  std::string line;
  char ch;
  while (::read(out[0], &ch, 1) == 1 && ch != '\n') line += ch;
  ::close(out[0]);
  if (line.empty() || line.find_first_not_of("0123456789") != std::string::npos) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    throw std::runtime_error("the MongoDB wire-protocol test server (" +
                             std::string(LLM_PROXY_FAKE_MONGOD) + ") did not start");
  }
  s.pid = pid;
  s.stdin_fd = in[1];
  s.base = "mongodb://127.0.0.1:" + line;
  s.options = "?serverSelectionTimeoutMS=5000";
  s.fake = true;
}

ServerState& server() {
  static ServerState s;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* uri = std::getenv("LLM_PROXY_TEST_MONGODB_URI");
    if (uri && *uri) {
      auto parts = llmproxy::storage::split_url(uri);
      if (!parts) throw std::runtime_error("LLM_PROXY_TEST_MONGODB_URI is not a mongodb:// URL");
      s.options = parts->query.empty() ? "" : "?" + std::string(parts->query);
      s.base = std::string(parts->scheme) + "://";
      if (!parts->userinfo.empty()) s.base += std::string(parts->userinfo) + "@";
      s.base += std::string(parts->hosts);
      std::cout << "MongoDB tests: running against the server in "
                   "LLM_PROXY_TEST_MONGODB_URI\n";
    } else {
      start_fake(s);
      std::cout << "MongoDB tests: running against the wire-protocol test server (no "
                   "real mongod available here)\n";
    }
    std::cout.flush();
    std::atexit([] {
      if (s.pid > 0) {
        ::close(s.stdin_fd);
        ::kill(s.pid, SIGTERM);
        ::waitpid(s.pid, nullptr, 0);
      }
    });
  });
  return s;
}

}  // namespace

std::string create_database() {
  static std::atomic<int> counter{0};
  ServerState& s = server();
  std::string db =
      "llmproxy_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter.fetch_add(1));
  return s.base + "/" + db + s.options;
}

void drop_database(const std::string& url) {
  mongoc_init();
  bson_error_t e;
  mongoc_uri_t* uri = mongoc_uri_new_with_error(url.c_str(), &e);
  if (!uri) return;
  std::string db = mongoc_uri_get_database(uri) ? mongoc_uri_get_database(uri) : "";
  mongoc_client_t* client = mongoc_client_new_from_uri(uri);
  mongoc_uri_destroy(uri);
  if (!client) return;
  if (!db.empty()) {
    mongoc_database_t* d = mongoc_client_get_database(client, db.c_str());
    mongoc_database_drop(d, &e);  // best effort
    mongoc_database_destroy(d);
  }
  mongoc_client_destroy(client);
}

std::string url_for(const std::string& db) {
  ServerState& s = server();
  return s.base + "/" + db + s.options;
}

bool using_test_server() {
  return server().fake;
}

namespace {

// One client on the database a URL names, for the raw helpers below.
class Raw {
 public:
  explicit Raw(const std::string& url) {
    mongoc_init();
    bson_error_t e;
    mongoc_uri_t* uri = mongoc_uri_new_with_error(url.c_str(), &e);
    if (!uri) throw std::runtime_error(std::string("MongoDB URL: ") + e.message);
    const char* db = mongoc_uri_get_database(uri);
    db_ = db && *db ? db : "llm_proxy";
    client_ = mongoc_client_new_from_uri_with_error(uri, &e);
    mongoc_uri_destroy(uri);
    if (!client_) throw std::runtime_error(std::string("MongoDB client: ") + e.message);
  }
  ~Raw() {
    for (auto* c : colls_) mongoc_collection_destroy(c);
    if (client_) mongoc_client_destroy(client_);
  }
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;

  mongoc_client_t* client() { return client_; }
  const std::string& db() const { return db_; }
  mongoc_collection_t* coll(const std::string& name) {
    colls_.push_back(mongoc_client_get_collection(client_, db_.c_str(), name.c_str()));
    return colls_.back();
  }

 private:
  mongoc_client_t* client_ = nullptr;
  std::string db_;
  std::vector<mongoc_collection_t*> colls_;
};

// A document parsed from extended JSON.
struct Json {
  explicit Json(const std::string& json) {
    bson_error_t e;
    doc = bson_new_from_json(reinterpret_cast<const uint8_t*>(json.data()),
                             static_cast<ssize_t>(json.size()), &e);
    if (!doc) throw std::runtime_error("bad extended JSON " + json + ": " + e.message);
  }
  ~Json() { bson_destroy(doc); }
  Json(const Json&) = delete;
  Json& operator=(const Json&) = delete;
  bson_t* doc;
};

std::string relaxed(const bson_t* d) {
  char* s = bson_as_relaxed_extended_json(d, nullptr);
  std::string out = s ? s : "";
  bson_free(s);
  return out;
}

}  // namespace

std::vector<std::string> collection_names(const std::string& url) {
  Raw raw(url);
  mongoc_database_t* d = mongoc_client_get_database(raw.client(), raw.db().c_str());
  bson_error_t e;
  char** names = mongoc_database_get_collection_names_with_opts(d, nullptr, &e);
  mongoc_database_destroy(d);
  if (!names) throw std::runtime_error(std::string("listCollections: ") + e.message);
  std::vector<std::string> out;
  for (char** n = names; *n; ++n) out.emplace_back(*n);
  bson_strfreev(names);
  return out;
}

std::vector<std::string> find(const std::string& url, const std::string& collection,
                              const std::string& filter_json) {
  Raw raw(url);
  Json filter(filter_json);
  mongoc_cursor_t* cur =
      mongoc_collection_find_with_opts(raw.coll(collection), filter.doc, nullptr, nullptr);
  std::vector<std::string> out;
  const bson_t* d = nullptr;
  while (mongoc_cursor_next(cur, &d)) out.push_back(relaxed(d));
  bson_error_t e;
  bool bad = mongoc_cursor_error(cur, &e);
  mongoc_cursor_destroy(cur);
  if (bad) throw std::runtime_error("find in " + collection + ": " + e.message);
  return out;
}

std::int64_t count(const std::string& url, const std::string& collection,
                   const std::string& filter_json) {
  return static_cast<std::int64_t>(find(url, collection, filter_json).size());
}

void insert(const std::string& url, const std::string& collection, const std::string& doc_json) {
  Raw raw(url);
  Json doc(doc_json);
  bson_error_t e;
  if (!mongoc_collection_insert_one(raw.coll(collection), doc.doc, nullptr, nullptr, &e))
    throw std::runtime_error("insert into " + collection + ": " + e.message);
}

std::int64_t next_id(const std::string& url, const std::string& collection) {
  Raw raw(url);
  Json query("{\"_id\": \"counter:" + collection + "\"}");
  Json update("{\"$inc\": {\"value\": {\"$numberLong\": \"1\"}}}");
  bson_t reply;
  bson_error_t e;
  bool ok = mongoc_collection_find_and_modify(raw.coll("meta"), query.doc, nullptr, update.doc,
                                              nullptr, false, /*upsert=*/true, /*_new=*/true,
                                              &reply, &e);
  std::int64_t value = 0;
  bson_iter_t it;
  if (ok && bson_iter_init(&it, &reply) && bson_iter_find_descendant(&it, "value.value", &it))
    value = bson_iter_as_int64(&it);
  bson_destroy(&reply);
  if (!ok) throw std::runtime_error(std::string("findAndModify: ") + e.message);
  if (value <= 0) throw std::runtime_error("counter:" + collection + " is not a number");
  return value;
}

}  // namespace llmproxy::storage::mongotest
