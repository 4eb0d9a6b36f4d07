// Domain objects shared by the control plane (CLI, admin API), the storage
// backends and the data plane. Plain values: no behaviour beyond small helpers,
// no storage or wire concerns. Times are Unix epoch milliseconds (UTC).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llmproxy {

using Id = std::int64_t;
using TimeMs = std::int64_t;

// Provider types a connection can have. The string form is the public spelling
// used by `--provider` and in JSON.
enum class Provider {
  kOpenAI,
  kAzure,
  kAnthropic,
  kGoogle,
  kBedrock,
  kOllama,
  kVllm,
  kLlamaCpp,
  kOpenAICompatible,
  kMock,
  kTemplate,  // an in-house API described by a JSON template (options.template)
};

std::string_view to_string(Provider p);
std::optional<Provider> parse_provider(std::string_view s);
// Every accepted spelling, comma separated, for error messages and --help.
std::string provider_names();

enum class TokenWindow { kMinute, kHour, kDay, kMonth, kTotal };

std::string_view to_string(TokenWindow w);
std::optional<TokenWindow> parse_token_window(std::string_view s);

using Header = std::pair<std::string, std::string>;

// A real provider endpoint. Secret fields (api_key, secret_access_key,
// session_token, header values) are plaintext in memory and encrypted at rest
// by the storage layer.
struct Connection {
  Id id = 0;
  std::string name;
  Provider provider = Provider::kOpenAI;
  std::string endpoint;  // base URL; empty only for `mock`
  std::string api_key;
  std::string api_version;        // Azure
  std::string region;             // Bedrock
  std::string access_key_id;      // Bedrock
  std::string secret_access_key;  // Bedrock
  std::string session_token;      // Bedrock, optional
  std::vector<Header> headers;    // extra headers sent upstream
  std::string options = "{}";     // provider-specific settings, a JSON object
  std::int64_t timeout_ms = 600'000;
  TimeMs created_at = 0;
  TimeMs updated_at = 0;

  bool operator==(const Connection&) const = default;
};

// A client-facing alias for a model that lives on a connection.
struct ProviderModel {
  Id id = 0;
  std::string name;    // alias clients send as `model`
  std::string remote;  // model name the provider knows
  Id conn_id = 0;
  std::optional<double> input_price;   // USD per million prompt tokens
  std::optional<double> output_price;  // USD per million completion tokens
  TimeMs created_at = 0;
  TimeMs updated_at = 0;

  bool operator==(const ProviderModel&) const = default;
};

// Limits that apply to one assignment, or that a plan gives its assignments.
// Unset means unlimited (on an assignment with a plan: the plan's value).
// Request, token and budget windows are calendar windows in UTC.
struct Limits {
  std::optional<double> tps;  // requests per second (token bucket, burst = 1 s)
  std::optional<std::int64_t> rpm;  // requests per minute (token bucket, burst = rpm)
  std::optional<std::int64_t> rph;  // requests per calendar hour
  std::optional<std::int64_t> rpd;  // requests per calendar day
  std::optional<std::int64_t> token_limit;  // prompt + completion tokens per token_window
  TokenWindow token_window = TokenWindow::kDay;
  std::optional<double> budget;  // USD per budget_window, priced with the model's prices
  TokenWindow budget_window = TokenWindow::kMonth;
  std::optional<std::int64_t> max_parallel;  // requests in flight (streams until they end)
  // Completion tokens reserved at admission when the client sets no cap
  // (max_tokens & co.); unset: serve --default-completion-reserve.
  std::optional<std::int64_t> reserve_tokens;

  bool operator==(const Limits&) const = default;
};

// Limits of a whole key, across all its assignments (a team's spend cap).
struct KeyLimits {
  std::optional<std::int64_t> token_limit;
  TokenWindow token_window = TokenWindow::kDay;
  std::optional<double> budget;  // USD
  TokenWindow budget_window = TokenWindow::kMonth;

  bool operator==(const KeyLimits&) const = default;
};

// A named set of limits (a tier: free, standard, premium) that assignments
// refer to; an assignment's own limits override its plan's, field by field.
struct Plan {
  Id id = 0;
  std::string name;
  Limits limits;
  TimeMs created_at = 0;
  TimeMs updated_at = 0;

  bool operator==(const Plan&) const = default;
};

// The limits that apply: the assignment's own where set, else its plan's. A
// window goes with its limit (token_window with token_limit, budget_window
// with budget).
Limits effective_limits(const Limits& own, const Limits* plan);

// What a client presents as its API key. Only the SHA-256 of the key is kept;
// key_hint is a short, non-secret reminder ("sk-Ab…wxyz").
struct VirtualKey {
  Id id = 0;
  std::string name;
  std::string key_hash;  // lowercase hex SHA-256 of the key
  std::string key_hint;
  bool enabled = true;
  std::optional<TimeMs> expires_at;
  KeyLimits limits;
  TimeMs created_at = 0;
  TimeMs updated_at = 0;

  bool operator==(const VirtualKey&) const = default;
};

// Who may use the admin API and dashboard besides the master key holder.
enum class AdminRole { kAdmin, kViewer };  // kViewer: read-only

std::string_view to_string(AdminRole r);
std::optional<AdminRole> parse_admin_role(std::string_view s);

// A person who signs in to the admin API / dashboard. Only a slow salted hash
// of the password is kept (lib/crypto/password.h).
struct AdminUser {
  Id id = 0;
  std::string username;
  AdminRole role = AdminRole::kAdmin;
  std::string password_hash;  // "pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>"
  TimeMs created_at = 0;
  TimeMs updated_at = 0;

  bool operator==(const AdminUser&) const = default;
};

// Grants a virtual key the use of a whole connection or one model.
// Exactly one of conn_id and model_id is set.
struct Assignment {
  Id id = 0;
  Id vkey_id = 0;
  std::optional<Id> conn_id;
  std::optional<Id> model_id;
  std::optional<Id> plan_id;
  Limits limits;  // its own, as stored (see effective_limits)
  TimeMs created_at = 0;
  TimeMs updated_at = 0;

  bool operator==(const Assignment&) const = default;
};

// One proxied request. Names are copied in so that records stay readable after
// the key or connection they name is removed.
struct UsageRecord {
  Id id = 0;
  TimeMs ts = 0;
  std::string request_id;
  std::optional<Id> vkey_id;  // unset for the master key
  std::string vkey_name;
  std::optional<Id> assignment_id;
  std::string model;  // alias the client asked for
  std::optional<Id> conn_id;
  std::string conn_name;
  int status = 0;
  double latency_ms = 0;
  std::optional<double> ttft_ms;  // time to first byte of the reply body
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  double cost = 0;  // USD

  bool operator==(const UsageRecord&) const = default;
};

// Everything serve needs, read in one consistent view.
struct ConfigData {
  std::int64_t version = 0;
  std::vector<Connection> connections;
  std::vector<ProviderModel> models;
  std::vector<VirtualKey> vkeys;
  std::vector<Assignment> assignments;
  std::vector<Plan> plans;
};

}  // namespace llmproxy
