#include "lib/redis/client.h"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <array>
#include <boost/asio/async_result.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <type_traits>

#include "lib/crypto/hash.h"

namespace llmproxy::redis {

namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using error_code = boost::system::error_code;

namespace {

// ---- replies, built by the redisReader straight into Reply trees ----------
//
// hiredis calls these for every value it parses; a child is stored in its
// parent's (pre-sized) elements, and only the root is ever freed by hiredis
// (freeObject), which frees the whole tree. Returning null means "out of
// memory" to hiredis, which then fails the reader.

template <class Fill>
void* make_reply(const redisReadTask* task, Fill fill) noexcept {
  try {
    if (task->parent) {
      auto* parent = static_cast<Reply*>(task->parent->obj);
      Reply& r = parent->elements[static_cast<std::size_t>(task->idx)];
      fill(r);
      return &r;
    }
    auto r = std::make_unique<Reply>();
    fill(*r);
    return r.release();
  } catch (...) {
    return nullptr;
  }
}

void* create_string(const redisReadTask* task, char* str, size_t len) {
  return make_reply(task, [&](Reply& r) {
    r.type = task->type == REDIS_REPLY_ERROR    ? Reply::Type::kError
             : task->type == REDIS_REPLY_STATUS ? Reply::Type::kStatus
                                                : Reply::Type::kString;
    r.str.assign(str, len);
  });
}

void* create_array(const redisReadTask* task, int elements) {
  if (elements < 0) return nullptr;  // hiredis 0.14 passes other negative counts through
  return make_reply(task, [&](Reply& r) {
    r.type = Reply::Type::kArray;
    r.elements.resize(static_cast<std::size_t>(elements));
  });
}

void* create_integer(const redisReadTask* task, long long value) {
  return make_reply(task, [&](Reply& r) {
    r.type = Reply::Type::kInteger;
    r.integer = value;
  });
}

void* create_nil(const redisReadTask* task) {
  return make_reply(task, [](Reply& r) { r.type = Reply::Type::kNil; });
}

void free_reply(void* reply) {
  delete static_cast<Reply*>(reply);
}

redisReplyObjectFunctions reply_functions = {create_string, create_array, create_integer,
                                             create_nil, free_reply};

struct ReaderFree {
  void operator()(redisReader* r) const { redisReaderFree(r); }
};

// ---- commands ----------------------------------------------------------------

// argv/argvlen arrays for redisFormatCommandArgv, on the stack for the usual
// short commands.
class Argv {
 public:
  explicit Argv(std::size_t n) : n_(n) {
    if (n > kInline) {
      heap_ptrs_.resize(n);
      heap_lens_.resize(n);
    }
  }
  void set(std::size_t i, std::string_view s) {
    ptrs()[i] = s.data() ? s.data() : "";  // never a null pointer into memcpy
    lens()[i] = s.size();
  }
  std::size_t size() const { return n_; }
  const char** ptrs() { return n_ > kInline ? heap_ptrs_.data() : inline_ptrs_.data(); }
  std::size_t* lens() { return n_ > kInline ? heap_lens_.data() : inline_lens_.data(); }

 private:
  static constexpr std::size_t kInline = 16;
  std::size_t n_;
  std::array<const char*, kInline> inline_ptrs_;
  std::array<std::size_t, kInline> inline_lens_;
  std::vector<const char*> heap_ptrs_;
  std::vector<std::size_t> heap_lens_;
};

bool is_noscript(const Reply& r) {
  return r.is_error() && r.error_code() == "NOSCRIPT";
}

// `text` with every occurrence of `secret` masked (server messages about AUTH
// are not expected to echo the password; this makes sure).
std::string redact(std::string text, const std::string& secret) {
  if (secret.empty()) return text;
  for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 3))
    text.replace(at, secret.size(), "***");
  return text;
}

bool is_ip_address(const std::string& host) {
  error_code ec;
  net::ip::make_address(host, ec);
  return !ec;
}

std::string ms(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

// The first exception a completion threw while a handler delivered several
// results: the others still get theirs, the connection's state stays
// consistent, and the exception then leaves the handler (out of
// io_context::run, as any handler's would).
struct Thrown {
  std::exception_ptr first;
  void rethrow() {
    if (first) std::rethrow_exception(std::exchange(first, nullptr));
  }
};

}  // namespace

