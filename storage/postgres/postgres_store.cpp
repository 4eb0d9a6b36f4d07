#include "storage/postgres/postgres_store.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "storage/mappers.h"
#include "storage/postgres/driver.h"
#include "storage/sql/transaction.h"

namespace llmproxy::storage {

using pg::Params;
using pg::Rows;

namespace {

// The connection a thread's transaction on a store runs on. Nested calls on
// that thread (and every read or write inside fn) find it here.
struct Binding {
  const PostgresStore* store;
  pg::Conn* conn;
};
thread_local std::vector<Binding> t_bindings;

pg::Conn* bound_conn(const PostgresStore* store) {
  for (const Binding& b : t_bindings)
    if (b.store == store) return b.conn;
  return nullptr;
}

void unbind(const PostgresStore* store) {
  for (auto it = t_bindings.begin(); it != t_bindings.end(); ++it) {
    if (it->store == store) {
      t_bindings.erase(it);
      return;
    }
  }
}

}  // namespace

// The connection one operation runs on: this thread's transaction connection
// on the store, or one checked out of the pool until the lease ends.
class PostgresStore::Lease {
 public:
  explicit Lease(PostgresStore& store) : pool_(*store.pool_) {
    conn_ = bound_conn(&store);
    if (!conn_) {
      owned_ = pool_.acquire();
      conn_ = owned_.get();
    }
  }
  ~Lease() {
    if (owned_) pool_.release(std::move(owned_));
  }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;

  pg::Conn& conn() { return *conn_; }

