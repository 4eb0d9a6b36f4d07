#include "lib/providers/template/template_adapter.h"

#include "lib/domain/time.h"
#include "lib/providers/openai/openai_adapter.h"
#include "lib/providers/url.h"

namespace llmproxy::providers::templated {
namespace {

constexpr std::string_view kVariables[] = {"model",       "messages", "prompt", "system",
                                           "conversation", "temperature", "top_p", "max_tokens",
                                           "stop",        "user",     "api_key", "request_id"};

bool known(std::string_view name) {
  return std::find(std::begin(kVariables), std::end(kVariables), name) != std::end(kVariables);
}

// Calls fn(name) for each {{name}} in text; returns false on an unclosed one.
template <class Fn>
bool each_placeholder(std::string_view text, Fn&& fn) {
  std::size_t pos = 0;
  while ((pos = text.find("{{", pos)) != std::string_view::npos) {
    std::size_t end = text.find("}}", pos);
    if (end == std::string_view::npos) return false;
    std::string_view name = text.substr(pos + 2, end - pos - 2);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    fn(name, pos, end + 2);
    pos = end + 2;
  }
  return true;
}

std::string check_strings(const Json& node, const std::string& where) {
  if (node.is_string()) {
    std::string bad;
    bool closed = each_placeholder(node.get<std::string>(), [&](std::string_view name, auto, auto) {
      if (!known(name) && bad.empty()) bad = std::string(name);
    });
    if (!closed) return where + ": unclosed {{ placeholder";
    if (!bad.empty()) return where + ": unknown placeholder {{" + bad + "}}";
  } else if (node.is_structured()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      std::string at = where + "/" + (node.is_object() ? it.key() : "");
      if (auto e = check_strings(*it, at); !e.empty()) return e;
    }
  }
  return "";
}

std::string text_of(const Json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string out;
  if (content.is_array()) {
    for (const Json& p : content) {
      if (p.is_object() && p.value("type", "") == "text") out += p.value("text", "");
    }
  }
  return out;
}

Json variables(const Json& req, const std::string& remote, const std::string& api_key,
               std::string_view request_id) {
  Json v = {{"model", remote}, {"api_key", api_key}, {"request_id", request_id}};
  const Json& messages = req.contains("messages") ? req["messages"] : Json::array();
  v["messages"] = messages;
  std::string system, prompt, conversation;
  for (const Json& m : messages) {
    std::string role = m.value("role", "");
    std::string text = text_of(m.contains("content") ? m["content"] : Json());
    if (role == "system" || role == "developer") system += (system.empty() ? "" : "\n") + text;
    if (role == "user") prompt = text;
    conversation += role + ": " + text + "\n";
  }
  v["system"] = system;
  v["prompt"] = prompt;
  v["conversation"] = conversation;
  for (const char* key : {"temperature", "top_p", "stop", "user"})
    if (req.contains(key) && !req[key].is_null()) v[key] = req[key];
  for (const char* key : {"max_completion_tokens", "max_tokens"})
    if (req.contains(key) && !req[key].is_null()) v["max_tokens"] = req[key];
  return v;
}

std::string as_text(const Json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

// Returns nullopt when the node is exactly a placeholder whose value is absent,
// so the caller drops the key.
std::optional<Json> render_node(const Json& node, const Json& vars) {
  if (node.is_string()) {
    const std::string& s = node.get_ref<const std::string&>();
    std::string_view name;
    std::size_t count = 0, first = 0, last = 0;
    each_placeholder(s, [&](std::string_view n, std::size_t b, std::size_t e) {
      if (count++ == 0) {
        name = n;
        first = b;
        last = e;
      }
    });
    if (count == 1 && first == 0 && last == s.size()) {  // the whole value: keep its JSON type
      auto it = vars.find(std::string(name));
      if (it == vars.end()) return std::nullopt;
      return *it;
    }
    std::string out;
    std::size_t pos = 0;
    each_placeholder(s, [&](std::string_view n, std::size_t b, std::size_t e) {
      out.append(s, pos, b - pos);
      auto it = vars.find(std::string(n));
      if (it != vars.end()) out += as_text(*it);
      pos = e;
    });
    out.append(s, pos);
    return Json(out);
  }
  if (node.is_object()) {
    Json out = Json::object();
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (auto v = render_node(*it, vars)) out[it.key()] = std::move(*v);
    }
    return out;
  }
  if (node.is_array()) {
    Json out = Json::array();
    for (const Json& item : node) out.push_back(render_node(item, vars).value_or(Json()));
    return out;
  }
  return node;
}

const Json* at_pointer(const Json& doc, const Json& spec, const char* key) {
  if (!spec.contains(key) || !spec[key].is_string()) return nullptr;
  try {
    const Json& v = doc.at(Json::json_pointer(spec[key].get<std::string>()));
    return &v;
  } catch (const std::exception&) {
    return nullptr;
  }
}

Json spec_of(const Connection& c) {
  Json options = Json::parse(c.options, nullptr, false);
  return options.is_object() && options.contains("template") ? options["template"] : Json::object();
}

std::string sse(const Json& chunk) { return "data: " + chunk.dump() + "\n\n"; }

}  // namespace

