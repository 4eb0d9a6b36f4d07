// OpenAI embeddings ↔ Bedrock InvokeModel for Amazon Titan Text Embeddings
// (v1, v2) and Cohere Embed (v3, v4).
#include <bit>
#include <charconv>
#include <cstring>
#include <utility>

#include "lib/crypto/hash.h"
#include "lib/providers/bedrock/bedrock_adapter.h"
#include "lib/providers/bedrock/sigv4.h"
#include "lib/providers/chat_parts.h"

namespace llmproxy::providers::bedrock {
namespace {

using chat_parts::refuse;

// The texts of OpenAI's `input`: a string or an array of strings. Token-id
// arrays cannot be sent: Bedrock's embedding models take text.
std::vector<std::string> input_texts(const Json& in) {
  const Json& input = in.contains("input") ? in["input"] : Json();
  if (input.is_string()) return {input.get<std::string>()};
  if (!input.is_array())
    refuse("input", "input must be a string or an array of strings");
  if (input.empty()) refuse("input", "input must not be an empty array");
  std::vector<std::string> texts;
  for (const Json& item : input) {
    if (!item.is_string())
      refuse("input",
             "Bedrock embedding models take text: input must be a string or an array of "
             "strings (token-id arrays cannot be sent)");
    texts.push_back(item.get<std::string>());
  }
  return texts;
}

// OpenAI returns base64 vectors as little-endian float32s.
std::string base64_floats(const Json& values) {
  std::string bytes;
  bytes.reserve(values.size() * 4);
  for (const Json& v : values) {
    float f = v.is_number() ? v.get<float>() : 0.0f;
    unsigned char b[4];
    std::memcpy(b, &f, 4);
    if constexpr (std::endian::native == std::endian::big)
      std::swap(b[0], b[3]), std::swap(b[1], b[2]);
    bytes.append(reinterpret_cast<const char*>(b), 4);
  }
  return crypto::base64(bytes);
}

bool contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

}  // namespace

std::string invoke_path(std::string_view base_path, std::string_view model) {
  return std::string(base_path) + "/model/" + sigv4::uri_encode(model, false) + "/invoke";
}

EmbeddingFamily embedding_family(std::string_view model) {
  // Matched anywhere in the id so that cross-region profiles
  // ("us.cohere.embed-v4:0") and ARNs ("...:foundation-model/amazon.titan-...") work.
  if (contains(model, "amazon.titan-embed-text-v2")) return EmbeddingFamily::kTitanV2;
  if (contains(model, "amazon.titan-embed-text-v1") ||
      contains(model, "amazon.titan-embed-g1-text"))
    return EmbeddingFamily::kTitanV1;
  if (contains(model, "cohere.embed-v4")) return EmbeddingFamily::kCohereV4;
  if (contains(model, "cohere.embed-")) return EmbeddingFamily::kCohereV3;
  refuse("model", "bedrock model '" + std::string(model) +
                      "' is not a supported embedding model (Amazon Titan Text Embeddings "
                      "amazon.titan-embed-text-v1 / -v2:0, or Cohere Embed cohere.embed-*)");
}

Json to_invoke_embeddings(const Json& in, std::string_view model) {
  EmbeddingFamily family = embedding_family(model);
  std::vector<std::string> texts = input_texts(in);
  if (in.contains("encoding_format") && !in["encoding_format"].is_null()) {
    const Json& f = in["encoding_format"];
    if (!f.is_string() || (f != "float" && f != "base64"))
      refuse("encoding_format", "encoding_format must be 'float' or 'base64'");
  }
  const Json* dimensions =
      in.contains("dimensions") && !in["dimensions"].is_null() ? &in["dimensions"] : nullptr;
  if (dimensions && !dimensions->is_number_integer())
    refuse("dimensions", "dimensions must be an integer");

  Json out = Json::object();
  if (family == EmbeddingFamily::kTitanV1 || family == EmbeddingFamily::kTitanV2) {
    if (texts.size() != 1)
      refuse("input",
             "Amazon Titan Text Embeddings embeds one text per request (InvokeModel takes a "
             "single inputText): send input as one string, or use a Cohere Embed model for "
             "batches");
    out["inputText"] = texts[0];
    if (family == EmbeddingFamily::kTitanV1) {
      if (dimensions)
        refuse("dimensions",
               "amazon.titan-embed-text-v1 has a fixed size (1536): dimensions cannot be set");
      return out;
    }
    if (dimensions) out["dimensions"] = *dimensions;  // 256, 512 or 1024 (Bedrock checks)
    out["normalize"] = true;                          // OpenAI's vectors are unit length
    return out;
  }
  out["texts"] = texts;
  // Cohere's own field, accepted from the client; documents are the usual case.
  out["input_type"] = in.contains("input_type") && in["input_type"].is_string()
                          ? in["input_type"]
                          : Json("search_document");
  if (dimensions) {
    if (family != EmbeddingFamily::kCohereV4)
      refuse("dimensions", "Cohere Embed v3 models have a fixed size: dimensions cannot be set");
    out["output_dimension"] = *dimensions;
  }
  return out;
}

std::optional<std::int64_t> input_token_count(const HeaderView& headers) {
  std::string_view v = headers.get("X-Amzn-Bedrock-Input-Token-Count");
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || n < 0) return std::nullopt;
  return n;
}

Json to_embedding_list(const Json& reply, const std::string& model, bool base64,
                       std::optional<std::int64_t> input_tokens, Usage& usage) {
  if (!reply.is_object()) return Json();
  Json vectors = Json::array();
  usage = Usage{};
  if (reply.contains("embedding") && reply["embedding"].is_array()) {  // Titan
    vectors.push_back(reply["embedding"]);
    const Json& count = reply.contains("inputTextTokenCount") ? reply["inputTextTokenCount"]
                                                              : Json();
    if (count.is_number_integer()) usage.prompt_tokens = count.get<std::int64_t>();
  } else if (reply.contains("embeddings")) {  // Cohere
    const Json& e = reply["embeddings"];
    // embeddings_floats: [[...]]; embeddings_by_type (v4, embedding_types): {"float": [[...]]}.
    const Json& list = e.is_object() && e.contains("float") ? e["float"] : e;
    if (!list.is_array()) return Json();
    vectors = list;
  } else {
    return Json();
  }
  if (input_tokens) usage.prompt_tokens = *input_tokens;  // what AWS counted and bills
  usage.reported = true;
  Json data = Json::array();
  for (std::size_t i = 0; i < vectors.size(); ++i) {
    if (!vectors[i].is_array()) return Json();
    data.push_back({{"object", "embedding"},
                    {"index", i},
                    {"embedding", base64 ? Json(base64_floats(vectors[i])) : vectors[i]}});
  }
  return {{"object", "list"},
          {"data", std::move(data)},
          {"model", model},
          {"usage", {{"prompt_tokens", usage.prompt_tokens}, {"total_tokens", usage.prompt_tokens}}}};
}

}  // namespace llmproxy::providers::bedrock
