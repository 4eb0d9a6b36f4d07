// `google`: OpenAI chat completions / embeddings ↔ the Gemini API (v1beta
// generateContent, streamGenerateContent?alt=sse, embedContent /
// batchEmbedContents; key in x-goog-api-key), replies and SSE streams
// translated back to OpenAI's shapes.
#pragma once

#include <nlohmann/json.hpp>

#include "lib/providers/provider.h"

namespace llmproxy::providers::google {

using Json = nlohmann::ordered_json;

constexpr std::string_view kDefaultEndpoint = "https://generativelanguage.googleapis.com";

// OpenAI chat request (parsed) → Gemini GenerateContentRequest. Throws
// RequestError naming the field it cannot translate.
Json to_generate_request(const Json& openai);
// OpenAI embeddings request (parsed) → the Gemini request for `remote_model`:
// one text is an EmbedContentRequest (POST …:embedContent), several a
// BatchEmbedContentsRequest (POST …:batchEmbedContents). `dimensions` becomes
// outputDimensionality. Throws RequestError naming the field it cannot send.
struct EmbedRequest {
  bool batch = false;
  Json body;
};
EmbedRequest to_embed_request(const Json& openai, const std::string& remote_model);

// Gemini GenerateContentResponse → OpenAI chat.completion. `id` and `model`
// are used when the response carries no responseId / modelVersion.
Json to_chat_completion(const Json& response, const std::string& fallback_id,
                        const std::string& fallback_model);
// Gemini EmbedContentResponse ({"embedding":{…}}) or BatchEmbedContentsResponse
// ({"embeddings":[…]}) → OpenAI embedding list, with usage from its
// usageMetadata.promptTokenCount (0 when the reply has none). Null when the
// reply is neither shape.
Json to_embedding_list(const Json& response, const std::string& model, Usage& usage);
// Gemini finishReason → OpenAI finish_reason (before tool calls are considered).
std::string_view finish_reason(std::string_view gemini_reason);
Usage usage_of(const Json& usage_metadata);
// A functionCall part's thoughtSignature → the OpenAI tool call's
// extra_content.google.thought_signature (the convention of Google's own
// OpenAI-compatible endpoint; clients echo it back with the call, and
// to_generate_request puts it back on the part).
void add_thought_signature(Json& tool_call, const Json& part);
// Gemini 3 refuses a conversation whose model turns carry function calls
// without the thought signature they came with — which is what clients that
// rebuild tool calls from their own objects send (LangChain's ChatOpenAI drops
// extra_content). Google documents a sentinel signature for such calls
// ("skip_thought_signature_validator"); it goes on each unsigned first
// function call of a model turn, real signatures are never replaced.
void sign_unsigned_calls(Json& generate_request);
// "chatcmpl-<responseId>", or a generated id when there is none.
std::string completion_id(const Json& response, std::string_view request_id);

class Adapter final : public providers::Adapter {
 public:
  UpstreamRequest build_request(const InboundRequest& in,
                                const routing::Route& route) const override;
  Reply translate_reply(const InboundRequest& in, int status, std::string body,
                        const HeaderView& headers) const override;
  std::unique_ptr<StreamTranslator> stream_translator(const InboundRequest& in) const override;
  Reply map_error(const Connection& connection, int status, std::string body,
                  const HeaderView& headers) const override;
};

}  // namespace llmproxy::providers::google
