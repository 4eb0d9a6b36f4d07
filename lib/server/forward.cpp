#include "lib/server/forward.h"

#include "lib/server/stream_relay.h"

namespace llmproxy::server {
namespace {

namespace net = boost::asio;
using providers::Endpoint;

// An upstream's non-2xx reply, in the client's error shape with a faithful
// status; the provider's own back-off hints go along.
Response upstream_error(Call& call, const providers::Adapter& adapter, int status, std::string body,
                        const upstream::Exchange& ex) {
  const Connection& conn = *call.route.connection;
  if (status == 401 || status == 403) {
    // The provider refused the connection's own credentials: never let the
    // client mistake that for its virtual key being refused.
    return error_for(call, http::status::bad_gateway,
                     "the provider refused the credentials of connection '" + conn.name +
                         "' (HTTP " + std::to_string(status) + ")",
                     "upstream_auth_error", "upstream_auth_error");
  }
  providers::Reply r = adapter.map_error(conn, status, std::move(body), ex);
  Response res = json_response(static_cast<http::status>(r.status),
                               client_body(call, r.status, std::move(r.body)), call.keep_alive);
  for (const auto& [name, value] : r.headers) res.set(name, value);
  // Unless the adapter set its own.
  for (boost::beast::string_view hint : {"retry-after", "x-should-retry"}) {
    std::string_view v = ex.header(std::string_view(hint.data(), hint.size()));
    if (!v.empty() && res.find(hint) == res.end()) res.set(hint, std::string(v));
  }
  return res;
}

net::awaitable<void> upstream_failed(Call& call, upstream::Failure f, const std::string& detail) {
  const std::string& conn = call.route.connection->name;
  if (f == upstream::Failure::kCancelled) {  // the client went away
    call.keep_alive = false;
    call.finish(499);
    co_return;
  }
  if (f == upstream::Failure::kTimeout) {
    co_await reply_error(call, http::status::gateway_timeout,
                         "connection '" + conn + "' did not answer within its timeout",
                         "upstream_timeout", "upstream_timeout");
    co_return;
  }
  co_await reply_error(call, http::status::bad_gateway,
                       "connection '" + conn + "' failed: " + detail, "upstream_error",
                       "upstream_unavailable");
}

// Redirects are not followed (a POST body and its credentials would go
// somewhere nobody configured): the connection's endpoint needs fixing.
std::string redirect_message(const Call& call, int status, const upstream::Exchange& ex) {
  std::string message = "connection '" + call.route.connection->name + "' answered HTTP " +
                        std::to_string(status) + " (redirect";
  if (std::string_view location = ex.header(http::field::location); !location.empty())
    message += " to " + std::string(location);
  return message + "); check its --endpoint";
}

// A complete 2xx upstream reply, through the adapter to the client.
net::awaitable<void> reply_translated(Call& call, const providers::Adapter& adapter,
                                      const providers::InboundRequest& in, int status,
                                      std::string body, const upstream::Exchange& ex) {
  providers::Reply r = adapter.translate_reply(in, status, std::move(body), ex);
  r.body = client_body(call, r.status, std::move(r.body), r.content_type);
  Response res =
      json_response(static_cast<http::status>(r.status), std::move(r.body), call.keep_alive);
  res.set(http::field::content_type, r.content_type);
  for (const auto& [name, value] : r.headers) res.set(name, value);
  co_await reply(call, std::move(res), r.usage);
}

}  // namespace

net::awaitable<void> forward(Call& call, const providers::Adapter& adapter,
                             const providers::InboundRequest& in,
                             const providers::UpstreamRequest& up) {
  upstream::Exchange ex(call.client.pool);
  ClientWatch watch(call.client, ex);
  auto timeout = std::chrono::milliseconds(call.route.connection->timeout_ms);
  upstream::Failure f = co_await ex.start(up, timeout);
  if (f != upstream::Failure::kNone) {
    watch.stop();
    co_await upstream_failed(call, watch.client_gone() ? upstream::Failure::kCancelled : f,
                             ex.error());
    co_return;
  }
  int status = ex.status();
  call.outcome.upstream_status = status;
  if (status < 300 && adapter.is_stream(ex.header(http::field::content_type))) {
    co_await relay_stream(call, adapter, in, ex, watch);
    co_return;
  }
  std::string body;
  f = co_await ex.read_all(body);
  if (!call.ttft_ms) call.ttft_ms = ms_since(call.start);
  watch.stop();
  if (f != upstream::Failure::kNone) {
    co_await upstream_failed(call, watch.client_gone() ? upstream::Failure::kCancelled : f,
                             ex.error());
    co_return;
  }
  ex.finish();
  if (status >= 300 && status < 400) {
    // (Built before the co_await: GCC 12 destroys string temporaries of a ?:
    // inside a co_await expression twice.)
    std::string message = redirect_message(call, status, ex);
    co_await reply_error(call, http::status::bad_gateway, message, "upstream_error",
                         "upstream_redirect");
  } else if (status >= 400) {
    call.outcome.error = status == 401 || status == 403 ? "upstream_auth_error"
                                                        : "upstream_http_" + std::to_string(status);
    co_await reply(call, upstream_error(call, adapter, status, std::move(body), ex));
  } else {
    co_await reply_translated(call, adapter, in, status, std::move(body), ex);
  }
}

net::awaitable<void> answer_locally(Call& call, const providers::Adapter& adapter,
                                    const providers::InboundRequest& in) {
  if (!in.stream_requested || in.endpoint == Endpoint::kEmbeddings) {
    providers::Reply r = adapter.answer(in, call.route);
    call.ttft_ms = ms_since(call.start);
    co_await reply(call,
                   json_response(static_cast<http::status>(r.status),
                                 client_body(call, r.status, std::move(r.body)), call.keep_alive),
                   r.usage);
    co_return;
  }
  providers::Usage usage;
  std::vector<std::string> events = adapter.answer_stream(in, call.route, usage);
  if (call.translated) {
    auto to_client = call.api->client_stream(nullptr);
    std::string translated;
    for (const std::string& ev : events) to_client->feed(ev, translated);
    to_client->finish(translated);
    events = {std::move(translated)};
  }
  OpenStream open(call);
  call.settle_limits(usage);  // known up front
  bool ok = co_await begin_stream(call, 200);
  call.ttft_ms = ms_since(call.start);
  for (const std::string& ev : events) {
    if (!ok) break;
    ok = co_await send_chunk(call, ev);
  }
  if (ok) ok = co_await end_stream(call);
  if (!ok) call.keep_alive = false;
  call.finish(ok ? 200 : 499, usage);
}

}  // namespace llmproxy::server
