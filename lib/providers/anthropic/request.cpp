// OpenAI chat completion request → Anthropic Messages request.
#include "lib/providers/chat_parts.h"
#include "lib/providers/anthropic/anthropic_adapter.h"

namespace llmproxy::providers::anthropic {
namespace {

using chat_parts::refuse;
using chat_parts::split_data_url;
using chat_parts::text_of;


Json image_block(const Json& part, const std::string& param) {
  const Json& image = part.contains("image_url") ? part["image_url"] : Json();
  std::string url = image.is_string() ? image.get<std::string>() : image.value("url", "");
  std::string media_type, data;
  if (split_data_url(url, media_type, data)) {
    static const char* kAccepted[] = {"image/jpeg", "image/png", "image/gif", "image/webp"};
    if (std::find(std::begin(kAccepted), std::end(kAccepted), media_type) == std::end(kAccepted))
      refuse(param, "image type '" + media_type +
                        "' is not accepted by Anthropic (use jpeg, png, gif or webp)");
    return {{"type", "image"},
            {"source", {{"type", "base64"}, {"media_type", media_type}, {"data", data}}}};
  }
  if (url.starts_with("https://") || url.starts_with("http://"))
    return {{"type", "image"}, {"source", {{"type", "url"}, {"url", url}}}};
  refuse(param, "image_url must be an http(s) URL or a base64 data: URL");
}

// OpenAI `file` parts (PDFs and other documents) → document blocks.
Json document_block(const Json& part, const std::string& param) {
  const Json& file = part.contains("file") ? part["file"] : Json::object();
  std::string data_url = file.value("file_data", "");
  std::string media_type, data;
  if (!split_data_url(data_url, media_type, data))
    refuse(param, "file parts need file_data as a base64 data: URL (file_id is OpenAI-only)");
  Json block = {{"type", "document"}};
  if (media_type == "text/plain") {
    block["source"] = {{"type", "text"}, {"media_type", media_type}, {"data", data}};
  } else {
    block["source"] = {{"type", "base64"}, {"media_type", media_type}, {"data", data}};
  }
  if (file.contains("filename")) block["title"] = file["filename"];
  return block;
}

Json user_blocks(const Json& content, const std::string& param) {
  Json blocks = Json::array();
  if (content.is_string()) {
    blocks.push_back({{"type", "text"}, {"text", content}});
    return blocks;
  }
  if (!content.is_array()) refuse(param, param + " must be a string or an array of parts");
  for (std::size_t i = 0; i < content.size(); ++i) {
    const Json& part = content[i];
    std::string where = param + "[" + std::to_string(i) + "]";
    std::string type = part.value("type", "");
    if (type == "text") blocks.push_back({{"type", "text"}, {"text", part.value("text", "")}});
    else if (type == "image_url") blocks.push_back(image_block(part, where));
    else if (type == "file") blocks.push_back(document_block(part, where));
    else refuse(where, "content part type '" + type + "' is not supported by Anthropic");
  }
  return blocks;
}

Json parse_arguments(const Json& call, const std::string& param) {
  const Json& fn = call.contains("function") ? call["function"] : Json::object();
  std::string args = fn.value("arguments", "");
  if (args.empty()) return Json::object();
  Json parsed = Json::parse(args, nullptr, false);
  if (!parsed.is_object()) refuse(param, "tool call arguments must be a JSON object");
  return parsed;
}

Json assistant_blocks(const Json& msg, const std::string& param) {
  Json blocks = Json::array();
  std::string text = text_of(msg.contains("content") ? msg["content"] : Json(), param + ".content");
  if (!text.empty()) blocks.push_back({{"type", "text"}, {"text", text}});
  if (msg.contains("tool_calls") && msg["tool_calls"].is_array()) {
    for (std::size_t i = 0; i < msg["tool_calls"].size(); ++i) {
      const Json& call = msg["tool_calls"][i];
      std::string where = param + ".tool_calls[" + std::to_string(i) + "]";
      blocks.push_back({{"type", "tool_use"},
                        {"id", call.value("id", "")},
                        {"name", call.contains("function") ? call["function"].value("name", "") : ""},
                        {"input", parse_arguments(call, where)}});
    }
  }
  return blocks;
}

Json tool_result_block(const Json& msg, const std::string& param) {
  Json block = {{"type", "tool_result"}, {"tool_use_id", msg.value("tool_call_id", "")}};
  const Json& content = msg.contains("content") ? msg["content"] : Json("");
  block["content"] = content.is_string() ? content : Json(text_of(content, param + ".content"));
  return block;
}

// Anthropic wants user and assistant turns; consecutive same-role messages
// (e.g. several tool results) are merged into one.
void append(Json& messages, const std::string& role, Json blocks) {
  if (!messages.empty() && messages.back()["role"] == role) {
    for (Json& b : blocks) messages.back()["content"].push_back(std::move(b));
  } else {
    messages.push_back({{"role", role}, {"content", std::move(blocks)}});
  }
}

Json translate_tools(const Json& tools) {
  Json out = Json::array();
  for (std::size_t i = 0; i < tools.size(); ++i) {
    const Json& t = tools[i];
    std::string where = "tools[" + std::to_string(i) + "]";
    if (t.value("type", "function") != "function" || !t.contains("function"))
      refuse(where, "only function tools can be sent to Anthropic");
    const Json& fn = t["function"];
    Json tool = {{"name", fn.value("name", "")}};
    if (fn.contains("description")) tool["description"] = fn["description"];
    tool["input_schema"] = fn.contains("parameters") ? fn["parameters"]
                                                     : Json{{"type", "object"}, {"properties", Json::object()}};
    out.push_back(std::move(tool));
  }
  return out;
}

Json translate_tool_choice(const Json& choice, bool parallel) {
  Json out;
  if (choice.is_string()) {
    std::string c = choice.get<std::string>();
    if (c == "auto") out = {{"type", "auto"}};
    else if (c == "required") out = {{"type", "any"}};
    else if (c == "none") out = {{"type", "none"}};
    else refuse("tool_choice", "tool_choice '" + c + "' is not one of auto, required, none");
  } else if (choice.is_object() && choice.contains("function")) {
    out = {{"type", "tool"}, {"name", choice["function"].value("name", "")}};
  } else {
    refuse("tool_choice", "tool_choice must be a string or {type: function, function: {name}}");
  }
  if (!parallel && out["type"] != "none") out["disable_parallel_tool_use"] = true;
  return out;
}

}  // namespace

Json to_messages_request(const Json& in, const std::string& remote_model) {
  if (in.contains("n") && in["n"].is_number() && in["n"].get<double>() != 1)
    refuse("n", "n > 1 is not supported by Anthropic: it returns one choice per request");
  if (in.contains("logprobs") && in["logprobs"] == true)
    refuse("logprobs", "logprobs are not available from Anthropic");
  if (in.contains("response_format") && in["response_format"].is_object() &&
      in["response_format"].value("type", "text") != "text")
    refuse("response_format", "response_format " + in["response_format"].value("type", "") +
                                  " is not supported by Anthropic; use tools instead");

  Json out = {{"model", remote_model}};
  std::string system;
  Json messages = Json::array();
  const Json& msgs = in["messages"];
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    const Json& m = msgs[i];
    std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) refuse(where, where + " must be an object");
    std::string role = m.value("role", "");
    const Json& content = m.contains("content") ? m["content"] : Json();
    if (role == "system" || role == "developer") {
      if (!system.empty()) system += "\n\n";
      system += text_of(content, where + ".content");
    } else if (role == "user") {
      append(messages, "user", user_blocks(content, where + ".content"));
    } else if (role == "assistant") {
      Json blocks = assistant_blocks(m, where);
      if (!blocks.empty()) append(messages, "assistant", std::move(blocks));
    } else if (role == "tool") {
      append(messages, "user", Json::array({tool_result_block(m, where)}));
    } else {
      refuse(where + ".role", "message role '" + role + "' is not supported by Anthropic");
    }
  }
  if (messages.empty()) refuse("messages", "Anthropic needs at least one user message");
  if (!system.empty()) out["system"] = system;
  out["messages"] = std::move(messages);

  int max_tokens = kDefaultMaxTokens;
  for (const char* key : {"max_completion_tokens", "max_tokens"}) {
    if (in.contains(key) && in[key].is_number_integer()) max_tokens = in[key].get<int>();
  }
  out["max_tokens"] = max_tokens;
  for (const char* key : {"temperature", "top_p"}) {
    if (in.contains(key) && !in[key].is_null()) out[key] = in[key];
  }
  if (in.contains("stop") && !in["stop"].is_null()) {
    out["stop_sequences"] = in["stop"].is_string() ? Json::array({in["stop"]}) : in["stop"];
  }
  bool parallel = in.value("parallel_tool_calls", true);
  if (in.contains("tools") && in["tools"].is_array() && !in["tools"].empty()) {
    out["tools"] = translate_tools(in["tools"]);
    if (in.contains("tool_choice")) out["tool_choice"] = translate_tool_choice(in["tool_choice"], parallel);
    else if (!parallel) out["tool_choice"] = {{"type", "auto"}, {"disable_parallel_tool_use", true}};
  }
  if (in.contains("user") && in["user"].is_string()) out["metadata"] = {{"user_id", in["user"]}};
  if (in.value("stream", false)) out["stream"] = true;
  return out;
}

}  // namespace llmproxy::providers::anthropic
