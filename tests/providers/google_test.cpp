// Golden translation tests for the google adapter: OpenAI request in → Gemini
// request out; Gemini reply / SSE stream / error in → OpenAI shapes out.
#include <gtest/gtest.h>

#include <cctype>
#include <utility>
#include <vector>

#include "lib/providers/google/google_adapter.h"
#include "lib/util/json_scan.h"

namespace llmproxy::providers::google {
namespace {

Json translate(const std::string& openai) {
  return to_generate_request(Json::parse(openai));
}

TEST(GoogleRequest, PlainSystemAndGenerationConfig) {
  Json out = translate(R"({
    "model": "alias",
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "developer", "content": [{"type": "text", "text": "No emojis."}]},
      {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Hello!"},
      {"role": "user", "content": "Again"},
      {"role": "user", "content": [{"type": "text", "text": "please"}]}
    ],
    "temperature": 0.2, "top_p": 0.9, "max_tokens": 100, "stop": "END", "n": 2,
    "presence_penalty": 0.5, "frequency_penalty": 0.25, "seed": 7,
    "response_format": {"type": "json_object"}, "stream": true
  })");
  Json expected = Json::parse(R"({
    "contents": [
      {"role": "user", "parts": [{"text": "Hi"}]},
      {"role": "model", "parts": [{"text": "Hello!"}]},
      {"role": "user", "parts": [{"text": "Again"}, {"text": "please"}]}
    ],
    "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "No emojis."}]},
    "generationConfig": {
      "temperature": 0.2, "topP": 0.9, "maxOutputTokens": 100, "stopSequences": ["END"],
      "candidateCount": 2, "presencePenalty": 0.5, "frequencyPenalty": 0.25, "seed": 7,
      "responseMimeType": "application/json"
    }
  })");
  EXPECT_EQ(out, expected);
  Json plain = translate(R"({"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(plain, Json::parse(R"({"contents":[{"role":"user","parts":[{"text":"x"}]}]})"));
  Json limited = translate(
      R"({"messages":[{"role":"user","content":"x"}],"max_completion_tokens":9,"stop":["a","b"],
          "response_format":{"type":"json_schema","json_schema":{"name":"s","schema":{"type":"object"}}}})");
  EXPECT_EQ(limited["generationConfig"],
            Json::parse(R"({"maxOutputTokens":9,"stopSequences":["a","b"],
    "responseMimeType":"application/json","responseSchema":{"type":"object"}})"));
}

TEST(GoogleRequest, ImagesAndFilesBecomeInlineOrFileData) {
  Json out = translate(R"({"messages": [{"role": "user", "content": [
    {"type": "text", "text": "What is this?"},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
    {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp?size=2"}},
    {"type": "image_url", "image_url": {"url": "https://example.com/photo"}},
    {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}}
  ]}]})");
  Json expected = Json::parse(R"([
    {"text": "What is this?"},
    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}},
    {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp?size=2"}},
    {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/photo"}},
    {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0x"}}
  ])");
  EXPECT_EQ(out["contents"][0]["parts"], expected);
}

TEST(GoogleRequest, ToolsRoundTrip) {
  Json out = translate(R"({
    "messages": [
      {"role": "user", "content": "Weather in Paris and Rome?"},
      {"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_0", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
        {"id": "call_1", "type": "function", "function": {"name": "forecast", "arguments": "{\"city\":\"Rome\"}"}}]},
      {"role": "tool", "tool_call_id": "call_0", "content": "18C"},
      {"role": "tool", "tool_call_id": "call_1", "content": "{\"high\":24}"},
      {"role": "assistant", "content": "Paris 18C, Rome 24C."}
    ],
    "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather now",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
              {"type": "function", "function": {"name": "forecast"}}],
    "tool_choice": "required"
  })");
  Json expected_contents = Json::parse(R"([
    {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
    {"role": "model", "parts": [
      {"functionCall": {"name": "weather", "args": {"city": "Paris"}}},
      {"functionCall": {"name": "forecast", "args": {"city": "Rome"}}}]},
    {"role": "user", "parts": [
      {"functionResponse": {"name": "weather", "response": {"content": {"content": "18C"}}}},
      {"functionResponse": {"name": "forecast", "response": {"content": {"high": 24}}}}]},
    {"role": "model", "parts": [{"text": "Paris 18C, Rome 24C."}]}
  ])");
  EXPECT_EQ(out["contents"], expected_contents);
  EXPECT_EQ(out["tools"], Json::parse(R"([{"functionDeclarations": [
    {"name": "weather", "description": "Weather now",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
    {"name": "forecast"}]}])"));
  EXPECT_EQ(out["toolConfig"], Json::parse(R"({"functionCallingConfig": {"mode": "ANY"}})"));
  auto choice = [](const std::string& c) {
    return translate(R"({"messages":[{"role":"user","content":"x"}],
      "tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":)" +
                     c + "}")["toolConfig"];
  };
  EXPECT_EQ(choice(R"("auto")"), Json::parse(R"({"functionCallingConfig":{"mode":"AUTO"}})"));
  EXPECT_EQ(choice(R"("none")"), Json::parse(R"({"functionCallingConfig":{"mode":"NONE"}})"));
  EXPECT_EQ(
      choice(R"({"type":"function","function":{"name":"f"}})"),
      Json::parse(R"({"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["f"]}})"));
}

