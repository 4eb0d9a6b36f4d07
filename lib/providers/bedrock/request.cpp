// OpenAI chat completion request → Bedrock Converse request.
#include <algorithm>
#include <cctype>

#include "lib/providers/chat_parts.h"
#include "lib/providers/bedrock/bedrock_adapter.h"

namespace llmproxy::providers::bedrock {
namespace {

using chat_parts::refuse;
using chat_parts::split_data_url;
using chat_parts::text_of;


Json image_block(const Json& part, const std::string& param) {
  const Json& image = part.contains("image_url") ? part["image_url"] : Json();
  std::string url = image.is_string() ? image.get<std::string>() : image.value("url", "");
  std::string media_type, data;
  if (split_data_url(url, media_type, data)) {
    std::string format;
    if (media_type == "image/png")
      format = "png";
    else if (media_type == "image/jpeg" || media_type == "image/jpg")
      format = "jpeg";
    else if (media_type == "image/gif")
      format = "gif";
    else if (media_type == "image/webp")
      format = "webp";
    else
      refuse(param, "image type '" + media_type +
                        "' is not accepted by Bedrock (use png, jpeg, gif or webp)");
    return {{"image", {{"format", format}, {"source", {{"bytes", data}}}}}};
  }
  if (url.starts_with("https://") || url.starts_with("http://"))
    refuse(param, "Bedrock cannot fetch image URLs: send the image as a base64 data: URL");
  refuse(param, "image_url must be a base64 data: URL");
}

// Bedrock document names allow letters, digits, single spaces, hyphens,
// parentheses and brackets: "report v2.pdf" → "report v2".
std::string document_name(std::string filename, std::size_t index) {
  if (auto dot = filename.rfind('.'); dot != std::string::npos && dot > 0) filename.resize(dot);
  std::string out;
  for (char ch : filename) {
    auto c = static_cast<unsigned char>(ch);
    bool ok = std::isalnum(c) || ch == '-' || ch == '(' || ch == ')' || ch == '[' || ch == ']';
    if (ch == ' ' && !out.empty() && out.back() != ' ')
      out += ' ';
    else if (ok)
      out += ch;
    else if (ch != ' ' && !out.empty() && out.back() != '-')
      out += '-';
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '-')) out.pop_back();
  return out.empty() ? "document-" + std::to_string(index + 1) : out;
}

// OpenAI `file` parts → document blocks.
Json document_block(const Json& part, const std::string& param, std::size_t index) {
  const Json& file = part.contains("file") ? part["file"] : Json::object();
  std::string data_url = file.value("file_data", "");
  std::string media_type, data;
  if (!split_data_url(data_url, media_type, data))
    refuse(param, "file parts need file_data as a base64 data: URL (file_id is OpenAI-only)");
  static const std::pair<const char*, const char*> kFormats[] = {
      {"application/pdf", "pdf"},
      {"text/plain", "txt"},
      {"text/csv", "csv"},
      {"text/html", "html"},
      {"text/markdown", "md"},
      {"application/msword", "doc"},
      {"application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"},
      {"application/vnd.ms-excel", "xls"},
      {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"}};
  auto it = std::find_if(std::begin(kFormats), std::end(kFormats),
                         [&](const auto& f) { return media_type == f.first; });
  if (it == std::end(kFormats))
    refuse(param, "document type '" + media_type + "' is not accepted by Bedrock");
  return {{"document",
           {{"format", it->second},
            {"name", document_name(file.value("filename", ""), index)},
            {"source", {{"bytes", data}}}}}};
}

Json user_blocks(const Json& content, const std::string& param, std::size_t& documents) {
  Json blocks = Json::array();
  if (content.is_string()) {
    blocks.push_back({{"text", content}});
    return blocks;
  }
  if (!content.is_array()) refuse(param, param + " must be a string or an array of parts");
  for (std::size_t i = 0; i < content.size(); ++i) {
    const Json& part = content[i];
    std::string where = param + "[" + std::to_string(i) + "]";
    std::string type = part.value("type", "");
    if (type == "text")
      blocks.push_back({{"text", part.value("text", "")}});
    else if (type == "image_url")
      blocks.push_back(image_block(part, where));
    else if (type == "file")
      blocks.push_back(document_block(part, where, documents++));
    else
      refuse(where, "content part type '" + type + "' is not supported by Bedrock");
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

Json assistant_blocks(const Json& msg, const std::string& param, bool& has_tool_blocks) {
  Json blocks = Json::array();
  std::string text = text_of(msg.contains("content") ? msg["content"] : Json(), param + ".content");
  if (!text.empty()) blocks.push_back({{"text", text}});  // Bedrock rejects blank text blocks
  if (msg.contains("tool_calls") && msg["tool_calls"].is_array()) {
    for (std::size_t i = 0; i < msg["tool_calls"].size(); ++i) {
      const Json& call = msg["tool_calls"][i];
      std::string where = param + ".tool_calls[" + std::to_string(i) + "]";
      blocks.push_back(
          {{"toolUse",
            {{"toolUseId", call.value("id", "")},
             {"name", call.contains("function") ? call["function"].value("name", "") : ""},
             {"input", parse_arguments(call, where)}}}});
      has_tool_blocks = true;
    }
  }
  return blocks;
}

Json tool_result_block(const Json& msg, const std::string& param) {
  const Json& content = msg.contains("content") ? msg["content"] : Json("");
  return {{"toolResult",
           {{"toolUseId", msg.value("tool_call_id", "")},
            {"content", Json::array({{{"text", text_of(content, param + ".content")}}})}}}};
}

// Bedrock wants alternating user and assistant turns; consecutive same-role
// messages (e.g. several tool results) are merged into one.
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
      refuse(where, "only function tools can be sent to Bedrock");
    const Json& fn = t["function"];
    Json spec = {{"name", fn.value("name", "")}};
    if (fn.contains("description") && fn["description"].is_string())
      spec["description"] = fn["description"];
    spec["inputSchema"] = {
        {"json", fn.contains("parameters") && fn["parameters"].is_object()
                     ? fn["parameters"]
                     : Json{{"type", "object"}, {"properties", Json::object()}}}};
    out.push_back({{"toolSpec", std::move(spec)}});
  }
  return out;
}

// Null for "none" (no Bedrock equivalent).
Json translate_tool_choice(const Json& choice) {
  if (choice.is_string()) {
    std::string c = choice.get<std::string>();
    if (c == "auto") return {{"auto", Json::object()}};
    if (c == "required") return {{"any", Json::object()}};
    if (c == "none") return Json();
    refuse("tool_choice", "tool_choice '" + c + "' is not one of auto, required, none");
  }
  if (choice.is_object() && choice.contains("function") && choice["function"].is_object())
    return {{"tool", {{"name", choice["function"].value("name", "")}}}};
  refuse("tool_choice", "tool_choice must be a string or {type: function, function: {name}}");
}

}  // namespace

Json to_converse_request(const Json& in) {
  if (in.contains("n") && in["n"].is_number() && in["n"].get<double>() != 1)
    refuse("n", "n > 1 is not supported by Bedrock: it returns one choice per request");
  if (in.contains("logprobs") && in["logprobs"] == true)
    refuse("logprobs", "logprobs are not available from Bedrock");
  if (in.contains("response_format") && in["response_format"].is_object() &&
      in["response_format"].value("type", "text") != "text")
    refuse("response_format", "response_format " + in["response_format"].value("type", "") +
                                  " is not supported by Bedrock; use tools instead");
  if (!in.contains("messages") || !in["messages"].is_array())
    refuse("messages", "messages must be an array");

  Json system = Json::array();
  Json messages = Json::array();
  bool has_tool_blocks = false;
  std::size_t documents = 0;
  const Json& msgs = in["messages"];
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    const Json& m = msgs[i];
    std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) refuse(where, where + " must be an object");
    std::string role = m.value("role", "");
    const Json& content = m.contains("content") ? m["content"] : Json();
    if (role == "system" || role == "developer") {
      std::string text = text_of(content, where + ".content");
      if (!text.empty()) system.push_back({{"text", text}});
    } else if (role == "user") {
      append(messages, "user", user_blocks(content, where + ".content", documents));
    } else if (role == "assistant") {
      Json blocks = assistant_blocks(m, where, has_tool_blocks);
      if (!blocks.empty()) append(messages, "assistant", std::move(blocks));
    } else if (role == "tool") {
      append(messages, "user", Json::array({tool_result_block(m, where)}));
      has_tool_blocks = true;
    } else {
      refuse(where + ".role", "message role '" + role + "' is not supported by Bedrock");
    }
  }
  if (messages.empty()) refuse("messages", "Bedrock needs at least one user message");

