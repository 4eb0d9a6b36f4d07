// The whole storage contract. Every backend (storage/sqlite, storage/postgres,
// storage/mongo) implements it, through the common StoreBase
// (storage/store_base.h), and passes the same conformance suite
// (tests/storage/). Nothing backend-specific leaks through:
// ids are 64-bit integers, times are epoch milliseconds, secrets go in and come
// out as plaintext (the backend encrypts them at rest with the SecretBox it was
// opened with).
//
// Errors: every method throws llmproxy::Error — kConflict for a unique
// constraint (duplicate name, duplicate key hash), kStorage for anything the
// database itself failed at. Lookups return std::nullopt / false rather than
// throwing when the object does not exist.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lib/crypto/secret_box.h"
#include "lib/domain/types.h"

namespace llmproxy::storage {

enum class UsageGroupBy { kDay, kModel, kKey, kConnection, kAssignment };

struct UsageQuery {
  std::optional<Id> vkey_id;
  std::optional<TimeMs> since;  // inclusive
  std::optional<TimeMs> until;  // exclusive
  std::size_t limit = 0;        // list_usage only; 0 = no limit
};

// One row of an aggregation. `group` is the day (YYYY-MM-DD, UTC), the model
// alias, the key name, the connection name or the assignment id, as text.
struct UsageGroup {
  std::string group;
  std::int64_t requests = 0;
  std::int64_t errors = 0;  // status >= 400
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  double cost = 0;
  double avg_latency_ms = 0;
  // Latency percentiles by nearest rank (PostgreSQL's percentile_disc): the
  // smallest latency v of the group such that at least p% of its latencies
  // are <= v, i.e. the ceil(p/100 * n)-th smallest. Always one of the
  // group's own latencies, never interpolated.
  double p50_latency_ms = 0;
  double p95_latency_ms = 0;
  double p99_latency_ms = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // "sqlite", "postgres", "mongodb".
  virtual std::string_view backend() const = 0;
  // Human-readable location without credentials, for logs.
  virtual std::string describe() const = 0;
  // Highest migration applied. Migrations run when the store is opened.
  virtual int schema_version() = 0;
  // True when the database answers.
  virtual bool ping() = 0;

  // Runs fn so that either all of its writes happen or none do. Nested calls
  // join the outer transaction. If fn throws, the transaction is rolled back
  // and the exception propagates.
  virtual void transaction(const std::function<void()>& fn) = 0;

  // Increases by at least one with every committed configuration change
  // (connections, models, keys, assignments, plans). serve polls it to reload.
  virtual std::int64_t config_version() = 0;

  // Change notification, for serve's config watcher (optional). A backend
  // that can be told about changes (PostgreSQL: LISTEN/NOTIFY; MongoDB: a
  // change stream) blocks until a configuration change committed by any store
  // on the same database may have happened, interrupt_wait() is called, or
  // `timeout` passes, and returns true; the caller then reads config_version()
  // to see whether anything changed (so a lost notification costs at most one
  // timeout). A backend that cannot (the default; MongoDB on a standalone
  // server) returns false at once: the caller polls config_version() on its
  // own schedule.
  virtual bool wait_for_change(std::chrono::milliseconds timeout) {
    (void)timeout;
    return false;
  }
  // Makes a wait_for_change() in progress on another thread return at once
  // (or the next one, when none is in progress). Thread-safe.
  virtual void interrupt_wait() {}

  // All configuration in one consistent read.
  virtual ConfigData load_config() = 0;

  // Connections. insert_* returns the new id and ignores the id field;
  // created_at/updated_at are set by the store when zero. update_* sets
  // updated_at to the current time and keeps created_at.
  virtual Id insert_connection(const Connection& c) = 0;
  virtual void update_connection(const Connection& c) = 0;  // kNotFound if absent
  virtual bool delete_connection(Id id) = 0;  // cascades to its models and assignments
  virtual std::optional<Connection> get_connection(Id id) = 0;
  virtual std::optional<Connection> find_connection(std::string_view name) = 0;
  virtual std::vector<Connection> list_connections() = 0;