// Regression: the OpenAI SDKs' strict mode sends additionalProperties: false,
// which Gemini's `parameters` (an OpenAPI subset) refuses with 400 "Unknown
// name"; such schemas go as parametersJsonSchema, plain ones as before.
TEST(GoogleRequest, JsonSchemaOutsideGeminisSubsetGoesAsJsonSchema) {
  Json out = translate(R"({"messages":[{"role":"user","content":"x"}], "tools": [
    {"type":"function","function":{"name":"strict","strict":true,"parameters":{
      "type":"object","properties":{"city":{"type":"string"}},"required":["city"],
      "additionalProperties":false}}},
    {"type":"function","function":{"name":"nested","parameters":{
      "type":"object","properties":{"tags":{"type":"array","items":{"type":["string","null"]}}}}}},
    {"type":"function","function":{"name":"refs","parameters":{
      "type":"object","$defs":{"a":{"type":"string"}},"properties":{"a":{"$ref":"#/$defs/a"}}}}},
    {"type":"function","function":{"name":"plain","parameters":{
      "type":"OBJECT","properties":{"n":{"type":"integer","enum":["1","2"],"nullable":true},
      "any":{"anyOf":[{"type":"string"},{"type":"number"}]}},"propertyOrdering":["n","any"]}}}]})");
  const Json& decls = out["tools"][0]["functionDeclarations"];
  ASSERT_EQ(decls.size(), 4u);
  for (int i : {0, 1, 2}) {
    EXPECT_FALSE(decls[i].contains("parameters")) << decls[i].dump();
    EXPECT_TRUE(decls[i].contains("parametersJsonSchema")) << decls[i].dump();
  }
  EXPECT_EQ(decls[0]["parametersJsonSchema"]["additionalProperties"], false);
  EXPECT_TRUE(decls[3].contains("parameters"));
  EXPECT_FALSE(decls[3].contains("parametersJsonSchema"));

  Json strict = translate(R"({"messages":[{"role":"user","content":"x"}],
    "response_format":{"type":"json_schema","json_schema":{"name":"s","strict":true,"schema":{
      "type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}}}})");
  EXPECT_EQ(strict["generationConfig"], Json::parse(R"({"responseMimeType":"application/json",
    "responseJsonSchema":{"type":"object","properties":{"a":{"type":"string"}},
                          "additionalProperties":false}})"));
}

// Regression: Gemini 3 refuses a history whose function calls lack the
// thoughtSignature it sent; it travels as Google's OpenAI endpoint carries it,
// tool_calls[].extra_content.google.thought_signature.
TEST(GoogleRequest, ThoughtSignaturesGoBackOnTheirFunctionCalls) {
  Json out = translate(R"({"messages": [
    {"role": "user", "content": "Weather?"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "call_0", "type": "function", "function": {"name": "weather", "arguments": "{}"},
       "extra_content": {"google": {"thought_signature": "c2ln"}}},
      {"id": "call_1", "type": "function", "function": {"name": "time", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
    {"role": "tool", "tool_call_id": "call_1", "content": "noon"}]})");
  EXPECT_EQ(out["contents"][1]["parts"], Json::parse(R"([
    {"functionCall": {"name": "weather", "args": {}}, "thoughtSignature": "c2ln"},
    {"functionCall": {"name": "time", "args": {}}}])"));
}

// Clients that rebuild tool calls drop the signature; the first call of each
// model turn gets Google's documented sentinel, real signatures stay.
TEST(GoogleRequest, UnsignedCallsGetTheSentinelSignature) {
  Json out = translate(R"({"messages": [
    {"role": "user", "content": "Weather?"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "a", "type": "function", "function": {"name": "weather", "arguments": "{}"}},
      {"id": "b", "type": "function", "function": {"name": "time", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "a", "content": "sunny"},
    {"role": "tool", "tool_call_id": "b", "content": "noon"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "c", "type": "function", "function": {"name": "weather", "arguments": "{}"},
       "extra_content": {"google": {"thought_signature": "c2ln"}}}]},
    {"role": "tool", "tool_call_id": "c", "content": "rain"}]})");
  sign_unsigned_calls(out);
  EXPECT_EQ(out["contents"][1]["parts"], Json::parse(R"([
    {"functionCall": {"name": "weather", "args": {}},
     "thoughtSignature": "skip_thought_signature_validator"},
    {"functionCall": {"name": "time", "args": {}}}])"));
  EXPECT_EQ(out["contents"][3]["parts"][0]["thoughtSignature"], "c2ln");
  EXPECT_FALSE(out["contents"][0]["parts"][0].contains("thoughtSignature"));
}

