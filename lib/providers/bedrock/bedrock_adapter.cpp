#include "lib/providers/bedrock/bedrock_adapter.h"

#include <cctype>

#include "lib/crypto/hash.h"
#include "lib/domain/time.h"
#include "lib/providers/bedrock/sigv4.h"
#include "lib/providers/url.h"

namespace llmproxy::providers::bedrock {

std::string model_path(std::string_view base_path, std::string_view model, bool stream) {
  // Model ids and ARNs hold ':' and '/', which must travel percent-encoded.
  return std::string(base_path) + "/model/" + sigv4::uri_encode(model, false) +
         (stream ? "/converse-stream" : "/converse");
}

std::string client_model(const InboundRequest& in) {
  if (!in.model.found) return "";
  Json m = Json::parse(in.model.in(in.body), nullptr, false);
  return m.is_string() ? m.get<std::string>() : "";
}

UpstreamRequest Adapter::build_request(const InboundRequest& in,
                                       const routing::Route& route) const {
  return build_request_at(in, route, now_ms() / 1000);
}

UpstreamRequest Adapter::build_request_at(const InboundRequest& in, const routing::Route& route,
                                          std::int64_t unix_seconds) const {
  if (in.endpoint != Endpoint::kChat && in.endpoint != Endpoint::kEmbeddings)
    throw RequestError("model", "bedrock connections serve chat completions and embeddings only");
  Json openai = Json::parse(in.body, nullptr, false);  // already validated by the scanner
  const Connection& c = *route.connection;
  Url url = parse_url(c.endpoint);
  UpstreamRequest req;
  req.tls = url.tls;
  req.host = url.host;
  req.port = url.port;
  // Embeddings are never streamed (InvokeModel), whatever the body says.
  bool embeddings = in.endpoint == Endpoint::kEmbeddings;
  bool stream = in.stream_requested && !embeddings;
  std::string path = embeddings ? invoke_path(url.path, route.remote)
                                : model_path(url.path, route.remote, stream);
  req.target = url.query.empty() ? path : path + "?" + url.query;
  req.body = embeddings ? to_invoke_embeddings(openai, route.remote).dump()
                        : to_converse_request(openai).dump();

  // Host exactly as the upstream client will send it.
  bool default_port = (url.tls && url.port == "443") || (!url.tls && url.port == "80");
  std::string host = default_port ? url.host : url.host + ":" + url.port;
  std::string date = sigv4::amz_date(unix_seconds);

  sigv4::Request to_sign;
  to_sign.method = "POST";
  to_sign.path = path;
  to_sign.query = url.query;
  to_sign.payload = req.body;
  to_sign.headers = {{"content-type", "application/json"}, {"host", host}, {"x-amz-date", date}};
  if (!c.session_token.empty())
    to_sign.headers.emplace_back("x-amz-security-token", c.session_token);
  for (const auto& [name, value] : c.headers) {
    std::string lower = name;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (lower.starts_with("x-amz-")) to_sign.headers.emplace_back(lower, value);
  }
  sigv4::Credentials creds{c.access_key_id, c.secret_access_key, c.session_token};
  sigv4::Signature sig = sigv4::sign(to_sign, creds, c.region, kService, date);

  req.headers = {{"Content-Type", "application/json"},
                 {"Accept", stream ? std::string(kEventStreamType) : "application/json"},
                 {"X-Amz-Date", date}};
  if (!c.session_token.empty()) req.headers.emplace_back("X-Amz-Security-Token", c.session_token);
  req.headers.emplace_back("Authorization", sig.authorization);
  for (const auto& h : c.headers) req.headers.push_back(h);
  return req;
}

Reply Adapter::translate_reply(const InboundRequest& in, int status, std::string body,
                               const HeaderView& headers) const {
  Json doc = Json::parse(body, nullptr, false);
  Reply r;
  r.status = status;
  if (!doc.is_object()) {
    r.status = 502;
    r.body =
        openai_error_body("the bedrock reply was not JSON", "upstream_error", "upstream_bad_reply");
    return r;
  }
  if (in.endpoint == Endpoint::kEmbeddings) {
    Json request = Json::parse(in.body, nullptr, false);
    bool base64 = request.is_object() && request.contains("encoding_format") &&
                  request["encoding_format"] == "base64";
    Json list =
        to_embedding_list(doc, client_model(in), base64, input_token_count(headers), r.usage);
    if (list.is_null()) {
      r.status = 502;
      r.body = openai_error_body("the bedrock reply holds no embeddings", "upstream_error",
                                 "upstream_bad_reply");
      return r;
    }
    r.body = list.dump();
    return r;
  }
  std::string id = "chatcmpl-" + crypto::hex(crypto::random_bytes(12));
  Json completion = to_chat_completion(doc, id, client_model(in));
  r.usage = usage_of(doc.value("usage", Json::object()));
  r.body = completion.dump();
  return r;
}

}  // namespace llmproxy::providers::bedrock
