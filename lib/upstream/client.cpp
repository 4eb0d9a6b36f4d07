#include "lib/upstream/client.h"

#include "lib/util/send.h"
#include "lib/version.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace llmproxy::upstream {
namespace {

bool is_stale_socket_error(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe ||
         ec == net::ssl::error::stream_truncated;
}

std::string pool_key(const providers::UpstreamRequest& req) {
  return (req.tls ? "https://" : "http://") + req.host + ":" + req.port;
}

// Runs `op` on the plain or the TLS stream, whichever the connection has.
template <class Op>
auto on_stream(Conn& c, Op&& op) {
  return c.tls ? op(*c.tls) : op(*c.plain);
}

// The request line and headers, serialised once into one buffer: the request
// goes out in a single gather write (header + body) instead of beast's
// per-field buffer sequence.
void serialize_head(const providers::UpstreamRequest& req, std::string& head) {
  bool default_port = (req.tls && req.port == "443") || (!req.tls && req.port == "80");
  bool own_user_agent = false;
  for (const auto& [name, value] : req.headers)
    own_user_agent |= beast::iequals(name, "user-agent");
  head.clear();
  head.reserve(160 + req.target.size() + req.host.size());
  head.append("POST ").append(req.target).append(" HTTP/1.1\r\nHost: ").append(req.host);
  if (!default_port) head.append(":").append(req.port);
  head.append("\r\n");
  if (!own_user_agent) head.append("User-Agent: llm-proxy/" LLM_PROXY_VERSION "\r\n");
  for (const auto& [name, value] : req.headers) {
    head.append(name).append(": ").append(value).append("\r\n");
  }
  head.append("Content-Length: ").append(std::to_string(req.body.size())).append("\r\n\r\n");
}

}  // namespace

Conn::Conn(net::io_context& ioc, net::ssl::context* tls_ctx, util::Deadlines& deadlines,
           std::string k)
    : key(std::move(k)),
      plain(tls_ctx ? nullptr : std::make_unique<tcp::socket>(ioc)),
      tls(tls_ctx ? std::make_unique<beast::ssl_stream<tcp::socket>>(ioc, *tls_ctx) : nullptr),
      deadline(deadlines, lowest()) {}

std::unique_ptr<net::ssl::context> make_tls_context() {
  auto ctx = std::make_unique<net::ssl::context>(net::ssl::context::tls_client);
  ctx->set_default_verify_paths();  // the system CA store; SSL_CERT_FILE overrides
  ctx->set_verify_mode(net::ssl::verify_peer);
  ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                   net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                   net::ssl::context::no_tlsv1_1);
  return ctx;
}

std::unique_ptr<Conn> Pool::take_idle(const std::string& key) {
  auto it = idle_.find(key);
  if (it == idle_.end() || it->second.empty()) return nullptr;
  std::unique_ptr<Conn> conn = std::move(it->second.back());
  it->second.pop_back();
  conn->reused = true;
  return conn;
}

void Pool::give_back(std::unique_ptr<Conn> conn) {
  auto& list = idle_[conn->key];
  if (list.size() < max_idle_) list.push_back(std::move(conn));
}

std::unique_ptr<Conn> Pool::make(const providers::UpstreamRequest& req, const std::string& key) {
  return std::make_unique<Conn>(ioc_, req.tls ? &tls_ctx_ : nullptr, deadlines_, key);
}

Exchange::~Exchange() = default;

Failure Exchange::fail(Failure f, const beast::error_code& ec, const char* what) {
  if (cancelled_) f = Failure::kCancelled;
  else if (conn_ && conn_->deadline.expired()) f = Failure::kTimeout;
  error_ = std::string(what) + ": " + ec.message();
  return f;
}

net::awaitable<Failure> Exchange::start(const providers::UpstreamRequest& req,
                                        std::chrono::milliseconds timeout) {
  timeout_ = timeout;
  key_ = pool_key(req);
  conn_ = pool_.take_idle(key_);
  if (conn_) {
    Failure f = co_await attempt(req);
    // The upstream may have closed an idle connection just as we reused it;
    // nothing of the request was processed then, so one fresh retry is safe.
    if (f != Failure::kBroken || cancelled_ || !retry_fresh_) co_return f;
  }
  conn_ = pool_.make(req, key_);
  co_return co_await attempt(req);
}