// ---- Url ----------------------------------------------------------------------

namespace {

bool starts_with_icase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  return true;
}

bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    unsigned value = 0;
    if (i + 2 >= in.size()) return false;
    auto [end, ec] = std::from_chars(in.data() + i + 1, in.data() + i + 3, value, 16);
    if (ec != std::errc() || end != in.data() + i + 3) return false;
    out += static_cast<char>(value);
    i += 2;
  }
  return true;
}

template <class Int>
bool parse_number(std::string_view text, Int& out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::string Url::describe() const {
  std::string out = tls ? "rediss://" : "redis://";
  if (!user.empty()) out.append(user).append("@");
  if (host.find(':') != std::string::npos)
    out.append("[").append(host).append("]");
  else
    out.append(host);
  out.append(":").append(std::to_string(port)).append("/").append(std::to_string(db));
  return out;
}

std::optional<Url> parse_url(std::string_view text, std::string& error) {
  Url url;
  auto fail = [&](const std::string& why) -> std::optional<Url> {
    error = "invalid Redis URL: " + why;  // never the URL itself: it may hold a password
    return std::nullopt;
  };
  std::string_view rest;
  if (starts_with_icase(text, "redis://")) {
    rest = text.substr(8);
  } else if (starts_with_icase(text, "rediss://")) {
    url.tls = true;
    rest = text.substr(9);
  } else {
    return fail("it must start with redis:// or rediss://");
  }

  // user:password@ — up to the last '@', so a password may contain one.
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view info = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = info.find(':');
    if (!percent_decode(info.substr(0, colon), url.user))
      return fail("bad percent-encoding in the user name");
    if (colon == std::string_view::npos) {
      return fail(
          "a user name needs a password (redis://user:password@host, or "
          "redis://:password@host for a password alone)");
    }
    if (!percent_decode(info.substr(colon + 1), url.password))
      return fail("bad percent-encoding in the password");
    if (!url.user.empty() && url.password.empty()) return fail("a user name needs a password");
  }

  std::string_view query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  std::string_view path;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    path = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }

  std::string_view port_text;
  bool has_port = false;
  if (rest.starts_with('[')) {
    auto close = rest.find(']');
    if (close == std::string_view::npos) return fail("unterminated [IPv6 address]");
    url.host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return fail("unexpected text after the [IPv6 address]");
      port_text = after.substr(1);
      has_port = true;
    }
  } else {
    auto colon = rest.find(':');
    if (colon != std::string_view::npos && rest.find(':', colon + 1) != std::string_view::npos)
      return fail("an IPv6 address must be in brackets: [::1]:6379");
    url.host = rest.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = rest.substr(colon + 1);
      has_port = true;
    }
  }
  if (url.host.empty()) return fail("no host");
  if (has_port) {
    unsigned port = 0;
    if (!parse_number(port_text, port) || port == 0 || port > 65535)
      return fail("port '" + std::string(port_text) + "' is not a port number");
    url.port = static_cast<std::uint16_t>(port);
  }
  if (!path.empty() && (!parse_number(path, url.db) || url.db < 0))
    return fail("the database '" + std::string(path) + "' is not a database number");

  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (param.empty()) continue;
    auto eq = param.find('=');
    std::string_view key = param.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? "" : param.substr(eq + 1);
    if (key != "cacert") return fail("unknown parameter '" + std::string(key) + "'");
    if (!url.tls) return fail("cacert applies to rediss:// URLs only");
    if (!percent_decode(value, url.cacert) || url.cacert.empty())
      return fail("cacert needs a file name");
  }
  return url;
}

// ---- Reply, Result -------------------------------------------------------------

std::string_view Reply::error_code() const {
  if (type != Type::kError) return {};
  std::string_view s = str;
  return s.substr(0, s.find(' '));
}

std::string Reply::to_string() const {
  switch (type) {
    case Type::kNil:
      return "nil";
    case Type::kInteger:
      return std::to_string(integer);
    case Type::kString:
      return "\"" + str + "\"";
    case Type::kStatus:
      return "+" + str;
    case Type::kError:
      return "-" + str;
    case Type::kArray: {
      std::string out = "[";
      for (std::size_t i = 0; i < elements.size(); ++i)
        out.append(i ? ", " : "").append(elements[i].to_string());
      return out + "]";
    }
  }
  return "?";
}

