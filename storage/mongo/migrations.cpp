#include <algorithm>
#include <array>

#include "lib/domain/time.h"
#include "storage/mongo/driver.h"

namespace llmproxy::storage::mongo {
namespace {

struct IndexSpec {
  const char* name;
  std::vector<const char*> keys;
  bool unique;
};

void create_indexes(Client& c, const char* coll, const std::vector<IndexSpec>& specs) {
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

void create_collection(Client& c, const char* coll) {
  bson_t reply;
  bson_error_t e;
  bool ok = c.command(Doc().str("create", coll), &reply, &e);
  bson_destroy(&reply);
  if (!ok && e.code != kNamespaceExists) c.fail(std::string("creating ") + coll, e);
}

// Versioned, each step idempotent (creating what exists is a no-op), so two
// instances starting together, or a crash between a step and its record, are
// harmless. Never edit a shipped entry; append.
using Migration = void (*)(Client&);
const std::array<Migration, 3> kMigrations = {
    [](Client& c) {
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
    [](Client& c) {
      create_collection(c, "admin_users");
      create_indexes(c, "admin_users", {{"username_unique", {"username"}, true}});
    },
    // Plans. The new limit fields need nothing: a document without one reads
    // as unset (unlimited) or the type's default window (storage/mappers.cpp).
    [](Client& c) {
      create_collection(c, "plans");
      create_indexes(c, "plans", {{"name_unique", {"name"}, true}});
      // delete_plan finds the assignments to detach by plan_id.
      create_indexes(c, "assignments", {{"plan_id", {"plan_id"}, false}});
    },
};

}  // namespace

void migrate(Client& c, std::size_t up_to) {
  std::vector<Owned> applied = c.find("schema_migrations", Doc());
  auto done = [&](std::int64_t v) {
    for (const Owned& d : applied)
      if (get_i64(d.get(), "_id") == v) return true;
    return false;
  };
  const std::size_t last = std::min(up_to, kMigrations.size());
  for (std::size_t i = 0; i < last; ++i) {
    auto version = static_cast<std::int64_t>(i + 1);
    if (done(version)) continue;
    kMigrations[i](c);
    bson_error_t e;
    Doc record;
    record.i64("_id", version).i64("applied_at", now_ms());
    if (!mongoc_collection_insert_one(c.coll("schema_migrations"), record.get(), nullptr, nullptr,
                                      &e) &&
        e.code != kDuplicateKey)  // another instance recorded it first
      c.fail("recording migration " + std::to_string(version), e);
  }
}

}  // namespace llmproxy::storage::mongo
