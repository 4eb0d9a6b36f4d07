#include "storage/postgres/driver.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "storage/url.h"

namespace llmproxy::storage::pg {

std::string one_line(std::string_view s) {
  std::string out;
  bool space = false;
  for (char ch : s) {
    if (ch == '\n' || ch == '\r' || ch == '\t' || ch == ' ') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += ch;
  }
  return out;
}

std::string format_double(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

std::string clean_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    unsigned char c = p[i];
    std::size_t len = c < 0x80           ? 1
                      : (c >> 5) == 0x6  ? 2
                      : (c >> 4) == 0xe  ? 3
                      : (c >> 3) == 0x1e ? 4
                                         : 0;
    bool ok = len > 0 && i + len <= n;
    for (std::size_t k = 1; ok && k < len; ++k) ok = (p[i + k] & 0xc0) == 0x80;
    if (ok && len > 1) {  // no overlong forms, surrogates or code points past U+10FFFF
      std::uint32_t cp = c & (0x7f >> len);
      for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (p[i + k] & 0x3f);
      static constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= kMin[len] && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff);
    }
    if (!ok) {
      out += "\xef\xbf\xbd";
      ++i;
    } else if (c == 0) {
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

std::string redact(std::string msg, const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) {
    if (secret.empty()) continue;
    for (std::size_t at = msg.find(secret); at != std::string::npos;
         at = msg.find(secret, at + 3)) {
      msg.replace(at, secret.size(), "***");
    }
  }
  return msg;
}

std::vector<std::string> find_passwords(std::string_view conninfo) {
  std::vector<std::string> out;
  auto add = [&](std::string_view v) {
    if (v.empty()) return;
    out.emplace_back(v);
    std::string decoded = percent_decode(v);
    if (decoded != v) out.push_back(std::move(decoded));
  };
  if (auto url = split_url(conninfo)) add(url->password());
  for (std::size_t at = conninfo.find("password"); at != std::string_view::npos;
       at = conninfo.find("password", at + 1)) {
    std::size_t i = at + 8;
    while (i < conninfo.size() && conninfo[i] == ' ') ++i;
    if (i >= conninfo.size() || conninfo[i] != '=') continue;
    ++i;
    while (i < conninfo.size() && conninfo[i] == ' ') ++i;
    std::size_t end = i;
    if (i < conninfo.size() && conninfo[i] == '\'') {
      std::string unescaped;  // \' and \\ inside the quotes
      for (end = i + 1; end < conninfo.size() && conninfo[end] != '\''; ++end) {
        if (conninfo[end] == '\\' && end + 1 < conninfo.size()) ++end;
        unescaped += conninfo[end];
      }
      add(conninfo.substr(i + 1, end - i - 1));
      add(unescaped);
    } else {
      while (end < conninfo.size() && conninfo[end] != ' ' && conninfo[end] != '&') ++end;
      add(conninfo.substr(i, end - i));
    }
  }
  // Longest first, so that a password containing another is removed whole.
  std::sort(out.begin(), out.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return out;
}

const char* array_type(Kind kind) {
  switch (kind) {
    case Kind::kInt:
      return "bigint[]";
    case Kind::kReal:
      return "double precision[]";
    case Kind::kText:
      return "text[]";
    case Kind::kBool:
      return "boolean[]";
  }
  return "text[]";
}

double parse_double(std::string_view v) {
  double out = 0;
  auto res = std::from_chars(v.data(), v.data() + v.size(), out);
  if (res.ec != std::errc() || res.ptr != v.data() + v.size()) {
    if (v == "Infinity") return HUGE_VAL;
    if (v == "-Infinity") return -HUGE_VAL;
    if (v == "NaN") return std::nan("");
    throw storage_error("PostgreSQL: unexpected number '" + std::string(v) + "'");
  }
  return out;
}

namespace {

// Turns a failed result into the contract's errors: unique violations are
// kConflict, other integrity and data errors (foreign key, check, invalid
// text) kInvalid, everything else kStorage.
[[noreturn]] void fail(const Pool& pool, Conn& c, const PGresult* r) {
  const char* state_field = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::string state = state_field ? state_field : "";
  std::string msg;
  if (const char* primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : nullptr) {
    msg = primary;
    if (const char* detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL)) {
      msg += " (";
      msg += detail;
      msg += ")";
    }
  } else {
    msg = PQerrorMessage(c.get());
  }
  msg = one_line(pool.redact(msg));
  if (state == "23505") {
    const char* constraint = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
    throw UniqueViolation(constraint ? constraint : "", msg);
  }
  if (state.starts_with("23") || state.starts_with("22")) throw invalid(msg);
  throw storage_error("PostgreSQL (" + pool.where() + "): " + msg);
}

bool succeeded(const PGresult* r) {
  auto st = PQresultStatus(r);
  return r && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
}

// Runs once, and once more on a fresh connection when this was the
// connection's first command and it found the connection dead.
template <class Fn>
Rows with_retry(const Pool& pool, Conn& c, Fn&& run) {
  for (int attempt = 0;; ++attempt) {
    const bool first = !c.used;
    c.used = true;
    ResultPtr r = run();
    if (succeeded(r.get())) return Rows(std::move(r));
    if (first && attempt == 0 && !c.ok()) {
      pool.reconnect(c);
      c.used = false;
      continue;
    }
    fail(pool, c, r.get());
  }
}

}  // namespace

void exec_simple(const Pool& pool, Conn& c, const std::string& sql) {
  with_retry(pool, c, [&] { return ResultPtr(PQexec(c.get(), sql.c_str())); });
}

Rows exec_prepared(const Pool& pool, Conn& c, const std::string& sql, const Params& params) {
  return with_retry(pool, c, [&]() -> ResultPtr {
    auto it = c.prepared.find(sql);
    if (it == c.prepared.end()) {
      std::string name = "llmproxy_" + std::to_string(c.prepared.size());
      ResultPtr prep(PQprepare(c.get(), name.c_str(), sql.c_str(), 0, nullptr));
      if (!succeeded(prep.get())) return prep;
      it = c.prepared.emplace(sql, std::move(name)).first;
    }
    std::vector<const char*> values = params.pointers();
    return ResultPtr(PQexecPrepared(c.get(), it->second.c_str(), params.size(), values.data(),
                                    nullptr, nullptr, 0));
  });
}

// postgres://user@host:port/db, from what libpq parses out of conninfo.
std::string describe_conninfo(const std::string& conninfo, const std::vector<std::string>& pw) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (!opts) {
    std::string msg = err ? redact(err, pw) : "cannot parse it";
    PQfreemem(err);
    throw invalid("malformed PostgreSQL connection string: " + one_line(msg));
  }
  std::string user, host, hostaddr, port, dbname;
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    if (!o->val) continue;
    std::string_view k = o->keyword;
    if (k == "user")
      user = o->val;
    else if (k == "host")
      host = o->val;
    else if (k == "hostaddr")
      hostaddr = o->val;
    else if (k == "port")
      port = o->val;
    else if (k == "dbname")
      dbname = o->val;
  }
  PQconninfoFree(opts);
  if (host.empty()) host = hostaddr.empty() ? "localhost" : hostaddr;
  std::string out = "postgres://";
  if (!user.empty()) out += user + "@";
  out += host;
  if (!port.empty()) out += ":" + port;
  out += "/" + dbname;
  return redact(out, pw);
}

