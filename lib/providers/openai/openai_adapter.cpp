#include "lib/providers/openai/openai_adapter.h"

#include <charconv>
#include <nlohmann/json.hpp>

#include "lib/providers/url.h"

namespace llmproxy::providers {
namespace {

constexpr std::string_view kDefaultAzureApiVersion = "2024-10-21";

std::string_view endpoint_path(Endpoint e) {
  switch (e) {
    case Endpoint::kChat:
    case Endpoint::kMessages: return "/chat/completions";
    case Endpoint::kCompletions: return "/completions";
    case Endpoint::kEmbeddings: return "/embeddings";
  }
  return "";
}

std::string target_for(const Connection& c, const Url& url, const InboundRequest& in,
                       const std::string& remote) {
  std::string path = url.path;
  std::string query = url.query;
  switch (c.provider) {
    case Provider::kAzure:
      // Either the resource URL (deployment taken from the model) or a full
      // deployment URL.
      if (path.find("/openai/deployments/") == std::string::npos)
        path += "/openai/deployments/" + remote;
      if (query.find("api-version=") == std::string::npos) {
        if (!query.empty()) query += "&";
        query += "api-version=" +
                 (c.api_version.empty() ? std::string(kDefaultAzureApiVersion) : c.api_version);
      }
      break;
    case Provider::kOllama:
      // Ollama's OpenAI-compatible API lives under /v1.
      if (!path.ends_with("/v1")) path += "/v1";
      break;
    default: break;
  }
  path += endpoint_path(in.endpoint);
  return query.empty() ? path : path + "?" + query;
}

// The body with `model` replaced and, for streams, include_usage switched on.
// Splices bytes rather than re-serialising the client's JSON.
std::string rewrite_body(const InboundRequest& in, const std::string& remote) {
  std::string_view body = in.body;
  std::string model = json_scan::encode_string(remote);

  struct Edit {
    std::size_t begin, end;
    std::string text;
  };
  std::vector<Edit> edits;
  edits.push_back({in.model.begin, in.model.end, model});
  if (in.stream_requested && in.endpoint != Endpoint::kEmbeddings && !client_wants_usage(in)) {
    if (!in.stream_options.found) {
      std::size_t open = body.find('{');
      edits.push_back({open + 1, open + 1, "\"stream_options\":{\"include_usage\":true},"});
    } else {
      auto opts = nlohmann::json::parse(in.stream_options.in(body), nullptr, false);
      if (!opts.is_object()) opts = nlohmann::json::object();
      opts["include_usage"] = true;
      edits.push_back({in.stream_options.begin, in.stream_options.end, opts.dump()});
    }
  }
  std::sort(edits.begin(), edits.end(), [](auto& a, auto& b) { return a.begin < b.begin; });
  std::string out;
  out.reserve(body.size() + 64);
  std::size_t pos = 0;
  for (const Edit& e : edits) {
    out.append(body.substr(pos, e.begin - pos));
    out.append(e.text);
    pos = e.end;
  }
  out.append(body.substr(pos));
  return out;
}

// Pass-through of OpenAI-style SSE, one whole event at a time, noting usage
// and the final `[DONE]`; drops the usage-only chunk when it was we who asked
// for it, so the client sees exactly the stream it requested.
class OpenAIStream final : public StreamTranslator {
 public:
  explicit OpenAIStream(bool forward_usage_chunk) : forward_usage_chunk_(forward_usage_chunk) {}

  void feed(std::string_view bytes, std::string& out) override {
    buffer_.append(bytes);
    std::size_t start = 0;
    std::size_t from = scan_from_;  // don't rescan what earlier slices already searched
    for (;;) {
      std::size_t end = buffer_.find("\n\n", from);
      std::size_t crlf = buffer_.find("\r\n\r\n", from);
      std::size_t sep = 2;
      if (crlf != std::string::npos && (end == std::string::npos || crlf < end)) {
        end = crlf;
        sep = 4;
      }
      if (end == std::string::npos) break;
      event(std::string_view(buffer_).substr(start, end + sep - start), out);
      start = from = end + sep;
    }
    buffer_.erase(0, start);
    scan_from_ = buffer_.size() >= 3 ? buffer_.size() - 3 : 0;
  }

  void finish(std::string& out) override {
    if (!buffer_.empty()) {
      buffer_ += "\n\n";
      std::string rest = std::move(buffer_);
      buffer_.clear();
      event(rest, out);
    }
  }

