#!/usr/bin/env python3
"""Helpers for bench/run.sh (Python 3 standard library only).

  freeports N                      print N free loopback TCP ports
  slow-upstream PORT               an OpenAI-shaped SSE upstream that paces its events
  ttfb ...                         time to first streamed event, over one keep-alive connection
  pacing ...                       arrival time of each event of a paced stream
  streams ...                      hold many streams open at once and sample a process's RSS

Everything talks plain HTTP/1.1 to 127.0.0.1 only.
"""
import argparse
import asyncio
import json
import socket
import statistics
import sys
import time


# ---------------------------------------------------------------------------
# Small shared pieces
# ---------------------------------------------------------------------------
def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def request_bytes(port, path, key, body):
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def chat_body(model, stream=True):
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "Say hello"}]}


class Response:
    """Incremental HTTP/1.1 response parser (Content-Length or chunked)."""

    def __init__(self):
        self.buf = b""
        self.status = None
        self.headers = None
        self.body = b""
        self.done = False
        self.chunked = False
        self.length = None

    def feed(self, data):
        self.buf += data
        if self.headers is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buf[:end].decode("latin-1").split("\r\n")
            self.buf = self.buf[end + 4:]
            self.status = int(lines[0].split()[1])
            self.headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                self.headers[k.strip().lower()] = v.strip()
            self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
            if "content-length" in self.headers:
                self.length = int(self.headers["content-length"])
        if self.chunked:
            while True:
                eol = self.buf.find(b"\r\n")
                if eol < 0:
                    return
                size = int(self.buf[:eol].split(b";")[0], 16)
                if size == 0:
                    if len(self.buf) >= eol + 4:
                        self.buf = self.buf[eol + 4:]
                        self.done = True
                    return
                if len(self.buf) < eol + 2 + size + 2:
                    return
                self.body += self.buf[eol + 2:eol + 2 + size]
                self.buf = self.buf[eol + 2 + size + 2:]
        else:
            want = self.length - len(self.body) if self.length is not None else len(self.buf)
            self.body += self.buf[:want]
            self.buf = self.buf[want:]
            if self.length is not None and len(self.body) >= self.length:
                self.done = True


class Conn:
    """One keep-alive client connection that times a streamed reply."""

    def __init__(self, port):
        self.port = port
        self.sock = None

    def _connect(self):
        self.sock = socket.create_connection(("127.0.0.1", self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def exchange(self, req):
        """Returns (status, [seconds from send to each complete SSE event], body,
        [time.monotonic() at each event's arrival])."""
        for attempt in (0, 1):
            if self.sock is None:
                self._connect()
            try:
                return self._exchange(req)
            except (ConnectionError, EOFError):
                self.sock.close()
                self.sock = None
                if attempt:
                    raise
        raise RuntimeError("unreachable")

    def _exchange(self, req):
        r = Response()
        t0 = time.perf_counter()
        self.sock.sendall(req)
        times = []
        stamps = []
        events = 0
        while not r.done:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed mid-reply")
            now = time.perf_counter()
            mono = time.monotonic()
            r.feed(data)
            n = r.body.count(b"\n\n")
            while events < n:
                events += 1
                times.append(now - t0)
                stamps.append(mono)
        if r.headers.get("connection", "").lower() == "close":
            self.sock.close()
            self.sock = None
        return r.status, times, r.body, stamps


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))]


