#!/usr/bin/env python3
"""Integration tests of `llm-proxy serve` against a fake OpenAI upstream.

Run all:        python3 tests/integration/test_serve.py
Run one class:  python3 tests/integration/test_serve.py StreamingTest
The binary is $LLM_PROXY_BIN, else build/llm-proxy next to the sources.
The database is a temporary SQLite file, or what LLM_PROXY_TEST_DB_URL says
(postgres, mongodb, or a server's URL: see harness.py), e.g.
  LLM_PROXY_TEST_DB_URL=mongodb python3 tests/integration/test_serve.py ReloadTest
"""

import fcntl
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import unittest
import uuid

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fake_openai as fo  # noqa: E402
from harness import (BIN, Serve, Workspace, base_env, chat_body, closed_port, read_response,  # noqa: E402
                     refuses_connections, request, serve_command, wait_until)

UPSTREAM_KEY = "sk-upstream-connection-secret-42"
RELOAD_DEADLINE = 2.0  # the config watcher polls every 0.5 s


def rid(tag="r"):
    return f"it-{tag}-{uuid.uuid4().hex[:12]}"


class ServeCase(unittest.TestCase):
    """Base: one workspace, one fake upstream and one `serve` per test class."""

    serve_args = ()
    serve_env = None
    with_fake = True

    @classmethod
    def setUpClass(cls):
        cls.ws = Workspace()
        cls.addClassCleanup(cls.ws.cleanup)
        cls.fake = None
        if cls.with_fake:
            cls.fake = fo.FakeOpenAI().start()
            cls.addClassCleanup(cls.fake.stop)
        cls.provision()
        cls.serve = Serve(cls.ws, *cls.serve_args, env=cls.serve_env)
        cls.addClassCleanup(cls._stop_serve, cls.serve)

    @classmethod
    def provision(cls):
        pass

    @staticmethod
    def _stop_serve(serve):
        if not serve.running:
            return
        rc = serve.stop()
        if rc != 0:
            raise AssertionError(f"serve exited {rc} after SIGTERM; stderr:\n{serve.stderr()}")

    # --- assertion helpers
    def assertOpenAIError(self, resp, status, type_=None, code=None, param=None):
        self.assertEqual(resp.status, status, resp.body)
        self.assertTrue((resp.header("content-type") or "").startswith("application/json"),
                        resp.headers)
        body = resp.json()
        self.assertEqual(set(body), {"error"}, body)
        err = body["error"]
        self.assertEqual(set(err), {"message", "type", "param", "code"}, err)
        self.assertIsInstance(err["message"], str)
        self.assertTrue(err["message"])
        if type_ is not None:
            self.assertEqual(err["type"], type_, err)
        if code is not None:
            self.assertEqual(err["code"], code, err)
        if param is not None:
            self.assertEqual(err["param"], param, err)
        return err

    def assertHealthy(self, serve=None):
        r = (serve or self.serve).get("/health")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["status"], "ok")


def assert_no_secret(test, rec, secret):
    for name, value in rec.header_list:
        test.assertNotIn(secret, value, f"header {name} carries the virtual key")
    test.assertNotIn(secret.encode(), rec.body)
    test.assertNotIn(secret, rec.target)


