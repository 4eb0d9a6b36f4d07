// llm-proxy plan add | list | show | update | remove
#include <iostream>

#include "cmd/cli.h"
#include "lib/ops/ops.h"

namespace llmproxy::cli {

// cli_vkey.cpp
void add_limit_options(CLI::App* cmd, ops::LimitsSpec& limits);
std::string describe_limits(const Limits& l);

namespace {

struct PlanFlags {
  ops::PlanSpec spec;
  std::string ref;
  bool force = false;
};

void print_plans(Context& ctx, const std::vector<ops::PlanView>& all) {
  if (ctx.json) return print_json(json_array(all, ops::plan_json));
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : all) {
    std::string limits = describe_limits(p.plan.limits);
    rows.push_back({std::to_string(p.plan.id), p.plan.name, limits.empty() ? "unlimited" : limits,
                    std::to_string(p.assignments)});
  }
  print_table({"ID", "NAME", "LIMITS", "ASSIGNMENTS"}, rows);
}
}  // namespace

void add_plan_commands(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<PlanFlags>();
  CLI::App* group = app.add_subcommand("plan", "Manage plans: named limit sets for assignments");
  group->require_subcommand(1);
  group->footer(
      "\nExamples:\n"
      "  llm-proxy plan add --name free --rpm 10 --token-limit 10000 --token-window day\n"
      "  llm-proxy vkey add --name trial --model-id gpt-4o-mini --plan free\n");

  auto print_one = [&ctx](const ops::PlanView& p) {
    if (ctx.json)
      print_json(ops::plan_json(p));
    else
      print_fields(ops::plan_json(p));
  };

  CLI::App* add = add_command(
      group, ctx, "add", "Create a plan; prints its id",
      "  llm-proxy plan add --name free --rpm 10 --token-limit 10000 --token-window day\n"
      "  llm-proxy plan add --name standard --rpm 60 --budget 50 --budget-window month "
      "--max-parallel 4\n",
      [&ctx, f, print_one] {
        ops::PlanView p = ops::create_plan(ctx.store(), f->spec);
        if (ctx.json)
          print_one(p);
        else
          std::cout << p.plan.id << "\n";
      });
  add_string(add, "--name", f->spec.name, "Name, e.g. free");
  add_limit_options(add, f->spec.limits);

  add_command(group, ctx, "list", "List plans and how many assignments use each",
              "  llm-proxy plan list\n",
              [&ctx] { print_plans(ctx, ops::list_plans(ctx.store())); });

  CLI::App* show =
      add_command(group, ctx, "show", "Show a plan", "  llm-proxy plan show free\n",
                  [&ctx, f, print_one] { print_one(ops::get_plan(ctx.store(), f->ref)); });
  show->add_option("plan", f->ref, "Id or name")->required();

  CLI::App* update = add_command(
      group, ctx, "update",
      "Rename a plan or change its limits (0 removes a limit); applies to every assignment on it",
      "  llm-proxy plan update free --rpm 20 --token-limit 0\n",
      [&ctx, f, print_one] { print_one(ops::update_plan(ctx.store(), f->ref, f->spec)); });
  update->add_option("plan", f->ref, "Id or name")->required();
  add_string(update, "--name", f->spec.name, "New name");
  add_limit_options(update, f->spec.limits);

  CLI::App* remove = add_command(
      group, ctx, "remove", "Remove a plan (in use: only with --force, which detaches it)",
      "  llm-proxy plan remove free\n  llm-proxy plan remove free --force\n", [&ctx, f] {
        ops::remove_plan(ctx.store(), f->ref, f->force);
        if (ctx.json) print_json({{"removed", f->ref}});
      });
  remove->add_option("plan", f->ref, "Id or name")->required();
  remove->add_flag("--force", f->force,
                   "Also when assignments use it: they keep only their own limits");
}

}  // namespace llmproxy::cli
