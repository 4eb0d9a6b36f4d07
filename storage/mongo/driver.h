// The MongoDB driver, over libmongoc/libbson: BSON documents built and read,
// and one client with what the store needs of it (finds, writes with an undo
// journal for a standalone server, id counters, the config version), plus the
// change stream's client. No message it makes contains the URL's password.
#pragma once

#include <mongoc/mongoc.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/domain/error.h"
#include "storage/rows.h"

namespace llmproxy::storage::mongo {

inline constexpr const char* kDefaultDatabase = "llm_proxy";
inline constexpr int kDuplicateKey = 11000;
inline constexpr int kNamespaceExists = 48;

// An owned BSON document being built. Appenders return *this so documents read
// as one expression: Doc().i64("_id", id).str("name", name).
class Doc {
 public:
  Doc() { bson_init(&b_); }
  ~Doc() { bson_destroy(&b_); }
  Doc(const Doc&) = delete;
  Doc& operator=(const Doc&) = delete;

  bson_t* get() { return &b_; }
  const bson_t* get() const { return &b_; }

  Doc& str(const char* k, std::string_view v) {
    bson_append_utf8(&b_, k, -1, v.data(), static_cast<int>(v.size()));
    return *this;
  }
  Doc& i64(const char* k, std::int64_t v) {
    bson_append_int64(&b_, k, -1, v);
    return *this;
  }
  Doc& i32(const char* k, std::int32_t v) {
    bson_append_int32(&b_, k, -1, v);
    return *this;
  }
  Doc& dbl(const char* k, double v) {
    bson_append_double(&b_, k, -1, v);
    return *this;
  }
  Doc& boolean(const char* k, bool v) {
    bson_append_bool(&b_, k, -1, v);
    return *this;
  }
  Doc& null(const char* k) {
    bson_append_null(&b_, k, -1);
    return *this;
  }
  Doc& opt_i64(const char* k, const std::optional<std::int64_t>& v) {
    return v ? i64(k, *v) : null(k);
  }
  Doc& opt_dbl(const char* k, const std::optional<double>& v) { return v ? dbl(k, *v) : null(k); }
  Doc& doc(const char* k, const Doc& d) {
    bson_append_document(&b_, k, -1, d.get());
    return *this;
  }
  Doc& arr(const char* k, const Doc& d) {
    bson_append_array(&b_, k, -1, d.get());
    return *this;
  }
  Doc& raw(const char* k, const bson_t* d) {
    bson_append_document(&b_, k, -1, d);
    return *this;
  }

 private:
  bson_t b_;
};

// An owned copy of a document read from the server. (Not a unique_ptr:
// bson_t carries an alignment attribute that template arguments drop.)
class Owned {
 public:
  Owned() = default;
  Owned(std::nullptr_t) {}
  explicit Owned(bson_t* b) : b_(b) {}
  Owned(Owned&& o) noexcept : b_(std::exchange(o.b_, nullptr)) {}
  Owned& operator=(Owned&& o) noexcept {
    std::swap(b_, o.b_);
    return *this;
  }
  ~Owned() {
    if (b_) bson_destroy(b_);
  }
  const bson_t* get() const { return b_; }
  explicit operator bool() const { return b_ != nullptr; }

