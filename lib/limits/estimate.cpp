#include "lib/limits/estimate.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <string>

namespace llmproxy::limits {
namespace {

constexpr int kMaxDepth = 256;

bool is_one_of(std::string_view s, std::initializer_list<std::string_view> set) {
  return std::find(set.begin(), set.end(), s) != set.end();
}

// Parts whose payload is not text: counted as a fixed amount each.
bool is_media_type(std::string_view type) {
  return is_one_of(type, {"image", "image_url", "input_image", "input_audio", "input_file",
                          "document", "file", "audio"});
}
// Gemini's parts carry no type: the key says what they are.
bool is_media_key(std::string_view key) {
  return is_one_of(key, {"inlineData", "inline_data", "fileData", "file_data"});
}
// Values that hold a URL or base64 data rather than text.
bool is_payload_key(std::string_view key) {
  return is_one_of(key, {"url", "data", "file_data", "image_url", "b64_json", "fileUri"});
}
bool is_message_list(std::string_view key) {
  return is_one_of(key, {"messages", "contents", "input"});
}
bool is_completion_cap(std::string_view key, std::string_view parent) {
  if (parent.empty())
    return is_one_of(key, {"max_tokens", "max_completion_tokens", "max_output_tokens"});
  return parent == "generationConfig" && key == "maxOutputTokens";
}
bool is_choice_count(std::string_view key, std::string_view parent) {
  return (parent.empty() && key == "n") ||
         (parent == "generationConfig" && key == "candidateCount");
}

// One pass over (already validated) JSON text, lenient where it is not: it
// never reads out of bounds and stops at the first surprise.
class Walker {
 public:
  explicit Walker(std::string_view text) : s_(text) {}

  void run() { value(0, {}, {}); }

  std::int64_t text_bytes = 0, messages = 0, media_parts = 0;
  std::optional<std::int64_t> completion_cap;
  std::int64_t choices = 1;

 private:
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t'))
      ++i_;
  }

  // The string's raw contents (escapes undecoded), i_ past the closing quote.
  std::string_view string() {
    std::size_t begin = ++i_;
    while (i_ < s_.size() && s_[i_] != '"') i_ += s_[i_] == '\\' ? 2 : 1;
    std::size_t end = std::min(i_, s_.size());
    ++i_;
    return s_.substr(begin, end - begin);
  }

  std::string_view scalar() {
    std::size_t begin = i_;
    constexpr std::string_view kEnds = ",}] \n\r\t";
    while (i_ < s_.size() && kEnds.find(s_[i_]) == std::string_view::npos) ++i_;
    return s_.substr(begin, i_ - begin);
  }

  // `key` names this value in its object ("" in arrays and at the top);
  // `parent` is the key of the object holding it ("" for the top object).
  void value(int depth, std::string_view key, std::string_view parent) {
    ws();
    if (i_ >= s_.size() || depth > kMaxDepth) return;
    char c = s_[i_];
    if (c == '{') return object(depth, key, parent);
    if (c == '[') return array(depth, key, parent);
    if (c == '"') {
      std::string_view text = string();
      if (key == "type" && is_media_type(text)) ++media_parts;
      bool payload = is_payload_key(key) || text.starts_with("data:");
      if (!payload) text_bytes += static_cast<std::int64_t>(text.size());
      return;
    }
    std::string_view number = scalar();
    std::int64_t n = 0;
    auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), n);
    if (ec != std::errc() || n < 0) return;
    if (depth <= 2 && is_completion_cap(key, parent)) completion_cap = n;
    if (depth <= 2 && is_choice_count(key, parent)) choices = std::max<std::int64_t>(1, n);
  }

  void object(int depth, std::string_view key, std::string_view parent) {
    if (is_media_key(key)) ++media_parts;
    // Keys of the top object have parent ""; below, the holding key.
    std::string_view own = depth == 0 ? std::string_view{} : key;
    (void)parent;
    ++i_;
    for (;;) {
      ws();
      if (i_ >= s_.size() || s_[i_] == '}') break;
      if (s_[i_] != '"') return;
      std::string_view k = string();
      ws();
      if (i_ >= s_.size() || s_[i_] != ':') return;
      ++i_;
      value(depth + 1, k, own);
      ws();
      if (i_ < s_.size() && s_[i_] == ',') ++i_;
    }
    ++i_;
  }

  void array(int depth, std::string_view key, std::string_view parent) {
    bool counts_messages = depth == 1 && parent.empty() && is_message_list(key);
    ++i_;
    for (;;) {
      ws();
      if (i_ >= s_.size() || s_[i_] == ']') break;
      std::size_t before = i_;
      if (counts_messages) ++messages;
      // Array elements keep the array's key: an image part's "type" is seen
      // inside its object, and a string list under "input" is text.
      value(depth + 1, is_payload_key(key) ? key : std::string_view{}, key);
      ws();
      if (i_ < s_.size() && s_[i_] == ',') ++i_;
      if (i_ == before) return;  // no progress: not JSON after all
    }
    ++i_;
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

}  // namespace

Estimate estimate_request(std::string_view body, std::int64_t default_completion, bool embeddings) {
  Walker w(body);
  w.run();
  Estimate e;
  e.prompt_tokens =
      (w.text_bytes + 3) / 4 + kTokensPerMessage * w.messages + kTokensPerMediaPart * w.media_parts;
  if (!embeddings) {
    e.prompt_tokens += kTokensPerReply;
    e.completion_tokens = w.completion_cap.value_or(default_completion) * w.choices;
  }
  return e;
}

}  // namespace llmproxy::limits
