// Serving the web dashboard: GET/HEAD /admin (redirected to /admin/) and
// /admin/<file> (not /admin/api…, the REST API), from the files compiled into
// the binary (lib/admin/dashboard.h). No storage, no file system, no
// blocking: it runs on the worker thread like /health.
#pragma once

#include <boost/beast/http.hpp>
#include <optional>

#include "lib/server/respond.h"

namespace llmproxy::server {

// The reply for a dashboard URL (the file, 304 Not Modified when the client's
// If-None-Match has its ETag, a redirect, 404 or 405), or nullopt when the
// request's target is not a dashboard URL.
std::optional<Response> dashboard_response(const http::request<http::string_body>& req,
                                           bool keep_alive);

}  // namespace llmproxy::server
