// Golden translation tests for the anthropic adapter: OpenAI request in →
// Messages request out; Messages reply / SSE stream in → OpenAI reply out.
#include <gtest/gtest.h>

#include "lib/providers/anthropic/anthropic_adapter.h"
#include "lib/util/json_scan.h"

namespace llmproxy::providers::anthropic {
namespace {

Json translate(const std::string& openai) {
  return to_messages_request(Json::parse(openai), "claude-sonnet-4-5");
}

TEST(AnthropicRequest, LiftsSystemDefaultsMaxTokensAndMapsStop) {
  Json out = translate(R"({
    "model": "alias",
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "developer", "content": [{"type": "text", "text": "No emojis."}]},
      {"role": "user", "content": "Hi"}
    ],
    "temperature": 0.2, "top_p": 0.9, "stop": "END", "user": "u-1", "stream": true
  })");
  Json expected = Json::parse(R"({
    "model": "claude-sonnet-4-5",
    "system": "Be brief.\n\nNo emojis.",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    "max_tokens": 4096,
    "temperature": 0.2, "top_p": 0.9,
    "stop_sequences": ["END"],
    "metadata": {"user_id": "u-1"},
    "stream": true
  })");
  EXPECT_EQ(out, expected);
  EXPECT_EQ(translate(R"({"messages":[{"role":"user","content":"x"}],"max_tokens":17})")["max_tokens"], 17);
  EXPECT_EQ(translate(R"({"messages":[{"role":"user","content":"x"}],"max_completion_tokens":9})")["max_tokens"], 9);
}

TEST(AnthropicRequest, ImagesAndDocumentsBecomeBlocks) {
  Json out = translate(R"({"messages": [{"role": "user", "content": [
    {"type": "text", "text": "What is this?"},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}}
  ]}]})");
  Json expected = Json::parse(R"([
    {"type": "text", "text": "What is this?"},
    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}},
    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}, "title": "a.pdf"}
  ])");
  EXPECT_EQ(out["messages"][0]["content"], expected);
}

TEST(AnthropicRequest, ToolsRoundTrip) {
  Json out = translate(R"({
    "messages": [
      {"role": "user", "content": "Weather in Paris and Rome?"},
      {"role": "assistant", "content": null, "tool_calls": [
        {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
        {"id": "toolu_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}]},
      {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
      {"role": "tool", "tool_call_id": "toolu_2", "content": "24C"}
    ],
    "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather now",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
    "tool_choice": "required", "parallel_tool_calls": false
  })");
  Json expected_messages = Json::parse(R"([
    {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
    {"role": "assistant", "content": [
      {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
      {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}}]},
    {"role": "user", "content": [
      {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
      {"type": "tool_result", "tool_use_id": "toolu_2", "content": "24C"}]}
  ])");
  EXPECT_EQ(out["messages"], expected_messages);
  EXPECT_EQ(out["tools"], Json::parse(R"([{"name": "weather", "description": "Weather now",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}])"));
  EXPECT_EQ(out["tool_choice"], Json::parse(R"({"type": "any", "disable_parallel_tool_use": true})"));
  Json named = translate(R"({"messages":[{"role":"user","content":"x"}],
    "tools":[{"type":"function","function":{"name":"f"}}],
    "tool_choice":{"type":"function","function":{"name":"f"}}})");
  EXPECT_EQ(named["tool_choice"], Json::parse(R"({"type":"tool","name":"f"})"));
  EXPECT_EQ(named["tools"][0]["input_schema"]["type"], "object");
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

TEST(AnthropicRequest, UntranslatableRequestsNameTheField) {
  expect_refused(R"({"messages":[{"role":"user","content":"x"}],"n":2})", "n");
  expect_refused(
      R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,AA"}}]}]})",
      "messages[0].content[0]");
  expect_refused(R"({"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]})",
                 "messages[0].content[0]");
  expect_refused(R"({"messages":[{"role":"system","content":"only system"}]})", "messages");
  expect_refused(R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema"}})",
                 "response_format");
}

TEST(AnthropicReply, BecomesChatCompletion) {
  Json msg = Json::parse(R"({
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {"city": "Oslo"}}],
    "stop_reason": "tool_use", "stop_sequence": null,
    "usage": {"input_tokens": 20, "cache_read_input_tokens": 5, "output_tokens": 7}
  })");
  Json out = to_chat_completion(msg);
  EXPECT_EQ(out["id"], "msg_01");
  EXPECT_EQ(out["object"], "chat.completion");
  EXPECT_EQ(out["model"], "claude-sonnet-4-5");
  const Json& choice = out["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  EXPECT_EQ(choice["message"]["content"], "Let me check.");
  EXPECT_EQ(choice["message"]["tool_calls"][0]["id"], "toolu_9");
  EXPECT_EQ(choice["message"]["tool_calls"][0]["function"]["name"], "weather");
  EXPECT_EQ(Json::parse(choice["message"]["tool_calls"][0]["function"]["arguments"].get<std::string>()),
            Json::parse(R"({"city":"Oslo"})"));
  EXPECT_EQ(out["usage"], Json::parse(R"({"prompt_tokens":25,"completion_tokens":7,"total_tokens":32})"));
  EXPECT_EQ(finish_reason("end_turn"), "stop");
  EXPECT_EQ(finish_reason("max_tokens"), "length");
  EXPECT_EQ(finish_reason("stop_sequence"), "stop");
}

