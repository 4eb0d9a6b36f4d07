// `anthropic`: OpenAI chat completions ↔ Anthropic's Messages API
// (POST /v1/messages, x-api-key, anthropic-version), replies and SSE streams
// translated back so OpenAI SDKs cannot tell the difference.
#pragma once

#include <nlohmann/json.hpp>

#include "lib/providers/provider.h"

namespace llmproxy::providers::anthropic {

using Json = nlohmann::ordered_json;

constexpr std::string_view kApiVersion = "2023-06-01";
// Anthropic requires max_tokens; used when the client sent none.
constexpr int kDefaultMaxTokens = 4096;

// OpenAI chat request (parsed) → Anthropic Messages request. Throws
// RequestError naming the field it cannot translate.
Json to_messages_request(const Json& openai, const std::string& remote_model);
// Anthropic message → OpenAI chat.completion.
Json to_chat_completion(const Json& message);
// Anthropic stop_reason → OpenAI finish_reason.
std::string_view finish_reason(std::string_view stop_reason);
Usage usage_of(const Json& anthropic_usage);

class Adapter final : public providers::Adapter {
 public:
  UpstreamRequest build_request(const InboundRequest& in, const routing::Route& route) const override;
  Reply translate_reply(const InboundRequest& in, int status, std::string body,
                        const HeaderView& headers) const override;
  std::unique_ptr<StreamTranslator> stream_translator(const InboundRequest& in) const override;
  // Requests to the inbound Messages API pass through (inbound.h).
  const providers::Adapter* native(Endpoint endpoint) const override;
  Reply map_error(const Connection& connection, int status, std::string body,
                  const HeaderView& headers) const override;
};

}  // namespace llmproxy::providers::anthropic