  Json out = Json::object();
  out["messages"] = std::move(messages);
  if (!system.empty()) out["system"] = std::move(system);

  Json config = Json::object();
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {  // the newer name wins
    if (in.contains(key) && in[key].is_number_integer()) config["maxTokens"] = in[key];
  }
  if (in.contains("temperature") && in["temperature"].is_number())
    config["temperature"] = in["temperature"];
  if (in.contains("top_p") && in["top_p"].is_number()) config["topP"] = in["top_p"];
  if (in.contains("stop") && !in["stop"].is_null()) {
    config["stopSequences"] = in["stop"].is_string() ? Json::array({in["stop"]}) : in["stop"];
  }
  if (!config.empty()) out["inferenceConfig"] = std::move(config);

  if (in.contains("tools") && in["tools"].is_array() && !in["tools"].empty()) {
    // No tool_choice: Bedrock's default (auto), which every tool-using model accepts.
    Json choice = in.contains("tool_choice") ? translate_tool_choice(in["tool_choice"]) : Json();
    bool none = in.contains("tool_choice") && choice.is_null();
    if (!none || has_tool_blocks) {
      Json tool_config = {{"tools", translate_tools(in["tools"])}};
      if (!choice.is_null()) tool_config["toolChoice"] = std::move(choice);
      out["toolConfig"] = std::move(tool_config);
    }
  }
  return out;
}

}  // namespace llmproxy::providers::bedrock