 private:
  pg::Pool& pool_;
  std::unique_ptr<pg::Conn> owned_;
  pg::Conn* conn_ = nullptr;
};

PostgresStore::PostgresStore(const std::string& conninfo, crypto::SecretBox box)
    : SqlStore(
          box,
          sql::Dialect{.name = "PostgreSQL",
                       .placeholder = '$',
                       .byte_order = " COLLATE \"C\"",
                       // Whole UTC days since the epoch, whatever the session's time zone.
                       .day_of_ts = "to_char((date '1970-01-01' + floor(ts / 86400000.0)::integer)"
                                    "::timestamp, 'YYYY-MM-DD')",
                       .assignment = "COALESCE(assignment_id::text, '')"}),
      passwords_(pg::find_passwords(conninfo)) {
  describe_ = pg::describe_conninfo(conninfo, passwords_);
  pool_ = std::make_unique<pg::Pool>(conninfo, passwords_, describe_);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw storage_error(std::string("eventfd: ") + std::strerror(errno));
  try {
    pg::migrate(*pool_);
  } catch (...) {
    ::close(wake_fd_);
    throw;
  }
}

PostgresStore::~PostgresStore() {
  listen_.reset();
  pool_.reset();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

pg::Rows PostgresStore::query(const std::string& sql, const pg::Params& params) {
  Lease lease(*this);
  return pg::exec_prepared(*pool_, lease.conn(), sql, params);
}

std::int64_t PostgresStore::run(const std::string& sql, const std::vector<Value>& params,
                                const EachRow& each) {
  Params p;
  for (const Value& v : params) p.add(v);
  Rows rows = query(sql, p);
  if (each) {
    for (int i = 0; i < rows.size(); ++i) each(pg::Row(rows, i));
  }
  return rows.affected();
}

int PostgresStore::schema_version() {
  return static_cast<int>(
      query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", Params()).i64(0, 0));
}

bool PostgresStore::ping() {
  try {
    return query("SELECT 1 FROM meta LIMIT 1", Params()).size() == 1;
  } catch (const Error&) {
    return false;
  }
}

void PostgresStore::in_transaction(const char* begin_sql, const std::function<void()>& fn) {
  if (pg::Conn* c = bound_conn(this)) {
    // Joins the outer transaction. The savepoint undoes only this call's
    // writes when it throws, so an outer fn that catches the error carries on
    // in a usable transaction, as with SQLite, where a failed statement does
    // not end the transaction around it.
    pg::exec_simple(*pool_, *c, "SAVEPOINT llmproxy_nested");
    try {
      fn();
    } catch (...) {
      try {
        pg::exec_simple(*pool_, *c,
                        "ROLLBACK TO SAVEPOINT llmproxy_nested; RELEASE SAVEPOINT llmproxy_nested");
      } catch (const std::exception&) {
        // the outer transaction fails too; its rollback reports nothing more
      }
      throw;
    }
    pg::exec_simple(*pool_, *c, "RELEASE SAVEPOINT llmproxy_nested");
    return;
  }
  Lease lease(*this);
  pg::Conn& c = lease.conn();
  sql::Transaction tx([&](const std::string& s) { pg::exec_simple(*pool_, c, s); }, begin_sql);
  t_bindings.push_back({this, &c});
  try {
    fn();
  } catch (...) {
    unbind(this);
    throw;
  }
  unbind(this);
  tx.commit();
}

void PostgresStore::transaction(const std::function<void()>& fn) {
  in_transaction("BEGIN", fn);
}

void PostgresStore::bump_config_version() {
  // Delivered to listeners when (and only if) the transaction commits.
  query(
      "WITH v AS (UPDATE meta SET value = value + 1 WHERE key = 'config_version' "
      "RETURNING value) SELECT pg_notify('" +
          std::string(kNotifyChannel) + "', value::text) FROM v",
      Params());
}

void PostgresStore::read_consistently(const std::function<std::int64_t()>& read) {
  // One snapshot, so that the parts agree with each other and the version;
  // inside a caller's transaction, the reads join it and see its writes.
  if (bound_conn(this)) {
    read();
  } else {
    in_transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", [&] { read(); });
  }
}

bool PostgresStore::wait_for_change(std::chrono::milliseconds timeout) {
  std::lock_guard lock(listen_mu_);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // Waits for the socket (or only the wake-up, for -1) until the deadline;
  // true when the socket has input.
  auto wait = [&](int sock) {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {sock, POLLIN, 0}};
      int rc = ::poll(fds, sock >= 0 ? 2 : 1,
                      static_cast<int>(std::min<long long>(left.count(), 60'000)));
      if (rc < 0 && errno == EINTR) continue;
      if (rc < 0) return false;
      if (fds[0].revents & POLLIN) {
        std::uint64_t count;
        [[maybe_unused]] auto n = ::read(wake_fd_, &count, sizeof count);
        return false;
      }
      if (rc > 0) return true;
    }
  };
  if (!listen_ || !listen_->ok()) {
    listen_.reset();
    try {
      auto c = pool_->connect();
      pg::exec_simple(*pool_, *c, std::string("LISTEN ") + kNotifyChannel);
      listen_ = std::move(c);
    } catch (const std::exception&) {
      wait(-1);  // unreachable: the caller's next read reports it
    }
    return true;  // what changed before LISTEN, the caller's read sees
  }
  PGconn* pg = listen_->get();
  for (;;) {
    if (PQconsumeInput(pg) == 0) {
      listen_.reset();  // lost: reconnected (and the caller reads) next time
      return true;
    }
    bool notified = false;
    while (PGnotify* n = PQnotifies(pg)) {
      notified = true;
      PQfreemem(n);
    }
    if (notified) return true;
    if (!wait(PQsocket(pg))) return true;
  }
}

void PostgresStore::interrupt_wait() {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

// ---- usage --------------------------------------------------------------------

void PostgresStore::insert_usage(std::span<const UsageRecord> records) {
  if (records.empty()) return;
  // The whole batch is one statement with one array per column, unnested
  // into rows in order: a single prepared statement serves every batch size.
  const Fields shape = usage_fields(records.front());
  std::vector<pg::ArrayLiteral> cols(shape.list().size());
  for (const UsageRecord& r : records) {
    Fields f = usage_fields(r);
    for (std::size_t i = 0; i < cols.size(); ++i) cols[i].add(f.list()[i].value);
  }
  std::string names, arrays;
  Params params;
  for (std::size_t i = 0; i < cols.size(); ++i) {
    const Field& f = shape.list()[i];
    names += std::string(i ? ", " : "") + f.column;
    arrays += std::string(i ? ", " : "") + dialect().param(i + 1) + "::" + pg::array_type(f.kind);
    params.add(cols[i].str());
  }
  // In a transaction of its own (or the caller's), so that a dead pooled
  // connection is only ever retried at BEGIN, never after the insert may have
  // been applied.
  in_transaction("BEGIN", [&] {
    query("INSERT INTO usage_records (" + names + ") SELECT * FROM unnest(" + arrays + ")", params);
  });
}

std::vector<UsageGroup> PostgresStore::aggregate_usage(const UsageQuery& q, UsageGroupBy by) {
  const char* key = dialect().group_key(by);
  std::vector<Value> params;
  std::string where = dialect().usage_where(q, params);
  // COLLATE "C": groups in byte order, as the contract (and SQLite) has it,
  // whatever the database's collation.
  std::string sql = std::string("SELECT (") + key +
                    ") COLLATE \"C\" AS g, COUNT(*), COUNT(*) FILTER (WHERE status >= 400), "
                    "COALESCE(SUM(prompt_tokens), 0)::bigint, "
                    "COALESCE(SUM(completion_tokens), 0)::bigint, SUM(cost), AVG(latency_ms), "
                    // Nearest rank (store.h), all three from one sort.
                    "percentile_disc(ARRAY[0.5, 0.95, 0.99]::float8[]) "
                    "WITHIN GROUP (ORDER BY latency_ms) "
                    "FROM usage_records " +
                    where + " GROUP BY 1 ORDER BY 1";
  Params p;
  for (const Value& v : params) p.add(v);
  Rows rows = query(sql, p);
  std::vector<UsageGroup> out;
  for (int i = 0; i < rows.size(); ++i) {
    pg::Row r(rows, i);
    std::vector<double> pct = r.real_array(7);
    if (pct.size() != 3) throw storage_error("PostgreSQL: expected three latency percentiles");
    out.push_back(UsageGroup{r.text(0), r.i64(1), r.i64(2), r.i64(3), r.i64(4), r.real(5),
                             r.real(6), pct[0], pct[1], pct[2]});
  }
  return out;
}

}  // namespace llmproxy::storage
