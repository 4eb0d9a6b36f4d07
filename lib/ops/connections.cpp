// connection add | update | remove | show | list
#include <cmath>

#include "lib/domain/error.h"
#include "lib/ops/ops.h"
#include "lib/ops/resolve.h"
#include "lib/ops/validate.h"
#include "lib/providers/template/template_adapter.h"

namespace llmproxy::ops {
namespace {

// Endpoints the cloud providers publish, used when --endpoint is omitted.
std::string default_endpoint(const Connection& c) {
  switch (c.provider) {
    case Provider::kOpenAI: return "https://api.openai.com/v1";
    case Provider::kAnthropic: return "https://api.anthropic.com";
    case Provider::kGoogle: return "https://generativelanguage.googleapis.com";
    case Provider::kBedrock:
      return c.region.empty() ? "" : "https://bedrock-runtime." + c.region + ".amazonaws.com";
    default: return "";
  }
}

void apply(Connection& c, const ConnectionSpec& s) {
  if (s.name) c.name = *s.name;
  if (s.provider) {
    auto p = parse_provider(*s.provider);
    if (!p)
      throw invalid("unknown provider '" + *s.provider + "' (expected one of: " +
                    provider_names() + ")");
    c.provider = *p;
  }
  if (s.endpoint) c.endpoint = *s.endpoint;
  if (s.api_key) c.api_key = *s.api_key;
  if (s.api_version) c.api_version = *s.api_version;
  if (s.region) c.region = *s.region;
  if (s.access_key_id) c.access_key_id = *s.access_key_id;
  if (s.secret_access_key) c.secret_access_key = *s.secret_access_key;
  if (s.session_token) c.session_token = *s.session_token;
  if (s.headers) {
    c.headers.clear();
    for (const std::string& h : *s.headers) c.headers.push_back(parse_header(h));
  }
  if (s.template_json) {
    auto spec = providers::templated::Json::parse(*s.template_json, nullptr, false);
    if (spec.is_discarded()) throw invalid("--template is not valid JSON");
    if (auto why = providers::templated::check_template(spec); !why.empty())
      throw invalid("--template: " + why);
    c.options = providers::templated::Json{{"template", spec}}.dump();
  }
  if (s.timeout_s) {
    if (!std::isfinite(*s.timeout_s) || *s.timeout_s <= 0 || *s.timeout_s > 86400)
      throw invalid("--timeout must be between 0 and 86400 seconds");
    c.timeout_ms = std::max<std::int64_t>(1, std::llround(*s.timeout_s * 1000));
  }
}

void validate(Connection& c) {
  check_name("connection name", c.name, /*allow_slash=*/false);
  if (c.endpoint.empty()) c.endpoint = default_endpoint(c);
  if (c.provider == Provider::kMock) {
    if (!c.endpoint.empty()) check_url("--endpoint", c.endpoint);
    return;
  }
  if (c.provider == Provider::kBedrock) {
    if (c.region.empty()) throw invalid("a bedrock connection needs --region");
    if (c.access_key_id.empty() || c.secret_access_key.empty())
      throw invalid("a bedrock connection needs --access-key-id and --secret-access-key");
  }
  if (c.endpoint.empty())
    throw invalid("a " + std::string(to_string(c.provider)) + " connection needs --endpoint");
  check_url("--endpoint", c.endpoint);
  if (c.provider == Provider::kTemplate) {
    auto options = providers::templated::Json::parse(c.options, nullptr, false);
    if (!options.is_object() || !options.contains("template"))
      throw invalid("a template connection needs --template (see README, In-house APIs)");
  }
  if (c.provider == Provider::kAzure && c.api_key.empty())
    throw invalid("an azure connection needs --api-key");
}

}  // namespace

Connection create_connection(Store& store, const ConnectionSpec& spec) {
  if (!spec.name) throw invalid("--name is required");
  if (!spec.provider) throw invalid("--provider is required");
  Connection c;
  apply(c, spec);
  validate(c);
  store.transaction([&] {
    if (store.find_connection(c.name))
      throw conflict("a connection named '" + c.name + "' already exists");
    c.id = store.insert_connection(c);
    c = *store.get_connection(c.id);
  });
  return c;
}

Connection update_connection(Store& store, std::string_view ref, const ConnectionSpec& spec) {
  Connection c;
  store.transaction([&] {
    c = resolve_connection(store, ref);
    apply(c, spec);
    validate(c);
    if (auto other = store.find_connection(c.name); other && other->id != c.id)
      throw conflict("a connection named '" + c.name + "' already exists");
    store.update_connection(c);
    c = *store.get_connection(c.id);
  });
  return c;
}

void remove_connection(Store& store, std::string_view ref, bool force) {
  store.transaction([&] {
    Connection c = resolve_connection(store, ref);
    if (!force) {
      std::size_t models = store.list_models(c.id).size();
      std::size_t grants = 0;
      for (const Assignment& a : store.list_assignments()) grants += a.conn_id == c.id;
      if (models + grants > 0)
        throw conflict("connection '" + c.name + "' is used by " + std::to_string(models) +
                       " model(s) and " + std::to_string(grants) +
                       " assignment(s); remove them first or pass --force");
    }
    store.delete_connection(c.id);
  });
}

Connection get_connection(Store& store, std::string_view ref) {
  return resolve_connection(store, ref);
}

std::vector<Connection> list_connections(Store& store) { return store.list_connections(); }

}  // namespace llmproxy::ops
