// Small readers of OpenAI chat request parts shared by the translating
// adapters (anthropic, bedrock, google), so they agree on what they accept
// and on how a refusal names the field.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "lib/providers/provider.h"

namespace llmproxy::providers::chat_parts {

using Json = nlohmann::ordered_json;

[[noreturn]] inline void refuse(const std::string& param, const std::string& why) {
  throw RequestError(param, why);
}

// A message's content as text: a string, null, or an array of text parts
// (joined by newlines). Anything else is refused naming `param`.
inline std::string text_of(const Json& content, const std::string& param) {
  if (content.is_string()) return content.get<std::string>();
  if (content.is_null()) return "";
  if (!content.is_array()) refuse(param, param + " must be a string or an array of parts");
  std::string out;
  for (const Json& part : content) {
    if (!part.is_object() || part.value("type", "") != "text")
      refuse(param, param + " may only contain text parts");
    if (!out.empty()) out += "\n";
    out += part.value("text", "");
  }
  return out;
}

// "data:image/png;base64,AAAA" → {media_type, data}; false unless it is a
// base64 data URL with a media type.
inline bool split_data_url(const std::string& url, std::string& media_type, std::string& data) {
  if (!url.starts_with("data:")) return false;
  auto comma = url.find(',');
  auto semi = url.find(";base64");
  if (comma == std::string::npos || semi == std::string::npos || semi > comma) return false;
  media_type = url.substr(5, semi - 5);
  data = url.substr(comma + 1);
  return !media_type.empty();
}

}  // namespace llmproxy::providers::chat_parts
