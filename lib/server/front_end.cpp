// Routes:
//   /health, /healthz, /health/ready, /readyz, /metrics   local_endpoints.h
//   /admin/api/…                                          local_endpoints.h (admin thread)
//   /admin, /admin/…                                      dashboard_route.h
//   GET /v1/models                                        pipeline.h
//   POST on an inbound API's path (lib/inbound)           pipeline.h
// anything else is refused here (404, 405; malformed HTTP 400/408/413/414/431),
// with an access-log line and, for a good key, a usage record.
#include "lib/server/front_end.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>

#include "lib/inbound/inbound_api.h"
#include "lib/server/call.h"
#include "lib/server/dashboard_route.h"
#include "lib/server/local_endpoints.h"
#include "lib/server/pipeline.h"

namespace llmproxy::server {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
using net::redirect_error;
using net::use_awaitable;
using Parser = http::request_parser<http::string_body>;

// nginx's defaults: a request line over 8 KiB is 414, a header block over
// 64 KiB (ours; nginx counts per line) 431.
constexpr std::size_t kMaxRequestTarget = 8 * 1024;
constexpr std::size_t kMaxHeaderBlock = 64 * 1024;

// A request the front end refuses before it reaches a route.
struct Refusal {
  http::status status;
  std::string message;
  std::string code;
};

// What a failed read means for the client, or nullopt when there is nobody
// to answer (closed, idle timeout, socket error).
std::optional<Refusal> refusal_for(const beast::error_code& ec, bool timed_out,
                                   const Parser& parser, const beast::flat_buffer& buffer,
                                   std::size_t max_body) {
  if (timed_out) {
    if (!parser.got_some()) return std::nullopt;  // an idle keep-alive connection
    return Refusal{http::status::request_timeout, "the request was not received in time",
                   "request_timeout"};
  }
  if (ec == http::error::body_limit) {
    return Refusal{http::status::payload_too_large,
                   "the request body exceeds the limit of " + std::to_string(max_body) + " bytes",
                   "request_too_large"};
  }
  if (ec == http::error::header_limit) {
    auto data = static_cast<const char*>(buffer.data().data());
    bool line_ended = std::string_view(data, buffer.size()).find("\r\n") != std::string_view::npos;
    if (!line_ended) {
      return Refusal{http::status::uri_too_long, "the request line is too long", "uri_too_long"};
    }
    return Refusal{http::status::request_header_fields_too_large,
                   "the request headers exceed " + std::to_string(kMaxHeaderBlock) + " bytes",
                   "headers_too_large"};
  }
  if (ec == http::error::end_of_stream || ec == http::error::partial_message) return std::nullopt;
  if (ec.category() == beast::http::make_error_code(http::error::bad_method).category()) {
    return Refusal{http::status::bad_request, "malformed HTTP request: " + ec.message(),
                   "bad_request"};
  }
  return std::nullopt;
}

// Answers a refused request and records it (with the key, if one is good).
net::awaitable<void> refuse(Client& c, const Request& req, Refusal refusal, bool keep_alive) {
  Call call(c, req, nullptr);
  call.keep_alive = call.keep_alive && keep_alive;
  auth::AuthStatus ignored;
  call.identify(ignored);
  co_await reply_error(call, refusal.status, refusal.message, "invalid_request_error",
                       refusal.code);
}

// As nginx's lingering close: after refusing a request whose rest may still
// be arriving, what comes is read and dropped for a short while before
// closing, so that the client reads the answer instead of a reset.
net::awaitable<void> linger(Client& c) {
  beast::error_code ec;
  c.socket.shutdown(net::ip::tcp::socket::shutdown_send, ec);
  c.deadline.arm(std::chrono::seconds(5));
  std::array<char, 16 * 1024> drop;
  while (!ec)
    co_await c.socket.async_read_some(net::buffer(drop), redirect_error(use_awaitable, ec));
  c.deadline.disarm();
}

// Returns whether the connection may serve another request.
net::awaitable<bool> dispatch(Client& c, const Request& req) {
  std::string_view target(req.target().data(), req.target().size());
  std::string_view path = target.substr(0, target.find('?'));
  std::string_view route = path.starts_with("/v1/") ? path.substr(3) : path;
  bool keep_alive = req.keep_alive() && !c.ctx.draining.load();
  auto only = [&](http::verb verb) { return req.method() == verb; };

  std::optional<Response> local;
  if (route == "/health" || route == "/healthz") {
    local = health(c.ctx, keep_alive);
  } else if (route == "/health/ready" || route == "/readyz") {
    local = readiness(c.ctx, keep_alive);
  } else if (route == "/metrics" && only(http::verb::get)) {
    local = metrics(c.ctx, keep_alive);
  } else if (route == "/admin/api" || route.starts_with("/admin/api/")) {
    co_await admin_api(c, req, route, keep_alive);
    co_return keep_alive;
  } else if ((local = dashboard_response(req, keep_alive))) {  // /admin, /admin/…
  } else if (route == "/models" && only(http::verb::get)) {
    Call call(c, req, nullptr);
    co_await list_models(call);
    co_return call.keep_alive;
  } else if (const inbound::InboundApi* api = inbound::api_for(path)) {
    if (!only(http::verb::post)) {
      // (Named, not a temporary in the co_await: GCC 12 destroys temporaries
      // with string members there twice.)
      Refusal wrong_method{http::status::method_not_allowed, "use POST for " + std::string(path),
                           "method_not_allowed"};
      co_await refuse(c, req, std::move(wrong_method), keep_alive);
      co_return keep_alive;
    }
    Call call(c, req, api);
    co_await proxy(call);
    co_return call.keep_alive;
  } else {
    Refusal unknown{
        http::status::not_found,
        "unknown request URL: " + std::string(req.method_string()) + " " + std::string(path),
        "unknown_url"};
    co_await refuse(c, req, std::move(unknown), keep_alive);
    co_return keep_alive;
  }
  co_await write(c, *local);
  co_return keep_alive;
}

}  // namespace