  // Provider models.
  virtual Id insert_model(const ProviderModel& m) = 0;
  virtual void update_model(const ProviderModel& m) = 0;
  virtual bool delete_model(Id id) = 0;  // cascades to its assignments
  virtual std::optional<ProviderModel> get_model(Id id) = 0;
  virtual std::optional<ProviderModel> find_model(std::string_view name) = 0;
  virtual std::vector<ProviderModel> list_models(std::optional<Id> conn_id = std::nullopt) = 0;

  // Virtual keys.
  virtual Id insert_vkey(const VirtualKey& k) = 0;
  virtual void update_vkey(const VirtualKey& k) = 0;
  virtual bool delete_vkey(Id id) = 0;  // cascades to its assignments
  virtual std::optional<VirtualKey> get_vkey(Id id) = 0;
  virtual std::optional<VirtualKey> find_vkey(std::string_view name) = 0;
  virtual std::optional<VirtualKey> find_vkey_by_hash(std::string_view key_hash) = 0;
  virtual std::vector<VirtualKey> list_vkeys() = 0;

  // Assignments.
  virtual Id insert_assignment(const Assignment& a) = 0;
  virtual void update_assignment(const Assignment& a) = 0;
  virtual bool delete_assignment(Id id) = 0;
  virtual std::optional<Assignment> get_assignment(Id id) = 0;
  virtual std::vector<Assignment> list_assignments(std::optional<Id> vkey_id = std::nullopt) = 0;

  // Plans (named limit sets). Names are unique (kConflict). Deleting a plan
  // detaches it from its assignments (plan_id becomes unset; their own limits
  // stay); refusing while in use is the caller's policy.
  virtual Id insert_plan(const Plan& p) = 0;
  virtual void update_plan(const Plan& p) = 0;  // kNotFound if absent
  virtual bool delete_plan(Id id) = 0;
  virtual std::optional<Plan> get_plan(Id id) = 0;
  virtual std::optional<Plan> find_plan(std::string_view name) = 0;
  virtual std::vector<Plan> list_plans() = 0;

  // Admin users (the admin API's and dashboard's sign-in). Usernames are
  // unique, compared byte for byte (kConflict). insert_admin_user returns the
  // new id and sets created_at/updated_at when zero; update_admin_user sets
  // username, role and password_hash, stamps updated_at with the current time
  // (tokens issued before it are void) and throws kNotFound when absent.
  // Users are not configuration: their changes leave config_version alone.
  virtual Id insert_admin_user(const AdminUser& u) = 0;
  virtual void update_admin_user(const AdminUser& u) = 0;
  virtual bool delete_admin_user(Id id) = 0;
  virtual std::optional<AdminUser> find_admin_user(std::string_view username) = 0;
  // Ordered by username (byte order).
  virtual std::vector<AdminUser> list_admin_users() = 0;

  // Usage. Records are appended in batches by serve's writer thread.
  virtual void insert_usage(std::span<const UsageRecord> records) = 0;
  // Newest first.
  virtual std::vector<UsageRecord> list_usage(const UsageQuery& q) = 0;
  // Ordered by group ascending.
  virtual std::vector<UsageGroup> aggregate_usage(const UsageQuery& q, UsageGroupBy by) = 0;
};

// Where the configuration lives, as given by --db, LLM_PROXY_DB or
// DB_TYPE + DB_DSN.
struct Location {
  std::string backend;  // "sqlite", "postgres", "mongodb"
  std::string target;   // file path for sqlite; the URL for the others
};

// Resolves the location: an explicit --db value wins, then LLM_PROXY_DB, then
// DB_TYPE + DB_DSN, then ./llm-proxy.db. Throws kInvalid for a malformed value.
Location resolve_location(const std::optional<std::string>& db_flag);
Location parse_location(std::string_view url);

// The key that seals secrets in this location's store (see open_store), for
// deriving other server secrets from (e.g. the admin token key).
crypto::SecretBox secret_box_for(const Location& where);

// Opens (creating if needed) and migrates the store. Throws kStorage when the
// database cannot be reached, kInvalid when the backend is unknown.
std::unique_ptr<Store> open_store(const Location& where);

}  // namespace llmproxy::storage