 private:
  bson_t* b_ = nullptr;
};

inline Owned copy(const bson_t* b) {
  return Owned(bson_copy(b));
}

inline bool find_field(const bson_t* d, const char* k, bson_iter_t& it) {
  return bson_iter_init_find(&it, d, k);
}

inline std::optional<std::int64_t> get_opt_i64(const bson_t* d, const char* k) {
  bson_iter_t it;
  if (!find_field(d, k, it)) return std::nullopt;
  switch (bson_iter_type(&it)) {
    case BSON_TYPE_INT32:
      return bson_iter_int32(&it);
    case BSON_TYPE_INT64:
      return bson_iter_int64(&it);
    case BSON_TYPE_DOUBLE:
      return static_cast<std::int64_t>(bson_iter_double(&it));
    case BSON_TYPE_BOOL:
      return bson_iter_bool(&it) ? 1 : 0;
    default:
      return std::nullopt;
  }
}
inline std::int64_t get_i64(const bson_t* d, const char* k) {
  return get_opt_i64(d, k).value_or(0);
}

inline std::optional<double> get_opt_dbl(const bson_t* d, const char* k) {
  bson_iter_t it;
  if (!find_field(d, k, it)) return std::nullopt;
  switch (bson_iter_type(&it)) {
    case BSON_TYPE_DOUBLE:
      return bson_iter_double(&it);
    case BSON_TYPE_INT32:
      return bson_iter_int32(&it);
    case BSON_TYPE_INT64:
      return static_cast<double>(bson_iter_int64(&it));
    default:
      return std::nullopt;
  }
}
inline double get_dbl(const bson_t* d, const char* k) {
  return get_opt_dbl(d, k).value_or(0);
}

inline std::string get_str(const bson_t* d, const char* k) {
  bson_iter_t it;
  if (!find_field(d, k, it) || bson_iter_type(&it) != BSON_TYPE_UTF8) return "";
  std::uint32_t len = 0;
  const char* s = bson_iter_utf8(&it, &len);
  return std::string(s, len);
}

inline bool get_bool(const bson_t* d, const char* k) {
  bson_iter_t it;
  if (!find_field(d, k, it)) return false;
  if (bson_iter_type(&it) == BSON_TYPE_BOOL) return bson_iter_bool(&it);
  return get_i64(d, k) != 0;
}

// One write the standalone path can take back: with `prior`, put that document
// back (replace by _id, upsert); without, remove the _ids [lo, hi] it created.
struct Undo {
  std::string coll;
  std::int64_t lo = 0;
  std::int64_t hi = 0;
  Owned prior;
};

// Applies the migrations (storage/mongo/migrations.cpp) not yet applied, up to
// version `up_to` (the tests build a database of an earlier schema with it, to
// upgrade).
struct Client;
void migrate(Client& c, std::size_t up_to = SIZE_MAX);

// mongoc_init() once per process, with the driver's own logging silenced.
void init_driver_once();

struct Client {
  mongoc_client_t* client = nullptr;
  std::string db_name;
  std::vector<std::string> secrets;  // never to appear in a message
  bool tx_supported = false;
  mongoc_client_session_t* session = nullptr;  // during a server transaction
  int tx_depth = 0;
  std::vector<Undo> undo;
  // The journaled command bumped config_version (its writes may have been
  // seen, and loaded, by a reader in the meantime).
  bool journal_bumped = false;
  std::map<std::string, mongoc_collection_t*, std::less<>> colls;

  ~Client() {
    for (auto& [name, c] : colls) mongoc_collection_destroy(c);
    if (session) mongoc_client_session_destroy(session);
    if (client) mongoc_client_destroy(client);
  }

  std::string scrub(std::string msg) const {
    for (const std::string& s : secrets) {
      if (s.empty()) continue;
      for (auto at = msg.find(s); at != std::string::npos; at = msg.find(s, at + 4))
        msg.replace(at, s.size(), "****");
    }
    return msg;
  }

  [[noreturn]] void fail(std::string_view what, const bson_error_t& e) const {
    throw storage_error("MongoDB: " + std::string(what) + ": " + scrub(e.message));
  }

  mongoc_collection_t* coll(std::string_view name) {
    auto it = colls.find(name);
    if (it != colls.end()) return it->second;
    mongoc_collection_t* c =
        mongoc_client_get_collection(client, db_name.c_str(), std::string(name).c_str());
    colls.emplace(std::string(name), c);
    return c;
  }

  // Options for one operation: the transaction's session, when there is one.
  void with_session(Doc& opts) const {
    if (!session) return;
    bson_error_t e;
    if (!mongoc_client_session_append(session, opts.get(), &e)) fail("session", e);
  }
  bool journaling() const { return tx_depth > 0 && session == nullptr; }

