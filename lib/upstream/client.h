// The upstream HTTP client: HTTP/1.1 over TCP or TLS (certificates verified
// against the system store, SNI, host name check), keep-alive connections
// pooled per upstream host, a timeout on every step, and nothing blocking.
// One Pool per worker thread: pooled connections never change threads, so no
// locks and no strands are needed.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "lib/providers/provider.h"
#include "lib/util/deadlines.h"

namespace llmproxy::upstream {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

using tcp = net::ip::tcp;

// One connection to an upstream host.
struct Conn {
  // tls_ctx: null for plain HTTP.
  Conn(net::io_context& ioc, net::ssl::context* tls_ctx, util::Deadlines& deadlines,
       std::string key);

  tcp::socket& lowest() { return tls ? tls->next_layer() : *plain; }

  std::string key;  // "https://host:port"
  std::unique_ptr<tcp::socket> plain;
  // beast's ssl_stream coalesces a gather write into one TLS record.
  std::unique_ptr<beast::ssl_stream<tcp::socket>> tls;
  util::Deadline deadline;
  beast::flat_buffer buffer;
  bool reused = false;
  // Where decoded body bytes land before they are handed out: kept with the
  // connection, not on a coroutine frame, so reads allocate nothing.
  std::array<char, 16 * 1024> chunk;
};

class Pool {
 public:
  Pool(net::io_context& ioc, net::ssl::context& tls_ctx, util::Deadlines& deadlines,
       std::size_t max_idle_per_host = 256)
      : ioc_(ioc), tls_ctx_(tls_ctx), deadlines_(deadlines), max_idle_(max_idle_per_host) {}

  // An idle connection to the request's host, or nullptr.
  std::unique_ptr<Conn> take_idle(const std::string& key);
  void give_back(std::unique_ptr<Conn> conn);
  std::unique_ptr<Conn> make(const providers::UpstreamRequest& req, const std::string& key);
  util::Deadlines& deadlines() { return deadlines_; }

 private:
  net::io_context& ioc_;
  net::ssl::context& tls_ctx_;
  util::Deadlines& deadlines_;
  std::size_t max_idle_;
  std::unordered_map<std::string, std::vector<std::unique_ptr<Conn>>> idle_;
};

enum class Failure { kNone, kConnect, kTimeout, kBroken, kCancelled };

// One request/response exchange with an upstream. Usage:
//   Exchange ex(pool);
//   co_await ex.start(req, timeout);      // connect/reuse, send, read header
//   while (!ex.done()) co_await ex.read_some(out);
//   ex.finish();                          // back to the pool if reusable
// The Exchange is also the view adapters read the reply's headers through
// (providers::HeaderView): lookups go to the parsed header, nothing is
// copied, and it stays valid after finish() for as long as the Exchange.
class Exchange final : public providers::HeaderView {
 public:
  explicit Exchange(Pool& pool) : pool_(pool) {}
  ~Exchange();

  net::awaitable<Failure> start(const providers::UpstreamRequest& req,
                                std::chrono::milliseconds timeout);
  // Appends the next decoded body bytes to `out`.
  net::awaitable<Failure> read_some(std::string& out);
  // Reads the rest of the body into `out`.
  net::awaitable<Failure> read_all(std::string& out);
  void finish();
  // Aborts the exchange (e.g. the client went away); safe to call any time
  // from the same thread.
  void cancel();

  bool done() const { return parser_ && parser_->is_done(); }
  int status() const { return static_cast<int>(parser_->get().result_int()); }
  std::string_view header(http::field f) const;
  std::string_view header(std::string_view name) const;
  std::string_view get(std::string_view name) const override {
    return parser_ ? header(name) : std::string_view();
  }
  const std::string& error() const { return error_; }

 private:
  net::awaitable<Failure> attempt(const providers::UpstreamRequest& req);
  Failure fail(Failure f, const beast::error_code& ec, const char* what);

  Pool& pool_;
  std::unique_ptr<Conn> conn_;
  std::optional<http::response_parser<http::buffer_body>> parser_;
  std::chrono::milliseconds timeout_{0};
  std::string key_;
  std::string head_;  // the request line and headers being sent
  std::string error_;
  bool cancelled_ = false;
  bool retry_fresh_ = false;  // the last attempt failed on a stale pooled connection
};

// TLS client context with the system's CA store and peer verification.
std::unique_ptr<net::ssl::context> make_tls_context();

}  // namespace llmproxy::upstream
