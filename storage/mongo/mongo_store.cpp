#include "storage/mongo/mongo_store.h"

#include <mongoc/mongoc.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lib/domain/error.h"
#include "lib/domain/time.h"
#include "storage/percentile.h"
#include "storage/secrets.h"

namespace llmproxy::storage {
namespace mongo {
namespace {

constexpr const char* kDefaultDatabase = "llm_proxy";
constexpr int kDuplicateKey = 11000;
constexpr int kNamespaceExists = 48;

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

Owned copy(const bson_t* b) {
  return Owned(bson_copy(b));
}

bool find_field(const bson_t* d, const char* k, bson_iter_t& it) {
  return bson_iter_init_find(&it, d, k);
}

std::optional<std::int64_t> get_opt_i64(const bson_t* d, const char* k) {
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
std::int64_t get_i64(const bson_t* d, const char* k) {
  return get_opt_i64(d, k).value_or(0);
}

std::optional<double> get_opt_dbl(const bson_t* d, const char* k) {
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
double get_dbl(const bson_t* d, const char* k) {
  return get_opt_dbl(d, k).value_or(0);
}

std::string get_str(const bson_t* d, const char* k) {
  bson_iter_t it;
  if (!find_field(d, k, it) || bson_iter_type(&it) != BSON_TYPE_UTF8) return "";
  std::uint32_t len = 0;
  const char* s = bson_iter_utf8(&it, &len);
  return std::string(s, len);
}

bool get_bool(const bson_t* d, const char* k) {
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

void init_driver_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    mongoc_init();
    // Driver chatter (server selection retries, …) is not ours to print; real
    // failures come back as errors.
    mongoc_log_set_handler(nullptr, nullptr);
  });
}

// libmongoc initialises itself as it is loaded, before main() and whatever
// the backend, and may log then: where a killed process left its statistics
// file /dev/shm/mongoc-<pid> behind and this process got the same pid, it
// prints "Falling back to malloc for counters." on stderr ahead of anything
// llm-proxy says. So the driver is silenced before any shared library
// initialises: the executable's .preinit_array runs first. (Only in an
// executable; this object is always linked into one.)
void silence_driver_at_load(int, char**, char**) {
  mongoc_log_set_handler(nullptr, nullptr);
}
using PreInit = void (*)(int, char**, char**);
[[gnu::section(".preinit_array"), gnu::used]] const PreInit silence_at_load =
    silence_driver_at_load;

}  // namespace

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
                          std::int64_t limit = 0) {
    Doc opts;
    if (sort) opts.doc("sort", *sort);
    if (limit > 0) opts.i64("limit", limit);
    with_session(opts);
    mongoc_cursor_t* cur =
        mongoc_collection_find_with_opts(coll(c), filter.get(), opts.get(), nullptr);
    std::vector<Owned> out;
    const bson_t* d = nullptr;
    while (mongoc_cursor_next(cur, &d)) out.push_back(copy(d));
    bson_error_t e;
    bool bad = mongoc_cursor_error(cur, &e);
    mongoc_cursor_destroy(cur);
    if (bad) fail("find in " + std::string(c), e);
    return out;
  }

  Owned find_id(std::string_view c, std::int64_t id) {
    auto docs = find(c, Doc().i64("_id", id), nullptr, 1);
    return docs.empty() ? nullptr : std::move(docs.front());
  }

  std::vector<Owned> aggregate(std::string_view c, const Doc& pipeline) {
    Doc opts;
    with_session(opts);
    mongoc_cursor_t* cur = mongoc_collection_aggregate(coll(c), MONGOC_QUERY_NONE, pipeline.get(),
                                                       opts.get(), nullptr);
    std::vector<Owned> out;
    const bson_t* d = nullptr;
    while (mongoc_cursor_next(cur, &d)) out.push_back(copy(d));
    bson_error_t e;
    bool bad = mongoc_cursor_error(cur, &e);
    mongoc_cursor_destroy(cur);
    if (bad) fail("aggregate on " + std::string(c), e);
    return out;
  }

  // Runs a pipeline and hands each result document to fn as the cursor
  // delivers it, so that a long result is never held whole. The server may
  // sort on disk (allowDiskUse) rather than fail past its memory limit.
  // (A template: bson_t's alignment attribute is lost in std::function's.)
  template <class Fn>
  void aggregate_each(std::string_view c, const Doc& pipeline, Fn&& fn) {
    Doc opts;
    opts.boolean("allowDiskUse", true);
    with_session(opts);
    mongoc_cursor_t* cur = mongoc_collection_aggregate(coll(c), MONGOC_QUERY_NONE, pipeline.get(),
                                                       opts.get(), nullptr);
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
    if (bad) fail("aggregate on " + std::string(c), e);
  }

  // A duplicate key error names the index; `taken` maps it to the message.
  [[noreturn]] void write_failed(std::string_view c, const bson_error_t& e,
                                 const std::function<std::string(std::string_view)>& taken) {
    if (e.code == kDuplicateKey && taken) throw conflict(taken(e.message));
    fail("write to " + std::string(c), e);
  }

  void insert(std::string_view c, const Doc& doc, std::int64_t id,
              const std::function<std::string(std::string_view)>& taken) {
    Doc opts;
    with_session(opts);
    bson_error_t e;
    if (!mongoc_collection_insert_one(coll(c), doc.get(), opts.get(), nullptr, &e))
      write_failed(c, e, taken);
    if (journaling()) undo.push_back(Undo{std::string(c), id, id, nullptr});
  }

  void insert_many(std::string_view c, const std::vector<Doc*>& docs, std::int64_t lo,
                   std::int64_t hi) {
    std::vector<const void*> ptrs;  // const bson_t*, see Owned
    ptrs.reserve(docs.size());
    for (const Doc* d : docs) ptrs.push_back(d->get());
    Doc opts;
    opts.boolean("ordered", true);
    with_session(opts);
    bson_error_t e;
    // Recorded first: an ordered batch that fails half way has written a prefix.
    if (journaling()) undo.push_back(Undo{std::string(c), lo, hi, nullptr});
    if (!mongoc_collection_insert_many(coll(c), reinterpret_cast<const bson_t**>(ptrs.data()),
                                       ptrs.size(), opts.get(), nullptr, &e))
      fail("insert into " + std::string(c), e);
  }

