// llm-proxy model add | list | show | update | remove
#include <iostream>
#include <map>

#include "cmd/cli.h"
#include "lib/domain/json.h"
#include "lib/ops/ops.h"

namespace llmproxy::cli {
namespace {

struct ModelFlags {
  ops::ModelSpec spec;
  std::optional<std::string> conn_filter;
  std::string ref;
  bool force = false;
};

void add_spec_options(CLI::App* cmd, ModelFlags& f) {
  add_string(cmd, "--name", f.spec.name, "Alias clients send as `model`, e.g. gemini-flash");
  add_string(cmd, "--remote", f.spec.remote, "Model name at the provider, e.g. gemini-1.5-flash");
  add_string(cmd, "--conn-id", f.spec.conn, "Connection (id or name)");
  add_double(cmd, "--input-price", f.spec.input_price, "USD per million prompt tokens");
  add_double(cmd, "--output-price", f.spec.output_price, "USD per million completion tokens");
}

}  // namespace

void add_model_commands(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<ModelFlags>();
  CLI::App* group = app.add_subcommand("model", "Manage model aliases");
  group->require_subcommand(1);
  group->footer("\nExamples:\n  llm-proxy model add --name gemini-flash --remote gemini-1.5-flash --conn-id google-ai\n");

  CLI::App* add = add_command(
      group, ctx, "add", "Add a model alias on a connection; prints its id",
      "  llm-proxy model add --name gemini-flash --remote gemini-1.5-flash --conn-id google-ai \\\n"
      "      --input-price 0.075 --output-price 0.30\n",
      [&ctx, f] {
        ProviderModel m = ops::create_model(ctx.store(), f->spec);
        if (ctx.json) print_json(to_json(m));
        else std::cout << m.id << "\n";
      });
  add_spec_options(add, *f);

  CLI::App* list = add_command(
      group, ctx, "list", "List model aliases",
      "  llm-proxy model list\n  llm-proxy model list --conn-id google-ai --json\n", [&ctx, f] {
        auto all = ops::list_models(ctx.store(), f->conn_filter);
        if (ctx.json) {
          nlohmann::ordered_json arr = nlohmann::ordered_json::array();
          for (const auto& m : all) arr.push_back(to_json(m));
          return print_json(arr);
        }
        std::map<Id, std::string> conn_names;
        for (const auto& c : ctx.store().list_connections()) conn_names[c.id] = c.name;
        std::vector<std::vector<std::string>> rows;
        for (const auto& m : all) {
          auto j = to_json(m);
          rows.push_back({cell(j["id"]), m.name, m.remote, conn_names[m.conn_id],
                          cell(j["input_price"]), cell(j["output_price"])});
        }
        print_table({"ID", "NAME", "REMOTE", "CONNECTION", "INPUT_PRICE", "OUTPUT_PRICE"}, rows);
      });
  add_string(list, "--conn-id", f->conn_filter, "Only models on this connection (id or name)");

  auto print_one = [&ctx](const ProviderModel& m) {
    if (ctx.json) print_json(to_json(m));
    else print_fields(to_json(m));
  };
  CLI::App* show = add_command(group, ctx, "show", "Show one model alias",
                               "  llm-proxy model show gemini-flash\n",
                               [&ctx, f, print_one] { print_one(ops::get_model(ctx.store(), f->ref)); });
  show->add_option("model", f->ref, "Id or name")->required();

  CLI::App* update = add_command(
      group, ctx, "update", "Change a model alias",
      "  llm-proxy model update gemini-flash --remote gemini-2.0-flash --output-price 0.40\n",
      [&ctx, f, print_one] { print_one(ops::update_model(ctx.store(), f->ref, f->spec)); });
  update->add_option("model", f->ref, "Id or name")->required();
  add_spec_options(update, *f);

  CLI::App* remove = add_command(
      group, ctx, "remove", "Remove a model alias",
      "  llm-proxy model remove gemini-flash\n", [&ctx, f] {
        ops::remove_model(ctx.store(), f->ref, f->force);
        if (ctx.json) print_json({{"removed", f->ref}});
      });
  remove->add_option("model", f->ref, "Id or name")->required();
  remove->add_flag("--force", f->force, "Also remove the assignments that use it");
}

}  // namespace llmproxy::cli
