#include "lib/server/dashboard_route.h"

#include <string>
#include <string_view>

#include "lib/admin/dashboard.h"

namespace llmproxy::server {
namespace {

// The page loads only its own script and stylesheet (no inline script or
// style, no third party), talks only to this server and may not be framed.
constexpr std::string_view kContentSecurityPolicy =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'";

boost::beast::string_view bsv(std::string_view s) {
  return {s.data(), s.size()};
}

template <class Fields>
void secure(Fields& h) {
  h.set("Content-Security-Policy", bsv(kContentSecurityPolicy));
  h.set("X-Content-Type-Options", "nosniff");
  h.set("X-Frame-Options", "DENY");
  h.set("Referrer-Policy", "no-referrer");
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// If-None-Match: "*" or a list of entity tags, compared weakly (RFC 9110 13.1.2).
bool matches(std::string_view if_none_match, std::string_view etag) {
  while (!if_none_match.empty()) {
    std::size_t comma = if_none_match.find(',');
    std::string_view tag = trim(if_none_match.substr(0, comma));
    if (tag == "*") return true;
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    if (tag == etag) return true;
    if (comma == std::string_view::npos) break;
    if_none_match.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

std::optional<Response> dashboard_response(const http::request<http::string_body>& req,
                                           bool keep_alive) {
  std::string_view target(req.target().data(), req.target().size());
  std::string_view path = target.substr(0, target.find('?'));
  if (path != "/admin" && !path.starts_with("/admin/")) return std::nullopt;
  if (path.starts_with("/admin/api")) return std::nullopt;

  bool head = req.method() == http::verb::head;
  if (req.method() != http::verb::get && !head) {
    Response res = error_response(http::status::method_not_allowed,
                                  "use GET for the dashboard (" + std::string(path) + ")",
                                  "invalid_request_error", "method_not_allowed", keep_alive);
    res.set(http::field::allow, "GET, HEAD");
    return res;
  }
  if (path == "/admin") {
    Response res{http::status::moved_permanently, 11};
    res.set(http::field::location, "/admin/");
    res.keep_alive(keep_alive);
    res.prepare_payload();
    return res;
  }
  std::optional<admin::Asset> asset = admin::dashboard_asset(path.substr(7));
  if (!asset) {
    Response res =
        error_response(http::status::not_found, "the dashboard has no file " + std::string(path),
                       "invalid_request_error", "unknown_url", keep_alive);
    secure(res);
    return res;
  }
  auto inm = req.find(http::field::if_none_match);
  bool fresh = inm != req.end() &&
               matches(std::string_view(inm->value().data(), inm->value().size()), asset->etag);
  Response res{fresh ? http::status::not_modified : http::status::ok, 11};
  res.set(http::field::etag, bsv(asset->etag));
  // Revalidated on every load (the names carry no version); unchanged files
  // cost a 304 without a body.
  res.set(http::field::cache_control, "no-cache");
  secure(res);
  res.keep_alive(keep_alive);
  if (fresh) return res;  // a 304 has neither body nor Content-Type
  res.set(http::field::content_type, bsv(asset->content_type));
  if (!head) res.body().assign(asset->body.data(), asset->body.size());
  res.content_length(asset->body.size());
  return res;
}

}  // namespace llmproxy::server
