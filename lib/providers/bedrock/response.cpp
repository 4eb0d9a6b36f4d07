// Converse reply / Bedrock error → OpenAI chat.completion / error.
#include "lib/domain/time.h"
#include "lib/providers/bedrock/bedrock_adapter.h"

namespace llmproxy::providers::bedrock {

std::string_view finish_reason(std::string_view stop_reason) {
  if (stop_reason == "max_tokens" || stop_reason == "model_context_window_exceeded")
    return "length";
  if (stop_reason == "tool_use") return "tool_calls";
  if (stop_reason == "guardrail_intervened" || stop_reason == "content_filtered")
    return "content_filter";
  return "stop";  // end_turn, stop_sequence
}

Usage usage_of(const Json& u) {
  Usage out;
  if (!u.is_object()) return out;
  auto count = [&](const char* key) -> std::int64_t {
    return u.contains(key) && u[key].is_number_integer() ? u[key].get<std::int64_t>() : 0;
  };
  // Cached prompt tokens are still prompt tokens, as OpenAI counts them.
  out.prompt_tokens =
      count("inputTokens") + count("cacheReadInputTokens") + count("cacheWriteInputTokens");
  out.completion_tokens = count("outputTokens");
  out.reported = true;
  return out;
}

Json to_chat_completion(const Json& reply, const std::string& id, const std::string& model) {
  std::string text;
  Json tool_calls = Json::array();
  const Json& output = reply.contains("output") ? reply["output"] : Json::object();
  const Json& message =
      output.is_object() && output.contains("message") ? output["message"] : Json::object();
  const Json& content =
      message.is_object() && message.contains("content") ? message["content"] : Json::array();
  for (const Json& block : content) {
    if (!block.is_object()) continue;
    if (block.contains("text") && block["text"].is_string()) {
      text += block["text"].get<std::string>();
    } else if (block.contains("toolUse") && block["toolUse"].is_object()) {
      const Json& use = block["toolUse"];
      tool_calls.push_back({{"id", use.value("toolUseId", "")},
                            {"type", "function"},
                            {"function",
                             {{"name", use.value("name", "")},
                              {"arguments", use.value("input", Json::object()).dump()}}}});
    }
    // reasoningContent and other blocks have no OpenAI equivalent.
  }
  Json msg = {{"role", "assistant"},
              {"content", text.empty() && !tool_calls.empty() ? Json() : Json(text)},
              {"refusal", nullptr}};
  if (!tool_calls.empty()) msg["tool_calls"] = tool_calls;
  Usage u = usage_of(reply.value("usage", Json::object()));
  return {
      {"id", id},
      {"object", "chat.completion"},
      {"created", now_ms() / 1000},
      {"model", model},
      {"choices",
       Json::array({{{"index", 0},
                     {"message", msg},
                     {"logprobs", nullptr},
                     {"finish_reason", finish_reason(reply.value("stopReason", "end_turn"))}}})},
      {"usage",
       {{"prompt_tokens", u.prompt_tokens},
        {"completion_tokens", u.completion_tokens},
        {"total_tokens", u.prompt_tokens + u.completion_tokens}}}};
}

namespace {

// The exception name of an AWS type string: "ThrottlingException",
// "com.amazon.bedrock#ThrottlingException" (awsJson `__type`) or
// "ThrottlingException:http://internal.amazon.com/coral/..." (x-amzn-ErrorType).
std::string exception_name(std::string_view type) {
  if (auto colon = type.find(':'); colon != std::string_view::npos) type = type.substr(0, colon);
  if (auto hash = type.rfind('#'); hash != std::string_view::npos) type = type.substr(hash + 1);
  while (!type.empty() && type.front() == ' ') type.remove_prefix(1);
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  return std::string(type);
}

// The exception name: from the body's "__type", else the x-amzn-ErrorType
// header (Bedrock's restJson1 errors carry the type only there), else a name
// in the message, else from the status.
std::string exception_type(int status, const Json& doc, const std::string& message,
                           const HeaderView& headers) {
  std::string type = doc.is_object() && doc.contains("__type") && doc["__type"].is_string()
                         ? exception_name(doc["__type"].get<std::string>())
                         : "";
  if (type.empty()) type = exception_name(headers.get("x-amzn-ErrorType"));
  if (!type.empty()) return type;
  static const char* kKnown[] = {"ThrottlingException",           "ValidationException",
                                 "ResourceNotFoundException",     "ServiceUnavailableException",
                                 "ModelNotReadyException",        "ModelTimeoutException",
                                 "ModelErrorException",           "InternalServerException",
                                 "ServiceQuotaExceededException", "AccessDeniedException"};
  for (const char* name : kKnown) {
    if (message.find(name) != std::string::npos) return name;
  }
  switch (status) {
    case 400:
      return "ValidationException";
    case 404:
      return "ResourceNotFoundException";
    case 408:
      return "ModelTimeoutException";
    case 424:
      return "ModelErrorException";
    case 429:
      return message.find("not ready") != std::string::npos ? "ModelNotReadyException"
                                                            : "ThrottlingException";
    case 503:
      return message.find("not ready") != std::string::npos ? "ModelNotReadyException"
                                                            : "ServiceUnavailableException";
    default:
      return status >= 500 ? "InternalServerException" : "BedrockError";
  }
}

}  // namespace

Reply Adapter::map_error(const Connection& connection, int status, std::string body,
                         const HeaderView& headers) const {
  Json doc = Json::parse(body, nullptr, false);
  std::string message;
  for (const char* key : {"message", "Message"}) {
    if (message.empty() && doc.is_object() && doc.contains(key) && doc[key].is_string())
      message = doc[key].get<std::string>();
  }
  if (message.empty()) message = body.substr(0, 200);
  std::string type = exception_type(status, doc, message, headers);
  Reply r;
  r.status = status;
  // ModelNotReady arrives as HTTP 429 but is a "retry shortly" 503.
  if (status == 503 || type == "ServiceUnavailableException" || type == "ModelNotReadyException") {
    r.status = 503;
    r.headers = {{"Retry-After", "1"}, {"x-should-retry", "true"}};
  } else if (status == 429 || type == "ThrottlingException" ||
             type == "ServiceQuotaExceededException") {
    r.status = 429;
    r.headers = {{"Retry-After", "1"}};
  } else if (status == 408 || type == "ModelTimeoutException") {
    r.status = 504;
  } else if (status == 424 || type == "ModelErrorException") {
    r.status = 502;  // the model itself failed: an upstream error
  }
  r.body =
      openai_error_body("connection '" + connection.name + "' (bedrock): " + message, type, type);
  return r;
}

}  // namespace llmproxy::providers::bedrock
