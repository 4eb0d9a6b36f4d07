"""A fake OpenAI upstream for the `llm-proxy serve` integration tests.

It speaks OpenAI's documented wire format (chat.completion, chat.completion.chunk
over SSE ending in `data: [DONE]`, text_completion, embeddings, and the
{"error": {...}} shape) over HTTP/1.1 with keep-alive, on 127.0.0.1 and an
ephemeral port, optionally over TLS.

Every request is recorded (method, path, query, headers, raw and parsed body,
which TCP connection carried it) so that tests can assert what the proxy sent.

Behaviour is scriptable per test: `fake.on("remote-model", behaviour)` makes
requests whose (rewritten) `model` is "remote-model" answered by `behaviour`;
everything else gets the default OpenAI-like behaviour (echo replies, SSE when
`stream` is true, usage chunk only when `stream_options.include_usage` is true).
A behaviour is a callable `behaviour(handler, record)` that writes the whole
response using the helpers on the handler.
"""

import json
import os
import select
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CREATED = 1_700_000_000


class Record:
    """One request the fake received, plus what happened while answering it."""

    def __init__(self, method, target, headers, body, conn_id):
        self.method = method
        self.target = target
        parts = urllib.parse.urlsplit(target)
        self.path = parts.path
        self.query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        self.raw_query = parts.query
        self.header_list = list(headers.items())
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None
        self.conn_id = conn_id
        self.received_at = time.monotonic()
        self.events_sent = []          # monotonic time of each SSE event written
        self.peer_closed = threading.Event()   # the proxy closed the connection on us
        self.peer_closed_at = None
        self.finished = threading.Event()      # the behaviour returned (or gave up)
        self.first_event_sent = threading.Event()

    @property
    def model(self):
        return self.json.get("model") if isinstance(self.json, dict) else None

    @property
    def user_text(self):
        """Content of the last message, if this is a chat request with one."""
        try:
            return self.json["messages"][-1]["content"]
        except (KeyError, IndexError, TypeError):
            return None

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return f"<Record {self.method} {self.target} model={self.model!r} conn={self.conn_id}>"


class PeerClosed(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle keep-alive connection is dropped after this

    def setup(self):
        if self.server.tls_context is not None:
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError):
                self.server.note_tls_failure()
                raise
        super().setup()
        self.conn_id = self.server.note_connection()

    def log_message(self, fmt, *args):  # quiet
        pass

    # --- request -----------------------------------------------------------
    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        rec = Record(self.command, self.path, self.headers, body, self.conn_id)
        self.server.note_request(rec)
        try:
            self.server.behaviour_for(rec)(self, rec)
        except PeerClosed:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self._mark_peer_closed(rec)
            self.close_connection = True
        finally:
            rec.finished.set()

    do_POST = _handle
    do_GET = _handle

    # --- helpers for behaviours ------------------------------------------------
    def _mark_peer_closed(self, rec):
        if not rec.peer_closed.is_set():
            rec.peer_closed_at = time.monotonic()
            rec.peer_closed.set()

    def peer_gone(self):
        """True if the proxy has closed (or reset) this connection."""
        if self.server.tls_context is not None:
            return False
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            if not r:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def wait(self, rec, seconds):
        """Waits `seconds` (a deliberately slow upstream) unless the proxy hangs
        up first or the fake is stopped; raises PeerClosed in the first case."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.server.stopping.is_set():
                return
            if self.server.tls_context is not None:
                self.server.stopping.wait(left)
                continue
            try:
                r, _, _ = select.select([self.connection], [], [], min(left, 0.05))
            except (OSError, ValueError):
                r = [self.connection]
            if r and self.peer_gone():
                self._mark_peer_closed(rec)
                raise PeerClosed()

    def send_json(self, status, obj, headers=()):
        body = json.dumps(obj).encode() if not isinstance(obj, (bytes, str)) else (
            obj.encode() if isinstance(obj, str) else obj)
        self.send_raw(status, body, "application/json", headers)

    def send_raw(self, status, body, content_type, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def start_sse(self, framing="chunked"):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        if framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        else:  # close-delimited
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self._framing = framing

    def sse_write(self, rec, data):
        raw = data.encode() if isinstance(data, str) else data
        if self._framing == "chunked":
            raw = b"%x\r\n%s\r\n" % (len(raw), raw)
        self.wfile.write(raw)
        rec.events_sent.append(time.monotonic())
        rec.first_event_sent.set()

    def sse_event(self, rec, obj):
        payload = obj if isinstance(obj, str) else json.dumps(obj)
        self.sse_write(rec, "data: " + payload + "\n\n")

    def end_sse(self):
        if self._framing == "chunked":
            self.wfile.write(b"0\r\n\r\n")

    def abort(self):
        """Drops the connection at once (no terminating chunk, no [DONE])."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# --- OpenAI-shaped payloads ---------------------------------------------------

