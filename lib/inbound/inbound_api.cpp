// The defaults every inbound API shares (OpenAI's error shape, no
// translation), the check of OpenAI-style request bodies, and which API is
// served at which path.
#include "lib/inbound/inbound_api.h"

#include "lib/inbound/anthropic_messages.h"
#include "lib/inbound/openai_api.h"
#include "lib/util/json_scan.h"

namespace llmproxy::inbound {

std::string InboundApi::error_body(int, std::string_view message, std::string_view type,
                                   std::optional<std::string_view> code,
                                   std::optional<std::string_view> param) const {
  return providers::openai_error_body(message, type, code, param);
}

std::string InboundApi::stream_error_event(std::string_view message, std::string_view type,
                                           std::string_view code) const {
  return "data: " + providers::openai_error_body(message, type, code) + "\n\n";
}

Binding InboundApi::bind(const providers::Adapter& adapter, providers::InboundRequest&,
                         const providers::HeaderView&, std::string&) const {
  return {&adapter, false};
}

std::string InboundApi::reply_body(int, std::string_view, std::string body) const {
  return body;
}

std::unique_ptr<providers::StreamTranslator> InboundApi::client_stream(
    std::unique_ptr<providers::StreamTranslator> from_adapter) const {
  return from_adapter;
}

std::optional<Refusal> parse_openai_style(std::string_view body, std::string_view required,
                                          bool required_array, providers::InboundRequest& in,
                                          std::string& model) {
  const std::string_view keys[] = {"model", "stream", "stream_options", required};
  json_scan::Span spans[4];
  std::string error;
  bool is_object = false;
  if (!json_scan::scan(body, keys, spans, error, &is_object) || !is_object) {
    return Refusal{is_object || !error.empty() ? "the request body is not valid JSON: " + error
                                               : "the request body must be a JSON object",
                   "invalid_json", std::nullopt};
  }
  in.body = body;
  in.model = spans[0];
  in.stream = spans[1];
  in.stream_options = spans[2];
  in.stream_requested = spans[1].found && json_scan::is_true(spans[1].in(body));
  if (!spans[0].found || !json_scan::decode_string(spans[0].in(body), model) || model.empty()) {
    return Refusal{"you must provide a model parameter (a non-empty string)",
                   "missing_required_parameter", "model"};
  }
  const json_scan::Span& field = spans[3];
  bool ok = field.found && field.in(body) != "null";
  if (ok && required_array) ok = field.in(body).starts_with("[");
  if (!ok) {
    return Refusal{"you must provide '" + std::string(required) + "'" +
                       (required_array ? " (an array of messages)" : ""),
                   "missing_required_parameter", std::string(required)};
  }
  return std::nullopt;
}

const InboundApi* api_for(std::string_view path) {
  if (path.starts_with("/v1/")) path.remove_prefix(3);
  if (path == "/chat/completions") return &openai_chat();
  if (path == "/completions") return &openai_completions();
  if (path == "/embeddings") return &openai_embeddings();
  if (path == "/messages") return &anthropic_messages();
  return nullptr;
}

}  // namespace llmproxy::inbound