# ---------------------------------------------------------------------------
class PassThroughTest(ServeCase):
    """Non-streaming OpenAI pass-through, headers, paths, providers, keep-alive."""

    @classmethod
    def provision(cls):
        ws, base = cls.ws, cls.fake.base_url
        ws.connection("up", "openai", endpoint=base + "/v1", api_key=UPSTREAM_KEY)
        ws.connection("side", "openai", endpoint=base + "/v1", api_key="sk-side",
                      header=["OpenAI-Organization: org-test-123"])
        ws.connection("az", "azure", endpoint=base, api_key="az-secret-key",
                      api_version="2024-06-01")
        ws.connection("ol", "ollama", endpoint=base)
        ws.model("gpt", "gpt-4o-mini-2024-07-18", "up")
        ws.model("limited", "limited-remote", "up")
        ws.model("hidden", "hidden-remote", "up")
        ws.model("reuse", "reuse-remote", "up")
        ws.model("stale", "stale-remote", "up")
        ws.model("slowish", "slowish-remote", "up")
        ws.model("priced", "priced-remote", "up", input_price=2.5, output_price=10)
        cls.fake.on("slowish-remote", fo.slow(0.3))
        cls.fake.on("stale-remote", fo.close_after(fo.chat_reply()))
        ws.model("comp", "gpt-3.5-turbo-instruct", "up")
        ws.model("emb", "text-embedding-3-small", "up")
        ws.model("side-a", "side-a-remote", "side")
        ws.model("side-b", "side-b-remote", "side")
        ws.model("azm", "my-deployment", "az")
        ws.model("llama", "llama3.2", "ol")
        cls.key, _ = ws.vkey("client", conn_id=["side"],
                             model_id=["gpt", "reuse", "stale", "slowish", "priced", "comp", "emb",
                                       "azm", "llama"])
        cls.limited_key, _ = ws.vkey("limited-client", model_id=["limited"], rpm=100,
                                     token_limit=100000)

    def test_chat_non_streaming_arrives_intact(self):
        content = [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {
                "url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
                "detail": "low"}},
        ]
        body = {
            "metadata": {"model": "gpt", "note": "\"model\": \"gpt\""},
            "model": "gpt",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": content},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21.5}"},
                {"role": "user", "content": "and tomorrow? ünïcødé 世界 \u2028 \"quoted\""},
            ],
            "tools": [{"type": "function", "function": {
                "name": "get_weather", "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"], "additionalProperties": False},
                "strict": True}}],
            "tool_choice": "auto",
            "temperature": 0.2,
            "top_p": 1e-05,
            "max_completion_tokens": 50,
            "seed": 12345678901234567890,
            "user": "end-user-7",
            "x_vendor_extension": {"nested": [1, 2.5, {"a": None, "b": [True, False]}]},
        }
        # Unusual but valid formatting, to catch any re-serialisation slip.
        raw = json.dumps(body, indent=1, ensure_ascii=False).encode()
        r = request(self.serve.port, "POST", "/v1/chat/completions", raw,
                    {"Content-Type": "application/json", "Authorization": "Bearer " + self.key,
                     "X-Request-Id": "it-client-chosen-id-1"})
        self.assertEqual(r.status, 200, r.body)
        rec = self.fake.wait_for_request(lambda q: q.model == "gpt-4o-mini-2024-07-18" and
                                         q.json.get("user") == "end-user-7")
        self.assertEqual(rec.method, "POST")
        self.assertEqual(rec.path, "/v1/chat/completions")
        self.assertEqual(rec.raw_query, "")
        self.assertEqual(rec.header("authorization"), "Bearer " + UPSTREAM_KEY)
        self.assertTrue(rec.header("content-type").startswith("application/json"))
        self.assertEqual(rec.header("host"), f"127.0.0.1:{self.fake.port}")
        self.assertEqual(int(rec.header("content-length")), len(rec.body))
        expected = dict(body, model="gpt-4o-mini-2024-07-18")
        self.assertEqual(rec.json, expected)
        self.assertNotIn("stream_options", rec.json)
        assert_no_secret(self, rec, self.key)
        # The client gets the upstream body unchanged.
        upstream_reply = fo.chat_completion("gpt-4o-mini-2024-07-18",
                                            "and tomorrow? ünïcødé 世界 \u2028 \"quoted\"", (9, 4))
        self.assertEqual(r.body, json.dumps(upstream_reply).encode())
        self.assertTrue(r.header("content-type").startswith("application/json"))
        self.assertEqual(r.header("x-request-id"), "it-client-chosen-id-1")
        # An unlimited assignment advertises no limits.
        self.assertFalse([h for h in r.headers if h.startswith("x-ratelimit-")], r.headers)

    def test_request_id_generated_when_absent(self):
        ids = set()
        for _ in range(2):
            r = self.serve.post("/v1/chat/completions", chat_body("gpt"), key=self.key)
            self.assertEqual(r.status, 200, r.body)
            self.assertTrue(r.header("x-request-id"))
            ids.add(r.header("x-request-id"))
        self.assertEqual(len(ids), 2)
        # ... and it names the usage record.
        self.ws.wait_usage_record(ids.pop())
        # A client id that is not a sane token is replaced.
        r = self.serve.post("/v1/chat/completions", chat_body("gpt"), key=self.key,
                            headers={"x-request-id": "has spaces in it"})
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(r.header("x-request-id"))
        self.assertNotEqual(r.header("x-request-id"), "has spaces in it")

    def test_escaped_model_name_and_chunked_request_body(self):
        raw = b'{"model": "g\\u0070t", "messages": [{"role": "user", "content": "escaped"}]}'
        conn = http.client.HTTPConnection("127.0.0.1", self.serve.port, timeout=10)
        try:
            conn.request("POST", "/v1/chat/completions", body=iter([raw[:20], raw[20:]]),
                         headers={"Authorization": "Bearer " + self.key,
                                  "Content-Type": "application/json"},
                         encode_chunked=True)
            r = read_response(conn.getresponse())
        finally:
            conn.close()
        self.assertEqual(r.status, 200, r.body)
        rec = self.fake.wait_for_request(
            lambda q: q.user_text == "escaped")
        self.assertEqual(rec.json["model"], "gpt-4o-mini-2024-07-18")
        self.assertIsNone(rec.header("transfer-encoding"))
        self.assertEqual(int(rec.header("content-length")), len(rec.body))

    def test_connection_extra_headers(self):
        r = self.serve.post("/v1/chat/completions", chat_body("side-a"), key=self.key)
        self.assertEqual(r.status, 200, r.body)
        rec = self.fake.wait_for_request(lambda q: q.model == "side-a-remote")
        self.assertEqual(rec.header("openai-organization"), "org-test-123")
        self.assertEqual(rec.header("authorization"), "Bearer sk-side")

    def test_pipelined_requests_on_one_connection(self):
        bodies = [json.dumps(chat_body("gpt", f"pipelined {i}")).encode() for i in range(3)]
        payload = b"".join(
            (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
             f"Authorization: Bearer {self.key}\r\nContent-Type: application/json\r\n"
             f"X-Request-Id: pipe-{i}\r\nContent-Length: {len(b)}\r\n\r\n").encode() + b
            for i, b in enumerate(bodies))
        with socket.create_connection(("127.0.0.1", self.serve.port), timeout=10) as s:
            s.sendall(payload)
            for i in range(3):
                resp = http.client.HTTPResponse(s)
                resp.begin()
                r = read_response(resp)
                self.assertEqual(r.status, 200, r.body)
                self.assertEqual(r.header("x-request-id"), f"pipe-{i}")
                self.assertEqual(r.json()["choices"][0]["message"]["content"], f"pipelined {i}")

    def test_request_pipelined_while_the_upstream_works(self):
        # The second request arrives while the proxy watches the client socket
        # for a disconnect during the first one's upstream exchange.
        def raw(i):
            b = json.dumps(chat_body("slowish", f"while busy {i}")).encode()
            return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: Bearer {self.key}\r\nX-Request-Id: busy-{i}\r\n"
                    f"Content-Length: {len(b)}\r\n\r\n").encode() + b
        with socket.create_connection(("127.0.0.1", self.serve.port), timeout=10) as s:
            s.sendall(raw(0))
            self.fake.wait_for_request(
                lambda q: q.user_text == "while busy 0")
            s.sendall(raw(1))
            for i in range(2):
                resp = http.client.HTTPResponse(s)
                resp.begin()
                r = read_response(resp)
                self.assertEqual(r.status, 200, r.body)
                self.assertEqual(r.header("x-request-id"), f"busy-{i}")
                self.assertEqual(r.json()["choices"][0]["message"]["content"], f"while busy {i}")

    def test_client_connection_close_is_honoured(self):
        with socket.create_connection(("127.0.0.1", self.serve.port), timeout=10) as s:
            body = json.dumps(chat_body("gpt", "then close")).encode()
            s.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       f"Authorization: Bearer {self.key}\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
            resp = http.client.HTTPResponse(s)
            resp.begin()
            r = read_response(resp)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.header("connection"), "close")
            self.assertEqual(s.recv(1), b"")  # and the proxy closed its side

    def test_stale_pooled_upstream_connection_is_retried(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.serve.port, timeout=10)
        try:
            for i in range(3):
                r = request(self.serve.port, "POST", "/v1/chat/completions",
                            chat_body("stale", f"stale {i}"), key=self.key, conn=conn)
                self.assertEqual(r.status, 200, r.body)
                self.assertEqual(r.json()["choices"][0]["message"]["content"], f"stale {i}")
        finally:
            conn.close()
        seen = self.fake.requests("stale-remote")
        self.assertEqual(len(seen), 3)  # each sent once: never a duplicate
        self.assertEqual(len({q.conn_id for q in seen}), 3)

    def test_usage_record_of_non_streamed_reply(self):
        req_id = rid("usage")
        r = self.serve.post("/v1/chat/completions", chat_body("gpt", "count me"), key=self.key,
                            headers={"x-request-id": req_id})
        self.assertEqual(r.status, 200, r.body)
        rec = self.ws.wait_usage_record(req_id)
        self.assertEqual(rec["status"], 200)
        self.assertEqual(rec["prompt_tokens"], 9)
        self.assertEqual(rec["completion_tokens"], 4)
        self.assertEqual(rec["total_tokens"], 13)
        self.assertEqual(rec["model"], "gpt")
        self.assertEqual(rec["conn_name"], "up")
        self.assertEqual(rec["vkey_name"], "client")

    def test_usage_record_cost(self):
        req_id = rid("cost")
        r = self.serve.post("/v1/chat/completions", chat_body("priced"), key=self.key,
                            headers={"x-request-id": req_id})
        self.assertEqual(r.status, 200, r.body)
        u = self.ws.wait_usage_record(req_id)
        # 9 prompt tokens at $2.50/M + 4 completion tokens at $10/M.
        self.assertAlmostEqual(u["cost"], (9 * 2.5 + 4 * 10) / 1e6, places=12)
        self.assertGreater(u["latency_ms"], 0)
        self.assertGreaterEqual(u["latency_ms"], u["ttft_ms"])

    def test_rate_limit_headers_when_limits_are_set(self):
        r1 = self.serve.post("/v1/chat/completions", chat_body("limited"), key=self.limited_key)
        self.assertEqual(r1.status, 200, r1.body)
        self.assertEqual(r1.header("x-ratelimit-limit-requests"), "100")
        self.assertEqual(r1.header("x-ratelimit-remaining-requests"), "99")
        self.assertTrue(r1.header("x-ratelimit-reset-requests"))
        self.assertEqual(r1.header("x-ratelimit-limit-tokens"), "100000")
        # Counted after the request's own claim: its prompt estimate and the
        # default completion reserve of 1024.
        claim = 100000 - int(r1.header("x-ratelimit-remaining-tokens"))
        self.assertGreater(claim, 1024)
        self.assertLess(claim, 1024 + 32)
        self.assertTrue(r1.header("x-ratelimit-reset-tokens"))
        r2 = self.serve.post("/v1/chat/completions", chat_body("limited"), key=self.limited_key)
        self.assertEqual(r2.status, 200, r2.body)
        self.assertEqual(r2.header("x-ratelimit-remaining-requests"), "98")
        # The first claim was replaced by the 13 tokens of its reply.
        self.assertEqual(r2.header("x-ratelimit-remaining-tokens"), str(100000 - 13 - claim))

    def test_paths_without_v1(self):
        r = self.serve.post("/chat/completions", chat_body("gpt", "no prefix"), key=self.key)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["object"], "chat.completion")
        rec = self.fake.wait_for_request(
            lambda q: q.user_text == "no prefix")
        self.assertEqual(rec.path, "/v1/chat/completions")
        m = self.serve.get("/models", key=self.key)
        self.assertEqual(m.status, 200, m.body)
        self.assertEqual(m.json()["object"], "list")

    def test_models_lists_only_permitted_models(self):
        r = self.serve.get("/v1/models", key=self.key)
        self.assertEqual(r.status, 200, r.body)
        body = r.json()
        self.assertEqual(body["object"], "list")
        ids = sorted(m["id"] for m in body["data"])
        self.assertEqual(ids, sorted(["gpt", "reuse", "stale", "slowish", "priced", "comp", "emb",
                                      "azm", "llama",
                                      "side-a", "side-b"]))
        for m in body["data"]:
            self.assertEqual(m["object"], "model")
            self.assertIsInstance(m["created"], int)
            self.assertGreater(m["created"], 1_500_000_000)
            self.assertIsInstance(m["owned_by"], str)
        r2 = self.serve.get("/v1/models", key=self.limited_key)
        self.assertEqual([m["id"] for m in r2.json()["data"]], ["limited"])
        r3 = self.serve.get("/v1/models")
        self.assertOpenAIError(r3, 401, code="invalid_api_key")

    def test_health(self):
        r = self.serve.get("/health")
        self.assertEqual(r.status, 200, r.body)
        body = r.json()
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["backend"], self.ws.backend)

    def test_azure_deployment_url_and_api_key_header(self):
        r = self.serve.post("/v1/chat/completions", chat_body("azm", "to azure"), key=self.key)
        self.assertEqual(r.status, 200, r.body)
        rec = self.fake.wait_for_request(lambda q: q.model == "my-deployment")
        self.assertEqual(rec.path, "/openai/deployments/my-deployment/chat/completions")
        self.assertEqual(rec.query, {"api-version": ["2024-06-01"]})
        self.assertEqual(rec.header("api-key"), "az-secret-key")
        self.assertIsNone(rec.header("authorization"))
        assert_no_secret(self, rec, self.key)

    def test_ollama_appends_v1(self):
        r = self.serve.post("/v1/chat/completions", chat_body("llama", "to ollama"), key=self.key)
        self.assertEqual(r.status, 200, r.body)
        rec = self.fake.wait_for_request(lambda q: q.model == "llama3.2")
        self.assertEqual(rec.path, "/v1/chat/completions")
        self.assertIsNone(rec.header("authorization"))  # no api key on this connection
        assert_no_secret(self, rec, self.key)

    def test_completions_and_embeddings_upstream(self):
        req_id = rid("comp")
        r = self.serve.post("/v1/completions", {"model": "comp", "prompt": "Say this is a test",
                                                "max_tokens": 7, "temperature": 0},
                            key=self.key, headers={"x-request-id": req_id})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["object"], "text_completion")
        self.assertEqual(r.json()["choices"][0]["text"], " Say this is a test")
        rec = self.fake.wait_for_request(lambda q: q.model == "gpt-3.5-turbo-instruct")
        self.assertEqual(rec.path, "/v1/completions")
        self.assertEqual(rec.json, {"model": "gpt-3.5-turbo-instruct",
                                    "prompt": "Say this is a test", "max_tokens": 7,
                                    "temperature": 0})
        u = self.ws.wait_usage_record(req_id)
        self.assertEqual((u["status"], u["prompt_tokens"], u["completion_tokens"]), (200, 5, 3))

        req_id = rid("emb")
        r = self.serve.post("/v1/embeddings", {"model": "emb", "input": ["one", "two"],
                                               "encoding_format": "float"},
                            key=self.key, headers={"x-request-id": req_id})
        self.assertEqual(r.status, 200, r.body)
        body = r.json()
        self.assertEqual(body["object"], "list")
        self.assertEqual([d["index"] for d in body["data"]], [0, 1])
        rec = self.fake.wait_for_request(lambda q: q.model == "text-embedding-3-small")
        self.assertEqual(rec.path, "/v1/embeddings")
        self.assertEqual(rec.json, {"model": "text-embedding-3-small", "input": ["one", "two"],
                                    "encoding_format": "float"})
        u = self.ws.wait_usage_record(req_id)
        self.assertEqual((u["status"], u["prompt_tokens"], u["completion_tokens"]), (200, 6, 0))

    def test_keep_alive_and_upstream_connection_reuse(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.serve.port, timeout=10)
        try:
            first_sock = None
            n_chat = 0
            for i in range(8):
                if i % 4 == 3:
                    r = request(self.serve.port, "GET", "/health", conn=conn)
                elif i % 4 == 2:
                    r = request(self.serve.port, "GET", "/v1/models", key=self.key, conn=conn)
                else:
                    r = request(self.serve.port, "POST", "/v1/chat/completions",
                                chat_body("reuse", f"keepalive {i}"), key=self.key, conn=conn)
                    n_chat += 1
                self.assertEqual(r.status, 200, r.body)
                self.assertNotEqual((r.header("connection") or "").lower(), "close")
                self.assertIsNotNone(conn.sock, "the proxy closed the client connection")
                first_sock = first_sock or conn.sock
                self.assertIs(conn.sock, first_sock, "a new client connection was opened")
        finally:
            conn.close()
        # One client connection lives on one worker, whose pool keeps the
        # upstream connection alive between requests.
        seen = self.fake.requests("reuse-remote")
        self.assertEqual(len(seen), n_chat)
        self.assertEqual(len({q.conn_id for q in seen}), 1, seen)

        # Across fresh client connections, at most one upstream connection per
        # worker thread (--threads 2) is needed.
        for i in range(6):
            r = self.serve.post("/v1/chat/completions", chat_body("reuse", f"fresh {i}"),
                                key=self.key)
            self.assertEqual(r.status, 200, r.body)
        seen = self.fake.requests("reuse-remote")
        self.assertEqual(len(seen), n_chat + 6)
        self.assertLessEqual(len({q.conn_id for q in seen}), 2, seen)


