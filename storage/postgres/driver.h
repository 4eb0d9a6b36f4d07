// The PostgreSQL driver, over libpq: statement parameters and results as
// text, connections with their prepared statements, a small pool, and the
// errors the contract names (storage/store.h). No message it makes contains
// a password from the conninfo.
#pragma once

#include <libpq-fe.h>

#include <charconv>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "storage/rows.h"
#include "storage/sql/row_reader.h"

namespace llmproxy::storage::pg {

// Connections one store keeps open at most (serve uses a store per thread, the
// CLI one connection; more callers than this wait for a free one).
constexpr std::size_t kPoolSize = 4;

// libpq's messages on one line (they come with newlines and tabs), for
// errors that the CLI prints as one line.
std::string one_line(std::string_view s);
// Doubles go to the server as text that reads back to the same value.
std::string format_double(double v);
// A double precision in PostgreSQL's text form.
double parse_double(std::string_view v);
// Client-supplied text (request ids, model names) stored with usage records:
// PostgreSQL text is valid UTF-8 without NUL bytes, and one odd header must
// not make a whole batch fail, so invalid sequences become U+FFFD.
std::string clean_utf8(std::string_view s);
// Removes every occurrence of each secret from a message.
std::string redact(std::string msg, const std::vector<std::string>& secrets);
// Every spelling of a password that conninfo may carry, found without libpq
// so that even a conninfo libpq cannot parse is redacted: the URL's userinfo
// and any password=… (URL query or keyword/value form), raw and decoded.
std::vector<std::string> find_passwords(std::string_view conninfo);
// postgres://user@host:port/db, from what libpq parses out of conninfo.
// Throws kInvalid for a conninfo libpq cannot parse.
std::string describe_conninfo(const std::string& conninfo, const std::vector<std::string>& pw);

struct ResultFree {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultFree>;

// The array type for a column of this kind ("bigint[]"), for ArrayLiteral.
const char* array_type(Kind kind);

// Statement parameters, all sent as text (the server infers their types).
class Params {
 public:
  template <class... Args>
  explicit Params(const Args&... args) {
    (add(args), ...);
  }

  void add(std::int64_t v) { values_.emplace_back(std::to_string(v)); }
  void add(int v) { values_.emplace_back(std::to_string(v)); }
  void add(bool v) { values_.emplace_back(v ? "true" : "false"); }
  void add(double v) { values_.emplace_back(format_double(v)); }
  void add(std::string_view v) {
    if (v.find('\0') != std::string_view::npos)
      throw invalid("PostgreSQL cannot store text that contains a NUL byte");
    values_.emplace_back(std::string(v));
  }
  void add(const std::string& v) { add(std::string_view(v)); }
  void add(const char* v) { add(std::string_view(v)); }
  void add(std::nullopt_t) { values_.emplace_back(std::nullopt); }
  void add(const Value& v) {
    std::visit(
        [&](const auto& x) {
          if constexpr (std::is_same_v<std::decay_t<decltype(x)>, std::monostate>)
            add(std::nullopt);
          else
            add(x);
        },
        v);
  }
  template <class T>
  void add(const std::optional<T>& v) {
    if (v)
      add(*v);
    else
      add(std::nullopt);
  }

  int size() const { return static_cast<int>(values_.size()); }
  std::vector<const char*> pointers() const {
    std::vector<const char*> out;
    out.reserve(values_.size());
    for (const auto& v : values_) out.push_back(v ? v->c_str() : nullptr);
    return out;
  }

 private:
  std::vector<std::optional<std::string>> values_;
};

// The text form of a one-dimensional array parameter ({1,NULL,"text"}), for
// sending a whole batch of usage records as one column array each.
class ArrayLiteral {
 public:
  void add(std::int64_t v) { next() += std::to_string(v); }
  void add(int v) { next() += std::to_string(v); }
  void add(double v) { next() += format_double(v); }
  void add(std::string_view v) {
    std::string& s = next();
    s += '"';
    for (char ch : clean_utf8(v)) {
      if (ch == '"' || ch == '\\') s += '\\';
      s += ch;
    }
    s += '"';
  }
  template <class T>
  void add(const std::optional<T>& v) {
    if (v)
      add(*v);
    else
      next() += "NULL";
  }
  void add(const Value& v) {
    if (const auto* n = std::get_if<std::int64_t>(&v))
      add(*n);
    else if (const auto* d = std::get_if<double>(&v))
      add(*d);
    else if (const auto* t = std::get_if<std::string>(&v))
      add(std::string_view(*t));
    else if (const auto* b = std::get_if<bool>(&v))
      next() += *b ? "t" : "f";
    else
      next() += "NULL";
  }
  std::string str() const { return text_ + "}"; }

 private:
  std::string& next() {
    if (text_.size() > 1) text_ += ',';
    return text_;
  }
  std::string text_ = "{";
};

// A query's rows, read as text.
class Rows {
 public:
  explicit Rows(ResultPtr r) : r_(std::move(r)) {}