void expect_refused(const std::string& openai, const std::string& param) {
  try {
    translate(openai);
    ADD_FAILURE() << "accepted: " << openai;
  } catch (const RequestError& e) {
    EXPECT_EQ(e.param(), param) << e.what();
    EXPECT_NE(std::string(e.what()).size(), 0u);
  }
}

TEST(GoogleRequest, UntranslatableRequestsNameTheField) {
  expect_refused(
      R"({"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]})",
      "messages[0].content[0]");
  expect_refused(
      R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"code_interpreter"}]})",
      "tools[0]");
  expect_refused(R"({"messages":[{"role":"user","content":"x"},
                     {"role":"tool","tool_call_id":"nope","content":"r"}]})",
                 "messages[1].tool_call_id");
  expect_refused(R"({"messages":[{"role":"system","content":"only system"}]})", "messages");
  expect_refused(R"({"messages":[{"role":"user","content":"x"}],"n":0})", "n");
  expect_refused(
      R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x"}}]}]})",
      "messages[0].content[0]");
  expect_refused(
      R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"grammar"}})",
      "response_format");
  expect_refused(R"({"messages":[{"role":"user","content":"x"}],"tool_choice":"maybe",
                     "tools":[{"type":"function","function":{"name":"f"}}]})",
                 "tool_choice");
}

TEST(GoogleReply, TextAndUsage) {
  Json out = to_chat_completion(Json::parse(R"({
    "candidates": [{"content": {"role": "model", "parts": [{"text": "Hello "}, {"text": "there"},
                    {"text": "secret plan", "thought": true}]},
                    "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 11, "candidatesTokenCount": 4, "thoughtsTokenCount": 3,
                      "totalTokenCount": 18},
    "modelVersion": "gemini-2.5-flash", "responseId": "abc"
  })"),
                                "chatcmpl-abc", "remote");
  EXPECT_EQ(out["id"], "chatcmpl-abc");
  EXPECT_EQ(out["object"], "chat.completion");
  EXPECT_EQ(out["model"], "gemini-2.5-flash");
  EXPECT_EQ(out["choices"][0]["message"]["content"], "Hello there");
  EXPECT_EQ(out["choices"][0]["finish_reason"], "stop");
  EXPECT_FALSE(out["choices"][0]["message"].contains("tool_calls"));
  EXPECT_EQ(out["usage"],
            Json::parse(R"({"prompt_tokens":11,"completion_tokens":7,"total_tokens":18})"));
  EXPECT_EQ(completion_id(Json::parse(R"({"responseId":"xyz"})"), "req"), "chatcmpl-xyz");
  EXPECT_EQ(completion_id(Json::object(), "req"), "chatcmpl-req");
  EXPECT_TRUE(completion_id(Json::object(), "").starts_with("chatcmpl-"));
  EXPECT_EQ(finish_reason("MAX_TOKENS"), "length");
  for (const char* r : {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "OTHER"})
    EXPECT_EQ(finish_reason(r), "content_filter") << r;
}

