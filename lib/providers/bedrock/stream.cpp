// ConverseStream's binary event stream → OpenAI chat.completion.chunk events.
#include <map>
#include <optional>

#include "lib/crypto/hash.h"
#include "lib/domain/time.h"
#include "lib/providers/bedrock/bedrock_adapter.h"
#include "lib/providers/bedrock/eventstream.h"
#include "lib/providers/openai/openai_adapter.h"

namespace llmproxy::providers::bedrock {
namespace {

std::string string_at(const Json& obj, const char* key) {
  return obj.is_object() && obj.contains(key) && obj[key].is_string() ? obj[key].get<std::string>()
                                                                      : "";
}

int index_at(const Json& obj) {
  return obj.is_object() && obj.contains("contentBlockIndex") &&
                 obj["contentBlockIndex"].is_number_integer()
             ? obj["contentBlockIndex"].get<int>()
             : 0;
}

const Json& object_at(const Json& obj, const char* key) {
  static const Json kEmpty = Json::object();
  return obj.is_object() && obj.contains(key) && obj[key].is_object() ? obj[key] : kEmpty;
}

class Stream final : public StreamTranslator {
 public:
  Stream(bool client_wants_usage, std::string model)
      : client_wants_usage_(client_wants_usage),
        id_("chatcmpl-" + crypto::hex(crypto::random_bytes(12))),
        model_(std::move(model)) {}

  void feed(std::string_view bytes, std::string& out) override {
    messages_.clear();
    decoder_.feed(bytes, messages_);  // on failure: complete() stays false
    for (const auto& m : messages_) on_message(m, out);
  }

  void finish(std::string& out) override {
    // metadata never came after messageStop: end the stream anyway.
    if (stopped_ && !done_ && !decoder_.failed() && decoder_.pending() == 0) end(out);
  }

  const Usage& usage() const override { return usage_; }
  bool complete() const override { return done_; }
  std::string failure() const override {
    return decoder_.failed() ? "the event stream is corrupt: " + decoder_.error() : std::string();
  }
  bool error_sent() const override { return error_sent_; }

 private:
  void on_message(const eventstream::Message& m, std::string& out) {
    if (done_) return;
    Json data = Json::parse(m.payload, nullptr, false);
    std::string_view kind = m.header(":message-type");
    if (kind == "exception" || kind == "error") {
      std::string type(kind == "exception" ? m.header(":exception-type") : m.header(":error-code"));
      if (type.empty()) type = "BedrockError";
      std::string message = string_at(data, "message");
      if (message.empty()) message = string_at(data, "Message");
      if (message.empty() && kind == "error") message = std::string(m.header(":error-message"));
      if (message.empty()) message = "the provider reported an error";
      out += "data: " + openai_error_body(message, type, type) + "\n\n";
      error_sent_ = true;
      return;
    }
    if (!data.is_object()) return;
    std::string_view event = m.header(":event-type");
    if (event == "messageStart") {
      emit(out, {{"role", "assistant"}, {"content", ""}});
    } else if (event == "contentBlockStart") {
      const Json& use = object_at(object_at(data, "start"), "toolUse");
      if (!use.empty()) {
        int openai_index = next_tool_++;
        tool_index_[index_at(data)] = openai_index;
        emit(out, {{"tool_calls",
                    Json::array(
                        {{{"index", openai_index},
                          {"id", string_at(use, "toolUseId")},
                          {"type", "function"},
                          {"function", {{"name", string_at(use, "name")}, {"arguments", ""}}}}})}});
      }
    } else if (event == "contentBlockDelta") {
      const Json& delta = object_at(data, "delta");
      if (delta.contains("text") && delta["text"].is_string()) {
        emit(out, {{"content", delta["text"]}});
      } else if (delta.contains("toolUse") && delta["toolUse"].is_object()) {
        int block = index_at(data);
        auto it = tool_index_.find(block);
        int index = it != tool_index_.end() ? it->second : (tool_index_[block] = next_tool_++);
        emit(out, {{"tool_calls",
                    Json::array(
                        {{{"index", index},
                          {"function", {{"arguments", string_at(delta["toolUse"], "input")}}}}})}});
      }
      // reasoningContent deltas have no OpenAI chat equivalent.
    } else if (event == "messageStop") {
      if (!stopped_) emit(out, Json::object(), finish_reason(string_at(data, "stopReason")));
      stopped_ = true;
    } else if (event == "metadata") {
      if (data.contains("usage")) usage_ = usage_of(data["usage"]);
      if (stopped_) end(out);
    }
    // contentBlockStop carries nothing for OpenAI clients.
  }

  void end(std::string& out) {
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

  Json base() const {
    return {
        {"id", id_}, {"object", "chat.completion.chunk"}, {"created", created_}, {"model", model_}};
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
  bool error_sent_ = false;
  std::string id_, model_;
  std::int64_t created_ = now_ms() / 1000;
  eventstream::Decoder decoder_;
  std::vector<eventstream::Message> messages_;
  std::map<int, int> tool_index_;
  int next_tool_ = 0;
  Usage usage_;
  bool stopped_ = false;
  bool done_ = false;
};

}  // namespace

std::unique_ptr<StreamTranslator> Adapter::stream_translator(const InboundRequest& in) const {
  return std::make_unique<Stream>(client_wants_usage(in), client_model(in));
}

}  // namespace llmproxy::providers::bedrock
