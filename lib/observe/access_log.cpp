#include "lib/observe/access_log.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "lib/domain/time.h"
#include "lib/util/json_scan.h"

namespace llmproxy::observe {
namespace {

// "2026-11-23T11:12:13.456Z": the record's start time, to the millisecond.
std::string timestamp(TimeMs t) {
  std::string s = format_time(t);  // ...:SSZ
  char ms[8];
  std::snprintf(ms, sizeof ms, ".%03d", static_cast<int>(((t % 1000) + 1000) % 1000));
  s.insert(s.size() - 1, ms);
  return s;
}

std::string fixed(double v, int digits) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// A body as a JSON string; invalid UTF-8 replaced rather than refused.
std::string text(const std::string& body) {
  return nlohmann::json(body).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Quotes a text-format value when it would not read back as one token.
std::string token(const std::string& v) {
  if (!v.empty() && v.find_first_of(" \t\"=\n") == std::string::npos) return v;
  return text(v);
}

}  // namespace

std::string AccessLog::line(const usage::Outcome& o) const {
  const UsageRecord& r = o.record;
  if (format_ == LogFormat::kText) {
    std::string s = timestamp(r.ts) + " info request " + token(r.request_id) +
                    " key=" + token(r.vkey_name) + " model=" + token(r.model) +
                    " connection=" + token(r.conn_name) + " status=" + std::to_string(r.status) +
                    " latency_ms=" + fixed(r.latency_ms, 3);
    if (r.ttft_ms) s += " ttft_ms=" + fixed(*r.ttft_ms, 3);
    s += " prompt_tokens=" + std::to_string(r.prompt_tokens) +
         " completion_tokens=" + std::to_string(r.completion_tokens) +
         " cost=" + fixed(r.cost, 8) + " stream=" + (o.stream ? "true" : "false");
    if (!o.error.empty()) s += " error=" + token(o.error);
    s += " method=" + token(o.method) + " path=" + token(o.path);
    if (bodies_) s += " request_body=" + text(o.request_body) + " reply_body=" + text(o.reply_body);
    return s + "\n";
  }
  // Formatted by hand: this runs for every request, and a DOM per line would
  // cost more than everything else the writer thread does for it.
  auto str = [](const std::string& v) { return json_scan::encode_string(v); };
  std::string s;
  s.reserve(320);
  s += "{\"ts\":\"" + timestamp(r.ts) + "\",\"level\":\"info\",\"msg\":\"request\"";
  s += ",\"request_id\":" + str(r.request_id);
  s += ",\"method\":" + str(o.method);
  s += ",\"path\":" + str(o.path);
  s += ",\"key\":" + str(r.vkey_name);
  s += ",\"model\":" + str(r.model);
  s += ",\"connection\":" + str(r.conn_name);
  s += ",\"status\":" + std::to_string(r.status);
  s += ",\"latency_ms\":" + fixed(r.latency_ms, 3);
  s += ",\"ttft_ms\":" + (r.ttft_ms ? fixed(*r.ttft_ms, 3) : std::string("null"));
  s += ",\"prompt_tokens\":" + std::to_string(r.prompt_tokens);
  s += ",\"completion_tokens\":" + std::to_string(r.completion_tokens);
  s += ",\"cost\":" + fixed(r.cost, 10);
  s += o.stream ? ",\"stream\":true" : ",\"stream\":false";
  s += ",\"error\":" + (o.error.empty() ? std::string("null") : str(o.error));
  if (bodies_) {
    s += ",\"request_body\":" + text(o.request_body);
    s += ",\"reply_body\":" + text(o.reply_body);
  }
  s += "}\n";
  return s;
}

void AccessLog::observe(std::span<const usage::Outcome> outcomes) {
  std::string buf;
  for (const usage::Outcome& o : outcomes) buf += line(o);
  std::fwrite(buf.data(), 1, buf.size(), out_);
  std::fflush(out_);
}

}  // namespace llmproxy::observe