# ---------------------------------------------------------------------------
class StreamingTest(ServeCase):
    """SSE relay, usage injection and stripping, broken streams, disconnects."""

    @classmethod
    def provision(cls):
        ws, fake = cls.ws, cls.fake
        ws.connection("up", "openai", endpoint=fake.base_url + "/v1", api_key=UPSTREAM_KEY)
        cls.pieces = [f"w{i} " for i in range(10)]
        fake.on("r-paced", fo.sse_reply(pieces=cls.pieces, interval=0.1, usage=(17, 10)))
        fake.on("r-fast", fo.sse_reply(pieces=("Hel", "lo", "!"), usage=(12, 3)))
        fake.on("r-onchoice", fo.sse_reply(pieces=("a", "b"), usage=(21, 8),
                                           usage_mode="on_choice"))
        fake.on("r-close", fo.sse_reply(pieces=("x", "y", "z"), usage=(5, 3), framing="close"))
        fake.on("r-break", fo.sse_reply(pieces=("p", "q", "r", "s"), break_after=3))
        fake.on("r-break-close", fo.sse_reply(pieces=("p", "q", "r", "s"), break_after=3,
                                              framing="close"))
        fake.on("r-long", fo.sse_reply(pieces=[f"t{i}" for i in range(200)], interval=0.05))
        fake.on("r-crlf", fo.sse_reply(pieces=("c", "r", "lf"), usage=(7, 3), line_end="\r\n"))
        fake.on("r-frag", fo.sse_reply(pieces=("frag", "mented", " events"), usage=(13, 5),
                                       fragment=7))
        fake.on("r-refuse", fo.json_error(400, fo.error_obj(
            "'stream_options' is only allowed when 'stream' is true", "invalid_request_error",
            "stream_options", None)))
        fake.on("r-hang", fo.slow(10.0))
        for alias in ("paced", "fast", "onchoice", "close", "break", "break-close", "long",
                      "crlf", "frag", "refuse", "hang"):
            ws.model(alias, "r-" + alias, "up")
        cls.key, _ = ws.vkey("streamer", conn_id=["up"])

    def stream(self, model, text="stream please", req_id=None, **extra):
        headers = {"x-request-id": req_id} if req_id else None
        return self.serve.stream("/v1/chat/completions",
                                 chat_body(model, text, stream=True, **extra),
                                 key=self.key, headers=headers)

    def upstream_saw(self, text):
        """The upstream request whose user message was `text`, once fully answered."""
        rec = self.fake.wait_for_request(lambda q: q.user_text == text)
        self.assertTrue(rec.finished.wait(5))
        return rec

    def test_chunks_are_relayed_as_they_arrive(self):
        req_id = rid("paced")
        s = self.stream("paced", req_id=req_id)
        try:
            self.assertEqual(s.status, 200)
            self.assertTrue(s.headers["content-type"].startswith("text/event-stream"))
            self.assertEqual(s.headers.get("x-request-id"), req_id)
            data = s.read_all()
            self.assertIsNone(s.error)
        finally:
            s.close()
        rec = self.fake.wait_for_request(lambda q: q.model == "r-paced")
        rec.finished.wait(5)
        # The proxy asked the upstream for usage although the client did not.
        self.assertIs(rec.json["stream"], True)
        self.assertEqual(rec.json["stream_options"], {"include_usage": True})
        self.assertEqual({k: v for k, v in rec.json.items() if k != "stream_options"},
                         chat_body("r-paced", "stream please", stream=True))
        # Every upstream event reaches the client as its own event, in order,
        # except the usage-only chunk the client did not ask for.
        self.assertEqual(data[-1], "[DONE]")
        events = [json.loads(d) for d in data[:-1]]
        planned = [json.loads(e) for e in rec.planned_events]
        self.assertEqual(planned[-1]["choices"], [])  # the fake did send it
        self.assertEqual(events, planned[:-1])
        for e in events:
            self.assertNotEqual(e["choices"], [])
            self.assertIsNone(e.get("usage"))
        # Relayed as they come: the first event reached the client long before
        # the upstream sent its last one.
        first_arrival = s.received[0][0]
        self.assertLess(first_arrival, rec.events_sent[-1] - 0.5)
        self.assertGreater(s.received[-2][0] - s.received[0][0], 0.6)
        u = self.ws.wait_usage_record(req_id)
        self.assertEqual((u["status"], u["prompt_tokens"], u["completion_tokens"]), (200, 17, 10))
        self.assertIsNotNone(u["ttft_ms"])
        self.assertLess(u["ttft_ms"], u["latency_ms"] - 500)

    def test_client_that_asked_for_usage_receives_the_usage_chunk(self):
        req_id = rid("usage")
        s = self.stream("fast", "stream please, with usage", req_id=req_id,
                        stream_options={"include_usage": True})
        try:
            self.assertEqual(s.status, 200)
            data = s.read_all()
        finally:
            s.close()
        rec = self.upstream_saw("stream please, with usage")
        self.assertEqual(data[-1], "[DONE]")
        events = [json.loads(d) for d in data[:-1]]
        self.assertEqual(events, [json.loads(e) for e in rec.planned_events])
        self.assertEqual(events[-1]["choices"], [])
        self.assertEqual(events[-1]["usage"]["prompt_tokens"], 12)
        self.assertEqual(events[-1]["usage"]["completion_tokens"], 3)
        u = self.ws.wait_usage_record(req_id)
        self.assertEqual((u["status"], u["prompt_tokens"], u["completion_tokens"]), (200, 12, 3))

    def test_include_usage_false_is_overridden_upstream_but_honoured_for_the_client(self):
        req_id = rid("nousage")
        s = self.stream("fast", text="explicitly no usage", req_id=req_id,
                        stream_options={"include_usage": False})
        try:
            data = s.read_all()
        finally:
            s.close()
        rec = self.upstream_saw("explicitly no usage")
        self.assertEqual(rec.json["stream_options"], {"include_usage": True})
        self.assertEqual(data[-1], "[DONE]")
        for d in data[:-1]:
            self.assertNotEqual(json.loads(d)["choices"], [])
        u = self.ws.wait_usage_record(req_id)
        self.assertEqual((u["prompt_tokens"], u["completion_tokens"]), (12, 3))

    def test_usage_on_a_chunk_with_choices(self):
        req_id = rid("onchoice")
        s = self.stream("onchoice", req_id=req_id)
        try:
            data = s.read_all()
        finally:
            s.close()
        rec = self.fake.wait_for_request(lambda q: q.model == "r-onchoice")
        self.assertEqual(data[-1], "[DONE]")
        events = [json.loads(d) for d in data[:-1]]
        self.assertEqual(events, [json.loads(e) for e in rec.planned_events])
        self.assertEqual(events[-1]["usage"]["prompt_tokens"], 21)
        u = self.ws.wait_usage_record(req_id)
        self.assertEqual((u["status"], u["prompt_tokens"], u["completion_tokens"]), (200, 21, 8))

    def test_close_delimited_upstream_stream(self):
        req_id = rid("close")
        s = self.stream("close", req_id=req_id)
        try:
            data = s.read_all()
            self.assertIsNone(s.error)
        finally:
            s.close()
        rec = self.fake.wait_for_request(lambda q: q.model == "r-close")
        self.assertEqual(data[-1], "[DONE]")
        self.assertEqual([json.loads(d) for d in data[:-1]],
                         [json.loads(e) for e in rec.planned_events[:-1]])
        u = self.ws.wait_usage_record(req_id)
        self.assertEqual((u["status"], u["prompt_tokens"], u["completion_tokens"]), (200, 5, 3))

    def _assert_relayed(self, model, usage):
        req_id = rid(model)
        s = self.stream(model, req_id=req_id, stream_options={"include_usage": True})
        try:
            data = s.read_all()
            self.assertIsNone(s.error)
        finally:
            s.close()
        rec = self.fake.wait_for_request(lambda q: q.model == "r-" + model)
        self.assertEqual(data[-1], "[DONE]")
        self.assertEqual([json.loads(d) for d in data[:-1]],
                         [json.loads(e) for e in rec.planned_events])
        u = self.ws.wait_usage_record(req_id)
        self.assertEqual((u["status"], u["prompt_tokens"], u["completion_tokens"]),
                         (200,) + usage)

    def test_crlf_framed_events(self):
        self._assert_relayed("crlf", (7, 3))

    def test_events_split_across_reads(self):
        self._assert_relayed("frag", (13, 5))

    def test_stream_refused_by_upstream_is_a_json_error(self):
        req_id = rid("refuse")
        s = self.stream("refuse", req_id=req_id)
        try:
            r = s.body_if_not_sse()
        finally:
            s.close()
        self.assertEqual(r.status, 400)
        self.assertTrue(r.header("content-type").startswith("application/json"))
        self.assertEqual(r.json()["error"]["param"], "stream_options")
        self.assertEqual(self.ws.wait_usage_record(req_id)["status"], 400)

    def test_client_disconnect_while_waiting_for_upstream(self):
        req_id = rid("hang")
        conn = http.client.HTTPConnection("127.0.0.1", self.serve.port, timeout=10)
        try:
            conn.request("POST", "/v1/chat/completions", json.dumps(chat_body("hang")),
                         {"Authorization": "Bearer " + self.key, "x-request-id": req_id})
            rec = self.fake.wait_for_request(lambda q: q.model == "r-hang")
            closed_at = time.monotonic()
            conn.sock.shutdown(socket.SHUT_RDWR)
        finally:
            conn.close()
        self.assertTrue(rec.peer_closed.wait(3.0),
                        "the upstream request outlived the client that made it")
        self.assertLess(rec.peer_closed_at - closed_at, 3.0)
        self.assertEqual(self.ws.wait_usage_record(req_id)["status"], 499)
        self.assertHealthy()

    def _assert_broken(self, model):
        req_id = rid(model)
        s = self.stream(model, req_id=req_id)
        try:
            self.assertEqual(s.status, 200)
            data = s.read_all()
            self.assertIsNone(s.error, "the proxy did not end the stream cleanly")
        finally:
            s.close()
        rec = self.fake.wait_for_request(lambda q: q.model == "r-" + model)
        self.assertNotIn("[DONE]", data)
        self.assertEqual([json.loads(d) for d in data[:3]],
                         [json.loads(e) for e in rec.planned_events[:3]])
        self.assertEqual(len(data), 4, data)
        err = json.loads(data[3])
        self.assertEqual(set(err), {"error"})
        self.assertEqual(err["error"]["type"], "upstream_error")
        self.assertEqual(err["error"]["code"], "upstream_stream_broken")
        self.assertIn("'up'", err["error"]["message"])
        u = self.ws.wait_usage_record(req_id)
        self.assertEqual(u["status"], 502)
        self.assertHealthy()

    def test_stream_broken_by_upstream(self):
        self._assert_broken("break")

    def test_close_delimited_stream_ending_without_done(self):
        self._assert_broken("break-close")

    def test_client_disconnect_cancels_upstream(self):
        req_id = rid("gone")
        s = self.stream("long", req_id=req_id)
        try:
            self.assertEqual(s.status, 200)
            got = 0
            for _ in s.events():
                got += 1
                if got == 2:
                    break
            closed_at = time.monotonic()
            s.abort()
        finally:
            s.close()
        rec = self.fake.wait_for_request(lambda q: q.model == "r-long")
        # The whole stream would take ~10 s; the proxy must hang up at once.
        self.assertTrue(rec.peer_closed.wait(3.0),
                        "the upstream request was not cancelled after the client left")
        self.assertLess(rec.peer_closed_at - closed_at, 3.0)
        self.assertLess(len(rec.events_sent), 100)
        u = self.ws.wait_usage_record(req_id)
        self.assertEqual(u["status"], 499)
        self.assertHealthy()