def usage_obj(prompt, completion):
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}


def last_user_text(body):
    text = ""
    for m in (body or {}).get("messages") or []:
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                text = c
            elif isinstance(c, list):
                text = " ".join(p.get("text", "") for p in c
                                if isinstance(p, dict) and p.get("type") == "text")
    return text or "Hello!"


def error_obj(message, type_, param=None, code=None):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def chat_completion(model, content, usage):
    return {
        "id": "chatcmpl-fake123",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [{"index": 0,
                     "message": {"role": "assistant", "content": content, "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": usage_obj(*usage),
        "system_fingerprint": "fp_fake",
    }


def chunk(model, delta, finish=None, with_usage_null=False):
    c = {"id": "chatcmpl-fakestream", "object": "chat.completion.chunk", "created": CREATED,
         "model": model, "system_fingerprint": "fp_fake",
         "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    if with_usage_null:
        c["usage"] = None  # OpenAI sends "usage": null on every chunk when asked for usage
    return c


# --- behaviours ---------------------------------------------------------------

def chat_reply(usage=(9, 4), content=None, status=200, headers=()):
    """A normal chat.completion echoing the last user message."""
    def behave(h, rec):
        h.send_json(status, chat_completion(rec.model, content or last_user_text(rec.json), usage),
                    headers)
    return behave


def sse_reply(pieces=("Hel", "lo", " there", "!"), usage=(9, 4), interval=0.0,
              usage_mode="openai", framing="chunked", break_after=None, line_end="\n",
              fragment=None):
    """A chat.completion.chunk stream.

    usage_mode: "openai" — a final chunk with "choices": [] and usage, only if the
    request asked for stream_options.include_usage (exactly like OpenAI);
    "on_choice" — usage on the last chunk that still has choices, always;
    "none" — never any usage.
    break_after: close the connection after this many events, without [DONE].
    line_end: "\r\n" for servers that frame events with CRLF.
    fragment: write every event in pieces of this many bytes (each its own
    HTTP chunk / TCP write), splitting events at arbitrary points.
    """
    def behave(h, rec):
        body = rec.json or {}
        want_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        null_usage = usage_mode == "openai" and want_usage
        events = [chunk(rec.model, {"role": "assistant", "content": "", "refusal": None},
                        with_usage_null=null_usage)]
        events += [chunk(rec.model, {"content": p}, with_usage_null=null_usage) for p in pieces]
        final = chunk(rec.model, {}, "stop", with_usage_null=null_usage)
        if usage_mode == "on_choice":
            final["usage"] = usage_obj(*usage)
        events.append(final)
        if usage_mode == "openai" and want_usage:
            u = chunk(rec.model, {})
            u["choices"] = []
            u["usage"] = usage_obj(*usage)
            events.append(u)
        rec.planned_events = [json.dumps(e) for e in events]
        h.start_sse(framing)

        def emit(text):
            if not fragment:
                return h.sse_write(rec, text)
            raw = text.encode()
            for k in range(0, len(raw), fragment):
                h.sse_write(rec, raw[k:k + fragment])
                h.wait(rec, 0.002)  # separate TCP segments

        for i, e in enumerate(rec.planned_events):
            if break_after is not None and i >= break_after:
                h.abort()
                return
            if i and interval:
                h.wait(rec, interval)
            emit("data: " + e + line_end * 2)
        emit("data: [DONE]" + line_end * 2)
        h.end_sse()
    return behave


def completions_reply(usage=(5, 3)):
    def behave(h, rec):
        prompt = (rec.json or {}).get("prompt")
        text = prompt if isinstance(prompt, str) else "completion"
        h.send_json(200, {"id": "cmpl-fake", "object": "text_completion", "created": CREATED,
                          "model": rec.model,
                          "choices": [{"text": " " + text, "index": 0, "logprobs": None,
                                       "finish_reason": "stop"}],
                          "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                                    "total_tokens": usage[0] + usage[1]}})
    return behave


def embeddings_reply(tokens=6):
    def behave(h, rec):
        inputs = (rec.json or {}).get("input")
        if not isinstance(inputs, list):
            inputs = [inputs]
        h.send_json(200, {"object": "list",
                          "data": [{"object": "embedding", "index": i,
                                    "embedding": [0.0023064255, -0.009327292, 0.015797347]}
                                   for i, _ in enumerate(inputs)],
                          "model": rec.model,
                          "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
    return behave


def json_error(status, obj, headers=()):
    def behave(h, rec):
        h.send_json(status, obj, headers)
    return behave


def raw_reply(status, body, content_type="text/plain", headers=()):
    def behave(h, rec):
        h.send_raw(status, body if isinstance(body, bytes) else body.encode(), content_type,
                   headers)
    return behave


def close_after(behaviour):
    """Answers with `behaviour` (keep-alive as far as the headers say), then
    closes the connection, like a server whose idle timeout just expired."""
    def behave(h, rec):
        behaviour(h, rec)
        h.close_connection = True
    return behave


def slow(delay, then=None):
    """Answers only after `delay` seconds (or not at all if the proxy hangs up)."""
    then = then or chat_reply()

    def behave(h, rec):
        h.wait(rec, delay)
        then(h, rec)
    return behave


def default_behaviour(h, rec):
    path = rec.path
    if path.endswith("/chat/completions"):
        if (rec.json or {}).get("stream"):
            return sse_reply()(h, rec)
        return chat_reply()(h, rec)
    if path.endswith("/completions"):
        return completions_reply()(h, rec)
    if path.endswith("/embeddings"):
        return embeddings_reply()(h, rec)
    h.send_json(404, error_obj(f"Invalid URL ({rec.method} {path})", "invalid_request_error"))


# --- the server ---------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner, tls_context):
        self.owner = owner
        self.tls_context = tls_context
        self.stopping = owner.stopping
        super().__init__(("127.0.0.1", 0), Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.tls_context is not None:
            sock = self.tls_context.wrap_socket(sock, server_side=True,
                                                do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        pass  # a proxy hanging up on us is part of several tests

    def note_connection(self):
        return self.owner._note_connection()

    def note_tls_failure(self):
        self.owner.tls_failures.set()

    def note_request(self, rec):
        self.owner._note_request(rec)

    def behaviour_for(self, rec):
        return self.owner._behaviour_for(rec)


class FakeOpenAI:
    """Start with `with FakeOpenAI() as fake:` or start()/stop()."""

    def __init__(self, tls_cert=None, tls_key=None):
        self.stopping = threading.Event()
        self.tls_failures = threading.Event()
        self._lock = threading.Condition()
        self._requests = []
        self._connections = 0
        self._behaviours = {}
        self.default = default_behaviour
        ctx = None
        if tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls_cert, tls_key)
        self._server = _Server(self, ctx)
        self.tls = ctx is not None
        self.port = self._server.server_address[1]
        self._thread = None

    # --- lifecycle
    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    # --- scripting
    def on(self, model, behaviour):
        with self._lock:
            self._behaviours[model] = behaviour

    def _behaviour_for(self, rec):
        with self._lock:
            return self._behaviours.get(rec.model, self.default)

    # --- records
    def _note_connection(self):
        with self._lock:
            self._connections += 1
            return self._connections

    def _note_request(self, rec):
        with self._lock:
            self._requests.append(rec)
            self._lock.notify_all()

    @property
    def connections(self):
        with self._lock:
            return self._connections

    def requests(self, model=None):
        with self._lock:
            return [r for r in self._requests if model is None or r.model == model]

    def wait_for_request(self, pred=lambda r: True, timeout=5.0):
        """The first recorded request matching `pred`, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for r in self._requests:
                    if pred(r):
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("the fake upstream saw no matching request within "
                                         f"{timeout}s; it saw {self._requests}")
                self._lock.wait(left)


def make_certificates(directory):
    """A throwaway CA and a server certificate for 127.0.0.1/localhost signed by
    it, plus an unrelated CA; returns a dict of file paths."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_ext = ["-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=llm-proxy integration test CA", *ca_ext)
    run("req", "-x509", *ec, "-keyout", "other-ca.key", "-out", "other-ca.pem", "-days", "2",
        "-subj", "/CN=llm-proxy untrusted CA", *ca_ext)
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(directory, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext")
    return {name: os.path.join(directory, name + ".pem") if name != "server_key" else
            os.path.join(directory, "server.key")
            for name in ("ca", "other-ca", "server", "server_key")}
