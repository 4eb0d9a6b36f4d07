// OpenAI chat completion / embeddings request → Gemini request bodies.
#include <cctype>
#include <map>
#include <set>

#include "lib/providers/chat_parts.h"
#include "lib/providers/google/google_adapter.h"

namespace llmproxy::providers::google {
namespace {

using chat_parts::refuse;
using chat_parts::split_data_url;
using chat_parts::text_of;

// The image type a URL's extension suggests; Gemini needs one for fileData.
std::string guess_image_type(const std::string& url) {
  std::string path = url.substr(0, url.find_first_of("?#"));
  auto dot = path.rfind('.');
  auto slash = path.rfind('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "image/jpeg";
  std::string ext = path.substr(dot + 1);
  for (char& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  static const std::map<std::string, std::string> kTypes = {
      {"png", "image/png"},   {"gif", "image/gif"},      {"webp", "image/webp"},
      {"heic", "image/heic"}, {"heif", "image/heif"},    {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"}, {"pdf", "application/pdf"}};
  auto it = kTypes.find(ext);
  return it == kTypes.end() ? "image/jpeg" : it->second;
}

Json image_part(const Json& part, const std::string& param) {
  const Json& image = part.contains("image_url") ? part["image_url"] : Json();
  std::string url = image.is_string()   ? image.get<std::string>()
                    : image.is_object() ? image.value("url", "")
                                        : "";
  std::string mime_type, data;
  if (split_data_url(url, mime_type, data))
    return {{"inlineData", {{"mimeType", mime_type}, {"data", data}}}};
  if (url.starts_with("https://") || url.starts_with("http://"))
    return {{"fileData", {{"mimeType", guess_image_type(url)}, {"fileUri", url}}}};
  refuse(param, "image_url must be an http(s) URL or a base64 data: URL");
}

Json file_part(const Json& part, const std::string& param) {
  const Json& file =
      part.contains("file") && part["file"].is_object() ? part["file"] : Json::object();
  std::string mime_type, data;
  if (!split_data_url(file.value("file_data", ""), mime_type, data))
    refuse(param, "file parts need file_data as a base64 data: URL (file_id is OpenAI-only)");
  return {{"inlineData", {{"mimeType", mime_type}, {"data", data}}}};
}

Json user_parts(const Json& content, const std::string& param) {
  Json parts = Json::array();
  if (content.is_string()) {
    parts.push_back({{"text", content}});
    return parts;
  }
  if (!content.is_array()) refuse(param, param + " must be a string or an array of parts");
  for (std::size_t i = 0; i < content.size(); ++i) {
    const Json& part = content[i];
    std::string where = param + "[" + std::to_string(i) + "]";
    std::string type = part.is_object() ? part.value("type", "") : "";
    if (type == "text")
      parts.push_back({{"text", part.value("text", "")}});
    else if (type == "image_url")
      parts.push_back(image_part(part, where));
    else if (type == "file")
      parts.push_back(file_part(part, where));
    else
      refuse(where, "content part type '" + type + "' cannot be sent to Gemini");
  }
  return parts;
}

Json parse_arguments(const Json& call, const std::string& where) {
  const Json& fn = call.contains("function") ? call["function"] : Json::object();
  const Json& args = fn.contains("arguments") ? fn["arguments"] : Json();
  if (args.is_null()) return Json::object();
  if (args.is_object()) return args;
  if (!args.is_string()) refuse(where + ".function.arguments", "arguments must be a JSON string");
  std::string text = args.get<std::string>();
  if (text.empty()) return Json::object();
  Json parsed = Json::parse(text, nullptr, false);
  if (!parsed.is_object())
    refuse(where + ".function.arguments", "arguments must encode a JSON object for Gemini");
  return parsed;
}

Json model_parts(const Json& msg, const std::string& param,
                 std::map<std::string, std::string>& call_names) {
  Json parts = Json::array();
  std::string text = text_of(msg.contains("content") ? msg["content"] : Json(), param + ".content");
  if (!text.empty()) parts.push_back({{"text", text}});
  if (msg.contains("tool_calls") && msg["tool_calls"].is_array()) {
    for (std::size_t i = 0; i < msg["tool_calls"].size(); ++i) {
      const Json& call = msg["tool_calls"][i];
      std::string where = param + ".tool_calls[" + std::to_string(i) + "]";
      if (!call.is_object() || call.value("type", "function") != "function")
        refuse(where, "only function tool calls can be sent to Gemini");
      std::string name = call.contains("function") ? call["function"].value("name", "") : "";
      if (name.empty()) refuse(where + ".function.name", "a tool call needs a function name");
      call_names[call.value("id", "")] = name;
      Json part = {{"functionCall", {{"name", name}, {"args", parse_arguments(call, where)}}}};
      // The thought signature a reply carried (see to_chat_completion) goes
      // back on its part: Gemini 3 refuses function calls without it.
      const Json* sig = &call;
      for (const char* key : {"extra_content", "google", "thought_signature"})
        sig = sig && sig->is_object() && sig->contains(key) ? &(*sig)[key] : nullptr;
      if (sig && sig->is_string() && !sig->get<std::string>().empty())
        part["thoughtSignature"] = *sig;
      parts.push_back(std::move(part));
    }
  }
  return parts;
}

Json function_response_part(const Json& msg, const std::string& param,
                            const std::map<std::string, std::string>& call_names) {
  std::string id = msg.value("tool_call_id", "");
  auto it = call_names.find(id);
  if (it == call_names.end())
    refuse(
        param + ".tool_call_id",
        "tool_call_id '" + id + "' matches no earlier assistant tool call (Gemini needs the name)");
  std::string text =
      text_of(msg.contains("content") ? msg["content"] : Json(""), param + ".content");
  Json parsed = Json::parse(text, nullptr, false);
  Json content = parsed.is_object() ? parsed : Json{{"content", text}};
  return {{"functionResponse", {{"name", it->second}, {"response", {{"content", content}}}}}};
}

// Gemini alternates user and model turns; consecutive same-role contents merge.
void append(Json& contents, const std::string& role, Json parts) {
  if (parts.empty()) return;
  if (!contents.empty() && contents.back()["role"] == role) {
    for (Json& p : parts) contents.back()["parts"].push_back(std::move(p));
  } else {
    contents.push_back({{"role", role}, {"parts", std::move(parts)}});
  }
}

// Whether a JSON Schema fits Gemini's `Schema` message (an OpenAPI 3.0
// subset). Google's JSON front end refuses any other keyword with 400
// ("Unknown name \"additionalProperties\" ... Cannot find field"), and the
// OpenAI SDKs' strict mode always sends additionalProperties: false; such
// schemas go as parametersJsonSchema / responseJsonSchema, which take JSON
// Schema as is.
bool fits_gemini_schema(const Json& s) {
  static const std::set<std::string, std::less<>> kKeys = {
      "type",      "format",    "title",      "description", "nullable",      "enum",
      "maxItems",  "minItems",  "properties", "required",    "minProperties", "maxProperties",
      "minLength", "maxLength", "pattern",    "example",     "anyOf",         "propertyOrdering",
      "default",   "items",     "minimum",    "maximum"};
  static const std::set<std::string, std::less<>> kTypes = {
      "string", "number", "integer", "boolean", "array", "object", "null"};
  if (!s.is_object()) return false;
  for (const auto& [key, value] : s.items()) {
    if (!kKeys.contains(key)) return false;
    if (key == "type") {
      if (!value.is_string()) return false;  // e.g. ["string", "null"]
      std::string t = value.get<std::string>();
      for (char& ch : t) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (!kTypes.contains(t)) return false;
    } else if (key == "properties") {
      if (!value.is_object()) return false;
      for (const auto& [name, sub] : value.items())
        if (!fits_gemini_schema(sub)) return false;
    } else if (key == "items") {
      if (!fits_gemini_schema(value)) return false;
    } else if (key == "anyOf") {
      if (!value.is_array()) return false;
      for (const Json& sub : value)
        if (!fits_gemini_schema(sub)) return false;
    } else if (key == "enum" || key == "required" || key == "propertyOrdering") {
      if (!value.is_array()) return false;
      for (const Json& item : value)
        if (!item.is_string()) return false;  // Gemini enums are strings only
    }
  }
  return true;
}

Json translate_tools(const Json& tools) {
  Json declarations = Json::array();
  for (std::size_t i = 0; i < tools.size(); ++i) {
    const Json& t = tools[i];
    std::string where = "tools[" + std::to_string(i) + "]";
    if (!t.is_object() || t.value("type", "function") != "function" || !t.contains("function") ||
        !t["function"].is_object())
      refuse(where, "only function tools can be sent to Gemini");
    const Json& fn = t["function"];
    Json decl = {{"name", fn.value("name", "")}};
    if (fn.contains("description")) decl["description"] = fn["description"];
    if (fn.contains("parameters") && !fn["parameters"].is_null())
      decl[fits_gemini_schema(fn["parameters"]) ? "parameters" : "parametersJsonSchema"] =
          fn["parameters"];
    declarations.push_back(std::move(decl));
  }
  return Json::array({{{"functionDeclarations", std::move(declarations)}}});
}

Json translate_tool_choice(const Json& choice) {
  Json config;
  if (choice.is_string()) {
    std::string c = choice.get<std::string>();
    if (c == "auto")
      config = {{"mode", "AUTO"}};
    else if (c == "required")
      config = {{"mode", "ANY"}};
    else if (c == "none")
      config = {{"mode", "NONE"}};
    else
      refuse("tool_choice", "tool_choice '" + c + "' is not one of auto, required, none");
  } else if (choice.is_object() && choice.contains("function") && choice["function"].is_object()) {
    config = {{"mode", "ANY"},
              {"allowedFunctionNames", Json::array({choice["function"].value("name", "")})}};
  } else {
    refuse("tool_choice", "tool_choice must be a string or {type: function, function: {name}}");
  }
  return {{"functionCallingConfig", std::move(config)}};
}

Json generation_config(const Json& in) {
  Json config = Json::object();
  auto copy = [&](const char* from, const char* to) {
    if (in.contains(from) && !in[from].is_null()) {
      if (!in[from].is_number()) refuse(from, std::string(from) + " must be a number");
      config[to] = in[from];
    }
  };
  copy("temperature", "temperature");
  copy("top_p", "topP");
  for (const char* key : {"max_tokens", "max_completion_tokens"}) copy(key, "maxOutputTokens");
  if (in.contains("stop") && !in["stop"].is_null()) {
    const Json& stop = in["stop"];
    if (stop.is_string())
      config["stopSequences"] = Json::array({stop});
    else if (stop.is_array())
      config["stopSequences"] = stop;
    else
      refuse("stop", "stop must be a string or an array of strings");
  }
  if (in.contains("n") && !in["n"].is_null()) {
    if (!in["n"].is_number_integer() || in["n"].get<std::int64_t>() < 1)
      refuse("n", "n must be an integer of at least 1");
    config["candidateCount"] = in["n"];
  }
  copy("presence_penalty", "presencePenalty");
  copy("frequency_penalty", "frequencyPenalty");
  copy("seed", "seed");
  if (in.contains("response_format") && !in["response_format"].is_null()) {
    const Json& rf = in["response_format"];
    std::string type = rf.is_object() ? rf.value("type", "") : "";
    if (type == "json_object") {
      config["responseMimeType"] = "application/json";
    } else if (type == "json_schema") {
      const Json& js = rf.contains("json_schema") && rf["json_schema"].is_object()
                           ? rf["json_schema"]
                           : Json::object();
      if (!js.contains("schema") || !js["schema"].is_object())
        refuse("response_format", "response_format json_schema needs json_schema.schema");
      config["responseMimeType"] = "application/json";
      config[fits_gemini_schema(js["schema"]) ? "responseSchema" : "responseJsonSchema"] =
          js["schema"];
    } else if (type != "text") {
      refuse("response_format", "response_format '" + type + "' cannot be sent to Gemini");
    }
  }
  return config;
}

}  // namespace

Json to_generate_request(const Json& in) {
  if (in.contains("logprobs") && in["logprobs"] == true)
    refuse("logprobs", "logprobs are not available through this Gemini adapter");
  if (in.contains("audio") && !in["audio"].is_null())
    refuse("audio", "audio output cannot be requested from Gemini through this adapter");

  Json out = Json::object();
  Json system = Json::array();
  Json contents = Json::array();
  std::map<std::string, std::string> call_names;  // tool_call id → function name
  const Json& msgs = in.contains("messages") ? in["messages"] : Json();
  if (!msgs.is_array()) refuse("messages", "messages must be an array");
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
      append(contents, "user", user_parts(content, where + ".content"));
    } else if (role == "assistant") {
      append(contents, "model", model_parts(m, where, call_names));
    } else if (role == "tool") {
      append(contents, "user", Json::array({function_response_part(m, where, call_names)}));
    } else {
      refuse(where + ".role", "message role '" + role + "' is not supported by Gemini");
    }
  }
  if (contents.empty()) refuse("messages", "Gemini needs at least one user message");
  out["contents"] = std::move(contents);
  if (!system.empty()) out["systemInstruction"] = {{"parts", std::move(system)}};
  if (in.contains("tools") && in["tools"].is_array() && !in["tools"].empty()) {
    out["tools"] = translate_tools(in["tools"]);
    if (in.contains("tool_choice") && !in["tool_choice"].is_null())
      out["toolConfig"] = translate_tool_choice(in["tool_choice"]);
  }
  Json config = generation_config(in);
  if (!config.empty()) out["generationConfig"] = std::move(config);
  return out;
}

void sign_unsigned_calls(Json& req) {
  if (!req.contains("contents")) return;
  for (Json& content : req["contents"]) {
    if (content.value("role", "") != "model" || !content.contains("parts")) continue;
    // Gemini signs the first function call of a turn (parallel calls share it).
    for (Json& part : content["parts"]) {
      if (!part.contains("functionCall")) continue;
      if (!part.contains("thoughtSignature")) {
        part["thoughtSignature"] = "skip_thought_signature_validator";
      }
      break;
    }
  }
}

EmbedRequest to_embed_request(const Json& in, const std::string& remote_model) {
  const Json& input = in.contains("input") ? in["input"] : Json();
  std::vector<std::string> texts;
  if (input.is_string()) {
    texts.push_back(input.get<std::string>());
  } else if (input.is_array() && !input.empty()) {
    for (std::size_t i = 0; i < input.size(); ++i) {
      if (!input[i].is_string())
        refuse("input", "Gemini embeds text only: input[" + std::to_string(i) +
                            "] is not a string (token arrays cannot be sent)");
      texts.push_back(input[i].get<std::string>());
    }
  } else {
    refuse("input", "input must be a string or a non-empty array of strings");
  }
  if (in.contains("encoding_format") && !in["encoding_format"].is_null()) {
    const Json& f = in["encoding_format"];
    if (!f.is_string() || (f != "float" && f != "base64"))
      refuse("encoding_format", "encoding_format must be 'float' or 'base64'");
  }
  const Json* dimensions =
      in.contains("dimensions") && !in["dimensions"].is_null() ? &in["dimensions"] : nullptr;
  if (dimensions && !(dimensions->is_number_integer() && dimensions->get<std::int64_t>() > 0))
    refuse("dimensions", "dimensions must be a positive integer");

  // One EmbedContentRequest per text; the model is in the URL for one text,
  // and named in every request of a batch (it must match the URL's).
  auto request = [&](std::string& text, bool named) {
    Json req = Json::object();
    if (named) req["model"] = "models/" + remote_model;
    req["content"] = {{"parts", Json::array({{{"text", std::move(text)}}})}};
    if (dimensions) req["outputDimensionality"] = *dimensions;
    return req;
  };
  EmbedRequest out;
  out.batch = texts.size() > 1;
  if (!out.batch) {
    out.body = request(texts[0], false);
    return out;
  }
  Json requests = Json::array();
  for (std::string& text : texts) requests.push_back(request(text, true));
  out.body = {{"requests", std::move(requests)}};
  return out;
}

}  // namespace llmproxy::providers::google
