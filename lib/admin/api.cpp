#include "lib/admin/api.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <vector>

#include "lib/crypto/hash.h"
#include "lib/crypto/password.h"
#include "lib/domain/error.h"
#include "lib/domain/json.h"
#include "lib/domain/time.h"
#include "lib/ops/ops.h"

namespace llmproxy::admin {
namespace {

using Json = nlohmann::ordered_json;

// A failure of the request itself (not of an operation), with its status.
struct HttpError {
  int status;
  std::string type;
  std::string message;
};

[[noreturn]] void fail(int status, std::string type, std::string message) {
  throw HttpError{status, std::move(type), std::move(message)};
}

std::vector<std::string> segments(std::string_view path) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    std::size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) out.emplace_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string url_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() &&
               std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::map<std::string, std::string> parse_query(std::string_view q) {
  std::map<std::string, std::string> out;
  std::size_t i = 0;
  while (!q.empty()) {
    std::size_t amp = q.find('&', i);
    if (amp == std::string_view::npos) amp = q.size();
    std::string_view kv = q.substr(i, amp - i);
    if (!kv.empty()) {
      std::size_t eq = kv.find('=');
      out[url_decode(kv.substr(0, eq))] =
          eq == std::string_view::npos ? "" : url_decode(kv.substr(eq + 1));
    }
    if (amp == q.size()) break;
    i = amp + 1;
  }
  return out;
}

// The request body as a JSON object whose fields are all known.
Json body_object(const ApiRequest& req, const std::vector<const char*>& known) {
  if (req.body.empty()) return Json::object();
  Json j = Json::parse(req.body, nullptr, false);
  if (j.is_discarded()) fail(400, "invalid_request", "the request body is not valid JSON");
  if (!j.is_object()) fail(400, "invalid_request", "the request body must be a JSON object");
  std::set<std::string> allowed(known.begin(), known.end());
  for (const auto& [key, value] : j.items()) {
    if (!allowed.count(key)) fail(400, "invalid_request", "unknown field '" + key + "'");
  }
  return j;
}

std::optional<std::string> text(const Json& j, const char* field) {
  if (!j.contains(field) || j[field].is_null()) return std::nullopt;
  if (!j[field].is_string())
    fail(400, "invalid_request", std::string("'") + field + "' must be a string");
  return j[field].get<std::string>();
}

// An id or a name: a number or a string.
std::optional<std::string> ref(const Json& j, const char* field) {
  if (!j.contains(field) || j[field].is_null()) return std::nullopt;
  if (j[field].is_number_integer()) return std::to_string(j[field].get<std::int64_t>());
  if (j[field].is_string()) return j[field].get<std::string>();
  fail(400, "invalid_request", std::string("'") + field + "' must be an id or a name");
}

std::vector<std::string> refs(const Json& j, const char* field) {
  std::vector<std::string> out;
  if (!j.contains(field) || j[field].is_null()) return out;
  if (!j[field].is_array()) {
    out.push_back(*ref(j, field));
    return out;
  }
  for (const Json& item : j[field]) {
    Json one = {{field, item}};
    out.push_back(*ref(one, field));
  }
  return out;
}

std::optional<double> number(const Json& j, const char* field) {
  if (!j.contains(field) || j[field].is_null()) return std::nullopt;
  if (!j[field].is_number())
    fail(400, "invalid_request", std::string("'") + field + "' must be a number");
  return j[field].get<double>();
}

std::optional<std::int64_t> integer(const Json& j, const char* field) {
  if (!j.contains(field) || j[field].is_null()) return std::nullopt;
  if (!j[field].is_number_integer())
    fail(400, "invalid_request", std::string("'") + field + "' must be an integer");
  return j[field].get<std::int64_t>();
}

bool flag(const std::map<std::string, std::string>& query, const char* name) {
  auto it = query.find(name);
  return it != query.end() && (it->second.empty() || it->second == "true" || it->second == "1");
}

std::optional<std::string> param(const std::map<std::string, std::string>& query,
                                 const char* name) {
  auto it = query.find(name);
  if (it == query.end() || it->second.empty()) return std::nullopt;
  return it->second;
}

// The fields of a limit set (LimitsSpec), as in the JSON of assignments and plans.
const std::vector<const char*> kLimitFields = {
    "tps",          "rpm",    "rph",           "rpd",          "token_limit",
    "token_window", "budget", "budget_window", "max_parallel", "reserve_tokens"};
// The key-wide limits (VkeySpec).
const std::vector<const char*> kKeyLimitFields = {"key_budget", "key_budget_window",
                                                  "key_token_limit", "key_token_window"};

std::vector<const char*> fields(std::vector<const char*> own,
                                std::initializer_list<const std::vector<const char*>*> more) {
  for (const auto* list : more) own.insert(own.end(), list->begin(), list->end());
  return own;
}

// Limits of an assignment or a plan; "plan" is read only where it is known
// (body_object refuses it elsewhere).
ops::LimitsSpec limits_of(const Json& j) {
  ops::LimitsSpec l;
  l.tps = number(j, "tps");
  l.rpm = integer(j, "rpm");
  l.rph = integer(j, "rph");
  l.rpd = integer(j, "rpd");
  l.token_limit = integer(j, "token_limit");
  l.token_window = text(j, "token_window");
  l.budget = number(j, "budget");
  l.budget_window = text(j, "budget_window");
  l.max_parallel = integer(j, "max_parallel");
  l.reserve_tokens = integer(j, "reserve_tokens");
  l.plan = ref(j, "plan");
  return l;
}

void key_limits_of(const Json& j, ops::VkeySpec& s) {
  s.key_budget = number(j, "key_budget");
  s.key_budget_window = text(j, "key_budget_window");
  s.key_token_limit = integer(j, "key_token_limit");
  s.key_token_window = text(j, "key_token_window");
}

ops::ConnectionSpec connection_spec(const ApiRequest& req) {
  Json j = body_object(
      req, {"name", "provider", "endpoint", "api_key", "api_version", "region", "access_key_id",
            "secret_access_key", "session_token", "headers", "timeout", "template"});
  ops::ConnectionSpec s;
  s.name = text(j, "name");
  s.provider = text(j, "provider");
  s.endpoint = text(j, "endpoint");
  s.api_key = text(j, "api_key");
  s.api_version = text(j, "api_version");
  s.region = text(j, "region");
  s.access_key_id = text(j, "access_key_id");
  s.secret_access_key = text(j, "secret_access_key");
  s.session_token = text(j, "session_token");
  s.timeout_s = number(j, "timeout");
  if (j.contains("headers") && !j["headers"].is_null()) {
    // {"Name": "value"} (the shape listings use) or ["Name: value", …] (the CLI's).
    std::vector<std::string> headers;
    const Json& h = j["headers"];
    if (h.is_object()) {
      for (const auto& [name, value] : h.items()) {
        if (!value.is_string()) fail(400, "invalid_request", "header values must be strings");
        headers.push_back(name + ": " + value.get<std::string>());
      }
    } else if (h.is_array()) {
      for (const Json& line : h) {
        if (!line.is_string())
          fail(400, "invalid_request", "headers must be 'Name: value' strings");
        headers.push_back(line.get<std::string>());
      }
    } else {
      fail(400, "invalid_request", "'headers' must be an object or an array");
    }
    s.headers = std::move(headers);
  }
  if (j.contains("template") && !j["template"].is_null())
    s.template_json =
        j["template"].is_string() ? j["template"].get<std::string>() : j["template"].dump();
  return s;
}

ops::ModelSpec model_spec(const ApiRequest& req) {
  Json j = body_object(req, {"name", "remote", "conn_id", "input_price", "output_price"});
  ops::ModelSpec s;
  s.name = text(j, "name");
  s.remote = text(j, "remote");
  s.conn = ref(j, "conn_id");
  s.input_price = number(j, "input_price");
  s.output_price = number(j, "output_price");
  return s;
}

template <class T>
Json array_of(const std::vector<T>& items) {
  Json arr = Json::array();
  for (const T& item : items) arr.push_back(to_json(item));
  return arr;
}

Json vkeys_json(storage::Store& store, const std::vector<ops::VkeyView>& views) {
  ops::PlanIndex plans = ops::plan_index(store);
  Json arr = Json::array();
  for (const auto& v : views) arr.push_back(ops::vkey_json(v, plans));
  return arr;
}

Json vkey_json(storage::Store& store, const ops::VkeyView& v) {
  return ops::vkey_json(v, ops::plan_index(store));
}

Json assignment_json(storage::Store& store, const Assignment& a) {
  return ops::assignment_json(a, ops::plan_index(store));
}

const Json kNoContent = nullptr;

ApiResponse ok(const Json& j, int status = 200) {
  if (status == 204) return {204, ""};
  return {status, j.dump()};
}

void require_admin(Role role, const std::string& method) {
  if (role != Role::kAdmin)
    fail(403, "forbidden", "the viewer role may only read (" + method + " needs the admin role)");
}

ApiResponse connections(storage::Store& store, const ApiRequest& req,
                        const std::vector<std::string>& seg,
                        const std::map<std::string, std::string>& query) {
  const std::string& m = req.method;
  if (seg.size() == 1) {
    if (m == "GET") return ok(array_of(ops::list_connections(store)));
    if (m == "POST") return ok(to_json(ops::create_connection(store, connection_spec(req))), 201);
  } else if (seg.size() == 2) {
    if (m == "GET") return ok(to_json(ops::get_connection(store, seg[1])));
    if (m == "PATCH" || m == "PUT")
      return ok(to_json(ops::update_connection(store, seg[1], connection_spec(req))));
    if (m == "DELETE") {
      ops::remove_connection(store, seg[1], flag(query, "force"));
      return ok(kNoContent, 204);
    }
  }
  fail(405, "invalid_request", m + " is not allowed here");
}

ApiResponse models(storage::Store& store, const ApiRequest& req,
                   const std::vector<std::string>& seg,
                   const std::map<std::string, std::string>& query) {
  const std::string& m = req.method;
  if (seg.size() == 1) {
    if (m == "GET") return ok(array_of(ops::list_models(store, param(query, "conn_id"))));
    if (m == "POST") return ok(to_json(ops::create_model(store, model_spec(req))), 201);
  } else if (seg.size() == 2) {
    if (m == "GET") return ok(to_json(ops::get_model(store, seg[1])));
    if (m == "PATCH" || m == "PUT")
      return ok(to_json(ops::update_model(store, seg[1], model_spec(req))));
    if (m == "DELETE") {
      ops::remove_model(store, seg[1], flag(query, "force"));
      return ok(kNoContent, 204);
    }
  }
  fail(405, "invalid_request", m + " is not allowed here");
}

ops::VkeySpec vkey_create_spec(const ApiRequest& req) {
  Json j = body_object(req, fields({"name", "key", "expires", "conn_id", "model_id", "plan"},
                                   {&kLimitFields, &kKeyLimitFields}));
  ops::VkeySpec s;
  s.name = text(j, "name");
  s.key = text(j, "key");
  s.expires = text(j, "expires");
  for (const auto& c : refs(j, "conn_id")) s.targets.push_back({c, std::nullopt});
  for (const auto& mo : refs(j, "model_id")) s.targets.push_back({std::nullopt, mo});
  s.limits = limits_of(j);
  key_limits_of(j, s);
  return s;
}

// PATCH: name, expiry and key-wide limits, and enabled, each only when given.
ApiResponse vkey_patch(storage::Store& store, const ApiRequest& req, const std::string& ref) {
  Json j = body_object(req, fields({"name", "expires", "enabled"}, {&kKeyLimitFields}));
  ops::VkeySpec s;
  s.name = text(j, "name");
  s.expires = text(j, "expires");
  key_limits_of(j, s);
  std::optional<bool> enabled;
  if (j.contains("enabled")) {
    if (!j["enabled"].is_boolean()) fail(400, "invalid_request", "'enabled' must be true or false");
    enabled = j["enabled"].get<bool>();
  }
  std::optional<ops::VkeyView> v;
  store.transaction([&] {
    if (s.name || s.expires || s.any_key_limit()) v = ops::update_vkey(store, ref, s);
    if (enabled) v = ops::set_vkey_enabled(store, ref, *enabled);
  });
  return ok(vkey_json(store, v ? *v : ops::get_vkey(store, ref)));
}

ApiResponse vkeys(storage::Store& store, const ApiRequest& req,
                  const std::vector<std::string>& seg) {
  const std::string& m = req.method;
  if (seg.size() == 1) {
    if (m == "GET") return ok(vkeys_json(store, ops::list_vkeys(store)));
    if (m == "POST")
      return ok(vkey_json(store, ops::create_vkey(store, vkey_create_spec(req))), 201);
  } else if (seg.size() == 2) {
    if (m == "GET") return ok(vkey_json(store, ops::get_vkey(store, seg[1])));
    if (m == "PATCH" || m == "PUT") return vkey_patch(store, req, seg[1]);
    if (m == "DELETE") {
      ops::remove_vkey(store, seg[1]);
      return ok(kNoContent, 204);
    }
  } else if (seg.size() == 3 && m == "POST") {
    if (seg[2] == "rotate") {
      Json j = body_object(req, {"key"});
      return ok(vkey_json(store, ops::rotate_vkey(store, seg[1], text(j, "key"))));
    }
    if (seg[2] == "enable" || seg[2] == "disable")
      return ok(vkey_json(store, ops::set_vkey_enabled(store, seg[1], seg[2] == "enable")));
  }
  fail(405, "invalid_request", m + " is not allowed here");
}

ApiResponse assignments(storage::Store& store, const ApiRequest& req,
                        const std::vector<std::string>& seg,
                        const std::map<std::string, std::string>& query) {
  const std::string& m = req.method;
  if (seg.size() == 1) {
    if (m == "GET")
      return ok(
          ops::assignments_json(store, ops::list_assignments(store, param(query, "vkey_id"))));
    if (m == "POST") {
      Json j =
          body_object(req, fields({"vkey_id", "conn_id", "model_id", "plan"}, {&kLimitFields}));
      std::optional<std::string> vkey = ref(j, "vkey_id");
      if (!vkey) fail(400, "invalid_request", "'vkey_id' is required");
      ops::Target t{ref(j, "conn_id"), ref(j, "model_id")};
      return ok(assignment_json(store, ops::create_assignment(store, *vkey, t, limits_of(j))), 201);
    }
  } else if (seg.size() == 2) {
    if (m == "PATCH" || m == "PUT") {
      Json j = body_object(req, fields({"plan"}, {&kLimitFields}));
      return ok(assignment_json(store, ops::update_assignment(store, seg[1], limits_of(j))));
    }
    if (m == "DELETE") {
      ops::remove_assignment(store, seg[1]);
      return ok(kNoContent, 204);
    }
  }
  fail(405, "invalid_request", m + " is not allowed here");
}

ops::PlanSpec plan_spec(const ApiRequest& req) {
  Json j = body_object(req, fields({"name"}, {&kLimitFields}));
  return {text(j, "name"), limits_of(j)};
}

Json plans_json(const std::vector<ops::PlanView>& views) {
  Json arr = Json::array();
  for (const auto& v : views) arr.push_back(ops::plan_json(v));
  return arr;
}

ApiResponse plans(storage::Store& store, const ApiRequest& req, const std::vector<std::string>& seg,
                  const std::map<std::string, std::string>& query) {
  const std::string& m = req.method;
  if (seg.size() == 1) {
    if (m == "GET") return ok(plans_json(ops::list_plans(store)));
    if (m == "POST") return ok(ops::plan_json(ops::create_plan(store, plan_spec(req))), 201);
  } else if (seg.size() == 2) {
    if (m == "GET") return ok(ops::plan_json(ops::get_plan(store, seg[1])));
    if (m == "PATCH" || m == "PUT")
      return ok(ops::plan_json(ops::update_plan(store, seg[1], plan_spec(req))));
    if (m == "DELETE") {
      ops::remove_plan(store, seg[1], flag(query, "force"));
      return ok(kNoContent, 204);
    }
  }
  fail(405, "invalid_request", m + " is not allowed here");
}

// Spend against every budget that applies (`?vkey_id=` for one key).
ApiResponse budgets(storage::Store& store, const ApiRequest& req,
                    const std::map<std::string, std::string>& query) {
  if (req.method != "GET") fail(405, "invalid_request", req.method + " is not allowed here");
  Json arr = Json::array();
  for (const auto& b : ops::budget_status(store, param(query, "vkey_id"), now_ms()))
    arr.push_back(ops::budget_json(b));
  return ok(arr);
}

ApiResponse usage(storage::Store& store, const ApiRequest& req,
                  const std::map<std::string, std::string>& query) {
  if (req.method != "GET") fail(405, "invalid_request", req.method + " is not allowed here");
  ops::UsageSpec spec;
  spec.vkey = param(query, "vkey_id");
  spec.since = param(query, "since");
  spec.until = param(query, "until");
  spec.by = param(query, "by");
  if (auto limit = param(query, "limit")) {
    char* end = nullptr;
    long n = std::strtol(limit->c_str(), &end, 10);
    if (*end || n < 0) fail(400, "invalid_request", "'limit' must be a whole number >= 0");
    spec.limit = static_cast<std::size_t>(n);
  }
  storage::UsageQuery q = ops::usage_query(store, spec);
  if (auto by = ops::usage_group_by(spec)) return ok(array_of(store.aggregate_usage(q, *by)));
  return ok(array_of(store.list_usage(q)));
}

// The slowest of the recent requests (the last 24 hours, newest 10,000).
ApiResponse slow(storage::Store& store, const ApiRequest& req,
                 const std::map<std::string, std::string>& query) {
  if (req.method != "GET") fail(405, "invalid_request", req.method + " is not allowed here");
  std::size_t limit = 5;
  if (auto l = param(query, "limit")) {
    char* end = nullptr;
    long n = std::strtol(l->c_str(), &end, 10);
    if (*end || n < 1 || n > 1000) fail(400, "invalid_request", "'limit' must be 1 to 1000");
    limit = static_cast<std::size_t>(n);
  }
  ops::UsageSpec spec;
  spec.since = param(query, "since").value_or("24h");
  spec.limit = 10'000;
  std::vector<UsageRecord> recent = store.list_usage(ops::usage_query(store, spec));
  std::size_t n = std::min(limit, recent.size());
  std::partial_sort(
      recent.begin(), recent.begin() + static_cast<long>(n), recent.end(),
      [](const UsageRecord& a, const UsageRecord& b) { return a.latency_ms > b.latency_ms; });
  recent.resize(n);
  return ok(array_of(recent));
}

ApiResponse users(storage::Store& store, const ApiRequest& req,
                  const std::vector<std::string>& seg) {
  const std::string& m = req.method;
  if (seg.size() == 1) {
    if (m == "GET") {
      Json out = Json::array();
      for (const AdminUser& u : ops::list_admin_users(store))
        out.push_back(ops::admin_user_json(u));
      return ok(out);
    }
    if (m == "POST") {
      Json j = body_object(req, {"username", "password", "role"});
      std::optional<std::string> username = text(j, "username");
      std::optional<std::string> password = text(j, "password");
      if (!username || !password)
        fail(400, "invalid_request", "'username' and 'password' are required");
      std::optional<std::string> role = text(j, "role");
      return ok(ops::admin_user_json(ops::add_admin_user(
                    store, *username, role ? ops::parse_role(*role) : Role::kAdmin, *password)),
                201);
    }
  } else if (seg.size() == 2) {
    if (m == "GET") {
      for (const AdminUser& u : ops::list_admin_users(store)) {
        if (u.username == seg[1]) return ok(ops::admin_user_json(u));
      }
      fail(404, "not_found", "admin user '" + seg[1] + "' not found");
    }
    if (m == "PATCH" || m == "PUT") {
      Json j = body_object(req, {"password", "role"});
      std::optional<std::string> password = text(j, "password");
      std::optional<std::string> role = text(j, "role");
      if (!password && !role)
        fail(400, "invalid_request", "nothing to change: give 'password' or 'role'");
      // Both checked before either is written: bad input changes nothing.
      if (password) ops::check_admin_password(*password);
      std::optional<Role> new_role;
      if (role) new_role = ops::parse_role(*role);
      std::optional<AdminUser> u;
      store.transaction([&] {
        if (password) u = ops::set_admin_password(store, seg[1], *password);
        if (new_role) u = ops::set_admin_role(store, seg[1], *new_role);
      });
      return ok(ops::admin_user_json(*u));
    }
    if (m == "DELETE") {
      ops::remove_admin_user(store, seg[1]);
      return ok(kNoContent, 204);
    }
  }
  fail(405, "invalid_request", m + " is not allowed here");
}

ApiResponse route(storage::Store& store, const ApiRequest& req, Role role) {
  std::vector<std::string> seg = segments(req.path);
  for (std::string& s : seg) s = url_decode(s);
  auto query = parse_query(req.query);
  if (req.method != "GET" && req.method != "HEAD") require_admin(role, req.method);
  if (seg.empty()) fail(404, "not_found", "unknown admin API path '" + req.path + "'");
  const std::string& what = seg[0];
  if (what == "connections") return connections(store, req, seg, query);
  if (what == "models") return models(store, req, seg, query);
  if (what == "vkeys") return vkeys(store, req, seg);
  if (what == "assignments") return assignments(store, req, seg, query);
  if (what == "plans") return plans(store, req, seg, query);
  if (what == "budgets" && seg.size() == 1) return budgets(store, req, query);
  if (what == "usage" && seg.size() == 1) return usage(store, req, query);
  if (what == "slow" && seg.size() == 1) return slow(store, req, query);
  if (what == "users") return users(store, req, seg);
  fail(404, "not_found", "unknown admin API path '" + req.path + "'");
}

}  // namespace

