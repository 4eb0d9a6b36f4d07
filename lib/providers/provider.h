// The provider adapter boundary. The server knows only this interface: it
// hands an adapter the client's (OpenAI-format) request and the route, sends
// what comes back upstream, and feeds the reply through the adapter on its way
// to the client. OpenAI-shaped providers share one pass-through adapter that
// touches only `model`, auth and `stream_options`; translating providers
// (Anthropic, Gemini, Bedrock) implement the same interface.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/domain/types.h"
#include "lib/routing/route.h"
#include "lib/util/json_scan.h"

namespace llmproxy::providers {

// kMessages is Anthropic's inbound Messages API; adapters other than the
// anthropic pass-through only ever see the chat request it is translated to.
enum class Endpoint { kChat, kCompletions, kEmbeddings, kMessages };

// The client's request, validated: `body` is one JSON object, and the spans
// locate its top-level fields.
struct InboundRequest {
  Endpoint endpoint = Endpoint::kChat;
  std::string_view body;
  json_scan::Span model, stream, stream_options;
  bool stream_requested = false;
  std::string_view request_id;
  // Client headers a pass-through adapter forwards (e.g. anthropic-version).
  std::vector<std::pair<std::string, std::string>> forward_headers;
  // Where the request goes; set once routed (adapters configured per
  // connection, like `template`, read their settings from it).
  const routing::Route* route = nullptr;
};

struct UpstreamRequest {
  bool tls = false;
  std::string host;
  std::string port;
  std::string target;  // path and query
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct Usage {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  bool reported = false;
};

// Headers looked up by name (case-insensitively) where the server already
// holds them: nothing is copied for code that never asks. The upstream's reply
// headers go to adapters (some providers put facts only there: Bedrock's
// X-Amzn-Bedrock-Input-Token-Count, the x-amzn-ErrorType of an error); the
// client's request headers go to inbound APIs (anthropic-version).
class HeaderView {
 public:
  // The value of the first header called `name`, or empty. Valid while the
  // request or reply is being handled.
  virtual std::string_view get(std::string_view name) const = 0;

 protected:
  ~HeaderView() = default;
};

// A reply without headers (answered in-process, or in tests).
const HeaderView& no_headers();

// Headers held in a list (tests, and callers that have no parser to view).
class HeaderList final : public HeaderView {
 public:
  HeaderList() = default;
  HeaderList(std::initializer_list<std::pair<std::string, std::string>> headers)
      : headers_(headers) {}
  std::string_view get(std::string_view name) const override;

 private:
  std::vector<std::pair<std::string, std::string>> headers_;
};

// A reply ready for the client.
struct Reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  Usage usage;
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. Retry-After
};

// Turns the upstream's streamed body into what the client receives, fed in
// arbitrary slices. Emits only whole SSE events.
class StreamTranslator {
 public:
  virtual ~StreamTranslator() = default;
  virtual void feed(std::string_view upstream_bytes, std::string& to_client) = 0;
  // The upstream ended the body; flush what is left.
  virtual void finish(std::string& to_client) = 0;
  virtual const Usage& usage() const = 0;
  // True once the stream's proper end (e.g. `data: [DONE]`) was seen.
  virtual bool complete() const = 0;
  // Why the stream cannot go on (e.g. a frame failed its CRC), or empty: the
  // server stops reading the upstream and tells the client this reason.
  virtual std::string failure() const { return {}; }
  // True when the translator already sent the client an in-band error event
  // (the provider's own, e.g. a mid-stream exception): the server adds none.
  virtual bool error_sent() const { return false; }
};

// A request that cannot be sent (bad field for this provider): 400 to the client.
class RequestError : public std::runtime_error {
 public:
  RequestError(std::string param, const std::string& message)
      : std::runtime_error(message), param_(std::move(param)) {}
  const std::string& param() const { return param_; }

 private:
  std::string param_;
};

class Adapter {
 public:
  virtual ~Adapter() = default;

  // Providers answered in-process (mock) never go upstream: the server calls
  // answer() / answer_stream() instead of build_request().
  virtual bool local() const { return false; }
  virtual Reply answer(const InboundRequest&, const routing::Route&) const { return {}; }
  virtual std::vector<std::string> answer_stream(const InboundRequest&, const routing::Route&,
                                                 Usage&) const {
    return {};
  }

  // Throws RequestError for requests the provider cannot take.
  virtual UpstreamRequest build_request(const InboundRequest& in,
                                        const routing::Route& route) const = 0;
  // A complete (non-streamed) upstream reply → the client's reply.
  virtual Reply translate_reply(const InboundRequest& in, int status, std::string body,
                                const HeaderView& headers) const = 0;
  virtual std::unique_ptr<StreamTranslator> stream_translator(const InboundRequest& in) const = 0;
  // Whether a 2xx reply with this Content-Type is a stream to relay as it
  // arrives (SSE; some providers use a binary event stream of their own).
  virtual bool is_stream(std::string_view content_type) const {
    return content_type.starts_with("text/event-stream");
  }
  // The adapter that takes `endpoint`'s requests as the client sent them
  // (the provider's own API, e.g. Anthropic's Messages for anthropic
  // connections), or null: such requests reach this adapter translated into
  // the OpenAI chat request every adapter takes.
  virtual const Adapter* native(Endpoint) const { return nullptr; }
  // A non-2xx upstream reply → OpenAI's error shape with a faithful status.
  // (401/403, the provider refusing the connection's own key, never get
  // here: the server answers those itself.) The default passes OpenAI-shaped
  // errors through and wraps anything else.
  virtual Reply map_error(const Connection& connection, int status, std::string body,
                          const HeaderView& headers) const;
};

// {"error":{"message","type","param","code"}}.
std::string openai_error_body(std::string_view message, std::string_view type,
                              std::optional<std::string_view> code = std::nullopt,
                              std::optional<std::string_view> param = std::nullopt);

// The adapter for every provider type.
const Adapter& adapter_for(Provider provider);

}  // namespace llmproxy::providers