  std::vector<Owned> find(std::string_view c, const Doc& filter, const Doc* sort = nullptr,
                          std::int64_t limit = 0);

  Owned find_id(std::string_view c, std::int64_t id) {
    auto docs = find(c, Doc().i64("_id", id), nullptr, 1);
    return docs.empty() ? nullptr : std::move(docs.front());
  }

  std::vector<Owned> aggregate(std::string_view c, const Doc& pipeline);

  // Runs a pipeline and hands each result document to fn as the cursor
  // delivers it, so that a long result is never held whole. The server may
  // sort on disk (allowDiskUse) rather than fail past its memory limit.
  // (A template: bson_t's alignment attribute is lost in std::function's.)
  template <class Fn>
  void aggregate_each(std::string_view c, const Doc& pipeline, Fn&& fn) {
    Doc opts;
    opts.boolean("allowDiskUse", true);
    with_session(opts);
    consume(mongoc_collection_aggregate(coll(c), MONGOC_QUERY_NONE, pipeline.get(), opts.get(),
                                        nullptr),
            "aggregate on " + std::string(c), fn);
  }

  // Hands every document of `cur` to fn, then destroys the cursor; a cursor
  // error throws, naming `what`.
  template <class Fn>
  void consume(mongoc_cursor_t* cur, const std::string& what, Fn&& fn) const {
    const bson_t* d = nullptr;
    try {
      while (mongoc_cursor_next(cur, &d)) fn(d);
    } catch (...) {
      mongoc_cursor_destroy(cur);
      throw;
    }
    bson_error_t e;
    bool bad = mongoc_cursor_error(cur, &e);
    mongoc_cursor_destroy(cur);
    if (bad) fail(what, e);
  }

  // A duplicate key error names the index, which tells the store what is taken.
  [[noreturn]] void write_failed(std::string_view c, const bson_error_t& e) const {
    if (e.code == kDuplicateKey) throw UniqueViolation(e.message, scrub(e.message));
    fail("write to " + std::string(c), e);
  }

  void insert(std::string_view c, const Doc& doc, std::int64_t id) {
    Doc opts;
    with_session(opts);
    bson_error_t e;
    if (!mongoc_collection_insert_one(coll(c), doc.get(), opts.get(), nullptr, &e))
      write_failed(c, e);
    if (journaling()) undo.push_back(Undo{std::string(c), id, id, nullptr});
  }

  void insert_many(std::string_view c, const std::vector<Doc*>& docs, std::int64_t lo,
                   std::int64_t hi);

  // $set on one document; false when no document has that _id.
  bool update_id(std::string_view c, std::int64_t id, const Doc& set);

  std::int64_t remove(std::string_view c, const Doc& filter);

  // Reserves n consecutive ids of `counter`; returns the first. Outside any
  // transaction on purpose (like a SQL sequence): ids are never handed out
  // twice, and concurrent transactions do not conflict on the counter.
  std::int64_t next_ids(std::string_view counter, std::int64_t n);

  void bump_config_version();

  // Puts back what the journal recorded, newest first. Best effort: this is
  // already the failure path.
  void roll_back_journal();

  bool command(const Doc& cmd, bson_t* reply, bson_error_t* e, const char* db = nullptr) {
    return mongoc_client_command_simple(client, db ? db : db_name.c_str(), cmd.get(), nullptr,
                                        reply, e);
  }
};

// wait_for_change's change stream on meta's config_version document, on a
// client of its own (the store's client is busy under the store's lock).
struct Watch {
  mongoc_uri_t* uri = nullptr;
  mongoc_client_t* client = nullptr;
  mongoc_change_stream_t* stream = nullptr;
  std::string db_name;
  bool unsupported = false;  // a standalone server: no change streams

  ~Watch() {
    close();
    if (client) mongoc_client_destroy(client);
    if (uri) mongoc_uri_destroy(uri);
  }
  void close() {
    if (stream) mongoc_change_stream_destroy(stream);
    stream = nullptr;
  }
};

}  // namespace llmproxy::storage::mongo
