"""End to end through the real binary: an `anthropic` connection behind a test
upstream that speaks Anthropic's Messages API (request shape checked, replies,
the SSE event sequence and errors as Anthropic documents them), and the
inbound /v1/messages endpoint for Anthropic-SDK clients."""

import json
import http.server
import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Serve, Workspace  # noqa: E402

UPSTREAM_KEY = "sk-ant-upstream-secret-0001"


def sse(event, data):
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class FakeAnthropic:
    """POST /v1/messages per https://docs.anthropic.com/en/api/messages."""

    def __init__(self):
        self.requests = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if self.path != "/v1/messages" or self.headers.get("x-api-key") != UPSTREAM_KEY:
                    return self.reply(401, {"type": "error", "error": {
                        "type": "authentication_error", "message": "invalid x-api-key"}})
                if body["model"] == "claude-busy":
                    return self.reply(529, {"type": "error", "error": {
                        "type": "overloaded_error", "message": "Overloaded"}})
                text = body["messages"][-1]["content"]
                text = text if isinstance(text, str) else text[0].get("text", "")
                if body.get("stream"):
                    return self.stream(body, text)
                self.reply(200, {
                    "id": "msg_01", "type": "message", "role": "assistant", "model": body["model"],
                    "content": [{"type": "text", "text": "echo: " + text}],
                    "stop_reason": "end_turn", "stop_sequence": None,
                    "usage": {"input_tokens": 11, "output_tokens": 3}})

            def reply(self, status, doc):
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def stream(self, body, text):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                events = [
                    sse("message_start", {"type": "message_start", "message": {
                        "id": "msg_02", "type": "message", "role": "assistant", "content": [],
                        "model": body["model"], "stop_reason": None, "stop_sequence": None,
                        "usage": {"input_tokens": 13, "output_tokens": 1}}}),
                    sse("content_block_start", {"type": "content_block_start", "index": 0,
                                                "content_block": {"type": "text", "text": ""}}),
                    sse("ping", {"type": "ping"}),
                ]
                for word in ("echo:", text):
                    events.append(sse("content_block_delta", {
                        "type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": word + " "}}))
                events += [
                    sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
                    sse("message_delta", {"type": "message_delta",
                                          "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                          "usage": {"output_tokens": 4}}),
                    sse("message_stop", {"type": "message_stop"}),
                ]
                for e in events:
                    self.wfile.write(e)
                    self.wfile.flush()
                self.close_connection = True

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class AnthropicTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ws = Workspace()
        cls.addClassCleanup(cls.ws.cleanup)
        cls.fake = FakeAnthropic()
        cls.addClassCleanup(cls.fake.stop)
        cls.ws.connection("claude", "anthropic", endpoint=cls.fake.base_url, api_key=UPSTREAM_KEY)
        cls.ws.connection("demo", "mock")
        cls.ws.model("sonnet", "claude-sonnet-4-5", "claude", input_price=3, output_price=15)
        cls.ws.model("busy", "claude-busy", "claude")
        cls.ws.model("echo", "echo-1", "demo")
        cls.key, _ = cls.ws.vkey("agent", model_id=["sonnet", "busy", "echo"])
        cls.serve = Serve(cls.ws)
        cls.addClassCleanup(cls.serve.stop)

    def test_openai_client_to_anthropic_connection(self):
        r = self.serve.post("/v1/chat/completions", {
            "model": "sonnet", "stop": "END",
            "messages": [{"role": "system", "content": "Be terse."},
                         {"role": "user", "content": "hi there"}]},
            key=self.key, headers={"x-request-id": "it-ant-1"})
        self.assertEqual(r.status, 200, r.body)
        doc = r.json()
        self.assertEqual(doc["object"], "chat.completion")
        self.assertEqual(doc["choices"][0]["message"]["content"], "echo: hi there")
        self.assertEqual(doc["choices"][0]["finish_reason"], "stop")
        self.assertEqual(doc["usage"], {"prompt_tokens": 11, "completion_tokens": 3,
                                        "total_tokens": 14})
        sent = self.fake.requests[-1]
        self.assertEqual(sent["body"]["model"], "claude-sonnet-4-5")
        self.assertEqual(sent["body"]["system"], "Be terse.")
        self.assertEqual(sent["body"]["max_tokens"], 4096)
        self.assertEqual(sent["body"]["stop_sequences"], ["END"])
        self.assertEqual(sent["headers"].get("anthropic-version"), "2023-06-01")
        self.assertNotIn(self.key, json.dumps(sent))
        rec = self.ws.wait_usage_record("it-ant-1")
        self.assertEqual((rec["prompt_tokens"], rec["completion_tokens"], rec["status"]), (11, 3, 200))
        self.assertAlmostEqual(rec["cost"], (11 * 3 + 3 * 15) / 1e6)

    def test_openai_stream_from_anthropic_events(self):
        s = self.serve.stream("/v1/chat/completions", {
            "model": "sonnet", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "yo"}]},
            key=self.key, headers={"x-request-id": "it-ant-2"})
        self.assertEqual(s.status, 200)
        data = s.read_all()
        s.close()
        self.assertEqual(data[-1], "[DONE]")
        chunks = [json.loads(d) for d in data[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        self.assertEqual(text, "echo: yo ")
        self.assertEqual(chunks[-1]["usage"]["total_tokens"], 17)
        rec = self.ws.wait_usage_record("it-ant-2")
        self.assertEqual((rec["prompt_tokens"], rec["completion_tokens"]), (13, 4))

    def test_overloaded_becomes_503_with_retry_hints(self):
        r = self.serve.post("/v1/chat/completions", {
            "model": "busy", "messages": [{"role": "user", "content": "x"}]}, key=self.key)
        self.assertEqual(r.status, 503, r.body)
        self.assertEqual(r.json()["error"]["type"], "overloaded_error")
        self.assertIsNotNone(r.header("retry-after"))

    def test_untranslatable_request_refused_before_sending(self):
        before = len(self.fake.requests)
        r = self.serve.post("/v1/chat/completions", {
            "model": "sonnet", "n": 2, "messages": [{"role": "user", "content": "x"}]}, key=self.key)
        self.assertEqual(r.status, 400, r.body)
        self.assertEqual(r.json()["error"]["param"], "n")
        self.assertEqual(len(self.fake.requests), before)

    def test_inbound_messages_pass_through_to_anthropic(self):
        r = self.serve.post("/v1/messages", {
            "model": "sonnet", "max_tokens": 50, "messages": [{"role": "user", "content": "pass"}]},
            headers={"x-api-key": self.key, "anthropic-version": "2023-06-01",
                     "anthropic-beta": "tools-2024-04-04"})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["type"], "message")
        self.assertEqual(r.json()["content"][0]["text"], "echo: pass")
        sent = self.fake.requests[-1]
        self.assertEqual(sent["body"], {"model": "claude-sonnet-4-5", "max_tokens": 50,
                                        "messages": [{"role": "user", "content": "pass"}]})
        self.assertEqual(sent["headers"].get("anthropic-beta"), "tools-2024-04-04")

    def test_inbound_messages_translated_for_other_providers(self):
        r = self.serve.post("/v1/messages", {
            "model": "echo", "max_tokens": 50,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "via mock"}]}]},
            headers={"x-api-key": self.key})
        self.assertEqual(r.status, 200, r.body)
        doc = r.json()
        self.assertEqual(doc["type"], "message")
        self.assertEqual(doc["content"], [{"type": "text", "text": "via mock"}])
        self.assertEqual(doc["stop_reason"], "end_turn")
        s = self.serve.stream("/v1/messages", {
            "model": "echo", "max_tokens": 50, "stream": True,
            "messages": [{"role": "user", "content": "a b"}]}, headers={"x-api-key": self.key})
        types = [json.loads(d)["type"] for d in s.read_all()]
        s.close()
        self.assertEqual(types[0], "message_start")
        self.assertEqual(types[-2:], ["message_delta", "message_stop"])
        self.assertIn("content_block_delta", types)

    def test_inbound_errors_in_anthropic_shape(self):
        r = self.serve.post("/v1/messages", {"model": "sonnet", "messages": []},
                            headers={"x-api-key": "wrong"})
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json(), {"type": "error", "error": {
            "type": "authentication_error", "message": "incorrect API key provided"}})


if __name__ == "__main__":
    unittest.main()