net::awaitable<Failure> Exchange::attempt(const providers::UpstreamRequest& req) {
  using net::redirect_error;
  using net::use_awaitable;
  beast::error_code ec;
  retry_fresh_ = false;
  Conn& c = *conn_;

  if (!c.reused) {
    net::ip::tcp::resolver resolver(co_await net::this_coro::executor);
    auto endpoints = co_await resolver.async_resolve(req.host, req.port,
                                                     redirect_error(use_awaitable, ec));
    if (ec) co_return fail(Failure::kConnect, ec, ("cannot resolve " + req.host).c_str());
    c.deadline.arm(timeout_);
    co_await net::async_connect(c.lowest(), endpoints, redirect_error(use_awaitable, ec));
    if (ec) co_return fail(Failure::kConnect, ec, ("cannot connect to " + key_).c_str());
    c.lowest().set_option(net::ip::tcp::no_delay(true), ec);
    c.lowest().non_blocking(true, ec);  // for util::send_all
    if (c.tls) {
      if (!SSL_set_tlsext_host_name(c.tls->native_handle(), req.host.c_str())) {
        co_return fail(Failure::kConnect, beast::error_code(static_cast<int>(::ERR_get_error()),
                                                            net::error::get_ssl_category()),
                       "TLS SNI");
      }
      c.tls->set_verify_callback(net::ssl::host_name_verification(req.host));
      co_await c.tls->async_handshake(net::ssl::stream_base::client,
                                      redirect_error(use_awaitable, ec));
      if (ec) co_return fail(Failure::kConnect, ec, ("TLS handshake with " + key_).c_str());
    }
  }

  // The body is sent from the caller's buffer, not copied into the message.
  serialize_head(req, head_);
  std::array<net::const_buffer, 2> out{net::buffer(head_), net::buffer(req.body)};
  c.deadline.arm(timeout_);
  if (c.tls) co_await net::async_write(*c.tls, out, redirect_error(use_awaitable, ec));
  else co_await util::send_all(*c.plain, out, ec);
  if (ec) {
    retry_fresh_ = c.reused && is_stale_socket_error(ec);
    co_return fail(Failure::kBroken, ec, ("sending to " + key_).c_str());
  }

  parser_.emplace();
  parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
  // The deadline set before the write also covers waiting for the reply
  // header: one budget for "time to first byte", one timer update fewer.
  co_await on_stream(c, [&](auto& s) {
    return http::async_read_header(s, c.buffer, *parser_, redirect_error(use_awaitable, ec));
  });
  if (ec) {
    retry_fresh_ = c.reused && is_stale_socket_error(ec);
    co_return fail(Failure::kBroken, ec, ("reading the reply from " + key_).c_str());
  }
  co_return Failure::kNone;
}

net::awaitable<Failure> Exchange::read_some(std::string& out) {
  using net::redirect_error;
  using net::use_awaitable;
  if (done()) co_return Failure::kNone;
  beast::error_code ec;
  Conn& c = *conn_;
  char* buf = c.chunk.data();
  parser_->get().body().data = buf;
  parser_->get().body().size = c.chunk.size();
  c.deadline.arm(timeout_);
  co_await on_stream(c, [&](auto& s) {
    return http::async_read_some(s, c.buffer, *parser_, redirect_error(use_awaitable, ec));
  });
  if (ec == http::error::need_buffer) ec = {};
  out.append(buf, c.chunk.size() - parser_->get().body().size);
  if (ec) co_return fail(Failure::kBroken, ec, ("reading the reply from " + key_).c_str());
  co_return Failure::kNone;
}

net::awaitable<Failure> Exchange::read_all(std::string& out) {
  while (!done()) {
    Failure f = co_await read_some(out);
    if (f != Failure::kNone) co_return f;
  }
  co_return Failure::kNone;
}

void Exchange::finish() {
  if (!conn_) return;
  if (done() && !cancelled_ && parser_->keep_alive()) {
    conn_->deadline.disarm();
    conn_->reused = false;
    pool_.give_back(std::move(conn_));
  }
  conn_.reset();
}

void Exchange::cancel() {
  cancelled_ = true;
  if (conn_) {
    beast::error_code ec;
    conn_->lowest().close(ec);
  }
}

std::string_view Exchange::header(std::string_view name) const {
  auto it = parser_->get().find(beast::string_view(name.data(), name.size()));
  if (it == parser_->get().end()) return {};
  return {it->value().data(), it->value().size()};
}

std::string_view Exchange::header(http::field f) const {
  auto it = parser_->get().find(f);
  if (it == parser_->get().end()) return {};
  return {it->value().data(), it->value().size()};
}

}  // namespace llmproxy::upstream