# ---------------------------------------------------------------------------
class MockProviderTest(ServeCase):
    with_fake = False

    @classmethod
    def provision(cls):
        cls.ws.connection("demo", "mock")
        cls.ws.model("echo", "echo-1", "demo")
        cls.key, _ = cls.ws.vkey("mocker", conn_id=["demo"])

    def test_echo_with_usage(self):
        req_id = rid("echo")
        body = {"model": "echo", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "the quick brown fox"}]}
        r = self.serve.post("/v1/chat/completions", body, key=self.key,
                            headers={"x-request-id": req_id})
        self.assertEqual(r.status, 200, r.body)
        out = r.json()
        self.assertEqual(out["object"], "chat.completion")
        self.assertEqual(out["model"], "echo-1")
        self.assertEqual(out["choices"][0]["message"],
                         {"role": "assistant", "content": "the quick brown fox",
                          "refusal": None})
        self.assertEqual(out["choices"][0]["finish_reason"], "stop")
        self.assertEqual(out["usage"], {"prompt_tokens": 6, "completion_tokens": 4,
                                        "total_tokens": 10})
        self.assertEqual(r.header("x-request-id"), req_id)
        u = self.ws.wait_usage_record(req_id)
        self.assertEqual((u["status"], u["prompt_tokens"], u["completion_tokens"], u["conn_name"]),
                         (200, 6, 4, "demo"))

    def test_stream_word_by_word(self):
        req_id = rid("mockstream")
        s = self.serve.stream("/v1/chat/completions",
                              chat_body("echo", "one two three", stream=True,
                                        stream_options={"include_usage": True}),
                              key=self.key, headers={"x-request-id": req_id})
        try:
            self.assertEqual(s.status, 200)
            self.assertTrue(s.headers["content-type"].startswith("text/event-stream"))
            data = s.read_all()
        finally:
            s.close()
        self.assertEqual(data[-1], "[DONE]")
        events = [json.loads(d) for d in data[:-1]]
        for e in events:
            self.assertEqual(e["object"], "chat.completion.chunk")
        self.assertEqual(events[0]["choices"][0]["delta"]["role"], "assistant")
        deltas = [e["choices"][0]["delta"].get("content") for e in events[1:4]]
        self.assertEqual(deltas, ["one", " two", " three"])
        self.assertEqual(events[4]["choices"][0]["finish_reason"], "stop")
        self.assertEqual(events[5]["choices"], [])
        self.assertEqual(events[5]["usage"]["prompt_tokens"], 3)
        self.assertEqual(events[5]["usage"]["completion_tokens"], 3)
        self.assertEqual(len(events), 6)
        u = self.ws.wait_usage_record(req_id)
        self.assertEqual((u["status"], u["prompt_tokens"], u["completion_tokens"]), (200, 3, 3))

    def test_stream_without_usage_request_has_no_usage_chunk(self):
        req_id = rid("mocknousage")
        s = self.serve.stream("/v1/chat/completions", chat_body("echo", "a b", stream=True),
                              key=self.key, headers={"x-request-id": req_id})
        try:
            data = s.read_all()
        finally:
            s.close()
        self.assertEqual(data[-1], "[DONE]")
        for d in data[:-1]:
            self.assertNotEqual(json.loads(d)["choices"], [])
        u = self.ws.wait_usage_record(req_id)
        self.assertEqual((u["prompt_tokens"], u["completion_tokens"]), (2, 2))

    def test_completions(self):
        req_id = rid("mockcomp")
        r = self.serve.post("/v1/completions", {"model": "echo", "prompt": "say this please"},
                            key=self.key, headers={"x-request-id": req_id})
        self.assertEqual(r.status, 200, r.body)
        out = r.json()
        self.assertEqual(out["object"], "text_completion")
        self.assertEqual(out["choices"][0]["text"], "say this please")
        self.assertEqual(out["usage"]["prompt_tokens"], 3)
        u = self.ws.wait_usage_record(req_id)
        self.assertEqual((u["status"], u["prompt_tokens"], u["completion_tokens"]), (200, 3, 3))

    def test_embeddings(self):
        req_id = rid("mockemb")
        r = self.serve.post("/v1/embeddings", {"model": "echo", "input": ["a b", "c", "a b"]},
                            key=self.key, headers={"x-request-id": req_id})
        self.assertEqual(r.status, 200, r.body)
        out = r.json()
        self.assertEqual(out["object"], "list")
        self.assertEqual([d["index"] for d in out["data"]], [0, 1, 2])
        for d in out["data"]:
            self.assertEqual(d["object"], "embedding")
            self.assertTrue(d["embedding"])
            self.assertTrue(all(isinstance(x, float) for x in d["embedding"]))
        self.assertEqual(out["data"][0]["embedding"], out["data"][2]["embedding"])
        self.assertNotEqual(out["data"][0]["embedding"], out["data"][1]["embedding"])
        self.assertEqual(out["usage"], {"prompt_tokens": 5, "total_tokens": 5})
        u = self.ws.wait_usage_record(req_id)
        self.assertEqual((u["status"], u["prompt_tokens"], u["completion_tokens"]), (200, 5, 0))
        # A single string input works too.
        r = self.serve.post("/v1/embeddings", {"model": "echo", "input": "solo"}, key=self.key)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(len(r.json()["data"]), 1)


# ---------------------------------------------------------------------------
MASTER_FLAG = "sk-master-from-flag-0001"
MASTER_ENV = "sk-master-from-env-0002"


class AuthTest(ServeCase):
    serve_args = ("--master-key", MASTER_FLAG)

    @classmethod
    def provision(cls):
        ws = cls.ws
        ws.connection("demo", "mock")
        ws.connection("up", "openai", endpoint=cls.fake.base_url + "/v1", api_key=UPSTREAM_KEY)
        ws.model("echo", "echo-1", "demo")
        ws.model("secret-model", "secret-1", "demo")
        ws.model("gpt", "gpt-remote", "up")
        cls.good, _ = ws.vkey("good", model_id=["echo"], key="sk-good-key-000000001")
        cls.disabled, _ = ws.vkey("disabled", model_id=["echo"], key="sk-disabled-key-00002")
        ws.cli("vkey", "disable", "disabled")
        cls.expired, _ = ws.vkey("expired", model_id=["echo"], key="sk-expired-key-000003")
        ws.cli("vkey", "update", "expired", "--expires", "2020-01-01")
        cls.connkey, _ = ws.vkey("connkey", conn_id=["up"])
        cls.modelonly, _ = ws.vkey("modelonly", model_id=["gpt"])

    def chat(self, model="echo", key=None, headers=None):
        return self.serve.post("/v1/chat/completions", chat_body(model), key=key,
                               headers=headers)

    def test_missing_key(self):
        err = self.assertOpenAIError(self.chat(), 401, "invalid_request_error", "invalid_api_key")
        self.assertIn("no API key", err["message"])

    def test_unknown_key(self):
        err = self.assertOpenAIError(self.chat(key="sk-not-a-real-key"), 401,
                                     "invalid_request_error", "invalid_api_key")
        self.assertIn("incorrect API key", err["message"])
        # A prefix/suffix of a real key is not the key.
        self.assertOpenAIError(self.chat(key=self.good[:-1]), 401, code="invalid_api_key")
        self.assertOpenAIError(self.chat(key=self.good + "x"), 401, code="invalid_api_key")

    def test_disabled_key(self):
        err = self.assertOpenAIError(self.chat(key=self.disabled), 401, code="invalid_api_key")
        self.assertIn("disabled", err["message"])

    def test_expired_key(self):
        err = self.assertOpenAIError(self.chat(key=self.expired), 401, code="invalid_api_key")
        self.assertIn("expired", err["message"])

    def test_valid_key_in_each_header(self):
        self.assertEqual(self.chat(key=self.good).status, 200)
        r = self.chat(headers={"x-api-key": self.good})
        self.assertEqual(r.status, 200, r.body)
        r = self.chat(headers={"api-key": self.good})
        self.assertEqual(r.status, 200, r.body)
        r = self.chat(headers={"Authorization": "bearer " + self.good})
        self.assertEqual(r.status, 200, r.body)
        self.assertOpenAIError(self.chat(headers={"x-api-key": "sk-wrong"}), 401)

    def test_model_without_assignment_is_forbidden(self):
        err = self.assertOpenAIError(self.chat("secret-model", key=self.good), 403,
                                     "permission_error", param="model")
        self.assertIn("secret-model", err["message"])

    def test_unknown_model(self):
        err = self.assertOpenAIError(self.chat("no-such-model", key=self.good), 404,
                                     "invalid_request_error", "model_not_found", "model")
        self.assertIn("no-such-model", err["message"])
        self.assertOpenAIError(self.chat("nosuchconn/some-model", key=self.good), 404,
                               code="model_not_found")

    def test_master_key_flag_may_use_every_model(self):
        req_id = rid("master")
        for model in ("echo", "secret-model", "gpt", "demo/anything", "up/gpt-4.1-nano"):
            r = self.chat(model, key=MASTER_FLAG, headers={"x-request-id": req_id + model})
            self.assertEqual(r.status, 200, (model, r.body))
        rec = self.fake.wait_for_request(lambda q: q.model == "gpt-4.1-nano")
        self.assertEqual(rec.header("authorization"), "Bearer " + UPSTREAM_KEY)
        assert_no_secret(self, rec, MASTER_FLAG)
        u = self.ws.wait_usage_record(req_id + "secret-model")
        self.assertEqual(u["vkey_name"], "master")
        self.assertEqual(u["status"], 200)
        models = self.serve.get("/v1/models", key=MASTER_FLAG).json()["data"]
        self.assertEqual(sorted(m["id"] for m in models), ["echo", "gpt", "secret-model"])

    def test_master_key_from_env(self):
        serve = Serve(self.ws, env={"MASTER_KEY": MASTER_ENV})
        try:
            r = serve.post("/v1/chat/completions", chat_body("secret-model"), key=MASTER_ENV)
            self.assertEqual(r.status, 200, r.body)
            self.assertOpenAIError(serve.post("/v1/chat/completions", chat_body("echo"),
                                              key=MASTER_FLAG), 401)
        finally:
            self.assertEqual(serve.stop(), 0, serve.stderr())
        # Without either, there is no master key.
        serve = Serve(self.ws)
        try:
            self.assertOpenAIError(serve.post("/v1/chat/completions", chat_body("echo"),
                                              key=MASTER_ENV), 401)
        finally:
            self.assertEqual(serve.stop(), 0, serve.stderr())

    def test_connection_addressing(self):
        r = self.chat("up/gpt-4.1-mini", key=self.connkey)
        self.assertEqual(r.status, 200, r.body)
        rec = self.fake.wait_for_request(lambda q: q.model == "gpt-4.1-mini")
        self.assertEqual(rec.path, "/v1/chat/completions")
        assert_no_secret(self, rec, self.connkey)
        # A model-level grant does not open the whole connection.
        err = self.assertOpenAIError(self.chat("up/gpt-remote", key=self.modelonly), 403,
                                     "permission_error")
        self.assertIn("up/gpt-remote", err["message"])
        self.assertEqual(self.chat("gpt", key=self.modelonly).status, 200)
        # The connection-level key also reaches the connection's aliases.
        self.assertEqual(self.chat("gpt", key=self.connkey).status, 200)
        self.assertEqual(len(self.fake.requests("gpt-remote")), 2)


