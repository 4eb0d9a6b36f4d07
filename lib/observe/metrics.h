// Prometheus metrics for `GET /metrics`.
//
// Counted from request outcomes on the usage writer thread, not on the
// request path: the hot path only produces the outcome it produces anyway.
// Labels are bounded: models and connections come from the configuration
// (requests that were never routed count under model=""), keys by name.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>

#include "lib/usage/outcome.h"

namespace llmproxy::observe {

// A Prometheus histogram with fixed buckets (upper bounds in seconds).
class Histogram {
 public:
  static constexpr std::array<double, 14> kDurationBuckets = {
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};

  void observe(double seconds);
  // Appends the _bucket/_sum/_count lines for `name{labels}`.
  void render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  std::array<std::uint64_t, kDurationBuckets.size()> buckets_{};
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

// What serve knows at scrape time and outcomes do not carry.
struct Gauges {
  std::int64_t in_flight = 0;
  std::int64_t open_streams = 0;
  std::size_t usage_queue = 0;
  std::uint64_t usage_dropped = 0;
  bool storage_up = true;
  std::int64_t config_version = 0;
  std::optional<bool> limits_shared;  // unset without --redis
};

// The last upstream answer seen per connection (for /health/ready).
struct UpstreamState {
  int last_status = 0;
  std::int64_t last_seen_ms = 0;
  std::string last_error;
};

class Metrics final : public usage::OutcomeObserver {
 public:
  void observe(std::span<const usage::Outcome> outcomes) override;

  // The Prometheus text exposition (version 0.0.4).
  std::string render(const Gauges& gauges) const;
  std::map<std::string, UpstreamState> upstream_states() const;

 private:
  void count(const usage::Outcome& o);

  using ModelConnStatus = std::tuple<std::string, std::string, std::string>;
  using ModelKey = std::pair<std::string, std::string>;
  using ReasonKey = std::pair<std::string, std::string>;
  using ConnReason = std::pair<std::string, std::string>;

  mutable std::mutex mu_;
  std::map<ModelConnStatus, std::uint64_t> requests_;
  std::map<std::string, Histogram> duration_;  // by model
  std::map<std::string, Histogram> ttft_;      // by model
  struct Spend {
    std::uint64_t prompt_tokens = 0, completion_tokens = 0;
    double cost = 0;
  };
  std::map<ModelKey, Spend> spend_;
  std::map<ReasonKey, std::uint64_t> refusals_;       // (reason, key)
  std::map<ConnReason, std::uint64_t> upstream_errors_;  // (connection, reason)
  std::map<std::string, UpstreamState> upstream_state_;
};

}  // namespace llmproxy::observe
