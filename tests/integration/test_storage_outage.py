#!/usr/bin/env python3
"""`llm-proxy serve` when its database goes away while it runs, and comes back.

Each test has a database server of its own, so nothing else is disturbed:
  PostgresOutageTest   a private cluster (tests/storage/pg_cluster.sh start),
                       stopped at once (pg_ctl -m immediate, as a crash) and
                       started again on the same port with its data;
  MongoOutageTest      tests/storage/fake_mongod.py with --dbpath, killed
                       (SIGKILL) and started again on the same port with its
                       data. (A real mongod cannot be installed here.)
  MongoDownAtStartupTest  no server at all when serve starts.

While the database is down, requests are served from the last config
snapshot without waiting on it, usage records wait in memory (bounded by
--usage-buffer; what is dropped beyond it is counted), /health/ready and
/metrics say the storage is unreachable; when it is back, the buffered
records are written (each once) and the reports recover. Every wait polls a
condition with a deadline.

Run: python3 tests/integration/test_storage_outage.py [PostgresOutageTest|MongoOutageTest|…]
"""

import os
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, FakeMongod, Serve, Workspace, base_env, chat_body,  # noqa: E402
                     closed_port, pg_state_url, wait_until)
from test_serve import metric, parse_prometheus  # noqa: E402

PG_CLUSTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "storage",
                          "pg_cluster.sh")

# How long serve may take to notice the outage (the config watcher polls every
# 0.5 s) and to recover from it (usage writes back off up to 5 s; libmongoc
# waits 5 s before it tries a server that refused it again).
NOTICE = 10.0
RECOVER = 30.0
# A request served from the snapshot answers at once; one that waited on the
# database would take its connect timeout (5 s MongoDB, 10 s PostgreSQL).
FAST = 2.0


class ServerWorkspace(Workspace):
    """A Workspace on a database server the test owns (URL given)."""

    def __init__(self, backend, url):
        self.dir = tempfile.mkdtemp(prefix="llmproxy-outage-")
        self.backend, self.db, self._drop = backend, url, lambda: None


class OutageCase:
    """The scenario, for a backend: the subclass starts a server and can take it
    down and bring it back."""

    backend = None

    def db_down(self):
        raise NotImplementedError

    def db_up(self):
        raise NotImplementedError

    # --- helpers
    def ready(self, serve):
        r = serve.get("/health/ready")
        self.assertEqual(r.status, 200, r.body)  # degraded is still serving
        return r.json()

    def scrape(self, serve):
        r = serve.get("/metrics")
        self.assertEqual(r.status, 200, r.body)
        return parse_prometheus(r.body.decode())

    def chat(self, serve, req_id, text="during the outage"):
        t0 = time.monotonic()
        r = serve.post("/v1/chat/completions", chat_body("echo", text), key=self.key,
                       headers={"x-request-id": req_id}, timeout=10.0)
        return r, time.monotonic() - t0

    def stored_ids(self):
        return [r["request_id"] for r in self.ws.usage()]

    # --- the scenario
    def test_serve_rides_out_a_database_outage(self):
        ws = self.ws
        ws.connection("m", "mock")
        ws.model("echo", "echo-1", "m")
        self.key, _ = ws.vkey("outage-key", model_id=["echo"])
        serve = Serve(ws)
        self.addCleanup(serve.kill)
        # A second instance on the same database, with room for 3 records only.
        small = Serve(ws, "--usage-buffer", "3")
        self.addCleanup(small.kill)

        before = f"before-{uuid.uuid4().hex[:8]}"
        r, _ = self.chat(serve, before, "before")
        self.assertEqual(r.status, 200, r.body)
        ws.wait_usage_record(before)
        self.assertEqual(self.ready(serve)["status"], "ready")
        self.assertEqual(metric(self.scrape(serve), "llm_proxy_storage_up"), 1)

        self.db_down()
        down_at = time.monotonic()
        for s in (serve, small):
            wait_until(lambda: self.ready(s)["status"] == "degraded", NOTICE,
                       message="/health/ready to report the storage outage")
        print(f"\n{self.backend} outage noticed in {time.monotonic() - down_at:.1f} s",
              file=sys.stderr)
        ready = self.ready(serve)
        self.assertEqual(ready["storage"], "unreachable")
        self.assertEqual(ready["backend"], self.backend)
        health = serve.get("/health").json()
        self.assertEqual((health["status"], health["storage"]), ("degraded", "unreachable"))
        self.assertEqual(metric(self.scrape(serve), "llm_proxy_storage_up"), 0)

        # Served from the last snapshot, without waiting on the database.
        during = [f"during-{i}-{uuid.uuid4().hex[:8]}" for i in range(12)]
        for req_id in during:
            r, took = self.chat(serve, req_id)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.json()["choices"][0]["message"]["content"], "during the outage")
            self.assertLess(took, FAST, "a request waited on the database")
        s = serve.stream("/v1/chat/completions", chat_body("echo", "streamed", stream=True),
                         key=self.key, headers={"x-request-id": "during-stream"})
        try:
            self.assertEqual(s.read_all()[-1], "[DONE]")
        finally:
            s.close()
        during.append("during-stream")
        small_ids = [f"small-{i}-{uuid.uuid4().hex[:8]}" for i in range(5)]
        for req_id in small_ids:
            r, took = self.chat(small, req_id)
            self.assertEqual(r.status, 200, r.body)
            self.assertLess(took, FAST)
        # The records wait in memory, and metrics count the requests meanwhile.
        def waiting(m):
            return (metric(m, "llm_proxy_usage_queue_depth") == len(during) and
                    metric(m, "llm_proxy_requests_total", model="echo", connection="m",
                           status_class="2xx") == 1 + len(during))
        m = wait_until(lambda: (lambda m: m if waiting(m) else None)(self.scrape(serve)),
                       NOTICE, message="the usage records to wait in memory, counted")
        self.assertEqual(metric(m, "llm_proxy_usage_records_dropped_total"), 0)
        ms = wait_until(lambda: (lambda m: m if metric(m, "llm_proxy_usage_records_dropped_total")
                                 == 2 else None)(self.scrape(small)),
                        NOTICE, message="the small buffer to drop 2 of 5 records")
        self.assertEqual(metric(ms, "llm_proxy_usage_queue_depth"), 3)
        # A config change cannot be made meanwhile: a clear storage failure.
        p = ws.cli("vkey", "list", check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)

        self.db_up()
        up_at = time.monotonic()

        def all_stored():
            ids = self.stored_ids()
            return ids if all(i in ids for i in during) else None
        ids = wait_until(all_stored, RECOVER, interval=0.2,
                         message="the buffered usage records to be written")
        print(f"{self.backend}: {len(during)} buffered records written "
              f"{time.monotonic() - up_at:.1f} s after the database came back", file=sys.stderr)
        for s in (serve, small):
            wait_until(lambda: self.ready(s)["status"] == "ready", RECOVER,
                       message="/health/ready to recover")
        ids = wait_until(lambda: (lambda ids: ids if sum(i.startswith("small-") for i in ids)
                                  >= 3 else None)(self.stored_ids()),
                         RECOVER, message="the small buffer's 3 records to be written")
        for req_id in [before] + during:
            self.assertEqual(ids.count(req_id), 1, f"{req_id} stored {ids.count(req_id)} times")
        kept = [i for i in ids if i.startswith("small-")]
        self.assertEqual(len(kept), 3, kept)
        self.assertEqual(len(set(kept)), 3, kept)
        self.assertIn(small_ids[-1], kept, "the newest record is kept")
        m = self.scrape(serve)
        self.assertEqual(metric(m, "llm_proxy_storage_up"), 1)
        self.assertEqual(metric(m, "llm_proxy_usage_queue_depth"), 0)
        self.assertEqual(metric(m, "llm_proxy_usage_records_dropped_total"), 0)
        self.assertEqual(metric(self.scrape(small), "llm_proxy_usage_records_dropped_total"), 2)

        # Config changes reach serve again.
        new_key, _ = ws.vkey("after-outage", model_id=["echo"])
        wait_until(lambda: serve.post("/v1/chat/completions", chat_body("echo"),
                                      key=new_key).status == 200, NOTICE,
                   message="a key made after the outage to work")

        for s in (serve, small):
            self.assertEqual(s.stop(), 0, s.stderr())
            self.assertIn("storage unreachable, serving the last config", s.stderr())
            self.assertIn("storage reachable again", s.stderr())
            # The usage writer reports an outage only if it tried to write
            # during it (it writes every flush interval, and the outage may
            # be over first); when it did, it reports the recovery too.
            if "cannot store usage records" in s.stderr():
                self.assertIn("usage storage is back", s.stderr())


