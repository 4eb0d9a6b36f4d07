// Shared plumbing for the CLI subcommands: global options, the lazily opened
// store, typed option helpers and output (JSON or aligned tables). The
// subcommands themselves only map flags to lib/ops calls and print results.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "storage/store.h"

namespace llmproxy::cli {

struct Context {
  std::optional<std::string> db;  // --db
  bool json = false;              // --json
  // Set by the chosen subcommand's callback; run by main after parsing so that
  // every error is reported the same way.
  std::function<void()> action;

  storage::Store& store();

 private:
  std::unique_ptr<storage::Store> store_;
};

// Options taking a value, stored only when given.
CLI::Option* add_string(CLI::App* app, const std::string& flags, std::optional<std::string>& out,
                        const std::string& help);
CLI::Option* add_double(CLI::App* app, const std::string& flags, std::optional<double>& out,
                        const std::string& help);
CLI::Option* add_int(CLI::App* app, const std::string& flags, std::optional<std::int64_t>& out,
                     const std::string& help);
// Subcommand with an examples footer; `action` runs after a successful parse.
CLI::App* add_command(CLI::App* parent, Context& ctx, const std::string& name,
                      const std::string& help, const std::string& examples,
                      std::function<void()> action);

// Output.
void print_json(const nlohmann::ordered_json& doc);
// A JSON array of the items, each shaped by `shape`.
template <class T, class Shape>
nlohmann::ordered_json json_array(const std::vector<T>& items, Shape shape) {
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  for (const T& item : items) arr.push_back(shape(item));
  return arr;
}
// Aligned columns; null cells print as "-".
void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows);
// "key: value" lines for one object.
void print_fields(const nlohmann::ordered_json& obj);
std::string cell(const nlohmann::ordered_json& v);
// Notes for humans go to stderr so stdout stays parseable.
void note(const std::string& line);

void add_connection_commands(CLI::App& app, Context& ctx);
void add_model_commands(CLI::App& app, Context& ctx);
void add_vkey_commands(CLI::App& app, Context& ctx);
void add_assignment_commands(CLI::App& app, Context& ctx);
void add_plan_commands(CLI::App& app, Context& ctx);
void add_usage_command(CLI::App& app, Context& ctx);
void add_admin_commands(CLI::App& app, Context& ctx);
void add_serve_command(CLI::App& app, Context& ctx);

}  // namespace llmproxy::cli
