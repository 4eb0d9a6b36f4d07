// Usage records leave the hot path through this queue: submit() only appends
// under a short lock; a writer thread stores them in batches. Records survive
// a storage outage in memory (up to a bound) and are flushed on shutdown.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "lib/domain/types.h"
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
    std::size_t max_queued = 1'000'000;  // beyond this the oldest records are dropped
  };

  UsageSink(storage::Store& store, Options options);
  ~UsageSink();

  void start();
  // Never blocks on storage.
  void submit(UsageRecord record);
  // Stops the writer after storing everything queued (retrying for up to
  // `deadline` if storage fails).
  void stop(std::chrono::milliseconds deadline = std::chrono::seconds(10));

  std::size_t queued() const;
  std::uint64_t written() const { return written_.load(); }
  std::uint64_t dropped() const { return dropped_.load(); }
  bool healthy() const { return healthy_.load(); }

 private:
  void run();
  bool write_batch(std::vector<UsageRecord>& batch);

  storage::Store& store_;
  Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<UsageRecord> queue_;
  bool stopping_ = false;
  std::thread thread_;
  std::atomic<std::uint64_t> written_{0}, dropped_{0};
  std::atomic<bool> healthy_{true};
};

}  // namespace llmproxy::usage
