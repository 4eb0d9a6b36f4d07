// Splitting a connection's endpoint URL into what the upstream client needs.
#pragma once

#include <string>
#include <string_view>

namespace llmproxy::providers {

struct Url {
  bool tls = false;
  std::string host;
  std::string port;
  std::string path;   // without trailing slash; may be empty
  std::string query;  // without '?'; may be empty
};

// Parses an http(s) URL; validation already happened when it was stored.
Url parse_url(std::string_view url);

}  // namespace llmproxy::providers
