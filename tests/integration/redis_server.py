"""A real redis-server for integration tests (Python 3 standard library only).

    from redis_server import RedisServer, RedisError

    server = RedisServer(tmpdir).start()           # free 127.0.0.1 port, own directory
    server.url                                     # redis://127.0.0.1:PORT/0
    server.client_command("SET", "k", "v")         # -> "OK"
    server.kill()                                  # SIGKILL: gone as in a crash
    server.restart()                               # same port, waits for PING
    server.stop()                                  # SIGTERM, clean shutdown
    server.close()                                 # stop and remove its directory

Options: RedisServer(tmpdir, password="pw") (requirepass), user="name" with a
password (an ACL user with every right; the default user is then off), tls=True
(a throwaway CA and a certificate for 127.0.0.1/localhost, made with the openssl
CLI; `url` is then rediss://…?cacert=<ca.pem>). `url_for(db)` names another
database. The server always listens on a plain port too (`plain_port`), which
client_command() uses (one kept connection, opened again after a restart),
authenticated as configured.

client_command() returns a status or bulk string as str (bytes that are not
UTF-8 survive as surrogate escapes), an integer as int, nil as None, an array
as a list; an error reply raises RedisError (nested in an array, it is an
element). Also: info(section) -> dict, calls(command) (INFO commandstats),
connections_received(), running, pid, log().

redis-server comes from $LLM_PROXY_REDIS_SERVER, else PATH (Debian's
redis-server package: bash packaging/install-deps.sh test); a missing binary
raises RedisServerError saying so. The server dies with the test process
(setpriv --pdeathsig where available).

As a command, for shell scripts:  python3 redis_server.py [--password P]
[--user U] [--tls] [--dir D] prints url=…, plain_port=…, ready; then reads
stop / kill / restart / quit lines from stdin (answering ok or error: …).
`python3 redis_server.py --self-test` checks this module against the real server.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

__all__ = ["RedisServer", "RedisError", "RedisServerError", "redis_server_binary"]


class RedisError(Exception):
    """An error reply (-ERR …) from the server."""


class RedisServerError(RuntimeError):
    """The test server could not be started, or does not answer."""


_PDEATHSIG = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []


def redis_server_binary():
    path = os.environ.get("LLM_PROXY_REDIS_SERVER") or shutil.which("redis-server")
    if not path:
        raise RedisServerError(
            "redis-server not found (PATH, $LLM_PROXY_REDIS_SERVER): install Debian's "
            "redis-server (bash packaging/install-deps.sh test)")
    return path


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def _decode(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("the connection closed mid-reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode("utf-8", "surrogateescape")
    if kind == b"-":
        return RedisError(rest.decode("utf-8", "surrogateescape"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        if len(data) != n + 2:
            raise ConnectionError("the connection closed mid-reply")
        return data[:-2].decode("utf-8", "surrogateescape")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_decode(f) for _ in range(n)]
    raise ConnectionError(f"not a RESP reply: {line!r}")


def _make_certificates(directory):
    """ca.pem, and server.pem/server.key for 127.0.0.1 and localhost signed by it."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    with open(os.path.join(directory, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    steps = [
        ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj",
         "/CN=llm-proxy redis test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext"],
    ]
    for step in steps:
        done = subprocess.run(["openssl", *step], cwd=directory, capture_output=True, text=True)
        if done.returncode != 0:
            raise RedisServerError(f"openssl {step[0]} failed: {done.stderr}")


