// vkey add | update | enable | disable | rotate | remove | show | list,
// assignment add | update | remove | list: the keys and the limits they carry.
#include <algorithm>

#include "lib/crypto/hash.h"
#include "lib/domain/error.h"
#include "lib/domain/time.h"
#include "lib/ops/ops.h"
#include "lib/ops/resolve.h"
#include "lib/ops/validate.h"

namespace llmproxy::ops {
namespace {

constexpr std::int64_t kDayMs = 86'400'000;

template <class T>
nlohmann::ordered_json opt(const std::optional<T>& v) {
  return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
}

void check_key(std::string_view key) {
  if (key.size() < 8 || key.size() > 256) throw invalid("--key must be 8 to 256 characters long");
  for (unsigned char c : key)
    if (c <= ' ' || c >= 0x7f) throw invalid("--key must be printable ASCII without spaces");
}

// A bare date means "valid through that day": the key expires at its end.
std::optional<TimeMs> parse_expiry(std::string_view text) {
  if (text == "never" || text == "none") return std::nullopt;
  auto t = parse_time(text);
  if (!t)
    throw invalid("--expires '" + std::string(text) +
                  "' is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ) or 'never'");
  return text.size() == 10 ? *t + kDayMs : *t;
}

// 0 means "no limit", so a limit can be removed again with update.
void set_count(const char* flag, const std::optional<std::int64_t>& given,
               std::optional<std::int64_t>& field) {
  if (!given) return;
  if (*given < 0) throw invalid(std::string(flag) + " must be >= 0");
  field = *given > 0 ? given : std::nullopt;
}

void set_amount(const char* flag, const std::optional<double>& given,
                std::optional<double>& field) {
  if (!given) return;
  check_non_negative(flag, *given);
  field = *given > 0 ? given : std::nullopt;
}

void set_window(const char* flag, const std::optional<std::string>& given, TokenWindow& field) {
  if (!given) return;
  auto w = parse_token_window(*given);
  if (!w)
    throw invalid(std::string(flag) + " must be minute, hour, day, month or total, not '" + *given +
                  "'");
  field = *w;
}

}  // namespace

void apply_limits(Limits& l, const LimitsSpec& s) {
  set_amount("--tps", s.tps, l.tps);
  set_count("--rpm", s.rpm, l.rpm);
  set_count("--rph", s.rph, l.rph);
  set_count("--rpd", s.rpd, l.rpd);
  set_count("--token-limit", s.token_limit, l.token_limit);
  set_window("--token-window", s.token_window, l.token_window);
  set_amount("--budget", s.budget, l.budget);
  set_window("--budget-window", s.budget_window, l.budget_window);
  set_count("--max-parallel", s.max_parallel, l.max_parallel);
  set_count("--reserve-tokens", s.reserve_tokens, l.reserve_tokens);
}

namespace {

void apply_key_limits(KeyLimits& l, const VkeySpec& s) {
  set_count("--key-token-limit", s.key_token_limit, l.token_limit);
  set_window("--key-token-window", s.key_token_window, l.token_window);
  set_amount("--key-budget", s.key_budget, l.budget);
  set_window("--key-budget-window", s.key_budget_window, l.budget_window);
}

// "none" detaches the plan (a plan can never be named so).
void apply_plan(Store& store, std::optional<Id>& plan_id, const std::optional<std::string>& given) {
  if (!given) return;
  if (*given == "none")
    plan_id.reset();
  else
    plan_id = resolve_plan(store, *given).id;
}

// An assignment of the target with the limits, for a key yet to be named:
// resolved and validated, nothing written.
Assignment prepare_assignment(Store& store, const Target& target, const LimitsSpec& limits) {
  if (target.conn.has_value() == target.model.has_value())
    throw invalid("an assignment needs exactly one of --conn-id and --model-id");
  Assignment a;
  if (target.conn) a.conn_id = resolve_connection(store, *target.conn).id;
  if (target.model) a.model_id = resolve_model(store, *target.model).id;
  apply_limits(a.limits, limits);
  apply_plan(store, a.plan_id, limits.plan);
  return a;
}

void check_not_assigned(const std::vector<Assignment>& existing, const Assignment& a) {
  for (const Assignment& other : existing) {
    if (other.conn_id == a.conn_id && other.model_id == a.model_id)
      throw conflict(other.id ? "the key already has assignment " + std::to_string(other.id) +
                                    " for that " + (a.conn_id ? "connection" : "model") +
                                    "; change its limits with `assignment update`"
                              : std::string("the same ") + (a.conn_id ? "connection" : "model") +
                                    " is given twice");
  }
}

Assignment make_assignment(Store& store, Id vkey_id, const Target& target,
                           const LimitsSpec& limits) {
  Assignment a = prepare_assignment(store, target, limits);
  a.vkey_id = vkey_id;
  check_not_assigned(store.list_assignments(vkey_id), a);
  return a;
}

VkeyView view(Store& store, VirtualKey k, std::string key = {}) {
  VkeyView v{std::move(k), {}, std::move(key)};
  v.assignments = store.list_assignments(v.vkey.id);
  return v;
}

}  // namespace

std::string generate_key() {
  return "sk-" + crypto::base64url(crypto::random_bytes(32));
}

std::string key_hint(std::string_view key) {
  // Reveal at most a quarter of the key, never more than 7 + 4 characters.
  std::size_t tail = std::min<std::size_t>(4, key.size() / 8);
  std::size_t head = std::min<std::size_t>(7, key.size() / 4 - tail);
  return std::string(key.substr(0, head)) + "..." + std::string(key.substr(key.size() - tail));
}

VkeyView create_vkey(Store& store, const VkeySpec& spec) {
  if (!spec.name) throw invalid("--name is required");
  check_name("virtual key name", *spec.name, true, /*allow_space=*/true);
  if (spec.limits.any() && spec.targets.empty())
    throw invalid("limits apply to assignments: give --conn-id or --model-id too");
  std::string key = spec.key.value_or(generate_key());
  check_key(key);

  VirtualKey k;
  k.name = *spec.name;
  k.key_hash = crypto::sha256_hex(key);
  k.key_hint = key_hint(key);
  if (spec.expires) {
    k.expires_at = parse_expiry(*spec.expires);
    if (k.expires_at && *k.expires_at <= now_ms()) throw invalid("--expires is in the past");
  }
  apply_key_limits(k.limits, spec);
  VkeyView out;
  store.transaction([&] {
    if (store.find_vkey(k.name))
      throw conflict("a virtual key named '" + k.name + "' already exists");
    if (store.find_vkey_by_hash(k.key_hash)) throw conflict("that key is already in use");
    // Everything is resolved and checked before the first write, so bad input
    // writes nothing even on a store that can only undo a failed command
    // after the fact (MongoDB without transactions).
    std::vector<Assignment> planned;
    for (const Target& t : spec.targets) {
      Assignment a = prepare_assignment(store, t, spec.limits);
      check_not_assigned(planned, a);
      planned.push_back(a);
    }
    k.id = store.insert_vkey(k);
    for (Assignment& a : planned) {
      a.vkey_id = k.id;
      store.insert_assignment(a);
    }
    out = view(store, *store.get_vkey(k.id), key);
  });
  return out;
}

VkeyView update_vkey(Store& store, std::string_view ref, const VkeySpec& spec) {
  VkeyView out;
  store.transaction([&] {
    VirtualKey k = resolve_vkey(store, ref);
    if (spec.name) {
      check_name("virtual key name", *spec.name, true, true);
      if (auto other = store.find_vkey(*spec.name); other && other->id != k.id)
        throw conflict("a virtual key named '" + *spec.name + "' already exists");
      k.name = *spec.name;
    }
    if (spec.expires) k.expires_at = parse_expiry(*spec.expires);
    apply_key_limits(k.limits, spec);
    store.update_vkey(k);
    out = view(store, *store.get_vkey(k.id));
  });
  return out;
}

VkeyView set_vkey_enabled(Store& store, std::string_view ref, bool enabled) {
  VkeyView out;
  store.transaction([&] {
    VirtualKey k = resolve_vkey(store, ref);
    k.enabled = enabled;
    store.update_vkey(k);
    out = view(store, *store.get_vkey(k.id));
  });
  return out;
}

VkeyView rotate_vkey(Store& store, std::string_view ref, const std::optional<std::string>& given) {
  std::string key = given.value_or(generate_key());
  check_key(key);
  VkeyView out;
  store.transaction([&] {
    VirtualKey k = resolve_vkey(store, ref);
    std::string hash = crypto::sha256_hex(key);
    if (auto other = store.find_vkey_by_hash(hash)) throw conflict("that key is already in use");
    k.key_hash = hash;
    k.key_hint = key_hint(key);
    store.update_vkey(k);
    out = view(store, *store.get_vkey(k.id), key);
  });
  return out;
}

void remove_vkey(Store& store, std::string_view ref) {
  store.transaction([&] { store.delete_vkey(resolve_vkey(store, ref).id); });
}

VkeyView get_vkey(Store& store, std::string_view ref) {
  return view(store, resolve_vkey(store, ref));
}

std::vector<VkeyView> list_vkeys(Store& store) {
  std::vector<VkeyView> out;
  store.transaction([&] {
    std::vector<Assignment> all = store.list_assignments();
    for (VirtualKey& k : store.list_vkeys()) {
      VkeyView v{std::move(k), {}, {}};
      std::copy_if(all.begin(), all.end(), std::back_inserter(v.assignments),
                   [&](const Assignment& a) { return a.vkey_id == v.vkey.id; });
      out.push_back(std::move(v));
    }
  });
  return out;
}

Assignment create_assignment(Store& store, std::string_view vkey_ref, const Target& target,
                             const LimitsSpec& limits) {
  Assignment a;
  store.transaction([&] {
    Id vkey_id = resolve_vkey(store, vkey_ref).id;
    a = make_assignment(store, vkey_id, target, limits);
    a = *store.get_assignment(store.insert_assignment(a));
  });
  return a;
}

Assignment update_assignment(Store& store, std::string_view id, const LimitsSpec& limits) {
  Assignment a;
  store.transaction([&] {
    a = resolve_assignment(store, id);
    apply_limits(a.limits, limits);
    apply_plan(store, a.plan_id, limits.plan);
    store.update_assignment(a);
    a = *store.get_assignment(a.id);
  });
  return a;
}

void remove_assignment(Store& store, std::string_view id) {
  store.transaction([&] { store.delete_assignment(resolve_assignment(store, id).id); });
}

std::vector<Assignment> list_assignments(Store& store, const std::optional<std::string>& vkey_ref) {
  std::optional<Id> vkey_id;
  if (vkey_ref) vkey_id = resolve_vkey(store, *vkey_ref).id;
  return store.list_assignments(vkey_id);
}

nlohmann::ordered_json limits_json(const Limits& l) {
  return {
      {"tps", opt(l.tps)},
      {"rpm", opt(l.rpm)},
      {"rph", opt(l.rph)},
      {"rpd", opt(l.rpd)},
      {"token_limit", opt(l.token_limit)},
      {"token_window", to_string(l.token_window)},
      {"budget", opt(l.budget)},
      {"budget_window", to_string(l.budget_window)},
      {"max_parallel", opt(l.max_parallel)},
      {"reserve_tokens", opt(l.reserve_tokens)},
  };
}

PlanIndex plan_index(Store& store) {
  PlanIndex out;
  for (Plan& p : store.list_plans()) out.emplace(p.id, std::move(p));
  return out;
}

nlohmann::ordered_json assignment_json(const Assignment& a, const PlanIndex& plans) {
  const Plan* plan = nullptr;
  if (a.plan_id) {
    auto it = plans.find(*a.plan_id);
    if (it != plans.end()) plan = &it->second;
  }
  nlohmann::ordered_json j = {
      {"id", a.id},
      {"vkey_id", a.vkey_id},
      {"conn_id", opt(a.conn_id)},
      {"model_id", opt(a.model_id)},
      {"plan", plan ? nlohmann::ordered_json(plan->name) : nlohmann::ordered_json(nullptr)},
  };
  nlohmann::ordered_json own = limits_json(a.limits);
  for (const auto& [field, value] : own.items()) j[field] = value;
  j["effective"] = limits_json(effective_limits(a.limits, plan ? &plan->limits : nullptr));
  j["created_at"] = format_time(a.created_at);
  j["updated_at"] = format_time(a.updated_at);
  return j;
}

nlohmann::ordered_json assignments_json(Store& store, const std::vector<Assignment>& list) {
  PlanIndex plans = plan_index(store);
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  for (const Assignment& a : list) arr.push_back(assignment_json(a, plans));
  return arr;
}

nlohmann::ordered_json vkey_json(const VkeyView& v, const PlanIndex& plans) {
  const VirtualKey& k = v.vkey;
  nlohmann::ordered_json j = {
      {"id", k.id},
      {"name", k.name},
      {"key_hint", k.key_hint},
      {"enabled", k.enabled},
      {"expires", k.expires_at ? nlohmann::ordered_json(format_time(*k.expires_at))
                               : nlohmann::ordered_json(nullptr)},
      {"key_budget", opt(k.limits.budget)},
      {"key_budget_window", to_string(k.limits.budget_window)},
      {"key_token_limit", opt(k.limits.token_limit)},
      {"key_token_window", to_string(k.limits.token_window)},
      {"created_at", format_time(k.created_at)},
      {"updated_at", format_time(k.updated_at)},
  };
  if (!v.key.empty()) j["key"] = v.key;
  nlohmann::ordered_json grants = nlohmann::ordered_json::array();
  for (const auto& a : v.assignments) grants.push_back(assignment_json(a, plans));
  j["assignments"] = grants;
  return j;
}

}  // namespace llmproxy::ops
