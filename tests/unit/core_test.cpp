// Unit tests for the data plane's pure parts: the JSON scanner, the limiter,
// routing over a snapshot, and the OpenAI stream pass-through.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "lib/auth/authenticate.h"
#include "lib/config/snapshot.h"
#include "lib/crypto/hash.h"
#include "lib/limits/limiter.h"
#include "lib/providers/openai/openai_adapter.h"
#include "lib/routing/route.h"
#include "lib/util/json_scan.h"

namespace llmproxy {
namespace {

// ---- json_scan -------------------------------------------------------------

struct Scanned {
  bool ok;
  json_scan::Span model, stream;
  std::string error;
};

Scanned scan(std::string_view text) {
  static constexpr std::string_view kKeys[] = {"model", "stream"};
  json_scan::Span spans[2];
  Scanned s;
  s.ok = json_scan::scan(text, kKeys, spans, s.error);
  s.model = spans[0];
  s.stream = spans[1];
  return s;
}

TEST(JsonScan, FindsTopLevelKeysOnly) {
  std::string body =
      R"({"messages":[{"model":"inner"}],"model" : "gpt-4o","x":{"stream":true},"stream":false})";
  Scanned s = scan(body);
  ASSERT_TRUE(s.ok) << s.error;
  ASSERT_TRUE(s.model.found);
  EXPECT_EQ(s.model.in(body), "\"gpt-4o\"");
  EXPECT_EQ(s.stream.in(body), "false");
}

TEST(JsonScan, AcceptsEveryValidShape) {
  for (std::string_view ok : {R"({})", R"( {"a":[1,-2.5e+3,0.1,true,false,null,"\u00e9\n"]} )",
                              R"([1,2])", R"("s")", R"({"a":{"b":{"c":[]}}})"}) {
    EXPECT_TRUE(scan(ok).ok) << ok;
  }
}

TEST(JsonScan, RejectsMalformedJsonWithOffset) {
  for (std::string_view bad :
       {R"({"model":)", R"({"a":1,})", R"({"a" 1})", R"({'a':1})", R"({"a":01})", R"({"a":tru})",
        R"({"a":"x\q"})", "{\"a\":\"\x01\"}", R"({"a":1} x)", R"({"a":[1,]})", ""}) {
    Scanned s = scan(bad);
    EXPECT_FALSE(s.ok) << bad;
    if (!bad.empty()) {
      EXPECT_NE(s.error.find("at byte"), std::string::npos) << bad;
    }
  }
}

TEST(JsonScan, RejectsExcessiveNesting) {
  std::string deep(300, '[');
  deep += std::string(300, ']');
  EXPECT_FALSE(scan(deep).ok);
}

TEST(JsonScan, DecodesAndEncodesStrings) {
  std::string out;
  ASSERT_TRUE(json_scan::decode_string(R"("a\"b\u00e9")", out));
  EXPECT_EQ(out, "a\"b\xc3\xa9");
  EXPECT_FALSE(json_scan::decode_string("42", out));
  EXPECT_EQ(json_scan::encode_string("x\"y\n"), R"("x\"y\n")");
}

// ---- helpers -----------------------------------------------------------------

Limits tps(double v) {
  Limits l;
  l.tps = v;
  return l;
}

Assignment limited(Id id, Limits l) {
  Assignment a;
  a.id = id;
  a.vkey_id = 1;
  a.conn_id = 1;
  a.limits = l;
  return a;
}

// ---- auth + routing over a snapshot --------------------------------------------

ConfigData sample_config() {
  ConfigData d;
  d.version = 7;
  Connection openai;
  openai.id = 1;
  openai.name = "openai";
  openai.provider = Provider::kOpenAI;
  Connection local;
  local.id = 2;
  local.name = "local";
  local.provider = Provider::kVllm;
  d.connections = {openai, local};
  d.models = {{1, "gpt", "gpt-4o", 1, {}, {}, 0, 0}, {2, "llama", "llama-3", 2, {}, {}, 0, 0}};
  VirtualKey k;
  k.id = 1;
  k.name = "app";
  k.key_hash = crypto::sha256_hex("sk-app");
  VirtualKey off = k;
  off.id = 2;
  off.name = "off";
  off.key_hash = crypto::sha256_hex("sk-off");
  off.enabled = false;
  VirtualKey old = k;
  old.id = 3;
  old.name = "old";
  old.key_hash = crypto::sha256_hex("sk-old");
  old.expires_at = 1000;
  d.vkeys = {k, off, old};
  Assignment by_model = limited(10, tps(1));
  by_model.conn_id.reset();
  by_model.model_id = 1;
  Assignment by_conn = limited(11, {});
  by_conn.conn_id = 1;
  Assignment local_model = limited(12, {});
  local_model.conn_id.reset();
  local_model.model_id = 2;
  d.assignments = {by_model, by_conn, local_model};
  return d;
}

TEST(Auth, ChecksKeysAgainstTheSnapshot) {
  config::Snapshot snap(sample_config());
  EXPECT_EQ(auth::authenticate(snap, "sk-app", "", 0).status, auth::AuthStatus::kOk);
  EXPECT_EQ(auth::authenticate(snap, "sk-nope", "", 0).status, auth::AuthStatus::kUnknown);
  EXPECT_EQ(auth::authenticate(snap, "", "", 0).status, auth::AuthStatus::kMissing);
  EXPECT_EQ(auth::authenticate(snap, "sk-off", "", 0).status, auth::AuthStatus::kDisabled);
  EXPECT_EQ(auth::authenticate(snap, "sk-old", "", 999).status, auth::AuthStatus::kOk);
  EXPECT_EQ(auth::authenticate(snap, "sk-old", "", 1000).status, auth::AuthStatus::kExpired);
  auto master = auth::authenticate(snap, "sk-master", "sk-master", 0);
  EXPECT_EQ(master.status, auth::AuthStatus::kOk);
  EXPECT_TRUE(master.principal.master);
  EXPECT_EQ(auth::extract_key("Bearer sk-a ", "", ""), "sk-a");
  EXPECT_EQ(auth::extract_key("", "sk-b", "sk-c"), "sk-b");
  EXPECT_EQ(auth::extract_key("", "", "sk-c"), "sk-c");
}

TEST(Routing, ModelAssignmentWinsOverConnectionAssignment) {
  config::Snapshot snap(sample_config());
  auto who = auth::authenticate(snap, "sk-app", "", 0).principal;
  auto r = routing::resolve(snap, who, "gpt");
  ASSERT_EQ(r.status, routing::RouteStatus::kOk);
  EXPECT_EQ(r.route.assignment->id, 10);
  EXPECT_EQ(r.route.remote, "gpt-4o");
  EXPECT_EQ(r.route.connection->name, "openai");
}

TEST(Routing, ConnectionSlashRemoteNeedsAConnectionAssignment) {
  config::Snapshot snap(sample_config());
  auto who = auth::authenticate(snap, "sk-app", "", 0).principal;
  auto direct = routing::resolve(snap, who, "openai/gpt-4o-mini");
  ASSERT_EQ(direct.status, routing::RouteStatus::kOk);
  EXPECT_EQ(direct.route.remote, "gpt-4o-mini");
  EXPECT_EQ(direct.route.assignment->id, 11);
  EXPECT_EQ(routing::resolve(snap, who, "local/other").status, routing::RouteStatus::kForbidden);
  EXPECT_EQ(routing::resolve(snap, who, "nowhere/x").status, routing::RouteStatus::kNotFound);
  EXPECT_EQ(routing::resolve(snap, who, "unknown").status, routing::RouteStatus::kNotFound);
  // The master key may use everything, without an assignment.
  auth::Principal master{nullptr, true};
  auto m = routing::resolve(snap, master, "local/other");
  EXPECT_EQ(m.status, routing::RouteStatus::kOk);
  EXPECT_EQ(m.route.assignment, nullptr);
}

TEST(Routing, VisibleModelsFollowAssignments) {
  ConfigData d = sample_config();
  d.assignments.pop_back();  // no longer assigned "llama"
  config::Snapshot snap(std::move(d));
  auto who = auth::authenticate(snap, "sk-app", "", 0).principal;
  auto models = routing::visible_models(snap, who);
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].model->name, "gpt");
  EXPECT_EQ(routing::visible_models(snap, {nullptr, true}).size(), 2u);
}

// ---- OpenAI request rewriting and stream pass-through --------------------------------

providers::InboundRequest inbound(const std::string& body) {
  static constexpr std::string_view kKeys[] = {"model", "stream", "stream_options"};
  json_scan::Span spans[3];
  std::string error;
  EXPECT_TRUE(json_scan::scan(body, kKeys, spans, error)) << error;
  providers::InboundRequest in;
  in.body = body;
  in.model = spans[0];
  in.stream = spans[1];
  in.stream_options = spans[2];
  in.stream_requested = spans[1].found && json_scan::is_true(spans[1].in(body));
  return in;
}

routing::Route route_to(const Connection& c, std::string remote) {
  return routing::Route{&c, nullptr, nullptr, std::move(remote)};
}

TEST(OpenAIAdapter, RewritesOnlyModelAndStreamOptions) {
  Connection c;
  c.name = "up";
  c.endpoint = "https://api.example.com/v1";
  c.api_key = "sk-upstream";
  c.headers = {{"X-Team", "search"}};
  std::string body =
      R"({"model":"alias","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:x"}}]}],"tools":[{"type":"function"}],"stream":true,"weird":1})";
  providers::OpenAIAdapter adapter;
  auto req = adapter.build_request(inbound(body), route_to(c, "gpt-4o"));
  EXPECT_TRUE(req.tls);
  EXPECT_EQ(req.host, "api.example.com");
  EXPECT_EQ(req.port, "443");
  EXPECT_EQ(req.target, "/v1/chat/completions");
  auto sent = nlohmann::json::parse(req.body);
  auto original = nlohmann::json::parse(body);
  EXPECT_EQ(sent["model"], "gpt-4o");
  EXPECT_EQ(sent["stream_options"]["include_usage"], true);
  sent.erase("stream_options");
  original["model"] = "gpt-4o";
  EXPECT_EQ(sent, original);
  bool saw_auth = false, saw_team = false;
  for (auto& [k, v] : req.headers) {
    saw_auth |= k == "Authorization" && v == "Bearer sk-upstream";
    saw_team |= k == "X-Team" && v == "search";
  }
  EXPECT_TRUE(saw_auth);
  EXPECT_TRUE(saw_team);
}

TEST(OpenAIAdapter, AzureUsesDeploymentUrlApiKeyAndVersion) {
  Connection c;
  c.name = "az";
  c.provider = Provider::kAzure;
  c.endpoint = "https://res.openai.azure.com";
  c.api_key = "azkey";
  c.api_version = "2024-06-01";
  providers::OpenAIAdapter adapter;
  auto req =
      adapter.build_request(inbound(R"({"model":"a","messages":[]})"), route_to(c, "gpt4-prod"));
  EXPECT_EQ(req.target, "/openai/deployments/gpt4-prod/chat/completions?api-version=2024-06-01");
  bool api_key = false;
  for (auto& [k, v] : req.headers) {
    api_key |= k == "api-key" && v == "azkey";
    EXPECT_NE(k, "Authorization");
  }
  EXPECT_TRUE(api_key);
}

std::string sse(const std::string& json) { return "data: " + json + "\n\n"; }

// Regression guard for byte-split streams: every split point gives the same output.
TEST(OpenAIStream, SameOutputAtEveryByteBoundaryAndUsageChunkHidden) {
  std::string chunk1 = R"({"id":"c","choices":[{"index":0,"delta":{"content":"Hel"}}]})";
  std::string chunk2 = R"({"id":"c","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]})";
  std::string usage = R"({"id":"c","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}})";
  std::string stream = sse(chunk1) + ": keep-alive comment\r\n\r\n" + sse(chunk2) + sse(usage) +
                       "data: [DONE]\n\n";
  std::string body = R"({"model":"m","stream":true,"messages":[]})";
  auto in = inbound(body);
  providers::OpenAIAdapter adapter;
  std::string expected = sse(chunk1) + ": keep-alive comment\r\n\r\n" + sse(chunk2) +
                         "data: [DONE]\n\n";
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    auto t = adapter.stream_translator(in);
    std::string out;
    t->feed(std::string_view(stream).substr(0, split), out);
    t->feed(std::string_view(stream).substr(split), out);
    t->finish(out);
    ASSERT_EQ(out, expected) << "split at " << split;
    EXPECT_TRUE(t->complete());
    EXPECT_EQ(t->usage().prompt_tokens, 7);
    EXPECT_EQ(t->usage().completion_tokens, 2);
  }
}

TEST(OpenAIStream, ForwardsUsageChunkWhenClientAskedAndReadsUsageOnChoiceChunk) {
  std::string with_choices =
      R"({"choices":[{"index":0,"delta":{}}],"usage":{"prompt_tokens":3,"completion_tokens":4}})";
  std::string body = R"({"model":"m","stream":true,"stream_options":{"include_usage":true}})";
  auto in = inbound(body);
  providers::OpenAIAdapter adapter;
  auto t = adapter.stream_translator(in);
  std::string out;
  std::string usage_only = R"({"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}})";
  t->feed(sse(with_choices), out);
  EXPECT_EQ(t->usage().completion_tokens, 4);
  t->feed(sse(usage_only), out);
  EXPECT_EQ(out, sse(with_choices) + sse(usage_only));
  EXPECT_EQ(t->usage().completion_tokens, 5);
  EXPECT_FALSE(t->complete());
}

}  // namespace
}  // namespace llmproxy
