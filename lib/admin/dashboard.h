// The web dashboard's static files (index.html, app.js, app.css from
// lib/admin/dashboard/), compiled into the binary at build time. Served by
// `llm-proxy serve` under /admin/ (lib/server/dashboard_route.h); the page
// itself talks to the admin REST API (/admin/api/…) and to /v1/….
#pragma once

#include <optional>
#include <string_view>

namespace llmproxy::admin {

struct Asset {
  std::string_view content_type;  // e.g. "text/javascript; charset=utf-8"
  std::string_view body;
  std::string_view etag;  // strong, quotes included
};

// The asset at `path`, relative to /admin/ ("" and "index.html" are the page);
// nullopt for anything else (no directory traversal, no file system access).
std::optional<Asset> dashboard_asset(std::string_view path);

}  // namespace llmproxy::admin