const std::string& Result::failure_message() const {
  static const std::string none;
  const Failure* f = std::get_if<Failure>(&v_);
  return f ? f->message : none;
}

std::string Result::to_string() const {
  return failed() ? "transport failure: " + failure_message() : reply().to_string();
}

// ---- Command, Script -----------------------------------------------------------

void Command::Free::operator()(char* p) const {
  std::free(p);
}

// RESP's request encoding: *<argc>, then $<len> and the bytes per argument.
// Written here rather than with hiredis's redisFormatCommandArgv, which
// sprintf()s every length: measured, that was most of the client's CPU per
// admission (an EVALSHA has some twenty arguments).
void Command::format(std::size_t argc, const char* const* argv, const std::size_t* lens) {
  if (argc == 0) return;  // "*0\r\n" gets no reply at all: never send it
  constexpr std::size_t kHead = 1 + 20 + 2;  // '*' or '$', a 64-bit count, CRLF
  std::size_t total = kHead;
  for (std::size_t i = 0; i < argc; ++i) total += kHead + lens[i] + 2;
  char* out = static_cast<char*>(std::malloc(total));
  if (!out) return;
  char* p = out;
  auto head = [&p](char kind, std::size_t n) {
    *p++ = kind;
    p = std::to_chars(p, p + 20, n).ptr;
    *p++ = '\r';
    *p++ = '\n';
  };
  head('*', argc);
  for (std::size_t i = 0; i < argc; ++i) {
    head('$', lens[i]);
    if (lens[i]) std::memcpy(p, argv[i], lens[i]);
    p += lens[i];
    *p++ = '\r';
    *p++ = '\n';
  }
  data_.reset(out);
  size_ = static_cast<std::size_t>(p - out);
}

Command::Command(ArgsView args) {
  Argv argv(args.size());
  for (std::size_t i = 0; i < args.size(); ++i) argv.set(i, args[i]);
  format(argv.size(), argv.ptrs(), argv.lens());
}

Command Command::evalsha(std::string_view sha1, ArgsView keys, ArgsView args) {
  char numkeys[24];
  auto end = std::to_chars(numkeys, numkeys + sizeof numkeys, keys.size()).ptr;
  Argv argv(3 + keys.size() + args.size());
  argv.set(0, "EVALSHA");
  argv.set(1, sha1);
  argv.set(2, std::string_view(numkeys, static_cast<std::size_t>(end - numkeys)));
  std::size_t i = 3;
  for (std::size_t k = 0; k < keys.size(); ++k) argv.set(i++, keys[k]);
  for (std::size_t a = 0; a < args.size(); ++a) argv.set(i++, args[a]);
  Command cmd;
  cmd.format(argv.size(), argv.ptrs(), argv.lens());
  return cmd;
}

struct detail::ScriptBody {
  std::string source;
  std::string sha1;
  Command load;  // SCRIPT LOAD source, encoded once
};

Script::Script(std::string source) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(source.data(), source.size(), digest, &len, EVP_sha1(), nullptr) != 1)
    throw std::runtime_error("SHA-1 failed");
  std::string sha1 = crypto::hex(std::string_view(reinterpret_cast<char*>(digest), len));
  Command load{"SCRIPT", "LOAD", source};
  body_ = std::make_shared<const detail::ScriptBody>(
      detail::ScriptBody{std::move(source), std::move(sha1), std::move(load)});
}

const std::string& Script::source() const {
  return body_->source;
}
const std::string& Script::sha1() const {
  return body_->sha1;
}

// ---- Completion: a move-only void(Result), inline when small -------------------
//
// Holds either a Callback or an awaiting coroutine's handler (move-only, so
// not a std::function), without a heap allocation for either.
struct detail::Completion {
  Completion() noexcept = default;
  template <class F, class D = std::decay_t<F>>
  requires(!std::is_same_v<D, Completion>) explicit Completion(F&& f) {
    if constexpr (sizeof(D) <= kInline && alignof(D) <= alignof(std::max_align_t) &&
                  std::is_nothrow_move_constructible_v<D>) {
      ::new (static_cast<void*>(buf_)) D(std::forward<F>(f));
      ops_ = &kInlineOps<D>;
    } else {
      ::new (static_cast<void*>(buf_)) D*(new D(std::forward<F>(f)));
      ops_ = &kHeapOps<D>;
    }
  }
  Completion(Completion&& o) noexcept : ops_(std::exchange(o.ops_, nullptr)) {
    if (ops_) ops_->relocate(o.buf_, buf_);
  }
  Completion& operator=(Completion&& o) noexcept {
    if (this != &o) {
      reset();
      ops_ = std::exchange(o.ops_, nullptr);
      if (ops_) ops_->relocate(o.buf_, buf_);
    }
    return *this;
  }
  ~Completion() { reset(); }

