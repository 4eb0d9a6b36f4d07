#include "storage/mappers.h"

#include "storage/secrets.h"

namespace llmproxy::storage {

const Table kConnections{
    "connections",
    {"id", "name", "provider", "endpoint", "api_version", "region", "access_key_id", "secrets",
     "timeout_ms", "options", "created_at", "updated_at"}};
const Table kModels{
    "models",
    {"id", "name", "remote", "conn_id", "input_price", "output_price", "created_at", "updated_at"}};
const Table kVkeys{"vkeys",
                   {"id", "name", "key_hash", "key_hint", "enabled", "expires_at", "token_limit",
                    "token_window", "budget", "budget_window", "created_at", "updated_at"}};
const Table kAssignments{"assignments",
                         {"id", "vkey_id", "conn_id", "model_id", "plan_id", "tps", "rpm", "rph",
                          "rpd", "token_limit", "token_window", "budget", "budget_window",
                          "max_parallel", "reserve_tokens", "created_at", "updated_at"}};
const Table kPlans{
    "plans",
    {"id", "name", "tps", "rpm", "rph", "rpd", "token_limit", "token_window", "budget",
     "budget_window", "max_parallel", "reserve_tokens", "created_at", "updated_at"}};
const Table kAdminUsers{"admin_users",
                        {"id", "username", "role", "password_hash", "created_at", "updated_at"}};
const Table kUsageRecords{
    "usage_records",
    {"id", "ts", "request_id", "vkey_id", "vkey_name", "assignment_id", "model", "conn_id",
     "conn_name", "status", "latency_ms", "ttft_ms", "prompt_tokens", "completion_tokens", "cost"}};

namespace {

// A window as stored: its public spelling. A row written before the column
// existed (MongoDB documents have no column defaults) reads as `fallback`,
// the type's default.
std::string window_text(TokenWindow w) {
  return std::string(to_string(w));
}
TokenWindow read_window(const FieldReader& r, const char* column, TokenWindow fallback) {
  return parse_token_window(r.text(column)).value_or(fallback);
}

// Limits are the same columns on assignments and plans.
void add_limits(Fields& f, const Limits& l) {
  f.opt_real("tps", l.tps)
      .opt_i64("rpm", l.rpm)
      .opt_i64("rph", l.rph)
      .opt_i64("rpd", l.rpd)
      .opt_i64("token_limit", l.token_limit)
      .text("token_window", window_text(l.token_window))
      .opt_real("budget", l.budget)
      .text("budget_window", window_text(l.budget_window))
      .opt_i64("max_parallel", l.max_parallel)
      .opt_i64("reserve_tokens", l.reserve_tokens);
}

Limits read_limits(const FieldReader& r) {
  Limits l;
  l.tps = r.opt_real("tps");
  l.rpm = r.opt_i64("rpm");
  l.rph = r.opt_i64("rph");
  l.rpd = r.opt_i64("rpd");
  l.token_limit = r.opt_i64("token_limit");
  l.token_window = read_window(r, "token_window", l.token_window);
  l.budget = r.opt_real("budget");
  l.budget_window = read_window(r, "budget_window", l.budget_window);
  l.max_parallel = r.opt_i64("max_parallel");
  l.reserve_tokens = r.opt_i64("reserve_tokens");
  return l;
}

}  // namespace

Fields connection_fields(const Connection& c, const crypto::SecretBox& box) {
  Fields f;
  f.text("name", c.name)
      .text("provider", std::string(to_string(c.provider)))
      .text("endpoint", c.endpoint)
      .text("api_version", c.api_version)
      .text("region", c.region)
      .text("access_key_id", c.access_key_id)
      .text("secrets", seal_connection_secrets(box, c))
      .i64("timeout_ms", c.timeout_ms)
      .text("options", c.options);
  return f;
}

Connection read_connection(const FieldReader& r, const crypto::SecretBox& box) {
  Connection c;
  c.id = r.i64("id");
  c.name = r.text("name");
  std::string provider = r.text("provider");
  auto parsed = parse_provider(provider);
  if (!parsed) throw storage_error("connection '" + c.name + "' has unknown provider " + provider);
  c.provider = *parsed;
  c.endpoint = r.text("endpoint");
  c.api_version = r.text("api_version");
  c.region = r.text("region");
  c.access_key_id = r.text("access_key_id");
  c.timeout_ms = r.i64("timeout_ms");
  c.options = r.text("options");
  c.created_at = r.i64("created_at");
  c.updated_at = r.i64("updated_at");
  open_connection_secrets(box, r.text("secrets"), c);
  return c;
}

Fields model_fields(const ProviderModel& m) {
  Fields f;
  f.text("name", m.name)
      .text("remote", m.remote)
      .i64("conn_id", m.conn_id)
      .opt_real("input_price", m.input_price)
      .opt_real("output_price", m.output_price);
  return f;
}

ProviderModel read_model(const FieldReader& r) {
  ProviderModel m;
  m.id = r.i64("id");
  m.name = r.text("name");
  m.remote = r.text("remote");
  m.conn_id = r.i64("conn_id");
  m.input_price = r.opt_real("input_price");
  m.output_price = r.opt_real("output_price");
  m.created_at = r.i64("created_at");
  m.updated_at = r.i64("updated_at");
  return m;
}

Fields vkey_fields(const VirtualKey& k) {
  Fields f;
  f.text("name", k.name)
      .text("key_hash", k.key_hash)
      .text("key_hint", k.key_hint)
      .boolean("enabled", k.enabled)
      .opt_i64("expires_at", k.expires_at)
      .opt_i64("token_limit", k.limits.token_limit)
      .text("token_window", window_text(k.limits.token_window))
      .opt_real("budget", k.limits.budget)
      .text("budget_window", window_text(k.limits.budget_window));
  return f;
}

VirtualKey read_vkey(const FieldReader& r) {
  VirtualKey k;
  k.id = r.i64("id");
  k.name = r.text("name");
  k.key_hash = r.text("key_hash");
  k.key_hint = r.text("key_hint");
  k.enabled = r.boolean("enabled");
  k.expires_at = r.opt_i64("expires_at");
  k.limits.token_limit = r.opt_i64("token_limit");
  k.limits.token_window = read_window(r, "token_window", k.limits.token_window);
  k.limits.budget = r.opt_real("budget");
  k.limits.budget_window = read_window(r, "budget_window", k.limits.budget_window);
  k.created_at = r.i64("created_at");
  k.updated_at = r.i64("updated_at");
  return k;
}

Fields assignment_fields(const Assignment& a) {
  Fields f;
  f.i64("vkey_id", a.vkey_id)
      .opt_i64("conn_id", a.conn_id)
      .opt_i64("model_id", a.model_id)
      .opt_i64("plan_id", a.plan_id);
  add_limits(f, a.limits);
  return f;
}

Assignment read_assignment(const FieldReader& r) {
  Assignment a;
  a.id = r.i64("id");
  a.vkey_id = r.i64("vkey_id");
  a.conn_id = r.opt_i64("conn_id");
  a.model_id = r.opt_i64("model_id");
  a.plan_id = r.opt_i64("plan_id");
  a.limits = read_limits(r);
  a.created_at = r.i64("created_at");
  a.updated_at = r.i64("updated_at");
  return a;
}

Fields plan_fields(const Plan& p) {
  Fields f;
  f.text("name", p.name);
  add_limits(f, p.limits);
  return f;
}

Plan read_plan(const FieldReader& r) {
  Plan p;
  p.id = r.i64("id");
  p.name = r.text("name");
  p.limits = read_limits(r);
  p.created_at = r.i64("created_at");
  p.updated_at = r.i64("updated_at");
  return p;
}

Fields admin_user_fields(const AdminUser& u) {
  Fields f;
  f.text("username", u.username)
      .text("role", std::string(to_string(u.role)))
      .text("password_hash", u.password_hash);
  return f;
}

AdminUser read_admin_user(const FieldReader& r) {
  AdminUser u;
  u.id = r.i64("id");
  u.username = r.text("username");
  std::string role = r.text("role");
  auto parsed = parse_admin_role(role);
  if (!parsed) throw storage_error("admin user '" + u.username + "' has unknown role " + role);
  u.role = *parsed;
  u.password_hash = r.text("password_hash");
  u.created_at = r.i64("created_at");
  u.updated_at = r.i64("updated_at");
  return u;
}

Fields usage_fields(const UsageRecord& u) {
  Fields f;
  f.i64("ts", u.ts)
      .text("request_id", u.request_id)
      .opt_i64("vkey_id", u.vkey_id)
      .text("vkey_name", u.vkey_name)
      .opt_i64("assignment_id", u.assignment_id)
      .text("model", u.model)
      .opt_i64("conn_id", u.conn_id)
      .text("conn_name", u.conn_name)
      .i64("status", u.status)
      .real("latency_ms", u.latency_ms)
      .opt_real("ttft_ms", u.ttft_ms)
      .i64("prompt_tokens", u.prompt_tokens)
      .i64("completion_tokens", u.completion_tokens)
      .real("cost", u.cost);
  return f;
}

UsageRecord read_usage(const FieldReader& r) {
  UsageRecord u;
  u.id = r.i64("id");
  u.ts = r.i64("ts");
  u.request_id = r.text("request_id");
  u.vkey_id = r.opt_i64("vkey_id");
  u.vkey_name = r.text("vkey_name");
  u.assignment_id = r.opt_i64("assignment_id");
  u.model = r.text("model");
  u.conn_id = r.opt_i64("conn_id");
  u.conn_name = r.text("conn_name");
  u.status = static_cast<int>(r.i64("status"));
  u.latency_ms = r.real("latency_ms");
  u.ttft_ms = r.opt_real("ttft_ms");
  u.prompt_tokens = r.i64("prompt_tokens");
  u.completion_tokens = r.i64("completion_tokens");
  u.cost = r.real("cost");
  return u;
}

}  // namespace llmproxy::storage