TEST(GoogleReply, FunctionCallsAndMultipleCandidates) {
  Json out = to_chat_completion(Json::parse(R"({
    "candidates": [
      {"index": 0, "finishReason": "STOP", "content": {"role": "model", "parts": [
        {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}},
        {"functionCall": {"name": "time", "args": {}}}]}},
      {"index": 1, "finishReason": "MAX_TOKENS", "content": {"role": "model", "parts": [{"text": "Trunc"}]}}
    ],
    "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 9}
  })"),
                                "chatcmpl-x", "gemini-remote");
  EXPECT_EQ(out["model"], "gemini-remote");
  ASSERT_EQ(out["choices"].size(), 2u);
  const Json& first = out["choices"][0];
  EXPECT_EQ(first["finish_reason"], "tool_calls");
  EXPECT_TRUE(first["message"]["content"].is_null());
  EXPECT_EQ(first["message"]["tool_calls"], Json::parse(R"([
    {"id": "call_0", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}},
    {"id": "call_1", "type": "function", "function": {"name": "time", "arguments": "{}"}}])"));
  EXPECT_EQ(out["choices"][1]["index"], 1);
  EXPECT_EQ(out["choices"][1]["message"]["content"], "Trunc");
  EXPECT_EQ(out["choices"][1]["finish_reason"], "length");
}

TEST(GoogleReply, ThoughtSignatureRidesOnTheToolCall) {
  Json out = to_chat_completion(Json::parse(R"({"candidates": [{"index": 0, "finishReason": "STOP",
    "content": {"role": "model", "parts": [
      {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}, "thoughtSignature": "c2ln"},
      {"functionCall": {"name": "time", "args": {}}}]}}]})"),
                                "chatcmpl-x", "m");
  const Json& calls = out["choices"][0]["message"]["tool_calls"];
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0]["extra_content"], Json::parse(R"({"google":{"thought_signature":"c2ln"}})"));
  EXPECT_FALSE(calls[1].contains("extra_content"));
  // What the client sends back with the call restores it.
  Json next = Json::parse(R"({"messages":[{"role":"user","content":"Weather?"}]})");
  Json assistant = out["choices"][0]["message"];
  next["messages"].push_back(assistant);
  next["messages"].push_back({{"role", "tool"}, {"tool_call_id", "call_0"}, {"content", "sunny"}});
  next["messages"].push_back({{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "noon"}});
  EXPECT_EQ(to_generate_request(next)["contents"][1]["parts"][0]["thoughtSignature"], "c2ln");
}

TEST(GoogleReply, BlockedPromptIsContentFilter) {
  Adapter adapter;
  std::string body = R"({"model":"alias","messages":[{"role":"user","content":"x"}]})";
  InboundRequest in;
  in.body = body;
  in.request_id = "r1";
  Reply r = adapter.translate_reply(in, 200, R"({"promptFeedback":{"blockReason":"SAFETY"},
    "usageMetadata":{"promptTokenCount":8,"totalTokenCount":8}})",
                                    no_headers());
  EXPECT_EQ(r.status, 200);
  Json out = Json::parse(r.body);
  EXPECT_EQ(out["id"], "chatcmpl-r1");
  ASSERT_EQ(out["choices"].size(), 1u);
  EXPECT_EQ(out["choices"][0]["finish_reason"], "content_filter");
  EXPECT_EQ(out["choices"][0]["message"]["content"], "");
  EXPECT_EQ(r.usage.prompt_tokens, 8);
  EXPECT_EQ(r.usage.completion_tokens, 0);
  EXPECT_TRUE(r.usage.reported);
  EXPECT_EQ(adapter.translate_reply(in, 200, "not json", no_headers()).status, 502);
}

Connection google_connection(const std::string& endpoint) {
  Connection c;
  c.name = "gem";
  c.provider = Provider::kGoogle;
  c.endpoint = endpoint;
  c.api_key = "AIza-secret";
  c.headers = {{"x-extra", "1"}};
  return c;
}