std::string error_body(std::string_view type, std::string_view message) {
  Json j = {{"error", {{"message", message}, {"type", type}}}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

// The operations' error kinds map to statuses as they map to the CLI's exit
// codes.
template <typename Fn>
ApiResponse guarded(Fn&& fn) {
  try {
    return fn();
  } catch (const HttpError& e) {
    return {e.status, error_body(e.type, e.message)};
  } catch (const Error& e) {
    switch (e.kind()) {
      case ErrorKind::kInvalid:
        return {400, error_body("invalid_request", e.what())};
      case ErrorKind::kNotFound:
        return {404, error_body("not_found", e.what())};
      case ErrorKind::kConflict:
        return {409, error_body("conflict", e.what())};
      default:
        return {503, error_body("storage_error", e.what())};
    }
  } catch (const std::exception& e) {
    return {500, error_body("internal_error", e.what())};
  }
}

ApiResponse unauthorized(std::string_view message) {
  return {401, error_body("unauthorized", message), {{"WWW-Authenticate", "Bearer"}}};
}

}  // namespace

ApiResponse handle(storage::Store& store, const ApiRequest& req, Role role) {
  return guarded([&] { return route(store, req, role); });
}

Api::Api(storage::Store& store, ApiOptions options)
    : store_(store),
      options_(std::move(options)),
      signer_(options_.token_key),
      throttle_(options_.throttle) {}

ApiResponse Api::handle(const ApiRequest& req) {
  return guarded([&]() -> ApiResponse {
    if (req.path == "/login") return login(req);
    ApiResponse refusal;
    std::optional<AdminUser> who = authenticate(req, refusal);
    if (!who) return refusal;
    if (req.path == "/me") {
      if (req.method != "GET") fail(405, "method_not_allowed", "use GET /admin/api/me");
      Json me = {{"username", who->username.empty() ? Json() : Json(who->username)},
                 {"role", to_string(who->role)}};
      return ok(me);
    }
    return route(store_, req, who->role);
  });
}

ApiResponse Api::login(const ApiRequest& req) {
  if (req.method != "POST") fail(405, "method_not_allowed", "use POST /admin/api/login");
  Json body = body_object(req, {"username", "password"});
  std::optional<std::string> username = text(body, "username");
  std::optional<std::string> password = text(body, "password");
  if (!username || !password) {
    fail(400, "invalid_request", "'username' and 'password' are required");
  }
  TimeMs now = now_ms();
  if (TimeMs wait = throttle_.wait_ms(req.client, *username, now); wait > 0) {
    std::int64_t seconds = (wait + 999) / 1000;
    return {429,
            error_body("rate_limited", "too many failed sign-in attempts; try again in " +
                                           std::to_string(seconds) + " s"),
            {{"Retry-After", std::to_string(seconds)}}};
  }
  std::optional<AdminUser> user = store_.find_admin_user(*username);
  bool good;
  if (user) {
    good = crypto::verify_password(*password, user->password_hash);
  } else {
    // As slow as a real check, so timing does not tell which users exist.
    if (dummy_hash_.empty()) dummy_hash_ = crypto::hash_password(crypto::random_bytes(16));
    crypto::verify_password(*password, dummy_hash_);
    good = false;
  }
  if (!good) {
    throttle_.record_failure(req.client, *username, now);
    return unauthorized("invalid username or password");
  }
  TimeMs issued = now_ms();  // after the slow check: never before the user's last change
  Json out = {{"token", signer_.issue(user->username, issued, options_.token_ttl)},
              {"token_type", "Bearer"},
              {"expires_at", format_time(issued / 1000 * 1000 + options_.token_ttl.count() * 1000)},
              {"expires_in", options_.token_ttl.count()},
              {"username", user->username},
              {"role", to_string(user->role)}};
  return ok(out);
}

std::optional<AdminUser> Api::authenticate(const ApiRequest& req, ApiResponse& refusal) {
  if (req.bearer.empty()) {
    refusal = unauthorized(
        options_.master_key.empty()
            ? "sign in first: POST /admin/api/login with an admin user's name and password "
              "(create one with `llm-proxy admin add` or `serve --init-admin`), then send "
              "Authorization: Bearer <token>"
            : "a valid admin token is required (Authorization: Bearer <master key or token "
              "from POST /admin/api/login>)");
    return std::nullopt;
  }
  if (!options_.master_key.empty() &&
      crypto::constant_time_equal(req.bearer, options_.master_key)) {
    AdminUser master;  // no username: the master key holder
    master.role = Role::kAdmin;
    return master;
  }
  if (TokenSigner::looks_like_token(req.bearer)) {
    std::optional<TokenClaims> claims = signer_.verify(req.bearer, now_ms());
    std::optional<AdminUser> user;
    if (claims) user = store_.find_admin_user(claims->username);
    // A token from before the user's last change (password, role) is void.
    if (user && user->updated_at <= claims->issued_at) return user;
    refusal = unauthorized("the token is invalid or has expired; sign in again");
    return std::nullopt;
  }
  refusal = unauthorized(options_.master_key.empty()
                             ? "invalid admin credentials: this server has no master key; sign in "
                               "with POST /admin/api/login as an admin user (create one with "
                               "`llm-proxy admin add` or `serve --init-admin`)"
                             : "invalid admin credentials");
  return std::nullopt;
}

}  // namespace llmproxy::admin
