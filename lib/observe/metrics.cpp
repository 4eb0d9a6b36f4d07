#include "lib/observe/metrics.h"

#include <cstdio>

namespace llmproxy::observe {
namespace {

// Label values escaped as the exposition format requires.
std::string escape(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string labels(std::initializer_list<std::pair<const char*, const std::string*>> kv) {
  std::string out;
  for (const auto& [name, value] : kv) {
    if (!out.empty()) out += ',';
    out += name;
    out += "=\"";
    out += escape(*value);
    out += '"';
  }
  return out;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const std::string& name, const std::string& labels,
            const std::string& value) {
  out += name;
  if (!labels.empty()) out += "{" + labels + "}";
  out += ' ';
  out += value;
  out += '\n';
}

const char* status_class(int status) {
  if (status >= 500) return "5xx";
  if (status >= 400) return "4xx";
  if (status >= 300) return "3xx";
  if (status >= 200) return "2xx";
  return "1xx";
}

}  // namespace

void Histogram::observe(double seconds) {
  for (std::size_t i = 0; i < kDurationBuckets.size(); ++i) {
    if (seconds <= kDurationBuckets[i]) ++buckets_[i];
  }
  ++count_;
  sum_ += seconds;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& lbls) const {
  std::string prefix = lbls.empty() ? "" : lbls + ",";
  for (std::size_t i = 0; i < kDurationBuckets.size(); ++i) {
    sample(out, name + "_bucket", prefix + "le=\"" + number(kDurationBuckets[i]) + "\"",
           std::to_string(buckets_[i]));
  }
  sample(out, name + "_bucket", prefix + "le=\"+Inf\"", std::to_string(count_));
  sample(out, name + "_sum", lbls, number(sum_));
  sample(out, name + "_count", lbls, std::to_string(count_));
}

void Metrics::observe(std::span<const usage::Outcome> outcomes) {
  std::lock_guard lock(mu_);
  for (const usage::Outcome& o : outcomes) count(o);
}

void Metrics::count(const usage::Outcome& o) {
  const UsageRecord& r = o.record;
  // Only routed requests name a configured model and connection; anything
  // else (unknown keys, unknown models) is counted without them, so a client
  // cannot mint label values.
  bool routed = !r.conn_name.empty();
  std::string model = routed ? r.model : "";
  std::string conn = routed ? r.conn_name : "";
  ++requests_[{model, conn, status_class(r.status)}];
  duration_[model].observe(r.latency_ms / 1000.0);
  if (r.ttft_ms) ttft_[model].observe(*r.ttft_ms / 1000.0);
  if (r.prompt_tokens || r.completion_tokens || r.cost > 0) {
    Spend& s = spend_[{model, r.vkey_name}];
    s.prompt_tokens += static_cast<std::uint64_t>(r.prompt_tokens);
    s.completion_tokens += static_cast<std::uint64_t>(r.completion_tokens);
    s.cost += r.cost;
  }
  if (o.error == "rate_limit_exceeded")
    ++refusals_[{"requests", r.vkey_name}];
  else if (o.error == "tokens_exceeded")
    ++refusals_[{"tokens", r.vkey_name}];
  else if (o.error == "budget_exceeded")
    ++refusals_[{"budget", r.vkey_name}];
  else if (o.error == "concurrency_exceeded")
    ++refusals_[{"concurrency", r.vkey_name}];
  else if (o.error == "limits_unavailable")
    ++refusals_[{"unavailable", r.vkey_name}];
  bool upstream_error = o.error.starts_with("upstream_");
  if (upstream_error) ++upstream_errors_[{conn, o.error.substr(9)}];
  if (routed && (o.upstream_status > 0 || upstream_error)) {
    UpstreamState& st = upstream_state_[conn];
    st.last_status = o.upstream_status;
    st.last_seen_ms = r.ts + static_cast<std::int64_t>(r.latency_ms);
    st.last_error = upstream_error ? o.error : "";
  }
}

std::map<std::string, UpstreamState> Metrics::upstream_states() const {
  std::lock_guard lock(mu_);
  return upstream_state_;
}

std::string Metrics::render(const Gauges& g) const {
  std::string out;
  out.reserve(4096);
  std::lock_guard lock(mu_);

  header(out, "llm_proxy_requests_total", "counter",
         "Requests by model alias, connection and status class.");
  for (const auto& [k, n] : requests_) {
    const auto& [model, conn, cls] = k;
    sample(out, "llm_proxy_requests_total",
           labels({{"model", &model}, {"connection", &conn}, {"status_class", &cls}}),
           std::to_string(n));
  }
  header(out, "llm_proxy_request_duration_seconds", "histogram",
         "Time from the request's arrival to its last byte, by model alias.");
  for (const auto& [model, h] : duration_)
    h.render(out, "llm_proxy_request_duration_seconds", labels({{"model", &model}}));
  header(out, "llm_proxy_time_to_first_token_seconds", "histogram",
         "Time from the request's arrival to the first byte of the reply body, by model alias.");
  for (const auto& [model, h] : ttft_)
    h.render(out, "llm_proxy_time_to_first_token_seconds", labels({{"model", &model}}));

  header(out, "llm_proxy_prompt_tokens_total", "counter", "Prompt tokens by model alias and key.");
  for (const auto& [k, s] : spend_)
    sample(out, "llm_proxy_prompt_tokens_total", labels({{"model", &k.first}, {"key", &k.second}}),
           std::to_string(s.prompt_tokens));
  header(out, "llm_proxy_completion_tokens_total", "counter",
         "Completion tokens by model alias and key.");
  for (const auto& [k, s] : spend_)
    sample(out, "llm_proxy_completion_tokens_total",
           labels({{"model", &k.first}, {"key", &k.second}}), std::to_string(s.completion_tokens));
  header(out, "llm_proxy_cost_usd_total", "counter",
         "Cost in USD at the models' prices, by model alias and key.");
  for (const auto& [k, s] : spend_)
    sample(out, "llm_proxy_cost_usd_total", labels({{"model", &k.first}, {"key", &k.second}}),
           number(s.cost));

  header(out, "llm_proxy_rate_limited_total", "counter",
         "Requests refused by a key's limits, by reason (requests, tokens, budget, "
         "concurrency, unavailable) and key.");
  for (const auto& [k, n] : refusals_)
    sample(out, "llm_proxy_rate_limited_total", labels({{"reason", &k.first}, {"key", &k.second}}),
           std::to_string(n));
  header(out, "llm_proxy_upstream_errors_total", "counter",
         "Upstream failures by connection and reason (timeout, unavailable, auth_error, "
         "stream_broken, http_<status>, ...).");
  for (const auto& [k, n] : upstream_errors_)
    sample(out, "llm_proxy_upstream_errors_total",
           labels({{"connection", &k.first}, {"reason", &k.second}}), std::to_string(n));

  header(out, "llm_proxy_in_flight_requests", "gauge", "Requests being served now.");
  sample(out, "llm_proxy_in_flight_requests", "", std::to_string(g.in_flight));
  header(out, "llm_proxy_open_streams", "gauge", "Streamed replies in progress.");
  sample(out, "llm_proxy_open_streams", "", std::to_string(g.open_streams));
  header(out, "llm_proxy_usage_queue_depth", "gauge", "Usage records waiting to be stored.");
  sample(out, "llm_proxy_usage_queue_depth", "", std::to_string(g.usage_queue));
  header(out, "llm_proxy_usage_records_dropped_total", "counter",
         "Usage records dropped because the in-memory bound was reached.");
  sample(out, "llm_proxy_usage_records_dropped_total", "", std::to_string(g.usage_dropped));
  header(out, "llm_proxy_storage_up", "gauge", "1 if the storage answered its last check.");
  sample(out, "llm_proxy_storage_up", "", g.storage_up ? "1" : "0");
  header(out, "llm_proxy_config_version", "gauge", "Version of the configuration being served.");
  sample(out, "llm_proxy_config_version", "", std::to_string(g.config_version));
  if (g.limits_shared) {
    header(out, "llm_proxy_limits_shared", "gauge",
           "1 while limit state is shared through Redis; 0 while limits are per instance "
           "(Redis unreachable).");
    sample(out, "llm_proxy_limits_shared", "", *g.limits_shared ? "1" : "0");
  }
  return out;
}

}  // namespace llmproxy::observe
