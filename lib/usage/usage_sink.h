// Usage records leave the hot path through this queue: submit() only appends
// under a short lock; a writer thread shows them to the observers (metrics,
// access log) and stores them in batches. Records survive a storage outage in
// memory (up to a bound) and are flushed on shutdown.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <thread>

#include "lib/domain/types.h"
#include "lib/usage/outcome.h"
#include "storage/store.h"

namespace llmproxy::usage {

// USD for the tokens at the model's per-million prices.
double cost_of(const ProviderModel* model, std::int64_t prompt_tokens,
               std::int64_t completion_tokens);

class UsageSink {
 public:
  struct Options {
    std::size_t batch_size = 500;
    std::chrono::milliseconds flush_interval{200};
    // Records held in memory, queued or waiting for storage (an outage):
    // beyond this records are dropped (older ones first), and counted.
    std::size_t max_queued = 1'000'000;
  };

  UsageSink(storage::Store& store, Options options);
  ~UsageSink();

  // Before start(): each outcome is shown to every observer once.
  void add_observer(OutcomeObserver& observer) { observers_.push_back(&observer); }
  void start();
  // Never blocks on storage.
  void submit(Outcome outcome);
  // Stops the writer after storing everything queued (retrying for up to
  // `deadline` if storage fails).
  void stop(std::chrono::milliseconds deadline = std::chrono::seconds(10));

  std::size_t queued() const;
  std::uint64_t written() const { return written_.load(); }
  std::uint64_t dropped() const { return dropped_.load(); }
  // False from a failed write until the next one succeeds.
  bool healthy() const { return healthy_.load(); }

 private:
  void run();
  // Observes what is queued, moves its records to unstored_. Writer thread
  // (or stop() after it) only.
  void take_queued(std::unique_lock<std::mutex>& lock, std::size_t max);
  // Stores unstored_ in batches; false when storage failed (they stay).
  bool store_unstored();
  bool write_batch(std::span<const UsageRecord> batch);

  storage::Store& store_;
  Options options_;
  std::vector<OutcomeObserver*> observers_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Outcome> queue_;
  bool stopping_ = false;
  std::thread thread_;
  std::deque<UsageRecord> unstored_;  // observed, waiting for storage
  std::atomic<std::size_t> unstored_count_{0};
  std::atomic<std::uint64_t> written_{0}, dropped_{0};
  std::atomic<bool> healthy_{true};
};

}  // namespace llmproxy::usage
