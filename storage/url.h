// The one hand-written reading of scheme://[userinfo@]hosts[/path][?query]
// URLs in storage, for what the drivers' own parsers cannot do: find a
// password to scrub from messages even in a URL the driver rejects, and name
// a location without its credentials. Parts are as written (not decoded).
#pragma once

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
std::optional<UrlParts> split_url(std::string_view url);

// %XX sequences decoded; anything else (a lone or malformed '%') kept as is.
std::string percent_decode(std::string_view s);

}  // namespace llmproxy::storage