  explicit operator bool() const { return ops_ != nullptr; }
  // Calls the target once; this is empty afterwards (the target is gone
  // when the call returns).
  void operator()(Result r) {
    Completion self(std::move(*this));
    self.ops_->call(self.buf_, std::move(r));
  }

 private:
  static constexpr std::size_t kInline = 96;
  struct Ops {
    void (*call)(void*, Result&&);
    void (*relocate)(void* from, void* to) noexcept;
    void (*destroy)(void*) noexcept;
  };
  template <class D>
  static constexpr Ops kInlineOps = {
      [](void* p, Result&& r) { (*static_cast<D*>(p))(std::move(r)); },
      [](void* from, void* to) noexcept {
        ::new (to) D(std::move(*static_cast<D*>(from)));
        static_cast<D*>(from)->~D();
      },
      [](void* p) noexcept { static_cast<D*>(p)->~D(); }};
  template <class D>
  static constexpr Ops kHeapOps = {
      [](void* p, Result&& r) { (**static_cast<D**>(p))(std::move(r)); },
      [](void* from, void* to) noexcept { ::new (to) D*(*static_cast<D**>(from)); },
      [](void* p) noexcept { delete *static_cast<D**>(p); }};

  void reset() {
    if (ops_) std::exchange(ops_, nullptr)->destroy(buf_);
  }

  alignas(std::max_align_t) unsigned char buf_[kInline];
  const Ops* ops_ = nullptr;
};

namespace {

void deliver(detail::Completion& done, Result r, Thrown& thrown);

}  // namespace

// ---- Connection: one TCP or TLS connection and what is pending on it -----------

namespace {

struct Pending {
  enum class Kind : std::uint8_t {
    kUser,
    kAuth,  // handshake: an error reply fails the connection
    kSelect,
    kEval,       // EVALSHA: a NOSCRIPT reply sends SCRIPT LOAD + EVALSHA again
    kLoad,       // that SCRIPT LOAD: an error reply is kept for the next kEvalRetry
    kEvalRetry,  // that EVALSHA again
    kPreload,    // Options::preload's SCRIPT LOAD: the reply is not needed
  };
  detail::Completion done;
  Command command;                                   // kEval: kept to send again
  std::shared_ptr<const detail::ScriptBody> script;  // kEval
  Clock::time_point deadline{};
  Kind kind = Kind::kUser;

  Pending() = default;
  explicit Pending(Kind k) : kind(k) {}
  explicit Pending(detail::Completion d) : done(std::move(d)) {}