TEST(GoogleAdapter, BuildsUrlsAndKeepsTheKeyOutOfThem) {
  Adapter adapter;
  std::string body = R"({"model":"alias","messages":[{"role":"user","content":"x"}]})";
  InboundRequest in;
  in.body = body;
  for (auto [endpoint, path] : std::vector<std::pair<std::string, std::string>>{
           {"", "/v1beta"},
           {"https://generativelanguage.googleapis.com", "/v1beta"},
           {"https://proxy.example/gemini/v1", "/gemini/v1"},
           {"http://localhost:8080/v1beta", "/v1beta"}}) {
    Connection c = google_connection(endpoint);
    routing::Route route{&c, nullptr, nullptr, "gemini-2.5-flash"};
    in.stream_requested = false;
    UpstreamRequest req = adapter.build_request(in, route);
    EXPECT_EQ(req.target, path + "/models/gemini-2.5-flash:generateContent") << endpoint;
    EXPECT_EQ(req.target.find("secret"), std::string::npos);
    bool key = false, extra = false;
    for (auto& [k, v] : req.headers) {
      key |= k == "x-goog-api-key" && v == "AIza-secret";
      extra |= k == "x-extra" && v == "1";
    }
    EXPECT_TRUE(key && extra);
    in.stream_requested = true;
    EXPECT_EQ(adapter.build_request(in, route).target,
              path + "/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
  }
  Connection c = google_connection("");
  routing::Route route{&c, nullptr, nullptr, "gemini-2.5-flash"};
  UpstreamRequest req = adapter.build_request(in, route);
  EXPECT_TRUE(req.tls);
  EXPECT_EQ(req.host, "generativelanguage.googleapis.com");
  EXPECT_EQ(Json::parse(req.body)["contents"][0]["parts"][0]["text"], "x");
}

TEST(GoogleEmbeddings, OneTextIsEmbedContentSeveralABatch) {
  EmbedRequest one = to_embed_request(Json::parse(R"({"model":"e","input":"a","dimensions":256})"),
                                      "gemini-embedding-001");
  EXPECT_FALSE(one.batch);
  // EmbedContentRequest: the model is in the URL, not the body.
  EXPECT_EQ(one.body,
            Json::parse(R"({"content":{"parts":[{"text":"a"}]},"outputDimensionality":256})"));
  EXPECT_FALSE(to_embed_request(Json::parse(R"({"input":["only"]})"), "m").batch);

  EmbedRequest many =
      to_embed_request(Json::parse(R"({"model":"e","input":["a","b"]})"), "text-embedding-004");
  EXPECT_TRUE(many.batch);
  EXPECT_EQ(many.body, Json::parse(R"({"requests":[
              {"model":"models/text-embedding-004","content":{"parts":[{"text":"a"}]}},
              {"model":"models/text-embedding-004","content":{"parts":[{"text":"b"}]}}]})"));
  EXPECT_EQ(to_embed_request(Json::parse(R"({"input":["a","b"],"dimensions":8,
                                             "encoding_format":"base64","user":"u"})"),
                             "m")
                .body["requests"][1]["outputDimensionality"],
            8);

  std::pair<const char*, const char*> refused[] = {
      {R"({"input":[1,2,3]})", "input"},
      {R"({"input":[[1,2]]})", "input"},
      {R"({"input":[]})", "input"},
      {R"({"input":{"text":"a"}})", "input"},
      {R"({"input":"a","dimensions":"256"})", "dimensions"},
      {R"({"input":"a","dimensions":0})", "dimensions"},
      {R"({"input":"a","dimensions":1.5})", "dimensions"},
      {R"({"input":"a","encoding_format":"int8"})", "encoding_format"},
  };
  for (auto [bad, param] : refused) {
    try {
      to_embed_request(Json::parse(bad), "m");
      ADD_FAILURE() << bad;
    } catch (const RequestError& e) {
      EXPECT_EQ(e.param(), param) << bad;
    }
  }
}

TEST(GoogleEmbeddings, ThroughTheAdapter) {
  Adapter adapter;
  Connection c = google_connection("");
  routing::Route route{&c, nullptr, nullptr, "gemini-embedding-001"};
  std::string body = R"({"model":"alias","input":["a","b"]})";
  InboundRequest in;
  in.endpoint = Endpoint::kEmbeddings;
  in.body = body;
  in.route = &route;
  in.stream_requested = false;
  UpstreamRequest req = adapter.build_request(in, route);
  EXPECT_EQ(req.target, "/v1beta/models/gemini-embedding-001:batchEmbedContents");
  Reply r = adapter.translate_reply(in, 200, R"({"embeddings":[{"values":[0.5,-1]},{"values":[2]}],
    "usageMetadata":{"promptTokenCount":3,"promptTokenDetails":[{"modality":"TEXT","tokenCount":3}]}})",
                                    no_headers());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Json::parse(r.body), Json::parse(R"({"object":"list","data":[
    {"object":"embedding","index":0,"embedding":[0.5,-1]},
    {"object":"embedding","index":1,"embedding":[2]}],
    "model":"gemini-embedding-001","usage":{"prompt_tokens":3,"total_tokens":3}})"));
  EXPECT_EQ(r.usage.prompt_tokens, 3);
  EXPECT_EQ(r.usage.completion_tokens, 0);
  EXPECT_TRUE(r.usage.reported);

  // One text: embedContent, whose reply holds one `embedding`; base64 asked for.
  std::string b64 = R"({"model":"alias","input":"a","encoding_format":"base64"})";
  in.body = b64;
  req = adapter.build_request(in, route);
  EXPECT_EQ(req.target, "/v1beta/models/gemini-embedding-001:embedContent");
  EXPECT_EQ(Json::parse(req.body), Json::parse(R"({"content":{"parts":[{"text":"a"}]}})"));
  Reply encoded = adapter.translate_reply(
      in, 200, R"({"embedding":{"values":[1.0,-2.0]},"usageMetadata":{"promptTokenCount":1}})",
      no_headers());
  // 1.0f = 00 00 80 3f, -2.0f = 00 00 00 c0 (little-endian).
  Json list = Json::parse(encoded.body);
  ASSERT_EQ(list["data"].size(), 1u);
  EXPECT_EQ(list["data"][0]["embedding"], "AACAPwAAAMA=");
  EXPECT_EQ(list["data"][0]["index"], 0);
  EXPECT_EQ(encoded.usage.prompt_tokens, 1);

  // Replies without usageMetadata (older API versions) count 0; null format is float.
  std::string null_format = R"({"model":"alias","input":"a","encoding_format":null})";
  in.body = null_format;
  Reply plain =
      adapter.translate_reply(in, 200, R"({"embedding":{"values":[0.25]}})", no_headers());
  EXPECT_EQ(Json::parse(plain.body)["data"][0]["embedding"], Json::parse("[0.25]"));
  EXPECT_EQ(plain.usage.prompt_tokens, 0);

  for (const char* odd : {R"({"embedding":{}})", R"({"embeddings":[{"values":"x"}]})",
                          R"({"candidates":[]})", "[]"}) {
    Reply bad = adapter.translate_reply(in, 200, odd, no_headers());
    EXPECT_EQ(bad.status, 502) << odd;
    EXPECT_EQ(Json::parse(bad.body)["error"]["code"], "upstream_bad_reply") << odd;
  }
}

