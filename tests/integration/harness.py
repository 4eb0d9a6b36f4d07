"""Helpers for the `llm-proxy serve` integration tests: temp workspaces, the
provisioning CLI, a serve subprocess, a small HTTP client, an SSE reader, and
condition-based waiting.

The database every Workspace gets comes from LLM_PROXY_TEST_DB_URL:
  unset or "sqlite"      a temporary SQLite file (the default);
  "postgres"             a database of its own on the private cluster CTest's
                         storage_pg fixture started (LLM_PROXY_TEST_PG_STATE);
  postgres://…           a database of its own on that server (a role that
                         may CREATE DATABASE), dropped afterwards;
  "mongodb"              a database of its own on LLM_PROXY_TEST_MONGODB_URI
                         if set, else on tests/storage/fake_mongod.py (the
                         wire-protocol test server), started for this process;
  mongodb://…            a database of its own on that server, dropped afterwards.
`db_backend()` says which; the test output says which server ran."""

import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("LLM_PROXY_BIN") or os.path.normpath(
    os.path.join(HERE, "..", "..", "build", "llm-proxy"))
SECRET = "integration-test-secret-0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def base_env(extra=None):
    env = dict(os.environ)
    env["LLM_PROXY_SECRET"] = SECRET
    for name in ("LLM_PROXY_DB", "DB_TYPE", "DB_DSN", "MASTER_KEY", "SSL_CERT_FILE",
                 "SSL_CERT_DIR"):
        env.pop(name, None)
    env.update(extra or {})
    return env


# serve dies with the test process even if that is killed (e.g. a CTest timeout).
_PDEATHSIG = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []


def serve_command(db, *args, threads=2):
    return [*_PDEATHSIG, BIN, "--db", db, "serve", "--listen", "127.0.0.1:0", "--threads",
            str(threads), *[str(a) for a in args]]


