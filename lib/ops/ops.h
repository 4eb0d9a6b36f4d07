// Control-plane operations: the one code path behind the CLI and the admin API.
// Each operation validates its input, resolves references (an id or a name),
// and runs as one storage transaction, so bad input changes nothing. Failures
// throw llmproxy::Error whose kind decides the exit code / HTTP status.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/domain/types.h"
#include "storage/store.h"

namespace llmproxy::ops {

using storage::Store;

// ---- connections ---------------------------------------------------------------

// Fields given on `connection add|update`; unset means "not given".
struct ConnectionSpec {
  std::optional<std::string> name;
  std::optional<std::string> provider;
  std::optional<std::string> endpoint;
  std::optional<std::string> api_key;
  std::optional<std::string> api_version;
  std::optional<std::string> region;
  std::optional<std::string> access_key_id;
  std::optional<std::string> secret_access_key;
  std::optional<std::string> session_token;
  std::optional<std::vector<std::string>> headers;  // "Name: value"; replaces all
  std::optional<double> timeout_s;
  // `template` connections: the template as JSON text (README "In-house APIs").
  std::optional<std::string> template_json;
};

Connection create_connection(Store& store, const ConnectionSpec& spec);
Connection update_connection(Store& store, std::string_view ref, const ConnectionSpec& spec);
// Refuses (kConflict) while models or assignments use it, unless force.
void remove_connection(Store& store, std::string_view ref, bool force);
Connection get_connection(Store& store, std::string_view ref);
std::vector<Connection> list_connections(Store& store);

// ---- provider models -----------------------------------------------------------

struct ModelSpec {
  std::optional<std::string> name;
  std::optional<std::string> remote;
  std::optional<std::string> conn;    // id or name
  std::optional<double> input_price;  // negative never valid; NaN never given
  std::optional<double> output_price;
};

ProviderModel create_model(Store& store, const ModelSpec& spec);
ProviderModel update_model(Store& store, std::string_view ref, const ModelSpec& spec);
void remove_model(Store& store, std::string_view ref, bool force);
ProviderModel get_model(Store& store, std::string_view ref);
std::vector<ProviderModel> list_models(Store& store, const std::optional<std::string>& conn);

// ---- virtual keys and assignments ----------------------------------------------

// Limits as given on the command line (or the admin API). Counts and USD
// amounts must be >= 0; 0 means "no limit", so on update it removes one (on an
// assignment with a plan, the plan's value then applies again). Windows are
// minute, hour, day, month or total.
struct LimitsSpec {
  std::optional<double> tps;
  std::optional<std::int64_t> rpm;
  std::optional<std::int64_t> rph;
  std::optional<std::int64_t> rpd;
  std::optional<std::int64_t> token_limit;
  std::optional<std::string> token_window;
  std::optional<double> budget;  // USD
  std::optional<std::string> budget_window;
  std::optional<std::int64_t> max_parallel;
  std::optional<std::int64_t> reserve_tokens;
  // Assignments only: the plan (id or name); "none" detaches on update.
  std::optional<std::string> plan;

  bool any() const {
    return tps || rpm || rph || rpd || token_limit || token_window || budget || budget_window ||
           max_parallel || reserve_tokens || plan;
  }
};

// What an assignment grants: exactly one of conn and model (id or name).
struct Target {
  std::optional<std::string> conn;
  std::optional<std::string> model;
};

struct VkeySpec {
  std::optional<std::string> name;
  std::optional<std::string> key;      // given by the operator; generated when unset
  std::optional<std::string> expires;  // date/time; "never" clears on update
  std::vector<Target> targets;
  LimitsSpec limits;  // applied to every target
  // Limits of the whole key, across its assignments (same rules as LimitsSpec).
  std::optional<std::int64_t> key_token_limit;
  std::optional<std::string> key_token_window;
  std::optional<double> key_budget;  // USD
  std::optional<std::string> key_budget_window;

