// Gemini GenerateContentResponse / embeddings / error → OpenAI shapes.
#include <cctype>
#include <random>

#include "lib/domain/time.h"
#include "lib/providers/google/google_adapter.h"

namespace llmproxy::providers::google {
namespace {

std::int64_t count(const Json& u, const char* key) {
  return u.contains(key) && u[key].is_number_integer() ? u[key].get<std::int64_t>() : 0;
}

// "34s" / "1.5s" (a protobuf Duration) → whole seconds, rounded up; 0 if unreadable.
long long seconds_of(const std::string& duration) {
  if (duration.empty() || duration.back() != 's') return 0;
  try {
    double s = std::stod(duration.substr(0, duration.size() - 1));
    if (s <= 0) return 0;
    return static_cast<long long>(s) + (s > static_cast<long long>(s) ? 1 : 0);
  } catch (...) {
    return 0;
  }
}

// The google.rpc.ErrorInfo reason when Google refused the API key itself
// (e.g. API_KEY_INVALID, API_KEY_EXPIRED), else "".
std::string key_refused(const Json& err) {
  if (!err.contains("details") || !err["details"].is_array()) return {};
  for (const Json& d : err["details"]) {
    if (!d.is_object()) continue;
    std::string type = d.value("@type", "");
    if (!type.empty() && !type.ends_with("google.rpc.ErrorInfo")) continue;
    std::string reason = d.value("reason", "");
    if (reason.starts_with("API_KEY_")) return reason;
  }
  return {};
}

}  // namespace

void add_thought_signature(Json& tool_call, const Json& part) {
  if (part.contains("thoughtSignature") && part["thoughtSignature"].is_string())
    tool_call["extra_content"] = {{"google", {{"thought_signature", part["thoughtSignature"]}}}};
}

std::string_view finish_reason(std::string_view reason) {
  if (reason == "STOP" || reason == "FINISH_REASON_UNSPECIFIED" || reason.empty()) return "stop";
  if (reason == "MAX_TOKENS") return "length";
  if (reason == "MALFORMED_FUNCTION_CALL" || reason == "UNEXPECTED_TOOL_CALL") return "stop";
  // SAFETY, RECITATION, LANGUAGE, BLOCKLIST, PROHIBITED_CONTENT, SPII, OTHER,
  // IMAGE_SAFETY: the answer was withheld.
  return "content_filter";
}

Usage usage_of(const Json& u) {
  Usage out;
  if (!u.is_object()) return out;
  out.prompt_tokens = count(u, "promptTokenCount");
  // Thinking tokens are billed as output, as OpenAI counts reasoning tokens.
  out.completion_tokens = count(u, "candidatesTokenCount") + count(u, "thoughtsTokenCount");
  out.reported = true;
  return out;
}

std::string completion_id(const Json& response, std::string_view request_id) {
  std::string id = response.is_object() ? response.value("responseId", "") : "";
  if (!id.empty()) return "chatcmpl-" + id;
  if (!request_id.empty()) return "chatcmpl-" + std::string(request_id);
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "chatcmpl-";
  for (int i = 0; i < 24; ++i) out += kHex[rng() % 16];
  return out;
}

Json to_chat_completion(const Json& response, const std::string& fallback_id,
                        const std::string& fallback_model) {
  Json choices = Json::array();
  int next_call = 0;
  const Json& candidates = response.contains("candidates") && response["candidates"].is_array()
                               ? response["candidates"]
                               : Json::array();
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const Json& cand = candidates[i];
    std::string text;
    Json tool_calls = Json::array();
    const Json& content = cand.contains("content") ? cand["content"] : Json::object();
    if (content.is_object() && content.contains("parts") && content["parts"].is_array()) {
      for (const Json& part : content["parts"]) {
        if (!part.is_object() || part.value("thought", false)) continue;
        if (part.contains("text") && part["text"].is_string()) {
          text += part["text"].get<std::string>();
        } else if (part.contains("functionCall") && part["functionCall"].is_object()) {
          const Json& fc = part["functionCall"];
          Json call = {{"id", "call_" + std::to_string(next_call++)},
                       {"type", "function"},
                       {"function",
                        {{"name", fc.value("name", "")},
                         {"arguments", fc.value("args", Json::object()).dump()}}}};
          add_thought_signature(call, part);
          tool_calls.push_back(std::move(call));
        }
      }
    }
    Json message = {{"role", "assistant"},
                    {"content", text.empty() && !tool_calls.empty() ? Json() : Json(text)},
                    {"refusal", nullptr}};
    std::string_view reason = finish_reason(cand.value("finishReason", "STOP"));
    if (!tool_calls.empty()) {
      message["tool_calls"] = std::move(tool_calls);
      if (reason == "stop") reason = "tool_calls";
    }
    choices.push_back({{"index", cand.value("index", static_cast<int>(i))},
                       {"message", std::move(message)},
                       {"logprobs", nullptr},
                       {"finish_reason", reason}});
  }
  if (choices.empty()) {
    // Blocked at the prompt (promptFeedback.blockReason) or nothing returned.
    bool blocked = response.contains("promptFeedback") && response["promptFeedback"].is_object() &&
                   response["promptFeedback"].contains("blockReason");
    choices.push_back({{"index", 0},
                       {"message", {{"role", "assistant"}, {"content", ""}, {"refusal", nullptr}}},
                       {"logprobs", nullptr},
                       {"finish_reason", blocked ? "content_filter" : "stop"}});
  }
  Usage u = usage_of(response.value("usageMetadata", Json::object()));
  std::string model = response.value("modelVersion", "");
  return {{"id", fallback_id},
          {"object", "chat.completion"},
          {"created", now_ms() / 1000},
          {"model", model.empty() ? fallback_model : model},
          {"choices", std::move(choices)},
          {"usage",
           {{"prompt_tokens", u.prompt_tokens},
            {"completion_tokens", u.completion_tokens},
            {"total_tokens", u.prompt_tokens + u.completion_tokens}}}};
}

