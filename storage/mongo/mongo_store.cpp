#include "storage/mongo/mongo_store.h"

#include <algorithm>
#include <chrono>

#include "storage/mappers.h"
#include "storage/mongo/documents.h"
#include "storage/mongo/driver.h"
#include "storage/percentile.h"
#include "storage/url.h"

namespace llmproxy::storage {

using mongo::Doc;
using mongo::get_dbl;
using mongo::get_i64;
using mongo::get_opt_i64;
using mongo::get_str;
using mongo::Owned;

namespace {

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
  auto parts = split_url(url);
  if (!parts) return url;  // mongoc_uri_t accepted it, so it has a scheme
  return std::string(parts->scheme) + "://" + std::string(parts->hosts) + "/" + db;
}

}  // namespace

// ---- opening ---------------------------------------------------------------------

MongoStore::MongoStore(const std::string& url, crypto::SecretBox box)
    : StoreBase(box), db_(std::make_unique<mongo::Client>()) {
  mongo::init_driver_once();
  mongo::Client& c = *db_;
  if (auto parts = split_url(url)) c.secrets.emplace_back(parts->password());

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
  mongo::migrate(c);
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

void MongoStore::bump_config_version() {
  std::lock_guard lock(mu_);
  db_->bump_config_version();
}

std::int64_t MongoStore::config_version() {
  std::lock_guard lock(mu_);
  auto docs = db_->find("meta", Doc().str("_id", "config_version"), nullptr, 1);
  if (docs.empty()) throw storage_error("MongoDB: meta.config_version is missing");
  return get_i64(docs.front().get(), "value");
}

void MongoStore::read_consistently(const std::function<std::int64_t()>& read) {
  std::lock_guard lock(mu_);
  if (db_->tx_depth > 0) {  // the caller's transaction already
    read();
  } else if (db_->tx_supported) {
    transaction([&] { read(); });  // one snapshot
  } else {
    // A standalone has no snapshot: read until the version did not move while
    // reading (writers bump it last), a few times at most.
    for (int attempt = 0; attempt < 5; ++attempt) {
      if (config_version() == read()) break;
    }
  }
}

// ---- rows ------------------------------------------------------------------------

Id MongoStore::insert_row(const Table& table, const Fields& fields) {
  std::lock_guard lock(mu_);
  Id id = db_->next_ids(table.name, 1);
  Doc d;
  d.i64("_id", id);
  mongo::append_fields(d, fields);
  db_->insert(table.name, d, id);
  return id;
}

bool MongoStore::update_row(const Table& table, Id id, const Fields& fields) {
  std::lock_guard lock(mu_);
  Doc set;
  mongo::append_fields(set, fields);
  return db_->update_id(table.name, id, set);
}

std::int64_t MongoStore::delete_rows(const Table& table, const char* column, Id id) {
  std::lock_guard lock(mu_);
  Doc filter;
  mongo::append_match(filter, Match{column, id});
  return db_->remove(table.name, filter);
}

void MongoStore::select_rows(const Table& table, const Match& where, const Order& order,
                             const RowFn& each) {
  Doc filter;
  mongo::append_match(filter, where);
  Doc sort;  // strings compare byte for byte already
  sort.i32(mongo::field_name(order.column).c_str(), 1);
  std::lock_guard lock(mu_);
  for (const Owned& d : db_->find(table.name, filter, &sort)) each(mongo::DocReader(d.get()));
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
    mongo::append_fields(*d, usage_fields(records[i]));
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
  std::vector<UsageRecord> out;
  for (const Owned& d :
       db_->find("usage_records", filter, &sort, static_cast<std::int64_t>(q.limit)))
    out.push_back(read_usage(mongo::DocReader(d.get())));
  return out;
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
