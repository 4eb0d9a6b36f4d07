#include "lib/providers/anthropic/anthropic_adapter.h"

#include "lib/providers/url.h"

namespace llmproxy::providers::anthropic {

UpstreamRequest Adapter::build_request(const InboundRequest& in, const routing::Route& route) const {
  if (in.endpoint != Endpoint::kChat)
    throw RequestError("model", "anthropic connections serve chat completions only");
  Json openai = Json::parse(in.body, nullptr, false);  // already validated by the scanner
  const Connection& c = *route.connection;
  Url url = parse_url(c.endpoint);
  UpstreamRequest req;
  req.tls = url.tls;
  req.host = url.host;
  req.port = url.port;
  // The endpoint may be given with or without the /v1 suffix.
  std::string path = url.path.ends_with("/v1") ? url.path : url.path + "/v1";
  req.target = path + "/messages";
  req.body = to_messages_request(openai, route.remote).dump();
  req.headers = {{"Content-Type", "application/json"},
                 {"anthropic-version", std::string(kApiVersion)}};
  if (!c.api_key.empty()) req.headers.emplace_back("x-api-key", c.api_key);
  for (const auto& h : c.headers) req.headers.push_back(h);
  return req;
}

Reply Adapter::translate_reply(const InboundRequest&, int status, std::string body,
                               const HeaderView&) const {
  Json msg = Json::parse(body, nullptr, false);
  Reply r;
  r.status = status;
  if (!msg.is_object()) {
    r.status = 502;
    r.body = openai_error_body("the anthropic reply was not JSON", "upstream_error",
                               "upstream_bad_reply");
    return r;
  }
  Json completion = to_chat_completion(msg);
  r.usage = usage_of(msg.value("usage", Json::object()));
  r.body = completion.dump();
  return r;
}

}  // namespace llmproxy::providers::anthropic