  // A command the client's user issued (not AUTH, SELECT or SCRIPT LOAD).
  bool counted() const {
    return kind == Kind::kUser || kind == Kind::kEval || kind == Kind::kEvalRetry;
  }
};

}  // namespace

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Client& owner, const std::shared_ptr<ssl::context>& tls)
      : owner_(&owner),
        host_(owner.url_.host),
        port_(owner.url_.port),
        name_(owner.url_.describe()),
        connect_timeout_(owner.options_.connect_timeout),
        command_timeout_(owner.options_.command_timeout),
        resolver_(owner.ioc_),
        timer_(owner.ioc_),
        tls_ctx_(tls),
        reader_(redisReaderCreateWithFunctions(&reply_functions)) {
    if (tls)
      tls_.emplace(owner.ioc_, *tls);
    else
      plain_.emplace(owner.ioc_);
  }

  bool ready() const { return ready_; }
  std::size_t pending() const { return queue_.size() - head_; }

  void start() {
    connect_deadline_ = Clock::now() + connect_timeout_;
    arm(connect_deadline_);
    if (!reader_) {
      post_failure("out of memory");
      return;
    }
    error_code ec;
    auto address = net::ip::make_address(host_, ec);
    if (!ec) {
      lowest().async_connect(
          tcp::endpoint(address, port_),
          [self = shared_from_this()](const error_code& ec) { self->on_connect(ec); });
      return;
    }
    resolver_.async_resolve(
        host_, std::to_string(port_),
        [self = shared_from_this()](const error_code& ec, tcp::resolver::results_type results) {
          if (self->closed_) return;
          if (ec) return self->fail_now("cannot resolve " + self->host_ + ": " + ec.message());
          net::async_connect(
              self->lowest(), results,
              [self](const error_code& ec, const tcp::endpoint&) { self->on_connect(ec); });
        });
  }

  // Queues a command's completion and writes its bytes (now when possible).
  void enqueue(std::string_view bytes, Pending p) {
    if (p.kind == Pending::Kind::kAuth || p.kind == Pending::Kind::kSelect) ++handshake_left_;
    p.deadline = Clock::now() + command_timeout_;
    arm(p.deadline);
    queue_.push_back(std::move(p));
    write(bytes);
  }

  // The client is going away: fail everything pending, tell it nothing.
  void abandon(const std::string& message) {
    owner_ = nullptr;
    Thrown thrown;  // exceptions from completions end here: never out of a destructor
    fail(thrown, message);
  }

 private:
  tcp::socket& lowest() { return tls_ ? tls_->next_layer() : *plain_; }

  void on_connect(const error_code& ec) {
    if (closed_) return;
    if (ec) return fail_now("cannot connect: " + ec.message());
    error_code ignore;
    lowest().set_option(tcp::no_delay(true), ignore);
    lowest().set_option(net::socket_base::keep_alive(true), ignore);
    if (!tls_) {
      lowest().non_blocking(true, ignore);  // for the direct sends in write()
      transport_up();
      return;
    }
    if (!is_ip_address(host_)) SSL_set_tlsext_host_name(tls_->native_handle(), host_.c_str());
    tls_->set_verify_callback(ssl::host_name_verification(host_));
    tls_->async_handshake(
        ssl::stream_base::client, [self = shared_from_this()](const error_code& ec) {
          if (self->closed_) return;
          if (ec) return self->fail_now("TLS handshake failed: " + self->tls_detail(ec));
          self->transport_up();
        });
  }

  std::string tls_detail(const error_code& ec) {
    std::string out = ec.message();
    long verify = SSL_get_verify_result(tls_->native_handle());
    if (verify != X509_V_OK) out.append(" (").append(X509_verify_cert_error_string(verify)) += ')';
    return out;
  }

  void transport_up() {
    connected_ = true;
    connect_deadline_ = Clock::time_point::max();
    start_read();
    flush();
    if (handshake_left_ == 0) become_ready();
  }

  void become_ready() {
    ready_ = true;
    if (owner_) owner_->connection_ready();
  }

  // ---- writing

  // Plain TCP: a non-blocking send now; the bytes it took.
  std::size_t send_now(std::string_view bytes) {
    error_code ec;
    std::size_t n = plain_->write_some(net::buffer(bytes.data(), bytes.size()), ec);
    if (ec == net::error::would_block || ec == net::error::try_again) return 0;
    if (ec) {
      post_failure("write failed: " + ec.message());
      return bytes.size();  // dropped: the connection is failing
    }
    return n;
  }

  void write(std::string_view bytes) {
    if (connected_ && !writing_ && plain_) bytes.remove_prefix(send_now(bytes));
    if (bytes.empty()) return;
    out_.append(bytes);
    if (connected_ && !writing_) start_write();
  }

  void flush() {
    if (plain_ && !out_.empty()) out_.erase(0, send_now(out_));
    if (!out_.empty()) start_write();
  }

  void start_write() {
    wbuf_.swap(out_);
    out_.clear();
    writing_ = true;
    auto done = [self = shared_from_this()](const error_code& ec, std::size_t) {
      self->on_written(ec);
    };
    if (tls_)
      net::async_write(*tls_, net::buffer(wbuf_), std::move(done));
    else
      net::async_write(*plain_, net::buffer(wbuf_), std::move(done));
  }

  void on_written(const error_code& ec) {
    writing_ = false;
    wbuf_.clear();
    if (closed_) return;
    if (ec) return fail_now("write failed: " + ec.message());
    if (!out_.empty()) start_write();
  }

  // A failure found inside a call that must not complete anything itself
  // (the command being issued is still in its caller's hands).
  void post_failure(std::string message) {
    net::post(timer_.get_executor(), [self = shared_from_this(), message = std::move(message)] {
      self->fail_now(message);
    });
  }

  // ---- reading

  void start_read() {
    auto done = [self = shared_from_this()](const error_code& ec, std::size_t n) {
      self->on_read(ec, n);
    };
    if (tls_)
      tls_->async_read_some(net::buffer(rbuf_), std::move(done));
    else
      plain_->async_read_some(net::buffer(rbuf_), std::move(done));
  }

  void on_read(const error_code& ec, std::size_t n) {
    if (closed_) return;
    if (ec) {
      // The server closing a connection nothing is waiting on (its idle
      // timeout, a restart between commands) is not a failure: the next
      // command connects again.
      bool idle = pending() == 0 && out_.empty() && !writing_ && ready_;
      bool closed_by_peer = ec == net::error::eof || ec == ssl::error::stream_truncated;
      return fail_now(
          closed_by_peer ? "connection closed by the server" : "read failed: " + ec.message(),
          !idle);
    }
    Thrown thrown;
    redisReaderFeed(reader_.get(), rbuf_.data(), n);
    for (;;) {
      void* obj = nullptr;
      if (redisReaderGetReply(reader_.get(), &obj) != REDIS_OK) {
        fail(thrown, std::string("protocol error: ") + reader_->errstr);
        break;
      }
      if (!obj) {
        start_read();
        break;
      }
      std::unique_ptr<Reply> reply(static_cast<Reply*>(obj));
      if (pending() == 0) {
        fail(thrown, "protocol error: a reply to no command");
        break;
      }
      on_reply(pop(), std::move(*reply), thrown);
      if (closed_) break;  // a completion or the reply closed the connection
    }
    thrown.rethrow();
  }

  Pending pop() {
    Pending p = std::move(queue_[head_++]);
    if (head_ == queue_.size()) {
      queue_.clear();
      head_ = 0;
    } else if (head_ >= 64 && head_ * 2 >= queue_.size()) {
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
    return p;
  }

  void on_reply(Pending p, Reply reply, Thrown& thrown) {
    using Kind = Pending::Kind;
    switch (p.kind) {
      case Kind::kAuth:
      case Kind::kSelect:
        if (reply.is_error()) {
          std::string what = p.kind == Kind::kAuth ? "AUTH failed: " : "SELECT failed: ";
          fail(thrown, what + redact(reply.str, owner_ ? owner_->url_.password : ""));
        } else if (--handshake_left_ == 0 && connected_) {
          become_ready();
        }
        return;
      case Kind::kLoad:
        if (reply.is_error()) load_error_ = std::move(reply);
        return;
      case Kind::kPreload:
        return;  // a script that does not load says why when it is evaluated
      case Kind::kEval:
        if (is_noscript(reply)) {
          // The server's script cache is empty (a restart, SCRIPT FLUSH):
          // load the script and run it again, pipelined.
          std::string_view evalsha = p.command.bytes();
          enqueue(p.script->load.bytes(), Pending(Kind::kLoad));
          p.kind = Kind::kEvalRetry;
          enqueue(evalsha, std::move(p));
          if (owner_) ++owner_->stats_.commands;  // the SCRIPT LOAD
          return;
        }
        break;
      case Kind::kEvalRetry:
        if (load_error_) {  // the script did not load: its error says more than NOSCRIPT
          reply = std::move(*load_error_);
          load_error_.reset();
        }
        break;
      case Kind::kUser:
        break;
    }
    deliver(p.done, Result(std::move(reply)), thrown);
  }

  // ---- timeouts
  //
  // One timer, armed lazily: it wakes at the earliest deadline it was set
  // for and then looks at the oldest pending command (deadlines grow in
  // queue order) and the connect deadline. Issuing a command while it is
  // armed for an earlier time costs nothing.

  void arm(Clock::time_point at) {
    if (timer_waiting_ && timer_at_ <= at) return;
    timer_at_ = at;
    timer_.expires_at(at);  // a wait already under way completes, stale
    timer_waiting_ = true;
    timer_.async_wait([self = shared_from_this(), seq = ++timer_seq_](const error_code&) {
      self->on_timer(seq);
    });
  }

  void on_timer(unsigned seq) {
    if (closed_ || seq != timer_seq_) return;
    timer_waiting_ = false;
    Clock::time_point next = connect_deadline_;
    if (pending() > 0) next = std::min(next, queue_[head_].deadline);
    if (next == Clock::time_point::max()) return;
    if (next > Clock::now()) {
      arm(next);
      return;
    }
    if (next == connect_deadline_)
      return fail_now("timed out connecting (" + ms(connect_timeout_) + ")");
    fail_now("no reply within " + ms(command_timeout_) + (connected_ ? "" : " (still connecting)"));
  }

  // ---- the end

  // fail() from a handler: what a completion threw leaves the handler after.
  void fail_now(const std::string& what, bool failure = true) {
    Thrown thrown;
    fail(thrown, what, failure);
    thrown.rethrow();
  }

  // Closes the connection and fails everything pending on it. `failure`:
  // false only for an idle connection the server closed.
  void fail(Thrown& thrown, const std::string& what, bool failure = true) {
    if (closed_) return;
    auto self = shared_from_this();
    closed_ = true;
    Client* owner = std::exchange(owner_, nullptr);
    error_code ignore;
    resolver_.cancel();
    timer_.cancel();
    lowest().close(ignore);

    std::vector<Pending> queue;
    queue.swap(queue_);
    std::size_t head = std::exchange(head_, 0);
    std::size_t failed = 0;
    for (std::size_t i = head; i < queue.size(); ++i) failed += queue[i].counted() ? 1 : 0;
    std::string message = name_ + ": " + what;
    // The client first: a command issued from a completion below sees the
    // connection gone (and the client backing off).
    if (owner) owner->connection_lost(failure, message, failed);
    for (std::size_t i = head; i < queue.size(); ++i)
      deliver(queue[i].done, Result::failure(message), thrown);
  }

  Client* owner_;  // null once closed
  const std::string host_;
  const std::uint16_t port_;
  const std::string name_;  // Url::describe()
  const std::chrono::milliseconds connect_timeout_, command_timeout_;

  tcp::resolver resolver_;
  net::steady_timer timer_;
  std::shared_ptr<ssl::context> tls_ctx_;  // outlives tls_
  std::optional<tcp::socket> plain_;
  std::optional<ssl::stream<tcp::socket>> tls_;
  std::unique_ptr<redisReader, ReaderFree> reader_;
  std::array<char, 16 * 1024> rbuf_;
  std::string out_;   // not yet written
  std::string wbuf_;  // being written
  std::vector<Pending> queue_;
  std::size_t head_ = 0;
  std::optional<Reply> load_error_;
  Clock::time_point connect_deadline_ = Clock::time_point::max();
  Clock::time_point timer_at_{};
  unsigned timer_seq_ = 0;
  int handshake_left_ = 0;
  bool timer_waiting_ = false;
  bool writing_ = false;
  bool connected_ = false;  // TCP (and TLS) up
  bool ready_ = false;      // and AUTH/SELECT answered
  bool closed_ = false;
};

