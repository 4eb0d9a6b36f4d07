// Anthropic's SSE event stream → OpenAI chat.completion.chunk events.
#include <map>
#include <optional>

#include "lib/domain/time.h"
#include "lib/providers/anthropic/anthropic_adapter.h"
#include "lib/providers/openai/openai_adapter.h"
#include "lib/providers/sse.h"

namespace llmproxy::providers::anthropic {
namespace {

class Stream final : public StreamTranslator {
 public:
  explicit Stream(bool client_wants_usage) : client_wants_usage_(client_wants_usage) {}

  void feed(std::string_view bytes, std::string& out) override {
    events_.feed(bytes, [&](const sse::Event& ev) { on_event(ev, out); });
  }
  void finish(std::string& out) override {
    events_.finish([&](const sse::Event& ev) { on_event(ev, out); });
  }
  const Usage& usage() const override { return usage_; }
  bool complete() const override { return done_; }

 private:
  void on_event(const sse::Event& ev, std::string& out) {
    if (ev.data.empty()) return;
    Json data = Json::parse(ev.data, nullptr, false);
    if (!data.is_object()) return;
    std::string type = data.value("type", "");
    if (type == "message_start") {
      const Json& msg = data["message"];
      id_ = msg.value("id", "");
      model_ = msg.value("model", "");
      usage_ = usage_of(msg.value("usage", Json::object()));
      emit(out, {{"role", "assistant"}, {"content", ""}});
    } else if (type == "content_block_start") {
      const Json& block = data["content_block"];
      if (block.value("type", "") == "tool_use") {
        int openai_index = next_tool_++;
        tool_index_[data.value("index", 0)] = openai_index;
        emit(out, {{"tool_calls", Json::array({{{"index", openai_index},
                                                {"id", block.value("id", "")},
                                                {"type", "function"},
                                                {"function",
                                                 {{"name", block.value("name", "")},
                                                  {"arguments", ""}}}}})}});
      } else if (block.value("type", "") == "text" && !block.value("text", "").empty()) {
        emit(out, {{"content", block["text"]}});
      }
    } else if (type == "content_block_delta") {
      const Json& delta = data["delta"];
      std::string kind = delta.value("type", "");
      if (kind == "text_delta") {
        emit(out, {{"content", delta.value("text", "")}});
      } else if (kind == "input_json_delta") {
        auto it = tool_index_.find(data.value("index", 0));
        int index = it == tool_index_.end() ? 0 : it->second;
        emit(out, {{"tool_calls", Json::array({{{"index", index},
                                                {"function",
                                                 {{"arguments",
                                                   delta.value("partial_json", "")}}}}})}});
      }
    } else if (type == "message_delta") {
      if (data.contains("usage")) {
        Usage later = usage_of(data["usage"]);
        usage_.completion_tokens = later.completion_tokens;
        if (later.prompt_tokens > 0) usage_.prompt_tokens = later.prompt_tokens;
        usage_.reported = true;
      }
      std::string stop = data.contains("delta") ? data["delta"].value("stop_reason", "") : "";
      if (!stop.empty()) emit(out, Json::object(), finish_reason(stop));
    } else if (type == "message_stop") {
      if (client_wants_usage_) {
        Json chunk = base();
        chunk["choices"] = Json::array();
        chunk["usage"] = {{"prompt_tokens", usage_.prompt_tokens},
                          {"completion_tokens", usage_.completion_tokens},
                          {"total_tokens", usage_.prompt_tokens + usage_.completion_tokens}};
        write(out, chunk);
      }
      out += "data: [DONE]\n\n";
      done_ = true;
    } else if (type == "error") {
      const Json& err = data.value("error", Json::object());
      std::string kind = err.value("type", "api_error");
      out += "data: " +
             openai_error_body(err.value("message", "the provider reported an error"), kind, kind) +
             "\n\n";
    }
    // ping and content_block_stop carry nothing for OpenAI clients.
  }

  Json base() const {
    return {{"id", id_},
            {"object", "chat.completion.chunk"},
            {"created", created_},
            {"model", model_}};
  }

  void emit(std::string& out, Json delta, std::optional<std::string_view> finish = std::nullopt) {
    Json chunk = base();
    chunk["choices"] = Json::array({{{"index", 0},
                                     {"delta", std::move(delta)},
                                     {"logprobs", nullptr},
                                     {"finish_reason", finish ? Json(*finish) : Json()}}});
    write(out, chunk);
  }

  static void write(std::string& out, const Json& chunk) {
    out += "data: ";
    out += chunk.dump();
    out += "\n\n";
  }

  bool client_wants_usage_;
  sse::Parser events_;
  std::string id_, model_;
  std::int64_t created_ = now_ms() / 1000;
  std::map<int, int> tool_index_;
  int next_tool_ = 0;
  Usage usage_;
  bool done_ = false;
};

}  // namespace

std::unique_ptr<StreamTranslator> Adapter::stream_translator(const InboundRequest& in) const {
  return std::make_unique<Stream>(client_wants_usage(in));
}

}  // namespace llmproxy::providers::anthropic
