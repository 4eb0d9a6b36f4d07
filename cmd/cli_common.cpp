#include <charconv>
#include <cmath>
#include <iostream>

#include "cmd/cli.h"

namespace llmproxy::cli {

storage::Store& Context::store() {
  if (!store_) store_ = storage::open_store(storage::resolve_location(db));
  return *store_;
}

CLI::Option* add_string(CLI::App* app, const std::string& flags, std::optional<std::string>& out,
                        const std::string& help) {
  return app->add_option_function<std::string>(
      flags, [&out](const std::string& v) { out = v; }, help);
}

CLI::Option* add_double(CLI::App* app, const std::string& flags, std::optional<double>& out,
                        const std::string& help) {
  return app->add_option_function<std::string>(
      flags,
      [&out, flags](const std::string& v) {
        double d = 0;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
        if (ec != std::errc() || end != v.data() + v.size() || !std::isfinite(d))
          throw CLI::ValidationError(flags.substr(0, flags.find(',')), "'" + v + "' is not a number");
        out = d;
      },
      help);
}

CLI::Option* add_int(CLI::App* app, const std::string& flags, std::optional<std::int64_t>& out,
                     const std::string& help) {
  return app->add_option_function<std::string>(
      flags,
      [&out, flags](const std::string& v) {
        std::int64_t n = 0;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (ec != std::errc() || end != v.data() + v.size())
          throw CLI::ValidationError(flags.substr(0, flags.find(',')),
                                     "'" + v + "' is not a whole number");
        out = n;
      },
      help);
}

CLI::App* add_command(CLI::App* parent, Context& ctx, const std::string& name,
                      const std::string& help, const std::string& examples,
                      std::function<void()> action) {
  CLI::App* sub = parent->add_subcommand(name, help);
  if (!examples.empty()) sub->footer("\nExamples:\n" + examples);
  sub->callback([&ctx, action = std::move(action)] { ctx.action = action; });
  return sub;
}

void print_json(const nlohmann::ordered_json& doc) { std::cout << doc.dump(2) << "\n"; }

std::string cell(const nlohmann::ordered_json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  if (v.is_number_float()) {
    std::string s = nlohmann::ordered_json(v).dump();
    return s;
  }
  return v.dump();
}

void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  auto line = [&](const std::vector<std::string>& cols) {
    std::string out;
    for (std::size_t i = 0; i < cols.size(); ++i) {
      out += cols[i];
      if (i + 1 < cols.size()) out += std::string(width[i] - cols[i].size() + 2, ' ');
    }
    std::cout << out << "\n";
  };
  line(header);
  for (const auto& row : rows) line(row);
}

void print_fields(const nlohmann::ordered_json& obj) {
  std::size_t width = 0;
  for (auto it = obj.begin(); it != obj.end(); ++it) width = std::max(width, it.key().size());
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    std::string value;
    if (it.value().is_object() || it.value().is_array()) {
      value = it.value().empty() ? "-" : it.value().dump();
    } else {
      value = cell(it.value());
    }
    std::cout << it.key() << ":" << std::string(width - it.key().size() + 1, ' ') << value << "\n";
  }
}

void note(const std::string& line) { std::cerr << line << "\n"; }

}  // namespace llmproxy::cli
