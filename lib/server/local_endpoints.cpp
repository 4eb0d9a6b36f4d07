#include "lib/server/local_endpoints.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "lib/admin/api.h"
#include "lib/domain/time.h"

namespace llmproxy::server {
namespace {

namespace net = boost::asio;

net::awaitable<admin::ApiResponse> run_admin(admin::Api& api, admin::ApiRequest req) {
  co_return api.handle(req);
}

}  // namespace

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
  if (ctx.limiter.uses_redis()) g.limits_shared = ctx.limiter.shared();
  Response res{http::status::ok, 11};
  res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
  res.body() = ctx.metrics.render(g);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

// For a human or a load balancer: a config is loaded (always, once serve
// runs), so requests are served: 200, "ready", or "degraded" while storage is
// unreachable (serving from the last config snapshot, usage kept in memory
// until it can be written; an outage of the shared database must not take
// every instance out of rotation; likewise Redis for shared limits). Plus
// what each connection's upstream last answered.
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
  bool limits = !ctx.limiter.uses_redis() || ctx.limiter.shared();
  body["status"] = storage && limits ? "ready" : "degraded";
  body["storage"] = storage ? "reachable" : "unreachable";
  // With --redis: whether limits are shared right now, or per instance.
  if (ctx.limiter.uses_redis()) body["limits"] = limits ? "shared" : "local";
  body["backend"] = ctx.storage_backend;
  body["config_version"] = snap->version();
  body["usage_queue"] = ctx.usage.queued();
  body["connections"] = std::move(conns);
  return json_response(http::status::ok, body.dump(), keep_alive);
}

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
  auto peer = c.socket.remote_endpoint(ec);
  if (!ec) areq.client = peer.address().to_string();
  AdminPort& port = c.ctx.admin;
  admin::ApiResponse res = co_await net::co_spawn(
      port.executor, run_admin(*port.api, std::move(areq)), net::use_awaitable);
  Response out{static_cast<http::status>(res.status), 11};
  if (!res.body.empty()) out.set(http::field::content_type, "application/json");
  out.set(http::field::cache_control, "no-store");
  for (const auto& [name, value] : res.headers) out.set(name, value);
  out.body() = std::move(res.body);
  out.keep_alive(keep_alive);
  out.prepare_payload();
  co_await write(c, out);
}

}  // namespace llmproxy::server
