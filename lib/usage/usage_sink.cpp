#include "lib/usage/usage_sink.h"

#include <iostream>

namespace llmproxy::usage {

double cost_of(const ProviderModel* model, std::int64_t prompt_tokens,
               std::int64_t completion_tokens) {
  if (!model) return 0;
  return (static_cast<double>(prompt_tokens) * model->input_price.value_or(0) +
          static_cast<double>(completion_tokens) * model->output_price.value_or(0)) /
         1e6;
}

UsageSink::UsageSink(storage::Store& store, Options options) : store_(store), options_(options) {}

UsageSink::~UsageSink() {
  stop();
}

void UsageSink::start() {
  thread_ = std::thread([this] { run(); });
}

void UsageSink::submit(Outcome outcome) {
  bool full_batch;
  {
    std::lock_guard lock(mu_);
    // One bound for everything held in memory, queued or waiting for storage
    // (the writer trims the latter to it too).
    if (!queue_.empty() && queue_.size() + unstored_count_.load() >= options_.max_queued) {
      queue_.pop_front();
      ++dropped_;
    }
    queue_.push_back(std::move(outcome));
    full_batch = queue_.size() >= options_.batch_size;
  }
  if (full_batch) cv_.notify_one();
}

std::size_t UsageSink::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size() + unstored_count_.load();
}

bool UsageSink::write_batch(std::span<const UsageRecord> batch) {
  try {
    store_.insert_usage(batch);
    if (!healthy_.exchange(true)) std::cerr << "llm-proxy: usage storage is back\n";
    return true;
  } catch (const std::exception& e) {
    if (healthy_.exchange(false))
      std::cerr << "llm-proxy: cannot store usage records, keeping them in memory: " << e.what()
                << "\n";
    return false;
  }
}

void UsageSink::take_queued(std::unique_lock<std::mutex>& lock, std::size_t max) {
  std::size_t n = std::min(queue_.size(), max);
  std::vector<Outcome> taken(std::make_move_iterator(queue_.begin()),
                             std::make_move_iterator(queue_.begin() + static_cast<long>(n)));
  queue_.erase(queue_.begin(), queue_.begin() + static_cast<long>(n));
  lock.unlock();
  for (OutcomeObserver* o : observers_) o->observe(taken);
  for (Outcome& o : taken) {
    if (o.store) unstored_.push_back(std::move(o.record));
  }
  // While storage is away the records wait here, within the same bound.
  while (unstored_.size() > options_.max_queued) {
    unstored_.pop_front();
    ++dropped_;
  }
  unstored_count_ = unstored_.size();
  lock.lock();
}

bool UsageSink::store_unstored() {
  const std::size_t max_batch = options_.batch_size * 4;
  while (!unstored_.empty()) {
    std::size_t n = std::min(unstored_.size(), max_batch);
    std::vector<UsageRecord> batch(unstored_.begin(), unstored_.begin() + static_cast<long>(n));
    if (!write_batch(batch)) return false;
    unstored_.erase(unstored_.begin(), unstored_.begin() + static_cast<long>(n));
    unstored_count_ = unstored_.size();
    // Counted written only once no longer counted held: a reader of both
    // never sees a record twice.
    written_ += n;
  }
  return true;
}

void UsageSink::run() {
  using Clock = std::chrono::steady_clock;
  // After a failed write, storage is tried again only after a growing pause
  // (up to 5 s), however busy the proxy is; outcomes are still shown to the
  // observers every flush interval meanwhile, so metrics and the access log
  // do not lag behind an outage.
  auto backoff = options_.flush_interval;
  Clock::time_point retry_at{};
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait_for(lock, options_.flush_interval,
                 [&] { return stopping_ || queue_.size() >= options_.batch_size; });
    if (queue_.empty() && unstored_.empty()) {
      if (stopping_) return;
      continue;
    }
    if (!queue_.empty()) take_queued(lock, options_.batch_size * 4);
    if (unstored_.empty() || (!stopping_ && Clock::now() < retry_at)) continue;
    lock.unlock();
    bool ok = store_unstored();
    lock.lock();
    if (!ok) {
      if (stopping_) return;  // stop() decides how long to keep trying
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(5));
      retry_at = Clock::now() + backoff;
    } else {
      backoff = options_.flush_interval;
      retry_at = {};
    }
  }
}

void UsageSink::stop(std::chrono::milliseconds deadline) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
  // Whatever the writer could not store: try until the deadline.
  auto until = std::chrono::steady_clock::now() + deadline;
  std::unique_lock lock(mu_);
  while (!queue_.empty()) take_queued(lock, queue_.size());
  lock.unlock();
  while (!store_unstored()) {
    if (std::chrono::steady_clock::now() >= until) {
      std::cerr << "llm-proxy: " << unstored_.size() << " usage records could not be stored\n";
      dropped_ += unstored_.size();
      unstored_.clear();
      unstored_count_ = 0;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace llmproxy::usage
