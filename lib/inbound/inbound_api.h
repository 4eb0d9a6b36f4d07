// The APIs clients speak to the proxy: OpenAI's chat completions, completions
// and embeddings, Anthropic's Messages. Each is one InboundApi: which requests
// it accepts, how the proxy's own errors look to its clients, and how a
// request reaches a connection's adapter: as sent, when the adapter speaks
// the API natively, or translated into the OpenAI request every adapter
// takes, with the reply translated back. The server (lib/server) knows only
// this interface and the adapter interface (lib/providers/provider.h).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "lib/providers/provider.h"

namespace llmproxy::inbound {

// A request refused before it is routed: a 400 in the API's own shape.
struct Refusal {
  std::string message;
  std::string code;  // "invalid_json", "missing_required_parameter", …
  std::optional<std::string> param;
};

// How a request is handed to a connection's adapter.
struct Binding {
  const providers::Adapter* adapter = nullptr;
  // The request was translated: replies, streams and errors from the adapter
  // are in OpenAI's shape and go through reply_body()/client_stream().
  bool translated = false;
};

class InboundApi {
 public:
  virtual ~InboundApi() = default;

  // What adapters are asked for (the chat request, for translated APIs).
  virtual providers::Endpoint endpoint() const = 0;

  // Checks the body (one JSON object with the fields this API requires),
  // locates its top-level fields in `in` and decodes the model asked for.
  virtual std::optional<Refusal> parse(std::string_view body, providers::InboundRequest& in,
                                       std::string& model) const = 0;

  // An error of the proxy's own, in the shape this API's clients parse.
  virtual std::string error_body(int status, std::string_view message, std::string_view type,
                                 std::optional<std::string_view> code,
                                 std::optional<std::string_view> param) const;
  // The in-band event that tells a streaming client its stream broke.
  virtual std::string stream_error_event(std::string_view message, std::string_view type,
                                         std::string_view code) const;

  // Readies `in` for `adapter`, the routed connection's. A translated body
  // is kept in `translated_body`, which must outlive the request. Throws
  // providers::RequestError for a request the target cannot take.
  virtual Binding bind(const providers::Adapter& adapter, providers::InboundRequest& in,
                       const providers::HeaderView& client_headers,
                       std::string& translated_body) const;

  // Only for translated bindings: an OpenAI-shaped reply body (or a whole
  // SSE stream, by its content type) in this API's shape, and a translator
  // from the adapter's stream translator (null: OpenAI chunks as they are).
  virtual std::string reply_body(int status, std::string_view content_type, std::string body) const;
  virtual std::unique_ptr<providers::StreamTranslator> client_stream(
      std::unique_ptr<providers::StreamTranslator> from_adapter) const;
};

// The API served at `path` (as sent, with or without the /v1 prefix), or null.
const InboundApi* api_for(std::string_view path);

// Checks an OpenAI-style request body: a JSON object with a non-empty string
// `model` and the field `required` (an array when `required_array`).
std::optional<Refusal> parse_openai_style(std::string_view body, std::string_view required,
                                          bool required_array, providers::InboundRequest& in,
                                          std::string& model);

}  // namespace llmproxy::inbound