std::pair<Reply, Json> mapped(int status, const std::string& body) {
  Adapter adapter;
  Connection c = google_connection("");
  Reply r = adapter.map_error(c, status, body, no_headers());
  return {r, Json::parse(r.body)};
}

std::string header(const Reply& r, const std::string& name) {
  for (auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

TEST(GoogleErrors, StatusesMapFaithfully) {
  auto [limited, limited_body] = mapped(429, R"({"error":{"code":429,"message":"Quota exceeded",
    "status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo",
    "retryDelay":"33.2s"}]}})");
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(header(limited, "Retry-After"), "34");
  EXPECT_EQ(limited_body["error"]["type"], "resource_exhausted");
  EXPECT_EQ(limited_body["error"]["code"], "RESOURCE_EXHAUSTED");
  std::string message = limited_body["error"]["message"];
  EXPECT_NE(message.find("gem"), std::string::npos);
  EXPECT_NE(message.find("Quota exceeded"), std::string::npos);
  EXPECT_EQ(
      header(mapped(429, R"({"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED"}})")
                 .first,
             "Retry-After"),
      "10");

  struct Case {
    int upstream;
    const char* status;
    int expected;
  };
  for (Case k : {Case{400, "INVALID_ARGUMENT", 400}, Case{400, "FAILED_PRECONDITION", 400},
                 Case{404, "NOT_FOUND", 404}, Case{503, "UNAVAILABLE", 503},
                 Case{504, "DEADLINE_EXCEEDED", 504}, Case{500, "INTERNAL", 500}}) {
    auto [r, body] =
        mapped(k.upstream, std::string(R"({"error":{"code":)") + std::to_string(k.upstream) +
                               R"(,"message":"boom","status":")" + k.status + R"("}})");
    EXPECT_EQ(r.status, k.expected) << k.status;
    EXPECT_EQ(body["error"]["code"], k.status);
    std::string type = k.status;
    for (char& ch : type) ch = static_cast<char>(std::tolower(ch));
    EXPECT_EQ(body["error"]["type"], type);
    if (k.expected == 503) {
      EXPECT_EQ(header(r, "Retry-After"), "1");
      EXPECT_EQ(header(r, "x-should-retry"), "true");
    } else {
      EXPECT_EQ(header(r, "x-should-retry"), "");
    }
  }
  // Regression: Google refuses a bad key with 400 INVALID_ARGUMENT; that is
  // the connection's credential, not the client's request.
  auto [key, key_body] = mapped(400, R"({"error":{"code":400,
    "message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT",
    "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID",
      "domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}})");
  EXPECT_EQ(key.status, 502);
  EXPECT_EQ(key_body["error"]["type"], "upstream_auth_error");
  EXPECT_EQ(key_body["error"]["code"], "upstream_auth_error");
  std::string key_message = key_body["error"]["message"];
  EXPECT_NE(key_message.find("'gem'"), std::string::npos) << key_message;
  EXPECT_NE(key_message.find("API_KEY_INVALID"), std::string::npos) << key_message;
  EXPECT_EQ(key_message.find("AIza-secret"), std::string::npos);
  // Other ErrorInfo reasons on a 400 stay the client's 400.
  EXPECT_EQ(mapped(400, R"({"error":{"code":400,"message":"m","status":"INVALID_ARGUMENT",
    "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"FIELD_INVALID"}]}})")
                .first.status,
            400);

  auto [opaque, opaque_body] = mapped(502, "<html>bad gateway</html>");
  EXPECT_EQ(opaque.status, 502);
  EXPECT_TRUE(opaque_body["error"].contains("message"));
}

