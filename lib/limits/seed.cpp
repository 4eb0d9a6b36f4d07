#include "lib/limits/seed.h"

#include <cmath>
#include <map>
#include <string>
#include <tuple>

#include "lib/limits/limiter.h"

namespace llmproxy::limits {
namespace {

// Usage since the start of a window, grouped by assignment id or key name;
// each aggregation is read once however many limits use it.
class UsageSince {
 public:
  UsageSince(storage::Store& store, TimeMs now) : store_(store), now_(now) {}

  const storage::UsageGroup* find(storage::UsageGroupBy by, TokenWindow w,
                                  const std::string& group) {
    auto& groups = cache_[{by, w}];
    if (!groups.loaded) {
      storage::UsageQuery q;
      if (w != TokenWindow::kTotal) q.since = window_bounds(w, now_).first;
      for (auto& g : store_.aggregate_usage(q, by)) groups.rows.emplace(g.group, g);
      groups.loaded = true;
    }
    auto it = groups.rows.find(group);
    return it == groups.rows.end() ? nullptr : &it->second;
  }

 private:
  struct Groups {
    bool loaded = false;
    std::map<std::string, storage::UsageGroup> rows;
  };
  storage::Store& store_;
  TimeMs now_;
  std::map<std::tuple<storage::UsageGroupBy, TokenWindow>, Groups> cache_;
};

std::int64_t spent_in(const storage::UsageGroup* g, Slot slot) {
  if (!g) return 0;
  switch (slot) {
    case Slot::kTokens:
      return g->prompt_tokens + g->completion_tokens;
    case Slot::kBudget:
      return static_cast<std::int64_t>(std::ceil(g->cost * kNanoPerUsd));
    default:
      return g->requests;
  }
}

}  // namespace

void seed_windows(storage::Store& store, const config::Snapshot& snapshot, Limiter& limiter,
                  TimeMs now) {
  UsageSince usage(store, now);
  std::vector<SpentWindow> spent;
  auto seed = [&](Scope scope, Id owner, storage::UsageGroupBy by, const std::string& group,
                  Slot slot, TokenWindow w) {
    const storage::UsageGroup* g = usage.find(by, w, group);
    auto [start, end] = window_bounds(w, now);
    spent.push_back({scope, owner, slot, start, end, spent_in(g, slot)});
    limiter.local().seed(scope, owner, slot, start, spent.back().spent);
  };
  constexpr auto kByAssignment = storage::UsageGroupBy::kAssignment;
  for (const Assignment& a : snapshot.data().assignments) {
    const Limits& l = a.limits;
    std::string id = std::to_string(a.id);
    if (l.rph) seed(Scope::kAssignment, a.id, kByAssignment, id, Slot::kRph, TokenWindow::kHour);
    if (l.rpd) seed(Scope::kAssignment, a.id, kByAssignment, id, Slot::kRpd, TokenWindow::kDay);
    if (l.token_limit)
      seed(Scope::kAssignment, a.id, kByAssignment, id, Slot::kTokens, l.token_window);
    if (l.budget) seed(Scope::kAssignment, a.id, kByAssignment, id, Slot::kBudget, l.budget_window);
  }
  constexpr auto kByKey = storage::UsageGroupBy::kKey;  // grouped by key name
  for (const VirtualKey& k : snapshot.data().vkeys) {
    const KeyLimits& l = k.limits;
    if (l.token_limit) seed(Scope::kKey, k.id, kByKey, k.name, Slot::kTokens, l.token_window);
    if (l.budget) seed(Scope::kKey, k.id, kByKey, k.name, Slot::kBudget, l.budget_window);
  }
  limiter.remember_spent(std::move(spent));
}

}  // namespace llmproxy::limits