namespace {

void deliver(detail::Completion& done, Result r, Thrown& thrown) {
  if (!done) return;
  try {
    done(std::move(r));
  } catch (...) {
    if (!thrown.first) thrown.first = std::current_exception();
  }
}

}  // namespace

// ---- Client ------------------------------------------------------------------

Client::Client(net::io_context& ioc, Url url, Options options)
    : ioc_(ioc), url_(std::move(url)), options_(std::move(options)) {
  if (url_.host.empty()) {
    setup_error_ = "no Redis host";
    return;
  }
  if (!url_.tls) return;
  const std::string& ca = options_.ca_file.empty() ? url_.cacert : options_.ca_file;
  try {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    ctx->set_verify_mode(ssl::verify_peer);
    if (ca.empty())
      ctx->set_default_verify_paths();  // the system store; SSL_CERT_FILE overrides
    else
      ctx->load_verify_file(ca);
    tls_ = std::move(ctx);
  } catch (const std::exception& e) {
    setup_error_ = ca.empty() ? std::string("cannot set up TLS: ") + e.what()
                              : "cannot load the CA file " + ca + ": " + e.what();
  }
}

Client::~Client() {
  closing_ = true;
  if (auto conn = std::move(conn_)) conn->abandon("the Redis client was destroyed");
}

