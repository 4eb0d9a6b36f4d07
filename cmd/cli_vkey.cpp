// llm-proxy vkey add | list | show | update | disable | enable | rotate | remove
#include <iostream>

#include "cmd/cli.h"
#include "lib/domain/json.h"
#include "lib/ops/ops.h"

namespace llmproxy::cli {

// Shared with cli_assignment.cpp.
void add_limit_options(CLI::App* cmd, ops::LimitsSpec& limits) {
  add_double(cmd, "--tps", limits.tps, "Requests per second (token bucket, burst = 1 s); 0 = none");
  add_int(cmd, "--rpm", limits.rpm, "Requests per minute; 0 = none");
  add_int(cmd, "--token-limit", limits.token_limit,
          "Prompt + completion tokens per --token-window; 0 = none");
  add_string(cmd, "--token-window", limits.token_window, "minute, hour, day (default), month, total");
}

std::string describe_limits(const Assignment& a) {
  std::string out;
  auto add = [&](const std::string& part) { out += (out.empty() ? "" : " ") + part; };
  if (a.limits.tps) add("tps=" + cell(*a.limits.tps));
  if (a.limits.rpm) add("rpm=" + std::to_string(*a.limits.rpm));
  if (a.limits.token_limit)
    add("tokens=" + std::to_string(*a.limits.token_limit) + "/" +
        std::string(to_string(a.limits.token_window)));
  return out.empty() ? "unlimited" : out;
}

namespace {

struct VkeyFlags {
  ops::VkeySpec spec;
  std::vector<std::string> conns;
  std::vector<std::string> models;
  std::string ref;
};

using ops::vkey_json;

// The key is printed once, at creation or rotation; only its hash is stored.
void print_created(const Context& ctx, const ops::VkeyView& v) {
  if (ctx.json) return print_json(vkey_json(v));
  std::cout << v.vkey.id << "\n" << v.key << "\n";
  note("Virtual key '" + v.vkey.name + "' (id " + std::to_string(v.vkey.id) +
       "): store the key above now; it is not shown again.");
}

void print_one(const Context& ctx, const ops::VkeyView& v) {
  if (ctx.json) return print_json(vkey_json(v));
  auto j = vkey_json(v);
  j.erase("assignments");
  print_fields(j);
  for (const auto& a : v.assignments) {
    std::cout << "assignment " << a.id << ": "
              << (a.conn_id ? "connection " + std::to_string(*a.conn_id)
                            : "model " + std::to_string(*a.model_id))
              << " " << describe_limits(a) << "\n";
  }
}

}  // namespace

void add_vkey_commands(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<VkeyFlags>();
  CLI::App* group = app.add_subcommand("vkey", "Manage virtual keys");
  group->require_subcommand(1);
  group->footer("\nExamples:\n  llm-proxy vkey add --name Mobile-App --model-id gemini-flash --tps 5\n");

  CLI::App* add = add_command(
      group, ctx, "add", "Create a virtual key; prints its id and the key (shown once)",
      "  llm-proxy vkey add --name Mobile-App --model-id gemini-flash --tps 5 --rpm 100\n"
      "  llm-proxy vkey add --name batch --conn-id openai --token-limit 100000 --token-window day\n"
      "  llm-proxy vkey add --name ci --key sk-proxy-123 --conn-id demo --expires 2026-12-31\n",
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

  add_command(group, ctx, "list", "List virtual keys (never the keys themselves)",
              "  llm-proxy vkey list\n", [&ctx] {
                auto all = ops::list_vkeys(ctx.store());
                if (ctx.json) {
                  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
                  for (const auto& v : all) arr.push_back(vkey_json(v));
                  return print_json(arr);
                }
                std::vector<std::vector<std::string>> rows;
                for (const auto& v : all) {
                  auto j = to_json(v.vkey);
                  rows.push_back({cell(j["id"]), v.vkey.name, v.vkey.key_hint, cell(j["enabled"]),
                                  cell(j["expires"]), std::to_string(v.assignments.size())});
                }
                print_table({"ID", "NAME", "KEY", "ENABLED", "EXPIRES", "ASSIGNMENTS"}, rows);
              });

  CLI::App* show = add_command(group, ctx, "show", "Show a virtual key and its assignments",
                               "  llm-proxy vkey show Mobile-App\n",
                               [&ctx, f] { print_one(ctx, ops::get_vkey(ctx.store(), f->ref)); });
  show->add_option("vkey", f->ref, "Id or name")->required();

  CLI::App* update = add_command(
      group, ctx, "update", "Rename a key or change its expiry",
      "  llm-proxy vkey update Mobile-App --expires never\n",
      [&ctx, f] { print_one(ctx, ops::update_vkey(ctx.store(), f->ref, f->spec)); });
  update->add_option("vkey", f->ref, "Id or name")->required();
  add_string(update, "--name", f->spec.name, "New name");
  add_string(update, "--expires", f->spec.expires, "New expiry, or 'never'");

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
