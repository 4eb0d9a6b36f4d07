// llm-proxy vkey add | list | show | update | disable | enable | rotate | remove
#include <cstdio>
#include <iostream>

#include "cmd/cli.h"
#include "lib/domain/json.h"
#include "lib/ops/ops.h"

namespace llmproxy::cli {

// Shared with cli_assignment.cpp (assignments and plans).
void add_limit_options(CLI::App* cmd, ops::LimitsSpec& limits) {
  add_double(cmd, "--tps", limits.tps, "Requests per second (token bucket, burst = 1 s); 0 = none");
  add_int(cmd, "--rpm", limits.rpm, "Requests per minute; 0 = none");
  add_int(cmd, "--rph", limits.rph, "Requests per calendar hour (UTC); 0 = none");
  add_int(cmd, "--rpd", limits.rpd, "Requests per calendar day (UTC); 0 = none");
  add_int(cmd, "--token-limit", limits.token_limit,
          "Prompt + completion tokens per --token-window; 0 = none");
  add_string(cmd, "--token-window", limits.token_window,
             "minute, hour, day (default), month, total");
  add_double(cmd, "--budget", limits.budget, "USD per --budget-window; 0 = none");
  add_string(cmd, "--budget-window", limits.budget_window,
             "minute, hour, day, month (default), total");
  add_int(cmd, "--max-parallel", limits.max_parallel, "Requests in flight at once; 0 = none");
  add_int(cmd, "--reserve-tokens", limits.reserve_tokens,
          "Completion tokens reserved at admission when the client sets no max_tokens; "
          "0 = serve's default");
}

void add_plan_option(CLI::App* cmd, ops::LimitsSpec& limits) {
  add_string(cmd, "--plan", limits.plan,
             "Plan (id or name) whose limits apply where no own limit is set; 'none' detaches");
}

// "$5", "$0.25": dollars without a trailing ".0".
std::string usd(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "$%.6g", v);
  return buf;
}

std::string describe_limits(const Limits& l) {
  std::string out;
  auto add = [&](const std::string& part) { out += (out.empty() ? "" : " ") + part; };
  auto window = [](TokenWindow w) { return "/" + std::string(to_string(w)); };
  if (l.tps) add("tps=" + cell(*l.tps));
  if (l.rpm) add("rpm=" + std::to_string(*l.rpm));
  if (l.rph) add("rph=" + std::to_string(*l.rph));
  if (l.rpd) add("rpd=" + std::to_string(*l.rpd));
  if (l.token_limit) add("tokens=" + std::to_string(*l.token_limit) + window(l.token_window));
  if (l.budget) add("budget=" + usd(*l.budget) + window(l.budget_window));
  if (l.max_parallel) add("parallel=" + std::to_string(*l.max_parallel));
  if (l.reserve_tokens) add("reserve=" + std::to_string(*l.reserve_tokens));
  return out;
}

// An assignment's plan, then the limits of its own (which override the plan's).
std::string describe_limits(const Assignment& a, const ops::PlanIndex& plans) {
  std::string own = describe_limits(a.limits);
  std::string plan;
  if (a.plan_id) {
    auto it = plans.find(*a.plan_id);
    plan = "plan=" + (it == plans.end() ? std::to_string(*a.plan_id) : it->second.name);
  }
  if (plan.empty()) return own.empty() ? "unlimited" : own;
  return own.empty() ? plan : plan + " " + own;
}

std::string target_of(const Assignment& a) {
  return a.conn_id ? "connection " + std::to_string(*a.conn_id)
                   : "model " + std::to_string(*a.model_id);
}

namespace {

struct VkeyFlags {
  ops::VkeySpec spec;
  std::vector<std::string> conns;
  std::vector<std::string> models;
  std::string ref;
};

nlohmann::ordered_json vkey_json(Context& ctx, const ops::VkeyView& v) {
  return ops::vkey_json(v, ops::plan_index(ctx.store()));
}

// The key is printed once, at creation or rotation; only its hash is stored.
void print_created(Context& ctx, const ops::VkeyView& v) {
  if (ctx.json) return print_json(vkey_json(ctx, v));
  std::cout << v.vkey.id << "\n" << v.key << "\n";
  note("Virtual key '" + v.vkey.name + "' (id " + std::to_string(v.vkey.id) +
       "): store the key above now; it is not shown again.");
}

void print_one(Context& ctx, const ops::VkeyView& v) {
  ops::PlanIndex plans = ops::plan_index(ctx.store());
  auto j = ops::vkey_json(v, plans);
  if (ctx.json) return print_json(j);
  j.erase("assignments");
  print_fields(j);
  for (const auto& a : v.assignments)
    std::cout << "assignment " << a.id << ": " << target_of(a) << " " << describe_limits(a, plans)
              << "\n";
}

// The key-wide limits, compactly ("-" when there are none).
std::string describe_key_limits(const KeyLimits& k) {
  Limits l;
  l.token_limit = k.token_limit;
  l.token_window = k.token_window;
  l.budget = k.budget;
  l.budget_window = k.budget_window;
  std::string out = describe_limits(l);
  return out.empty() ? "-" : out;
}

void print_list(Context& ctx, const std::vector<ops::VkeyView>& all) {
  ops::PlanIndex plans = ops::plan_index(ctx.store());
  if (ctx.json)
    return print_json(json_array(all, [&](const auto& v) { return ops::vkey_json(v, plans); }));
  std::vector<std::vector<std::string>> rows;
  for (const auto& v : all) {
    auto j = to_json(v.vkey);
    rows.push_back({cell(j["id"]), v.vkey.name, v.vkey.key_hint, cell(j["enabled"]),
                    cell(j["expires"]), std::to_string(v.assignments.size()),
                    describe_key_limits(v.vkey.limits)});
  }
  print_table({"ID", "NAME", "KEY", "ENABLED", "EXPIRES", "ASSIGNMENTS", "KEY_LIMITS"}, rows);
}

void add_key_limit_options(CLI::App* cmd, ops::VkeySpec& spec) {
  add_double(cmd, "--key-budget", spec.key_budget,
             "USD per --key-budget-window across all the key's assignments; 0 = none");
  add_string(cmd, "--key-budget-window", spec.key_budget_window,
             "minute, hour, day, month (default), total");
  add_int(cmd, "--key-token-limit", spec.key_token_limit,
          "Tokens per --key-token-window across all the key's assignments; 0 = none");
  add_string(cmd, "--key-token-window", spec.key_token_window,
             "minute, hour, day (default), month, total");
}

}  // namespace

