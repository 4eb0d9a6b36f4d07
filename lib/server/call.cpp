#include "lib/server/call.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "lib/domain/time.h"

namespace llmproxy::server {
namespace {

namespace net = boost::asio;

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

}  // namespace

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

Call::Call(Client& c, const Request& r, const inbound::InboundApi* a)
    : client(c),
      req(r),
      api(a),
      request_id(request_id_for(r)),
      keep_alive(r.keep_alive() && !c.ctx.draining.load()),
      snapshot(c.ctx.snapshot.get()) {}

bool Call::identify(auth::AuthStatus& status) {
  std::string_view key = auth::extract_key(header(req, "authorization"), header(req, "x-api-key"),
                                           header(req, "api-key"));
  auto result = auth::authenticate(*snapshot, key, ctx().options.master_key, now_ms());
  status = result.status;
  if (status != auth::AuthStatus::kOk) return false;
  who = result.principal;
  return true;
}

void Call::finish(int status, const providers::Usage& usage) {
  if (recorded_) return;
  recorded_ = true;
  UsageRecord& r = outcome.record;
  double latency = ms_since(start);
  r.ts = now_ms() - static_cast<TimeMs>(latency);
  r.request_id = request_id;
  r.status = status;
  r.latency_ms = latency;
  r.ttft_ms = ttft_ms;
  if (who.key) {
    r.vkey_id = who.key->vkey.id;
    r.vkey_name = who.key->vkey.name;
  } else if (who.master) {
    r.vkey_name = "master";
  }
  r.model = model;
  if (route.connection) {
    r.conn_id = route.connection->id;
    r.conn_name = route.connection->name;
  }
  r.prompt_tokens = usage.prompt_tokens;
  r.completion_tokens = usage.completion_tokens;
  r.cost = usage::cost_of(route.model, usage.prompt_tokens, usage.completion_tokens);
  if (route.assignment) r.assignment_id = route.assignment->id;
  settle_limits(usage);
  outcome.store = who.key || who.master;
  if (status == 499 && outcome.error.empty()) outcome.error = "client_closed";
  outcome.method = std::string(req.method_string());
  // Without the query (Gemini clients put their key there), and bounded.
  constexpr std::size_t kMaxLoggedPath = 2048;
  auto target = req.target();
  outcome.path = std::string(target.substr(0, std::min(target.find('?'), kMaxLoggedPath)));
  if (ctx().options.log_bodies) outcome.request_body = req.body();
  ctx().usage.submit(std::move(outcome));
}

void Call::settle_limits(const providers::Usage& usage) {
  if (!claim.admitted) return;  // none taken, or settled already
  client.gate.settle(claim,
                     {usage.prompt_tokens + usage.completion_tokens,
                      limits::nano_usd(route.model, usage.prompt_tokens, usage.completion_tokens)});
}

void Call::log_reply(std::string_view body) {
  constexpr std::size_t kMaxLogged = 1 << 20;
  if (!ctx().options.log_bodies || outcome.reply_body.size() >= kMaxLogged) return;
  outcome.reply_body.append(body.substr(0, kMaxLogged - outcome.reply_body.size()));
}

Response error_for(const Call& call, http::status status, std::string_view message,
                   std::string_view type, std::optional<std::string_view> code,
                   std::optional<std::string_view> param) {
  if (!call.api) return error_response(status, message, type, code, call.keep_alive, param);
  return json_response(status,
                       call.api->error_body(static_cast<int>(status), message, type, code, param),
                       call.keep_alive);
}

net::awaitable<void> reply(Call& call, Response res, const providers::Usage& usage) {
  call.decorate(res);
  res.keep_alive(call.keep_alive);
  call.headers_sent = true;
  call.log_reply(res.body());
  call.finish(res.result_int(), usage);
  co_await write(call.client, res);
}

net::awaitable<void> reply_error(Call& call, http::status status, std::string_view message,
                                 std::string_view type, std::optional<std::string_view> code,
                                 std::optional<std::string_view> param) {
  call.outcome.error = code ? *code : type;
  co_await reply(call, error_for(call, status, message, type, code, param));
}

std::string client_body(const Call& call, int status, std::string body,
                        std::string_view content_type) {
  if (!call.translated) return body;
  return call.api->reply_body(status, content_type, std::move(body));
}

}  // namespace llmproxy::server
