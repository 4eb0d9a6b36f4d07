#include "lib/domain/types.h"

#include <array>

namespace llmproxy {
namespace {

constexpr std::array<std::pair<Provider, std::string_view>, 11> kProviders{{
    {Provider::kOpenAI, "openai"},
    {Provider::kAzure, "azure"},
    {Provider::kAnthropic, "anthropic"},
    {Provider::kGoogle, "google"},
    {Provider::kBedrock, "bedrock"},
    {Provider::kOllama, "ollama"},
    {Provider::kVllm, "vllm"},
    {Provider::kLlamaCpp, "llamacpp"},
    {Provider::kOpenAICompatible, "openai-compatible"},
    {Provider::kMock, "mock"},
    {Provider::kTemplate, "template"},
}};

constexpr std::array<std::pair<TokenWindow, std::string_view>, 5> kWindows{{
    {TokenWindow::kMinute, "minute"},
    {TokenWindow::kHour, "hour"},
    {TokenWindow::kDay, "day"},
    {TokenWindow::kMonth, "month"},
    {TokenWindow::kTotal, "total"},
}};

}  // namespace

std::string_view to_string(Provider p) {
  for (auto& [value, name] : kProviders)
    if (value == p) return name;
  return "unknown";
}

std::optional<Provider> parse_provider(std::string_view s) {
  for (auto& [value, name] : kProviders)
    if (name == s) return value;
  return std::nullopt;
}

std::string provider_names() {
  std::string out;
  for (auto& [value, name] : kProviders) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

std::string_view to_string(AdminRole r) { return r == AdminRole::kAdmin ? "admin" : "viewer"; }

std::optional<AdminRole> parse_admin_role(std::string_view s) {
  if (s == "admin") return AdminRole::kAdmin;
  if (s == "viewer") return AdminRole::kViewer;
  return std::nullopt;
}

std::string_view to_string(TokenWindow w) {
  for (auto& [value, name] : kWindows)
    if (value == w) return name;
  return "unknown";
}

std::optional<TokenWindow> parse_token_window(std::string_view s) {
  for (auto& [value, name] : kWindows)
    if (name == s) return value;
  return std::nullopt;
}

Limits effective_limits(const Limits& own, const Limits* plan) {
  if (!plan) return own;
  Limits l = own;
  auto inherit = [](auto& mine, const auto& theirs) {
    if (!mine) mine = theirs;
  };
  inherit(l.tps, plan->tps);
  inherit(l.rpm, plan->rpm);
  inherit(l.rph, plan->rph);
  inherit(l.rpd, plan->rpd);
  inherit(l.max_parallel, plan->max_parallel);
  inherit(l.reserve_tokens, plan->reserve_tokens);
  if (!own.token_limit) {
    l.token_limit = plan->token_limit;
    l.token_window = plan->token_window;
  }
  if (!own.budget) {
    l.budget = plan->budget;
    l.budget_window = plan->budget_window;
  }
  return l;
}

}  // namespace llmproxy