void add_vkey_commands(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<VkeyFlags>();
  CLI::App* group = app.add_subcommand("vkey", "Manage virtual keys");
  group->require_subcommand(1);
  group->footer(
      "\nExamples:\n  llm-proxy vkey add --name Mobile-App --model-id gemini-flash --tps 5\n");

  CLI::App* add = add_command(
      group, ctx, "add", "Create a virtual key; prints its id and the key (shown once)",
      "  llm-proxy vkey add --name Mobile-App --model-id gemini-flash --tps 5 --rpm 100\n"
      "  llm-proxy vkey add --name batch --conn-id openai --token-limit 100000 --token-window day\n"
      "  llm-proxy vkey add --name ci --key sk-proxy-123 --conn-id demo --expires 2026-12-31\n"
      "  llm-proxy vkey add --name team-a --conn-id openai --plan standard --key-budget 200\n",
      [&ctx, f] {
        for (const auto& c : f->conns) f->spec.targets.push_back({c, std::nullopt});
        for (const auto& m : f->models) f->spec.targets.push_back({std::nullopt, m});
        print_created(ctx, ops::create_vkey(ctx.store(), f->spec));
      });
  add_string(add, "--name", f->spec.name, "Name, e.g. Mobile-App");
  add_string(add, "--key", f->spec.key, "Use this key instead of generating one");
  add->add_option("--conn-id", f->conns, "Grant a whole connection (id or name; repeatable)");
  add->add_option("--model-id", f->models, "Grant one model (id or name; repeatable)");
  add_string(add, "--expires", f->spec.expires,
             "Last valid day (YYYY-MM-DD) or exact time (YYYY-MM-DDTHH:MM:SSZ)");
  add_limit_options(add, f->spec.limits);
  add_plan_option(add, f->spec.limits);
  add_key_limit_options(add, f->spec);

  add_command(group, ctx, "list", "List virtual keys (never the keys themselves)",
              "  llm-proxy vkey list\n", [&ctx] { print_list(ctx, ops::list_vkeys(ctx.store())); });

  CLI::App* show = add_command(group, ctx, "show", "Show a virtual key and its assignments",
                               "  llm-proxy vkey show Mobile-App\n",
                               [&ctx, f] { print_one(ctx, ops::get_vkey(ctx.store(), f->ref)); });
  show->add_option("vkey", f->ref, "Id or name")->required();

  CLI::App* update =
      add_command(group, ctx, "update", "Rename a key, change its expiry or its key-wide limits",
                  "  llm-proxy vkey update Mobile-App --expires never\n"
                  "  llm-proxy vkey update team-a --key-budget 500 --key-budget-window month\n",
                  [&ctx, f] { print_one(ctx, ops::update_vkey(ctx.store(), f->ref, f->spec)); });
  update->add_option("vkey", f->ref, "Id or name")->required();
  add_string(update, "--name", f->spec.name, "New name");
  add_string(update, "--expires", f->spec.expires, "New expiry, or 'never'");
  add_key_limit_options(update, f->spec);

  for (bool enable : {false, true}) {
    CLI::App* cmd = add_command(
        group, ctx, enable ? "enable" : "disable",
        enable ? "Allow a disabled key again" : "Refuse a key (401) without removing it",
        std::string("  llm-proxy vkey ") + (enable ? "enable" : "disable") + " Mobile-App\n",
        [&ctx, f, enable] { print_one(ctx, ops::set_vkey_enabled(ctx.store(), f->ref, enable)); });
    cmd->add_option("vkey", f->ref, "Id or name")->required();
  }

  CLI::App* rotate = add_command(
      group, ctx, "rotate", "Replace a key's secret; prints the new key (shown once)",
      "  llm-proxy vkey rotate Mobile-App\n",
      [&ctx, f] { print_created(ctx, ops::rotate_vkey(ctx.store(), f->ref, f->spec.key)); });
  rotate->add_option("vkey", f->ref, "Id or name")->required();
  add_string(rotate, "--key", f->spec.key, "Use this key instead of generating one");

  CLI::App* remove = add_command(group, ctx, "remove", "Remove a key and its assignments",
                                 "  llm-proxy vkey remove Mobile-App\n", [&ctx, f] {
                                   ops::remove_vkey(ctx.store(), f->ref);
                                   if (ctx.json) print_json({{"removed", f->ref}});
                                 });
  remove->add_option("vkey", f->ref, "Id or name")->required();
}

}  // namespace llmproxy::cli