std::vector<double> Rows::dbl_array(int row, int col) const {
  std::string_view v = raw(row, col);
  if (v.size() < 2 || v.front() != '{' || v.back() != '}')
    throw storage_error("PostgreSQL: unexpected array '" + std::string(v) + "'");
  v = v.substr(1, v.size() - 2);
  std::vector<double> out;
  while (!v.empty()) {
    std::size_t comma = v.find(',');
    out.push_back(parse_double(v.substr(0, comma)));
    v = comma == std::string_view::npos ? std::string_view() : v.substr(comma + 1);
  }
  return out;
}

std::unique_ptr<Conn> Pool::connect() const {
  // Later keywords override what the conninfo (expanded from dbname) says;
  // earlier ones are defaults it may override.
  const char* keys[] = {"connect_timeout", "fallback_application_name", "dbname", "client_encoding",
                        nullptr};
  const char* values[] = {"10", "llm-proxy", conninfo_.c_str(), "UTF8", nullptr};
  PGconn* raw = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (!raw) throw storage_error("cannot connect to PostgreSQL at " + where_ + ": out of memory");
  auto conn = std::make_unique<Conn>(raw);
  if (!conn->ok()) {
    throw storage_error("cannot connect to PostgreSQL at " + where_ + ": " +
                        one_line(redact(PQerrorMessage(raw))));
  }
  setup(*conn);
  return conn;
}

void Pool::reconnect(Conn& c) const {
  PQreset(c.get());
  c.prepared.clear();
  if (!c.ok()) {
    throw storage_error("cannot connect to PostgreSQL at " + where_ + ": " +
                        one_line(redact(PQerrorMessage(c.get()))));
  }
  setup(c);
}

std::unique_ptr<Conn> Pool::acquire() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return !idle_.empty() || open_ < kPoolSize; });
  if (!idle_.empty()) {
    std::unique_ptr<Conn> c = std::move(idle_.back());
    idle_.pop_back();
    c->used = false;
    return c;
  }
  ++open_;
  lock.unlock();
  try {
    return connect();
  } catch (...) {
    lock.lock();
    --open_;
    cv_.notify_one();
    throw;
  }
}

void Pool::release(std::unique_ptr<Conn> c) {
  if (c->ok() && PQtransactionStatus(c->get()) != PQTRANS_IDLE) {
    ResultPtr(PQexec(c->get(), "ROLLBACK"));  // left in a transaction by a failure
  }
  bool keep = c->ok() && PQtransactionStatus(c->get()) == PQTRANS_IDLE;
  if (!keep) c.reset();  // closed outside the lock
  std::lock_guard lock(mu_);
  if (keep)
    idle_.push_back(std::move(c));
  else
    --open_;
  cv_.notify_one();
}

void Pool::setup(Conn& c) const {
  PQsetNoticeProcessor(
      c.get(), [](void*, const char*) {}, nullptr);
  // Shortest exact float output, whatever the server's default.
  ResultPtr r(PQexec(c.get(), "SET extra_float_digits = 3"));
  if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
    throw storage_error("PostgreSQL (" + where_ +
                        "): " + one_line(redact(PQerrorMessage(c.get()))));
  }
}

}  // namespace llmproxy::storage::pg
