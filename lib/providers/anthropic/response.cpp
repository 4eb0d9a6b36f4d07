// Anthropic message / error → OpenAI chat.completion / error.
#include "lib/domain/time.h"
#include "lib/providers/anthropic/anthropic_adapter.h"

namespace llmproxy::providers::anthropic {

std::string_view finish_reason(std::string_view stop_reason) {
  if (stop_reason == "max_tokens") return "length";
  if (stop_reason == "tool_use") return "tool_calls";
  if (stop_reason == "refusal") return "content_filter";
  return "stop";  // end_turn, stop_sequence, pause_turn
}

Usage usage_of(const Json& u) {
  Usage out;
  if (!u.is_object()) return out;
  auto count = [&](const char* key) -> std::int64_t {
    return u.contains(key) && u[key].is_number_integer() ? u[key].get<std::int64_t>() : 0;
  };
  // Cached prompt tokens are still prompt tokens, as OpenAI counts them.
  out.prompt_tokens = count("input_tokens") + count("cache_creation_input_tokens") +
                      count("cache_read_input_tokens");
  out.completion_tokens = count("output_tokens");
  out.reported = true;
  return out;
}

Json to_chat_completion(const Json& msg) {
  std::string text;
  Json tool_calls = Json::array();
  for (const Json& block : msg.value("content", Json::array())) {
    std::string type = block.value("type", "");
    if (type == "text") {
      text += block.value("text", "");
    } else if (type == "tool_use") {
      tool_calls.push_back({{"id", block.value("id", "")},
                            {"type", "function"},
                            {"function",
                             {{"name", block.value("name", "")},
                              {"arguments", block.value("input", Json::object()).dump()}}}});
    }
  }
  Json message = {{"role", "assistant"},
                  {"content", text.empty() && !tool_calls.empty() ? Json() : Json(text)},
                  {"refusal", nullptr}};
  if (!tool_calls.empty()) message["tool_calls"] = tool_calls;
  Usage u = usage_of(msg.value("usage", Json::object()));
  return {{"id", msg.value("id", "")},
          {"object", "chat.completion"},
          {"created", now_ms() / 1000},
          {"model", msg.value("model", "")},
          {"choices", Json::array({{{"index", 0},
                                    {"message", message},
                                    {"logprobs", nullptr},
                                    {"finish_reason",
                                     finish_reason(msg.value("stop_reason", "end_turn"))}}})},
          {"usage",
           {{"prompt_tokens", u.prompt_tokens},
            {"completion_tokens", u.completion_tokens},
            {"total_tokens", u.prompt_tokens + u.completion_tokens}}}};
}

Reply Adapter::map_error(const Connection& connection, int status, std::string body,
                         const HeaderView&) const {
  Json doc = Json::parse(body, nullptr, false);
  const Json& err = doc.is_object() && doc.contains("error") && doc["error"].is_object()
                        ? doc["error"]
                        : Json::object();
  std::string type = err.value("type", "api_error");
  std::string message = err.value("message", body.substr(0, 200));
  Reply r;
  r.status = status;
  if (status == 529 || type == "overloaded_error") {
    // Overloaded: a 503 that tells SDKs to retry shortly.
    r.status = 503;
    r.headers = {{"Retry-After", "1"}, {"x-should-retry", "true"}};
  }
  r.body = openai_error_body("connection '" + connection.name + "' (anthropic): " + message, type,
                             type);
  return r;
}

}  // namespace llmproxy::providers::anthropic
