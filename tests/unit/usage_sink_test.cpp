// lib/usage/usage_sink: usage records survive a storage outage in memory, up
// to a bound (what is dropped beyond it is counted), are written when storage
// returns, and a failing storage is retried at a bounded pace however busy the
// proxy is, while the observers (metrics, access log) keep up.
//
// Against a Store that keeps usage in memory and can be switched down; every
// wait polls a condition with a deadline.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "lib/domain/error.h"
#include "lib/usage/usage_sink.h"
#include "storage/store.h"

namespace llmproxy::usage {
namespace {

using namespace std::chrono_literals;

// Only usage is stored; everything else is never called by the sink.
class FlakyUsageStore final : public storage::Store {
 public:
  void set_down(bool down) { down_ = down; }
  int attempts() const { return attempts_.load(); }
  std::vector<UsageRecord> rows() const {
    std::lock_guard lock(mu_);
    return rows_;
  }

  void insert_usage(std::span<const UsageRecord> records) override {
    ++attempts_;
    if (down_) throw storage_error("the test storage is down");
    std::lock_guard lock(mu_);
    rows_.insert(rows_.end(), records.begin(), records.end());
  }

  std::string_view backend() const override { return "test"; }
  std::string describe() const override { return "test"; }
  int schema_version() override { return 1; }
  bool ping() override { return !down_; }
  void transaction(const std::function<void()>& fn) override { fn(); }
  std::int64_t config_version() override { return 1; }
  ConfigData load_config() override { return {}; }
  Id insert_connection(const Connection&) override { unused(); }
  void update_connection(const Connection&) override { unused(); }
  bool delete_connection(Id) override { unused(); }
  std::optional<Connection> get_connection(Id) override { unused(); }
  std::optional<Connection> find_connection(std::string_view) override { unused(); }
  std::vector<Connection> list_connections() override { unused(); }
  Id insert_model(const ProviderModel&) override { unused(); }
  void update_model(const ProviderModel&) override { unused(); }
  bool delete_model(Id) override { unused(); }
  std::optional<ProviderModel> get_model(Id) override { unused(); }
  std::optional<ProviderModel> find_model(std::string_view) override { unused(); }
  std::vector<ProviderModel> list_models(std::optional<Id>) override { unused(); }
  Id insert_vkey(const VirtualKey&) override { unused(); }
  void update_vkey(const VirtualKey&) override { unused(); }
  bool delete_vkey(Id) override { unused(); }
  std::optional<VirtualKey> get_vkey(Id) override { unused(); }
  std::optional<VirtualKey> find_vkey(std::string_view) override { unused(); }
  std::optional<VirtualKey> find_vkey_by_hash(std::string_view) override { unused(); }
  std::vector<VirtualKey> list_vkeys() override { unused(); }
  Id insert_assignment(const Assignment&) override { unused(); }
  void update_assignment(const Assignment&) override { unused(); }
  bool delete_assignment(Id) override { unused(); }
  std::optional<Assignment> get_assignment(Id) override { unused(); }
  std::vector<Assignment> list_assignments(std::optional<Id>) override { unused(); }
  Id insert_plan(const Plan&) override { unused(); }
  void update_plan(const Plan&) override { unused(); }
  bool delete_plan(Id) override { unused(); }
  std::optional<Plan> get_plan(Id) override { unused(); }
  std::optional<Plan> find_plan(std::string_view) override { unused(); }
  std::vector<Plan> list_plans() override { unused(); }
  Id insert_admin_user(const AdminUser&) override { unused(); }
  void update_admin_user(const AdminUser&) override { unused(); }
  bool delete_admin_user(Id) override { unused(); }
  std::optional<AdminUser> find_admin_user(std::string_view) override { unused(); }
  std::vector<AdminUser> list_admin_users() override { unused(); }
  std::vector<UsageRecord> list_usage(const storage::UsageQuery&) override { unused(); }
  std::vector<storage::UsageGroup> aggregate_usage(const storage::UsageQuery&,
                                                   storage::UsageGroupBy) override {
    unused();
  }

 private:
  [[noreturn]] static void unused() { throw std::logic_error("not used by the usage sink"); }