Json to_embedding_list(const Json& response, const std::string& model, Usage& usage) {
  usage = Usage{};
  Json one = Json::array();
  const Json* embeddings = nullptr;
  if (response.contains("embedding")) {  // EmbedContentResponse
    one.push_back(response["embedding"]);
    embeddings = &one;
  } else if (response.contains("embeddings") && response["embeddings"].is_array()) {
    embeddings = &response["embeddings"];
  } else {
    return Json();
  }
  Json data = Json::array();
  for (std::size_t i = 0; i < embeddings->size(); ++i) {
    const Json& e = (*embeddings)[i];
    if (!e.is_object() || !e.contains("values") || !e["values"].is_array()) return Json();
    data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", e["values"]}});
  }
  // EmbeddingUsageMetadata: the input's tokens (older replies have none).
  if (response.contains("usageMetadata") && response["usageMetadata"].is_object())
    usage.prompt_tokens = count(response["usageMetadata"], "promptTokenCount");
  usage.reported = true;
  return {
      {"object", "list"},
      {"data", std::move(data)},
      {"model", model},
      {"usage", {{"prompt_tokens", usage.prompt_tokens}, {"total_tokens", usage.prompt_tokens}}}};
}

Reply Adapter::map_error(const Connection& connection, int status, std::string body,
                         const HeaderView&) const {
  Json doc = Json::parse(body, nullptr, false);
  if (doc.is_array() && !doc.empty()) doc = doc[0];  // streamed errors come wrapped in an array
  const Json& err = doc.is_object() && doc.contains("error") && doc["error"].is_object()
                        ? doc["error"]
                        : Json::object();
  std::string code = err.value("status", "");
  std::string message = err.value("message", body.substr(0, 200));
  Reply r;
  r.status = status;
  if (std::string reason = key_refused(err); !reason.empty()) {
    // Google refuses a bad or expired API key with 400 INVALID_ARGUMENT, not
    // 401: that is the connection's key, never the client's request, so it
    // gets the reply the server gives a provider's 401/403.
    r.status = 502;
    r.body = openai_error_body("the provider refused the credentials of connection '" +
                                   connection.name + "' (google " + reason + ": " + message + ")",
                               "upstream_auth_error", "upstream_auth_error");
    return r;
  }
  if (code == "RESOURCE_EXHAUSTED")
    r.status = 429;
  else if (code == "INVALID_ARGUMENT" || code == "FAILED_PRECONDITION" || code == "OUT_OF_RANGE")
    r.status = 400;
  else if (code == "NOT_FOUND")
    r.status = 404;
  else if (code == "UNAVAILABLE")
    r.status = 503;
  else if (code == "DEADLINE_EXCEEDED")
    r.status = 504;
  else if (code == "INTERNAL")
    r.status = 500;
  else if (code == "UNIMPLEMENTED")
    r.status = 501;
  else if (code == "CANCELLED")
    r.status = 499;
  if (r.status < 400) r.status = 502;  // an error reply must stay an error
  if (code.empty()) code = r.status == 429 ? "RESOURCE_EXHAUSTED" : "UNKNOWN";

  if (r.status == 429 || r.status == 503) {
    long long retry = 0;
    if (err.contains("details") && err["details"].is_array()) {
      for (const Json& d : err["details"]) {
        if (d.is_object() && d.value("@type", "").ends_with("google.rpc.RetryInfo") &&
            d.contains("retryDelay") && d["retryDelay"].is_string())
          retry = seconds_of(d["retryDelay"].get<std::string>());
      }
    }
    if (retry == 0) retry = r.status == 429 ? 10 : 1;
    r.headers.emplace_back("Retry-After", std::to_string(retry));
    if (r.status == 503) r.headers.emplace_back("x-should-retry", "true");
  }
  std::string type = code;
  for (char& ch : type) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  r.body =
      openai_error_body("connection '" + connection.name + "' (google): " + message, type, code);
  return r;
}

}  // namespace llmproxy::providers::google
