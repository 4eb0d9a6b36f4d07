#include "storage/url.h"

#include <charconv>

namespace llmproxy::storage {

std::string_view UrlParts::password() const {
  auto colon = userinfo.find(':');
  return colon == std::string_view::npos ? std::string_view() : userinfo.substr(colon + 1);
}

std::string UrlParts::with_path(std::string_view other) const {
  std::string out = std::string(scheme) + "://";
  if (!userinfo.empty()) out += std::string(userinfo) + "@";
  out += std::string(hosts) + "/" + std::string(other);
  if (!query.empty()) out += "?" + std::string(query);
  return out;
}

std::optional<UrlParts> split_url(std::string_view url) {
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

std::string percent_decode(std::string_view s) {
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