  // $set on one document; false when no document has that _id.
  bool update_id(std::string_view c, std::int64_t id, const Doc& set,
                 const std::function<std::string(std::string_view)>& taken) {
    Owned prior;
    if (journaling()) {
      prior = find_id(c, id);
      if (!prior) return false;
    }
    Doc update;
    update.doc("$set", set);
    Doc opts;
    with_session(opts);
    bson_t reply;
    bson_error_t e;
    bool ok = mongoc_collection_update_one(coll(c), Doc().i64("_id", id).get(), update.get(),
                                           opts.get(), &reply, &e);
    std::int64_t matched = ok ? get_i64(&reply, "matchedCount") : 0;
    bson_destroy(&reply);
    if (!ok) write_failed(c, e, taken);
    if (matched > 0 && prior) undo.push_back(Undo{std::string(c), 0, 0, std::move(prior)});
    return matched > 0;
  }

  std::int64_t remove(std::string_view c, const Doc& filter) {
    if (journaling()) {
      for (Owned& d : find(c, filter)) undo.push_back(Undo{std::string(c), 0, 0, std::move(d)});
    }
    Doc opts;
    with_session(opts);
    bson_t reply;
    bson_error_t e;
    bool ok = mongoc_collection_delete_many(coll(c), filter.get(), opts.get(), &reply, &e);
    std::int64_t n = ok ? get_i64(&reply, "deletedCount") : 0;
    bson_destroy(&reply);
    if (!ok) fail("delete from " + std::string(c), e);
    return n;
  }

  // Reserves n consecutive ids of `counter`; returns the first. Outside any
  // transaction on purpose (like a SQL sequence): ids are never handed out
  // twice, and concurrent transactions do not conflict on the counter.
  std::int64_t next_ids(std::string_view counter, std::int64_t n) {
    mongoc_find_and_modify_opts_t* opts = mongoc_find_and_modify_opts_new();
    Doc inc;
    inc.i64("value", n);
    Doc update;
    update.doc("$inc", inc);
    mongoc_find_and_modify_opts_set_update(opts, update.get());
    mongoc_find_and_modify_opts_set_flags(
        opts, static_cast<mongoc_find_and_modify_flags_t>(MONGOC_FIND_AND_MODIFY_UPSERT |
                                                          MONGOC_FIND_AND_MODIFY_RETURN_NEW));
    bson_t reply;
    bson_error_t e;
    std::string id = "counter:" + std::string(counter);
    bool ok = mongoc_collection_find_and_modify_with_opts(coll("meta"), Doc().str("_id", id).get(),
                                                          opts, &reply, &e);
    mongoc_find_and_modify_opts_destroy(opts);
    std::optional<std::int64_t> value;
    bson_iter_t it, child;
    if (ok && bson_iter_init_find(&it, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT(&it) &&
        bson_iter_recurse(&it, &child) && bson_iter_find(&child, "value")) {
      if (BSON_ITER_HOLDS_INT64(&child))
        value = bson_iter_int64(&child);
      else if (BSON_ITER_HOLDS_INT32(&child))
        value = bson_iter_int32(&child);
    }
    bson_destroy(&reply);
    if (!ok) fail("allocating ids", e);
    if (!value) throw storage_error("MongoDB: the id counter " + id + " is not a number");
    return *value - n + 1;
  }

  void bump_config_version() {
    Doc inc;
    inc.i64("value", 1);
    Doc update;
    update.doc("$inc", inc);
    Doc opts;
    opts.boolean("upsert", true);
    with_session(opts);
    bson_error_t e;
    if (!mongoc_collection_update_one(coll("meta"), Doc().str("_id", "config_version").get(),
                                      update.get(), opts.get(), nullptr, &e))
      fail("bumping config_version", e);
    if (journaling()) journal_bumped = true;
  }

  // Puts back what the journal recorded, newest first. Best effort: this is
  // already the failure path.
  void roll_back_journal() {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
      bson_error_t e;
      if (it->prior) {
        bson_iter_t id;
        if (!bson_iter_init_find(&id, it->prior.get(), "_id")) continue;
        Doc filter;
        bson_append_iter(filter.get(), "_id", -1, &id);
        Doc opts;
        opts.boolean("upsert", true);
        mongoc_collection_replace_one(coll(it->coll), filter.get(), it->prior.get(), opts.get(),
                                      nullptr, &e);
      } else {
        Doc range;
        range.i64("$gte", it->lo).i64("$lte", it->hi);
        Doc filter;
        filter.doc("_id", range);
        mongoc_collection_delete_many(coll(it->coll), filter.get(), nullptr, nullptr, &e);
      }
    }
    undo.clear();
    // Taking the writes back is a change too: a reader (serve) that loaded
    // the configuration while they were visible must see the version move
    // again, or it would keep what was never committed. (Never moving the
    // version back: that reader could then miss the next real change.)
    if (std::exchange(journal_bumped, false)) {
      try {
        bump_config_version();
      } catch (const std::exception&) {  // best effort, as above
      }
    }
  }

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

}  // namespace mongo

using mongo::Doc;
using mongo::get_bool;
using mongo::get_dbl;
using mongo::get_i64;
using mongo::get_opt_dbl;
using mongo::get_opt_i64;
using mongo::get_str;
using mongo::Owned;

