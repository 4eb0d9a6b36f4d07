// What every worker thread of `serve` shares. Everything here is safe to use
// from any thread without blocking on I/O.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>

#include <boost/asio/any_io_executor.hpp>

#include "lib/admin/api.h"
#include "lib/config/snapshot.h"
#include "lib/limits/limiter.h"
#include "lib/observe/metrics.h"
#include "lib/usage/usage_sink.h"

namespace llmproxy::server {

struct ServerOptions {
  std::string listen = "0.0.0.0:8080";
  int threads = 0;  // 0: one per core
  std::string master_key;
  std::size_t max_body_bytes = 10 * 1024 * 1024;
  std::chrono::milliseconds grace{30'000};  // drain time after SIGTERM
  // A request must arrive within this; a client that stops reading a reply
  // (stream or large body) is dropped after it too.
  std::chrono::milliseconds client_read_timeout{60'000};
  std::chrono::milliseconds reload_interval{500};  // config version polling
  // The access log: on stdout unless log_file is set; none below info level.
  std::string log_file;
  std::string log_format = "json";  // json | text
  std::string log_level = "info";   // debug | info | warn | error
  bool log_bodies = false;          // prompts and replies in the access log
  // Usage records held in memory while storage cannot take them (beyond it
  // older ones are dropped and counted).
  std::size_t usage_buffer = 1'000'000;
  // How long a token from POST /admin/api/login stays valid.
  std::chrono::seconds admin_token_ttl{8 * 3600};
  // Admission: estimates, and shared state in Redis (--redis).
  limits::LimiterOptions limits;
};

// Where the admin API runs: its own thread and store handle, because admin
// operations do storage I/O, which never happens on a worker thread.
struct AdminPort {
  boost::asio::any_io_executor executor;
  admin::Api* api = nullptr;  // only ever called on `executor`
};

struct Context {
  Context(config::SnapshotPtr initial, usage::UsageSink& sink, observe::Metrics& m,
          ServerOptions opts)
      : options(std::move(opts)),
        snapshot(std::move(initial)),
        limiter(options.limits),
        usage(sink),
        metrics(m) {}

  const ServerOptions options;
  config::SnapshotHolder snapshot;
  limits::Limiter limiter;
  usage::UsageSink& usage;
  std::string storage_backend;
  AdminPort admin;
  observe::Metrics& metrics;

  std::atomic<bool> draining{false};
  std::atomic<int> in_flight{0};
  std::atomic<int> open_streams{0};
  // The config watcher's last read of the storage succeeded.
  std::atomic<bool> storage_ok{true};

  // Storage answers the config watcher and takes usage records. When not,
  // serve goes on from the last config snapshot, keeping usage in memory
  // (bounded) until it can be written: degraded, not down.
  bool storage_healthy() const { return storage_ok.load() && usage.healthy(); }
};

}  // namespace llmproxy::server
