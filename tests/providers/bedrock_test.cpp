// Tests for the bedrock adapter: the SigV4 signer against AWS's published test
// suite, the event stream decoder, and golden Converse translations.
#include <gtest/gtest.h>

#include <cstring>

#include "lib/crypto/hash.h"

#include "lib/providers/bedrock/bedrock_adapter.h"
#include "lib/providers/bedrock/eventstream.h"
#include "lib/providers/bedrock/sigv4.h"
#include "lib/util/json_scan.h"

namespace llmproxy::providers::bedrock {
namespace {

// ---------------------------------------------------------------- SigV4 ---
//
// Vectors from AWS's Signature Version 4 test suite
// (https://docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html,
// aws-sig-v4-test-suite.zip; also github.com/awslabs/aws-c-auth
// tests/aws-signing-test-suite/v4/<case>/). Example credentials AKIDEXAMPLE /
// wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, region us-east-1, service
// "service", X-Amz-Date 20150830T123600Z.

constexpr std::string_view kDate = "20150830T123600Z";
constexpr std::string_view kEmptyHash =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const sigv4::Credentials kExample{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};

sigv4::Signature sign_suite(const std::string& method, const std::string& path,
                            const std::string& query, std::string_view body = "",
                            std::string content_type = "") {
  sigv4::Request req;
  req.method = method;
  req.path = path;
  req.query = query;
  req.payload = body;
  if (!content_type.empty()) req.headers.emplace_back("Content-Type", content_type);
  req.headers.emplace_back("Host", "example.amazonaws.com");
  req.headers.emplace_back("X-Amz-Date", std::string(kDate));
  return sigv4::sign(req, kExample, "us-east-1", "service", kDate);
}

std::string sts(std::string_view hash) {
  return "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n" +
         std::string(hash);
}

std::string authz(std::string_view signed_headers, std::string_view signature) {
  return "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
         "SignedHeaders=" +
         std::string(signed_headers) + ", Signature=" + std::string(signature);
}

TEST(SigV4, GetVanilla) {
  auto s = sign_suite("GET", "/", "");
  EXPECT_EQ(s.canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "host;x-amz-date\n" +
                std::string(kEmptyHash));
  EXPECT_EQ(s.string_to_sign,
            sts("bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"));
  EXPECT_EQ(
      s.authorization,
      authz("host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
}

TEST(SigV4, GetVanillaQueryOrderKeyCase) {
  auto s = sign_suite("GET", "/", "Param2=value2&Param1=value1");
  EXPECT_EQ(s.canonical_request,
            "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\n"
            "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" +
                std::string(kEmptyHash));
  EXPECT_EQ(s.string_to_sign,
            sts("816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0"));
  EXPECT_EQ(
      s.authorization,
      authz("host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"));
}

TEST(SigV4, PostVanilla) {
  auto s = sign_suite("POST", "/", "");
  EXPECT_EQ(s.canonical_request,
            "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "host;x-amz-date\n" +
                std::string(kEmptyHash));
  EXPECT_EQ(s.string_to_sign,
            sts("553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87"));
  EXPECT_EQ(
      s.authorization,
      authz("host;x-amz-date", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"));
}

TEST(SigV4, PostXWwwFormUrlencoded) {
  auto s = sign_suite("POST", "/", "", "Param1=value1", "application/x-www-form-urlencoded");
  EXPECT_EQ(s.canonical_request,
            "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\n"
            "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "content-type;host;x-amz-date\n"
            "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
  EXPECT_EQ(s.string_to_sign,
            sts("42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281"));
  EXPECT_EQ(s.authorization,
            authz("content-type;host;x-amz-date",
                  "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"));
}

TEST(SigV4, GetUtf8AndPostVanillaQuery) {
  // get-utf8: the raw path "/ሴ" is signed as "/%E1%88%B4".
  auto utf8 = sign_suite("GET", "/\xE1\x88\xB4", "");
  EXPECT_NE(utf8.canonical_request.find("\n/%E1%88%B4\n"), std::string::npos);
  EXPECT_EQ(utf8.signature, "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
  // post-vanilla-query.
  EXPECT_EQ(sign_suite("POST", "/", "Param1=value1").signature,
            "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11");
}

TEST(SigV4, BedrockModelIdsAreEncodedTwiceInTheCanonicalUri) {
  // The wire path carries ':' as %3A; non-S3 services sign the path encoded
  // once more, so the canonical URI holds %253A (as the AWS SDKs do).
  EXPECT_EQ(model_path("", "anthropic.claude-3-5-sonnet-20240620-v1:0", false),
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
  EXPECT_EQ(sigv4::canonical_uri("/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"),
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse");
  EXPECT_EQ(model_path("/base", "arn:aws:bedrock:us-east-1:1:inference-profile/x", true),
            "/base/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fx/"
            "converse-stream");
  EXPECT_EQ(sigv4::amz_date(1440938160), "20150830T123600Z");
  EXPECT_EQ(sigv4::canonical_query("b=2&a=1&A=0&c"), "A=0&a=1&b=2&c=");
}

InboundRequest request_for(const std::string& body, bool stream) {
  static constexpr std::string_view kKeys[] = {"model", "stream", "stream_options"};
  json_scan::Span spans[3];
  std::string err;
  EXPECT_TRUE(json_scan::scan(body, kKeys, spans, err)) << err;
  InboundRequest in;
  in.body = body;
  in.model = spans[0];
  in.stream = spans[1];
  in.stream_options = spans[2];
  in.stream_requested = stream;
  return in;
}

std::string header(const UpstreamRequest& req, const std::string& name) {
  for (const auto& [k, v] : req.headers) {
    if (k == name) return v;
  }
  return "<absent>";
}

TEST(BedrockRequest, IsSignedForBedrockWithTheSessionToken) {
  Connection c;
  c.name = "aws";
  c.provider = Provider::kBedrock;
  c.endpoint = "https://bedrock-runtime.eu-west-1.amazonaws.com";
  c.region = "eu-west-1";
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  c.session_token = "token/with+chars";
  c.headers = {{"X-Team", "a"}, {"X-Amz-Trace", "t"}};
  routing::Route route;
  route.connection = &c;
  route.remote = "anthropic.claude-3-haiku-20240307-v1:0";
  std::string body =
      R"({"model":"haiku","messages":[{"role":"user","content":"Hi"}],"stream":true})";
  Adapter adapter;
  UpstreamRequest req = adapter.build_request_at(request_for(body, true), route, 1440938160);
  EXPECT_TRUE(req.tls);
  EXPECT_EQ(req.host, "bedrock-runtime.eu-west-1.amazonaws.com");
  EXPECT_EQ(req.port, "443");
  EXPECT_EQ(req.target, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream");
  EXPECT_EQ(Json::parse(req.body),
            Json::parse(R"({"messages":[{"role":"user","content":[{"text":"Hi"}]}]})"));
  EXPECT_EQ(header(req, "Content-Type"), "application/json");
  EXPECT_EQ(header(req, "Accept"), "application/vnd.amazon.eventstream");
  EXPECT_EQ(header(req, "X-Amz-Date"), "20150830T123600Z");
  EXPECT_EQ(header(req, "X-Amz-Security-Token"), "token/with+chars");
  EXPECT_EQ(header(req, "X-Team"), "a");
  std::string auth = header(req, "Authorization");
  const std::string prefix =
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/bedrock/aws4_request, "
      "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-trace, Signature=";
  ASSERT_TRUE(auth.starts_with(prefix)) << auth;
  std::string signature = auth.substr(prefix.size());
  EXPECT_EQ(signature.size(), 64u);
  EXPECT_EQ(signature.find_first_not_of("0123456789abcdef"), std::string::npos);

  // The same signature, recomputed from the documented canonical request.
  sigv4::Request expected;
  expected.method = "POST";
  expected.path = req.target;
  expected.payload = req.body;
  expected.headers = {{"host", "bedrock-runtime.eu-west-1.amazonaws.com"},
                      {"content-type", "application/json"},
                      {"x-amz-date", "20150830T123600Z"},
                      {"x-amz-security-token", "token/with+chars"},
                      {"x-amz-trace", "t"}};
  auto s = sigv4::sign(expected, {c.access_key_id, c.secret_access_key, c.session_token},
                       "eu-west-1", "bedrock", "20150830T123600Z");
  EXPECT_EQ(s.signature, signature);
  EXPECT_TRUE(s.canonical_request.starts_with(
      "POST\n/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse-stream\n\n"))
      << s.canonical_request;

  // Non-streamed, a non-default port (in the signed host) and no session token.
  c.endpoint = "http://localhost:8080/";
  c.session_token.clear();
  c.headers.clear();
  std::string plain = R"({"model":"haiku","messages":[{"role":"user","content":"Hi"}]})";
  UpstreamRequest r2 = adapter.build_request_at(request_for(plain, false), route, 1440938160);
  EXPECT_EQ(r2.target, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse");
  EXPECT_EQ(header(r2, "Accept"), "application/json");
  EXPECT_EQ(header(r2, "X-Amz-Security-Token"), "<absent>");
  sigv4::Request e2;
  e2.method = "POST";
  e2.path = r2.target;
  e2.payload = r2.body;
  e2.headers = {{"host", "localhost:8080"},
                {"content-type", "application/json"},
                {"x-amz-date", "20150830T123600Z"}};
  auto s2 = sigv4::sign(e2, {c.access_key_id, c.secret_access_key, ""}, "eu-west-1", "bedrock",
                        "20150830T123600Z");
  EXPECT_EQ(header(r2, "Authorization"), s2.authorization);
}

// ---------------------------------------------------------- event stream ---

eventstream::Message event(const std::string& type, const std::string& payload) {
  eventstream::Message m;
  m.headers = {{":event-type", eventstream::kString, type},
               {":content-type", eventstream::kString, "application/json"},
               {":message-type", eventstream::kString, "event"}};
  m.payload = payload;
  return m;
}

eventstream::Message exception(const std::string& type, const std::string& payload) {
  eventstream::Message m;
  m.headers = {{":exception-type", eventstream::kString, type},
               {":content-type", eventstream::kString, "application/json"},
               {":message-type", eventstream::kString, "exception"}};
  m.payload = payload;
  return m;
}

TEST(EventStream, Crc32IsTheIeeeOne) {
  EXPECT_EQ(eventstream::crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(eventstream::crc32(""), 0u);
  EXPECT_EQ(eventstream::crc32("6789", eventstream::crc32("12345")), 0xCBF43926u);
}

TEST(EventStream, DecodesFramesSkipsOtherHeaderTypesAndSplitsAnywhere) {
  eventstream::Message odd;
  odd.headers = {{"t", eventstream::kBoolTrue, ""},
                 {"f", eventstream::kBoolFalse, ""},
                 {"b", eventstream::kByte, "\x07"},
                 {"s", eventstream::kShort, std::string("\x00\x02", 2)},
                 {"i", eventstream::kInt, std::string("\x00\x00\x00\x03", 4)},
                 {"l", eventstream::kLong, std::string(8, '\x01')},
                 {"y", eventstream::kBytes, std::string("\x00\xff", 2)},
                 {"ts", eventstream::kTimestamp, std::string(8, '\x02')},
                 {"u", eventstream::kUuid, std::string(16, '\x03')},
                 {":event-type", eventstream::kString, "x"}};
  odd.payload = "";
  std::string bytes = eventstream::encode(odd) +
                      eventstream::encode(event("contentBlockDelta", R"({"delta":{"text":"é"}})")) +
                      eventstream::encode(event("messageStop", R"({"stopReason":"end_turn"})"));
  // A known frame size: prelude 12 + CRC 4 + headers + payload.
  EXPECT_EQ(eventstream::encode(event("e", "{}")).size(),
            16u + (1 + 11 + 1 + 2 + 1) + (1 + 13 + 1 + 2 + 16) + (1 + 13 + 1 + 2 + 5) + 2);
  for (std::size_t split = 0; split <= bytes.size(); ++split) {
    eventstream::Decoder d;
    std::vector<eventstream::Message> got;
    ASSERT_TRUE(d.feed(std::string_view(bytes).substr(0, split), got));
    ASSERT_TRUE(d.feed(std::string_view(bytes).substr(split), got));
    ASSERT_EQ(got.size(), 3u) << "split at " << split;
    EXPECT_EQ(d.pending(), 0u);
    ASSERT_EQ(got[0].headers.size(), 10u);
    EXPECT_EQ(got[0].headers[6].value, std::string("\x00\xff", 2));
    EXPECT_EQ(got[0].headers[8].value, std::string(16, '\x03'));
    EXPECT_EQ(got[0].header(":event-type"), "x");
    EXPECT_EQ(got[1].header(":event-type"), "contentBlockDelta");
    EXPECT_EQ(got[1].header(":message-type"), "event");
    EXPECT_EQ(got[1].payload, R"({"delta":{"text":"é"}})");
    EXPECT_EQ(got[2].header(":missing"), "");
  }
  // Byte at a time.
  eventstream::Decoder d;
  std::vector<eventstream::Message> got;
  for (char c : bytes) ASSERT_TRUE(d.feed(std::string_view(&c, 1), got));
  EXPECT_EQ(got.size(), 3u);
}

TEST(EventStream, CrcMismatchesAreErrors) {
  std::string frame = eventstream::encode(event("messageStop", R"({"stopReason":"end_turn"})"));
  for (std::size_t at :
       {std::size_t{2}, std::size_t{9}, std::size_t{20}, frame.size() - 3, frame.size() - 1}) {
    std::string bad = frame;
    bad[at] = static_cast<char>(bad[at] ^ 0x10);
    eventstream::Decoder d;
    std::vector<eventstream::Message> got;
    EXPECT_FALSE(d.feed(bad, got)) << "flipped byte " << at;
    EXPECT_TRUE(d.failed());
    EXPECT_FALSE(d.error().empty());
    EXPECT_TRUE(got.empty());
    EXPECT_FALSE(d.feed(frame, got));  // stays failed
  }
  // A good frame before the broken one is still delivered.
  eventstream::Decoder d;
  std::vector<eventstream::Message> got;
  std::string bad = frame;
  bad[bad.size() - 1] ^= 1;
  EXPECT_FALSE(d.feed(frame + bad, got));
  EXPECT_EQ(got.size(), 1u);
}

// ------------------------------------------------------ request goldens ---

Json translate(const std::string& openai) {
  return to_converse_request(Json::parse(openai));
}

TEST(BedrockRequest, LiftsSystemAndMapsInferenceConfig) {
  Json out = translate(R"({
    "model": "alias",
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "developer", "content": [{"type": "text", "text": "No emojis."}]},
      {"role": "user", "content": "Hi"},
      {"role": "user", "content": [{"type": "text", "text": "There"}]}
    ],
    "temperature": 0.2, "top_p": 0.9, "stop": "END", "max_tokens": 50, "stream": true
  })");
  Json expected = Json::parse(R"({
    "messages": [{"role": "user", "content": [{"text": "Hi"}, {"text": "There"}]}],
    "system": [{"text": "Be brief."}, {"text": "No emojis."}],
    "inferenceConfig": {"maxTokens": 50, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]}
  })");
  EXPECT_EQ(out, expected);
  EXPECT_EQ(translate(R"({"messages":[{"role":"user","content":"x"}],"max_completion_tokens":9,
                          "stop":["a","b"]})")["inferenceConfig"],
            Json::parse(R"({"maxTokens":9,"stopSequences":["a","b"]})"));
  EXPECT_FALSE(
      translate(R"({"messages":[{"role":"user","content":"x"}]})").contains("inferenceConfig"));
}

TEST(BedrockRequest, ImagesAndDocumentsBecomeByteBlocks) {
  Json out = translate(R"({"messages": [{"role": "user", "content": [
    {"type": "text", "text": "What is this?"},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4A"}},
    {"type": "file", "file": {"filename": "Q3 report.v2.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
    {"type": "file", "file": {"file_data": "data:text/plain;base64,aGk="}}
  ]}]})");
  Json expected = Json::parse(R"([
    {"text": "What is this?"},
    {"image": {"format": "png", "source": {"bytes": "iVBORw0K"}}},
    {"image": {"format": "jpeg", "source": {"bytes": "/9j/4A"}}},
    {"document": {"format": "pdf", "name": "Q3 report-v2", "source": {"bytes": "JVBERi0x"}}},
    {"document": {"format": "txt", "name": "document-2", "source": {"bytes": "aGk="}}}
  ])");
  EXPECT_EQ(out["messages"][0]["content"], expected);
}

TEST(BedrockRequest, ToolsRoundTrip) {
  Json out = translate(R"({
    "messages": [
      {"role": "user", "content": "Weather in Paris and Rome?"},
      {"role": "assistant", "content": null, "tool_calls": [
        {"id": "tooluse_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
        {"id": "tooluse_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}]},
      {"role": "tool", "tool_call_id": "tooluse_1", "content": "18C"},
      {"role": "tool", "tool_call_id": "tooluse_2", "content": [{"type": "text", "text": "24C"}]}
    ],
    "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather now",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
    "tool_choice": "required"
  })");
  Json expected = Json::parse(R"({
    "messages": [
      {"role": "user", "content": [{"text": "Weather in Paris and Rome?"}]},
      {"role": "assistant", "content": [
        {"toolUse": {"toolUseId": "tooluse_1", "name": "weather", "input": {"city": "Paris"}}},
        {"toolUse": {"toolUseId": "tooluse_2", "name": "weather", "input": {"city": "Rome"}}}]},
      {"role": "user", "content": [
        {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "18C"}]}},
        {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "24C"}]}}]}
    ],
    "toolConfig": {
      "tools": [{"toolSpec": {"name": "weather", "description": "Weather now",
        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}],
      "toolChoice": {"any": {}}
    }
  })");
  EXPECT_EQ(out, expected);