  std::atomic<bool> down_{false};
  std::atomic<int> attempts_{0};
  mutable std::mutex mu_;
  std::vector<UsageRecord> rows_;
};

// Counts what the sink shows its observers.
class CountingObserver final : public OutcomeObserver {
 public:
  void observe(std::span<const Outcome> outcomes) override { seen += outcomes.size(); }
  std::atomic<std::size_t> seen{0};
};

Outcome outcome(int i) {
  Outcome o;
  o.record.ts = 1'700'000'000'000 + i;
  o.record.request_id = "req-" + std::to_string(i);
  o.record.vkey_id = 1;
  o.record.vkey_name = "k";
  o.record.model = "m";
  o.record.status = 200;
  return o;
}

// Polls `done` until it holds or `timeout` passes; true when it held.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

UsageSink::Options fast(std::size_t max_queued = 1'000'000, std::size_t batch = 500) {
  UsageSink::Options o;
  o.batch_size = batch;
  o.flush_interval = 20ms;
  o.max_queued = max_queued;
  return o;
}

TEST(UsageSink, RecordsSurviveAnOutageAndAreWrittenWhenStorageReturns) {
  FlakyUsageStore store;
  store.set_down(true);
  UsageSink sink(store, fast());
  sink.start();
  for (int i = 0; i < 10; ++i) sink.submit(outcome(i));
  ASSERT_TRUE(eventually([&] { return !sink.healthy(); })) << "the failed write went unnoticed";
  EXPECT_EQ(sink.queued(), 10u);
  EXPECT_EQ(sink.written(), 0u);

  store.set_down(false);
  ASSERT_TRUE(eventually([&] { return sink.written() == 10; })) << sink.written();
  EXPECT_TRUE(sink.healthy());
  EXPECT_EQ(sink.queued(), 0u);
  EXPECT_EQ(sink.dropped(), 0u);
  std::vector<UsageRecord> rows = store.rows();
  ASSERT_EQ(rows.size(), 10u) << "each record exactly once";
  for (int i = 0; i < 10; ++i) EXPECT_EQ(rows[i].request_id, "req-" + std::to_string(i));
  sink.stop();
}

TEST(UsageSink, WhatIsHeldInMemoryIsBoundedAndDropsAreCounted) {
  FlakyUsageStore store;
  store.set_down(true);
  UsageSink::Options o = fast(/*max_queued=*/5);
  o.flush_interval = 300ms;  // the writer sleeps while the second burst arrives
  UsageSink sink(store, o);
  sink.start();
  for (int i = 0; i < 5; ++i) sink.submit(outcome(i));
  // The writer takes them and fails: they wait for storage, the bound full.
  ASSERT_TRUE(eventually([&] { return !sink.healthy(); }));
  ASSERT_EQ(sink.queued(), 5u);
  // The bound is on everything held, waiting for storage or newly queued.
  for (int i = 5; i < 10; ++i) {
    sink.submit(outcome(i));
    EXPECT_LE(sink.queued(), 6u) << "after record " << i;
  }
  ASSERT_TRUE(eventually([&] { return sink.queued() == 5; })) << sink.queued();
  EXPECT_EQ(sink.dropped(), 5u);

  store.set_down(false);
  ASSERT_TRUE(eventually([&] { return sink.written() == 5; })) << sink.written();
  EXPECT_EQ(sink.dropped(), 5u);
  EXPECT_EQ(sink.queued(), 0u);
  std::set<std::string> ids;
  for (const UsageRecord& r : store.rows()) ids.insert(r.request_id);
  EXPECT_EQ(ids.size(), 5u) << "no record written twice";
  EXPECT_TRUE(ids.count("req-9")) << "the newest record is kept";
  sink.stop();
}

TEST(UsageSink, AFailingStorageIsRetriedAtABoundedPaceWhileObserversKeepUp) {
  FlakyUsageStore store;
  store.set_down(true);
  CountingObserver observer;
  UsageSink sink(store, fast(1'000'000, /*batch=*/10));
  sink.add_observer(observer);
  sink.start();
  auto t0 = std::chrono::steady_clock::now();
  // A busy proxy: many full batches while storage is down.
  for (int i = 0; i < 3000; ++i) sink.submit(outcome(i));
  ASSERT_TRUE(eventually([&] { return observer.seen == 3000; }))
      << "metrics and the access log lag behind the outage: " << observer.seen;
  auto elapsed = std::chrono::steady_clock::now() - t0;
  // Retries back off from the flush interval (20 ms, doubling): within the
  // time this took, a paced writer makes only a handful of attempts, where
  // one that retried on every full batch would make hundreds.
  int allowed = 2;
  for (auto pause = 20ms; pause * 2 <= elapsed + 40ms; pause *= 2) ++allowed;
  EXPECT_LE(store.attempts(), allowed + 2)
      << "in " << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms";
  EXPECT_EQ(sink.queued(), 3000u);

  store.set_down(false);
  ASSERT_TRUE(eventually([&] { return sink.written() == 3000; })) << sink.written();
  sink.stop();
}

TEST(UsageSink, StopGivesUpAtItsDeadlineAndCountsWhatIsLost) {
  FlakyUsageStore store;
  store.set_down(true);
  UsageSink sink(store, fast());
  sink.start();
  for (int i = 0; i < 4; ++i) sink.submit(outcome(i));
  ASSERT_TRUE(eventually([&] { return !sink.healthy(); }));
  auto t0 = std::chrono::steady_clock::now();
  sink.stop(300ms);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_EQ(sink.dropped(), 4u);
  EXPECT_EQ(sink.written(), 0u);
  EXPECT_EQ(sink.queued(), 0u);
}

TEST(UsageSink, StopWritesWhatIsQueuedWhenStorageAnswers) {
  FlakyUsageStore store;
  UsageSink sink(store, fast());
  sink.start();
  for (int i = 0; i < 7; ++i) sink.submit(outcome(i));
  sink.stop();
  EXPECT_EQ(sink.written(), 7u);
  EXPECT_EQ(store.rows().size(), 7u);
}

}  // namespace
}  // namespace llmproxy::usage
