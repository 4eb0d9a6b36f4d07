// The data plane's request path:
//   read request → authenticate → parse/validate → route → admit (limits)
//   → adapter → upstream (or in-process mock) → reply / stream → usage record
// Nothing here touches storage or blocks; config comes from the snapshot.
#include "lib/server/session.h"

// GCC 12 inlines Asio's coroutine-frame allocator (thread_info_base, which
// calls ::operator new) into a frame and then flags the frame's class-specific
// operator delete as mismatched: a known false positive for coroutine
// frames, not a real mismatch (the pair is Asio's own allocate/deallocate).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <array>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include <openssl/crypto.h>

#include "lib/admin/api.h"
#include "lib/auth/authenticate.h"
#include "lib/crypto/hash.h"
#include "lib/domain/time.h"
#include "lib/providers/anthropic/inbound.h"
#include "lib/providers/provider.h"
#include "lib/routing/route.h"
#include "lib/server/dashboard_route.h"
#include "lib/server/respond.h"
#include "lib/util/json_scan.h"
#include "lib/util/send.h"

namespace llmproxy::server {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
using net::redirect_error;
using net::use_awaitable;
using Request = http::request<http::string_body>;
using Clock = std::chrono::steady_clock;
using providers::Endpoint;

using tcp = net::ip::tcp;

// Whether the client is still there while the upstream works (see ClientWatch).
// Shared with the pending wait's handler, which may outlive the Client.
struct WatchState {
  upstream::Exchange* watched = nullptr;  // cancelled if the client goes away
  bool pending = false;                   // a wait on the socket is outstanding
  bool gone = false;
};

// The client side of a session.
struct Client {
  Client(tcp::socket s, Context& c, upstream::Pool& p)
      : socket(std::move(s)), ctx(c), pool(p), deadline(p.deadlines(), socket) {}