# ---------------------------------------------------------------------------
class LimitsTest(ServeCase):
    with_fake = False

    @classmethod
    def provision(cls):
        cls.ws.connection("demo", "mock")
        cls.ws.model("echo", "echo-1", "demo")
        # Keys made before serve starts: polling for a new key would spend its budget.
        cls.tps_key, _ = cls.ws.vkey("tps5", model_id=["echo"], tps=5)
        cls.rpm_key, _ = cls.ws.vkey("rpm3", model_id=["echo"], rpm=3)

    def raw_request(self, key, text="hi"):
        body = json.dumps(chat_body("echo", text)).encode()
        return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    def assertRateLimited(self, r, type_="rate_limit_exceeded"):
        self.assertOpenAIError(r, 429, type_, type_)
        retry = r.header("retry-after")
        self.assertIsNotNone(retry, r.headers)
        self.assertGreaterEqual(int(retry), 1)

    def test_tps_admits_exactly_the_burst(self):
        payload = self.raw_request(self.tps_key)
        socks = [socket.create_connection(("127.0.0.1", self.serve.port), timeout=10)
                 for _ in range(20)]
        try:
            t0 = time.monotonic()
            for s in socks:  # all at once: the bucket refills one token per 200 ms
                s.sendall(payload)
            results = []
            for s in socks:
                resp = http.client.HTTPResponse(s)
                resp.begin()
                results.append(read_response(resp))
            window = time.monotonic() - t0
        finally:
            for s in socks:
                s.close()
        ok = [r for r in results if r.status == 200]
        refused = [r for r in results if r.status != 200]
        # Exactly the burst of 5, unless this machine took so long to answer
        # all 20 that the bucket legitimately refilled in between.
        refill = int(5 * window)
        self.assertGreaterEqual(len(ok), 5, [r.status for r in results])
        self.assertLessEqual(len(ok), 5 + refill, ([r.status for r in results], window))
        self.assertEqual(len(refused), 20 - len(ok))
        for r in refused:
            self.assertRateLimited(r)
        self.assertEqual(ok[0].header("x-ratelimit-limit-requests"), "5")

    def test_rpm(self):
        key = self.rpm_key
        for i in range(3):
            r = self.serve.post("/v1/chat/completions", chat_body("echo"), key=key)
            self.assertEqual(r.status, 200, (i, r.body))
            self.assertEqual(r.header("x-ratelimit-limit-requests"), "3")
            self.assertEqual(r.header("x-ratelimit-remaining-requests"), str(2 - i))
        r = self.serve.post("/v1/chat/completions", chat_body("echo"), key=key)
        self.assertRateLimited(r)
        self.assertGreaterEqual(int(r.header("retry-after")), 15)  # a token every 20 s
        self.assertIn("per minute", r.json()["error"]["message"])

    def test_token_window_survives_restart(self):
        key, v = self.ws.vkey("tokens", model_id=["echo"], token_limit=10, token_window="day")
        serve = Serve(self.ws)
        try:
            req_id = rid("tok")
            # The mock counts words: 6 prompt + 6 completion tokens.
            r = serve.post("/v1/chat/completions", chat_body("echo", "a b c d e f"), key=key,
                           headers={"x-request-id": req_id})
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.header("x-ratelimit-limit-tokens"), "10")
            # Its claim (estimate + completion reserve, capped) took all ten.
            self.assertEqual(r.header("x-ratelimit-remaining-tokens"), "0")
            r = serve.post("/v1/chat/completions", chat_body("echo", "again"), key=key)
            self.assertRateLimited(r, "tokens_exceeded")
            self.assertEqual(r.header("x-ratelimit-remaining-tokens"), "0")
        finally:
            self.assertEqual(serve.stop(), 0, serve.stderr())
        u = self.ws.wait_usage_record(req_id)
        self.assertEqual(u["prompt_tokens"] + u["completion_tokens"], 12)
        serve = Serve(self.ws)
        try:
            r = serve.post("/v1/chat/completions", chat_body("echo", "after restart"), key=key)
            self.assertRateLimited(r, "tokens_exceeded")
            # Another key's window is untouched.
            other, _ = self.ws.vkey("tokens-other", model_id=["echo"], token_limit=10)
            r = wait_until(lambda: (lambda x: x if x.status != 401 else None)(
                serve.post("/v1/chat/completions", chat_body("echo"), key=other)),
                RELOAD_DEADLINE + 1, message="the new key to be loaded")
            self.assertEqual(r.status, 200, r.body)
        finally:
            self.assertEqual(serve.stop(), 0, serve.stderr())


# ---------------------------------------------------------------------------
class ErrorsTest(ServeCase):
    serve_args = ("--max-body", "4096")

    @classmethod
    def provision(cls):
        ws, fake = cls.ws, cls.fake
        base = fake.base_url + "/v1"
        ws.connection("up", "openai", endpoint=base, api_key=UPSTREAM_KEY)
        ws.connection("slowconn", "openai", endpoint=base, api_key=UPSTREAM_KEY, timeout=0.5)
        ws.connection("dead", "openai", endpoint=f"http://127.0.0.1:{closed_port()}/v1",
                      api_key=UPSTREAM_KEY)
        cls.err400 = fo.error_obj("Invalid 'messages[0].role': did not expect 'robot'.",
                                  "invalid_request_error", "messages[0].role", "invalid_value")
        cls.err429 = fo.error_obj("Rate limit reached for gpt-4o-mini in organization org-x on "
                                  "requests per min (RPM): Limit 3, Used 3, Requested 1.",
                                  "requests", None, "rate_limit_exceeded")
        cls.err500 = fo.error_obj("The server had an error while processing your request.",
                                  "server_error")
        cls.err401 = fo.error_obj("Incorrect API key provided: sk-upstr***42.",
                                  "invalid_request_error", None, "invalid_api_key")
        fake.on("r-400", fo.json_error(400, cls.err400))
        fake.on("r-429", fo.json_error(429, cls.err429, [("Retry-After", "7")]))
        fake.on("r-500", fo.json_error(500, cls.err500))
        fake.on("r-401", fo.json_error(401, cls.err401))
        fake.on("r-503", fo.raw_reply(503, "upstream connect error or disconnect/reset before "
                                      "headers. reset reason: overflow", "text/plain"))
        fake.on("r-slow", fo.slow(5.0))
        fake.on("r-307", fo.raw_reply(307, "", "text/html", [
            ("Location", "https://api.example.invalid/v1/chat/completions")]))
        for alias in ("400", "429", "500", "401", "503", "307"):
            ws.model("e" + alias, "r-" + alias, "up")
        ws.model("gpt", "gpt-remote", "up")
        ws.model("slow", "r-slow", "slowconn")
        ws.model("dead", "r-dead", "dead")
        cls.key, _ = ws.vkey("errs", conn_id=["up", "slowconn", "dead"])

    def post(self, body, req_id, path="/v1/chat/completions"):
        return self.serve.post(path, body, key=self.key, headers={"x-request-id": req_id})

    def assertRecorded(self, req_id, status):
        u = self.ws.wait_usage_record(req_id)
        self.assertEqual(u["status"], status, u)
        return u

    def test_malformed_json(self):
        req_id = rid("badjson")
        before = len(self.fake.requests())
        r = self.post('{"model": "gpt", "messages": [', req_id)
        self.assertOpenAIError(r, 400, "invalid_request_error")
        r2 = self.post("[1, 2, 3]", rid("array"))
        self.assertOpenAIError(r2, 400, "invalid_request_error")
        self.assertRecorded(req_id, 400)
        self.assertEqual(len(self.fake.requests()), before)  # nothing went upstream
        self.assertHealthy()

    def test_missing_model(self):
        req_id = rid("nomodel")
        r = self.post({"messages": [{"role": "user", "content": "x"}]}, req_id)
        self.assertOpenAIError(r, 400, "invalid_request_error", param="model")
        r = self.post({"model": "", "messages": []}, rid("emptymodel"))
        self.assertOpenAIError(r, 400, param="model")
        self.assertRecorded(req_id, 400)

    def test_missing_messages(self):
        req_id = rid("nomsgs")
        before = len(self.fake.requests())
        r = self.post({"model": "gpt"}, req_id)
        self.assertOpenAIError(r, 400, "invalid_request_error", param="messages")
        r = self.post({"model": "gpt", "messages": "hello"}, rid("strmsgs"))
        self.assertOpenAIError(r, 400, param="messages")
        r = self.post({"model": "gpt"}, rid("noprompt"), path="/v1/completions")
        self.assertOpenAIError(r, 400, param="prompt")
        r = self.post({"model": "gpt"}, rid("noinput"), path="/v1/embeddings")
        self.assertOpenAIError(r, 400, param="input")
        self.assertRecorded(req_id, 400)
        self.assertEqual(len(self.fake.requests()), before)

    def test_body_too_large(self):
        body = json.dumps(chat_body("gpt", "x" * 6000)).encode()
        head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {self.key}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", self.serve.port), timeout=10) as s:
            s.sendall(head + body)
            resp = http.client.HTTPResponse(s)
            resp.begin()
            r = read_response(resp)
        self.assertOpenAIError(r, 413, "invalid_request_error")
        self.assertIn("4096", r.json()["error"]["message"])
        # Just under the limit is fine.
        ok = self.serve.post("/v1/chat/completions", chat_body("gpt", "x" * 3900), key=self.key)
        self.assertEqual(ok.status, 200, ok.body)
        self.assertHealthy()

    def test_method_and_url_errors(self):
        r = self.serve.get("/v1/chat/completions", key=self.key)
        self.assertOpenAIError(r, 405, "invalid_request_error")
        r = self.serve.post("/v1/nothing-here", chat_body("gpt"), key=self.key)
        self.assertOpenAIError(r, 404, "invalid_request_error")

    def _assert_passthrough(self, alias, status, err):
        req_id = rid(alias)
        r = self.post(chat_body(alias), req_id)
        self.assertEqual(r.status, status, r.body)
        self.assertEqual(r.body, json.dumps(err).encode())
        self.assertEqual(r.header("x-request-id"), req_id)
        self.assertRecorded(req_id, status)
        self.assertHealthy()
        return r

    def test_upstream_400_passes_through(self):
        self._assert_passthrough("e400", 400, self.err400)

    def test_upstream_429_passes_through(self):
        self._assert_passthrough("e429", 429, self.err429)

    def test_upstream_429_keeps_retry_after(self):
        r = self.post(chat_body("e429"), rid("e429ra"))
        self.assertEqual(r.status, 429, r.body)
        self.assertEqual(r.header("retry-after"), "7",
                         "the upstream's Retry-After was dropped: SDKs back off blindly")

    def test_upstream_500_passes_through(self):
        self._assert_passthrough("e500", 500, self.err500)

    def test_upstream_redirect_is_a_bad_gateway(self):
        # A 3xx from the provider (e.g. an http:// endpoint redirecting to
        # https://) is not something an API client can act on.
        req_id = rid("e307")
        r = self.post(chat_body("e307"), req_id)
        self.assertOpenAIError(r, 502, "upstream_error")
        self.assertRecorded(req_id, 502)

    def test_upstream_401_is_a_bad_gateway(self):
        req_id = rid("e401")
        r = self.post(chat_body("e401"), req_id)
        err = self.assertOpenAIError(r, 502, "upstream_auth_error")
        self.assertIn("'up'", err["message"])
        self.assertNotIn(UPSTREAM_KEY, r.body.decode())
        self.assertRecorded(req_id, 502)
        self.assertHealthy()

    def test_upstream_non_json_503(self):
        req_id = rid("e503")
        r = self.post(chat_body("e503"), req_id)
        err = self.assertOpenAIError(r, 503, "upstream_error")
        self.assertIn("upstream connect error", err["message"])
        self.assertIn("'up'", err["message"])
        self.assertRecorded(req_id, 503)
        self.assertHealthy()

    def test_upstream_refusing_connections(self):
        req_id = rid("dead")
        r = self.post(chat_body("dead"), req_id)
        err = self.assertOpenAIError(r, 502, "upstream_error", "upstream_unavailable")
        self.assertIn("'dead'", err["message"])
        self.assertRecorded(req_id, 502)
        self.assertHealthy()

    def test_upstream_timeout(self):
        req_id = rid("slow")
        t0 = time.monotonic()
        r = self.post(chat_body("slow"), req_id)
        elapsed = time.monotonic() - t0
        self.assertOpenAIError(r, 504, "upstream_timeout", "upstream_timeout")
        self.assertGreaterEqual(elapsed, 0.45)
        self.assertLess(elapsed, 3.0)
        rec = self.fake.wait_for_request(lambda q: q.model == "r-slow")
        self.assertTrue(rec.peer_closed.wait(3.0), "the timed-out upstream request was not closed")
        self.assertRecorded(req_id, 504)
        self.assertHealthy()