namespace {

TimeMs stamp(TimeMs t, TimeMs now) {
  return t ? t : now;
}

// What a conflict on a collection's unique indexes means, by index name.
std::function<std::string(std::string_view)> name_taken(std::string what) {
  return [what = std::move(what)](std::string_view) { return what; };
}

// ---- documents <-> domain types ----------------------------------------------

void connection_fields(Doc& d, const Connection& c, const crypto::SecretBox& box) {
  d.str("name", c.name)
      .str("provider", to_string(c.provider))
      .str("endpoint", c.endpoint)
      .str("api_version", c.api_version)
      .str("region", c.region)
      .str("access_key_id", c.access_key_id)
      .str("secrets", seal_connection_secrets(box, c))
      .i64("timeout_ms", c.timeout_ms)
      .str("options", c.options);
}

Connection read_connection(const bson_t* d, const crypto::SecretBox& box) {
  Connection c;
  c.id = get_i64(d, "_id");
  c.name = get_str(d, "name");
  std::string provider = get_str(d, "provider");
  auto parsed = parse_provider(provider);
  if (!parsed) throw storage_error("connection '" + c.name + "' has unknown provider " + provider);
  c.provider = *parsed;
  c.endpoint = get_str(d, "endpoint");
  c.api_version = get_str(d, "api_version");
  c.region = get_str(d, "region");
  c.access_key_id = get_str(d, "access_key_id");
  c.timeout_ms = get_i64(d, "timeout_ms");
  c.created_at = get_i64(d, "created_at");
  c.updated_at = get_i64(d, "updated_at");
  c.options = get_str(d, "options");
  open_connection_secrets(box, get_str(d, "secrets"), c);
  return c;
}

void model_fields(Doc& d, const ProviderModel& m) {
  d.str("name", m.name)
      .str("remote", m.remote)
      .i64("conn_id", m.conn_id)
      .opt_dbl("input_price", m.input_price)
      .opt_dbl("output_price", m.output_price);
}

ProviderModel read_model(const bson_t* d) {
  ProviderModel m;
  m.id = get_i64(d, "_id");
  m.name = get_str(d, "name");
  m.remote = get_str(d, "remote");
  m.conn_id = get_i64(d, "conn_id");
  m.input_price = get_opt_dbl(d, "input_price");
  m.output_price = get_opt_dbl(d, "output_price");
  m.created_at = get_i64(d, "created_at");
  m.updated_at = get_i64(d, "updated_at");
  return m;
}

void vkey_fields(Doc& d, const VirtualKey& k) {
  d.str("name", k.name)
      .str("key_hash", k.key_hash)
      .str("key_hint", k.key_hint)
      .boolean("enabled", k.enabled)
      .opt_i64("expires_at", k.expires_at);
}

VirtualKey read_vkey(const bson_t* d) {
  VirtualKey k;
  k.id = get_i64(d, "_id");
  k.name = get_str(d, "name");
  k.key_hash = get_str(d, "key_hash");
  k.key_hint = get_str(d, "key_hint");
  k.enabled = get_bool(d, "enabled");
  k.expires_at = get_opt_i64(d, "expires_at");
  k.created_at = get_i64(d, "created_at");
  k.updated_at = get_i64(d, "updated_at");
  return k;
}

void assignment_fields(Doc& d, const Assignment& a) {
  d.i64("vkey_id", a.vkey_id)
      .opt_i64("conn_id", a.conn_id)
      .opt_i64("model_id", a.model_id)
      .opt_dbl("tps", a.limits.tps)
      .opt_i64("rpm", a.limits.rpm)
      .opt_i64("token_limit", a.limits.token_limit)
      .str("token_window", to_string(a.limits.token_window));
}

Assignment read_assignment(const bson_t* d) {
  Assignment a;
  a.id = get_i64(d, "_id");
  a.vkey_id = get_i64(d, "vkey_id");
  a.conn_id = get_opt_i64(d, "conn_id");
  a.model_id = get_opt_i64(d, "model_id");
  a.limits.tps = get_opt_dbl(d, "tps");
  a.limits.rpm = get_opt_i64(d, "rpm");
  a.limits.token_limit = get_opt_i64(d, "token_limit");
  a.limits.token_window =
      parse_token_window(get_str(d, "token_window")).value_or(TokenWindow::kDay);
  a.created_at = get_i64(d, "created_at");
  a.updated_at = get_i64(d, "updated_at");
  return a;
}

void usage_fields(Doc& d, const UsageRecord& r) {
  d.i64("ts", r.ts)
      .str("request_id", r.request_id)
      .opt_i64("vkey_id", r.vkey_id)
      .str("vkey_name", r.vkey_name)
      .opt_i64("assignment_id", r.assignment_id)
      .str("model", r.model)
      .opt_i64("conn_id", r.conn_id)
      .str("conn_name", r.conn_name)
      .i64("status", r.status)
      .dbl("latency_ms", r.latency_ms)
      .opt_dbl("ttft_ms", r.ttft_ms)
      .i64("prompt_tokens", r.prompt_tokens)
      .i64("completion_tokens", r.completion_tokens)
      .dbl("cost", r.cost);
}

UsageRecord read_usage(const bson_t* d) {
  UsageRecord r;
  r.id = get_i64(d, "_id");
  r.ts = get_i64(d, "ts");
  r.request_id = get_str(d, "request_id");
  r.vkey_id = get_opt_i64(d, "vkey_id");
  r.vkey_name = get_str(d, "vkey_name");
  r.assignment_id = get_opt_i64(d, "assignment_id");
  r.model = get_str(d, "model");
  r.conn_id = get_opt_i64(d, "conn_id");
  r.conn_name = get_str(d, "conn_name");
  r.status = static_cast<int>(get_i64(d, "status"));
  r.latency_ms = get_dbl(d, "latency_ms");
  r.ttft_ms = get_opt_dbl(d, "ttft_ms");
  r.prompt_tokens = get_i64(d, "prompt_tokens");
  r.completion_tokens = get_i64(d, "completion_tokens");
  r.cost = get_dbl(d, "cost");
  return r;
}

void admin_user_fields(Doc& d, const AdminUser& u) {
  d.str("username", u.username)
      .str("role", to_string(u.role))
      .str("password_hash", u.password_hash);
}

AdminUser read_admin_user(const bson_t* d) {
  AdminUser u;
  u.id = get_i64(d, "_id");
  u.username = get_str(d, "username");
  std::string role = get_str(d, "role");
  auto parsed = parse_admin_role(role);
  if (!parsed) throw storage_error("admin user '" + u.username + "' has unknown role " + role);
  u.role = *parsed;
  u.password_hash = get_str(d, "password_hash");
  u.created_at = get_i64(d, "created_at");
  u.updated_at = get_i64(d, "updated_at");
  return u;
}

template <class T, class Reader>
std::vector<T> read_all(const std::vector<Owned>& docs, Reader&& read) {
  std::vector<T> out;
  out.reserve(docs.size());
  for (const Owned& d : docs) out.push_back(read(d.get()));
  return out;
}

template <class T, class Reader>
std::optional<T> read_first(const std::vector<Owned>& docs, Reader&& read) {
  if (docs.empty()) return std::nullopt;
  return read(docs.front().get());
}

// The filter shared by list_usage and aggregate_usage.
void usage_filter(Doc& f, const UsageQuery& q) {
  if (q.vkey_id) f.i64("vkey_id", *q.vkey_id);
  if (q.since || q.until) {
    Doc range;
    if (q.since) range.i64("$gte", *q.since);
    if (q.until) range.i64("$lt", *q.until);
    f.doc("ts", range);
  }
}

// describe(): scheme, hosts and database; no user, password or options.
std::string describe_url(const std::string& url, const std::string& db) {
  std::size_t scheme = url.find("://");
  std::string rest = url.substr(scheme + 3);
  std::size_t end = rest.find_first_of("/?");
  std::string hosts = rest.substr(0, end);
  if (auto at = hosts.rfind('@'); at != std::string::npos) hosts.erase(0, at + 1);
  return url.substr(0, scheme + 3) + hosts + "/" + db;
}

// The raw userinfo password as written in the URL (percent-encoded or not).
std::string raw_password(const std::string& url) {
  std::size_t scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  std::string rest = url.substr(scheme + 3);
  std::size_t at = rest.substr(0, rest.find('/')).rfind('@');
  if (at == std::string::npos) return "";
  std::string userinfo = rest.substr(0, at);
  std::size_t colon = userinfo.find(':');
  return colon == std::string::npos ? "" : userinfo.substr(colon + 1);
}

}  // namespace