  tcp::socket socket;
  beast::flat_buffer buffer;
  Context& ctx;
  upstream::Pool& pool;
  util::Deadline deadline;  // reading a request, or writing a large reply / a stream
  std::shared_ptr<WatchState> watch = std::make_shared<WatchState>();
};

// The status line and headers of a reply, in one buffer: the reply goes out
// in one gather write (head + body) rather than beast's per-field buffers.
template <class Fields>
std::string serialize_head(const http::response_header<Fields>& h) {
  std::string head;
  head.reserve(512);
  beast::string_view reason = h.reason();
  head.append("HTTP/1.1 ").append(std::to_string(h.result_int())).append(" ");
  head.append(reason.data(), reason.size()).append("\r\n");
  for (const auto& f : h) {
    beast::string_view name = f.name_string(), value = f.value();
    head.append(name.data(), name.size()).append(": ").append(value.data(), value.size());
    head.append("\r\n");
  }
  head.append("\r\n");
  return head;
}

std::string_view header(const Request& req, std::string_view name) {
  auto it = req.find(beast::string_view(name.data(), name.size()));
  if (it == req.end()) return {};
  return {it->value().data(), it->value().size()};
}

// The client's x-request-id if it is sane, else a fresh random one.
std::string request_id_for(const Request& req) {
  std::string_view given = header(req, "x-request-id");
  if (!given.empty() && given.size() <= 128 &&
      std::all_of(given.begin(), given.end(), [](unsigned char c) { return c > 32 && c < 127; })) {
    return std::string(given);
  }
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[24];
  std::snprintf(buf, sizeof buf, "req_%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// One proxied request: what it was, where it went, and its usage record.
struct Call {
  Client& client;
  const Request& req;
  Endpoint endpoint;
  Clock::time_point start = Clock::now();
  std::string request_id;
  bool keep_alive = true;
  config::SnapshotPtr snapshot;
  auth::Principal who;
  routing::Route route;
  limits::Decision limits;
  std::optional<double> ttft_ms;
  usage::Outcome outcome;  // the usage record and what metrics and logs add
  UsageRecord& record = outcome.record;
  bool recorded = false;
  // Anthropic's Messages API: errors in Anthropic's shape, and replies from
  // non-anthropic providers translated back (to_anthropic).
  bool headers_sent = false;  // a reply (or stream) has started going out
  bool anthropic_client = false;
  bool to_anthropic = false;
  std::string translated_body;  // the OpenAI request made from a Messages request

  Context& ctx() { return client.ctx; }

  Call(Client& c, const Request& r, Endpoint e) : client(c), req(r), endpoint(e) {}
  Call(const Call&) = delete;
  // A request cut short (shutdown past the grace period) is still recorded.
  ~Call() {
    if (!recorded) finish(499, {});
  }

  template <class Fields>
  void decorate(Fields& h) {
    h.set("x-request-id", request_id);
    add_rate_limit_headers(h, limits);
  }

  // Queues the usage record and charges the tokens to the token window.
  void finish(int status, const providers::Usage& usage) {
    if (recorded) return;
    recorded = true;
    outcome.store = who.key || who.master;
    record.ts = now_ms() - static_cast<TimeMs>(ms_since(start));
    record.request_id = request_id;
    record.status = status;
    record.latency_ms = ms_since(start);
    record.ttft_ms = ttft_ms;
    record.prompt_tokens = usage.prompt_tokens;
    record.completion_tokens = usage.completion_tokens;
    record.cost = usage::cost_of(route.model, usage.prompt_tokens, usage.completion_tokens);
    if (route.assignment) {
      ctx().limiter.charge(*route.assignment, usage.prompt_tokens + usage.completion_tokens,
                           now_ms());
    }
    if (status == 499 && outcome.error.empty()) outcome.error = "client_closed";
    if (ctx().options.log_bodies) outcome.request_body = req.body();
    ctx().usage.submit(std::move(outcome));
  }

  // Keeps the reply for the access log, only with --log-bodies.
  void log_reply(std::string_view body) {
    constexpr std::size_t kMaxLogged = 1 << 20;
    if (!ctx().options.log_bodies || outcome.reply_body.size() >= kMaxLogged) return;
    outcome.reply_body.append(body.substr(0, kMaxLogged - outcome.reply_body.size()));
  }
};

net::awaitable<void> write(Client& c, Response& res) {
  // A reply that fits in the socket buffer is written at once; only larger
  // ones can be held up by a client that stops reading, so only they pay for
  // a write deadline (each deadline is a timer update on the hot path).
  constexpr std::size_t kBufferedReply = 128 * 1024;
  bool guarded = res.body().size() > kBufferedReply;
  if (guarded) c.deadline.arm(c.ctx.options.client_read_timeout);
  std::string head = serialize_head(res.base());
  std::array<net::const_buffer, 2> out{net::buffer(head), net::buffer(res.body())};
  beast::error_code ec;
  co_await util::send_all(c.socket, out, ec);
  if (guarded) c.deadline.disarm();
}

// Sends a finished reply and records it.
net::awaitable<void> reply(Call& call, Response res, const providers::Usage& usage = {}) {
  call.decorate(res);
  res.keep_alive(call.keep_alive);
  call.headers_sent = true;
  int status = res.result_int();
  call.log_reply(res.body());
  call.finish(status, usage);
  co_await write(call.client, res);
}

// An error of our own, in the shape the client's API uses.
Response error_for(const Call& call, http::status status, std::string_view message,
                   std::string_view type, std::optional<std::string_view> code,
                   std::optional<std::string_view> param = std::nullopt) {
  if (call.anthropic_client) {
    return json_response(status,
                         providers::anthropic::error_body(static_cast<int>(status), message),
                         call.keep_alive);
  }
  return error_response(status, message, type, code, call.keep_alive, param);
}

net::awaitable<void> reply_error(Call& call, http::status status, std::string_view message,
                                 std::string_view type, std::optional<std::string_view> code,
                                 std::optional<std::string_view> param = std::nullopt) {
  call.outcome.error = code ? *code : type;
  co_await reply(call, error_for(call, status, message, type, code, param));
}

// An OpenAI-shaped body (reply or error) as the client expects it.
std::string client_body(const Call& call, int status, std::string body) {
  if (!call.to_anthropic) return body;
  if (status >= 300) return providers::anthropic::error_body_from_openai(status, body);
  auto completion = providers::anthropic::Json::parse(body, nullptr, false);
  return providers::anthropic::message_from_chat_completion(completion).dump();
}

// Watches the client socket while the upstream works: a client that goes away
// cancels the upstream exchange at once instead of at the next write.
// It waits for readability (no read, no speculative syscall, no timer): when
// the socket turns readable, a peek tells a closed connection from a
// pipelined next request. A wait still pending from an earlier request is
// reused, and stopping leaves it pending: the next request's arrival
// completes it, so keep-alive traffic costs no extra syscall per request.
class ClientWatch {
 public:
  ClientWatch(Client& c, upstream::Exchange& ex) : state_(c.watch) {
    state_->watched = &ex;
    state_->gone = false;
    if (!state_->pending) arm(c.socket, state_);
  }
  ~ClientWatch() { stop(); }
  ClientWatch(const ClientWatch&) = delete;

  void stop() { state_->watched = nullptr; }
  bool client_gone() const { return state_->gone; }

 private:
  static void arm(tcp::socket& socket, const std::shared_ptr<WatchState>& state) {
    state->pending = true;
    socket.async_wait(tcp::socket::wait_read,
                      [&socket, weak = std::weak_ptr<WatchState>(state)](beast::error_code ec) {
                        auto s = weak.lock();
                        if (!s) return;  // the session is over; so is its socket
                        s->pending = false;
                        if (ec || !s->watched) return;
                        char byte;
                        ssize_t n = ::recv(socket.native_handle(), &byte, 1,
                                           MSG_PEEK | MSG_DONTWAIT);
                        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                          s->gone = true;
                          s->watched->cancel();
                        }
                      });
  }

  std::shared_ptr<WatchState> state_;
};

// Starts a chunked text/event-stream reply.
// Counts a streamed reply in llm_proxy_open_streams while it lasts.
class OpenStream {
 public:
  explicit OpenStream(Call& call) : n_(call.ctx().open_streams) {
    call.outcome.stream = true;
    ++n_;
  }
  ~OpenStream() { --n_; }
  OpenStream(const OpenStream&) = delete;

 private:
  std::atomic<int>& n_;
};

net::awaitable<bool> begin_stream(Call& call, int status) {
  http::response<http::empty_body> res{static_cast<http::status>(status), 11};
  res.set(http::field::content_type, "text/event-stream");
  res.set(http::field::cache_control, "no-cache");
  res.keep_alive(call.keep_alive);
  res.chunked(true);
  call.decorate(res);
  call.headers_sent = true;
  std::string head = serialize_head(res.base());
  beast::error_code ec;
  call.client.deadline.arm(call.ctx().options.client_read_timeout);
  co_await util::send_all(call.client.socket, net::buffer(head), ec);
  co_return !ec;
}

// One HTTP/1.1 chunk (size line, data, CRLF) in one gather write.
net::awaitable<bool> send_chunk(Call& call, std::string_view data) {
  if (data.empty()) co_return true;
  call.log_reply(data);
  char size_line[24];
  int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
  std::array<net::const_buffer, 3> out{net::buffer(size_line, static_cast<std::size_t>(n)),
                                       net::buffer(data), net::buffer("\r\n", 2)};
  beast::error_code ec;
  call.client.deadline.arm(call.ctx().options.client_read_timeout);
  co_await util::send_all(call.client.socket, out, ec);
  co_return !ec;
}

net::awaitable<bool> end_stream(Call& call) {
  beast::error_code ec;
  co_await util::send_all(call.client.socket, net::buffer("0\r\n\r\n", 5), ec);
  call.client.deadline.disarm();
  co_return !ec;
}

// The mock provider answers in-process.
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
  if (call.to_anthropic) {
    auto to_events = providers::anthropic::events_from_chunks(nullptr);
    std::vector<std::string> translated(1);
    for (const std::string& ev : events) to_events->feed(ev, translated.back());
    to_events->finish(translated.back());
    events = std::move(translated);
  }
  OpenStream open(call);
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

// An upstream's non-2xx reply, in OpenAI's error shape with a faithful status.
Response upstream_error(Call& call, const providers::Adapter& adapter, int status,
                        std::string body, const providers::ReplyHeaders& headers) {
  const Connection& conn = *call.route.connection;
  if (status == 401 || status == 403) {
    // The provider refused the connection's own credentials: never let the
    // client mistake that for its virtual key being refused.
    return error_for(call, http::status::bad_gateway,
                     "the provider refused the credentials of connection '" + conn.name +
                         "' (HTTP " + std::to_string(status) + ")",
                     "upstream_auth_error", "upstream_auth_error");
  }
  providers::Reply r = adapter.map_error(conn, status, std::move(body), headers);
  Response res = json_response(static_cast<http::status>(r.status),
                               client_body(call, r.status, std::move(r.body)), call.keep_alive);
  for (const auto& [name, value] : r.headers) res.set(name, value);
  return res;
}

net::awaitable<void> upstream_failed(Call& call, upstream::Failure f, const std::string& detail,
                                     const providers::Usage& usage = {}) {
  const std::string& conn = call.route.connection->name;
  if (f == upstream::Failure::kCancelled) {  // the client went away
    call.keep_alive = false;
    call.finish(499, usage);
    co_return;
  }
  if (f == upstream::Failure::kTimeout) {
    call.outcome.error = "upstream_timeout";
    co_await reply(call,
                   error_for(call, http::status::gateway_timeout,
                             "connection '" + conn + "' did not answer within its timeout",
                             "upstream_timeout", "upstream_timeout"),
                   usage);
    co_return;
  }
  call.outcome.error = "upstream_unavailable";
  co_await reply(call,
                 error_for(call, http::status::bad_gateway,
                           "connection '" + conn + "' failed: " + detail, "upstream_error",
                           "upstream_unavailable"),
                 usage);
}

// Relays an upstream SSE stream chunk by chunk as it arrives.
net::awaitable<void> relay_stream(Call& call, const providers::Adapter& adapter,
                                  const providers::InboundRequest& in, upstream::Exchange& ex,
                                  ClientWatch& watch) {
  OpenStream open(call);
  auto translator = adapter.stream_translator(in);
  if (call.to_anthropic) translator = providers::anthropic::events_from_chunks(std::move(translator));
  bool client_ok = co_await begin_stream(call, ex.status());
  std::string piece, out;
  upstream::Failure f = upstream::Failure::kNone;
  while (client_ok && !ex.done()) {
    piece.clear();
    f = co_await ex.read_some(piece);
    if (!piece.empty() && !call.ttft_ms) call.ttft_ms = ms_since(call.start);
    out.clear();
    translator->feed(piece, out);
    if (f != upstream::Failure::kNone) break;
    client_ok = co_await send_chunk(call, out);
    if (!translator->failure().empty()) break;  // nothing more can be decoded
  }
  std::string failure = translator->failure();
  if (f == upstream::Failure::kNone && client_ok && failure.empty()) {
    out.clear();
    translator->finish(out);
    client_ok = co_await send_chunk(call, out);
  }
  watch.stop();
  const providers::Usage& usage = translator->usage();
  if (!client_ok || watch.client_gone() || f == upstream::Failure::kCancelled) {
    ex.cancel();
    call.keep_alive = false;
    call.finish(499, usage);  // abandoned by the client: never billed as complete
    co_return;
  }
  if (f != upstream::Failure::kNone || !translator->complete()) {
    // The upstream broke the stream: tell the client in-band, then end it.
    call.outcome.error = "upstream_stream_broken";
    ex.cancel();  // the rest of a stream that cannot be decoded is not read
    std::string reason = f != upstream::Failure::kNone ? ex.error()
                         : !failure.empty()            ? failure
                                                       : std::string("ended early");
    std::string message =
        "connection '" + call.route.connection->name + "' broke the stream: " + reason;
    std::string event =
        call.anthropic_client
            ? "event: error\ndata: " + providers::anthropic::error_body(502, message) + "\n\n"
            : "data: " + error_body(message, "upstream_error", "upstream_stream_broken") + "\n\n";
    if (!translator->error_sent()) co_await send_chunk(call, event);
    co_await end_stream(call);
    call.keep_alive = false;
    call.finish(502, usage);
    co_return;
  }
  ex.finish();
  if (!co_await end_stream(call)) call.keep_alive = false;
  call.finish(200, usage);
}

net::awaitable<void> forward(Call& call, const providers::Adapter& adapter,
                             const providers::InboundRequest& in) {
  providers::UpstreamRequest up;
  std::optional<providers::RequestError> refused;
  try {
    up = adapter.build_request(in, call.route);
  } catch (const providers::RequestError& e) {
    refused = e;  // no co_await inside a handler
  }
  if (refused) {
    co_await reply_error(call, http::status::bad_request, refused->what(),
                         "invalid_request_error", "unsupported_parameter", refused->param());
    co_return;
  }
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
  auto content_type = ex.header(http::field::content_type);
  bool sse = status < 300 && (content_type.starts_with("text/event-stream") ||
                              content_type.starts_with("application/vnd.amazon.eventstream"));
  if (sse) {
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
    // Redirects are not followed (a POST body and its credentials would go
    // somewhere nobody configured): the connection's endpoint needs fixing.
    // (The message is built before the co_await: GCC 12 destroys string
    // temporaries of a ?: inside a co_await expression twice.)
    std::string message = "connection '" + call.route.connection->name + "' answered HTTP " +
                          std::to_string(status) + " (redirect";
    if (std::string_view location = ex.header(http::field::location); !location.empty())
      message += " to " + std::string(location);
    message += "); check its --endpoint";
    co_await reply_error(call, http::status::bad_gateway, message, "upstream_error",
                         "upstream_redirect");
    co_return;
  }
  if (status >= 400) {
    call.outcome.error = status == 401 || status == 403 ? "upstream_auth_error"
                                                        : "upstream_http_" + std::to_string(status);
    Response res = upstream_error(call, adapter, status, std::move(body), ex);
    // The provider's own back-off hints reach the client unless the adapter
    // set its own.
    for (http::field f : {http::field::retry_after}) {
      std::string_view v = ex.header(f);
      if (!v.empty() && res.find(f) == res.end()) res.set(f, std::string(v));
    }
    std::string_view should_retry = ex.header("x-should-retry");
    if (!should_retry.empty() && res.find("x-should-retry") == res.end())
      res.set("x-should-retry", std::string(should_retry));
    co_await reply(call, std::move(res));
    co_return;
  }
  providers::Reply r = adapter.translate_reply(in, status, std::move(body), ex);
  if (call.to_anthropic && r.content_type.starts_with("text/event-stream")) {
    // A stream built in one piece (template connections): translate it whole.
    auto to_events = providers::anthropic::events_from_chunks(nullptr);
    std::string events;
    to_events->feed(r.body, events);
    to_events->finish(events);
    r.body = std::move(events);
  } else {
    r.body = client_body(call, r.status, std::move(r.body));
  }
  Response res = json_response(static_cast<http::status>(r.status), std::move(r.body),
                               call.keep_alive);
  res.set(http::field::content_type, r.content_type);
  for (const auto& [name, value] : r.headers) res.set(name, value);
  co_await reply(call, std::move(res), r.usage);
}

// Checks the body and fills the request's field spans; replies 400 if bad.
net::awaitable<bool> parse_body(Call& call, providers::InboundRequest& in,
                                std::string& model) {
  static constexpr std::string_view kKeys[] = {"model",    "stream", "stream_options",
                                               "messages", "prompt", "input"};
  json_scan::Span spans[6];
  std::string error;
  bool is_object = false;
  if (!json_scan::scan(call.req.body(), kKeys, spans, error, &is_object) || !is_object) {
    std::string msg = is_object || !error.empty()
                          ? "the request body is not valid JSON: " + error
                          : std::string("the request body must be a JSON object");
    co_await reply_error(call, http::status::bad_request, msg, "invalid_request_error",
                         "invalid_json");
    co_return false;
  }
  in.body = call.req.body();
  in.model = spans[0];
  in.stream = spans[1];
  in.stream_options = spans[2];
  in.stream_requested = spans[1].found && json_scan::is_true(spans[1].in(in.body));
  if (!spans[0].found || !json_scan::decode_string(spans[0].in(in.body), model) || model.empty()) {
    co_await reply_error(call, http::status::bad_request,
                         "you must provide a model parameter (a non-empty string)",
                         "invalid_request_error", "missing_required_parameter", "model");
    co_return false;
  }
  bool chat = call.endpoint == Endpoint::kChat || call.endpoint == Endpoint::kMessages;
  const char* required = chat                                      ? "messages"
                         : call.endpoint == Endpoint::kCompletions ? "prompt"
                                                                   : "input";
  const json_scan::Span& field = chat                                      ? spans[3]
                                 : call.endpoint == Endpoint::kCompletions ? spans[4]
                                                                           : spans[5];
  bool ok = field.found && field.in(in.body) != "null";
  if (ok && chat) ok = field.in(in.body).starts_with("[");
  if (!ok) {
    co_await reply_error(call, http::status::bad_request,
                         std::string("you must provide '") + required +
                             (chat ? "' (an array of messages)" : "'"),
                         "invalid_request_error", "missing_required_parameter", required);
    co_return false;
  }
  co_return true;
}

const char* auth_message(auth::AuthStatus s) {
  switch (s) {
    case auth::AuthStatus::kMissing:
      return "no API key provided: send it as 'Authorization: Bearer <key>'";
    case auth::AuthStatus::kDisabled: return "this API key has been disabled";
    case auth::AuthStatus::kExpired: return "this API key has expired";
    default: return "incorrect API key provided";
  }
}

// Authenticates; replies 401 and returns false when the key is not good.
net::awaitable<bool> authenticate(Call& call) {
  const Request& req = call.req;
  std::string_view key = auth::extract_key(header(req, "authorization"), header(req, "x-api-key"),
                                           header(req, "api-key"));
  auto result =
      auth::authenticate(*call.snapshot, key, call.ctx().options.master_key, now_ms());
  if (result.status != auth::AuthStatus::kOk) {
    co_await reply_error(call, http::status::unauthorized, auth_message(result.status),
                         "invalid_request_error", "invalid_api_key");
    co_return false;
  }
  call.who = result.principal;
  if (call.who.key) {
    call.record.vkey_id = call.who.key->vkey.id;
    call.record.vkey_name = call.who.key->vkey.name;
  } else {
    call.record.vkey_name = "master";
  }
  co_return true;
}

// A Messages API request: passed through to anthropic connections, otherwise
// translated into the OpenAI chat request the connection's adapter takes.
net::awaitable<bool> prepare_messages(Call& call, const providers::Adapter*& adapter,
                                      providers::InboundRequest& in) {
  if (call.route.connection->provider == Provider::kAnthropic) {
    adapter = &providers::anthropic::passthrough();
    for (std::string_view name : {"anthropic-version", "anthropic-beta"}) {
      std::string_view value = header(call.req, name);
      if (!value.empty()) in.forward_headers.emplace_back(name, value);
    }
    co_return true;
  }
  std::optional<providers::RequestError> refused;
  try {
    auto parsed = providers::anthropic::Json::parse(in.body, nullptr, false);
    call.translated_body = providers::anthropic::chat_request_from_messages(parsed).dump();
  } catch (const providers::RequestError& e) {
    refused = e;
  }
  if (refused) {
    co_await reply_error(call, http::status::bad_request, refused->what(), "invalid_request_error",
                         "unsupported_parameter", refused->param());
    co_return false;
  }
  static constexpr std::string_view kKeys[] = {"model", "stream", "stream_options"};
  json_scan::Span spans[3];
  std::string error;
  json_scan::scan(call.translated_body, kKeys, spans, error);
  in.endpoint = Endpoint::kChat;
  in.body = call.translated_body;
  in.model = spans[0];
  in.stream = spans[1];
  in.stream_options = spans[2];
  call.to_anthropic = true;
  co_return true;
}

net::awaitable<void> proxy(Call& call) {
  if (!co_await authenticate(call)) co_return;
  providers::InboundRequest in;
  in.endpoint = call.endpoint;
  in.request_id = call.request_id;
  std::string model;
  if (!co_await parse_body(call, in, model)) co_return;
  call.record.model = model;

  routing::RouteResult routed = routing::resolve(*call.snapshot, call.who, model);
  if (routed.status == routing::RouteStatus::kNotFound) {
    co_await reply_error(call, http::status::not_found,
                         "the model '" + model + "' does not exist", "invalid_request_error",
                         "model_not_found", "model");
    co_return;
  }
  call.route = routed.route;
  call.record.conn_id = call.route.connection->id;
  call.record.conn_name = call.route.connection->name;
  if (routed.status == routing::RouteStatus::kForbidden) {
    co_await reply_error(call, http::status::forbidden,
                         "this key is not allowed to use the model '" + model + "'",
                         "permission_error", "model_not_allowed", "model");
    co_return;
  }
  if (call.route.assignment) {
    call.record.assignment_id = call.route.assignment->id;
    call.limits = call.ctx().limiter.admit(*call.route.assignment, now_ms());
    if (!call.limits.allowed()) {
      bool tokens = call.limits.refusal == limits::Refusal::kTokens;
      const char* type = tokens ? "tokens_exceeded" : "rate_limit_exceeded";
      co_await reply_error(call, http::status::too_many_requests, call.limits.message, type, type);
      co_return;
    }
  }
  in.route = &call.route;
  const providers::Adapter* adapter = providers::adapter_for(call.route.connection->provider);
  if (!adapter) {
    co_await reply_error(call, http::status::not_implemented,
                         "connections of provider type '" +
                             std::string(to_string(call.route.connection->provider)) +
                             "' are not supported by this build yet",
                         "invalid_request_error", "provider_not_supported");
    co_return;
  }
  if (call.endpoint == Endpoint::kMessages && !co_await prepare_messages(call, adapter, in)) co_return;
  if (adapter->local()) co_await answer_locally(call, *adapter, in);
  else co_await forward(call, *adapter, in);
}

Response list_models(Call& call) {
  std::string data = "[";
  for (const config::ModelEntry& m : routing::visible_models(*call.snapshot, call.who)) {
    if (data.size() > 1) data += ",";
    data += "{\"id\":" + json_scan::encode_string(m.model->name) +
            ",\"object\":\"model\",\"created\":" + std::to_string(m.model->created_at / 1000) +
            ",\"owned_by\":" + json_scan::encode_string(m.connection->name) + "}";
  }
  data += "]";
  Response res =
      json_response(http::status::ok, "{\"object\":\"list\",\"data\":" + data + "}", call.keep_alive);
  res.set("x-request-id", call.request_id);
  return res;
}

Response health(Context& ctx, bool keep_alive) {
  bool storage = ctx.storage_healthy();
  auto snap = ctx.snapshot.get();
  std::string body = std::string("{\"status\":\"") + (storage ? "ok" : "degraded") +
                     "\",\"storage\":\"" + (storage ? "reachable" : "unreachable") +
                     "\",\"backend\":\"" + ctx.storage_backend +
                     "\",\"config_version\":" + std::to_string(snap->version()) +
                     ",\"usage_queue\":" + std::to_string(ctx.usage.queued()) + "}";
  return json_response(http::status::ok, std::move(body), keep_alive);
}

Response metrics(Context& ctx, bool keep_alive) {
  observe::Gauges g;
  g.in_flight = ctx.in_flight.load();
  g.open_streams = ctx.open_streams.load();
  g.usage_queue = ctx.usage.queued();
  g.usage_dropped = ctx.usage.dropped();
  g.storage_up = ctx.storage_healthy();
  g.config_version = ctx.snapshot.get()->version();
  Response res{http::status::ok, 11};
  res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
  res.body() = ctx.metrics.render(g);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

// Readiness, for a human or a load balancer: a config is loaded (always, once
// serve runs), so requests are served: 200, "ready", or "degraded" while
// storage is unreachable (serving from the last config snapshot, usage kept
// in memory until it can be written; an outage of the shared database must
// not take every instance out of rotation). Plus what each connection's
// upstream last answered.
Response readiness(Context& ctx, bool keep_alive) {
  bool storage = ctx.storage_healthy();
  auto snap = ctx.snapshot.get();
  auto states = ctx.metrics.upstream_states();
  nlohmann::ordered_json conns = nlohmann::ordered_json::object();
  for (const Connection& c : snap->data().connections) {
    nlohmann::ordered_json j;
    auto it = states.find(c.name);
    if (it == states.end()) {
      j["state"] = "unknown";  // not used since serve started
    } else {
      const observe::UpstreamState& st = it->second;
      bool down = !st.last_error.empty() || st.last_status >= 500;
      j["state"] = down ? "down" : "up";
      j["last_status"] = st.last_status;
      j["last_seen"] = format_time(st.last_seen_ms);
      if (!st.last_error.empty()) j["last_error"] = st.last_error;
    }
    conns[c.name] = std::move(j);
  }
  nlohmann::ordered_json body;
  body["status"] = storage ? "ready" : "degraded";
  body["storage"] = storage ? "reachable" : "unreachable";
  body["backend"] = ctx.storage_backend;
  body["config_version"] = snap->version();
  body["usage_queue"] = ctx.usage.queued();
  body["connections"] = std::move(conns);
  return json_response(http::status::ok, body.dump(), keep_alive);
}

net::awaitable<admin::ApiResponse> run_admin(admin::Api& api, admin::ApiRequest req) {
  co_return api.handle(req);
}

// /admin/api/…: executed on the admin thread (authentication included: it
// looks users up and checks passwords), answered here.
net::awaitable<void> admin_api(Client& c, const Request& req, std::string_view path,
                               bool keep_alive) {
  std::string_view target(req.target().data(), req.target().size());
  std::string_view auth = header(req, "authorization");
  admin::ApiRequest areq;
  areq.method = std::string(req.method_string());
  areq.path = std::string(path.substr(std::string_view("/admin/api").size()));
  std::size_t q = target.find('?');
  if (q != std::string_view::npos) areq.query = std::string(target.substr(q + 1));
  areq.body = req.body();
  if (auth.starts_with("Bearer ")) areq.bearer = std::string(auth.substr(7));
  boost::system::error_code ec;
  tcp::endpoint peer = c.socket.remote_endpoint(ec);
  if (!ec) areq.client = peer.address().to_string();
  AdminPort& port = c.ctx.admin;
  admin::ApiResponse res =
      co_await net::co_spawn(port.executor, run_admin(*port.api, std::move(areq)), use_awaitable);
  Response out{static_cast<http::status>(res.status), 11};
  if (!res.body.empty()) out.set(http::field::content_type, "application/json");
  out.set(http::field::cache_control, "no-store");
  for (const auto& [name, value] : res.headers) out.set(name, value);
  out.body() = std::move(res.body);
  out.keep_alive(keep_alive);
  out.prepare_payload();
  co_await write(c, out);
}

// Returns whether the connection may serve another request.
net::awaitable<bool> dispatch(Client& c, const Request& req) {
  std::string_view target(req.target().data(), req.target().size());
  std::string_view path = target.substr(0, target.find('?'));
  if (path.starts_with("/v1/")) path.remove_prefix(3);
  bool keep_alive = req.keep_alive() && !c.ctx.draining.load();

  Call call{c, req, Endpoint::kChat};
  call.request_id = request_id_for(req);
  call.keep_alive = keep_alive;
  call.snapshot = c.ctx.snapshot.get();
  call.recorded = true;  // only proxied requests leave an outcome (below)

  auto only = [&](http::verb verb) { return req.method() == verb; };
  if (path == "/health" || path == "/healthz") {
    Response res = health(c.ctx, keep_alive);
    co_await write(c, res);
  } else if (path == "/health/ready" || path == "/readyz") {
    Response res = readiness(c.ctx, keep_alive);
    co_await write(c, res);
  } else if (path == "/admin/api" || path.starts_with("/admin/api/")) {
    co_await admin_api(c, req, path, keep_alive);
  } else if (auto page = dashboard_response(req, keep_alive)) {  // /admin, /admin/…
    co_await write(c, *page);
  } else if (path == "/metrics" && only(http::verb::get)) {
    Response res = metrics(c.ctx, keep_alive);
    co_await write(c, res);
  } else if (path == "/models" && only(http::verb::get)) {
    if (co_await authenticate(call)) {
      Response res = list_models(call);
      co_await write(c, res);
    }
  } else if (path == "/chat/completions" || path == "/completions" || path == "/embeddings" ||
             path == "/messages") {
    if (!only(http::verb::post)) {
      Response res = error_response(http::status::method_not_allowed,
                                    "use POST for " + std::string(path), "invalid_request_error",
                                    "method_not_allowed", keep_alive);
      co_await write(c, res);
      co_return keep_alive;
    }
    call.endpoint = path == "/chat/completions" ? Endpoint::kChat
                    : path == "/completions"    ? Endpoint::kCompletions
                    : path == "/messages"       ? Endpoint::kMessages
                                                : Endpoint::kEmbeddings;
    call.anthropic_client = call.endpoint == Endpoint::kMessages;
    call.recorded = false;
    // A bug must cost one request, not the connection's silence: answer 500
    // (or, mid-stream, close) and keep serving.
    std::optional<std::string> failure;
    try {
      co_await proxy(call);
    } catch (const std::exception& e) {
      failure = e.what();
    }
    if (failure) {
      std::cerr << "llm-proxy: internal error on request " << call.request_id << ": " << *failure
                << "\n";
      call.keep_alive = false;
      if (!call.headers_sent) {
        co_await reply_error(call, http::status::internal_server_error,
                             "internal error: " + *failure, "api_error", "internal_error");
      } else {
        call.finish(500, {});
      }
    }
  } else {
    Response res = error_response(
        http::status::not_found,
        "unknown request URL: " + std::string(req.method_string()) + " " + std::string(path),
        "invalid_request_error", "unknown_url", keep_alive);
    co_await write(c, res);
  }
  co_return call.keep_alive;
}

}  // namespace

net::awaitable<void> run_session(net::ip::tcp::socket socket, Context& ctx,
                                 upstream::Pool& pool) {
  beast::error_code ec;
  socket.set_option(net::ip::tcp::no_delay(true), ec);
  socket.non_blocking(true, ec);  // for util::send_all
  Client c(std::move(socket), ctx, pool);

  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(ctx.options.max_body_bytes);
    parser.header_limit(64 * 1024);

    // A request must arrive within the read timeout; a client that sent part
    // of one gets a 408, an idle keep-alive connection is simply closed.
    c.deadline.arm(ctx.options.client_read_timeout);
    co_await http::async_read(c.socket, c.buffer, parser, redirect_error(use_awaitable, ec));
    c.deadline.disarm();
    bool timed_out = c.deadline.expired();

    if (ec == http::error::body_limit) {
      Response res = error_response(
          http::status::payload_too_large,
          "the request body exceeds the limit of " + std::to_string(ctx.options.max_body_bytes) +
              " bytes",
          "invalid_request_error", "request_too_large", false);
      co_await write(c, res);
      break;
    }
    if (timed_out && parser.got_some()) {
      Response res = error_response(http::status::request_timeout,
                                    "the request was not received in time",
                                    "invalid_request_error", "request_timeout", false);
      co_await write(c, res);
      break;
    }
    if (ec) break;  // closed, malformed HTTP, or idle timeout

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
