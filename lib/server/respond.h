// Building responses: OpenAI-shaped errors and the headers every reply carries.
#pragma once

#include <boost/beast/http.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "lib/limits/limiter.h"

namespace llmproxy::server {

namespace http = boost::beast::http;
using Response = http::response<http::string_body>;

// {"error":{"message","type","param","code"}} — the shape OpenAI's SDKs map
// to their exception classes.
std::string error_body(std::string_view message, std::string_view type,
                       std::optional<std::string_view> code = std::nullopt,
                       std::optional<std::string_view> param = std::nullopt);

Response json_response(http::status status, std::string body, bool keep_alive);
Response error_response(http::status status, std::string_view message, std::string_view type,
                        std::optional<std::string_view> code, bool keep_alive,
                        std::optional<std::string_view> param = std::nullopt);

// x-ratelimit-* for the limits that are set; Retry-After on refusals.
template <class Fields>
void add_rate_limit_headers(Fields& h, const limits::Decision& d) {
  if (d.limit_requests) {
    h.set("x-ratelimit-limit-requests", std::to_string(*d.limit_requests));
    h.set("x-ratelimit-remaining-requests", std::to_string(d.remaining_requests.value_or(0)));
    h.set("x-ratelimit-reset-requests", limits::format_reset(d.reset_requests_s));
  }
  if (d.limit_tokens) {
    h.set("x-ratelimit-limit-tokens", std::to_string(*d.limit_tokens));
    h.set("x-ratelimit-remaining-tokens", std::to_string(d.remaining_tokens.value_or(0)));
    h.set("x-ratelimit-reset-tokens", limits::format_reset(d.reset_tokens_s));
  }
  if (d.limit_budget) {
    h.set("x-ratelimit-limit-budget", limits::format_usd(*d.limit_budget));
    h.set("x-ratelimit-remaining-budget", limits::format_usd(d.remaining_budget.value_or(0)));
    h.set("x-ratelimit-reset-budget", limits::format_reset(d.reset_budget_s));
  }
  if (d.retry_after_s) {
    long secs = static_cast<long>(*d.retry_after_s + 0.999);
    h.set(http::field::retry_after, std::to_string(secs < 1 ? 1 : secs));
  }
}

}  // namespace llmproxy::server