# ---------------------------------------------------------------------------
# freeports
# ---------------------------------------------------------------------------
def cmd_freeports(a):
    socks = []
    for _ in range(a.n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


# ---------------------------------------------------------------------------
# slow-upstream: /fast/... paces --fast-events events --fast-interval apart;
# /hold/... sends one event every --hold-interval for --hold-events events.
# ---------------------------------------------------------------------------
def sse_event(obj):
    data = b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n" % len(data) + data + b"\r\n"


async def upstream_session(reader, writer, a):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split()[1]
            length = 0
            for line in lines[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v)
            body = json.loads(await reader.readexactly(length) or b"{}")
            hold = path.startswith("/hold/")
            events = a.hold_events if hold else a.fast_events
            interval = a.hold_interval if hold else a.fast_interval
            model = body.get("model", "slow")
            base = {"id": "chatcmpl-slow", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": model}
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            writer.write(sse_event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                          "finish_reason": None}]}))
            await writer.drain()
            for i in range(events):
                await asyncio.sleep(interval)
                # When it was sent (CLOCK_MONOTONIC, comparable across processes).
                writer.write(sse_event({**base, "system_fingerprint": f"sent={time.monotonic():.6f}",
                                        "choices": [{"index": 0, "delta": {"content": f"tick{i} "},
                                                     "finish_reason": None}]}))
                await writer.drain()
            writer.write(sse_event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
            if (body.get("stream_options") or {}).get("include_usage"):
                writer.write(sse_event({**base, "choices": [], "usage": {
                    "prompt_tokens": 2, "completion_tokens": events, "total_tokens": 2 + events}}))
            done = b"data: [DONE]\n\n"
            writer.write(b"%x\r\n" % len(done) + done + b"\r\n0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def slow_upstream(a):
    server = await asyncio.start_server(lambda r, w: upstream_session(r, w, a), "127.0.0.1", a.port,
                                        backlog=4096, reuse_address=True)
    print(f"slow-upstream: listening on 127.0.0.1:{a.port}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


def cmd_slow_upstream(a):
    try:
        asyncio.run(slow_upstream(a))
    except KeyboardInterrupt:
        pass


# ---------------------------------------------------------------------------
# ttfb: time from sending the request to the first complete SSE event.
# ---------------------------------------------------------------------------
def cmd_ttfb(a):
    conn = Conn(a.port)
    req = request_bytes(a.port, a.path, a.key, chat_body(a.model))
    firsts = []
    for i in range(a.warmup + a.n):
        status, times, _, _ = conn.exchange(req)
        if status != 200 or not times:
            sys.exit(f"ttfb: {a.path} on port {a.port} answered {status} with {len(times)} events")
        if i >= a.warmup:
            firsts.append(times[0] * 1e6)
    print(json.dumps({"n": len(firsts), "p50_us": statistics.median(firsts), "p99_us": pct(firsts, 99)}))


# ---------------------------------------------------------------------------
# pacing: does every event of a paced stream arrive when the upstream sends it?
# ---------------------------------------------------------------------------
def cmd_pacing(a):
    conn = Conn(a.port)
    req = request_bytes(a.port, a.path, a.key, chat_body(a.model))
    delays = []  # ms from the upstream writing a paced event to the client reading it
    for _ in range(a.n):
        status, _, body, stamps = conn.exchange(req)
        if status != 200:
            sys.exit(f"pacing: {a.path} on port {a.port} answered {status}")
        events = body.split(b"\n\n")
        for event, arrived in zip(events, stamps):
            at = event.find(b"sent=")
            if at >= 0:
                sent = float(event[at + 5:event.index(b'"', at)])
                delays.append((arrived - sent) * 1e3)
    if not delays:
        sys.exit(f"pacing: no paced events came back from {a.path} on port {a.port}")
    print(json.dumps({"events": len(delays), "p50_ms": statistics.median(delays), "max_ms": max(delays)}))


# ---------------------------------------------------------------------------
# streams: open COUNT streams at once, wait until each has its first event,
# sample the RSS of PID, then close them all.
# ---------------------------------------------------------------------------
async def hold_streams(a):
    req = request_bytes(a.port, a.path, a.key, chat_body(a.model))
    opened = 0
    live = 0
    failed = []
    all_open = asyncio.Event()
    stop = asyncio.Event()
    gate = asyncio.Semaphore(a.connect_concurrency)

    async def one():
        nonlocal opened, live
        writer = None
        counted = False
        try:
            async with gate:
                reader, writer = await asyncio.open_connection("127.0.0.1", a.port)
                writer.write(req)
                await writer.drain()
                r = Response()
                while b"\n\n" not in r.body:
                    data = await reader.read(65536)
                    if not data:
                        raise EOFError("closed before the first event")
                    r.feed(data)
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}")
            opened += 1
            live += 1
            counted = True
            if opened + len(failed) >= a.count:
                all_open.set()
            read = asyncio.ensure_future(reader.read(65536))
            stopped = asyncio.ensure_future(stop.wait())
            while not stop.is_set():
                done, _ = await asyncio.wait({read, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if read in done:
                    if not read.result():
                        raise EOFError("stream ended while held (raise --hold-events?)")
                    read = asyncio.ensure_future(reader.read(65536))
            read.cancel()
        except Exception as e:  # noqa: BLE001 - report any failure, keep the others
            failed.append(repr(e))
            if opened + len(failed) >= a.count:
                all_open.set()
        finally:
            if counted:
                live -= 1
            if writer is not None:
                writer.close()

    t0 = time.perf_counter()
    tasks = [asyncio.ensure_future(one()) for _ in range(a.count)]
    try:
        await asyncio.wait_for(all_open.wait(), a.open_timeout)
    except asyncio.TimeoutError:
        pass
    open_s = time.perf_counter() - t0
    samples = []
    live_at_sample = []
    for _ in range(a.samples):
        await asyncio.sleep(1.0)
        samples.append(rss_kib(a.pid))
        live_at_sample.append(live)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(2.0)
    after = rss_kib(a.pid)
    print(json.dumps({"requested": a.count, "opened": opened, "open_at_sample": min(live_at_sample) if live_at_sample else live,
                      "failed": len(failed), "first_failures": failed[:3], "open_seconds": round(open_s, 2),
                      "rss_kib_max": max(samples) if samples else 0, "rss_kib_after_close": after}))


def cmd_streams(a):
    asyncio.run(hold_streams(a))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("freeports")
    s.add_argument("n", type=int)
    s.set_defaults(fn=cmd_freeports)

    s = sub.add_parser("slow-upstream")
    s.add_argument("port", type=int)
    s.add_argument("--fast-events", type=int, default=5)
    s.add_argument("--fast-interval", type=float, default=0.05)
    s.add_argument("--hold-events", type=int, default=60)
    s.add_argument("--hold-interval", type=float, default=1.0)
    s.set_defaults(fn=cmd_slow_upstream)

    for name, fn in (("ttfb", cmd_ttfb), ("pacing", cmd_pacing), ("streams", cmd_streams)):
        s = sub.add_parser(name)
        s.add_argument("--port", type=int, required=True)
        s.add_argument("--path", required=True)
        s.add_argument("--key", default="none")
        s.add_argument("--model", default="bench")
        s.set_defaults(fn=fn)
        if name == "ttfb":
            s.add_argument("--n", type=int, default=500)
            s.add_argument("--warmup", type=int, default=50)
        elif name == "pacing":
            s.add_argument("--n", type=int, default=5)
        else:
            s.add_argument("--pid", type=int, required=True)
            s.add_argument("--count", type=int, default=1000)
            s.add_argument("--samples", type=int, default=5)
            s.add_argument("--open-timeout", type=float, default=60.0)
            s.add_argument("--connect-concurrency", type=int, default=200)

    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