// ---- opening, migrations ----------------------------------------------------------

MongoStore::MongoStore(const std::string& url, crypto::SecretBox box)
    : db_(std::make_unique<mongo::Client>()), box_(box) {
  mongo::init_driver_once();
  mongo::Client& c = *db_;
  c.secrets.push_back(raw_password(url));

  bson_error_t e;
  mongoc_uri_t* uri = mongoc_uri_new_with_error(url.c_str(), &e);
  if (!uri) throw invalid("malformed MongoDB URL: " + c.scrub(e.message));
  if (const char* pw = mongoc_uri_get_password(uri)) c.secrets.push_back(pw);
  const char* db = mongoc_uri_get_database(uri);
  c.db_name = db && *db ? db : mongo::kDefaultDatabase;
  describe_ = describe_url(url, c.db_name);
  // Fail fast when nothing answers, unless the URL says otherwise.
  if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000);
  if (!mongoc_uri_has_option(uri, MONGOC_URI_CONNECTTIMEOUTMS))
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, 5000);
  c.client = mongoc_client_new_from_uri_with_error(uri, &e);
  watch_ = std::make_unique<mongo::Watch>();
  watch_->uri = mongoc_uri_copy(uri);
  watch_->db_name = c.db_name;
  mongoc_uri_destroy(uri);
  if (!c.client) throw invalid("MongoDB URL " + describe_ + ": " + c.scrub(e.message));
  mongoc_client_set_error_api(c.client, MONGOC_ERROR_API_VERSION_2);
  mongoc_client_set_appname(c.client, "llm-proxy");

  // What kind of deployment: transactions need a replica set or mongos, and
  // sessions.
  // (`hello` since 4.4.2; older servers only know isMaster.)
  bson_t reply;
  bool answered = c.command(Doc().i32("hello", 1), &reply, &e, "admin");
  if (!answered && e.domain == MONGOC_ERROR_SERVER) {
    bson_destroy(&reply);
    answered = c.command(Doc().i32("isMaster", 1), &reply, &e, "admin");
  }
  if (!answered) {
    bson_destroy(&reply);
    throw storage_error("cannot reach MongoDB at " + describe_ + ": " + c.scrub(e.message));
  }
  bool replica = !get_str(&reply, "setName").empty() || get_str(&reply, "msg") == "isdbgrid";
  bool sessions = get_opt_i64(&reply, "logicalSessionTimeoutMinutes").has_value();
  bson_destroy(&reply);
  c.tx_supported = replica && sessions;
  migrate();
}

MongoStore::~MongoStore() = default;

// ---- change notification ----------------------------------------------------------

namespace {

// How long one getMore on the change stream waits for an event: the delay
// with which interrupt_wait() and the caller's timeout are noticed.
constexpr std::int32_t kAwaitMs = 200;

// The server's answer to $changeStream where there are none (a standalone).
constexpr std::int32_t kChangeStreamNeedsReplicaSet = 40573;

// A server error that says change streams are not to be had here (none on
// this deployment, or not for this user), as opposed to a failure (network,
// election) after which the stream is opened again.
bool unsupported_here(const bson_error_t& e) {
  return e.domain == MONGOC_ERROR_SERVER &&
         (e.code == kChangeStreamNeedsReplicaSet || e.code == 40324 /* unknown stage */ ||
          e.code == 115 /* CommandNotSupported */ || e.code == 13 /* Unauthorized */);
}

}  // namespace

bool MongoStore::sleep_until(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(wake_mu_);
  wake_cv_.wait_until(lock, deadline, [&] { return wake_; });
  return std::exchange(wake_, false);
}