class RedisServer:
    def __init__(self, tmpdir, password=None, user=None, tls=False):
        if user and not password:
            raise ValueError("an ACL user needs a password")
        self.password = password
        self.user = user
        self.tls = tls
        self.dir = tempfile.mkdtemp(prefix="redis-", dir=tmpdir)
        self.plain_port = 0
        self.tls_port = 0
        self.ca_file = os.path.join(self.dir, "ca.pem") if tls else None
        self.proc = None
        self._conn = None  # client_command()'s socket and reader
        if tls:
            _make_certificates(self.dir)

    # --- lifecycle ----------------------------------------------------------

    def start(self):
        """Starts on free ports (other ones if a port is taken meanwhile) and
        waits until it answers PING. Returns self."""
        for attempt in range(5):
            self.plain_port = _free_port()
            self.tls_port = _free_port() if self.tls else 0
            try:
                self._spawn()
                return self
            except RedisServerError:
                if attempt == 4:
                    raise
        return self

    def restart(self):
        """Starts again on the same port(s) after stop() or kill()."""
        if self.running:
            raise RedisServerError("restart: the server is still running")
        self._spawn()
        return self

    def stop(self, timeout=10):
        """SIGTERM and wait: a clean shutdown (nothing is saved)."""
        self._end(lambda p: p.terminate(), timeout)

    def kill(self):
        """SIGKILL and wait: connections are reset, nothing answers."""
        self._end(lambda p: p.kill(), 10)

    def close(self):
        """Stops the server and removes its directory."""
        if self.running:
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.running else None

    # --- addresses ----------------------------------------------------------

    @property
    def port(self):
        """The port clients use: the TLS one with tls=True."""
        return self.tls_port if self.tls else self.plain_port

    @property
    def url(self):
        return self.url_for(0)

    def url_for(self, db=0, password=None, user=None):
        """The URL of database `db` (user and password percent-encoded);
        password/user override the configured ones (e.g. a wrong password)."""
        password = self.password if password is None else password
        user = self.user if user is None else user
        quote = lambda text: urllib.parse.quote(text or "", safe="")  # noqa: E731
        auth = f"{quote(user)}:{quote(password)}@" if password else ""
        scheme = "rediss" if self.tls else "redis"
        url = f"{scheme}://{auth}127.0.0.1:{self.port}/{db}"
        return url + (f"?cacert={self.ca_file}" if self.tls else "")

    # --- talking to it --------------------------------------------------------

    def client_command(self, *args, timeout=10):
        """Runs one command on the plain port; see the module's doc for the reply."""
        for attempt in range(2):  # the kept connection may predate a restart
            try:
                if self._conn is None:
                    self._conn = self._connect(timeout)
                sock, reader = self._conn
                sock.settimeout(timeout)
                sock.sendall(_encode(args))
                reply = _decode(reader)
                break
            except (OSError, ConnectionError):
                self._disconnect()
                if attempt == 1:
                    raise
        if isinstance(reply, RedisError):
            raise reply
        return reply

    def info(self, section="default"):
        out = {}
        for line in self.client_command("INFO", section).splitlines():
            if ":" in line and not line.startswith("#"):
                key, value = line.split(":", 1)
                out[key] = value
        return out

    def calls(self, command):
        """How many times `command` ran ("evalsha", "script|load"): INFO commandstats."""
        stats = self.info("commandstats").get("cmdstat_" + command.lower(), "")
        for part in stats.split(","):
            if part.startswith("calls="):
                return int(part[6:])
        return 0

    def connections_received(self):
        """total_connections_received (client_command()'s one per start included)."""
        return int(self.info("stats")["total_connections_received"])

    def log(self):
        text = []
        for name in ("redis.out", "redis.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    text.append(f.read())
            except OSError:
                pass
        return "".join(text)

    # --- internals --------------------------------------------------------------

    def _args(self):
        args = [redis_server_binary(), "--port", str(self.plain_port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--logfile", os.path.join(self.dir, "redis.log"),
                "--enable-debug-command", "local"]
        if self.user:
            args += ["--user", self.user, "on", ">" + self.password, "~*", "&*", "+@all",
                     "--user", "default", "off"]
        elif self.password:
            args += ["--requirepass", self.password]
        if self.tls:
            args += ["--tls-port", str(self.tls_port),
                     "--tls-cert-file", os.path.join(self.dir, "server.pem"),
                     "--tls-key-file", os.path.join(self.dir, "server.key"),
                     "--tls-ca-cert-file", self.ca_file, "--tls-auth-clients", "no"]
        return args

    def _spawn(self, timeout=20):
        self._disconnect()
        with open(os.path.join(self.dir, "redis.out"), "ab") as out:
            self.proc = subprocess.Popen([*_PDEATHSIG, *self._args()], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if self.proc.poll() is not None:
                raise RedisServerError(f"redis-server exited at start "
                                       f"(status {self.proc.returncode}):\n{self.log()[-4000:]}")
            try:
                if self.client_command("PING", timeout=1) == "PONG":
                    return
            except (OSError, ConnectionError, RedisError) as e:
                last = e
                self._disconnect()
            if time.monotonic() > deadline:
                self.kill()
                raise RedisServerError(f"redis-server did not answer PING within {timeout}s "
                                       f"({last}):\n{self.log()[-4000:]}")
            time.sleep(0.005)  # polling for a condition: the server answering

    def _connect(self, timeout):
        sock = socket.create_connection(("127.0.0.1", self.plain_port), timeout=timeout)
        reader = sock.makefile("rb")
        if self.password:
            auth = ["AUTH", self.user, self.password] if self.user else ["AUTH", self.password]
            sock.sendall(_encode(auth))
            reply = _decode(reader)
            if isinstance(reply, RedisError):
                sock.close()
                raise reply
        return sock, reader

    def _disconnect(self):
        if self._conn:
            for part in reversed(self._conn):
                try:
                    part.close()
                except OSError:
                    pass
        self._conn = None

    def _end(self, signal_it, timeout):
        self._disconnect()
        if not self.running:
            return
        signal_it(self.proc)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _self_test():
    """Checks this module against the real server: python3 redis_server.py --self-test."""
    with tempfile.TemporaryDirectory() as tmp:
        with RedisServer(tmp) as s:
            assert s.url == f"redis://127.0.0.1:{s.port}/0", s.url
            assert s.client_command("SET", "k", "v") == "OK"
            assert s.client_command("GET", "k") == "v"
            assert s.client_command("GET", "nothing") is None
            assert s.client_command("INCRBY", "n", 5) == 5
            assert s.client_command("EVAL", "return {1, 'a', {false}}", 0) == [1, "a", [None]]
            try:
                s.client_command("NOSUCHCOMMAND")
                raise AssertionError("no RedisError")
            except RedisError as e:
                assert str(e).startswith("ERR"), e
            port, pid = s.port, s.pid
            s.kill()
            assert not s.running
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                raise AssertionError("still accepting after kill()")
            except ConnectionRefusedError:
                pass
            s.restart()
            assert s.port == port and s.pid != pid
            assert s.client_command("GET", "k") is None  # nothing survives
            s.stop()
            assert not s.running
            s.restart()
            assert s.client_command("PING") == "PONG"
            assert s.calls("ping") >= 1
        with RedisServer(tmp, password="p@ss/w:1") as s:
            assert s.url == f"redis://:p%40ss%2Fw%3A1@127.0.0.1:{s.port}/0", s.url
            assert s.client_command("PING") == "PONG"
        with RedisServer(tmp, password="pw2", user="limits", tls=True) as s:
            assert s.url == (f"rediss://limits:pw2@127.0.0.1:{s.tls_port}/0"
                             f"?cacert={s.ca_file}"), s.url
            assert s.client_command("ACL", "WHOAMI") == "limits"
            if shutil.which("redis-cli"):  # the TLS port, as another client sees it
                out = subprocess.run(["redis-cli", "--tls", "--cacert", s.ca_file, "-p",
                                      str(s.port), "--user", "limits", "--pass", "pw2",
                                      "--no-auth-warning", "PING"], capture_output=True, text=True)
                assert out.stdout.strip() == "PONG", out
        assert not os.listdir(tmp), os.listdir(tmp)  # close() removed each directory
    print("redis_server.py: self-test passed")


def _main(argv):
    opts = {"password": None, "user": None, "tls": False}
    directory = None
    it = iter(argv)
    for arg in it:
        if arg == "--self-test":
            _self_test()
            return 0
        if arg in ("--password", "--user"):
            opts[arg[2:]] = next(it)
        elif arg == "--tls":
            opts["tls"] = True
        elif arg == "--dir":
            directory = next(it)
        else:
            print("usage: redis_server.py [--password P] [--user U] [--tls] [--dir D] | "
                  "--self-test", file=sys.stderr)
            return 2
    with RedisServer(directory or tempfile.gettempdir(), **opts) as server:
        print(f"url={server.url}\nplain_port={server.plain_port}\nready", flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "quit":
                break
            try:
                {"stop": server.stop, "kill": server.kill, "restart": server.restart}[command]()
                print("ok", flush=True)
            except (KeyError, RedisServerError) as e:
                print(f"error: {e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
