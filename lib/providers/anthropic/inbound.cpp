#include "lib/providers/anthropic/inbound.h"

#include <map>

#include "lib/providers/sse.h"
#include "lib/providers/url.h"

namespace llmproxy::providers::anthropic {
namespace {

[[noreturn]] void refuse(const std::string& param, const std::string& why) {
  throw RequestError(param, why);
}

std::string joined_text(const Json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string out;
  if (content.is_array()) {
    for (const Json& b : content) {
      if (b.value("type", "") == "text") out += b.value("text", "");
    }
  }
  return out;
}

Json openai_part(const Json& block, const std::string& where) {
  std::string type = block.value("type", "");
  if (type == "text") return {{"type", "text"}, {"text", block.value("text", "")}};
  const Json& source = block.contains("source") ? block["source"] : Json::object();
  std::string kind = source.value("type", "");
  if (type == "image") {
    std::string url = kind == "base64" ? "data:" + source.value("media_type", "") + ";base64," +
                                             source.value("data", "")
                                       : source.value("url", "");
    if (url.empty()) refuse(where, "image source must be base64 or url");
    return {{"type", "image_url"}, {"image_url", {{"url", url}}}};
  }
  if (type == "document") {
    if (kind != "base64") refuse(where, "only base64 documents can be sent to this provider");
    Json file = {{"file_data", "data:" + source.value("media_type", "") + ";base64," +
                                   source.value("data", "")}};
    if (block.contains("title")) file["filename"] = block["title"];
    return {{"type", "file"}, {"file", file}};
  }
  refuse(where, "content block type '" + type + "' cannot be sent to this provider");
}

void add_user(Json& out, const Json& content, const std::string& where) {
  if (content.is_string()) {
    out.push_back({{"role", "user"}, {"content", content}});
    return;
  }
  Json parts = Json::array();
  for (std::size_t i = 0; i < content.size(); ++i) {
    const Json& b = content[i];
    std::string at = where + ".content[" + std::to_string(i) + "]";
    if (b.value("type", "") == "tool_result") {
      // Tool results become OpenAI tool messages, in order.
      out.push_back({{"role", "tool"},
                     {"tool_call_id", b.value("tool_use_id", "")},
                     {"content", joined_text(b.contains("content") ? b["content"] : Json(""))}});
    } else {
      parts.push_back(openai_part(b, at));
    }
  }
  if (!parts.empty()) out.push_back({{"role", "user"}, {"content", parts}});
}

void add_assistant(Json& out, const Json& content) {
  Json msg = {{"role", "assistant"}};
  if (content.is_string()) {
    msg["content"] = content;
    out.push_back(msg);
    return;
  }
  std::string text;
  Json calls = Json::array();
  for (const Json& b : content) {
    std::string type = b.value("type", "");
    if (type == "text") text += b.value("text", "");
    if (type == "tool_use")
      calls.push_back({{"id", b.value("id", "")},
                       {"type", "function"},
                       {"function",
                        {{"name", b.value("name", "")},
                         {"arguments", b.value("input", Json::object()).dump()}}}});
    // thinking blocks have no OpenAI counterpart and are dropped.
  }
  msg["content"] = text.empty() && !calls.empty() ? Json() : Json(text);
  if (!calls.empty()) msg["tool_calls"] = calls;
  out.push_back(msg);
}

std::string_view error_type(int status) {
  switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503:
    case 529: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

std::string event(std::string_view type, const Json& data) {
  return "event: " + std::string(type) + "\ndata: " + data.dump() + "\n\n";
}

// OpenAI chunks in, Anthropic events out.
class ChunksToEvents final : public StreamTranslator {
 public:
  explicit ChunksToEvents(std::unique_ptr<StreamTranslator> inner) : inner_(std::move(inner)) {}

  void feed(std::string_view bytes, std::string& out) override {
    if (!inner_) return convert(bytes, out);
    std::string chunks;
    inner_->feed(bytes, chunks);
    convert(chunks, out);
  }
  void finish(std::string& out) override {
    if (inner_) {
      std::string chunks;
      inner_->finish(chunks);
      convert(chunks, out);
    }
    events_.finish([&](const sse::Event& ev) { on_chunk(ev.data, out); });
  }
  const Usage& usage() const override { return inner_ && inner_->usage().reported ? inner_->usage() : usage_; }
  bool complete() const override { return done_ && (!inner_ || inner_->complete()); }
  // Error chunks are converted into Anthropic `error` events, so the inner
  // translator's in-band error reaches the client too.
  std::string failure() const override { return inner_ ? inner_->failure() : std::string(); }
  bool error_sent() const override { return inner_ && inner_->error_sent(); }

 private:
  void convert(std::string_view chunks, std::string& out) {
    events_.feed(chunks, [&](const sse::Event& ev) { on_chunk(ev.data, out); });
  }

  void on_chunk(std::string_view data, std::string& out) {
    if (data.empty()) return;
    if (data == "[DONE]") return finish_message(out);
    Json chunk = Json::parse(data, nullptr, false);
    if (!chunk.is_object()) return;
    if (chunk.contains("error")) {
      const Json& err = chunk["error"];
      out += event("error", {{"type", "error"},
                             {"error",
                              {{"type", "api_error"},
                               {"message", err.is_object() ? err.value("message", "") : ""}}}});
      return;
    }
    start_message(chunk, out);
    if (chunk.contains("usage") && chunk["usage"].is_object()) {
      usage_.prompt_tokens = chunk["usage"].value("prompt_tokens", 0);
      usage_.completion_tokens = chunk["usage"].value("completion_tokens", 0);
      usage_.reported = true;
    }
    if (!chunk.contains("choices") || chunk["choices"].empty()) return;
    const Json& choice = chunk["choices"][0];
    const Json& delta = choice.value("delta", Json::object());
    if (delta.contains("content") && delta["content"].is_string() &&
        !delta["content"].get<std::string>().empty()) {
      if (open_ != Open::kText) {
        close_block(out);
        out += event("content_block_start", {{"type", "content_block_start"},
                                             {"index", index_},
                                             {"content_block", {{"type", "text"}, {"text", ""}}}});
        open_ = Open::kText;
      }
      out += event("content_block_delta",
                   {{"type", "content_block_delta"},
                    {"index", index_},
                    {"delta", {{"type", "text_delta"}, {"text", delta["content"]}}}});
    }
    if (delta.contains("tool_calls") && delta["tool_calls"].is_array()) {
      for (const Json& call : delta["tool_calls"]) {
        int tool = call.value("index", 0);
        const Json& fn = call.value("function", Json::object());
        if (open_ != Open::kTool || tool != tool_) {
          close_block(out);
          out += event("content_block_start",
                       {{"type", "content_block_start"},
                        {"index", index_},
                        {"content_block",
                         {{"type", "tool_use"},
                          {"id", call.value("id", "")},
                          {"name", fn.value("name", "")},
                          {"input", Json::object()}}}});
          open_ = Open::kTool;
          tool_ = tool;
        }
        std::string args = fn.value("arguments", "");
        if (!args.empty())
          out += event("content_block_delta",
                       {{"type", "content_block_delta"},
                        {"index", index_},
                        {"delta", {{"type", "input_json_delta"}, {"partial_json", args}}}});
      }
    }
    if (choice.contains("finish_reason") && choice["finish_reason"].is_string())
      stop_ = stop_reason(choice["finish_reason"].get<std::string>());
  }

  void start_message(const Json& chunk, std::string& out) {
    if (started_) return;
    started_ = true;
    out += event("message_start",
                 {{"type", "message_start"},
                  {"message",
                   {{"id", "msg_" + chunk.value("id", "")},
                    {"type", "message"},
                    {"role", "assistant"},
                    {"content", Json::array()},
                    {"model", chunk.value("model", "")},
                    {"stop_reason", nullptr},
                    {"stop_sequence", nullptr},
                    {"usage", {{"input_tokens", 0}, {"output_tokens", 0}}}}}});
  }

  void close_block(std::string& out) {
    if (open_ == Open::kNone) return;
    out += event("content_block_stop", {{"type", "content_block_stop"}, {"index", index_}});
    ++index_;
    open_ = Open::kNone;
  }

  void finish_message(std::string& out) {
    if (done_) return;
    start_message(Json::object(), out);
    close_block(out);
    const Usage& u = usage();
    out += event("message_delta", {{"type", "message_delta"},
                                   {"delta", {{"stop_reason", stop_}, {"stop_sequence", nullptr}}},
                                   {"usage",
                                    {{"input_tokens", u.prompt_tokens},
                                     {"output_tokens", u.completion_tokens}}}});
    out += event("message_stop", {{"type", "message_stop"}});
    done_ = true;
  }

  enum class Open { kNone, kText, kTool };
  std::unique_ptr<StreamTranslator> inner_;
  sse::Parser events_;
  Usage usage_;
  bool started_ = false, done_ = false;
  Open open_ = Open::kNone;
  int index_ = 0, tool_ = -1;
  std::string stop_ = "end_turn";
};

// Anthropic events pass through; usage is read on the way.
class PassthroughStream final : public StreamTranslator {
 public:
  void feed(std::string_view bytes, std::string& out) override {
    out.append(bytes);
    events_.feed(bytes, [&](const sse::Event& ev) { observe(ev); });
  }
  void finish(std::string&) override {
    events_.finish([&](const sse::Event& ev) { observe(ev); });
  }
  const Usage& usage() const override { return usage_; }
  bool complete() const override { return done_; }

 private:
  void observe(const sse::Event& ev) {
    if (ev.name == "message_stop") done_ = true;
    if (ev.name != "message_start" && ev.name != "message_delta") return;
    Json data = Json::parse(ev.data, nullptr, false);
    if (!data.is_object()) return;
    const Json& u = ev.name == "message_start" ? data.value("message", Json::object()).value("usage", Json())
                                                : data.value("usage", Json());
    if (!u.is_object()) return;
    Usage seen = usage_of(u);
    if (ev.name == "message_start") usage_ = seen;
    else {
      usage_.completion_tokens = seen.completion_tokens;
      if (seen.prompt_tokens > 0) usage_.prompt_tokens = seen.prompt_tokens;
      usage_.reported = true;
    }
  }

  sse::Parser events_;
  Usage usage_;
  bool done_ = false;
};

class Passthrough final : public providers::Adapter {
 public:
  UpstreamRequest build_request(const InboundRequest& in, const routing::Route& route) const override {
    const Connection& c = *route.connection;
    Url url = parse_url(c.endpoint);
    UpstreamRequest req;
    req.tls = url.tls;
    req.host = url.host;
    req.port = url.port;
    req.target = (url.path.ends_with("/v1") ? url.path : url.path + "/v1") + "/messages";
    req.body.reserve(in.body.size() + route.remote.size());
    req.body.append(in.body.substr(0, in.model.begin));
    req.body.append(json_scan::encode_string(route.remote));
    req.body.append(in.body.substr(in.model.end));
    req.headers = {{"Content-Type", "application/json"}};
    bool version = false;
    for (const auto& [name, value] : in.forward_headers) {
      req.headers.emplace_back(name, value);
      version |= name == "anthropic-version";
    }
    if (!version) req.headers.emplace_back("anthropic-version", std::string(kApiVersion));
    if (!c.api_key.empty()) req.headers.emplace_back("x-api-key", c.api_key);
    for (const auto& h : c.headers) req.headers.push_back(h);
    return req;
  }
  Reply translate_reply(const InboundRequest&, int status, std::string body,
                        const HeaderView&) const override {
    Reply r;
    r.status = status;
    static constexpr std::string_view kKeys[] = {"usage"};
    json_scan::Span span[1];
    std::string err;
    if (json_scan::scan(body, kKeys, span, err) && span[0].found)
      r.usage = usage_of(Json::parse(span[0].in(body), nullptr, false));
    r.body = std::move(body);
    return r;
  }
  std::unique_ptr<StreamTranslator> stream_translator(const InboundRequest&) const override {
    return std::make_unique<PassthroughStream>();
  }
  Reply map_error(const Connection&, int status, std::string body,
                  const HeaderView&) const override {
    Reply r;
    r.status = status;
    r.body = std::move(body);  // already Anthropic-shaped for Anthropic clients
    return r;
  }
};

}  // namespace

std::string_view stop_reason(std::string_view finish_reason) {
  if (finish_reason == "length") return "max_tokens";
  if (finish_reason == "tool_calls" || finish_reason == "function_call") return "tool_use";
  if (finish_reason == "content_filter") return "refusal";
  return "end_turn";
}

Json chat_request_from_messages(const Json& in) {
  Json out = {{"model", in.value("model", "")}};
  Json messages = Json::array();
  if (in.contains("system")) {
    std::string system = joined_text(in["system"]);
    if (!system.empty()) messages.push_back({{"role", "system"}, {"content", system}});
  }
  const Json& msgs = in.value("messages", Json::array());
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    const Json& m = msgs[i];
    std::string where = "messages[" + std::to_string(i) + "]";
    std::string role = m.value("role", "");
    const Json& content = m.contains("content") ? m["content"] : Json("");
    if (role == "user") add_user(messages, content, where);
    else if (role == "assistant") add_assistant(messages, content);
    else refuse(where + ".role", "role must be user or assistant");
  }
  out["messages"] = messages;
  if (in.contains("max_tokens")) out["max_tokens"] = in["max_tokens"];
  for (const char* key : {"temperature", "top_p"})
    if (in.contains(key)) out[key] = in[key];
  if (in.contains("stop_sequences")) out["stop"] = in["stop_sequences"];
  if (in.contains("tools") && in["tools"].is_array()) {
    Json tools = Json::array();
    for (const Json& t : in["tools"]) {
      Json fn = {{"name", t.value("name", "")}};
      if (t.contains("description")) fn["description"] = t["description"];
      fn["parameters"] = t.value("input_schema", Json{{"type", "object"}});
      tools.push_back({{"type", "function"}, {"function", fn}});
    }
    out["tools"] = tools;
  }
  if (in.contains("tool_choice") && in["tool_choice"].is_object()) {
    const Json& tc = in["tool_choice"];
    std::string type = tc.value("type", "auto");
    if (type == "any") out["tool_choice"] = "required";
    else if (type == "tool")
      out["tool_choice"] = {{"type", "function"}, {"function", {{"name", tc.value("name", "")}}}};
    else out["tool_choice"] = type;  // auto, none
    if (tc.value("disable_parallel_tool_use", false)) out["parallel_tool_calls"] = false;
  }
  if (in.contains("metadata") && in["metadata"].contains("user_id"))
    out["user"] = in["metadata"]["user_id"];
  if (in.value("stream", false)) {
    out["stream"] = true;
    out["stream_options"] = {{"include_usage", true}};
  }
  return out;
}

Json message_from_chat_completion(const Json& c) {
  const Json& choice = c.contains("choices") && !c["choices"].empty() ? c["choices"][0] : Json::object();
  const Json& msg = choice.value("message", Json::object());
  Json content = Json::array();
  if (msg.contains("content") && msg["content"].is_string() &&
      !msg["content"].get<std::string>().empty())
    content.push_back({{"type", "text"}, {"text", msg["content"]}});
  for (const Json& call : msg.value("tool_calls", Json::array())) {
    const Json& fn = call.value("function", Json::object());
    Json input = Json::parse(fn.value("arguments", "{}"), nullptr, false);
    content.push_back({{"type", "tool_use"},
                       {"id", call.value("id", "")},
                       {"name", fn.value("name", "")},
                       {"input", input.is_object() ? input : Json::object()}});
  }
  const Json& usage = c.value("usage", Json::object());
  std::string finish = choice.value("finish_reason", "stop");
  return {{"id", "msg_" + c.value("id", "")},
          {"type", "message"},
          {"role", "assistant"},
          {"model", c.value("model", "")},
          {"content", content},
          {"stop_reason", stop_reason(finish)},
          {"stop_sequence", nullptr},
          {"usage",
           {{"input_tokens", usage.value("prompt_tokens", 0)},
            {"output_tokens", usage.value("completion_tokens", 0)}}}};
}

std::string error_body(int status, std::string_view message) {
  return Json{{"type", "error"}, {"error", {{"type", error_type(status)}, {"message", message}}}}
      .dump();
}

std::string error_body_from_openai(int status, std::string_view openai_body) {
  Json doc = Json::parse(openai_body, nullptr, false);
  std::string message(openai_body.substr(0, 200));
  if (doc.is_object() && doc.contains("error") && doc["error"].is_object())
    message = doc["error"].value("message", message);
  return error_body(status, message);
}

std::unique_ptr<StreamTranslator> events_from_chunks(std::unique_ptr<StreamTranslator> inner) {
  return std::make_unique<ChunksToEvents>(std::move(inner));
}

const providers::Adapter& passthrough() {
  static const Passthrough adapter;
  return adapter;
}

const providers::Adapter* Adapter::native(Endpoint endpoint) const {
  return endpoint == Endpoint::kMessages ? &passthrough() : nullptr;
}

}  // namespace llmproxy::providers::anthropic
