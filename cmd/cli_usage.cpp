// llm-proxy usage [--vkey-id] [--since] [--until] [--by day|model|key|connection]
#include <cstdio>

#include "cmd/cli.h"
#include "lib/domain/json.h"
#include "lib/ops/ops.h"

namespace llmproxy::cli {
namespace {

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

void add_usage_command(CLI::App& app, Context& ctx) {
  auto spec = std::make_shared<ops::UsageSpec>();
  auto limit = std::make_shared<std::optional<std::int64_t>>();
  CLI::App* usage = add_command(
      &app, ctx, "usage", "Show usage records, or totals grouped by day, model, key or connection",
      "  llm-proxy usage --since 24h\n"
      "  llm-proxy usage --by day --since 2026-11-01\n"
      "  llm-proxy usage --vkey-id Mobile-App --by model --json\n",
      [&ctx, spec, limit] {
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
  add_string(usage, "--since", spec->since, "From this time (YYYY-MM-DD[THH:MM:SSZ]) or 24h, 7d ago");
  add_string(usage, "--until", spec->until, "Up to (not including) this time");
  add_string(usage, "--by", spec->by, "Group totals by day, model, key or connection");
  add_int(usage, "--limit", *limit, "Most records to list (default 100; 0 = all)");
}

}  // namespace llmproxy::cli
