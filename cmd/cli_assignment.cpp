// llm-proxy assignment add | list | update | remove
#include <iostream>

#include "cmd/cli.h"
#include "lib/ops/ops.h"

namespace llmproxy::cli {

// cli_vkey.cpp
void add_limit_options(CLI::App* cmd, ops::LimitsSpec& limits);
void add_plan_option(CLI::App* cmd, ops::LimitsSpec& limits);
std::string describe_limits(const Limits& l);
std::string describe_limits(const Assignment& a, const ops::PlanIndex& plans);
std::string target_of(const Assignment& a);

namespace {

struct AssignmentFlags {
  std::optional<std::string> vkey;
  ops::Target target;
  ops::LimitsSpec limits;
  std::string id;
};

void print_assignments(Context& ctx, const std::vector<Assignment>& all) {
  if (ctx.json) return print_json(ops::assignments_json(ctx.store(), all));
  ops::PlanIndex plans = ops::plan_index(ctx.store());
  std::vector<std::vector<std::string>> rows;
  for (const auto& a : all) {
    rows.push_back(
        {std::to_string(a.id), std::to_string(a.vkey_id), target_of(a), describe_limits(a, plans)});
  }
  print_table({"ID", "VKEY_ID", "TARGET", "LIMITS"}, rows);
}

}  // namespace

void add_assignment_commands(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<AssignmentFlags>();
  CLI::App* group =
      app.add_subcommand("assignment", "Grant keys connections or models, with limits");
  group->require_subcommand(1);

  auto print_one = [&ctx](const Assignment& a) {
    auto j = ops::assignment_json(a, ops::plan_index(ctx.store()));
    if (ctx.json)
      print_json(j);
    else
      print_fields(j);
  };

  CLI::App* add = add_command(
      group, ctx, "add", "Grant a key a connection or a model; prints the assignment id",
      "  llm-proxy assignment add --vkey-id Mobile-App --model-id gemini-flash --tps 5\n"
      "  llm-proxy assignment add --vkey-id 2 --conn-id openai --token-limit 1000000 "
      "--token-window month\n"
      "  llm-proxy assignment add --vkey-id 2 --model-id gpt-4o --plan free --rpm 20\n",
      [&ctx, f, print_one] {
        if (!f->vkey) throw CLI::RequiredError("--vkey-id");
        Assignment a = ops::create_assignment(ctx.store(), *f->vkey, f->target, f->limits);
        if (ctx.json)
          print_one(a);
        else
          std::cout << a.id << "\n";
      });
  add_string(add, "--vkey-id", f->vkey, "Virtual key (id or name)");
  add_string(add, "--conn-id", f->target.conn, "Connection (id or name)");
  add_string(add, "--model-id", f->target.model, "Model (id or name)");
  add_limit_options(add, f->limits);
  add_plan_option(add, f->limits);

  CLI::App* list = add_command(
      group, ctx, "list", "List assignments", "  llm-proxy assignment list --vkey-id Mobile-App\n",
      [&ctx, f] { print_assignments(ctx, ops::list_assignments(ctx.store(), f->vkey)); });
  add_string(list, "--vkey-id", f->vkey, "Only this key's assignments (id or name)");

  CLI::App* update = add_command(
      group, ctx, "update", "Change an assignment's limits or plan (0 removes a limit)",
      "  llm-proxy assignment update 4 --tps 10 --rpm 0\n"
      "  llm-proxy assignment update 4 --plan premium\n"
      "  llm-proxy assignment update 4 --plan none\n",
      [&ctx, f, print_one] { print_one(ops::update_assignment(ctx.store(), f->id, f->limits)); });
  update->add_option("assignment", f->id, "Assignment id")->required();
  add_limit_options(update, f->limits);
  add_plan_option(update, f->limits);

  CLI::App* remove = add_command(group, ctx, "remove", "Remove an assignment",
                                 "  llm-proxy assignment remove 4\n", [&ctx, f] {
                                   ops::remove_assignment(ctx.store(), f->id);
                                   if (ctx.json) print_json({{"removed", f->id}});
                                 });
  remove->add_option("assignment", f->id, "Assignment id")->required();
}

}  // namespace llmproxy::cli
