// `template`: connects an in-house (non-OpenAI) chat API with configuration
// alone. The connection's options.template describes the upstream request
// body (JSON with {{placeholders}}), extra headers, and JSON pointers to the
// reply text and token counts; see README "In-house APIs".
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "lib/providers/provider.h"

namespace llmproxy::providers::templated {

using Json = nlohmann::ordered_json;

// Empty when `spec` is a usable template; otherwise what is wrong with it.
std::string check_template(const Json& spec);

// Renders `body_template` with the variables of an OpenAI chat request.
Json render(const Json& body_template, const Json& chat_request, const std::string& remote_model,
            const std::string& api_key, std::string_view request_id);

class Adapter final : public providers::Adapter {
 public:
  UpstreamRequest build_request(const InboundRequest& in, const routing::Route& route) const override;
  Reply translate_reply(const InboundRequest& in, int status, std::string body,
                        const HeaderView& headers) const override;
  std::unique_ptr<StreamTranslator> stream_translator(const InboundRequest& in) const override;
};

}  // namespace llmproxy::providers::templated
