// vkey add | update | enable | disable | rotate | remove | show | list,
// assignment add | update | remove | list
#include <algorithm>

#include "lib/crypto/hash.h"
#include "lib/domain/error.h"
#include "lib/domain/json.h"
#include "lib/domain/time.h"
#include "lib/ops/ops.h"
#include "lib/ops/resolve.h"
#include "lib/ops/validate.h"

namespace llmproxy::ops {
namespace {

constexpr std::int64_t kDayMs = 86'400'000;

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

void apply_limits(Limits& l, const LimitsSpec& s) {
  // 0 means "no limit", so a limit can be removed again with update.
  if (s.tps) {
    check_non_negative("--tps", *s.tps);
    l.tps = *s.tps > 0 ? std::optional(*s.tps) : std::nullopt;
  }
  auto count = [](const char* flag, const std::optional<std::int64_t>& given,
                  std::optional<std::int64_t>& field) {
    if (!given) return;
    if (*given < 0) throw invalid(std::string(flag) + " must be >= 0");
    field = *given > 0 ? given : std::nullopt;
  };
  count("--rpm", s.rpm, l.rpm);
  count("--token-limit", s.token_limit, l.token_limit);
  if (s.token_window) {
    auto w = parse_token_window(*s.token_window);
    if (!w)
      throw invalid("--token-window must be minute, hour, day, month or total, not '" +
                    *s.token_window + "'");
    l.token_window = *w;
  }
}

// An assignment of the target with the limits, for a key yet to be named:
// resolved and validated, nothing written.
Assignment plan_assignment(Store& store, const Target& target, const LimitsSpec& limits) {
  if (target.conn.has_value() == target.model.has_value())
    throw invalid("an assignment needs exactly one of --conn-id and --model-id");
  Assignment a;
  if (target.conn) a.conn_id = resolve_connection(store, *target.conn).id;
  if (target.model) a.model_id = resolve_model(store, *target.model).id;
  apply_limits(a.limits, limits);
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
  Assignment a = plan_assignment(store, target, limits);
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
      Assignment a = plan_assignment(store, t, spec.limits);
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

nlohmann::ordered_json vkey_json(const VkeyView& v) {
  nlohmann::ordered_json j = to_json(v.vkey);
  if (!v.key.empty()) j["key"] = v.key;
  nlohmann::ordered_json grants = nlohmann::ordered_json::array();
  for (const auto& a : v.assignments) grants.push_back(to_json(a));
  j["assignments"] = grants;
  return j;
}

}  // namespace llmproxy::ops
