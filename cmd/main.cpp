// llm-proxy: the entry point. Parses the command line, runs the chosen
// subcommand, and turns failures into one line on stderr and an exit code:
// 1 storage, 2 usage/bad input, 3 not found, 4 conflict.
#include <CLI/CLI.hpp>
#include <iostream>

#include "cmd/cli.h"
#include "lib/domain/error.h"
#include "lib/version.h"

namespace {

constexpr const char* kExamples = R"(
Examples (a quick start):
  llm-proxy connection add --name demo --provider mock
  llm-proxy model add --name echo --remote echo-1 --conn-id demo
  llm-proxy vkey add --name laptop --model-id echo --tps 5
  llm-proxy serve --listen 127.0.0.1:8080

The database is chosen by --db URL, else $LLM_PROXY_DB, else $DB_TYPE + $DB_DSN,
else ./llm-proxy.db (sqlite:///abs/path, a file path, postgres://…, mongodb://…).
Exit codes: 0 ok, 1 storage failure, 2 bad input, 3 not found, 4 conflict.
)";

void fail(const std::string& message) { std::cerr << "llm-proxy: error: " << message << "\n"; }

}  // namespace

int main(int argc, char** argv) {
  using namespace llmproxy;
  cli::Context ctx;
  CLI::App app{"llm-proxy: one gateway in front of every LLM provider", "llm-proxy"};
  app.footer(kExamples);
  app.require_subcommand(1);
  // Inherited by every subcommand: --db and --json are accepted before or
  // after the subcommand, at any depth.
  app.fallthrough();
  app.set_version_flag("--version", std::string("llm-proxy ") + LLM_PROXY_VERSION);
  app.add_option_function<std::string>(
      "--db", [&ctx](const std::string& v) { ctx.db = v; },
      "Database URL or SQLite file (default: $LLM_PROXY_DB, $DB_TYPE+$DB_DSN, ./llm-proxy.db)");
  app.add_flag("--json", ctx.json, "Print one JSON document on stdout");

  cli::add_connection_commands(app, ctx);
  cli::add_model_commands(app, ctx);
  cli::add_vkey_commands(app, ctx);
  cli::add_assignment_commands(app, ctx);
  cli::add_plan_commands(app, ctx);
  cli::add_usage_command(app, ctx);
  cli::add_admin_commands(app, ctx);
  cli::add_serve_command(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fail(std::string(e.what()) + " (see --help)");
    return 2;
  }

  try {
    if (ctx.action) ctx.action();
    return 0;
  } catch (const Error& e) {
    fail(e.what());
    return static_cast<int>(e.kind());
  } catch (const CLI::ParseError& e) {
    fail(std::string(e.what()) + " (see --help)");
    return 2;
  } catch (const std::exception& e) {
    fail(e.what());
    return 1;
  }
}
