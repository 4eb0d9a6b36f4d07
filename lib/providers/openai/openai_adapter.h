// openai, azure, vllm, llamacpp, ollama, openai-compatible: the client's body
// goes upstream unchanged but for `model` (alias → remote) and, for streams,
// `stream_options.include_usage` so that usage is known.
#pragma once

#include "lib/providers/provider.h"

namespace llmproxy::providers {

class OpenAIAdapter final : public Adapter {
 public:
  UpstreamRequest build_request(const InboundRequest& in, const routing::Route& route) const override;
  Reply translate_reply(const InboundRequest& in, int status, std::string body,
                        const HeaderView& headers) const override;
  std::unique_ptr<StreamTranslator> stream_translator(const InboundRequest& in) const override;
};

// Usage from an OpenAI `usage` object; reported=false if absent or null.
Usage parse_openai_usage(std::string_view usage_json);
// True when the client itself asked for the usage chunk.
bool client_wants_usage(const InboundRequest& in);

}  // namespace llmproxy::providers
