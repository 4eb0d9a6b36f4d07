// The one hand-written reading of scheme://[userinfo@]hosts[/path][?query]
// URLs in storage, for what the drivers' own parsers cannot do: find a
// password to scrub from messages even in a URL the driver rejects, and name
// a location without its credentials. Parts are as written (not decoded).
// Header-only, so that test helpers can use it without the storage library.
#pragma once

#include <charconv>
#include <optional>
#include <string>
#include <string_view>

namespace llmproxy::storage {

struct UrlParts {
  std::string_view scheme;    // "postgres", "mongodb+srv"
  std::string_view userinfo;  // "user:password", empty when none
  std::string_view hosts;     // "h1:27017,h2"
  std::string_view path;      // after the '/' that ends the hosts ("db"); empty when none
  std::string_view query;     // after the '?' ("sslmode=require"); empty when none

  // The password in userinfo (after its first ':'), as written.
  std::string_view password() const;
  // scheme://[userinfo@]hosts/<path>[?query]: the same URL naming another path.
  std::string with_path(std::string_view other) const;
};

// nullopt when url has no "://". The userinfo ends at the last '@' before the
// first '/', so that a password may contain '?', ':' or '@'.
inline std::optional<UrlParts> split_url(std::string_view url);

// %XX sequences decoded; anything else (a lone or malformed '%') kept as is.
inline std::string percent_decode(std::string_view s);

// ---- implementation ---------------------------------------------------------

inline std::string_view UrlParts::password() const {
  auto colon = userinfo.find(':');
  return colon == std::string_view::npos ? std::string_view() : userinfo.substr(colon + 1);
}

inline std::string UrlParts::with_path(std::string_view other) const {
  std::string out = std::string(scheme) + "://";
  if (!userinfo.empty()) out += std::string(userinfo) + "@";
  out += std::string(hosts) + "/" + std::string(other);
  if (!query.empty()) out += "?" + std::string(query);
  return out;
}

inline std::optional<UrlParts> split_url(std::string_view url) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::nullopt;
  UrlParts p;
  p.scheme = url.substr(0, scheme_end);
  std::string_view rest = url.substr(scheme_end + 3);
  auto at = rest.substr(0, rest.find('/')).rfind('@');
  if (at != std::string_view::npos) {
    p.userinfo = rest.substr(0, at);
    rest.remove_prefix(at + 1);
  }
  auto hosts_end = rest.find_first_of("/?");
  p.hosts = rest.substr(0, hosts_end);
  if (hosts_end == std::string_view::npos) return p;
  rest.remove_prefix(hosts_end);
  auto query = rest.find('?');
  if (query != std::string_view::npos) {
    p.query = rest.substr(query + 1);
    rest = rest.substr(0, query);
  }
  if (rest.starts_with('/')) p.path = rest.substr(1);
  return p;
}

inline std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    unsigned value = 0;
    if (s[i] == '%' && i + 2 < s.size() &&
        std::from_chars(s.data() + i + 1, s.data() + i + 3, value, 16).ptr == s.data() + i + 3) {
      out += static_cast<char>(value);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace llmproxy::storage