  int size() const { return PQntuples(r_.get()); }
  bool is_null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  std::string_view raw(int row, int col) const {
    return {PQgetvalue(r_.get(), row, col),
            static_cast<std::size_t>(PQgetlength(r_.get(), row, col))};
  }
  std::string text(int row, int col) const { return std::string(raw(row, col)); }
  std::int64_t i64(int row, int col) const {
    std::string_view v = raw(row, col);
    std::int64_t out = 0;
    auto res = std::from_chars(v.data(), v.data() + v.size(), out);
    if (res.ec != std::errc() || res.ptr != v.data() + v.size())
      throw storage_error("PostgreSQL: unexpected integer '" + std::string(v) + "'");
    return out;
  }
  double dbl(int row, int col) const { return parse_double(raw(row, col)); }
  // A one-dimensional double precision[] without NULLs: {1.5,2,NaN}.
  std::vector<double> dbl_array(int row, int col) const;
  bool boolean(int row, int col) const { return raw(row, col) == "t"; }
  std::optional<std::int64_t> opt_i64(int row, int col) const {
    return is_null(row, col) ? std::nullopt : std::optional(i64(row, col));
  }
  std::optional<double> opt_dbl(int row, int col) const {
    return is_null(row, col) ? std::nullopt : std::optional(dbl(row, col));
  }
  // Rows an INSERT/UPDATE/DELETE touched.
  std::int64_t affected() const {
    const char* n = PQcmdTuples(r_.get());
    return n && *n ? std::strtoll(n, nullptr, 10) : 0;
  }

 private:
  ResultPtr r_;
};

// One row of Rows.
class Row final : public sql::RowReader {
 public:
  Row(const Rows& rows, int i) : rows_(rows), i_(i) {}
  bool is_null(int c) const override { return rows_.is_null(i_, c); }
  std::int64_t i64(int c) const override { return rows_.i64(i_, c); }
  double real(int c) const override { return rows_.dbl(i_, c); }
  std::string text(int c) const override { return rows_.text(i_, c); }
  bool boolean(int c) const override { return rows_.boolean(i_, c); }
  std::vector<double> real_array(int c) const { return rows_.dbl_array(i_, c); }

 private:
  const Rows& rows_;
  int i_;
};

// One server connection and the statements prepared on it.
class Conn {
 public:
  explicit Conn(PGconn* pg) : pg_(pg) {}
  ~Conn() { PQfinish(pg_); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  PGconn* get() const { return pg_; }
  bool ok() const { return PQstatus(pg_) == CONNECTION_OK; }

  std::unordered_map<std::string, std::string> prepared;  // SQL -> statement name
  // A command was sent since the connection was checked out. Only the first
  // command is retried on a fresh connection when the old one turns out to be
  // dead (the server restarted): it is always BEGIN or a read, never a write
  // that may have been applied.
  bool used = false;

 private:
  PGconn* pg_;
};

// Opens connections with the store's conninfo and keeps up to kPoolSize of
// them, idle ones for reuse.
class Pool {
 public:
  Pool(std::string conninfo, std::vector<std::string> passwords, std::string where)
      : conninfo_(std::move(conninfo)),
        passwords_(std::move(passwords)),
        where_(std::move(where)) {}

  const std::string& where() const { return where_; }
  std::string redact(std::string msg) const { return pg::redact(std::move(msg), passwords_); }

  // A new, set-up connection that is not counted in the pool.
  std::unique_ptr<Conn> connect() const;

  // Re-establishes a dead connection in place.
  void reconnect(Conn& c) const;

  std::unique_ptr<Conn> acquire();

  void release(std::unique_ptr<Conn> c);

 private:
  void setup(Conn& c) const;

  std::string conninfo_;
  std::vector<std::string> passwords_;
  std::string where_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> idle_;
  std::size_t open_ = 0;
};

// A connection checked out of the pool until the scope ends.
class PooledConn {
 public:
  explicit PooledConn(Pool& pool) : pool_(pool), conn_(pool.acquire()) {}
  ~PooledConn() { pool_.release(std::move(conn_)); }
  PooledConn(const PooledConn&) = delete;
  PooledConn& operator=(const PooledConn&) = delete;
  Conn& operator*() { return *conn_; }

 private:
  Pool& pool_;
  std::unique_ptr<Conn> conn_;
};

// A plain command (BEGIN, COMMIT, SAVEPOINT, a migration script).
void exec_simple(const Pool& pool, Conn& c, const std::string& sql);
// A statement, prepared on this connection the first time it is used there.
Rows exec_prepared(const Pool& pool, Conn& c, const std::string& sql, const Params& params);

// Applies the migrations (storage/postgres/migrations.cpp) not yet applied, up
// to version `up_to` (the tests build a database of an earlier schema with it,
// to upgrade).
void migrate(Pool& pool, std::size_t up_to = SIZE_MAX);

}  // namespace llmproxy::storage::pg