std::string data(const std::string& json) {
  return "data: " + json + "\r\n\r\n";
}

const std::string kStream =
    data(
        R"({"candidates":[{"content":{"parts":[{"text":"Hi "}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":12,"totalTokenCount":12},"modelVersion":"gemini-2.5-flash","responseId":"r7"})") +
    data(
        R"({"candidates":[{"content":{"parts":[{"text":"é there"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":3,"totalTokenCount":15},"modelVersion":"gemini-2.5-flash","responseId":"r7"})") +
    data(
        R"({"candidates":[{"content":{"parts":[{"text":"!"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":5,"thoughtsTokenCount":4,"totalTokenCount":21},"modelVersion":"gemini-2.5-flash","responseId":"r7"})");

InboundRequest streaming_request(const std::string& body) {
  static constexpr std::string_view kKeys[] = {"model", "stream", "stream_options"};
  json_scan::Span spans[3];
  std::string err;
  EXPECT_TRUE(json_scan::scan(body, kKeys, spans, err));
  InboundRequest in;
  in.body = body;
  in.model = spans[0];
  in.stream = spans[1];
  in.stream_options = spans[2];
  in.stream_requested = true;
  return in;
}

std::vector<Json> data_events(const std::string& out, bool& done) {
  std::vector<Json> events;
  done = false;
  std::size_t pos = 0;
  while ((pos = out.find("data: ", pos)) != std::string::npos) {
    std::size_t end = out.find("\n\n", pos);
    std::string d = out.substr(pos + 6, end - pos - 6);
    if (d == "[DONE]")
      done = true;
    else
      events.push_back(Json::parse(d));
    pos = end;
  }
  return events;
}

// Feeds `stream` split at every byte boundary; every split must give the same
// chunks. Returns them.
std::vector<Json> translate_split(const InboundRequest& in, const std::string& stream,
                                  std::int64_t prompt, std::int64_t completion) {
  Adapter adapter;
  std::string reference;
  std::vector<Json> chunks;
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    auto t = adapter.stream_translator(in);
    std::string out;
    t->feed(std::string_view(stream).substr(0, split), out);
    EXPECT_FALSE(t->complete());
    t->feed(std::string_view(stream).substr(split), out);
    t->finish(out);
    EXPECT_TRUE(t->complete());
    EXPECT_EQ(t->usage().prompt_tokens, prompt);
    EXPECT_EQ(t->usage().completion_tokens, completion);
    bool done = false;
    std::vector<Json> events = data_events(out, done);
    EXPECT_TRUE(done);
    std::string normalised;
    for (Json ev : events) {
      ev.erase("created");  // the same second within a run; compare without it
      normalised += ev.dump() + "\n";
    }
    if (split == 0) {
      reference = normalised;
      chunks = events;
    }
    if (normalised != reference) {
      ADD_FAILURE() << "split at " << split;
      break;
    }
  }
  return chunks;
}

