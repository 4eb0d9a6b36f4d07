// llm-proxy connection add | list | show | update | remove
#include <fstream>
#include <iostream>
#include <sstream>

#include "cmd/cli.h"
#include "lib/domain/json.h"
#include "lib/domain/types.h"
#include "lib/ops/ops.h"

namespace llmproxy::cli {
namespace {

struct ConnectionFlags {
  ops::ConnectionSpec spec;
  std::vector<std::string> headers;
  std::string ref;
  bool force = false;
};

void add_spec_options(CLI::App* cmd, ConnectionFlags& f) {
  add_string(cmd, "--name", f.spec.name, "Unique name, e.g. google-ai");
  add_string(cmd, "--provider", f.spec.provider, "One of: " + provider_names());
  add_string(cmd, "--endpoint", f.spec.endpoint,
             "Base URL (optional for openai, anthropic, google, bedrock and mock)");
  add_string(cmd, "--api-key", f.spec.api_key, "Provider API key (stored encrypted)");
  add_string(cmd, "--api-version", f.spec.api_version, "API version (azure)");
  add_string(cmd, "--region", f.spec.region, "AWS region (bedrock)");
  add_string(cmd, "--access-key-id", f.spec.access_key_id, "AWS access key id (bedrock)");
  add_string(cmd, "--secret-access-key", f.spec.secret_access_key,
             "AWS secret access key (bedrock, stored encrypted)");
  add_string(cmd, "--session-token", f.spec.session_token, "AWS session token (bedrock, optional)");
  cmd->add_option("--header", f.headers, "Extra upstream header 'Name: value' (repeatable)");
  add_double(cmd, "--timeout", f.spec.timeout_s, "Upstream timeout in seconds (default 600)");
  cmd->add_option_function<std::string>(
      "--template",
      [&f](const std::string& v) {
        if (!v.starts_with("@")) {
          f.spec.template_json = v;
          return;
        }
        std::ifstream in(v.substr(1));
        if (!in) throw CLI::ValidationError("--template", "cannot read " + v.substr(1));
        std::stringstream text;
        text << in.rdbuf();
        f.spec.template_json = text.str();
      },
      "template provider: request/reply template as JSON, or @file.json");
}

void print_one(const Context& ctx, const Connection& c) {
  if (ctx.json) print_json(to_json(c));
  else print_fields(to_json(c));
}

}  // namespace

void add_connection_commands(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<ConnectionFlags>();
  CLI::App* group = app.add_subcommand("connection", "Manage provider connections");
  group->require_subcommand(1);
  group->footer(
      "\nExamples:\n"
      "  llm-proxy connection add --name openai --provider openai --api-key sk-...\n"
      "  llm-proxy connection list --json\n");

  CLI::App* add = add_command(
      group, ctx, "add", "Register a provider connection; prints its id",
      "  llm-proxy connection add --name google-ai --provider google --api-key AIza...\n"
      "  llm-proxy connection add --name azure-eu --provider azure \\\n"
      "      --endpoint https://myco.openai.azure.com --api-key ... --api-version 2024-10-21\n"
      "  llm-proxy connection add --name aws --provider bedrock --region us-east-1 \\\n"
      "      --access-key-id AKIA... --secret-access-key ...\n"
      "  llm-proxy connection add --name local --provider vllm --endpoint http://gpu1:8000/v1\n"
      "  llm-proxy connection add --name demo --provider mock\n",
      [&ctx, f] {
        if (!f->headers.empty()) f->spec.headers = f->headers;
        Connection c = ops::create_connection(ctx.store(), f->spec);
        if (ctx.json) print_json(to_json(c));
        else std::cout << c.id << "\n";
      });
  add_spec_options(add, *f);

  add_command(group, ctx, "list", "List connections (secrets masked)",
              "  llm-proxy connection list\n  llm-proxy connection list --json | jq '.[].name'\n",
              [&ctx] {
                auto all = ops::list_connections(ctx.store());
                if (ctx.json) {
                  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
                  for (const auto& c : all) arr.push_back(to_json(c));
                  return print_json(arr);
                }
                std::vector<std::vector<std::string>> rows;
                for (const auto& c : all) {
                  auto j = to_json(c);
                  rows.push_back({cell(j["id"]), c.name, cell(j["provider"]),
                                  c.endpoint.empty() ? "-" : c.endpoint, cell(j["api_key"]),
                                  cell(j["timeout"])});
                }
                print_table({"ID", "NAME", "PROVIDER", "ENDPOINT", "API_KEY", "TIMEOUT"}, rows);
              });

  CLI::App* show = add_command(group, ctx, "show", "Show one connection",
                               "  llm-proxy connection show google-ai\n",
                               [&ctx, f] { print_one(ctx, ops::get_connection(ctx.store(), f->ref)); });
  show->add_option("connection", f->ref, "Id or name")->required();

  CLI::App* update = add_command(
      group, ctx, "update", "Change a connection's fields",
      "  llm-proxy connection update google-ai --api-key AIza...new\n"
      "  llm-proxy connection update 3 --timeout 30 --header 'X-Team: search'\n",
      [&ctx, f] {
        if (!f->headers.empty()) f->spec.headers = f->headers;
        print_one(ctx, ops::update_connection(ctx.store(), f->ref, f->spec));
      });
  update->add_option("connection", f->ref, "Id or name")->required();
  add_spec_options(update, *f);

  CLI::App* remove = add_command(
      group, ctx, "remove", "Remove a connection",
      "  llm-proxy connection remove google-ai\n"
      "  llm-proxy connection remove google-ai --force   # also its models and assignments\n",
      [&ctx, f] {
        ops::remove_connection(ctx.store(), f->ref, f->force);
        if (ctx.json) print_json({{"removed", f->ref}});
      });
  remove->add_option("connection", f->ref, "Id or name")->required();
  remove->add_flag("--force", f->force, "Also remove the models and assignments that use it");
}

}  // namespace llmproxy::cli