  const std::string one_tool =
      R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}])";
  Json named =
      translate(one_tool + R"(,"tool_choice":{"type":"function","function":{"name":"f"}}})");
  EXPECT_EQ(named["toolConfig"]["toolChoice"], Json::parse(R"({"tool":{"name":"f"}})"));
  EXPECT_EQ(named["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["type"], "object");
  EXPECT_EQ(translate(one_tool + R"(,"tool_choice":"auto"})")["toolConfig"]["toolChoice"],
            Json::parse(R"({"auto":{}})"));
  EXPECT_FALSE(translate(one_tool + "}")["toolConfig"].contains("toolChoice"));
  // "none": no tools offered, unless the history needs toolConfig.
  EXPECT_FALSE(translate(one_tool + R"(,"tool_choice":"none"})").contains("toolConfig"));
  Json none_with_history = translate(R"({"messages":[{"role":"user","content":"x"},
    {"role":"assistant","tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":""}}]},
    {"role":"tool","tool_call_id":"t","content":"ok"}],
    "tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none"})");
  ASSERT_TRUE(none_with_history.contains("toolConfig"));
  EXPECT_FALSE(none_with_history["toolConfig"].contains("toolChoice"));
  EXPECT_EQ(none_with_history["messages"][1]["content"][0]["toolUse"]["input"], Json::object());
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

