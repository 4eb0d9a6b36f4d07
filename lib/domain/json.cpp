#include "lib/domain/json.h"

#include "lib/domain/time.h"

namespace llmproxy {
namespace {

template <class T>
nlohmann::ordered_json opt(const std::optional<T>& v) {
  return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
}

nlohmann::ordered_json opt_time(const std::optional<TimeMs>& t) {
  return t ? nlohmann::ordered_json(format_time(*t)) : nlohmann::ordered_json(nullptr);
}

nlohmann::ordered_json opt_secret(const std::string& s) {
  return s.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(mask_secret(s));
}

}  // namespace

std::string mask_secret(std::string_view secret) {
  if (secret.size() < 12) return "****";
  return "****" + std::string(secret.substr(secret.size() - 4));
}

nlohmann::ordered_json to_json(const Connection& c) {
  nlohmann::ordered_json headers = nlohmann::ordered_json::object();
  for (const auto& [name, value] : c.headers) headers[name] = mask_secret(value);
  return {
      {"id", c.id},
      {"name", c.name},
      {"provider", to_string(c.provider)},
      {"endpoint", c.endpoint},
      {"api_key", opt_secret(c.api_key)},
      {"api_version", c.api_version.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(c.api_version)},
      {"region", c.region.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(c.region)},
      {"access_key_id", opt_secret(c.access_key_id)},
      {"secret_access_key", opt_secret(c.secret_access_key)},
      {"session_token", opt_secret(c.session_token)},
      {"headers", headers},
      {"timeout", static_cast<double>(c.timeout_ms) / 1000.0},
      {"options", nlohmann::ordered_json::parse(c.options, nullptr, false)},
      {"created_at", format_time(c.created_at)},
      {"updated_at", format_time(c.updated_at)},
  };
}

nlohmann::ordered_json to_json(const ProviderModel& m) {
  return {
      {"id", m.id},
      {"name", m.name},
      {"remote", m.remote},
      {"conn_id", m.conn_id},
      {"input_price", opt(m.input_price)},
      {"output_price", opt(m.output_price)},
      {"created_at", format_time(m.created_at)},
      {"updated_at", format_time(m.updated_at)},
  };
}

nlohmann::ordered_json to_json(const VirtualKey& k) {
  return {
      {"id", k.id},
      {"name", k.name},
      {"key_hint", k.key_hint},
      {"enabled", k.enabled},
      {"expires", opt_time(k.expires_at)},
      {"created_at", format_time(k.created_at)},
      {"updated_at", format_time(k.updated_at)},
  };
}

nlohmann::ordered_json to_json(const UsageRecord& r) {
  return {
      {"id", r.id},
      {"time", format_time(r.ts)},
      {"request_id", r.request_id},
      {"vkey_id", opt(r.vkey_id)},
      {"vkey_name", r.vkey_name},
      {"assignment_id", opt(r.assignment_id)},
      {"model", r.model},
      {"conn_id", opt(r.conn_id)},
      {"conn_name", r.conn_name},
      {"status", r.status},
      {"latency_ms", r.latency_ms},
      {"ttft_ms", opt(r.ttft_ms)},
      {"prompt_tokens", r.prompt_tokens},
      {"completion_tokens", r.completion_tokens},
      {"total_tokens", r.prompt_tokens + r.completion_tokens},
      {"cost", r.cost},
  };
}

nlohmann::ordered_json to_json(const storage::UsageGroup& g) {
  return {
      {"group", g.group},
      {"requests", g.requests},
      {"errors", g.errors},
      {"prompt_tokens", g.prompt_tokens},
      {"completion_tokens", g.completion_tokens},
      {"total_tokens", g.prompt_tokens + g.completion_tokens},
      {"cost", g.cost},
      {"avg_latency_ms", g.avg_latency_ms},
      {"p50_latency_ms", g.p50_latency_ms},
      {"p95_latency_ms", g.p95_latency_ms},
      {"p99_latency_ms", g.p99_latency_ms},
  };
}

}  // namespace llmproxy
