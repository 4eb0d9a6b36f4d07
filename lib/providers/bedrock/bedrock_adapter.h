// `bedrock`: OpenAI chat completions ↔ AWS Bedrock's Converse API
// (POST {endpoint}/model/{modelId}/converse, or /converse-stream whose reply is
// an application/vnd.amazon.eventstream), signed with SigV4 (service
// "bedrock", the connection's region and keys). Replies and streams are
// translated back so OpenAI SDKs cannot tell the difference.
//
// Decisions:
// - Extra connection headers are appended after signing and are not signed,
//   except x-amz-* ones, which AWS expects to be signed.
// - tool_choice "none": Bedrock has no such choice. toolConfig is omitted, so
//   the model cannot call tools, unless the conversation already holds
//   toolUse/toolResult blocks (Bedrock then requires toolConfig): the tools
//   are sent without a toolChoice.
// - toolResult blocks carry no `status` (only some models accept it).
// - Image URLs cannot be sent (Bedrock takes bytes only): base64 data: URLs.
#pragma once

#include <nlohmann/json.hpp>

#include "lib/domain/types.h"
#include "lib/providers/provider.h"

namespace llmproxy::providers::bedrock {

using Json = nlohmann::ordered_json;

constexpr std::string_view kService = "bedrock";
constexpr std::string_view kEventStreamType = "application/vnd.amazon.eventstream";

// OpenAI chat request (parsed) → Converse request body (the model goes in the
// URL). Throws RequestError naming the field it cannot translate.
Json to_converse_request(const Json& openai);
// Converse reply → OpenAI chat.completion with the given id and model.
Json to_chat_completion(const Json& reply, const std::string& id, const std::string& model);
// Bedrock stopReason → OpenAI finish_reason.
std::string_view finish_reason(std::string_view stop_reason);
Usage usage_of(const Json& bedrock_usage);
// "/model/<id percent-encoded>/converse[-stream]" under the endpoint's path.
std::string model_path(std::string_view base_path, std::string_view model, bool stream);
// The client's `model` string from the request, for replies.
std::string client_model(const InboundRequest& in);

class Adapter final : public providers::Adapter {
 public:
  UpstreamRequest build_request(const InboundRequest& in,
                                const routing::Route& route) const override;
  Reply translate_reply(const InboundRequest& in, int status, std::string body) const override;
  std::unique_ptr<StreamTranslator> stream_translator(const InboundRequest& in) const override;
  Reply map_error(const Connection& connection, int status, std::string body) const override;

  // build_request at a given time (Unix seconds): deterministic, for tests.
  UpstreamRequest build_request_at(const InboundRequest& in, const routing::Route& route,
                                   std::int64_t unix_seconds) const;
};

}  // namespace llmproxy::providers::bedrock
