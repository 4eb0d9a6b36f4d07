// The template provider: rendering, validation and reply extraction.
#include <gtest/gtest.h>

#include "lib/providers/template/template_adapter.h"
#include "lib/util/json_scan.h"

namespace llmproxy::providers::templated {
namespace {

const char* kSpec = R"({
  "path": "/api/v2/generate",
  "headers": {"X-Acme-Token": "Token {{api_key}}"},
  "body": {"engine": "{{model}}",
           "input": {"system": "{{system}}", "history": "{{messages}}", "query": "{{prompt}}",
                     "label": "req {{request_id}} for {{model}}"},
           "params": {"temperature": "{{temperature}}", "max_new_tokens": "{{max_tokens}}"}},
  "reply": {"text": "/result/text", "prompt_tokens": "/meta/in", "completion_tokens": "/meta/out",
            "finish_reason": "/result/stop"}
})";

TEST(Template, RendersTypedValuesAndDropsAbsentOnes) {
  Json chat = Json::parse(R"({"model":"alias","max_tokens":64,"messages":[
    {"role":"system","content":"Be short."},{"role":"user","content":"Hi"},
    {"role":"assistant","content":"Hello"},{"role":"user","content":[{"type":"text","text":"Again"}]}]})");
  Json out = render(Json::parse(kSpec)["body"], chat, "acme-7b", "tok", "r1");
  EXPECT_EQ(out["engine"], "acme-7b");
  EXPECT_EQ(out["input"]["system"], "Be short.");
  EXPECT_EQ(out["input"]["query"], "Again");
  EXPECT_EQ(out["input"]["history"], chat["messages"]);  // the array, not its text
  EXPECT_EQ(out["input"]["label"], "req r1 for acme-7b");
  EXPECT_EQ(out["params"]["max_new_tokens"], 64);  // a number stays a number
  EXPECT_FALSE(out["params"].contains("temperature"));  // not sent by the client
}

TEST(Template, ValidationNamesTheProblem) {
  EXPECT_EQ(check_template(Json::parse(kSpec)), "");
  EXPECT_NE(check_template(Json::parse(R"({"reply":{"text":"/a"}})")).find("body"), std::string::npos);
  EXPECT_NE(check_template(Json::parse(R"({"body":{"a":"{{nope}}"},"reply":{"text":"/a"}})"))
                .find("unknown placeholder {{nope}}"),
            std::string::npos);
  EXPECT_NE(check_template(Json::parse(R"({"body":{},"reply":{"text":"a/b"}})")).find("JSON pointer"),
            std::string::npos);
  EXPECT_NE(check_template(Json::parse(R"({"body":{"a":"{{model"},"reply":{"text":"/a"}})")).find("unclosed"),
            std::string::npos);
}

struct Fixture {
  Connection conn;
  routing::Route route;
  std::string body;
  InboundRequest in;

  explicit Fixture(std::string request_body) : body(std::move(request_body)) {
    conn.name = "acme";
    conn.provider = Provider::kTemplate;
    conn.endpoint = "http://llm.internal:9000";
    conn.api_key = "secret-token";
    conn.options = Json{{"template", Json::parse(kSpec)}}.dump();
    route = routing::Route{&conn, nullptr, nullptr, "acme-7b"};
    static constexpr std::string_view kKeys[] = {"model", "stream", "stream_options"};
    json_scan::Span spans[3];
    std::string err;
    json_scan::scan(body, kKeys, spans, err);
    in.body = body;
    in.model = spans[0];
    in.stream = spans[1];
    in.stream_options = spans[2];
    in.stream_requested = spans[1].found && json_scan::is_true(spans[1].in(body));
    in.route = &route;
    in.request_id = "r9";
  }
};

TEST(Template, BuildsTheUpstreamRequest) {
  Fixture f(R"({"model":"acme","messages":[{"role":"user","content":"Hi"}]})");
  Adapter adapter;
  UpstreamRequest req = adapter.build_request(f.in, f.route);
  EXPECT_FALSE(req.tls);
  EXPECT_EQ(req.host, "llm.internal");
  EXPECT_EQ(req.port, "9000");
  EXPECT_EQ(req.target, "/api/v2/generate");
  bool token = false;
  for (auto& [k, v] : req.headers) token |= k == "X-Acme-Token" && v == "Token secret-token";
  EXPECT_TRUE(token);
  EXPECT_EQ(Json::parse(req.body)["input"]["query"], "Hi");
}

TEST(Template, ExtractsTheReplyAndUsage) {
  Fixture f(R"({"model":"acme","messages":[{"role":"user","content":"Hi"}]})");
  Adapter adapter;
  Reply r = adapter.translate_reply(
      f.in, 200, R"({"result":{"text":"Hello!","stop":"eos"},"meta":{"in":12,"out":3}})",
      no_headers());
  ASSERT_EQ(r.status, 200);
  Json out = Json::parse(r.body);
  EXPECT_EQ(out["object"], "chat.completion");
  EXPECT_EQ(out["choices"][0]["message"]["content"], "Hello!");
  EXPECT_EQ(out["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(out["usage"]["total_tokens"], 15);
  EXPECT_EQ(r.usage.prompt_tokens, 12);
  EXPECT_EQ(r.usage.completion_tokens, 3);
  Reply missing = adapter.translate_reply(f.in, 200, R"({"other":1})", no_headers());
  EXPECT_EQ(missing.status, 502);
  EXPECT_NE(missing.body.find("/result/text"), std::string::npos);
}

TEST(Template, StreamRequestsGetAWellFormedStream) {
  Fixture f(
      R"({"model":"acme","stream":true,"stream_options":{"include_usage":true},"messages":[]})");
  Adapter adapter;
  Reply r = adapter.translate_reply(
      f.in, 200, R"({"result":{"text":"Yo"},"meta":{"in":1,"out":1}})", no_headers());
  EXPECT_EQ(r.content_type, "text/event-stream");
  EXPECT_NE(r.body.find(R"("delta":{"content":"Yo"})"), std::string::npos);
  EXPECT_NE(r.body.find(R"("usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2})"),
            std::string::npos);
  EXPECT_TRUE(r.body.ends_with("data: [DONE]\n\n"));
}

}  // namespace
}  // namespace llmproxy::providers::templated
