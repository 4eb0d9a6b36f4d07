// Gemini's streamGenerateContent?alt=sse → OpenAI chat.completion.chunk events.
#include <cctype>
#include <map>
#include <optional>

#include "lib/domain/time.h"
#include "lib/providers/google/google_adapter.h"
#include "lib/providers/openai/openai_adapter.h"
#include "lib/providers/sse.h"

namespace llmproxy::providers::google {
namespace {

class Stream final : public StreamTranslator {
 public:
  Stream(bool client_wants_usage, std::string fallback_id, std::string fallback_model)
      : client_wants_usage_(client_wants_usage),
        id_(std::move(fallback_id)),
        model_(std::move(fallback_model)) {}

  void feed(std::string_view bytes, std::string& out) override {
    events_.feed(bytes, [&](const sse::Event& ev) { on_event(ev, out); });
  }
  void finish(std::string& out) override {
    events_.finish([&](const sse::Event& ev) { on_event(ev, out); });
    if (done_ || !finished_) return;  // ended early: the server reports the break
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
  }
  const Usage& usage() const override { return usage_; }
  bool complete() const override { return done_; }

 private:
  struct Candidate {
    bool started = false, finished = false;
    int tool_calls = 0;
  };

  void on_event(const sse::Event& ev, std::string& out) {
    if (ev.data.empty() || ev.data == "[DONE]") return;
    Json data = Json::parse(ev.data, nullptr, false);
    if (data.is_array() && data.size() == 1) data = data[0];
    if (!data.is_object()) return;
    if (data.contains("error")) {
      const Json& err = data["error"].is_object() ? data["error"] : Json::object();
      std::string code = err.value("status", "UNKNOWN");
      std::string type = code;
      for (char& ch : type) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      out += "data: " +
             openai_error_body(err.value("message", "the provider reported an error"), type, code) +
             "\n\n";
      return;
    }
    if (!seen_response_) {
      seen_response_ = true;
      std::string response_id = data.value("responseId", "");
      if (!response_id.empty()) id_ = "chatcmpl-" + response_id;
      std::string version = data.value("modelVersion", "");
      if (!version.empty()) model_ = version;
    }
    if (data.contains("usageMetadata") && data["usageMetadata"].is_object())
      usage_ = usage_of(data["usageMetadata"]);
    const Json& candidates = data.contains("candidates") && data["candidates"].is_array()
                                 ? data["candidates"]
                                 : Json::array();
    for (std::size_t i = 0; i < candidates.size(); ++i) on_candidate(candidates[i], i, out);
    if (candidates.empty() && data.contains("promptFeedback") &&
        data["promptFeedback"].is_object() && data["promptFeedback"].contains("blockReason")) {
      // Blocked at the prompt: one empty choice, filtered.
      Candidate& c = candidates_[0];
      if (!c.started) emit(out, 0, {{"role", "assistant"}, {"content", ""}});
      c.started = true;
      if (!c.finished) emit(out, 0, Json::object(), "content_filter");
      c.finished = finished_ = true;
    }
  }

  void on_candidate(const Json& cand, std::size_t position, std::string& out) {
    if (!cand.is_object()) return;
    int index = cand.value("index", static_cast<int>(position));
    Candidate& c = candidates_[index];
    if (c.finished) return;
    Json delta = Json::object();
    if (!c.started) delta["role"] = "assistant";
    std::string text;
    Json calls = Json::array();
    const Json& content = cand.contains("content") ? cand["content"] : Json::object();
    if (content.is_object() && content.contains("parts") && content["parts"].is_array()) {
      for (const Json& part : content["parts"]) {
        if (!part.is_object() || part.value("thought", false)) continue;
        if (part.contains("text") && part["text"].is_string()) {
          text += part["text"].get<std::string>();
        } else if (part.contains("functionCall") && part["functionCall"].is_object()) {
          const Json& fc = part["functionCall"];
          Json call = {{"index", c.tool_calls++},
                       {"id", "call_" + std::to_string(next_call_++)},
                       {"type", "function"},
                       {"function",
                        {{"name", fc.value("name", "")},
                         {"arguments", fc.value("args", Json::object()).dump()}}}};
          add_thought_signature(call, part);
          calls.push_back(std::move(call));
        }
      }
    }
    if (!text.empty() || !c.started) delta["content"] = text;
    if (!calls.empty()) delta["tool_calls"] = std::move(calls);
    if (!c.started || !text.empty() || delta.contains("tool_calls"))
      emit(out, index, std::move(delta));
    c.started = true;
    if (cand.contains("finishReason") && cand["finishReason"].is_string()) {
      std::string_view reason = finish_reason(cand["finishReason"].get<std::string>());
      if (reason == "stop" && c.tool_calls > 0) reason = "tool_calls";
      emit(out, index, Json::object(), reason);
      c.finished = finished_ = true;
    }
  }

  Json base() const {
    return {
        {"id", id_}, {"object", "chat.completion.chunk"}, {"created", created_}, {"model", model_}};
  }

  void emit(std::string& out, int index, Json delta,
            std::optional<std::string_view> finish = std::nullopt) {
    Json chunk = base();
    chunk["choices"] = Json::array({{{"index", index},
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
  std::map<int, Candidate> candidates_;
  int next_call_ = 0;
  Usage usage_;
  bool seen_response_ = false, finished_ = false, done_ = false;
};

}  // namespace

std::unique_ptr<StreamTranslator> Adapter::stream_translator(const InboundRequest& in) const {
  return std::make_unique<Stream>(client_wants_usage(in), completion_id(Json(), in.request_id),
                                  in.route ? in.route->remote : std::string());
}

}  // namespace llmproxy::providers::google
