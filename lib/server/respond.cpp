#include "lib/server/respond.h"

#include "lib/providers/provider.h"

namespace llmproxy::server {

std::string error_body(std::string_view message, std::string_view type,
                       std::optional<std::string_view> code,
                       std::optional<std::string_view> param) {
  return providers::openai_error_body(message, type, code, param);
}

Response json_response(http::status status, std::string body, bool keep_alive) {
  Response res{status, 11};
  res.set(http::field::content_type, "application/json");
  res.body() = std::move(body);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

Response error_response(http::status status, std::string_view message, std::string_view type,
                        std::optional<std::string_view> code, bool keep_alive,
                        std::optional<std::string_view> param) {
  return json_response(status, error_body(message, type, code, param), keep_alive);
}

}  // namespace llmproxy::server