net::awaitable<Result> Client::command(Command cmd) {
  return run(std::move(cmd), nullptr);
}

net::awaitable<Result> Client::eval(const Script& script, ArgsView keys, ArgsView args) {
  return run(Command::evalsha(script.sha1(), keys, args), script.body_);
}

net::awaitable<Result> Client::run(Command cmd, ScriptBody script) {
  std::string why;
  if (!admit(cmd, why)) co_return Result::failure(std::move(why));
  co_return co_await net::async_initiate<const net::use_awaitable_t<>&, void(Result)>(
      [&](auto handler) {
        issue(std::move(cmd), std::move(script), Completion(std::move(handler)));
      },
      net::use_awaitable);
}

void Client::send(Command cmd, Callback done) {
  std::string why;
  if (!admit(cmd, why)) return refuse(std::move(done), std::move(why));
  issue(std::move(cmd), nullptr, done ? Completion(std::move(done)) : Completion());
}

void Client::send_eval(const Script& script, ArgsView keys, ArgsView args, Callback done) {
  Command cmd = Command::evalsha(script.sha1(), keys, args);
  std::string why;
  if (!admit(cmd, why)) return refuse(std::move(done), std::move(why));
  issue(std::move(cmd), script.body_, done ? Completion(std::move(done)) : Completion());
}