TEST(AnthropicErrors, OverloadedBecomes503WithRetryHintsAndShapeIsOpenAI) {
  Adapter adapter;
  Connection c;
  c.name = "claude";
  Reply r = adapter.map_error(
      c, 529, R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})",
      no_headers());
  EXPECT_EQ(r.status, 503);
  Json body = Json::parse(r.body);
  EXPECT_EQ(body["error"]["type"], "overloaded_error");
  EXPECT_NE(body["error"]["message"].get<std::string>().find("claude"), std::string::npos);
  bool retry_after = false;
  for (auto& [k, v] : r.headers) retry_after |= k == "Retry-After";
  EXPECT_TRUE(retry_after);
  Reply bad = adapter.map_error(
      c, 400,
      R"({"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too big"}})",
      no_headers());
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(Json::parse(bad.body)["error"]["type"], "invalid_request_error");
}

std::string sse(const std::string& event, const std::string& data) {
  return "event: " + event + "\ndata: " + data + "\n\n";
}

const std::string kStream =
    sse("message_start",
        R"({"type":"message_start","message":{"id":"msg_7","type":"message","role":"assistant","content":[],"model":"claude-x","stop_reason":null,"usage":{"input_tokens":12,"output_tokens":1}}})") +
    sse("content_block_start", R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})") +
    sse("ping", R"({"type":"ping"})") +
    sse("content_block_delta", R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi é"}})") +
    sse("content_block_stop", R"({"type":"content_block_stop","index":0})") +
    sse("content_block_start",
        R"({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}})") +
    sse("content_block_delta", R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}})") +
    sse("content_block_delta", R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"1}"}})") +
    sse("message_delta", R"({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":9}})") +
    sse("message_stop", R"({"type":"message_stop"})");

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
    std::string data = out.substr(pos + 6, end - pos - 6);
    if (data == "[DONE]") done = true;
    else events.push_back(Json::parse(data));
    pos = end;
  }
  return events;
}

