#include "storage/mongo/driver.h"

#include <mutex>

namespace llmproxy::storage::mongo {

void init_driver_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    mongoc_init();
    // Driver chatter (server selection retries, …) is not ours to print; real
    // failures come back as errors.
    mongoc_log_set_handler(nullptr, nullptr);
  });
}

namespace {

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

std::vector<Owned> Client::find(std::string_view c, const Doc& filter, const Doc* sort,
                                std::int64_t limit) {
  Doc opts;
  if (sort) opts.doc("sort", *sort);
  if (limit > 0) opts.i64("limit", limit);
  with_session(opts);
  std::vector<Owned> out;
  consume(mongoc_collection_find_with_opts(coll(c), filter.get(), opts.get(), nullptr),
          "find in " + std::string(c), [&](const bson_t* d) { out.push_back(copy(d)); });
  return out;
}

std::vector<Owned> Client::aggregate(std::string_view c, const Doc& pipeline) {
  Doc opts;
  with_session(opts);
  std::vector<Owned> out;
  consume(
      mongoc_collection_aggregate(coll(c), MONGOC_QUERY_NONE, pipeline.get(), opts.get(), nullptr),
      "aggregate on " + std::string(c), [&](const bson_t* d) { out.push_back(copy(d)); });
  return out;
}

void Client::insert_many(std::string_view c, const std::vector<Doc*>& docs, std::int64_t lo,
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

bool Client::update_id(std::string_view c, std::int64_t id, const Doc& set) {
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
  if (!ok) write_failed(c, e);
  if (matched > 0 && prior) undo.push_back(Undo{std::string(c), 0, 0, std::move(prior)});
  return matched > 0;
}

std::int64_t Client::remove(std::string_view c, const Doc& filter) {
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

std::int64_t Client::next_ids(std::string_view counter, std::int64_t n) {
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

void Client::bump_config_version() {
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

void Client::roll_back_journal() {
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

}  // namespace llmproxy::storage::mongo
