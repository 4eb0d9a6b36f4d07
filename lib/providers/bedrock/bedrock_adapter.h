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
// - Embeddings (POST /v1/embeddings) go to InvokeModel
//   (POST {endpoint}/model/{modelId}/invoke) in the model family's own body:
//   Amazon Titan Text Embeddings (one inputText per call, so an `input` array
//   of several strings is refused) or Cohere Embed (a `texts` batch). The
//   prompt token count is Bedrock's X-Amzn-Bedrock-Input-Token-Count reply
//   header (what AWS bills; Cohere's body has no count at all), else Titan's
//   inputTextTokenCount, else 0.
// - Error types come from the body's `__type`, else the x-amzn-ErrorType
//   header (restJson1 puts it only there), else a known name in the message,
//   else the HTTP status.
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
// "/model/<id percent-encoded>/invoke" under the endpoint's path (InvokeModel).
std::string invoke_path(std::string_view base_path, std::string_view model);
// The client's `model` string from the request, for replies.
std::string client_model(const InboundRequest& in);

// The embedding model families InvokeModel is spoken to in.
enum class EmbeddingFamily { kTitanV1, kTitanV2, kCohereV3, kCohereV4 };
// The family of a model id (also a cross-region profile id such as
// "us.cohere.embed-v4:0", or an ARN); throws RequestError for models that are
// not a supported embedding model.
EmbeddingFamily embedding_family(std::string_view model);
// OpenAI embeddings request (parsed) → the InvokeModel body for `model`.
// Throws RequestError naming the field it cannot translate.
Json to_invoke_embeddings(const Json& openai, std::string_view model);
// A Titan or Cohere InvokeModel reply → OpenAI's embedding list (vectors as
// base64 little-endian float32s when `base64`); sets `usage`, whose prompt
// tokens are `input_tokens` (the reply's X-Amzn-Bedrock-Input-Token-Count)
// when known, else Titan's inputTextTokenCount. Null when the reply is
// neither shape.
Json to_embedding_list(const Json& reply, const std::string& model, bool base64,
                       std::optional<std::int64_t> input_tokens, Usage& usage);
// The X-Amzn-Bedrock-Input-Token-Count header's value, when it is a count.
std::optional<std::int64_t> input_token_count(const HeaderView& headers);

class Adapter final : public providers::Adapter {
 public:
  UpstreamRequest build_request(const InboundRequest& in,
                                const routing::Route& route) const override;
  Reply translate_reply(const InboundRequest& in, int status, std::string body,
                        const HeaderView& headers) const override;
  std::unique_ptr<StreamTranslator> stream_translator(const InboundRequest& in) const override;
  // ConverseStream answers in Amazon's binary event stream, not SSE.
  bool is_stream(std::string_view content_type) const override {
    return content_type.starts_with(kEventStreamType);
  }
  Reply map_error(const Connection& connection, int status, std::string body,
                  const HeaderView& headers) const override;

  // build_request at a given time (Unix seconds): deterministic, for tests.
  UpstreamRequest build_request_at(const InboundRequest& in, const routing::Route& route,
                                   std::int64_t unix_seconds) const;
};

}  // namespace llmproxy::providers::bedrock
