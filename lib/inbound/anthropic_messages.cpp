#include "lib/inbound/anthropic_messages.h"

#include "lib/providers/anthropic/inbound.h"

namespace llmproxy::inbound {
namespace {

namespace anthropic = providers::anthropic;
using providers::Endpoint;

class MessagesApi final : public InboundApi {
 public:
  Endpoint endpoint() const override { return Endpoint::kMessages; }

  std::optional<Refusal> parse(std::string_view body, providers::InboundRequest& in,
                               std::string& model) const override {
    in.endpoint = Endpoint::kMessages;
    return parse_openai_style(body, "messages", true, in, model);
  }

  std::string error_body(int status, std::string_view message, std::string_view,
                         std::optional<std::string_view>,
                         std::optional<std::string_view>) const override {
    return anthropic::error_body(status, message);
  }

  std::string stream_error_event(std::string_view message, std::string_view,
                                 std::string_view) const override {
    return "event: error\ndata: " + anthropic::error_body(502, message) + "\n\n";
  }

  Binding bind(const providers::Adapter& adapter, providers::InboundRequest& in,
               const providers::HeaderView& client_headers,
               std::string& translated_body) const override {
    if (const providers::Adapter* native = adapter.native(Endpoint::kMessages)) {
      for (std::string_view name : {"anthropic-version", "anthropic-beta"}) {
        std::string_view value = client_headers.get(name);
        if (!value.empty()) in.forward_headers.emplace_back(name, value);
      }
      return {native, false};
    }
    auto parsed = anthropic::Json::parse(in.body, nullptr, false);
    translated_body = anthropic::chat_request_from_messages(parsed).dump();
    static constexpr std::string_view kKeys[] = {"model", "stream", "stream_options"};
    json_scan::Span spans[3];
    std::string error;
    json_scan::scan(translated_body, kKeys, spans, error);
    in.endpoint = Endpoint::kChat;
    in.body = translated_body;
    in.model = spans[0];
    in.stream = spans[1];
    in.stream_options = spans[2];
    return {&adapter, true};
  }

  std::string reply_body(int status, std::string_view content_type,
                         std::string body) const override {
    if (content_type.starts_with("text/event-stream")) {
      // A stream built in one piece (template connections): translated whole.
      auto to_events = anthropic::events_from_chunks(nullptr);
      std::string events;
      to_events->feed(body, events);
      to_events->finish(events);
      return events;
    }
    if (status >= 300) return anthropic::error_body_from_openai(status, body);
    auto completion = anthropic::Json::parse(body, nullptr, false);
    return anthropic::message_from_chat_completion(completion).dump();
  }

  std::unique_ptr<providers::StreamTranslator> client_stream(
      std::unique_ptr<providers::StreamTranslator> from_adapter) const override {
    return anthropic::events_from_chunks(std::move(from_adapter));
  }
};

}  // namespace

const InboundApi& anthropic_messages() {
  static const MessagesApi api;
  return api;
}

}  // namespace llmproxy::inbound