TEST(GoogleStream, TextAtEveryByteBoundaryWithUsage) {
  std::string body = R"({"model":"m","stream":true,"stream_options":{"include_usage":true}})";
  std::vector<Json> chunks = translate_split(streaming_request(body), kStream, 12, 9);
  ASSERT_EQ(chunks.size(), 5u);
  EXPECT_EQ(chunks[0]["id"], "chatcmpl-r7");
  EXPECT_EQ(chunks[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(chunks[0]["model"], "gemini-2.5-flash");
  EXPECT_EQ(chunks[0]["choices"][0]["delta"],
            Json::parse(R"({"role":"assistant","content":"Hi "})"));
  EXPECT_EQ(chunks[1]["choices"][0]["delta"], Json::parse(R"({"content":"é there"})"));
  EXPECT_EQ(chunks[2]["choices"][0]["delta"], Json::parse(R"({"content":"!"})"));
  EXPECT_TRUE(chunks[2]["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(chunks[3]["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(chunks[4]["choices"].empty());
  EXPECT_EQ(chunks[4]["usage"],
            Json::parse(R"({"prompt_tokens":12,"completion_tokens":9,"total_tokens":21})"));
}

TEST(GoogleStream, TextAtEveryByteBoundaryWithoutUsage) {
  std::string body = R"({"model":"m","stream":true})";
  std::vector<Json> chunks = translate_split(streaming_request(body), kStream, 12, 9);
  ASSERT_EQ(chunks.size(), 4u);
  for (const Json& c : chunks) EXPECT_FALSE(c.contains("usage"));
}

TEST(GoogleStream, ToolCallsAndMultipleCandidates) {
  std::string stream =
      data(
          R"({"candidates":[{"content":{"parts":[{"functionCall":{"name":"weather","args":{"city":"Oslo"}}}],"role":"model"},"index":0},{"content":{"parts":[{"text":"No tools"}],"role":"model"},"index":1,"finishReason":"STOP"}],"responseId":"t1"})") +
      data(
          R"({"candidates":[{"content":{"parts":[{"functionCall":{"name":"time","args":{}}}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":6}})");
  std::string body = R"({"model":"m","stream":true})";
  InboundRequest in = streaming_request(body);
  std::vector<Json> chunks = translate_split(in, stream, 4, 6);
  ASSERT_EQ(chunks.size(), 5u);
  EXPECT_EQ(chunks[0]["choices"][0]["index"], 0);
  EXPECT_EQ(chunks[0]["choices"][0]["delta"], Json::parse(R"({"role":"assistant","content":"",
    "tool_calls":[{"index":0,"id":"call_0","type":"function",
                   "function":{"name":"weather","arguments":"{\"city\":\"Oslo\"}"}}]})"));
  EXPECT_EQ(chunks[1]["choices"][0]["index"], 1);
  EXPECT_EQ(chunks[1]["choices"][0]["delta"],
            Json::parse(R"({"role":"assistant","content":"No tools"})"));
  EXPECT_EQ(chunks[2]["choices"][0]["index"], 1);
  EXPECT_EQ(chunks[2]["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(chunks[3]["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
  EXPECT_EQ(chunks[3]["choices"][0]["delta"]["tool_calls"][0]["id"], "call_1");
  EXPECT_EQ(chunks[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "time");
  EXPECT_FALSE(chunks[3]["choices"][0]["delta"].contains("role"));
  EXPECT_EQ(chunks[4]["choices"][0]["finish_reason"], "tool_calls");
}

TEST(GoogleStream, ThoughtSignatureRidesOnTheToolCallDelta) {
  std::string stream = data(
      R"({"candidates":[{"content":{"parts":[{"functionCall":{"name":"weather","args":{"city":"Oslo"}},"thoughtSignature":"c2ln"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":6},"responseId":"s1"})");
  std::string body = R"({"model":"m","stream":true})";
  std::vector<Json> chunks = translate_split(streaming_request(body), stream, 4, 6);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0]["choices"][0]["delta"]["tool_calls"][0]["extra_content"],
            Json::parse(R"({"google":{"thought_signature":"c2ln"}})"));
  EXPECT_EQ(chunks[1]["choices"][0]["finish_reason"], "tool_calls");
}

TEST(GoogleStream, EndingEarlyIsIncompleteAndErrorsBecomeErrorEvents) {
  std::string body = R"({"model":"m","stream":true})";
  InboundRequest in = streaming_request(body);
  Adapter adapter;
  auto t = adapter.stream_translator(in);
  std::string out;
  t->feed(data(R"({"candidates":[{"content":{"parts":[{"text":"Hi"}]},"index":0}]})"), out);
  t->feed(data(R"({"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}})"), out);
  t->finish(out);
  EXPECT_FALSE(t->complete());
  bool done = false;
  auto events = data_events(out, done);
  EXPECT_FALSE(done);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1]["error"]["type"], "unavailable");

  auto blocked = adapter.stream_translator(in);
  std::string out2;
  blocked->feed(
      data(R"({"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":3}})"),
      out2);
  blocked->finish(out2);
  EXPECT_TRUE(blocked->complete());
  events = data_events(out2, done);
  EXPECT_TRUE(done);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1]["choices"][0]["finish_reason"], "content_filter");
  EXPECT_EQ(blocked->usage().prompt_tokens, 3);
}

}  // namespace
}  // namespace llmproxy::providers::google
