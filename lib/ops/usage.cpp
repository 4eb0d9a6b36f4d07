// usage [--vkey-id] [--since] [--until] [--by], usage --budgets
#include <algorithm>

#include "lib/domain/error.h"
#include "lib/domain/time.h"
#include "lib/limits/limiter.h"
#include "lib/ops/ops.h"
#include "lib/ops/resolve.h"

namespace llmproxy::ops {
namespace {

TimeMs parse_bound(const char* flag, const std::string& text, TimeMs now) {
  auto t = parse_time_or_ago(text, now);
  if (!t)
    throw invalid(std::string(flag) + " '" + text +
                  "' is not a time (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, or 30m, 24h, 7d ago)");
  return *t;
}

// What each key spent per assignment in the current window of each kind,
// one aggregation per key and window kind however many budgets share it.
class Spend {
 public:
  Spend(Store& store, TimeMs now) : store_(store), now_(now) {}

  double of_assignment(Id vkey_id, Id assignment_id, TokenWindow w) {
    const auto& groups = by_assignment(vkey_id, w);
    auto it = groups.find(std::to_string(assignment_id));
    return it == groups.end() ? 0 : it->second;
  }

  // Every record of the key counts, whichever assignment it went through.
  double of_key(Id vkey_id, TokenWindow w) {
    double sum = 0;
    for (const auto& [group, cost] : by_assignment(vkey_id, w)) sum += cost;
    return sum;
  }

 private:
  const std::map<std::string, double>& by_assignment(Id vkey_id, TokenWindow w) {
    auto [it, fresh] = cache_.try_emplace({vkey_id, w});
    if (!fresh) return it->second;
    auto [start, end] = limits::window_bounds(w, now_);
    storage::UsageQuery q;
    q.vkey_id = vkey_id;
    if (w != TokenWindow::kTotal) {
      q.since = start;
      q.until = end;
    }
    for (const storage::UsageGroup& g :
         store_.aggregate_usage(q, storage::UsageGroupBy::kAssignment))
      it->second[g.group] += g.cost;
    return it->second;
  }

  Store& store_;
  TimeMs now_;
  std::map<std::pair<Id, TokenWindow>, std::map<std::string, double>> cache_;
};

BudgetStatus budget_of(const VirtualKey& k, double budget, TokenWindow w, TimeMs now) {
  BudgetStatus b;
  b.vkey_id = k.id;
  b.vkey_name = k.name;
  b.budget = budget;
  b.window = w;
  if (w != TokenWindow::kTotal) {
    auto [start, end] = limits::window_bounds(w, now);
    b.window_start = start;
    b.window_end = end;
  }
  return b;
}

// The budgets of one key's assignments (own, or their plan's), then its own.
void add_key_budgets(const VirtualKey& k, const std::vector<Assignment>& assignments,
                     const PlanIndex& plans, Spend& spend, TimeMs now,
                     std::vector<BudgetStatus>& out) {
  for (const Assignment& a : assignments) {
    if (a.vkey_id != k.id) continue;
    auto plan = a.plan_id ? plans.find(*a.plan_id) : plans.end();
    const Plan* p = plan == plans.end() ? nullptr : &plan->second;
    Limits l = effective_limits(a.limits, p ? &p->limits : nullptr);
    if (!l.budget) continue;
    BudgetStatus b = budget_of(k, *l.budget, l.budget_window, now);
    b.assignment_id = a.id;
    b.conn_id = a.conn_id;
    b.model_id = a.model_id;
    if (p && !a.limits.budget) b.plan = p->name;
    b.spent = spend.of_assignment(k.id, a.id, l.budget_window);
    out.push_back(std::move(b));
  }
  if (k.limits.budget) {
    BudgetStatus b = budget_of(k, *k.limits.budget, k.limits.budget_window, now);
    b.scope = BudgetStatus::Scope::kKey;
    b.spent = spend.of_key(k.id, k.limits.budget_window);
    out.push_back(std::move(b));
  }
}

}  // namespace

std::vector<BudgetStatus> budget_status(Store& store, const std::optional<std::string>& vkey,
                                        TimeMs now) {
  std::vector<VirtualKey> keys;
  std::vector<Assignment> assignments;
  PlanIndex plans;
  store.transaction([&] {  // one view of the configuration; usage is read after
    if (vkey)
      keys.push_back(resolve_vkey(store, *vkey));
    else
      keys = store.list_vkeys();
    assignments = store.list_assignments(vkey ? std::optional(keys[0].id) : std::nullopt);
    plans = plan_index(store);
  });
  std::sort(keys.begin(), keys.end(),
            [](const VirtualKey& a, const VirtualKey& b) { return a.name < b.name; });
  std::vector<BudgetStatus> out;
  Spend spend(store, now);
  for (const VirtualKey& k : keys) add_key_budgets(k, assignments, plans, spend, now, out);
  return out;
}

nlohmann::ordered_json budget_json(const BudgetStatus& b) {
  using Json = nlohmann::ordered_json;
  auto opt = [](const auto& v) { return v ? Json(*v) : Json(nullptr); };
  bool key = b.scope == BudgetStatus::Scope::kKey;
  return {
      {"scope", key ? "key" : "assignment"},
      {"vkey_id", b.vkey_id},
      {"vkey_name", b.vkey_name},
      {"assignment_id", opt(b.assignment_id)},
      {"conn_id", opt(b.conn_id)},
      {"model_id", opt(b.model_id)},
      {"plan", opt(b.plan)},
      {"budget", b.budget},
      {"budget_window", to_string(b.window)},
      {"window_start", b.window_end ? Json(format_time(b.window_start)) : Json(nullptr)},
      {"window_end", b.window_end ? Json(format_time(*b.window_end)) : Json(nullptr)},
      {"spent", b.spent},
      {"remaining", b.remaining()},
  };
}

storage::UsageQuery usage_query(Store& store, const UsageSpec& spec) {
  storage::UsageQuery q;
  TimeMs now = now_ms();
  if (spec.since) q.since = parse_bound("--since", *spec.since, now);
  if (spec.until) q.until = parse_bound("--until", *spec.until, now);
  if (q.since && q.until && *q.since >= *q.until) throw invalid("--since must be before --until");
  if (spec.vkey) q.vkey_id = resolve_vkey(store, *spec.vkey).id;
  q.limit = spec.limit;
  return q;
}

std::optional<storage::UsageGroupBy> usage_group_by(const UsageSpec& spec) {
  if (!spec.by) return std::nullopt;
  const std::string& by = *spec.by;
  if (by == "day") return storage::UsageGroupBy::kDay;
  if (by == "model") return storage::UsageGroupBy::kModel;
  if (by == "key") return storage::UsageGroupBy::kKey;
  if (by == "connection") return storage::UsageGroupBy::kConnection;
  throw invalid("--by must be day, model, key or connection, not '" + by + "'");
}

}  // namespace llmproxy::ops
