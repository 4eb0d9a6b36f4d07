// An asynchronous Redis client for one event loop (one per serve worker).
//
// The protocol comes from Debian's hiredis, only its transport-independent
// parts: redisFormatCommandArgv encodes commands, the redisReader parses
// replies (straight into Reply trees, see client.cpp). The I/O is Asio's:
// plain TCP for redis://, TLS (certificate and host name verified against the
// system CA store, or a CA file) for rediss://.
//
// Pipelined: a command is written as soon as it is issued (a direct
// non-blocking send on plain TCP when nothing is queued) and replies are
// matched first in, first out. The connection is opened lazily by the first
// command, with AUTH and SELECT pipelined before it. A timeout (connect or
// per command) or any transport error closes the connection and fails every
// pending command with a transport failure; for retry_interval after that,
// commands fail at once without touching the network, and the first command
// after it connects again. The server closing a connection nothing is waiting
// on (its idle timeout, a restart between commands) is not a failure: the
// next command connects again at once. Nothing is thrown for transport
// problems; error replies (-ERR …) are replies of type kError.
//
// Not thread-safe: use a Client only from the thread that runs its
// io_context. Completions run inline on that thread when the reply (or the
// failure) arrives, except a command refused at once by send()/send_eval(),
// whose callback is posted (never run inside the call). Destroying the Client
// fails whatever is pending (callbacks and awaiting coroutines get a
// transport failure, inside the destructor); nothing runs after that which
// touches the Client. The Client must outlive the awaitables it returned, and
// go before its io_context.
// Passwords never appear in a message, log line or Url::describe().
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace boost::asio::ssl {
class context;
}

namespace llmproxy::redis {

namespace net = boost::asio;

namespace detail {
struct Completion;  // a move-only void(Result): a Callback or an awaiting coroutine
struct ScriptBody;
}  // namespace detail

// redis://[user:password@]host[:port][/db] or rediss://…[?cacert=/path/ca.pem].
// Port 6379 and db 0 by default; user and password are percent-decoded. A
// user name needs a password (AUTH user password); a password alone is
// AUTH password.
struct Url {
  bool tls = false;
  std::string host;
  std::uint16_t port = 6379;
  std::string user;
  std::string password;
  int db = 0;
  std::string cacert;  // rediss only: the CA file to verify the server with

  // "rediss://user@host:port/db": never the password.
  std::string describe() const;
};

// nullopt and `error` (which never contains the password) when `text` is not
// a Redis URL.
std::optional<Url> parse_url(std::string_view text, std::string& error);

// One reply, copied out of the wire format once.
struct Reply {
  enum class Type : std::uint8_t { kNil, kInteger, kString, kStatus, kError, kArray };

  Type type = Type::kNil;
  long long integer = 0;        // kInteger
  std::string str;              // kString (bulk), kStatus, kError
  std::vector<Reply> elements;  // kArray

  bool is_nil() const { return type == Type::kNil; }
  bool is_error() const { return type == Type::kError; }
  // For an error reply, its first word ("ERR", "NOSCRIPT", "WRONGPASS"…).
  std::string_view error_code() const;
  // A compact rendering for logs and test messages: 42, "text", +OK,
  // -ERR …, nil, [a, b].
  std::string to_string() const;
};

// A reply, or a transport failure (not connected, timeout, connection lost,
// client destroyed) with a message saying what happened.
class Result {
 public:
  Result() = default;
  Result(Reply reply) : v_(std::move(reply)) {}  // NOLINT: a reply is a result
  static Result failure(std::string message) { return Result(Failure{std::move(message)}); }

  bool has_reply() const { return v_.index() == 0; }
  bool failed() const { return v_.index() == 1; }
  // A reply that is not an error reply.
  bool ok() const { return has_reply() && !reply().is_error(); }
  // The transport failure's message ("" when there is a reply).
  const std::string& failure_message() const;
  // Only when has_reply().
  const Reply& reply() const { return std::get<Reply>(v_); }
  Reply& reply() { return std::get<Reply>(v_); }
  const Reply* operator->() const { return &reply(); }
  // The reply's to_string(), or "transport failure: <message>".
  std::string to_string() const;

 private:
  struct Failure {
    std::string message;
  };
  explicit Result(Failure f) : v_(std::move(f)) {}
  std::variant<Reply, Failure> v_;
};

using Callback = std::function<void(Result)>;

template <class T>
concept Arg = std::is_convertible_v<const T&, std::string_view>;

// A view of some arguments, read only while the call it is passed to runs:
// {key, "1"}, a std::vector<std::string>, a span of string_views.
class ArgsView {
 public:
  ArgsView() = default;
  // A view of the list's array, which lives as long as the full expression
  // the braces are in: the call this is an argument of.
  ArgsView(std::initializer_list<std::string_view> list)
      : views_(std::data(list)), n_(list.size()) {}
  ArgsView(std::span<const std::string_view> views) : views_(views.data()), n_(views.size()) {}
  ArgsView(const std::vector<std::string_view>& views) : views_(views.data()), n_(views.size()) {}
  ArgsView(const std::vector<std::string>& strings)
      : strings_(strings.data()), n_(strings.size()) {}

  std::size_t size() const { return n_; }
  std::string_view operator[](std::size_t i) const { return views_ ? views_[i] : strings_[i]; }

