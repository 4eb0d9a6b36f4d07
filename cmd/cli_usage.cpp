// llm-proxy usage [--vkey-id] [--since] [--until] [--by day|model|key|connection]
#include <cstdio>

#include "cmd/cli.h"
#include "lib/domain/json.h"
#include "lib/domain/time.h"
#include "lib/ops/ops.h"

namespace llmproxy::cli {
namespace {

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string applies_to(const ops::BudgetStatus& b) {
  if (b.scope == ops::BudgetStatus::Scope::kKey) return "key";
  return "assignment " + std::to_string(*b.assignment_id) + " (" +
         (b.conn_id ? "connection " + std::to_string(*b.conn_id)
                    : "model " + std::to_string(*b.model_id)) +
         ")";
}

// usage --budgets: every budget that applies and what its window has spent.
void print_budgets(Context& ctx, const std::optional<std::string>& vkey) {
  auto all = ops::budget_status(ctx.store(), vkey, now_ms());
  if (ctx.json) return print_json(json_array(all, ops::budget_json));
  std::vector<std::vector<std::string>> rows;
  for (const auto& b : all) {
    auto j = ops::budget_json(b);
    rows.push_back({b.vkey_name, applies_to(b), b.plan.value_or("-"),
                    std::string(to_string(b.window)), cell(j["window_start"]), fixed(b.budget, 2),
                    fixed(b.spent, 6), fixed(b.remaining(), 6)});
  }
  print_table(
      {"KEY", "APPLIES_TO", "PLAN", "WINDOW", "SINCE", "BUDGET_USD", "SPENT_USD", "REMAINING_USD"},
      rows);
}

}  // namespace

void add_usage_command(CLI::App& app, Context& ctx) {
  auto spec = std::make_shared<ops::UsageSpec>();
  auto limit = std::make_shared<std::optional<std::int64_t>>();
  auto budgets = std::make_shared<bool>(false);
  CLI::App* usage = add_command(
      &app, ctx, "usage",
      "Show usage records, totals grouped by day, model, key or connection, or spend against "
      "budgets",
      "  llm-proxy usage --since 24h\n"
      "  llm-proxy usage --by day --since 2026-11-01\n"
      "  llm-proxy usage --vkey-id Mobile-App --by model --json\n"
      "  llm-proxy usage --budgets\n",
      [&ctx, spec, limit, budgets] {
        if (*budgets) return print_budgets(ctx, spec->vkey);
        if (*limit) {
          if (**limit < 0) throw CLI::ValidationError("--limit", "must be >= 0");
          spec->limit = static_cast<std::size_t>(**limit);
        }
        storage::Store& store = ctx.store();
        storage::UsageQuery q = ops::usage_query(store, *spec);
        if (auto by = ops::usage_group_by(*spec)) {
          auto groups = store.aggregate_usage(q, *by);
          if (ctx.json) {
            nlohmann::ordered_json arr = nlohmann::ordered_json::array();
            for (const auto& g : groups) arr.push_back(to_json(g));
            return print_json(arr);
          }
          std::vector<std::vector<std::string>> rows;
          for (const auto& g : groups) {
            rows.push_back({g.group.empty() ? "-" : g.group, std::to_string(g.requests),
                            std::to_string(g.errors), std::to_string(g.prompt_tokens),
                            std::to_string(g.completion_tokens),
                            std::to_string(g.prompt_tokens + g.completion_tokens), fixed(g.cost, 6),
                            fixed(g.avg_latency_ms, 1), fixed(g.p50_latency_ms, 1),
                            fixed(g.p95_latency_ms, 1), fixed(g.p99_latency_ms, 1)});
          }
          return print_table({"GROUP", "REQUESTS", "ERRORS", "PROMPT", "COMPLETION", "TOTAL",
                              "COST_USD", "AVG_MS", "P50_MS", "P95_MS", "P99_MS"},
                             rows);
        }
        auto records = store.list_usage(q);
        if (ctx.json) {
          nlohmann::ordered_json arr = nlohmann::ordered_json::array();
          for (const auto& r : records) arr.push_back(to_json(r));
          return print_json(arr);
        }
        std::vector<std::vector<std::string>> rows;
        for (const auto& r : records) {
          rows.push_back({cell(to_json(r)["time"]), r.request_id,
                          r.vkey_name.empty() ? "-" : r.vkey_name, r.model,
                          std::to_string(r.status), fixed(r.latency_ms, 1),
                          std::to_string(r.prompt_tokens), std::to_string(r.completion_tokens),
                          fixed(r.cost, 6)});
        }
        print_table({"TIME", "REQUEST_ID", "KEY", "MODEL", "STATUS", "LATENCY_MS", "PROMPT",
                     "COMPLETION", "COST_USD"},
                    rows);
      });
  add_string(usage, "--vkey-id", spec->vkey, "Only this key (id or name)");
  add_string(usage, "--since", spec->since,
             "From this time (YYYY-MM-DD[THH:MM:SSZ]) or 24h, 7d ago");
  add_string(usage, "--until", spec->until, "Up to (not including) this time");
  add_string(usage, "--by", spec->by, "Group totals by day, model, key or connection");
  CLI::Option* limit_opt =
      add_int(usage, "--limit", *limit, "Most records to list (default 100; 0 = all)");
  // Budget windows are the budgets' own: no time range or grouping applies.
  usage
      ->add_flag("--budgets", *budgets,
                 "Spend in the current window of every budget (assignment, plan and key-wide)")
      ->excludes("--since")
      ->excludes("--until")
      ->excludes("--by")
      ->excludes(limit_opt);
}

}  // namespace llmproxy::cli