TEST(BedrockRequest, UntranslatableRequestsNameTheField) {
  expect_refused(R"({"messages":[{"role":"user","content":"x"}],"n":2})", "n");
  expect_refused(
      R"({"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}}]}]})",
      "messages[0].content[1]");
  expect_refused(
      R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,AA"}}]}]})",
      "messages[0].content[0]");
  expect_refused(
      R"({"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]})",
      "messages[0].content[0]");
  expect_refused(R"({"messages":[{"role":"system","content":"only system"}]})", "messages");
  expect_refused(
      R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema"}})",
      "response_format");
  expect_refused(
      R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"sometimes"})",
      "tool_choice");
}

// -------------------------------------------------------- reply goldens ---

TEST(BedrockReply, BecomesChatCompletion) {
  Json reply = Json::parse(R"({
    "output": {"message": {"role": "assistant", "content": [
      {"text": "Let me check."},
      {"toolUse": {"toolUseId": "tooluse_9", "name": "weather", "input": {"city": "Oslo"}}}]}},
    "stopReason": "tool_use",
    "usage": {"inputTokens": 20, "outputTokens": 7, "totalTokens": 27, "cacheReadInputTokens": 5},
    "metrics": {"latencyMs": 120}
  })");
  Json out = to_chat_completion(reply, "chatcmpl-1", "haiku");
  EXPECT_EQ(out["id"], "chatcmpl-1");
  EXPECT_EQ(out["object"], "chat.completion");
  EXPECT_EQ(out["model"], "haiku");
  const Json& choice = out["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  EXPECT_EQ(choice["message"]["role"], "assistant");
  EXPECT_EQ(choice["message"]["content"], "Let me check.");
  EXPECT_EQ(choice["message"]["tool_calls"][0]["id"], "tooluse_9");
  EXPECT_EQ(choice["message"]["tool_calls"][0]["function"]["name"], "weather");
  EXPECT_EQ(
      Json::parse(choice["message"]["tool_calls"][0]["function"]["arguments"].get<std::string>()),
      Json::parse(R"({"city":"Oslo"})"));
  EXPECT_EQ(out["usage"],
            Json::parse(R"({"prompt_tokens":25,"completion_tokens":7,"total_tokens":32})"));
  EXPECT_EQ(finish_reason("end_turn"), "stop");
  EXPECT_EQ(finish_reason("stop_sequence"), "stop");
  EXPECT_EQ(finish_reason("max_tokens"), "length");
  EXPECT_EQ(finish_reason("guardrail_intervened"), "content_filter");
  EXPECT_EQ(finish_reason("content_filtered"), "content_filter");

  // Through the adapter: the client's model name, a generated id, usage known.
  Adapter adapter;
  std::string body = R"({"model":"haiku","messages":[]})";
  Reply r = adapter.translate_reply(
      request_for(body, false), 200,
      R"({"output":{"message":{"role":"assistant","content":[{"text":"Hi"}]}},
                                        "stopReason":"max_tokens","usage":{"inputTokens":3,"outputTokens":4,"totalTokens":7}})",
      no_headers());
  EXPECT_EQ(r.status, 200);
  Json c = Json::parse(r.body);
  EXPECT_EQ(c["model"], "haiku");
  EXPECT_TRUE(c["id"].get<std::string>().starts_with("chatcmpl-"));
  EXPECT_EQ(c["choices"][0]["message"]["content"], "Hi");
  EXPECT_EQ(c["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r.usage.prompt_tokens, 3);
  EXPECT_EQ(r.usage.completion_tokens, 4);
  EXPECT_TRUE(r.usage.reported);
  EXPECT_EQ(adapter.translate_reply(request_for(body, false), 200, "not json", no_headers()).status,
            502);
}

// ---------------------------------------------------------------- errors ---

bool has_header(const Reply& r, const std::string& name, const std::string& value) {
  for (const auto& [k, v] : r.headers) {
    if (k == name && v == value) return true;
  }
  return false;
}

TEST(BedrockErrors, MapToFaithfulStatusesWithRetryHints) {
  Adapter adapter;
  Connection c;
  c.name = "aws";
  Reply throttled = adapter.map_error(
      c, 429, R"({"message":"Too many requests, please wait before trying again."})", no_headers());
  EXPECT_EQ(throttled.status, 429);
  EXPECT_TRUE(has_header(throttled, "Retry-After", "1"));
  Json body = Json::parse(throttled.body);
  EXPECT_EQ(body["error"]["type"], "ThrottlingException");
  EXPECT_NE(body["error"]["message"].get<std::string>().find("'aws'"), std::string::npos);
  EXPECT_NE(body["error"]["message"].get<std::string>().find("Too many requests"),
            std::string::npos);

  Reply invalid = adapter.map_error(
      c, 400, R"({"message":"The provided model identifier is invalid."})", no_headers());
  EXPECT_EQ(invalid.status, 400);
  EXPECT_EQ(Json::parse(invalid.body)["error"]["type"], "ValidationException");
  EXPECT_TRUE(invalid.headers.empty());

  Reply missing = adapter.map_error(c, 404, R"({"Message":"Model not found"})", no_headers());
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(Json::parse(missing.body)["error"]["type"], "ResourceNotFoundException");

  Reply unavailable =
      adapter.map_error(c, 503, R"({"message":"Service unavailable"})", no_headers());
  EXPECT_EQ(unavailable.status, 503);
  EXPECT_TRUE(has_header(unavailable, "Retry-After", "1"));
  EXPECT_TRUE(has_header(unavailable, "x-should-retry", "true"));
  EXPECT_EQ(Json::parse(unavailable.body)["error"]["type"], "ServiceUnavailableException");
  Reply not_ready = adapter.map_error(
      c, 429, R"({"__type":"ModelNotReadyException","message":"Model is not ready"})",
      no_headers());
  EXPECT_EQ(not_ready.status, 503);
  EXPECT_EQ(Json::parse(not_ready.body)["error"]["type"], "ModelNotReadyException");
  Reply not_ready2 = adapter.map_error(
      c, 429, R"({"message":"Model is not ready for inference. Wait and try your request again."})",
      no_headers());
  EXPECT_EQ(not_ready2.status, 503);
  EXPECT_TRUE(has_header(not_ready2, "x-should-retry", "true"));

  Reply timeout = adapter.map_error(c, 408, R"({"message":"Model has timed out"})", no_headers());
  EXPECT_EQ(timeout.status, 504);
  EXPECT_EQ(Json::parse(timeout.body)["error"]["type"], "ModelTimeoutException");

  Reply odd = adapter.map_error(c, 500, "<html>oops</html>", no_headers());
  EXPECT_EQ(odd.status, 500);
  EXPECT_EQ(Json::parse(odd.body)["error"]["type"], "InternalServerException");
}

// ---------------------------------------------------------------- stream ---

std::string frames(const std::vector<eventstream::Message>& ms) {
  std::string out;
  for (const auto& m : ms) out += eventstream::encode(m);
  return out;
}

const std::string kStream = frames({
    event("messageStart", R"({"p":"abc","role":"assistant"})"),
    event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"Hi é"},"p":"ab"})"),
    event("contentBlockStop", R"({"contentBlockIndex":0})"),
    event("contentBlockStart",
          R"({"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tooluse_1","name":"f"}}})"),
    event("contentBlockDelta",
          R"({"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"a\":"}}})"),
    event("contentBlockDelta", R"({"contentBlockIndex":1,"delta":{"toolUse":{"input":"1}"}}})"),
    event("contentBlockStop", R"({"contentBlockIndex":1})"),
    event("messageStop", R"({"stopReason":"tool_use"})"),
    event(
        "metadata",
        R"({"usage":{"inputTokens":12,"outputTokens":9,"totalTokens":21},"metrics":{"latencyMs":300}})"),
});