# ---------------------------------------------------------------------------
class MalformedHttpTest(ServeCase):
    """Malformed HTTP on raw sockets: each gets its status (400, 413, 414, 431)
    with a short OpenAI-shaped body and `Connection: close`, the connection is
    closed afterwards, and the refusal leaves an access-log line (and, where a
    good key was presented, a usage record)."""

    @classmethod
    def provision(cls):
        cls.log_path = os.path.join(cls.ws.dir, "access.log")
        cls.serve_args = ("--log-file", cls.log_path, "--max-body", "4096")
        cls.ws.connection("up", "openai", endpoint=cls.fake.base_url + "/v1", api_key=UPSTREAM_KEY)
        cls.ws.model("gpt", "gpt-remote", "up")
        cls.key, _ = cls.ws.vkey("raw", conn_id=["up"])

    def setUp(self):
        with open(self.log_path, "a+") as f:
            self.log_start = f.seek(0, os.SEEK_END)

    def exchange(self, data):
        """Sends `data` (all of it, even while the server answers) and reads
        until the server closes: returns (status, headers, body)."""
        with socket.create_connection(("127.0.0.1", self.serve.port), timeout=10) as s:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError) as e:
                self.fail(f"the server reset the connection before the client could read "
                          f"its answer: {e}")
            got = b""
            while True:
                piece = s.recv(65536)
                if not piece:
                    break  # closed by the server, as promised by Connection: close
                got += piece
        head, _, body = got.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in
                   (l.split(":", 1) for l in lines[1:])}
        self.assertEqual(len(body), int(headers["content-length"]), got)
        return status, headers, body

    def new_log_lines(self, count):
        def lines():
            with open(self.log_path) as f:
                f.seek(self.log_start)
                got = [json.loads(l) for l in f if l.strip()]
            return got if len(got) >= count else None
        return wait_until(lines, 5.0, message=f"{count} new access log lines")

    def assertRefused(self, data, status, code):
        got, headers, body = self.exchange(data)
        self.assertEqual(got, status, body)
        self.assertEqual(headers.get("connection"), "close", headers)
        self.assertTrue(headers["content-type"].startswith("application/json"), headers)
        err = json.loads(body)["error"]
        self.assertEqual((err["type"], err["code"]), ("invalid_request_error", code), err)
        self.assertLess(len(body), 512)
        [line] = self.new_log_lines(1)
        self.assertEqual((line["status"], line["error"]), (status, code), line)
        self.assertHealthy()
        return err, line

    def post_head(self, extra, path="/v1/chat/completions", key=True):
        auth = f"Authorization: Bearer {self.key}\r\n" if key else ""
        return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
                f"Content-Type: application/json\r\n{extra}\r\n").encode()

    def test_request_line_too_long(self):
        err, line = self.assertRefused(b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n",
                                       414, "uri_too_long")
        self.assertEqual(line["key"], "")

    def test_url_over_8_kib(self):
        self.assertRefused(b"GET /v1/models?" + b"q" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                           414, "uri_too_long")

    def test_header_block_too_large(self):
        big = "".join(f"X-Filler-{i}: {'v' * 1000}\r\n" for i in range(1024))  # ~1 MB
        self.assertRefused(self.post_head(big), 431, "headers_too_large")

    def test_negative_content_length(self):
        self.assertRefused(self.post_head("Content-Length: -5\r\n") + b"{}", 400, "bad_request")

    def test_non_numeric_content_length(self):
        self.assertRefused(self.post_head("Content-Length: abc\r\n") + b"{}", 400, "bad_request")

    def test_content_length_and_transfer_encoding(self):
        body = b'{"model":"gpt"}'
        data = self.post_head(f"Content-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n")
        self.assertRefused(data + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body), 400,
                           "bad_request")

    def test_bad_chunk_sizes(self):
        for size in (b"zz", b"1" + b"0" * 40, b"-5"):
            with self.subTest(size=size):
                self.setUp()
                data = self.post_head("Transfer-Encoding: chunked\r\n")
                self.assertRefused(data + size + b"\r\n{}\r\n0\r\n\r\n", 400, "bad_request")

    def test_body_too_large_is_logged_and_recorded(self):
        req_id = rid("big")
        body = json.dumps(chat_body("gpt", "x" * 50_000)).encode()
        data = self.post_head(f"x-request-id: {req_id}\r\nContent-Length: {len(body)}\r\n")
        err, line = self.assertRefused(data + body, 413, "request_too_large")
        self.assertEqual((line["request_id"], line["key"], line["path"]),
                         (req_id, "raw", "/v1/chat/completions"))
        self.assertEqual(self.ws.wait_usage_record(req_id)["status"], 413)

    def test_unknown_url_is_logged_and_recorded(self):
        req_id = rid("404")
        r = self.serve.post("/v1/responses?x=1", {"model": "gpt", "input": "hi"}, key=self.key,
                            headers={"x-request-id": req_id})
        self.assertOpenAIError(r, 404, "invalid_request_error", code="unknown_url")
        self.assertEqual(r.json()["error"]["message"], "unknown request URL: POST /v1/responses")
        self.assertEqual(r.header("x-request-id"), req_id)
        [line] = self.new_log_lines(1)
        self.assertEqual((line["request_id"], line["key"], line["method"], line["path"],
                          line["status"]), (req_id, "raw", "POST", "/v1/responses", 404))
        self.assertEqual(self.ws.wait_usage_record(req_id)["status"], 404)
        # Without a good key: logged, not stored.
        r = self.serve.post("/v1beta/models/gemini-2.5-flash:generateContent", {}, key="sk-wrong")
        self.assertEqual(r.status, 404)
        self.assertEqual(self.new_log_lines(2)[1]["path"],
                         "/v1beta/models/gemini-2.5-flash:generateContent")
        self.assertEqual(r.header("connection"), None)  # keep-alive: a 404 is not malformed


# ---------------------------------------------------------------------------
class ReloadTest(ServeCase):
    """CLI changes reach a running server within 2 s, without a restart."""

    with_fake = False

    @classmethod
    def provision(cls):
        cls.ws.connection("demo", "mock")
        cls.ws.model("echo", "echo-1", "demo")
        cls.ws.model("doomed", "doomed-1", "demo")
        cls.ws.vkey("seed", model_id=["echo"])

    def chat(self, key, model="echo"):
        return self.serve.post("/v1/chat/completions", chat_body(model), key=key)

    def await_change(self, pred, what):
        t0 = time.monotonic()
        wait_until(pred, RELOAD_DEADLINE, message=what)
        return time.monotonic() - t0

    def test_new_key_works(self):
        key, _ = self.ws.vkey("newcomer", model_id=["echo"])
        self.await_change(lambda: self.chat(key).status == 200, "the new key to work")

    def test_disabled_key_is_refused(self):
        key, _ = self.ws.vkey("leaving", model_id=["echo"])
        self.await_change(lambda: self.chat(key).status == 200, "the new key to work")
        self.ws.cli("vkey", "disable", "leaving")
        self.await_change(lambda: self.chat(key).status == 401, "the disabled key to be refused")
        self.assertIn("disabled", self.chat(key).json()["error"]["message"])

    def test_new_limit_applies(self):
        key, v = self.ws.vkey("limitme", model_id=["echo"])
        self.await_change(lambda: self.chat(key).status == 200, "the new key to work")
        for _ in range(3):
            self.assertEqual(self.chat(key).status, 200)
        self.ws.cli("assignment", "update", v["assignments"][0]["id"], "--rpm", "1")
        self.await_change(lambda: self.chat(key).status == 429, "the new rpm limit to apply")
        r = self.chat(key)
        self.assertEqual(r.status, 429)
        self.assertEqual(r.json()["error"]["type"], "rate_limit_exceeded")

    def test_removed_model_is_unknown(self):
        key, _ = self.ws.vkey("doomer", model_id=["doomed"])
        self.await_change(lambda: self.chat(key, "doomed").status == 200, "the new key to work")
        self.ws.cli("model", "remove", "doomed", "--force")
        self.await_change(lambda: self.chat(key, "doomed").status == 404,
                          "the removed model to be unknown")
        self.assertEqual(self.chat(key, "doomed").json()["error"]["code"], "model_not_found")