bool MongoStore::wait_for_change(std::chrono::milliseconds timeout) {
  std::lock_guard lock(watch_mu_);
  mongo::Watch& w = *watch_;
  if (w.unsupported) return false;  // the caller polls
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  {
    std::lock_guard wake(wake_mu_);
    if (std::exchange(wake_, false)) return true;
  }
  if (!w.stream) {
    bson_error_t e;
    if (!w.client) {
      w.client = mongoc_client_new_from_uri_with_error(w.uri, &e);
      if (!w.client) return false;  // cannot happen: the store's client was made from it
      mongoc_client_set_error_api(w.client, MONGOC_ERROR_API_VERSION_2);
      mongoc_client_set_appname(w.client, "llm-proxy-watch");
    }
    mongoc_collection_t* meta = mongoc_client_get_collection(w.client, w.db_name.c_str(), "meta");
    Doc id;
    id.str("documentKey._id", "config_version");
    Doc match;
    match.doc("$match", id);
    Doc stages;
    stages.doc("0", match);
    Doc pipeline;
    pipeline.arr("pipeline", stages);
    Doc opts;
    opts.i32("maxAwaitTimeMS", kAwaitMs);
    w.stream = mongoc_collection_watch(meta, pipeline.get(), opts.get());
    mongoc_collection_destroy(meta);
    const bson_t* reply = nullptr;
    if (mongoc_change_stream_error_document(w.stream, &e, &reply)) {
      w.close();
      if (unsupported_here(e)) {
        w.unsupported = true;
        return false;
      }
      sleep_until(deadline);  // unreachable: the caller's read reports it
    }
    return true;  // what changed before the stream opened, the caller's read sees
  }
  for (;;) {
    const bson_t* event = nullptr;
    if (mongoc_change_stream_next(w.stream, &event)) return true;
    bson_error_t e;
    const bson_t* reply = nullptr;
    if (mongoc_change_stream_error_document(w.stream, &e, &reply)) {
      w.close();  // lost (the driver resumes what it can): opened again next time
      return true;
    }
    {
      std::lock_guard wake(wake_mu_);
      if (std::exchange(wake_, false)) return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return true;
  }
}

void MongoStore::interrupt_wait() {
  {
    std::lock_guard lock(wake_mu_);
    wake_ = true;
  }
  wake_cv_.notify_all();
}

bool MongoStore::uses_server_transactions() const {
  return db_->tx_supported;
}

namespace {

struct IndexSpec {
  const char* name;
  std::vector<const char*> keys;
  bool unique;
};

void create_indexes(mongo::Client& c, const char* coll, const std::vector<IndexSpec>& specs) {
  Doc indexes;
  int i = 0;
  for (const IndexSpec& s : specs) {
    Doc key;
    for (const char* k : s.keys) key.i32(k, 1);
    Doc index;
    index.doc("key", key).str("name", s.name);
    if (s.unique) index.boolean("unique", true);
    indexes.doc(std::to_string(i++).c_str(), index);
  }
  Doc cmd;
  cmd.str("createIndexes", coll).arr("indexes", indexes);
  bson_t reply;
  bson_error_t e;
  bool ok = c.command(cmd, &reply, &e);
  bson_destroy(&reply);
  if (!ok) c.fail(std::string("creating indexes on ") + coll, e);
}

void create_collection(mongo::Client& c, const char* coll) {
  bson_t reply;
  bson_error_t e;
  bool ok = c.command(Doc().str("create", coll), &reply, &e);
  bson_destroy(&reply);
  if (!ok && e.code != mongo::kNamespaceExists) c.fail(std::string("creating ") + coll, e);
}

// Versioned, each step idempotent (creating what exists is a no-op), so two
// instances starting together, or a crash between a step and its record, are
// harmless. Never edit a shipped entry; append.
using Migration = void (*)(mongo::Client&);
const std::array<Migration, 2> kMigrations = {
    [](mongo::Client& c) {
      for (const char* coll : {"connections", "models", "vkeys", "assignments", "usage_records",
                               "meta", "schema_migrations"})
        create_collection(c, coll);
      create_indexes(c, "connections", {{"name_unique", {"name"}, true}});
      create_indexes(c, "models",
                     {{"name_unique", {"name"}, true}, {"conn_id", {"conn_id"}, false}});
      create_indexes(c, "vkeys",
                     {{"name_unique", {"name"}, true}, {"key_hash_unique", {"key_hash"}, true}});
      create_indexes(c, "assignments",
                     {{"vkey_id", {"vkey_id"}, false},
                      {"conn_id", {"conn_id"}, false},
                      {"model_id", {"model_id"}, false}});
      create_indexes(c, "usage_records",
                     {{"ts", {"ts"}, false}, {"vkey_id_ts", {"vkey_id", "ts"}, false}});
      // config_version starts at 1, set only if absent.
      Doc init;
      init.i64("value", 1);
      Doc update;
      update.doc("$setOnInsert", init);
      Doc opts;
      opts.boolean("upsert", true);
      bson_error_t e;
      if (!mongoc_collection_update_one(c.coll("meta"), Doc().str("_id", "config_version").get(),
                                        update.get(), opts.get(), nullptr, &e))
        c.fail("initialising config_version", e);
    },
    // The admin API's users; ids from the counters, like everything else.
    [](mongo::Client& c) {
      create_collection(c, "admin_users");
      create_indexes(c, "admin_users", {{"username_unique", {"username"}, true}});
    },
};

}  // namespace

void MongoStore::migrate() {
  mongo::Client& c = *db_;
  std::vector<Owned> applied = c.find("schema_migrations", Doc());
  auto done = [&](std::int64_t v) {
    for (const Owned& d : applied)
      if (get_i64(d.get(), "_id") == v) return true;
    return false;
  };
  for (std::size_t i = 0; i < kMigrations.size(); ++i) {
    auto version = static_cast<std::int64_t>(i + 1);
    if (done(version)) continue;
    kMigrations[i](c);
    bson_error_t e;
    Doc record;
    record.i64("_id", version).i64("applied_at", now_ms());
    if (!mongoc_collection_insert_one(c.coll("schema_migrations"), record.get(), nullptr, nullptr,
                                      &e) &&
        e.code != mongo::kDuplicateKey)  // another instance recorded it first
      c.fail("recording migration " + std::to_string(version), e);
  }
}

int MongoStore::schema_version() {
  std::lock_guard lock(mu_);
  Doc sort;
  sort.i32("_id", -1);
  auto docs = db_->find("schema_migrations", Doc(), &sort, 1);
  return docs.empty() ? 0 : static_cast<int>(get_i64(docs.front().get(), "_id"));
}

bool MongoStore::ping() {
  std::lock_guard lock(mu_);
  bson_t reply;
  bson_error_t e;
  bool ok = db_->command(Doc().i32("ping", 1), &reply, &e);
  bson_destroy(&reply);
  return ok;
}

// ---- transactions ---------------------------------------------------------------

void MongoStore::transaction(const std::function<void()>& fn) {
  std::lock_guard lock(mu_);
  mongo::Client& c = *db_;
  if (c.tx_depth > 0) {  // join the outer transaction
    ++c.tx_depth;
    try {
      fn();
    } catch (...) {
      --c.tx_depth;
      throw;
    }
    --c.tx_depth;
    return;
  }
  if (!c.tx_supported) {
    c.undo.clear();
    c.journal_bumped = false;
    c.tx_depth = 1;
    try {
      fn();
    } catch (...) {
      c.tx_depth = 0;
      c.roll_back_journal();
      throw;
    }
    c.tx_depth = 0;
    c.undo.clear();
    return;
  }
  bson_error_t e;
  mongoc_client_session_t* session = mongoc_client_start_session(c.client, nullptr, &e);
  if (!session) c.fail("starting a session", e);
  mongoc_transaction_opt_t* topts = mongoc_transaction_opts_new();
  mongoc_read_concern_t* rc = mongoc_read_concern_new();
  mongoc_read_concern_set_level(rc, MONGOC_READ_CONCERN_LEVEL_SNAPSHOT);
  mongoc_transaction_opts_set_read_concern(topts, rc);
  mongoc_write_concern_t* wc = mongoc_write_concern_new();
  mongoc_write_concern_set_w(wc, MONGOC_WRITE_CONCERN_W_MAJORITY);
  mongoc_transaction_opts_set_write_concern(topts, wc);
  bool started = mongoc_client_session_start_transaction(session, topts, &e);
  mongoc_write_concern_destroy(wc);
  mongoc_read_concern_destroy(rc);
  mongoc_transaction_opts_destroy(topts);
  if (!started) {
    mongoc_client_session_destroy(session);
    c.fail("starting a transaction", e);
  }
  c.session = session;
  c.tx_depth = 1;
  auto finish = [&] {
    c.tx_depth = 0;
    c.session = nullptr;
    mongoc_client_session_destroy(session);
  };
  try {
    fn();
  } catch (...) {
    mongoc_client_session_abort_transaction(session, nullptr);
    finish();
    throw;
  }
  bson_t reply;
  bool ok = mongoc_client_session_commit_transaction(session, &reply, &e);
  bson_destroy(&reply);
  finish();
  if (!ok) c.fail("committing", e);
}

template <class Fn>
auto MongoStore::config_write(Fn&& fn) {
  using R = decltype(fn());
  if constexpr (std::is_void_v<R>) {
    transaction([&] {
      fn();
      db_->bump_config_version();  // last: readers reload only after the change
    });
  } else {
    R result{};
    transaction([&] {
      result = fn();
      db_->bump_config_version();
    });
    return result;
  }
}

std::int64_t MongoStore::config_version() {
  std::lock_guard lock(mu_);
  auto docs = db_->find("meta", Doc().str("_id", "config_version"), nullptr, 1);
  if (docs.empty()) throw storage_error("MongoDB: meta.config_version is missing");
  return get_i64(docs.front().get(), "value");
}

ConfigData MongoStore::load_config() {
  std::lock_guard lock(mu_);
  auto read = [&] {
    ConfigData data;
    data.version = config_version();
    data.connections = list_connections();
    data.models = list_models(std::nullopt);
    data.vkeys = list_vkeys();
    data.assignments = list_assignments(std::nullopt);
    return data;
  };
  if (db_->tx_depth > 0) return read();  // the caller's transaction already
  if (db_->tx_supported) {
    ConfigData data;
    transaction([&] { data = read(); });  // one snapshot
    return data;
  }
  // A standalone has no snapshot: read until the version did not move while
  // reading (writers bump it last), a few times at most.
  ConfigData data;
  for (int attempt = 0; attempt < 5; ++attempt) {
    data = read();
    if (config_version() == data.version) break;
  }
  return data;
}

// ---- connections ----------------------------------------------------------------

Id MongoStore::insert_connection(const Connection& c) {
  std::lock_guard lock(mu_);
  TimeMs now = now_ms();
  return config_write([&] {
    Id id = db_->next_ids("connections", 1);
    Doc d;
    d.i64("_id", id);
    connection_fields(d, c, box_);
    d.i64("created_at", stamp(c.created_at, now)).i64("updated_at", stamp(c.updated_at, now));
    db_->insert("connections", d, id,
                name_taken("a connection named '" + c.name + "' already exists"));
    return id;
  });
}

void MongoStore::update_connection(const Connection& c) {
  std::lock_guard lock(mu_);
  config_write([&] {
    Doc set;
    connection_fields(set, c, box_);
    set.i64("updated_at", now_ms());
    if (!db_->update_id("connections", c.id, set,
                        name_taken("a connection named '" + c.name + "' already exists")))
      throw not_found("connection " + std::to_string(c.id));
  });
}

bool MongoStore::delete_connection(Id id) {
  std::lock_guard lock(mu_);
  return config_write([&] {
    // Dependents first: assignments, then models, then the connection.
    Doc model_ids;
    int i = 0;
    for (const Owned& m : db_->find("models", Doc().i64("conn_id", id)))
      model_ids.i64(std::to_string(i++).c_str(), get_i64(m.get(), "_id"));
    Doc in;
    in.arr("$in", model_ids);
    Doc or_conn, or_model;
    or_conn.i64("conn_id", id);
    or_model.doc("model_id", in);
    Doc alternatives;
    alternatives.doc("0", or_conn).doc("1", or_model);
    Doc filter;
    filter.arr("$or", alternatives);
    db_->remove("assignments", filter);
    db_->remove("models", Doc().i64("conn_id", id));
    return db_->remove("connections", Doc().i64("_id", id)) > 0;
  });
}

std::optional<Connection> MongoStore::get_connection(Id id) {
  std::lock_guard lock(mu_);
  return read_first<Connection>(db_->find("connections", Doc().i64("_id", id), nullptr, 1),
                                [&](const bson_t* d) { return read_connection(d, box_); });
}

std::optional<Connection> MongoStore::find_connection(std::string_view name) {
  std::lock_guard lock(mu_);
  return read_first<Connection>(db_->find("connections", Doc().str("name", name), nullptr, 1),
                                [&](const bson_t* d) { return read_connection(d, box_); });
}

std::vector<Connection> MongoStore::list_connections() {
  std::lock_guard lock(mu_);
  Doc sort;
  sort.i32("_id", 1);
  return read_all<Connection>(db_->find("connections", Doc(), &sort),
                              [&](const bson_t* d) { return read_connection(d, box_); });
}

// ---- models -----------------------------------------------------------------------

Id MongoStore::insert_model(const ProviderModel& m) {
  std::lock_guard lock(mu_);
  TimeMs now = now_ms();
  return config_write([&] {
    if (!db_->find_id("connections", m.conn_id))
      throw invalid("model '" + m.name + "': connection " + std::to_string(m.conn_id) +
                    " does not exist");
    Id id = db_->next_ids("models", 1);
    Doc d;
    d.i64("_id", id);
    model_fields(d, m);
    d.i64("created_at", stamp(m.created_at, now)).i64("updated_at", stamp(m.updated_at, now));
    db_->insert("models", d, id, name_taken("a model named '" + m.name + "' already exists"));
    return id;
  });
}

void MongoStore::update_model(const ProviderModel& m) {
  std::lock_guard lock(mu_);
  config_write([&] {
    if (!db_->find_id("models", m.id)) throw not_found("model " + std::to_string(m.id));
    if (!db_->find_id("connections", m.conn_id))
      throw invalid("model '" + m.name + "': connection " + std::to_string(m.conn_id) +
                    " does not exist");
    Doc set;
    model_fields(set, m);
    set.i64("updated_at", now_ms());
    if (!db_->update_id("models", m.id, set,
                        name_taken("a model named '" + m.name + "' already exists")))
      throw not_found("model " + std::to_string(m.id));
  });
}

bool MongoStore::delete_model(Id id) {
  std::lock_guard lock(mu_);
  return config_write([&] {
    db_->remove("assignments", Doc().i64("model_id", id));
    return db_->remove("models", Doc().i64("_id", id)) > 0;
  });
}

std::optional<ProviderModel> MongoStore::get_model(Id id) {
  std::lock_guard lock(mu_);
  return read_first<ProviderModel>(db_->find("models", Doc().i64("_id", id), nullptr, 1),
                                   read_model);
}

std::optional<ProviderModel> MongoStore::find_model(std::string_view name) {
  std::lock_guard lock(mu_);
  return read_first<ProviderModel>(db_->find("models", Doc().str("name", name), nullptr, 1),
                                   read_model);
}

std::vector<ProviderModel> MongoStore::list_models(std::optional<Id> conn_id) {
  std::lock_guard lock(mu_);
  Doc filter;
  if (conn_id) filter.i64("conn_id", *conn_id);
  Doc sort;
  sort.i32("_id", 1);
  return read_all<ProviderModel>(db_->find("models", filter, &sort), read_model);
}

// ---- virtual keys ---------------------------------------------------------------------

namespace {

std::function<std::string(std::string_view)> vkey_taken(const std::string& name) {
  return [name](std::string_view msg) {
    if (msg.find("key_hash") != std::string_view::npos)
      return std::string("that key is already in use");
    return "a virtual key named '" + name + "' already exists";
  };
}

}  // namespace

Id MongoStore::insert_vkey(const VirtualKey& k) {
  std::lock_guard lock(mu_);
  TimeMs now = now_ms();
  return config_write([&] {
    if (find_vkey(k.name)) throw conflict("a virtual key named '" + k.name + "' already exists");
    Id id = db_->next_ids("vkeys", 1);
    Doc d;
    d.i64("_id", id);
    vkey_fields(d, k);
    d.i64("created_at", stamp(k.created_at, now)).i64("updated_at", stamp(k.updated_at, now));
    db_->insert("vkeys", d, id, vkey_taken(k.name));
    return id;
  });
}

void MongoStore::update_vkey(const VirtualKey& k) {
  std::lock_guard lock(mu_);
  config_write([&] {
    if (auto other = find_vkey(k.name); other && other->id != k.id)
      throw conflict("a virtual key named '" + k.name + "' already exists");
    Doc set;
    vkey_fields(set, k);
    set.i64("updated_at", now_ms());
    if (!db_->update_id("vkeys", k.id, set, vkey_taken(k.name)))
      throw not_found("virtual key " + std::to_string(k.id));
  });
}

bool MongoStore::delete_vkey(Id id) {
  std::lock_guard lock(mu_);
  return config_write([&] {
    db_->remove("assignments", Doc().i64("vkey_id", id));
    return db_->remove("vkeys", Doc().i64("_id", id)) > 0;
  });
}

std::optional<VirtualKey> MongoStore::get_vkey(Id id) {
  std::lock_guard lock(mu_);
  return read_first<VirtualKey>(db_->find("vkeys", Doc().i64("_id", id), nullptr, 1), read_vkey);
}

std::optional<VirtualKey> MongoStore::find_vkey(std::string_view name) {
  std::lock_guard lock(mu_);
  return read_first<VirtualKey>(db_->find("vkeys", Doc().str("name", name), nullptr, 1), read_vkey);
}

std::optional<VirtualKey> MongoStore::find_vkey_by_hash(std::string_view key_hash) {
  std::lock_guard lock(mu_);
  return read_first<VirtualKey>(db_->find("vkeys", Doc().str("key_hash", key_hash), nullptr, 1),
                                read_vkey);
}

std::vector<VirtualKey> MongoStore::list_vkeys() {
  std::lock_guard lock(mu_);
  Doc sort;
  sort.i32("_id", 1);
  return read_all<VirtualKey>(db_->find("vkeys", Doc(), &sort), read_vkey);
}

// ---- assignments ------------------------------------------------------------------------

namespace {

// The parents an assignment names must exist (SQLite's foreign keys).
void check_assignment_refs(mongo::Client& c, const Assignment& a) {
  if (a.conn_id.has_value() == a.model_id.has_value())
    throw invalid("an assignment names exactly one of a connection and a model");
  if (!c.find_id("vkeys", a.vkey_id))
    throw invalid("virtual key " + std::to_string(a.vkey_id) + " does not exist");
  if (a.conn_id && !c.find_id("connections", *a.conn_id))
    throw invalid("connection " + std::to_string(*a.conn_id) + " does not exist");
  if (a.model_id && !c.find_id("models", *a.model_id))
    throw invalid("model " + std::to_string(*a.model_id) + " does not exist");
}

}  // namespace

Id MongoStore::insert_assignment(const Assignment& a) {
  std::lock_guard lock(mu_);
  TimeMs now = now_ms();
  return config_write([&] {
    check_assignment_refs(*db_, a);
    Id id = db_->next_ids("assignments", 1);
    Doc d;
    d.i64("_id", id);
    assignment_fields(d, a);
    d.i64("created_at", stamp(a.created_at, now)).i64("updated_at", stamp(a.updated_at, now));
    db_->insert("assignments", d, id, nullptr);
    return id;
  });
}

void MongoStore::update_assignment(const Assignment& a) {
  std::lock_guard lock(mu_);
  config_write([&] {
    if (!db_->find_id("assignments", a.id)) throw not_found("assignment " + std::to_string(a.id));
    check_assignment_refs(*db_, a);
    Doc set;
    assignment_fields(set, a);
    set.i64("updated_at", now_ms());
    if (!db_->update_id("assignments", a.id, set, nullptr))
      throw not_found("assignment " + std::to_string(a.id));
  });
}

bool MongoStore::delete_assignment(Id id) {
  std::lock_guard lock(mu_);
  return config_write([&] { return db_->remove("assignments", Doc().i64("_id", id)) > 0; });
}

std::optional<Assignment> MongoStore::get_assignment(Id id) {
  std::lock_guard lock(mu_);
  return read_first<Assignment>(db_->find("assignments", Doc().i64("_id", id), nullptr, 1),
                                read_assignment);
}

std::vector<Assignment> MongoStore::list_assignments(std::optional<Id> vkey_id) {
  std::lock_guard lock(mu_);
  Doc filter;
  if (vkey_id) filter.i64("vkey_id", *vkey_id);
  Doc sort;
  sort.i32("_id", 1);
  return read_all<Assignment>(db_->find("assignments", filter, &sort), read_assignment);
}

// ---- admin users ------------------------------------------------------------------------
// Not configuration (serve's snapshot has no users): no config_version bump.
// Each write is one document, atomic on its own.

Id MongoStore::insert_admin_user(const AdminUser& u) {
  std::lock_guard lock(mu_);
  TimeMs now = now_ms();
  Id id = db_->next_ids("admin_users", 1);
  Doc d;
  d.i64("_id", id);
  admin_user_fields(d, u);
  d.i64("created_at", stamp(u.created_at, now)).i64("updated_at", stamp(u.updated_at, now));
  db_->insert("admin_users", d, id,
              name_taken("an admin user named '" + u.username + "' already exists"));
  return id;
}

void MongoStore::update_admin_user(const AdminUser& u) {
  std::lock_guard lock(mu_);
  Doc set;
  admin_user_fields(set, u);
  set.i64("updated_at", now_ms());
  if (!db_->update_id("admin_users", u.id, set,
                      name_taken("an admin user named '" + u.username + "' already exists")))
    throw not_found("admin user " + std::to_string(u.id));
}

bool MongoStore::delete_admin_user(Id id) {
  std::lock_guard lock(mu_);
  return db_->remove("admin_users", Doc().i64("_id", id)) > 0;
}

std::optional<AdminUser> MongoStore::find_admin_user(std::string_view username) {
  std::lock_guard lock(mu_);
  return read_first<AdminUser>(
      db_->find("admin_users", Doc().str("username", username), nullptr, 1), read_admin_user);
}

std::vector<AdminUser> MongoStore::list_admin_users() {
  std::lock_guard lock(mu_);
  Doc sort;
  sort.i32("username", 1);
  return read_all<AdminUser>(db_->find("admin_users", Doc(), &sort), read_admin_user);
}

// ---- usage ----------------------------------------------------------------------------------

void MongoStore::insert_usage(std::span<const UsageRecord> records) {
  if (records.empty()) return;
  std::lock_guard lock(mu_);
  // One id range and one insert_many per batch.
  auto n = static_cast<std::int64_t>(records.size());
  Id first = db_->next_ids("usage_records", n);
  // Allocated ids are simply skipped if the batch fails (like a sequence).
  std::vector<std::unique_ptr<Doc>> docs;
  std::vector<Doc*> ptrs;
  docs.reserve(records.size());
  for (std::size_t i = 0; i < records.size(); ++i) {
    auto d = std::make_unique<Doc>();
    d->i64("_id", first + static_cast<Id>(i));
    usage_fields(*d, records[i]);
    ptrs.push_back(d.get());
    docs.push_back(std::move(d));
  }
  // All or nothing, as with SQLite: a server transaction where there are
  // transactions, else the undo journal takes back a half-written batch.
  transaction([&] { db_->insert_many("usage_records", ptrs, first, first + n - 1); });
}

std::vector<UsageRecord> MongoStore::list_usage(const UsageQuery& q) {
  std::lock_guard lock(mu_);
  Doc filter;
  usage_filter(filter, q);
  Doc sort;
  sort.i32("ts", -1).i32("_id", -1);
  return read_all<UsageRecord>(
      db_->find("usage_records", filter, &sort, static_cast<std::int64_t>(q.limit)), read_usage);
}

std::vector<UsageGroup> MongoStore::aggregate_usage(const UsageQuery& q, UsageGroupBy by) {
  // $match → $group (key below) → $sort by key. Days come from ts (epoch ms)
  // as a UTC date.
  Doc key;
  switch (by) {
    case UsageGroupBy::kDay: {
      Doc to_date;
      to_date.str("$toDate", "$ts");
      Doc fmt;
      fmt.str("format", "%Y-%m-%d").doc("date", to_date).str("timezone", "UTC");
      key.doc("$dateToString", fmt);
      break;
    }
    case UsageGroupBy::kModel:
      key.str("k", "$model");
      break;
    case UsageGroupBy::kKey:
      key.str("k", "$vkey_name");
      break;
    case UsageGroupBy::kConnection:
      key.str("k", "$conn_name");
      break;
    case UsageGroupBy::kAssignment:
      key.str("$toString", "$assignment_id");
      break;
  }
  Doc match;
  usage_filter(match, q);

  Doc group;
  bool simple =
      by == UsageGroupBy::kModel || by == UsageGroupBy::kKey || by == UsageGroupBy::kConnection;
  if (simple) {
    group.str("_id", get_str(key.get(), "k"));
  } else {
    group.doc("_id", key);
  }
  Doc one;
  one.i32("$sum", 1);
  Doc gte_args;
  gte_args.str("0", "$status").i32("1", 400);
  Doc gte;
  gte.arr("$gte", gte_args);
  Doc cond_args;
  cond_args.doc("0", gte).i32("1", 1).i32("2", 0);
  Doc cond;
  cond.arr("$cond", cond_args);
  Doc errors;
  errors.doc("$sum", cond);
  Doc prompt, completion, cost, latency;
  prompt.str("$sum", "$prompt_tokens");
  completion.str("$sum", "$completion_tokens");
  cost.str("$sum", "$cost");
  latency.str("$avg", "$latency_ms");
  group.doc("requests", one)
      .doc("errors", errors)
      .doc("prompt_tokens", prompt)
      .doc("completion_tokens", completion)
      .doc("cost", cost)
      .doc("avg_latency_ms", latency);
  Doc sort;
  sort.i32("_id", 1);

  Doc s0, s1, s2;
  s0.doc("$match", match);
  s1.doc("$group", group);
  s2.doc("$sort", sort);
  Doc pipeline;
  pipeline.doc("0", s0).doc("1", s1).doc("2", s2);

  // Latency percentiles (nearest rank, storage/percentile.h): $percentile
  // needs MongoDB 7.0 and is approximate there, and $push-ing a group's
  // latencies into one document breaks at 16 MB (about a million requests).
  // So a second pipeline streams (group, latency) pairs sorted by group, and
  // one group's latencies at a time are ranked here.
  Doc project;
  project.i32("_id", 0);
  if (simple) {
    project.str("g", get_str(key.get(), "k"));
  } else {
    project.doc("g", key);
  }
  project.str("l", "$latency_ms");
  Doc by_group;
  by_group.i32("g", 1);
  Doc p0, p1, p2;
  p0.doc("$match", match);
  p1.doc("$project", project);
  p2.doc("$sort", by_group);
  Doc latencies;
  latencies.doc("0", p0).doc("1", p1).doc("2", p2);

  std::lock_guard lock(mu_);
  std::vector<UsageGroup> out;
  for (const Owned& d : db_->aggregate("usage_records", pipeline)) {
    out.push_back(UsageGroup{get_str(d.get(), "_id"), get_i64(d.get(), "requests"),
                             get_i64(d.get(), "errors"), get_i64(d.get(), "prompt_tokens"),
                             get_i64(d.get(), "completion_tokens"), get_dbl(d.get(), "cost"),
                             get_dbl(d.get(), "avg_latency_ms")});
  }
  // Groups come in the order of the first pipeline (both sort by the same
  // key), so each group's percentiles go to the next matching row; a group
  // only one pipeline saw (a record written between the two) is skipped.
  std::size_t next = 0;
  std::string current;
  std::vector<double> values;
  auto flush = [&] {
    auto row = std::find_if(out.begin() + static_cast<std::ptrdiff_t>(next), out.end(),
                            [&](const UsageGroup& g) { return g.group == current; });
    if (row != out.end()) {
      row->p50_latency_ms = percentile_nearest_rank(values, 50);
      row->p95_latency_ms = percentile_nearest_rank(values, 95);
      row->p99_latency_ms = percentile_nearest_rank(values, 99);
      next = static_cast<std::size_t>(row - out.begin()) + 1;
    }
    values.clear();
  };
  db_->aggregate_each("usage_records", latencies, [&](const bson_t* d) {
    std::string g = get_str(d, "g");
    if (!values.empty() && g != current) flush();
    current = std::move(g);
    values.push_back(get_dbl(d, "l"));
  });
  if (!values.empty()) flush();
  return out;
}

}  // namespace llmproxy::storage