std::vector<Json> data_events(const std::string& out, bool& done) {
  std::vector<Json> events;
  done = false;
  std::size_t pos = 0;
  while ((pos = out.find("data: ", pos)) != std::string::npos) {
    std::size_t end = out.find("\n\n", pos);
    std::string data = out.substr(pos + 6, end - pos - 6);
    if (data == "[DONE]")
      done = true;
    else
      events.push_back(Json::parse(data));
    pos = end;
  }
  return events;
}

TEST(BedrockStream, TranslatesEventsToChunksAtEveryByteBoundary) {
  std::string body = R"({"model":"haiku","stream":true,"stream_options":{"include_usage":true}})";
  InboundRequest in = request_for(body, true);
  Adapter adapter;
  std::string reference;
  for (std::size_t split = 0; split <= kStream.size(); ++split) {
    auto t = adapter.stream_translator(in);
    std::string out;
    t->feed(std::string_view(kStream).substr(0, split), out);
    t->feed(std::string_view(kStream).substr(split), out);
    ASSERT_TRUE(t->complete()) << "split at " << split;
    t->finish(out);
    EXPECT_EQ(t->usage().prompt_tokens, 12);
    EXPECT_EQ(t->usage().completion_tokens, 9);
    // "created" is the same second within a run and the id is per stream;
    // compare without them.
    std::string normalised;
    bool done = false;
    std::string id;
    for (Json ev : data_events(out, done)) {
      if (id.empty()) id = ev["id"];
      EXPECT_EQ(ev["id"], id);
      ev.erase("created");
      ev.erase("id");
      normalised += ev.dump() + "\n";
    }
    ASSERT_TRUE(done);
    EXPECT_EQ(out.find("[DONE]"), out.size() - 8);  // exactly once, last
    if (split == 0) reference = normalised;
    ASSERT_EQ(normalised, reference) << "split at " << split;
  }
  bool done = false;
  auto t = adapter.stream_translator(in);
  std::string out;
  t->feed(kStream, out);
  std::vector<Json> chunks = data_events(out, done);
  ASSERT_EQ(chunks.size(), 7u);
  EXPECT_EQ(chunks[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(chunks[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(chunks[0]["model"], "haiku");
  EXPECT_EQ(chunks[1]["choices"][0]["delta"]["content"], "Hi é");
  EXPECT_EQ(chunks[2]["choices"][0]["delta"]["tool_calls"][0]["id"], "tooluse_1");
  EXPECT_EQ(chunks[2]["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
  EXPECT_EQ(chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "f");
  EXPECT_EQ(chunks[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"], "{\"a\":");
  EXPECT_EQ(chunks[4]["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
  EXPECT_EQ(chunks[5]["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_TRUE(chunks[6]["choices"].empty());
  EXPECT_EQ(chunks[6]["usage"],
            Json::parse(R"({"prompt_tokens":12,"completion_tokens":9,"total_tokens":21})"));
  EXPECT_TRUE(done);
}

TEST(BedrockStream, NoUsageChunkUnlessAskedAndDoneWithoutMetadataOnFinish) {
  std::string body = R"({"model":"haiku","stream":true})";
  InboundRequest in = request_for(body, true);
  Adapter adapter;
  auto t = adapter.stream_translator(in);
  std::string out;
  t->feed(kStream, out);
  bool done = false;
  auto chunks = data_events(out, done);
  EXPECT_TRUE(done);
  EXPECT_EQ(chunks.size(), 6u);
  for (const Json& c : chunks) EXPECT_FALSE(c.contains("usage"));
  EXPECT_EQ(t->usage().completion_tokens, 9);  // still known to the proxy

  // messageStop but no metadata: [DONE] when the body ends.
  auto no_meta = adapter.stream_translator(in);
  std::string out2;
  no_meta->feed(frames({event("messageStart", R"({"role":"assistant"})"),
                        event("messageStop", R"({"stopReason":"end_turn"})")}),
                out2);
  EXPECT_FALSE(no_meta->complete());
  EXPECT_EQ(out2.find("[DONE]"), std::string::npos);
  no_meta->finish(out2);
  EXPECT_TRUE(no_meta->complete());
  chunks = data_events(out2, done);
  EXPECT_TRUE(done);
  EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], "stop");

  // Ended before messageStop: incomplete.
  auto cut = adapter.stream_translator(in);
  std::string out3;
  cut->feed(frames({event("messageStart", R"({"role":"assistant"})")}), out3);
  cut->finish(out3);
  EXPECT_FALSE(cut->complete());
}

TEST(BedrockStream, ExceptionsBecomeErrorEventsAndCorruptionBreaksTheStream) {
  std::string body = R"({"model":"haiku","stream":true})";
  InboundRequest in = request_for(body, true);
  Adapter adapter;
  auto t = adapter.stream_translator(in);
  std::string out;
  t->feed(frames({event("messageStart", R"({"role":"assistant"})"),
                  exception("throttlingException", R"({"message":"Too many tokens"})")}),
          out);
  t->finish(out);
  EXPECT_FALSE(t->complete());
  bool done = false;
  auto events = data_events(out, done);
  EXPECT_FALSE(done);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1]["error"]["type"], "throttlingException");
  EXPECT_EQ(events[1]["error"]["message"], "Too many tokens");

  std::string corrupt = kStream;
  corrupt[corrupt.size() - 1] ^= 0x01;  // the metadata frame's CRC
  auto broken = adapter.stream_translator(in);
  std::string out2;
  broken->feed(corrupt, out2);
  broken->finish(out2);
  EXPECT_FALSE(broken->complete());
  EXPECT_EQ(out2.find("[DONE]"), std::string::npos);
}

// ------------------------------------------------------------ embeddings ---

Json embed_body(const std::string& openai, std::string_view model) {
  return to_invoke_embeddings(Json::parse(openai), model);
}

void expect_embed_refused(const std::string& openai, std::string_view model,
                          const std::string& param, const std::string& says = "") {
  try {
    embed_body(openai, model);
    ADD_FAILURE() << "accepted for " << model << ": " << openai;
  } catch (const RequestError& e) {
    EXPECT_EQ(e.param(), param) << e.what();
    EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
  }
}

TEST(BedrockEmbeddings, FamiliesByModelId) {
  EXPECT_EQ(embedding_family("amazon.titan-embed-text-v1"), EmbeddingFamily::kTitanV1);
  EXPECT_EQ(embedding_family("amazon.titan-embed-g1-text-02"), EmbeddingFamily::kTitanV1);
  EXPECT_EQ(embedding_family("amazon.titan-embed-text-v2:0"), EmbeddingFamily::kTitanV2);
  EXPECT_EQ(embedding_family(
                "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0"),
            EmbeddingFamily::kTitanV2);
  EXPECT_EQ(embedding_family("cohere.embed-english-v3"), EmbeddingFamily::kCohereV3);
  EXPECT_EQ(embedding_family("cohere.embed-multilingual-v3"), EmbeddingFamily::kCohereV3);
  EXPECT_EQ(embedding_family("us.cohere.embed-v4:0"), EmbeddingFamily::kCohereV4);
  EXPECT_THROW(embedding_family("anthropic.claude-3-haiku-20240307-v1:0"), RequestError);
}

TEST(BedrockEmbeddings, RequestBodiesPerFamily) {
  EXPECT_EQ(embed_body(R"({"model":"e","input":"Hello"})", "amazon.titan-embed-text-v1"),
            Json::parse(R"({"inputText":"Hello"})"));
  // A one-element array is one text; v2 asks for unit vectors, as OpenAI's are.
  EXPECT_EQ(embed_body(R"({"model":"e","input":["Hello"],"encoding_format":"base64"})",
                       "amazon.titan-embed-text-v2:0"),
            Json::parse(R"({"inputText":"Hello","normalize":true})"));
  EXPECT_EQ(embed_body(R"({"model":"e","input":"Hi","dimensions":256,"user":"u1"})",
                       "amazon.titan-embed-text-v2:0"),
            Json::parse(R"({"inputText":"Hi","dimensions":256,"normalize":true})"));
  EXPECT_EQ(embed_body(R"({"model":"e","input":["a","b c"],"encoding_format":"float"})",
                       "cohere.embed-english-v3"),
            Json::parse(R"({"texts":["a","b c"],"input_type":"search_document"})"));
  EXPECT_EQ(embed_body(R"({"model":"e","input":"q","input_type":"search_query"})",
                       "cohere.embed-multilingual-v3"),
            Json::parse(R"({"texts":["q"],"input_type":"search_query"})"));
  EXPECT_EQ(embed_body(R"({"model":"e","input":"q","dimensions":512})", "cohere.embed-v4:0"),
            Json::parse(R"({"texts":["q"],"input_type":"search_document","output_dimension":512})"));
}

TEST(BedrockEmbeddings, UntranslatableRequestsNameTheField) {
  // Titan embeds one text per InvokeModel call.
  expect_embed_refused(R"({"model":"e","input":["a","b"]})", "amazon.titan-embed-text-v2:0",
                       "input", "one text per request");
  expect_embed_refused(R"({"model":"e","input":["a","b"]})", "amazon.titan-embed-text-v1",
                       "input", "Titan");
  expect_embed_refused(R"({"model":"e","input":[1,2,3]})", "cohere.embed-english-v3", "input",
                       "token-id");
  expect_embed_refused(R"({"model":"e","input":[[1,2]]})", "amazon.titan-embed-text-v2:0",
                       "input");
  expect_embed_refused(R"({"model":"e","input":[]})", "cohere.embed-english-v3", "input");
  expect_embed_refused(R"({"model":"e","input":"x","dimensions":256})",
                       "amazon.titan-embed-text-v1", "dimensions");
  expect_embed_refused(R"({"model":"e","input":"x","dimensions":256})", "cohere.embed-english-v3",
                       "dimensions");
  expect_embed_refused(R"({"model":"e","input":"x","encoding_format":"int8"})",
                       "amazon.titan-embed-text-v2:0", "encoding_format");
  expect_embed_refused(R"({"model":"e","input":"x"})", "anthropic.claude-3-haiku-20240307-v1:0",
                       "model", "not a supported embedding model");
}

TEST(BedrockEmbeddings, BuildsASignedInvokeModelRequest) {
  Connection c;
  c.name = "aws";
  c.provider = Provider::kBedrock;
  c.endpoint = "http://127.0.0.1:9000";
  c.region = "us-west-2";
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  routing::Route route;
  route.connection = &c;
  route.remote = "amazon.titan-embed-text-v2:0";
  // "stream": true on an embeddings request changes nothing: InvokeModel, JSON.
  std::string body = R"({"model":"titan","input":"Hello","stream":true})";
  InboundRequest in = request_for(body, true);
  in.endpoint = Endpoint::kEmbeddings;
  Adapter adapter;
  UpstreamRequest req = adapter.build_request_at(in, route, 1440938160);
  EXPECT_EQ(req.target, "/model/amazon.titan-embed-text-v2%3A0/invoke");
  EXPECT_EQ(Json::parse(req.body), Json::parse(R"({"inputText":"Hello","normalize":true})"));
  EXPECT_EQ(header(req, "Accept"), "application/json");
  sigv4::Request expected;
  expected.method = "POST";
  expected.path = req.target;
  expected.payload = req.body;
  expected.headers = {{"host", "127.0.0.1:9000"},
                      {"content-type", "application/json"},
                      {"x-amz-date", "20150830T123600Z"}};
  auto s = sigv4::sign(expected, {c.access_key_id, c.secret_access_key, ""}, "us-west-2",
                       "bedrock", "20150830T123600Z");
  EXPECT_EQ(header(req, "Authorization"), s.authorization);
  EXPECT_TRUE(s.canonical_request.starts_with(
      "POST\n/model/amazon.titan-embed-text-v2%253A0/invoke\n\n"))
      << s.canonical_request;

  // Refusals happen before anything is sent; legacy completions are not served.
  std::string two = R"({"model":"titan","input":["a","b"]})";
  InboundRequest batch = request_for(two, false);
  batch.endpoint = Endpoint::kEmbeddings;
  EXPECT_THROW(adapter.build_request_at(batch, route, 1440938160), RequestError);
  std::string prompt = R"({"model":"titan","prompt":"x"})";
  InboundRequest legacy = request_for(prompt, false);
  legacy.endpoint = Endpoint::kCompletions;
  EXPECT_THROW(adapter.build_request_at(legacy, route, 1440938160), RequestError);
}

std::vector<float> floats_of(const Json& b64) {
  std::string raw;
  EXPECT_TRUE(crypto::base64_decode(b64.get<std::string>(), raw));
  EXPECT_EQ(raw.size() % 4, 0u);
  std::vector<float> out;
  for (std::size_t i = 0; i + 4 <= raw.size(); i += 4) {
    auto b = [&](std::size_t k) {
      return static_cast<std::uint32_t>(static_cast<unsigned char>(raw[i + k]));
    };
    std::uint32_t bits = b(0) | b(1) << 8 | b(2) << 16 | b(3) << 24;  // little-endian
    float f;
    std::memcpy(&f, &bits, 4);
    out.push_back(f);
  }
  return out;
}

TEST(BedrockEmbeddings, RepliesBecomeOpenAIEmbeddingLists) {
  Adapter adapter;
  std::string body = R"({"model":"titan","input":"Hello"})";
  InboundRequest in = request_for(body, false);
  in.endpoint = Endpoint::kEmbeddings;
  Reply titan = adapter.translate_reply(
      in, 200,
      R"({"embedding":[0.5,-1.25,0.0],"inputTextTokenCount":7,"embeddingsByType":{"float":[0.5,-1.25,0.0]}})",
      no_headers());
  EXPECT_EQ(titan.status, 200);
  EXPECT_EQ(Json::parse(titan.body), Json::parse(R"({"object":"list",
    "data":[{"object":"embedding","index":0,"embedding":[0.5,-1.25,0.0]}],
    "model":"titan","usage":{"prompt_tokens":7,"total_tokens":7}})"));
  EXPECT_EQ(titan.usage.prompt_tokens, 7);
  EXPECT_EQ(titan.usage.completion_tokens, 0);
  EXPECT_TRUE(titan.usage.reported);

  std::string b64 = R"({"model":"cohere","input":["a","b"],"encoding_format":"base64"})";
  InboundRequest in64 = request_for(b64, false);
  in64.endpoint = Endpoint::kEmbeddings;
  Reply cohere = adapter.translate_reply(
      in64, 200,
      R"({"embeddings":[[0.5,-1.25],[2.0,0.125]],"id":"e-1","response_type":"embeddings_floats","texts":["a","b"]})",
      no_headers());
  EXPECT_EQ(cohere.status, 200);
  Json list = Json::parse(cohere.body);
  EXPECT_EQ(list["model"], "cohere");
  ASSERT_EQ(list["data"].size(), 2u);
  EXPECT_EQ(list["data"][1]["index"], 1);
  EXPECT_EQ(floats_of(list["data"][0]["embedding"]), (std::vector<float>{0.5f, -1.25f}));
  EXPECT_EQ(floats_of(list["data"][1]["embedding"]), (std::vector<float>{2.0f, 0.125f}));
  // 0.5f little-endian is 00 00 00 3F.
  EXPECT_EQ(list["data"][0]["embedding"], "AAAAPwAAoL8=");
  EXPECT_EQ(list["usage"], Json::parse(R"({"prompt_tokens":0,"total_tokens":0})"));

  // Cohere's embeddings_by_type shape (v4 / embedding_types).
  Reply by_type = adapter.translate_reply(
      in, 200,
      R"({"embeddings":{"float":[[1.0]]},"id":"e-2","response_type":"embeddings_by_type"})",
      no_headers());
  EXPECT_EQ(Json::parse(by_type.body)["data"][0]["embedding"], Json::parse("[1.0]"));

  Reply odd =
      adapter.translate_reply(in, 200, R"({"completion":"not an embedding"})", no_headers());
  EXPECT_EQ(odd.status, 502);
  EXPECT_EQ(Json::parse(odd.body)["error"]["code"], "upstream_bad_reply");
  EXPECT_EQ(adapter.translate_reply(in, 200, "[1,2]", no_headers()).status, 502);
}

// Bedrock reports an InvokeModel call's input tokens only in the
// X-Amzn-Bedrock-Input-Token-Count reply header: Cohere's body has no count.
TEST(BedrockEmbeddings, InputTokenCountComesFromTheReplyHeader) {
  Adapter adapter;
  std::string body = R"({"model":"cohere","input":["a b","c"]})";
  InboundRequest in = request_for(body, false);
  in.endpoint = Endpoint::kEmbeddings;
  const std::string cohere_reply =
      R"({"embeddings":[[0.5],[2.0]],"id":"e-1","response_type":"embeddings_floats","texts":["a b","c"]})";
  HeaderList aws({{"x-amzn-RequestId", "5d1e7f2a"},
                  {"X-Amzn-Bedrock-Invocation-Latency", "31"},
                  {"X-Amzn-Bedrock-Input-Token-Count", "12"}});
  Reply cohere = adapter.translate_reply(in, 200, cohere_reply, aws);
  EXPECT_EQ(cohere.status, 200);
  EXPECT_EQ(cohere.usage.prompt_tokens, 12);
  EXPECT_EQ(cohere.usage.completion_tokens, 0);
  EXPECT_TRUE(cohere.usage.reported);
  EXPECT_EQ(Json::parse(cohere.body)["usage"],
            Json::parse(R"({"prompt_tokens":12,"total_tokens":12})"));

  // Header names are case-insensitive (HTTP/2 proxies send them lower-case).
  HeaderList lower({{"x-amzn-bedrock-input-token-count", " 5 "}});
  EXPECT_EQ(adapter.translate_reply(in, 200, cohere_reply, lower).usage.prompt_tokens, 5);

  // Titan: the header (what AWS bills) wins over the body's inputTextTokenCount,
  // which is still used when the header is missing or not a count.
  const std::string titan_reply = R"({"embedding":[0.5],"inputTextTokenCount":7})";
  EXPECT_EQ(adapter.translate_reply(in, 200, titan_reply, aws).usage.prompt_tokens, 12);
  EXPECT_EQ(adapter.translate_reply(in, 200, titan_reply, no_headers()).usage.prompt_tokens, 7);
  for (const char* bad : {"", "abc", "-3", "12x", "99999999999999999999"}) {
    HeaderList odd({{"X-Amzn-Bedrock-Input-Token-Count", bad}});
    EXPECT_EQ(input_token_count(odd), std::nullopt) << bad;
    EXPECT_EQ(adapter.translate_reply(in, 200, titan_reply, odd).usage.prompt_tokens, 7) << bad;
    EXPECT_EQ(adapter.translate_reply(in, 200, cohere_reply, odd).usage.prompt_tokens, 0) << bad;
  }
}

// restJson1 errors name their type only in the x-amzn-ErrorType header.
TEST(BedrockErrors, TypeFromTheErrorTypeHeaderWhenTheBodyHasNone) {
  Adapter adapter;
  Connection c;
  c.name = "aws";
  // A quota error is HTTP 400: from the status alone it would pass for a
  // ValidationException; it is a 429 the client should back off from.
  HeaderList quota({{"x-amzn-ErrorType",
                     "ServiceQuotaExceededException:http://internal.amazon.com/coral/"
                     "com.amazon.bedrock/"}});
  Reply r =
      adapter.map_error(c, 400, R"({"message":"Your request exceeds the service quota."})", quota);
  EXPECT_EQ(r.status, 429);
  EXPECT_TRUE(has_header(r, "Retry-After", "1"));
  Json body = Json::parse(r.body);
  EXPECT_EQ(body["error"]["type"], "ServiceQuotaExceededException");
  EXPECT_EQ(body["error"]["code"], "ServiceQuotaExceededException");

  // A namespaced type, and a 429 that is really "model not ready" (a 503).
  HeaderList not_ready({{"X-Amzn-ErrorType", "com.amazon.bedrock#ModelNotReadyException"}});
  Reply nr = adapter.map_error(c, 429, R"({"message":"Try again."})", not_ready);
  EXPECT_EQ(nr.status, 503);
  EXPECT_EQ(Json::parse(nr.body)["error"]["type"], "ModelNotReadyException");

  // The body's own __type comes first; a blank header changes nothing.
  Reply both =
      adapter.map_error(c, 400, R"({"__type":"ValidationException","message":"bad"})", quota);
  EXPECT_EQ(both.status, 400);
  EXPECT_EQ(Json::parse(both.body)["error"]["type"], "ValidationException");
  HeaderList blank({{"x-amzn-ErrorType", ""}});
  Reply guessed = adapter.map_error(c, 404, R"({"message":"gone"})", blank);
  EXPECT_EQ(Json::parse(guessed.body)["error"]["type"], "ResourceNotFoundException");
}

}  // namespace
}  // namespace llmproxy::providers::bedrock
