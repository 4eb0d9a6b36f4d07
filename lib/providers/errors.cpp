// The default error mapping shared by every adapter, and the reply-header
// views for callers without an upstream parser.
#include <algorithm>
#include <cctype>

#include "lib/providers/provider.h"

namespace llmproxy::providers {

namespace {

class NoHeaders final : public HeaderView {
 public:
  std::string_view get(std::string_view) const override { return {}; }
};

bool iequals(std::string_view a, std::string_view b) {
  return std::ranges::equal(a, b, [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

}  // namespace

const HeaderView& no_headers() {
  static const NoHeaders none;
  return none;
}

std::string_view HeaderList::get(std::string_view name) const {
  for (const auto& [n, value] : headers_) {
    if (iequals(n, name)) return value;
  }
  return {};
}

std::string openai_error_body(std::string_view message, std::string_view type,
                              std::optional<std::string_view> code,
                              std::optional<std::string_view> param) {
  auto str_or_null = [](const std::optional<std::string_view>& v) {
    return v ? json_scan::encode_string(*v) : std::string("null");
  };
  return "{\"error\":{\"message\":" + json_scan::encode_string(message) +
         ",\"type\":" + json_scan::encode_string(type) + ",\"param\":" + str_or_null(param) +
         ",\"code\":" + str_or_null(code) + "}}";
}

Reply Adapter::map_error(const Connection& connection, int status, std::string body,
                         const HeaderView&) const {
  static constexpr std::string_view kKeys[] = {"error"};
  json_scan::Span span[1];
  std::string err;
  Reply r;
  r.status = status;
  if (json_scan::scan(body, kKeys, span, err) && span[0].found &&
      span[0].in(body).starts_with("{")) {
    r.body = std::move(body);  // already OpenAI-shaped
    return r;
  }
  std::string excerpt = body.substr(0, 200);
  r.body = openai_error_body("connection '" + connection.name + "' returned HTTP " +
                                 std::to_string(status) + (excerpt.empty() ? "" : ": " + excerpt),
                             "upstream_error", std::to_string(status));
  return r;
}

}  // namespace llmproxy::providers
