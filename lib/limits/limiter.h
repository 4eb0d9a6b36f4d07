// Admission control on the request path (pipeline step "admit"):
//
//   Limiter  one per process: options, the in-process ledger, whether shared
//            state (Redis) is in use and answering.
//   Gate     one per worker thread: admits and settles that worker's requests,
//            in Redis when --redis is given (one script call, one round trip
//            on the worker's event loop), else, or when Redis is away with
//            --redis-fail open, in the process's ledger.
//
// claim.h says what is checked and the guarantee; estimate.h what a request
// is assumed to cost before it runs.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "lib/domain/types.h"
#include "lib/limits/claim.h"
#include "lib/limits/local_ledger.h"
#include "lib/limits/seed.h"

namespace llmproxy::limits {

// Start (inclusive) and end (exclusive) of the window containing `now`, in UTC
// epoch ms. kTotal spans all time.
std::pair<TimeMs, TimeMs> window_bounds(TokenWindow w, TimeMs now);

// "1s", "6m0s", "1h2m3s": the duration format of OpenAI's x-ratelimit-reset-*.
std::string format_reset(double seconds);
// Dollars to the micro-dollar, without trailing zeros: "5", "4.99973".
std::string format_usd(double usd);

// What the client is told: the refusal, and the x-ratelimit-* headers of the
// limits that apply (unset where none is configured).
struct Decision {
  Refusal refusal = Refusal::kNone;
  std::optional<double> retry_after_s;  // unset when waiting cannot help
  std::optional<std::int64_t> limit_requests, remaining_requests;
  double reset_requests_s = 0;
  std::optional<std::int64_t> limit_tokens, remaining_tokens;
  double reset_tokens_s = 0;
  std::optional<double> limit_budget, remaining_budget;  // USD
  double reset_budget_s = 0;
  std::string message;  // for refusals

  bool allowed() const { return refusal == Refusal::kNone; }
};

// The headers' figures and the refusal's message from an admitted or refused
// claim. The most constraining limit of each kind is the one reported.
Decision describe(const Claim& claim, const Admission& admission);

struct LimiterOptions {
  std::int64_t default_completion_reserve = 1024;
  // Shared state; empty: in process memory only.
  std::string redis_url;
  std::string redis_prefix = "llmp:";
  bool redis_fail_open = true;  // else refuse with 503 while Redis is away
  std::int64_t redis_timeout_ms = 250;
  std::int64_t lease_ms = 15'000;  // a dead instance's claims expire after this
};

class SharedLedger;

class Limiter {
 public:
  explicit Limiter(LimiterOptions options = {});
  ~Limiter();

  const LimiterOptions& options() const { return options_; }
  LocalLedger& local() { return local_; }
  bool uses_redis() const { return !options_.redis_url.empty(); }
  // Redis configured and the last call to it from any worker worked.
  bool shared() const { return uses_redis() && gates_down_.load() == 0; }
  // Called by each gate when its Redis connection goes down or comes back;
  // shared() is false while any is down, and each change is logged once.
  void report_shared(bool up, std::string_view why = {});
  // What the windows had spent at startup (seed.h), for the first gate to
  // bring Redis up to: taken once.
  void remember_spent(std::vector<SpentWindow> spent);
  std::vector<SpentWindow> take_spent();
  // Names a claim in Redis, unique within the process.
  std::uint64_t next_serial() { return serials_.fetch_add(1, std::memory_order_relaxed); }

  // The checks for a request (nothing to check: an empty claim).
  void prepare(Claim& claim, const Assignment* assignment, const VirtualKey* key,
               const ProviderModel* model, std::string_view body, bool embeddings) const;

 private:
  LimiterOptions options_;
  LocalLedger local_;
  std::atomic<int> gates_down_{0};
  std::atomic<std::uint64_t> serials_{1};
  std::mutex spent_mu_;
  std::vector<SpentWindow> spent_;
};

class Gate {
 public:
  Gate(Limiter& limiter, boost::asio::io_context& ioc);
  ~Gate();
  Gate(const Gate&) = delete;
  // Closes the connection to Redis while the worker's loop still exists;
  // claims settled after it are left to expire with their leases.
  void close();

  // Admits all of the claim's checks or none. Never throws, never waits
  // longer than the Redis timeout.
  boost::asio::awaitable<Admission> admit(Claim& claim);
  // Gives an admitted claim back with what the request used. Once per claim;
  // returns at once (the Redis call completes in the background).
  void settle(Claim& claim, const Actual& actual);

 private:
  Limiter& limiter_;
  std::unique_ptr<SharedLedger> shared_;  // with --redis
  std::uint64_t next_serial_ = 1;
};

}  // namespace llmproxy::limits