std::string check_template(const Json& spec) {
  if (!spec.is_object()) return "the template must be a JSON object";
  if (!spec.contains("body")) return "the template needs a \"body\"";
  if (auto e = check_strings(spec["body"], "body"); !e.empty()) return e;
  if (spec.contains("headers")) {
    if (!spec["headers"].is_object()) return "\"headers\" must be an object of strings";
    if (auto e = check_strings(spec["headers"], "headers"); !e.empty()) return e;
  }
  if (spec.contains("path") && !spec["path"].is_string()) return "\"path\" must be a string";
  if (!spec.contains("reply") || !spec["reply"].is_object() || !spec["reply"].contains("text"))
    return "the template needs \"reply\": {\"text\": \"/json/pointer\"}";
  for (auto it = spec["reply"].begin(); it != spec["reply"].end(); ++it) {
    if (!it->is_string()) return "reply." + it.key() + " must be a JSON pointer string";
    try {
      Json::json_pointer p(it->get<std::string>());
    } catch (const std::exception&) {
      return "reply." + it.key() + " is not a JSON pointer (e.g. \"/output/text\")";
    }
  }
  return "";
}

Json render(const Json& body_template, const Json& chat_request, const std::string& remote_model,
            const std::string& api_key, std::string_view request_id) {
  Json vars = variables(chat_request, remote_model, api_key, request_id);
  return render_node(body_template, vars).value_or(Json());
}

UpstreamRequest Adapter::build_request(const InboundRequest& in, const routing::Route& route) const {
  if (in.endpoint != Endpoint::kChat)
    throw RequestError("model", "template connections serve chat completions only");
  const Connection& c = *route.connection;
  Json spec = spec_of(c);
  Json chat = Json::parse(in.body, nullptr, false);
  Url url = parse_url(c.endpoint);
  UpstreamRequest req;
  req.tls = url.tls;
  req.host = url.host;
  req.port = url.port;
  req.target = url.path + spec.value("path", "");
  if (req.target.empty()) req.target = "/";
  if (!url.query.empty()) req.target += "?" + url.query;
  req.body = render(spec["body"], chat, route.remote, c.api_key, in.request_id).dump();
  req.headers.emplace_back("Content-Type", "application/json");
  Json vars = variables(chat, route.remote, c.api_key, in.request_id);
  Json headers = spec.value("headers", Json::object());
  for (auto it = headers.begin(); it != headers.end(); ++it) {
    req.headers.emplace_back(it.key(), as_text(render_node(*it, vars).value_or(Json(""))));
  }
  for (const auto& h : c.headers) req.headers.push_back(h);
  return req;
}

Reply Adapter::translate_reply(const InboundRequest& in, int, std::string body,
                               const HeaderView&) const {
  const Connection& c = *in.route->connection;
  Json spec = spec_of(c);
  const Json& reply = spec["reply"];
  Json doc = Json::parse(body, nullptr, false);
  Reply r;
  const Json* text = doc.is_discarded() ? nullptr : at_pointer(doc, reply, "text");
  if (!text) {
    r.status = 502;
    r.body = openai_error_body("connection '" + c.name + "' replied without the text at " +
                                   reply.value("text", std::string()),
                               "upstream_error", "upstream_bad_reply");
    return r;
  }
  auto count = [&](const char* key) -> std::int64_t {
    const Json* v = at_pointer(doc, reply, key);
    return v && v->is_number_integer() ? v->get<std::int64_t>() : 0;
  };
  r.usage = {count("prompt_tokens"), count("completion_tokens"),
             at_pointer(doc, reply, "prompt_tokens") || at_pointer(doc, reply, "completion_tokens")};
  const Json* finish = at_pointer(doc, reply, "finish_reason");
  // The API's own stop reasons mean nothing to OpenAI clients unless they
  // already are OpenAI's.
  std::string finish_reason = finish && finish->is_string() ? finish->get<std::string>() : "stop";
  if (finish_reason != "length" && finish_reason != "content_filter" &&
      finish_reason != "tool_calls")
    finish_reason = "stop";
  std::string id = "chatcmpl-" + std::string(in.request_id);
  std::int64_t created = now_ms() / 1000;
  Json usage = {{"prompt_tokens", r.usage.prompt_tokens},
                {"completion_tokens", r.usage.completion_tokens},
                {"total_tokens", r.usage.prompt_tokens + r.usage.completion_tokens}};
  if (!in.stream_requested) {
    r.body = Json{{"id", id},
                  {"object", "chat.completion"},
                  {"created", created},
                  {"model", in.route->remote},
                  {"choices", Json::array({{{"index", 0},
                                            {"message", {{"role", "assistant"},
                                                         {"content", as_text(*text)},
                                                         {"refusal", nullptr}}},
                                            {"logprobs", nullptr},
                                            {"finish_reason", finish_reason}}})},
                  {"usage", usage}}
                 .dump();
    return r;
  }
  // The in-house API answers in one piece; a client that asked for a stream
  // gets it as a short, well-formed SSE stream.
  auto chunk = [&](Json delta, Json finish_value) {
    return Json{{"id", id},
                {"object", "chat.completion.chunk"},
                {"created", created},
                {"model", in.route->remote},
                {"choices", Json::array({{{"index", 0},
                                          {"delta", std::move(delta)},
                                          {"logprobs", nullptr},
                                          {"finish_reason", std::move(finish_value)}}})}};
  };
  r.content_type = "text/event-stream";
  r.body = sse(chunk({{"role", "assistant"}, {"content", ""}}, nullptr)) +
           sse(chunk({{"content", as_text(*text)}}, nullptr)) +
           sse(chunk(Json::object(), finish_reason));
  if (client_wants_usage(in)) {
    Json last = chunk(Json::object(), nullptr);
    last["choices"] = Json::array();
    last["usage"] = usage;
    r.body += sse(last);
  }
  r.body += "data: [DONE]\n\n";
  return r;
}

std::unique_ptr<StreamTranslator> Adapter::stream_translator(const InboundRequest&) const {
  // The upstream never streams (translate_reply builds the client's stream);
  // an SSE reply from it is passed through as OpenAI-shaped.
  return OpenAIAdapter().stream_translator(InboundRequest{});
}

}  // namespace llmproxy::providers::templated