  const Usage& usage() const override { return usage_; }
  bool complete() const override { return done_; }

 private:
  void event(std::string_view ev, std::string& out) {
    std::string_view data = data_of(ev);
    if (data == "[DONE]") {
      done_ = true;
    } else if (data.find("\"usage\"") != std::string_view::npos) {
      static constexpr std::string_view kKeys[] = {"usage", "choices"};
      json_scan::Span spans[2];
      std::string error;
      if (json_scan::scan(data, kKeys, spans, error)) {
        Usage u = spans[0].found ? parse_openai_usage(spans[0].in(data)) : Usage{};
        if (u.reported) {
          usage_ = u;
          std::string_view choices = spans[1].found ? spans[1].in(data) : "[]";
          bool no_choices = choices.size() >= 2 && choices.front() == '[' &&
                            choices.find_first_not_of(" \t\r\n", 1) == choices.size() - 1;
          if (no_choices && !forward_usage_chunk_) return;
        }
      }
    }
    out.append(ev);
  }

  // The payload of the event's data line(s); single-line data is the norm.
  static std::string_view data_of(std::string_view ev) {
    std::size_t pos = ev.find("data:");
    if (pos == std::string_view::npos) return {};
    std::string_view data = ev.substr(pos + 5);
    if (!data.empty() && data.front() == ' ') data.remove_prefix(1);
    std::size_t eol = data.find_first_of("\r\n");
    return data.substr(0, eol);
  }

  bool forward_usage_chunk_;
  std::string buffer_;
  std::size_t scan_from_ = 0;
  Usage usage_;
  bool done_ = false;
};

}  // namespace

bool client_wants_usage(const InboundRequest& in) {
  if (!in.stream_options.found) return false;
  std::string_view opts = in.stream_options.in(in.body);
  if (opts.find("include_usage") == std::string_view::npos) return false;
  auto j = nlohmann::json::parse(opts, nullptr, false);
  return j.is_object() && j.value("include_usage", false) == true;
}

Usage parse_openai_usage(std::string_view usage_json) {
  // Scanned, not parsed into a DOM: this runs on every proxied reply.
  static constexpr std::string_view kKeys[] = {"prompt_tokens", "completion_tokens"};
  json_scan::Span spans[2];
  std::string error;
  bool is_object = false;
  Usage u;
  if (!json_scan::scan(usage_json, kKeys, spans, error, &is_object) || !is_object) return u;
  auto count = [&](const json_scan::Span& span) -> std::int64_t {
    std::int64_t n = 0;
    if (!span.found) return 0;
    std::string_view v = span.in(usage_json);
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    return ec == std::errc() && end == v.data() + v.size() ? n : 0;  // integers only
  };
  u.prompt_tokens = count(spans[0]);
  u.completion_tokens = count(spans[1]);
  u.reported = true;
  return u;
}

UpstreamRequest OpenAIAdapter::build_request(const InboundRequest& in,
                                             const routing::Route& route) const {
  const Connection& c = *route.connection;
  Url url = parse_url(c.endpoint);
  UpstreamRequest req;
  req.tls = url.tls;
  req.host = url.host;
  req.port = url.port;
  req.target = target_for(c, url, in, route.remote);
  req.body = rewrite_body(in, route.remote);
  req.headers.emplace_back("Content-Type", "application/json");
  if (!c.api_key.empty()) {
    if (c.provider == Provider::kAzure) req.headers.emplace_back("api-key", c.api_key);
    else req.headers.emplace_back("Authorization", "Bearer " + c.api_key);
  }
  for (const auto& h : c.headers) req.headers.push_back(h);
  return req;
}

Reply OpenAIAdapter::translate_reply(const InboundRequest&, int status, std::string body,
                                     const HeaderView&) const {
  Reply r;
  r.status = status;
  if (status < 300) {
    static constexpr std::string_view kKeys[] = {"usage"};
    json_scan::Span span[1];
    std::string error;
    if (json_scan::scan(body, kKeys, span, error) && span[0].found)
      r.usage = parse_openai_usage(span[0].in(body));
  }
  r.body = std::move(body);
  return r;
}

std::unique_ptr<StreamTranslator> OpenAIAdapter::stream_translator(const InboundRequest& in) const {
  return std::make_unique<OpenAIStream>(client_wants_usage(in));
}

}  // namespace llmproxy::providers
