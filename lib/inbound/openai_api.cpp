#include "lib/inbound/openai_api.h"

namespace llmproxy::inbound {
namespace {

// One endpoint of OpenAI's API: which field it requires besides `model`.
class OpenAIEndpoint final : public InboundApi {
 public:
  OpenAIEndpoint(providers::Endpoint endpoint, std::string_view required, bool array)
      : endpoint_(endpoint), required_(required), array_(array) {}

  providers::Endpoint endpoint() const override { return endpoint_; }
  std::optional<Refusal> parse(std::string_view body, providers::InboundRequest& in,
                               std::string& model) const override {
    in.endpoint = endpoint_;
    return parse_openai_style(body, required_, array_, in, model);
  }

 private:
  providers::Endpoint endpoint_;
  std::string_view required_;
  bool array_;
};

}  // namespace

const InboundApi& openai_chat() {
  static const OpenAIEndpoint api(providers::Endpoint::kChat, "messages", true);
  return api;
}

const InboundApi& openai_completions() {
  static const OpenAIEndpoint api(providers::Endpoint::kCompletions, "prompt", false);
  return api;
}

const InboundApi& openai_embeddings() {
  static const OpenAIEndpoint api(providers::Endpoint::kEmbeddings, "input", false);
  return api;
}

}  // namespace llmproxy::inbound