net::awaitable<void> run_session(net::ip::tcp::socket socket, Context& ctx, upstream::Pool& pool,
                                 limits::Gate& gate) {
  beast::error_code ec;
  socket.set_option(net::ip::tcp::no_delay(true), ec);
  socket.non_blocking(true, ec);  // for util::send_all
  Client c(std::move(socket), ctx, pool, gate);

  for (;;) {
    Parser parser;
    parser.body_limit(ctx.options.max_body_bytes);
    parser.header_limit(kMaxHeaderBlock);

    // A request must arrive within the read timeout; a client that sent part
    // of one gets a 408, an idle keep-alive connection is simply closed.
    c.deadline.arm(ctx.options.client_read_timeout);
    co_await http::async_read(c.socket, c.buffer, parser, redirect_error(use_awaitable, ec));
    c.deadline.disarm();
    bool timed_out = c.deadline.expired();

    std::optional<Refusal> refused;
    if (ec || timed_out) {
      refused = refusal_for(ec, timed_out, parser, c.buffer, ctx.options.max_body_bytes);
      if (!refused) break;  // closed, or idle: nobody to answer
    } else if (parser.get().target().size() > kMaxRequestTarget) {
      refused = Refusal{http::status::uri_too_long, "the request URL is too long", "uri_too_long"};
    }
    if (refused) {
      ctx.in_flight.fetch_add(1);
      co_await refuse(c, parser.get(), std::move(*refused), false);
      ctx.in_flight.fetch_sub(1);
      if (!timed_out) co_await linger(c);
      break;
    }

    ctx.in_flight.fetch_add(1);
    Request req = parser.release();
    bool again = co_await dispatch(c, req);
    ctx.in_flight.fetch_sub(1);
    if (!again || ctx.draining.load() || !c.socket.is_open()) break;
  }
  c.socket.shutdown(net::ip::tcp::socket::shutdown_send, ec);
  c.socket.close(ec);
}

}  // namespace llmproxy::server
