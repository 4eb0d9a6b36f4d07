#include "lib/ops/validate.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include "lib/domain/error.h"

namespace llmproxy::ops {
namespace {

bool is_token_char(unsigned char c) {
  return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                                std::string_view::npos;
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

}  // namespace

bool looks_like_id(std::string_view text) {
  return !text.empty() && text.size() <= 18 &&
         std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); });
}

void check_name(std::string_view field, std::string_view name, bool allow_slash,
                bool allow_space) {
  if (name.empty()) throw invalid(std::string(field) + " must not be empty");
  if (name.size() > 128) throw invalid(std::string(field) + " is longer than 128 characters");
  if (looks_like_id(name))
    throw invalid(std::string(field) + " " + quoted(name) + " must not be all digits (ids are)");
  for (unsigned char c : name) {
    if (std::iscntrl(c) || (!allow_space && c == ' '))
      throw invalid(std::string(field) + " " + quoted(name) +
                    " must not contain spaces or control characters");
    if (!allow_slash && c == '/')
      throw invalid(std::string(field) + " " + quoted(name) + " must not contain '/'");
  }
  if (name.front() == ' ' || name.back() == ' ')
    throw invalid(std::string(field) + " must not start or end with a space");
}

void check_url(std::string_view field, std::string_view url) {
  auto bad = [&](const std::string& why) {
    return invalid(std::string(field) + " " + quoted(url) + " is not a valid URL: " + why);
  };
  std::string_view rest;
  if (url.starts_with("https://")) rest = url.substr(8);
  else if (url.starts_with("http://")) rest = url.substr(7);
  else throw bad("it must start with http:// or https://");
  for (unsigned char c : url)
    if (std::isspace(c) || std::iscntrl(c)) throw bad("it contains whitespace");
  std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.find('@') != std::string_view::npos)
    throw bad("credentials belong in --api-key, not in the URL");
  std::string_view host = authority;
  if (host.starts_with("[")) {  // IPv6 literal
    auto close = host.find(']');
    if (close == std::string_view::npos) throw bad("unterminated IPv6 address");
    std::string_view after = host.substr(close + 1);
    host = host.substr(0, close + 1);
    authority = after;
  } else if (auto colon = host.find(':'); colon != std::string_view::npos) {
    authority = host.substr(colon);
    host = host.substr(0, colon);
  } else {
    authority = {};
  }
  if (host.empty() || host == "[]") throw bad("it has no host");
  if (!host.starts_with("[")) {
    for (unsigned char c : host)
      if (!std::isalnum(c) && c != '-' && c != '.' && c != '_') throw bad("the host is malformed");
  }
  if (!authority.empty()) {
    std::string_view port = authority.substr(1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 ||
        value > 65535)
      throw bad("the port is malformed");
  }
}

Header parse_header(std::string_view text) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0)
    throw invalid("--header " + quoted(text) + " must look like 'Name: value'");
  std::string_view name = text.substr(0, colon);
  for (unsigned char c : name)
    if (!is_token_char(c)) throw invalid("--header name " + quoted(name) + " is not a valid HTTP header name");
  std::string_view value = text.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  for (unsigned char c : value)
    if (c == '\r' || c == '\n' || c == 0) throw invalid("--header value must be a single line");
  return {std::string(name), std::string(value)};
}

void check_non_negative(std::string_view field, double v) {
  if (!std::isfinite(v) || v < 0) throw invalid(std::string(field) + " must be a number >= 0");
}

}  // namespace llmproxy::ops
