// The endpoints the proxy answers itself, without a key: liveness, readiness
// and metrics (computed from memory, on the worker thread), and the bridge to
// the admin API (run on the admin thread, which may touch storage).
#pragma once

#include <string_view>

#include "lib/server/client.h"

namespace llmproxy::server {

// GET /health: the process answers; storage reachable or not.
Response health(Context& ctx, bool keep_alive);
// GET /health/ready: storage, config version and each connection's last upstream state.
Response readiness(Context& ctx, bool keep_alive);
// GET /metrics: Prometheus text format.
Response metrics(Context& ctx, bool keep_alive);

// /admin/api/…: executed on the admin thread (authentication included: it
// looks users up and checks passwords), answered here.
boost::asio::awaitable<void> admin_api(Client& c, const Request& req, std::string_view path,
                                       bool keep_alive);

}  // namespace llmproxy::server