class PostgresOutageTest(OutageCase, unittest.TestCase):
    backend = "postgres"

    def setUp(self):
        self.state = tempfile.mktemp(prefix="llmproxy-outage-pg-", suffix=".state")
        self.addCleanup(self.cluster, "stop")
        self.cluster("start")
        self.ws = ServerWorkspace("postgres", pg_state_url(self.state))
        self.addCleanup(self.ws.cleanup)

    def cluster(self, action):
        env = dict(os.environ)
        env.pop("LLM_PROXY_TEST_PG_URL", None)  # a cluster of its own, always
        env["PG_CLUSTER_DURABLE"] = "1"  # acknowledged commits survive `down`
        p = subprocess.run(["bash", PG_CLUSTER, action, self.state], capture_output=True,
                           text=True, timeout=180, env=env)
        if p.returncode != 0:
            raise AssertionError(f"pg_cluster.sh {action} failed: {p.stderr}")

    def db_down(self):
        self.cluster("down")

    def db_up(self):
        self.cluster("up")


class MongoOutageTest(OutageCase, unittest.TestCase):
    backend = "mongodb"

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="llmproxy-outage-mongo-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.dir]))
        self.server = FakeMongod(dbpath=os.path.join(self.dir, "data"))
        self.addCleanup(self.server.kill)
        print("\nMongoDB outage: against tests/storage/fake_mongod.py (--dbpath), killed and "
              "restarted; no real mongod here", file=sys.stderr)
        self.ws = ServerWorkspace("mongodb", self.server.url + "/llm_proxy_outage")
        self.addCleanup(self.ws.cleanup)

    def db_down(self):
        self.server.kill()

    def db_up(self):
        self.server.start()  # the same port, the same data


class MongoDownAtStartupTest(unittest.TestCase):
    def test_unreachable_database_is_a_clear_error(self):
        url = f"mongodb://proxy:hunter2@127.0.0.1:{closed_port()}/nowhere"
        t0 = time.monotonic()
        p = subprocess.run([BIN, "--db", url, "serve", "--listen", "127.0.0.1:0"],
                           capture_output=True, text=True, timeout=60, env=base_env())
        took = time.monotonic() - t0
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertIn("llm-proxy: error:", p.stderr)
        self.assertIn("MongoDB", p.stderr)
        self.assertNotIn("hunter2", p.stderr)
        self.assertLess(took, 15.0, "startup waited too long on an unreachable database")


if __name__ == "__main__":
    if not os.access(BIN, os.X_OK):
        sys.exit(f"llm-proxy binary not found at {BIN} (set LLM_PROXY_BIN)")
    unittest.main(verbosity=2)
