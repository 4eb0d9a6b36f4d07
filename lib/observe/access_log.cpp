#include "lib/observe/access_log.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "lib/domain/time.h"

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

// Quotes a text-format value when it would not read back as one token.
std::string token(const std::string& v) {
  if (!v.empty() && v.find_first_of(" \t\"=\n") == std::string::npos) return v;
  return nlohmann::json(v).dump();
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
    if (bodies_) {
      s += " request_body=" + nlohmann::json(o.request_body).dump(-1, ' ', false,
                                                                  nlohmann::json::error_handler_t::replace);
      s += " reply_body=" + nlohmann::json(o.reply_body).dump(-1, ' ', false,
                                                              nlohmann::json::error_handler_t::replace);
    }
    return s + "\n";
  }
  nlohmann::ordered_json j;
  j["ts"] = timestamp(r.ts);
  j["level"] = "info";
  j["msg"] = "request";
  j["request_id"] = r.request_id;
  j["key"] = r.vkey_name;
  j["model"] = r.model;
  j["connection"] = r.conn_name;
  j["status"] = r.status;
  j["latency_ms"] = r.latency_ms;
  j["ttft_ms"] = r.ttft_ms ? nlohmann::ordered_json(*r.ttft_ms) : nullptr;
  j["prompt_tokens"] = r.prompt_tokens;
  j["completion_tokens"] = r.completion_tokens;
  j["cost"] = r.cost;
  j["stream"] = o.stream;
  j["error"] = o.error.empty() ? nullptr : nlohmann::ordered_json(o.error);
  if (bodies_) {
    j["request_body"] = o.request_body;
    j["reply_body"] = o.reply_body;
  }
  // Bodies may hold invalid UTF-8: replace it rather than throw.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

void AccessLog::observe(std::span<const usage::Outcome> outcomes) {
  std::string buf;
  for (const usage::Outcome& o : outcomes) buf += line(o);
  std::fwrite(buf.data(), 1, buf.size(), out_);
  std::fflush(out_);
}

}  // namespace llmproxy::observe
