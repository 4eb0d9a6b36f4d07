#include "lib/providers/google/google_adapter.h"

#include <bit>
#include <cstring>
#include <utility>

#include "lib/providers/url.h"

namespace llmproxy::providers::google {
namespace {

// OpenAI SDKs ask for base64 embeddings by default: little-endian float32s.
std::string base64_floats(const Json& values) {
  std::string bytes;
  for (const Json& v : values) {
    float f = v.is_number() ? v.get<float>() : 0.0f;
    unsigned char b[4];
    std::memcpy(b, &f, 4);
    if constexpr (std::endian::native == std::endian::big)
      std::swap(b[0], b[3]), std::swap(b[1], b[2]);
    bytes.append(reinterpret_cast<const char*>(b), 4);
  }
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    unsigned n = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) n |= static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

Reply bad_reply(std::string_view why) {
  Reply r;
  r.status = 502;
  r.body = openai_error_body(why, "upstream_error", "upstream_bad_reply");
  return r;
}

}  // namespace

UpstreamRequest Adapter::build_request(const InboundRequest& in,
                                       const routing::Route& route) const {
  if (in.endpoint != Endpoint::kChat && in.endpoint != Endpoint::kEmbeddings)
    throw RequestError("model", "google connections serve chat completions and embeddings only");
  Json openai = Json::parse(in.body, nullptr, false);  // already validated by the scanner
  const Connection& c = *route.connection;
  Url url = parse_url(c.endpoint.empty() ? kDefaultEndpoint : std::string_view(c.endpoint));
  UpstreamRequest req;
  req.tls = url.tls;
  req.host = url.host;
  req.port = url.port;
  // The endpoint may be given with or without the version suffix.
  std::string path =
      url.path.ends_with("/v1beta") || url.path.ends_with("/v1") ? url.path : url.path + "/v1beta";
  std::string model_path = path + "/models/" + route.remote;
  if (in.endpoint == Endpoint::kEmbeddings) {
    EmbedRequest embed = to_embed_request(openai, route.remote);
    req.target = model_path + (embed.batch ? ":batchEmbedContents" : ":embedContent");
    req.body = embed.body.dump();
  } else {
    req.target = in.stream_requested ? model_path + ":streamGenerateContent?alt=sse"
                                     : model_path + ":generateContent";
    Json body = to_generate_request(openai);
    if (route.remote.starts_with("gemini-3")) sign_unsigned_calls(body);
    req.body = body.dump();
  }
  req.headers = {{"Content-Type", "application/json"}};
  // The key goes in a header, never the URL, so it stays out of logs.
  if (!c.api_key.empty()) req.headers.emplace_back("x-goog-api-key", c.api_key);
  for (const auto& h : c.headers) req.headers.push_back(h);
  return req;
}

Reply Adapter::translate_reply(const InboundRequest& in, int status, std::string body,
                               const HeaderView&) const {
  Json doc = Json::parse(body, nullptr, false);
  if (!doc.is_object()) return bad_reply("the google reply was not JSON");
  Reply r;
  r.status = status;
  std::string remote = in.route ? in.route->remote : std::string();
  if (in.endpoint == Endpoint::kEmbeddings) {
    Json list = to_embedding_list(doc, remote, r.usage);
    if (list.is_null()) return bad_reply("the google reply holds no embeddings");
    Json request = Json::parse(in.body, nullptr, false);
    const Json* format = request.is_object() && request.contains("encoding_format")
                             ? &request["encoding_format"]
                             : nullptr;
    if (format && *format == "base64") {
      for (Json& item : list["data"]) item["embedding"] = base64_floats(item["embedding"]);
    }
    r.body = list.dump();
    return r;
  }
  r.usage = usage_of(doc.value("usageMetadata", Json::object()));
  r.body = to_chat_completion(doc, completion_id(doc, in.request_id), remote).dump();
  return r;
}

}  // namespace llmproxy::providers::google