bool Client::admit(const Command& cmd, std::string& why) {
  if (closing_) {
    why = "the Redis client was destroyed";
  } else if (!cmd.valid()) {
    why = "redis: an empty command (or no memory to encode it)";
  } else if (conn_) {
    return true;
  } else if (!setup_error_.empty()) {
    why = url_.describe() + ": " + setup_error_;
    set_healthy(false, why);
  } else if (Clock::now() < down_until_) {
    why = last_error_ + " (down: no new attempt within " + ms(options_.retry_interval) +
          " of the failure)";
  } else {
    conn_ = std::make_shared<Connection>(*this, tls_);
    ++stats_.connect_attempts;
    if (!url_.password.empty()) {
      Command auth = url_.user.empty() ? Command{"AUTH", url_.password}
                                       : Command{"AUTH", url_.user, url_.password};
      conn_->enqueue(auth.bytes(), Pending(Pending::Kind::kAuth));
    }
    if (url_.db != 0) {
      std::string db = std::to_string(url_.db);
      conn_->enqueue(Command{"SELECT", db}.bytes(), Pending(Pending::Kind::kSelect));
    }
    for (const Script& script : options_.preload)
      conn_->enqueue(script.body_->load.bytes(), Pending(Pending::Kind::kPreload));
    conn_->start();
    return true;
  }
  ++stats_.transport_failures;
  return false;
}

void Client::issue(Command cmd, ScriptBody script, Completion done) {
  ++stats_.commands;
  std::string_view bytes = cmd.bytes();  // the buffer stays where it is when cmd moves
  Pending p(std::move(done));
  if (script) {
    p.kind = Pending::Kind::kEval;
    p.command = std::move(cmd);
    p.script = std::move(script);
  }
  conn_->enqueue(bytes, std::move(p));
}

void Client::refuse(Callback done, std::string why) {
  if (!done) return;
  net::post(ioc_, [done = std::move(done), why = std::move(why)] { done(Result::failure(why)); });
}

void Client::connection_ready() {
  ++stats_.connections;
  set_healthy(true, url_.describe() + ": connected");
}

void Client::connection_lost(bool failure, const std::string& message, std::size_t failed) {
  conn_.reset();  // the connection's own handler keeps it alive
  stats_.transport_failures += failed;
  if (!failure) return;
  down_until_ = Clock::now() + options_.retry_interval;
  last_error_ = message;
  set_healthy(false, message);
}

void Client::set_healthy(bool healthy, const std::string& message) {
  if (healthy_ == healthy) return;
  healthy_ = healthy;
  if (!options_.on_state_change) return;
  try {
    options_.on_state_change(healthy, message);
  } catch (...) {
    // A logging hook that throws must not leave the connection half updated.
  }
}

Client::State Client::state() const {
  if (conn_) return conn_->ready() ? State::kConnected : State::kConnecting;
  return healthy_ ? State::kIdle : State::kDown;
}

bool Client::backing_off() const {
  return !conn_ && Clock::now() < down_until_;
}

std::size_t Client::pending() const {
  return conn_ ? conn_->pending() : 0;
}

}  // namespace llmproxy::redis