def wait_until(predicate, timeout, interval=0.02, message="condition"):
    """Polls `predicate` until it returns something truthy; returns that value.
    Fails with AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message} "
                                 f"(last value: {last!r})")
        time.sleep(interval)


class CliError(AssertionError):
    pass


# --- the database under test --------------------------------------------------------

STORAGE_DIR = os.path.normpath(os.path.join(HERE, "..", "storage"))
FAKE_MONGOD = os.path.join(STORAGE_DIR, "fake_mongod.py")


def db_setting():
    return os.environ.get("LLM_PROXY_TEST_DB_URL", "").strip() or "sqlite"


def db_backend():
    """"sqlite", "postgres" or "mongodb": what LLM_PROXY_TEST_DB_URL selects."""
    v = db_setting()
    if v.startswith(("postgres", "postgresql")):
        return "postgres"
    if v.startswith("mongodb"):
        return "mongodb"
    if v == "sqlite":
        return "sqlite"
    raise AssertionError(f"LLM_PROXY_TEST_DB_URL={v!r}: expected sqlite, postgres, "
                         "postgres://…, mongodb or mongodb://… (every test needs a database "
                         "of its own)")


def pg_state_url(state=None):
    """The superuser URL in a tests/storage/pg_cluster.sh state file."""
    state = state or os.environ.get("LLM_PROXY_TEST_PG_STATE")
    if not state or not os.path.exists(state):
        raise AssertionError("LLM_PROXY_TEST_PG_STATE does not name a running test cluster "
                             "(run through CTest: the storage_pg fixture starts it)")
    with open(state) as f:
        for line in f:
            if line.startswith("PG_CLUSTER_URL="):
                return line.split("=", 1)[1].strip().strip("'\"")
    raise AssertionError(f"no PG_CLUSTER_URL in {state}")


def psql(url, sql):
    p = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise AssertionError(f"psql failed: {p.stderr}")


def _with_path(url, path):
    """`url` (scheme://authority/…?query) with its path replaced."""
    scheme, rest = url.split("://", 1)
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    query = rest[len(authority):].split("?", 1)
    return f"{scheme}://{authority}/{path}" + ("?" + query[1] if len(query) == 2 else "")


class FakeMongod:
    """tests/storage/fake_mongod.py as a subprocess on 127.0.0.1. With a dbpath
    its data survives kill() + start() on the same port, as a real server's does."""

    def __init__(self, dbpath=None):
        self.dbpath = dbpath
        self.port = 0
        self.proc = None
        self.start()

    def start(self):
        cmd = [*_PDEATHSIG, sys.executable, FAKE_MONGOD, "--port", str(self.port)]
        if self.dbpath:
            cmd += ["--dbpath", self.dbpath]
        deadline = time.monotonic() + 10
        while True:  # the port may linger a moment after a kill
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL)
            line = self.proc.stdout.readline().decode().strip()
            if line.isdigit():
                self.port = int(line)
                return self
            self.proc.wait(5)
            if time.monotonic() >= deadline:
                raise AssertionError(f"fake_mongod.py did not start on port {self.port}")
            time.sleep(0.05)

    @property
    def url(self):
        return f"mongodb://127.0.0.1:{self.port}"

    def kill(self):
        """Gone at once, like a crashed server: connections reset, nothing answers."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc:
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass


_fake_mongod = None


def _mongo_server_url():
    global _fake_mongod
    v = db_setting()
    if v != "mongodb":
        return v
    uri = os.environ.get("LLM_PROXY_TEST_MONGODB_URI", "").strip()
    if uri:
        _announce("MongoDB tests: running against the server in LLM_PROXY_TEST_MONGODB_URI")
        return uri
    if _fake_mongod is None:
        _fake_mongod = FakeMongod()
        sys.stderr.write("MongoDB tests: running against the wire-protocol test server "
                         "tests/storage/fake_mongod.py (no real mongod available here)\n")
    return _fake_mongod.url


_announced = set()


def _announce(what):
    if what not in _announced:
        _announced.add(what)
        sys.stderr.write(what + "\n")


def mongo_command(url, command):
    """Runs one command (a dict; "$db" from the URL's path) on the server `url`
    names, over the wire protocol with tests/storage/fake_mongod.py's BSON
    codec; returns the reply. No authentication: for the test server and
    servers without access control."""
    sys.path.insert(0, STORAGE_DIR)
    keep, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        import fake_mongod as fm  # noqa: E402
    finally:
        sys.path.remove(STORAGE_DIR)
        sys.dont_write_bytecode = keep
    rest = url.split("://", 1)[1]
    authority = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    db = (rest[len(rest.split("/", 1)[0]):].lstrip("/").split("?", 1)[0]) or "admin"
    host, _, port = authority.split(",", 1)[0].rpartition(":")
    cmd = dict(command)
    cmd["$db"] = db
    payload = struct.pack("<I", 0) + b"\x00" + fm.encode(cmd)
    with socket.create_connection((host or "127.0.0.1", int(port or 27017)), timeout=10) as s:
        s.sendall(struct.pack("<iiii", 16 + len(payload), 1, 0, 2013) + payload)
        length = struct.unpack("<i", fm._read_exact(s, 4))[0]
        body = fm._read_exact(s, length - 4)
    reply, _ = fm.decode(body, 12 + 5)
    return reply


def new_database(dir):
    """(backend, --db value, cleanup) for a Workspace whose files live in `dir`."""
    backend = db_backend()
    if backend == "sqlite":
        return "sqlite", os.path.join(dir, "t.db"), lambda: None
    name = "llmproxy_it_" + uuid.uuid4().hex[:12]
    if backend == "postgres":
        v = db_setting()
        admin = pg_state_url() if v == "postgres" else v
        _announce("serve tests: running on PostgreSQL " +
                  ("(the storage_pg fixture's private cluster)" if v == "postgres"
                   else "(LLM_PROXY_TEST_DB_URL)"))
        psql(admin, f"CREATE DATABASE {name}")
        return "postgres", _with_path(admin, name), lambda: psql(
            admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    server = _mongo_server_url()
    _announce("serve tests: running on MongoDB at " + _with_path(server, "").split("@")[-1])
    url = _with_path(server, name)

    def drop():
        try:
            mongo_command(url, {"dropDatabase": 1})
        except (OSError, ValueError):
            pass  # best effort (a server that wants authentication keeps it)
    return "mongodb", url, drop


class Workspace:
    """A temp dir, and the database the tests run on (see the top of this file):
    a SQLite file in the dir, or a database of its own on a server. Both go
    in cleanup()."""

    def __init__(self, prefix="llmproxy-it-"):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        try:
            self.backend, self.db, self._drop = new_database(self.dir)
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def cleanup(self):
        try:
            self._drop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def cli(self, *args, check=True, env=None):
        """Runs `llm-proxy --db <db> --json ARGS` and returns the parsed JSON."""
        cmd = [BIN, "--db", self.db, "--json", *[str(a) for a in args]]
        p = subprocess.run(cmd, capture_output=True, text=True, env=base_env(env), timeout=30)
        if check and p.returncode != 0:
            raise CliError(f"{' '.join(cmd[1:])} exited {p.returncode}: {p.stderr.strip()}")
        if p.returncode != 0:
            return p
        return json.loads(p.stdout) if p.stdout.strip() else None

    # Shorthands for provisioning.
    def connection(self, name, provider, **opts):
        return self.cli("connection", "add", "--name", name, "--provider", provider,
                        *_flags(opts))

    def model(self, name, remote, conn, **opts):
        return self.cli("model", "add", "--name", name, "--remote", remote, "--conn-id", conn,
                        *_flags(opts))

    def vkey(self, name, **opts):
        """Returns (key, vkey json)."""
        v = self.cli("vkey", "add", "--name", name, *_flags(opts))
        return v["key"], v

    def usage(self):
        return self.cli("usage", "--limit", "0")

    def wait_usage(self, count, timeout=5.0):
        """Waits until at least `count` usage records are stored; returns them all."""
        return wait_until(lambda: (lambda u: u if len(u) >= count else None)(self.usage()),
                          timeout, interval=0.05, message=f"{count} usage records")

    def wait_usage_record(self, request_id, timeout=5.0):
        """Waits for the usage record of the request with this x-request-id."""
        def find():
            for r in self.usage():
                if r["request_id"] == request_id:
                    return r
            return None
        return wait_until(find, timeout, interval=0.05, message=f"usage record of {request_id}")


def _flags(opts):
    out = []
    for k, v in opts.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, (list, tuple)):
            for item in v:
                out += [flag, str(item)]
        elif v is True:
            out.append(flag)
        elif v is not None:
            out += [flag, str(v)]
    return out


class Serve:
    """`llm-proxy serve` as a subprocess on 127.0.0.1 and an ephemeral port."""

    STARTUP_TIMEOUT = 15.0

    def __init__(self, ws, *args, env=None, threads=2):
        self.ws = ws
        cmd = serve_command(ws.db, *args, threads=threads)
        self.stderr_lines = []
        self._lines_lock = threading.Lock()
        self._ready = threading.Event()
        self.port = None
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=base_env(env))
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()
        if not self._ready.wait(self.STARTUP_TIMEOUT) or self.port is None:
            self.kill()
            raise AssertionError("llm-proxy serve did not report its port; stderr:\n" +
                                 self.stderr())
        # serve prints its startup line before it installs its SIGTERM handler;
        # a SIGTERM in between would kill it outright, so wait for the handler.
        try:
            wait_until(self._handles_sigterm, 5.0, message="serve to handle SIGTERM")
        except AssertionError:
            self.kill()
            raise

    def _handles_sigterm(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("SigCgt:"):
                        return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
        except OSError:
            return False
        return False

    def _read_stderr(self):
        prefix = "llm-proxy: listening on 127.0.0.1:"
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            with self._lines_lock:
                self.stderr_lines.append(line)
            if self.port is None and line.startswith(prefix):
                self.port = int(line[len(prefix):].split()[0])
                self._ready.set()
        self._ready.set()  # EOF: exited before (or after) listening

    def stderr(self):
        with self._lines_lock:
            return "\n".join(self.stderr_lines)

    @property
    def running(self):
        return self.proc.poll() is None

    def terminate(self):
        if self.running:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout=15.0):
        rc = self.proc.wait(timeout)
        self._join_drain()
        return rc

    def _join_drain(self):
        self._drain.join(5)
        if not self._drain.is_alive() and self.proc.stderr:
            self.proc.stderr.close()

    def stop(self, timeout=15.0):
        """SIGTERM and wait; returns the exit code."""
        self.terminate()
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("llm-proxy serve did not exit after SIGTERM; stderr:\n" +
                                 self.stderr())

    def kill(self):
        if self.running:
            self.proc.kill()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._join_drain()

    # HTTP shorthands
    def request(self, method, path, body=None, headers=None, key=None, timeout=10.0):
        return request(self.port, method, path, body, headers, key, timeout)

    def post(self, path, body, key=None, headers=None, timeout=10.0):
        return request(self.port, "POST", path, body, headers, key, timeout)

    def get(self, path, key=None, headers=None, timeout=10.0):
        return request(self.port, "GET", path, None, headers, key, timeout)

    def stream(self, path, body, key=None, headers=None, timeout=10.0):
        return SSEStream(self.port, path, body, key, headers, timeout)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-cased names
        self.body = body

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return f"<Response {self.status} {self.body[:300]!r}>"


def _prepare(body, headers, key):
    hdrs = {}
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    elif isinstance(body, str):
        body = body.encode()
        hdrs["Content-Type"] = "application/json"
    if key is not None:
        hdrs["Authorization"] = "Bearer " + key
    hdrs.update(headers or {})
    return body, hdrs


def read_response(resp):
    body = resp.read()
    return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)


def request(port, method, path, body=None, headers=None, key=None, timeout=10.0, conn=None):
    """One request; uses (and keeps open) `conn` if given, else a fresh connection."""
    body, hdrs = _prepare(body, headers, key)
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        return read_response(conn.getresponse())
    finally:
        if own:
            conn.close()


class SSEStream:
    """A streaming request whose reply is read event by event as it arrives.

    `status`/`headers` are available at once; iterate `events()` to get
    (arrival_time, data) pairs, data being the text after `data: `."""

    def __init__(self, port, path, body, key=None, headers=None, timeout=10.0):
        body, hdrs = _prepare(body, headers, key)
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.sent_at = time.monotonic()
        self.conn.request("POST", path, body=body, headers=hdrs)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}
        self.received = []   # (monotonic time, data)
        self.error = None    # an exception that ended reading early

    def events(self):
        lines = []
        while True:
            try:
                line = self.resp.readline()
            except (http.client.IncompleteRead, OSError, ValueError) as e:
                self.error = e
                return
            if not line:
                return
            line = line.decode().rstrip("\r\n")
            if line:
                lines.append(line)
                continue
            if not lines:
                continue
            data = "\n".join(l[5:].lstrip(" ") if l.startswith("data:") else l for l in lines
                             if l.startswith("data:"))
            lines = []
            item = (time.monotonic(), data)
            self.received.append(item)
            yield item

    def read_all(self):
        for _ in self.events():
            pass
        return [d for _, d in self.received]

    def body_if_not_sse(self):
        return Response(self.status, self.headers, self.resp.read())

    def abort(self):
        """Closes the client side of the connection at once."""
        sock = self.conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.close()

    def close(self):
        try:
            self.resp.close()
        finally:
            self.conn.close()


def chat_body(model, text="hello", **extra):
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    body.update(extra)
    return body


def closed_port():
    """A local port nothing listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def refuses_connections(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