# ---------------------------------------------------------------------------
class SlowClientTest(ServeCase):
    """--read-timeout: a client gets that long to send a request, or to take a
    reply it has stopped reading."""

    READ_TIMEOUT = 0.5
    serve_args = ("--read-timeout", str(READ_TIMEOUT))

    @classmethod
    def provision(cls):
        cls.ws.connection("up", "openai", endpoint=cls.fake.base_url + "/v1",
                          api_key=UPSTREAM_KEY)
        cls.ws.model("gpt", "r-gpt", "up")
        # A long stream of large events: more than the socket buffers hold.
        cls.fake.on("r-flood", fo.sse_reply(pieces=["x" * 65536] * 400, usage=(7, 400)))
        cls.ws.model("flood", "r-flood", "up")
        cls.key, _ = cls.ws.vkey("slow", model_id=["gpt", "flood"])

    def test_partial_request_gets_408_after_the_read_timeout(self):
        body = json.dumps(chat_body("gpt", "never finished")).encode()
        with socket.create_connection(("127.0.0.1", self.serve.port), timeout=10) as s:
            t0 = time.monotonic()
            s.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                       f"Authorization: Bearer {self.key}\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:10])
            resp = http.client.HTTPResponse(s)
            resp.begin()
            r = read_response(resp)
            waited = time.monotonic() - t0
            self.assertOpenAIError(r, 408, "invalid_request_error", "request_timeout")
            self.assertEqual(r.header("connection"), "close")
            self.assertEqual(s.recv(1), b"")  # closed after the 408
        # Not before the timeout, and not much after it (one sweep of 0.1 s).
        self.assertGreaterEqual(waited, self.READ_TIMEOUT - 0.05)
        self.assertLess(waited, self.READ_TIMEOUT + 2.0)
        self.assertEqual([q for q in self.fake.requests("r-gpt") if q.user_text == "never finished"],
                         [], "a partial request reached the upstream")

    def test_idle_keep_alive_connection_is_closed_quietly(self):
        with socket.create_connection(("127.0.0.1", self.serve.port), timeout=10) as s:
            body = json.dumps(chat_body("gpt", "once")).encode()
            s.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                       f"Authorization: Bearer {self.key}\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
            resp = http.client.HTTPResponse(s)
            resp.begin()
            self.assertEqual(read_response(resp).status, 200)
            t0 = time.monotonic()
            self.assertEqual(s.recv(1), b"", "an idle connection got bytes, not a close")
            self.assertGreaterEqual(time.monotonic() - t0, self.READ_TIMEOUT - 0.05)

    def test_client_that_stops_reading_a_stream_is_dropped_and_recorded(self):
        req_id = rid("stall")
        body = json.dumps(chat_body("flood", "flood me", stream=True)).encode()
        s = socket.create_connection(("127.0.0.1", self.serve.port), timeout=10)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                       f"Authorization: Bearer {self.key}\r\nX-Request-Id: {req_id}\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
            # Read nothing: the proxy's writes stall once the buffers are full,
            # and after the read timeout it gives up on this client.
            u = self.ws.wait_usage_record(req_id, timeout=15.0)
        finally:
            s.close()
        self.assertEqual(u["status"], 499, u)
        rec = self.fake.wait_for_request(lambda q: q.model == "r-flood")
        wait_until(rec.finished.is_set, 5.0, message="the upstream exchange to be cut")
        self.assertHealthy()


# ---------------------------------------------------------------------------
def parse_prometheus(text):
    """{(name, frozenset(labels.items())): value} from the text exposition format;
    fails on any line that is not a comment or a well-formed sample."""
    import re
    sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
    label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        m = sample.match(line)
        assert m, f"malformed metrics line: {line!r}"
        labels = {}
        rest = m.group(3) or ""
        while rest:
            lm = label.match(rest)
            assert lm, f"malformed labels in: {line!r}"
            labels[lm.group(1)] = lm.group(2)
            rest = rest[lm.end():]
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return out


def metric(metrics, name, **labels):
    return metrics.get((name, frozenset(labels.items())), 0.0)


class ObservabilityTest(ServeCase):
    """GET /metrics, GET /health/ready and the access log after a known
    sequence of requests."""

    @classmethod
    def provision(cls):
        cls.log_path = os.path.join(cls.ws.dir, "access.log")
        cls.serve_args = ("--log-file", cls.log_path)
        ws = cls.ws
        ws.connection("up", "openai", endpoint=cls.fake.base_url + "/v1", api_key=UPSTREAM_KEY)
        ws.connection("gone", "openai", endpoint=f"http://127.0.0.1:{closed_port()}/v1",
                      api_key=UPSTREAM_KEY)
        ws.connection("idle", "openai", endpoint=cls.fake.base_url + "/v1", api_key=UPSTREAM_KEY)
        cls.fake.on("r-gpt", fo.chat_reply(usage=(11, 5)))
        cls.fake.on("r-sse", fo.sse_reply(pieces=["a", "b"], usage=(7, 2)))
        cls.fake.on("r-busy", fo.json_error(503, fo.error_obj("overloaded", "server_error")))
        ws.model("gpt", "r-gpt", "up", input_price=1.0, output_price=2.0)
        ws.model("sse", "r-sse", "up")
        ws.model("busy", "r-busy", "up")
        ws.model("nowhere", "r-x", "gone")
        ws.model("unused", "r-x", "idle")
        cls.key, _ = ws.vkey("obs", model_id=["gpt", "sse", "busy", "nowhere"])
        cls.tight_key, _ = ws.vkey("tight", model_id=["gpt"], rpm=1)

    def scrape(self):
        r = self.serve.get("/metrics")
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(r.header("content-type").startswith("text/plain; version=0.0.4"))
        return parse_prometheus(r.body.decode())

    def test_metrics_logs_and_readiness_after_a_known_sequence(self):
        ids = {}
        for i in range(3):
            ids[f"gpt{i}"] = rid("gpt")
            r = self.serve.post("/v1/chat/completions", chat_body("gpt", f"secret prompt {i}"),
                                key=self.key, headers={"x-request-id": ids[f"gpt{i}"]})
            self.assertEqual(r.status, 200, r.body)
        s = self.serve.stream("/v1/chat/completions", chat_body("sse", stream=True), key=self.key)
        for _ in s.events():
            pass
        s.close()
        self.assertEqual(self.serve.post("/v1/chat/completions", chat_body("busy"),
                                         key=self.key).status, 503)
        self.assertEqual(self.serve.post("/v1/chat/completions", chat_body("nowhere"),
                                         key=self.key).status, 502)
        self.assertEqual(self.serve.post("/v1/chat/completions", chat_body("gpt"),
                                         key=self.tight_key).status, 200)
        self.assertEqual(self.serve.post("/v1/chat/completions", chat_body("gpt"),
                                         key=self.tight_key).status, 429)
        self.assertEqual(self.serve.post("/v1/chat/completions", chat_body("gpt"),
                                         key="sk-not-a-key").status, 401)
        total = 3 + 1 + 1 + 1 + 2 + 1

        def counted():
            m = self.scrape()
            n = sum(v for (name, _), v in m.items() if name == "llm_proxy_requests_total")
            return m if n == total else None
        m = wait_until(counted, 5.0, message=f"{total} requests in /metrics")

        req = "llm_proxy_requests_total"
        self.assertEqual(metric(m, req, model="gpt", connection="up", status_class="2xx"), 4)
        self.assertEqual(metric(m, req, model="gpt", connection="up", status_class="4xx"), 1)
        self.assertEqual(metric(m, req, model="sse", connection="up", status_class="2xx"), 1)
        self.assertEqual(metric(m, req, model="busy", connection="up", status_class="5xx"), 1)
        self.assertEqual(metric(m, req, model="nowhere", connection="gone", status_class="5xx"), 1)
        # The unknown key never named a configured model: no label minted from it.
        self.assertEqual(metric(m, req, model="", connection="", status_class="4xx"), 1)
        self.assertEqual(metric(m, "llm_proxy_prompt_tokens_total", model="gpt", key="obs"), 33)
        self.assertEqual(metric(m, "llm_proxy_completion_tokens_total", model="gpt", key="obs"), 15)
        self.assertEqual(metric(m, "llm_proxy_prompt_tokens_total", model="sse", key="obs"), 7)
        self.assertAlmostEqual(metric(m, "llm_proxy_cost_usd_total", model="gpt", key="obs"),
                               (33 * 1.0 + 15 * 2.0) / 1e6)
        self.assertEqual(metric(m, "llm_proxy_rate_limited_total", reason="requests", key="tight"), 1)
        self.assertEqual(metric(m, "llm_proxy_upstream_errors_total", connection="up",
                                reason="http_503"), 1)
        self.assertEqual(metric(m, "llm_proxy_upstream_errors_total", connection="gone",
                                reason="unavailable"), 1)
        # Histograms: cumulative buckets, +Inf equal to the count.
        dur = "llm_proxy_request_duration_seconds"
        self.assertEqual(metric(m, dur + "_count", model="gpt"), 5)
        self.assertEqual(metric(m, dur + "_bucket", model="gpt", le="+Inf"), 5)
        buckets = sorted((float(dict(l)["le"]), v) for (n, l), v in m.items()
                         if n == dur + "_bucket" and dict(l).get("model") == "gpt"
                         and dict(l)["le"] != "+Inf")
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets))
        self.assertGreater(metric(m, dur + "_sum", model="gpt"), 0)
        self.assertEqual(metric(m, "llm_proxy_time_to_first_token_seconds_count", model="sse"), 1)
        self.assertEqual(metric(m, "llm_proxy_in_flight_requests"), 1)  # the scrape itself
        self.assertEqual(metric(m, "llm_proxy_open_streams"), 0)
        self.assertEqual(metric(m, "llm_proxy_storage_up"), 1)

        # The access log: one JSON line per proxied request, no secrets, no prompts.
        def lines():
            with open(self.log_path) as f:
                got = [json.loads(l) for l in f if l.strip()]
            return got if len(got) >= total else None
        log = wait_until(lines, 5.0, message="access log lines")
        self.assertEqual(len(log), total)
        by_id = {l["request_id"]: l for l in log}
        first = by_id[ids["gpt0"]]
        self.assertEqual({k: first[k] for k in ("key", "model", "connection", "status",
                                                 "prompt_tokens", "completion_tokens", "stream",
                                                 "error", "level", "msg")},
                         {"key": "obs", "model": "gpt", "connection": "up", "status": 200,
                          "prompt_tokens": 11, "completion_tokens": 5, "stream": False,
                          "error": None, "level": "info", "msg": "request"})
        self.assertGreater(first["latency_ms"], 0)
        self.assertRegex(first["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        errors = sorted(l["error"] for l in log if l["error"])
        self.assertEqual(errors, ["invalid_api_key", "rate_limit_exceeded", "upstream_http_503",
                                  "upstream_unavailable"])
        with open(self.log_path) as f:
            text = f.read()
        for secret in (self.key, self.tight_key, UPSTREAM_KEY, "secret prompt"):
            self.assertNotIn(secret, text)

        # Readiness: storage and config, and what each upstream last said.
        r = self.serve.get("/health/ready")
        self.assertEqual(r.status, 200, r.body)
        ready = r.json()
        self.assertEqual((ready["status"], ready["storage"]), ("ready", "reachable"))
        conns = ready["connections"]
        self.assertEqual(conns["idle"], {"state": "unknown"})
        self.assertEqual(conns["gone"]["state"], "down")
        self.assertEqual(conns["gone"]["last_error"], "upstream_unavailable")
        self.assertEqual(conns["up"]["state"], "up", conns["up"])  # its last answer was a 200
        self.assertEqual(conns["up"]["last_status"], 200)

    def test_log_bodies_and_text_format(self):
        path = os.path.join(self.ws.dir, "bodies.log")
        serve = Serve(self.ws, "--log-file", path, "--log-bodies", "--log-format", "text")
        try:
            req_id = rid("bodies")
            r = serve.post("/v1/chat/completions", chat_body("gpt", "tell me a secret"),
                           key=self.key, headers={"x-request-id": req_id})
            self.assertEqual(r.status, 200)
            def logged():
                with open(path) as f:
                    return next((l for l in f if req_id in l), None)
            line = wait_until(logged, 5.0, message="the access log line")
        finally:
            self.assertEqual(serve.stop(), 0)
        self.assertRegex(line, r"^\S+Z info request " + req_id + " key=obs model=gpt "
                               r"connection=up status=200 latency_ms=[0-9.]+ ttft_ms=[0-9.]+ "
                               r"prompt_tokens=11 completion_tokens=5 ")
        self.assertIn("tell me a secret", line)  # the prompt, only because of --log-bodies
        self.assertNotIn(self.key, line)

    def test_no_access_log_at_warn_level(self):
        path = os.path.join(self.ws.dir, "quiet.log")
        serve = Serve(self.ws, "--log-file", path, "--log-level", "warn")
        try:
            self.assertEqual(serve.post("/v1/chat/completions", chat_body("gpt"),
                                        key=self.key).status, 200)
            wait_until(lambda: self.ws.usage(), 5.0, message="the usage record")
        finally:
            self.assertEqual(serve.stop(), 0)
        self.assertFalse(os.path.exists(path) and open(path).read())


# ---------------------------------------------------------------------------
class DrainTest(unittest.TestCase):
    def setUp(self):
        self.ws = Workspace()
        self.addCleanup(self.ws.cleanup)
        self.fake = fo.FakeOpenAI().start()
        self.addCleanup(self.fake.stop)
        self.ws.connection("up", "openai", endpoint=self.fake.base_url + "/v1",
                           api_key=UPSTREAM_KEY)
        self.fake.on("r-drain", fo.sse_reply(pieces=[f"d{i}" for i in range(20)], interval=0.05,
                                             usage=(30, 20)))
        self.ws.model("drain", "r-drain", "up")
        self.ws.model("plain", "r-plain", "up")
        self.key, _ = self.ws.vkey("drainer", model_id=["drain", "plain"])
        self.serve = Serve(self.ws)
        self.addCleanup(self.serve.kill)

    def test_sigterm_lets_a_running_stream_finish(self):
        req_id = rid("drain")
        s = self.serve.stream("/v1/chat/completions", chat_body("drain", stream=True),
                              key=self.key, headers={"x-request-id": req_id})
        try:
            self.assertEqual(s.status, 200)
            it = s.events()
            next(it)  # the stream is under way
            rec = self.fake.wait_for_request(lambda q: q.model == "r-drain")
            self.serve.terminate()
            wait_until(lambda: refuses_connections(self.serve.port), 2.0,
                       message="new connections to be refused after SIGTERM")
            self.assertFalse(rec.finished.is_set(), "the stream ended before the check")
            for _ in it:
                pass
            self.assertIsNone(s.error)
        finally:
            s.close()
        data = [d for _, d in s.received]
        self.assertEqual(data[-1], "[DONE]")
        self.assertEqual([json.loads(d) for d in data[:-1]],
                         [json.loads(e) for e in rec.planned_events[:-1]])
        self.assertEqual(self.serve.wait(15), 0, self.serve.stderr())
        u = self.ws.wait_usage_record(req_id, timeout=1.0)
        self.assertEqual((u["status"], u["prompt_tokens"], u["completion_tokens"]), (200, 30, 20))

    def test_keep_alive_connection_during_drain(self):
        # A client already connected may still send a request while a stream
        # drains; it is answered, and told the connection will close.
        idle = http.client.HTTPConnection("127.0.0.1", self.serve.port, timeout=10)
        s = None
        try:
            self.assertEqual(request(self.serve.port, "GET", "/health", conn=idle).status, 200)
            s = self.serve.stream("/v1/chat/completions", chat_body("drain", stream=True),
                                  key=self.key)
            it = s.events()
            next(it)
            rec = self.fake.wait_for_request(lambda q: q.model == "r-drain")
            self.serve.terminate()
            wait_until(lambda: refuses_connections(self.serve.port), 2.0,
                       message="new connections to be refused after SIGTERM")
            r = request(self.serve.port, "POST", "/v1/chat/completions",
                        chat_body("plain", "late"), key=self.key, conn=idle)
            self.assertFalse(rec.finished.is_set(), "the stream ended before the check")
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.json()["choices"][0]["message"]["content"], "late")
            self.assertEqual(r.header("connection"), "close")
            for _ in it:
                pass
            self.assertEqual(s.received[-1][1], "[DONE]")
        finally:
            idle.close()
            if s:
                s.close()
        self.assertEqual(self.serve.wait(15), 0, self.serve.stderr())

    def test_idle_server_exits_at_once(self):
        # An idle keep-alive client does not hold the drain up.
        conn = http.client.HTTPConnection("127.0.0.1", self.serve.port, timeout=10)
        try:
            self.assertEqual(request(self.serve.port, "GET", "/health", conn=conn).status, 200)
            t0 = time.monotonic()
            self.serve.terminate()
            self.assertEqual(self.serve.wait(15), 0, self.serve.stderr())
            self.assertLess(time.monotonic() - t0, 2.0)
        finally:
            conn.close()


class StartupTest(unittest.TestCase):
    def setUp(self):
        self.ws = Workspace()
        self.addCleanup(self.ws.cleanup)
        self.ws.connection("demo", "mock")

    def test_sigterm_while_announcing_readiness(self):
        """The startup line tells a supervisor that serve is up; a SIGTERM sent
        from then on must drain and exit 0, never kill the process outright.

        Deterministic: serve's stderr is a pipe we filled up beforehand, so its
        startup line blocks in write(2); SIGTERM arrives exactly then."""
        r, w = os.pipe()
        try:
            flags = fcntl.fcntl(w, fcntl.F_GETFL)
            fcntl.fcntl(w, fcntl.F_SETFL, flags | os.O_NONBLOCK)
            try:
                while True:
                    os.write(w, b"." * 512)
            except BlockingIOError:
                pass
            try:
                while True:
                    os.write(w, b".")
            except BlockingIOError:
                pass
            fcntl.fcntl(w, fcntl.F_SETFL, flags)
            p = subprocess.Popen(serve_command(self.ws.db), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=w, env=base_env())
        finally:
            os.close(w)
        try:
            def blocked_writing_stderr():
                if p.poll() is not None:
                    raise AssertionError(f"serve exited early with {p.returncode}")
                try:
                    with open(f"/proc/{p.pid}/syscall") as f:
                        return f.read().startswith("1 0x2 ")  # write(2, ...)
                except OSError:
                    return False
            wait_until(blocked_writing_stderr, 15.0, message="serve to print its startup line")
            p.send_signal(signal.SIGTERM)
            out = b""
            while True:  # unblock it, and read what it says
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                out += chunk
            rc = p.wait(15)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            os.close(r)
        self.assertEqual(rc, 0, "SIGTERM during startup killed serve: " +
                         out.lstrip(b".").decode(errors="replace"))


class GraceTest(unittest.TestCase):
    def setUp(self):
        self.ws = Workspace()
        self.addCleanup(self.ws.cleanup)
        self.fake = fo.FakeOpenAI().start()
        self.addCleanup(self.fake.stop)
        self.ws.connection("up", "openai", endpoint=self.fake.base_url + "/v1",
                           api_key=UPSTREAM_KEY)
        self.fake.on("r-endless", fo.sse_reply(pieces=[f"e{i}" for i in range(400)],
                                               interval=0.05))
        self.ws.model("endless", "r-endless", "up")
        self.key, _ = self.ws.vkey("graceful", model_id=["endless"])

    def cut_stream(self, grace):
        serve = Serve(self.ws, "--grace", grace)
        self.addCleanup(serve.kill)
        req_id = rid("grace")
        s = serve.stream("/v1/chat/completions", chat_body("endless", stream=True),
                         key=self.key, headers={"x-request-id": req_id})
        try:
            it = s.events()
            next(it)
            t0 = time.monotonic()
            serve.terminate()
            self.assertEqual(serve.wait(15), 0, serve.stderr())
            elapsed = time.monotonic() - t0
            for _ in it:
                pass
        finally:
            s.close()
        self.assertNotIn("[DONE]", [d for _, d in s.received])
        u = self.ws.wait_usage_record(req_id, timeout=1.0)
        self.assertEqual(u["status"], 499)
        self.assertIn("1 requests cut at the grace period", serve.stderr())
        return elapsed

    def test_stream_cut_at_the_grace_period(self):
        elapsed = self.cut_stream("1")
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 5.0)

    def test_fractional_grace_period(self):
        elapsed = self.cut_stream("1.5")
        self.assertGreaterEqual(elapsed, 1.4, "--grace 1.5 was not honoured")
        self.assertLess(elapsed, 5.0)