  bool any_key_limit() const {
    return key_token_limit || key_token_window || key_budget || key_budget_window;
  }
};

struct VkeyView {
  VirtualKey vkey;
  std::vector<Assignment> assignments;
  std::string key;  // the plaintext key: set only by create and rotate
};

// Generates "sk-" + 43 base64url characters (32 random bytes).
std::string generate_key();
// Short non-secret reminder of a key: a few leading and trailing characters.
std::string key_hint(std::string_view key);

// The limit fields of a limit set, as assignments and plans show them: tps,
// rpm, rph, rpd, token_limit, token_window, budget, budget_window,
// max_parallel, reserve_tokens (null where unset).
nlohmann::ordered_json limits_json(const Limits& l);

// Every plan by id: what assignment JSON needs to name an assignment's plan
// and show the limits that apply.
using PlanIndex = std::map<Id, Plan>;
PlanIndex plan_index(Store& store);

// The CLI's --json and the admin API's shape of an assignment: its own limits
// as stored, "plan" (the plan's name or null) and "effective" (own limits over
// the plan's: what serve enforces).
nlohmann::ordered_json assignment_json(const Assignment& a, const PlanIndex& plans);
// A JSON array of assignments.
nlohmann::ordered_json assignments_json(Store& store, const std::vector<Assignment>& list);

// The CLI's --json and the admin API's shape of a key with its key-wide
// limits and its assignments ("key" only right after create or rotate).
nlohmann::ordered_json vkey_json(const VkeyView& v, const PlanIndex& plans);

VkeyView create_vkey(Store& store, const VkeySpec& spec);
VkeyView update_vkey(Store& store, std::string_view ref, const VkeySpec& spec);
VkeyView set_vkey_enabled(Store& store, std::string_view ref, bool enabled);
VkeyView rotate_vkey(Store& store, std::string_view ref, const std::optional<std::string>& key);
void remove_vkey(Store& store, std::string_view ref);
VkeyView get_vkey(Store& store, std::string_view ref);
std::vector<VkeyView> list_vkeys(Store& store);

Assignment create_assignment(Store& store, std::string_view vkey_ref, const Target& target,
                             const LimitsSpec& limits);
Assignment update_assignment(Store& store, std::string_view id, const LimitsSpec& limits);
void remove_assignment(Store& store, std::string_view id);
std::vector<Assignment> list_assignments(Store& store, const std::optional<std::string>& vkey_ref);

// ---- plans -----------------------------------------------------------------------
// Named limit sets that assignments refer to (`--plan`); an assignment's own
// limits override its plan's, field by field (effective_limits).

struct PlanSpec {
  std::optional<std::string> name;
  LimitsSpec limits;  // `plan` must be unset: plans do not nest
};

struct PlanView {
  Plan plan;
  std::size_t assignments = 0;  // how many assignments use it
};

PlanView create_plan(Store& store, const PlanSpec& spec);
PlanView update_plan(Store& store, std::string_view ref, const PlanSpec& spec);
// Refuses (kConflict) while assignments use it, unless force: then they are
// detached and keep only their own limits.
void remove_plan(Store& store, std::string_view ref, bool force);
PlanView get_plan(Store& store, std::string_view ref);
std::vector<PlanView> list_plans(Store& store);  // by name

// id, name, the limit fields (as on assignments), assignments, times.
nlohmann::ordered_json plan_json(const PlanView& p);

// ---- admin users -------------------------------------------------------------------
// People who sign in to the admin API / dashboard. Only a PBKDF2 hash of the
// password is stored (lib/crypto/password.h); nothing here returns it: every
// AdminUser an operation returns has an empty password_hash.

// Usernames: 1 to 64 characters of A-Z a-z 0-9 . _ @ -, compared exactly.
void check_admin_username(std::string_view username);
// Passwords: at least kMinAdminPasswordLength characters (UTF-8 code points),
// at most 1024 bytes.
inline constexpr std::size_t kMinAdminPasswordLength = 12;
void check_admin_password(std::string_view password);
// "admin" or "viewer"; kInvalid otherwise.
AdminRole parse_role(std::string_view text);

// kInvalid for a bad username or password, kConflict when the name is taken.
AdminUser add_admin_user(Store& store, std::string_view username, AdminRole role,
                         std::string_view password);
std::vector<AdminUser> list_admin_users(Store& store);  // by username
// Each throws kNotFound when no user has that name.
// Unless keep_an_admin is false, removing or demoting the last user with the
// admin role is refused (kConflict): through the admin API that would lock
// everyone out of it. The CLI passes false — it is the way back in.
void remove_admin_user(Store& store, std::string_view username, bool keep_an_admin = true);
AdminUser set_admin_password(Store& store, std::string_view username, std::string_view password);
AdminUser set_admin_role(Store& store, std::string_view username, AdminRole role,
                         bool keep_an_admin = true);

// The CLI's --json and the admin API's shape of a user: id, username, role,
// created_at, updated_at (never the hash).
nlohmann::ordered_json admin_user_json(const AdminUser& u);

// ---- usage -----------------------------------------------------------------------

struct UsageSpec {
  std::optional<std::string> vkey;   // id or name
  std::optional<std::string> since;  // date/time or "24h", "7d" back from now
  std::optional<std::string> until;
  std::optional<std::string> by;  // day|model|key|connection; unset lists records
  std::size_t limit = 100;
};

storage::UsageQuery usage_query(Store& store, const UsageSpec& spec);
std::optional<storage::UsageGroupBy> usage_group_by(const UsageSpec& spec);

// One dollar budget that applies, with what its current window has spent
// (the cost of the usage records since the window began).
struct BudgetStatus {
  enum class Scope { kAssignment, kKey };
  Scope scope = Scope::kAssignment;
  Id vkey_id = 0;
  std::string vkey_name;
  std::optional<Id> assignment_id;  // kAssignment only
  std::optional<Id> conn_id;
  std::optional<Id> model_id;
  std::optional<std::string> plan;  // set when the budget is the plan's
  double budget = 0;
  TokenWindow window = TokenWindow::kMonth;
  TimeMs window_start = 0;
  std::optional<TimeMs> window_end;  // unset for total
  double spent = 0;

  double remaining() const { return budget > spent ? budget - spent : 0; }
};

// Every budget of every key (or of one key: id or name): assignment budgets,
// own or from their plan, then the key-wide budget; keys by name.
std::vector<BudgetStatus> budget_status(Store& store, const std::optional<std::string>& vkey,
                                        TimeMs now);
nlohmann::ordered_json budget_json(const BudgetStatus& b);

}  // namespace llmproxy::ops
