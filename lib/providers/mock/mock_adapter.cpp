#include "lib/providers/mock/mock_adapter.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "lib/crypto/hash.h"
#include "lib/domain/time.h"
#include "lib/providers/openai/openai_adapter.h"

namespace llmproxy::providers {
namespace {

// Ordered, so replies list their fields in the order OpenAI's do.
using json = nlohmann::ordered_json;

std::vector<std::string> words(std::string_view text) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    std::size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > start) out.emplace_back(text.substr(start, i - start));
  }
  return out;
}

// Text of a message's content: a string, or the text parts of an array.
std::string text_of(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string out;
  if (content.is_array()) {
    for (const json& part : content) {
      if (part.is_object() && part.value("type", "") == "text" && part.contains("text") &&
          part["text"].is_string()) {
        if (!out.empty()) out += " ";
        out += part["text"].get<std::string>();
      }
    }
  }
  return out;
}

struct Echo {
  std::string reply;
  std::int64_t prompt_tokens = 0;
};

Echo echo(const InboundRequest& in) {
  Echo e;
  json body = json::parse(in.body, nullptr, false);
  if (in.endpoint == Endpoint::kChat) {
    const json& messages = body.contains("messages") ? body["messages"] : json::array();
    for (const json& m : messages) {
      if (!m.is_object() || !m.contains("content")) continue;
      std::string text = text_of(m["content"]);
      e.prompt_tokens += static_cast<std::int64_t>(words(text).size());
      if (m.value("role", "") == "user") e.reply = text;
    }
  } else {
    const json& prompt = body.contains("prompt") ? body["prompt"] : json("");
    e.reply = prompt.is_string() ? prompt.get<std::string>() : text_of(prompt);
    e.prompt_tokens = static_cast<std::int64_t>(words(e.reply).size());
  }
  if (e.reply.empty()) e.reply = "Hello from the llm-proxy mock provider.";
  return e;
}

std::string id_for(const InboundRequest& in, const char* prefix) {
  return std::string(prefix) + std::string(in.request_id);
}

json usage_json(std::int64_t prompt, std::int64_t completion) {
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion}};
}

// Deterministic unit-ish vectors so that equal inputs embed equally.
json embed(const std::string& text) {
  std::string digest = crypto::sha256(text);
  json v = json::array();
  for (int i = 0; i < 8; ++i)
    v.push_back((static_cast<unsigned char>(digest[static_cast<std::size_t>(i)]) - 127.5) / 127.5);
  return v;
}

Reply embeddings(const InboundRequest& in, const routing::Route& route) {
  json body = json::parse(in.body, nullptr, false);
  json input = body.contains("input") ? body["input"] : json("");
  if (!input.is_array()) input = json::array({input});
  bool base64 = body.contains("encoding_format") && body["encoding_format"] == "base64";
  json data = json::array();
  std::int64_t tokens = 0;
  for (std::size_t i = 0; i < input.size(); ++i) {
    std::string text = input[i].is_string() ? input[i].get<std::string>() : input[i].dump();
    tokens += static_cast<std::int64_t>(words(text).size());
    json vector = embed(text);
    if (base64) {
      // As OpenAI does: little-endian float32s, base64-encoded.
      std::string raw;
      for (const json& x : vector) {
        float f = x.get<float>();
        char bytes[sizeof f];
        std::memcpy(bytes, &f, sizeof f);
        raw.append(bytes, sizeof f);
      }
      vector = crypto::base64(raw);
    }
    data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", vector}});
  }
  json out = {{"object", "list"},
              {"data", data},
              {"model", route.remote},
              {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}};
  return {200, "application/json", out.dump(), {tokens, 0, true}, {}};
}

}  // namespace

Reply MockAdapter::answer(const InboundRequest& in, const routing::Route& route) const {
  if (in.endpoint == Endpoint::kEmbeddings) return embeddings(in, route);
  Echo e = echo(in);
  auto completion = static_cast<std::int64_t>(words(e.reply).size());
  std::int64_t created = now_ms() / 1000;
  json out;
  if (in.endpoint == Endpoint::kChat) {
    out = {{"id", id_for(in, "chatcmpl-")},
           {"object", "chat.completion"},
           {"created", created},
           {"model", route.remote},
           {"choices",
            json::array({{{"index", 0},
                          {"message", {{"role", "assistant"}, {"content", e.reply}, {"refusal", nullptr}}},
                          {"logprobs", nullptr},
                          {"finish_reason", "stop"}}})},
           {"usage", usage_json(e.prompt_tokens, completion)},
           {"system_fingerprint", "llm-proxy-mock"}};
  } else {
    out = {{"id", id_for(in, "cmpl-")},
           {"object", "text_completion"},
           {"created", created},
           {"model", route.remote},
           {"choices", json::array({{{"index", 0},
                                     {"text", e.reply},
                                     {"logprobs", nullptr},
                                     {"finish_reason", "stop"}}})},
           {"usage", usage_json(e.prompt_tokens, completion)}};
  }
  return {200, "application/json", out.dump(), {e.prompt_tokens, completion, true}, {}};
}

std::vector<std::string> MockAdapter::answer_stream(const InboundRequest& in,
                                                    const routing::Route& route,
                                                    Usage& usage) const {
  Echo e = echo(in);
  std::vector<std::string> pieces = words(e.reply);
  std::int64_t created = now_ms() / 1000;
  bool chat = in.endpoint == Endpoint::kChat;
  std::string id = id_for(in, chat ? "chatcmpl-" : "cmpl-");
  auto event = [](const json& j) { return "data: " + j.dump() + "\n\n"; };
  auto chunk = [&](json delta_or_text, json finish) {
    json choice = {{"index", 0}};
    if (chat) choice["delta"] = std::move(delta_or_text);
    else choice["text"] = std::move(delta_or_text);
    choice["logprobs"] = nullptr;
    choice["finish_reason"] = std::move(finish);
    return json{{"id", id},
                {"object", chat ? "chat.completion.chunk" : "text_completion"},
                {"created", created},
                {"model", route.remote},
                {"choices", json::array({choice})}};
  };

  std::vector<std::string> out;
  if (chat) out.push_back(event(chunk({{"role", "assistant"}, {"content", ""}}, nullptr)));
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    std::string text = (i ? " " : "") + pieces[i];
    out.push_back(event(chat ? chunk({{"content", text}}, nullptr) : chunk(text, nullptr)));
  }
  out.push_back(event(chat ? chunk(json::object(), "stop") : chunk("", "stop")));
  auto completion = static_cast<std::int64_t>(pieces.size());
  usage = {e.prompt_tokens, completion, true};
  if (client_wants_usage(in)) {
    json last = chunk(json::object(), nullptr);
    last["choices"] = json::array();
    last["usage"] = usage_json(e.prompt_tokens, completion);
    out.push_back(event(last));
  }
  out.push_back("data: [DONE]\n\n");
  return out;
}

}  // namespace llmproxy::providers