TEST(AnthropicStream, TranslatesEventsToChunksAtEveryByteBoundary) {
  std::string body = R"({"model":"m","stream":true,"stream_options":{"include_usage":true}})";
  InboundRequest in = streaming_request(body);
  Adapter adapter;
  std::string reference;
  for (std::size_t split = 0; split <= kStream.size(); ++split) {
    auto t = adapter.stream_translator(in);
    std::string out;
    t->feed(std::string_view(kStream).substr(0, split), out);
    t->feed(std::string_view(kStream).substr(split), out);
    t->finish(out);
    ASSERT_TRUE(t->complete());
    EXPECT_EQ(t->usage().prompt_tokens, 12);
    EXPECT_EQ(t->usage().completion_tokens, 9);
    // "created" is the same second within a run; compare without it.
    std::string normalised;
    bool done = false;
    for (Json ev : data_events(out, done)) {
      ev.erase("created");
      normalised += ev.dump() + "\n";
    }
    ASSERT_TRUE(done);
    if (split == 0) reference = normalised;
    ASSERT_EQ(normalised, reference) << "split at " << split;
  }
  bool done = false;
  std::vector<Json> chunks;
  auto t = adapter.stream_translator(in);
  std::string out;
  t->feed(kStream, out);
  chunks = data_events(out, done);
  ASSERT_EQ(chunks.size(), 7u);
  EXPECT_EQ(chunks[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(chunks[0]["id"], "msg_7");
  EXPECT_EQ(chunks[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(chunks[1]["choices"][0]["delta"]["content"], "Hi é");
  EXPECT_EQ(chunks[2]["choices"][0]["delta"]["tool_calls"][0]["id"], "toolu_1");
  EXPECT_EQ(chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "f");
  EXPECT_EQ(chunks[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"], "{\"a\":");
  EXPECT_EQ(chunks[4]["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
  EXPECT_EQ(chunks[5]["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_TRUE(chunks[6]["choices"].empty());
  EXPECT_EQ(chunks[6]["usage"]["total_tokens"], 21);
}

TEST(AnthropicStream, NoUsageChunkUnlessAskedAndErrorsBecomeErrorEvents) {
  std::string body = R"({"model":"m","stream":true})";
  InboundRequest in = streaming_request(body);
  Adapter adapter;
  auto t = adapter.stream_translator(in);
  std::string out;
  t->feed(kStream, out);
  bool done = false;
  auto chunks = data_events(out, done);
  EXPECT_TRUE(done);
  for (const Json& c : chunks) EXPECT_FALSE(c.contains("usage"));
  EXPECT_EQ(t->usage().completion_tokens, 9);  // still known to the proxy

  auto broken = adapter.stream_translator(in);
  std::string out2;
  broken->feed(sse("error", R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})"),
               out2);
  EXPECT_FALSE(broken->complete());
  auto events = data_events(out2, done);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["error"]["type"], "overloaded_error");
}

}  // namespace
}  // namespace llmproxy::providers::anthropic

#include "lib/providers/anthropic/inbound.h"

namespace llmproxy::providers::anthropic {
namespace {

TEST(AnthropicInbound, MessagesRequestBecomesOpenAIChat) {
  Json out = chat_request_from_messages(Json::parse(R"({
    "model": "alias", "max_tokens": 50, "system": [{"type": "text", "text": "Be nice."}],
    "stream": true, "stop_sequences": ["X"], "metadata": {"user_id": "u"},
    "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
    "messages": [
      {"role": "user", "content": [{"type": "text", "text": "Hi"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}]},
      {"role": "assistant", "content": [{"type": "text", "text": "Calling"},
        {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}
    ]})"));
  Json expected = Json::parse(R"({
    "model": "alias",
    "messages": [
      {"role": "system", "content": "Be nice."},
      {"role": "user", "content": [{"type": "text", "text": "Hi"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]},
      {"role": "assistant", "content": "Calling", "tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
      {"role": "tool", "tool_call_id": "t1", "content": "ok"}
    ],
    "max_tokens": 50, "stop": ["X"],
    "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}],
    "tool_choice": "required", "parallel_tool_calls": false, "user": "u",
    "stream": true, "stream_options": {"include_usage": true}
  })");
  EXPECT_EQ(out, expected);
}

TEST(AnthropicInbound, ChatCompletionBecomesMessage) {
  Json msg = message_from_chat_completion(Json::parse(R"({
    "id": "c1", "model": "gpt", "choices": [{"index": 0, "finish_reason": "tool_calls",
      "message": {"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":2}"}}]}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 4}})"));
  EXPECT_EQ(msg["type"], "message");
  EXPECT_EQ(msg["stop_reason"], "tool_use");
  EXPECT_EQ(msg["content"][0], Json::parse(R"({"type":"tool_use","id":"call_1","name":"f","input":{"x":2}})"));
  EXPECT_EQ(msg["usage"], Json::parse(R"({"input_tokens":3,"output_tokens":4})"));
  EXPECT_EQ(Json::parse(error_body(429, "slow down"))["error"]["type"], "rate_limit_error");
  EXPECT_EQ(Json::parse(error_body_from_openai(400, R"({"error":{"message":"bad"}})"))["error"]["message"],
            "bad");
}

TEST(AnthropicInbound, ChunksBecomeEventSequence) {
  auto t = events_from_chunks(nullptr);
  std::string chunks =
      "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
      "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n"
      "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"t\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n"
      "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
      "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6}}\n\n"
      "data: [DONE]\n\n";
  std::string reference;
  for (std::size_t split = 0; split <= chunks.size(); split += 7) {
    auto tr = events_from_chunks(nullptr);
    std::string out;
    tr->feed(std::string_view(chunks).substr(0, split), out);
    tr->feed(std::string_view(chunks).substr(split), out);
    tr->finish(out);
    if (split == 0) reference = out;
    ASSERT_EQ(out, reference) << split;
    EXPECT_TRUE(tr->complete());
  }
  std::vector<std::string> names;
  std::size_t pos = 0;
  while ((pos = reference.find("event: ", pos)) != std::string::npos) {
    std::size_t eol = reference.find('\n', pos);
    names.push_back(reference.substr(pos + 7, eol - pos - 7));
    pos = eol;
  }
  std::vector<std::string> expected = {"message_start",       "content_block_start",
                                       "content_block_delta", "content_block_stop",
                                       "content_block_start", "content_block_delta",
                                       "content_block_stop",  "message_delta",
                                       "message_stop"};
  EXPECT_EQ(names, expected);
  EXPECT_NE(reference.find(R"("stop_reason":"tool_use")"), std::string::npos);
  EXPECT_NE(reference.find(R"("output_tokens":6)"), std::string::npos);
}

}  // namespace
}  // namespace llmproxy::providers::anthropic