 private:
  const std::string_view* views_ = nullptr;
  const std::string* strings_ = nullptr;
  std::size_t n_ = 0;
};

// A command encoded once (RESP, by hiredis) into one buffer: built from
// string_views without a std::string per argument, e.g.
// client.send({"INCRBY", key, "1"}). Empty (no arguments, or no memory) is
// invalid: issuing it fails without sending anything.
class Command {
 public:
  Command() = default;  // invalid
  Command(std::initializer_list<std::string_view> args) : Command(ArgsView(args)) {}
  Command(const std::vector<std::string>& args) : Command(ArgsView(args)) {}
  Command(const std::vector<std::string_view>& args) : Command(ArgsView(args)) {}
  explicit Command(ArgsView args);
  // EVALSHA sha1 numkeys keys… args…
  static Command evalsha(std::string_view sha1, ArgsView keys, ArgsView args);

  bool valid() const { return size_ != 0; }
  std::string_view bytes() const { return {data_.get(), size_}; }

 private:
  struct Free {
    void operator()(char* p) const;
  };
  void format(std::size_t argc, const char* const* argv, const std::size_t* lens);
  std::unique_ptr<char, Free> data_;
  std::size_t size_ = 0;
};

// A Lua script: its source and SHA1 (hex), for EVALSHA. Cheap to copy.
class Script {
 public:
  explicit Script(std::string source);
  const std::string& source() const;
  const std::string& sha1() const;  // lowercase hex

 private:
  friend class Client;
  std::shared_ptr<const detail::ScriptBody> body_;
};

struct Options {
  std::chrono::milliseconds connect_timeout{250};  // TCP connect and TLS handshake
  std::chrono::milliseconds command_timeout{250};  // from issue to reply
  std::chrono::milliseconds retry_interval{1000};  // after a failure: no connect attempt
  std::string ca_file;                             // rediss: overrides the URL's ?cacert=
  // SCRIPT LOAD of each, pipelined after AUTH/SELECT on every new connection
  // (their replies are not waited for): EVALSHA then finds them even on a
  // server that restarted, which always means a new connection. (eval's
  // NOSCRIPT fallback still covers a SCRIPT FLUSH on a live connection.)
  std::vector<Script> preload;
  // Called when healthy() changes: (false, why) on the first failure,
  // (true, "<url>: connected") when a connection is ready again after one.
  // Runs inline; must not destroy the Client.
  std::function<void(bool healthy, const std::string& message)> on_state_change;
};

class Connection;

class Client {
 public:
  enum class State {
    kIdle,        // no connection (none yet, or the server closed an idle one)
    kConnecting,  // connecting, TLS handshake, AUTH/SELECT under way
    kConnected,
    kDown,  // the last connection failed; see backing_off()
  };
  struct Stats {
    std::uint64_t commands = 0;            // issued to a connection
    std::uint64_t transport_failures = 0;  // commands that got a transport failure
    std::uint64_t connect_attempts = 0;
    std::uint64_t connections = 0;  // connections that got ready (after AUTH/SELECT)
  };

  Client(net::io_context& ioc, Url url, Options options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  net::awaitable<Result> command(Command cmd);
  // co_await client.command("INCRBY", key, "1"): the form for coroutines, as
  // GCC 12 cannot compile a braced list inside a co_await expression ("array
  // used as initializer"): there, build a Command, vectors or spans first.
  template <Arg First, Arg... Rest>
  net::awaitable<Result> command(const First& first, const Rest&... rest) {
    const std::string_view views[] = {std::string_view(first), std::string_view(rest)...};
    return command(Command(ArgsView(std::span<const std::string_view>(views))));
  }
  // Fire-and-forget when `done` is empty.
  void send(Command cmd, Callback done = {});

  // EVALSHA; on a NOSCRIPT reply (the server's script cache was flushed, e.g.
  // by a restart), SCRIPT LOAD and EVALSHA again, pipelined: one extra round
  // trip, once. keys and args are read before the call returns.
  net::awaitable<Result> eval(const Script& script, ArgsView keys, ArgsView args);
  void send_eval(const Script& script, ArgsView keys, ArgsView args, Callback done = {});

  State state() const;
  // False from a transport failure until a connection is ready again.
  bool healthy() const { return healthy_; }
  // Down and within retry_interval of the failure: commands fail at once.
  bool backing_off() const;
  const Stats& stats() const { return stats_; }
  std::size_t pending() const;
  const Url& url() const { return url_; }
  const Options& options() const { return options_; }

 private:
  friend class Connection;
  using Completion = detail::Completion;
  using ScriptBody = std::shared_ptr<const detail::ScriptBody>;

  net::awaitable<Result> run(Command cmd, ScriptBody script);
  // Whether `cmd` may be issued now (opening a connection if there is none);
  // `why` otherwise.
  bool admit(const Command& cmd, std::string& why);
  // Only after admit(): queues `cmd` on the connection and writes it.
  void issue(Command cmd, ScriptBody script, Completion done);
  // A refused command's callback, posted.
  void refuse(Callback done, std::string why);
  // From the connection.
  void connection_ready();
  void connection_lost(bool failure, const std::string& message, std::size_t failed);
  void set_healthy(bool healthy, const std::string& message);

  net::io_context& ioc_;
  Url url_;
  Options options_;
  std::shared_ptr<net::ssl::context> tls_;
  std::string setup_error_;  // no host, or the CA file could not be loaded
  std::shared_ptr<Connection> conn_;
  std::chrono::steady_clock::time_point down_until_{};
  std::string last_error_;
  bool healthy_ = true;
  bool closing_ = false;
  Stats stats_;
};

}  // namespace llmproxy::redis