# ---------------------------------------------------------------------------
class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ws = Workspace()
        cls.addClassCleanup(cls.ws.cleanup)
        cls.certs = fo.make_certificates(cls.ws.dir)
        cls.fake = fo.FakeOpenAI(tls_cert=cls.certs["server"],
                                 tls_key=cls.certs["server_key"]).start()
        cls.addClassCleanup(cls.fake.stop)
        assert cls.fake.base_url.startswith("https://")
        cls.ws.connection("secure", "openai", endpoint=cls.fake.base_url + "/v1",
                          api_key=UPSTREAM_KEY)
        cls.ws.model("tls", "tls-remote", "secure")
        cls.key, _ = cls.ws.vkey("tlsclient", model_id=["tls"])

    def test_trusted_ca(self):
        serve = Serve(self.ws, env={"SSL_CERT_FILE": self.certs["ca"]})
        try:
            r = serve.post("/v1/chat/completions", chat_body("tls", "over tls"), key=self.key)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.json()["choices"][0]["message"]["content"], "over tls")
            rec = self.fake.wait_for_request(lambda q: q.model == "tls-remote")
            self.assertEqual(rec.header("authorization"), "Bearer " + UPSTREAM_KEY)
            s = serve.stream("/v1/chat/completions", chat_body("tls", stream=True), key=self.key)
            try:
                data = s.read_all()
            finally:
                s.close()
            self.assertEqual(data[-1], "[DONE]")
            self.assertEqual(len(data), 7)
        finally:
            self.assertEqual(serve.stop(), 0, serve.stderr())

    def test_untrusted_ca_is_a_bad_gateway(self):
        serve = Serve(self.ws, env={"SSL_CERT_FILE": self.certs["other-ca"]})
        try:
            before = len(self.fake.requests())
            req_id = rid("untrusted")
            r = serve.post("/v1/chat/completions", chat_body("tls", "nope"), key=self.key,
                           headers={"x-request-id": req_id})
            self.assertEqual(r.status, 502, r.body)
            err = r.json()["error"]
            self.assertEqual(err["type"], "upstream_error")
            self.assertIn("'secure'", err["message"])
            self.assertTrue(self.fake.tls_failures.wait(2.0))
            self.assertEqual(len(self.fake.requests()), before)  # nothing was sent
            u = self.ws.wait_usage_record(req_id)
            self.assertEqual(u["status"], 502)
        finally:
            self.assertEqual(serve.stop(), 0, serve.stderr())


def test_classes():
    return sorted(name for name, obj in globals().items()
                  if isinstance(obj, type) and issubclass(obj, unittest.TestCase)
                  and unittest.defaultTestLoader.getTestCaseNames(obj))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--expect-classes"]:
        # CTest registers one test per class; fail if the two lists drift apart.
        registered, present = sorted(sys.argv[2:]), test_classes()
        if registered != present:
            sys.exit(f"tests/CMakeLists.txt registers {registered}, test_serve.py has {present}")
        sys.exit(0)
    if not os.access(BIN, os.X_OK):
        sys.exit(f"llm-proxy binary not found at {BIN} (set LLM_PROXY_BIN)")
    unittest.main(verbosity=2)
