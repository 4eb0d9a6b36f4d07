"""`llm-proxy serve` on PostgreSQL: the real binary with --db postgres://… on the
private cluster the storage tests start (CTest fixture storage_pg, state file
in LLM_PROXY_TEST_PG_STATE). Config changes made by another process reach the
proxy through LISTEN/NOTIFY; usage lands in PostgreSQL."""

import os
import subprocess
import sys
import time
import unittest
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, Serve, Workspace, base_env, chat_body, pg_state_url,  # noqa: E402
                     psql, wait_until)


class PgWorkspace(Workspace):
    """A Workspace whose --db is a fresh database on the test cluster."""

    def __init__(self):
        super().__init__(prefix="llmproxy-pg-")
        admin = pg_state_url()
        self.dbname = "llmproxy_serve_" + uuid.uuid4().hex[:10]
        psql(admin, f"CREATE DATABASE {self.dbname}")
        self.admin = admin
        self.db = admin.rsplit("/", 1)[0] + "/" + self.dbname

    def cleanup(self):
        try:
            psql(self.admin, f"DROP DATABASE IF EXISTS {self.dbname} WITH (FORCE)")
        finally:
            super().cleanup()


class PostgresServeTest(unittest.TestCase):
    def setUp(self):
        self.ws = PgWorkspace()
        self.addCleanup(self.ws.cleanup)
        self.ws.connection("m", "mock")
        self.ws.model("echo", "echo-1", "m", input_price=1, output_price=1)
        self.key, _ = self.ws.vkey("pg-key", model_id=["echo"])
        self.serve = Serve(self.ws)
        self.addCleanup(self.serve.kill)

    def test_proxy_reload_and_usage_on_postgres(self):
        self.assertIn("storage=postgres://", self.serve.stderr())
        health = self.serve.get("/health").json()
        self.assertEqual((health["status"], health["backend"]), ("ok", "postgres"))
        r = self.serve.post("/v1/chat/completions", chat_body("echo", "from postgres"), key=self.key)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["choices"][0]["message"]["content"], "from postgres")

        # Another process disables the key: NOTIFY wakes the watcher.
        t0 = time.monotonic()
        self.ws.cli("vkey", "disable", "pg-key")
        wait_until(lambda: self.serve.post("/v1/chat/completions", chat_body("echo"),
                                           key=self.key).status == 401, 2.0,
                   interval=0.01, message="the disabled key to be refused")
        print(f"\nvkey disable reached serve in {1000 * (time.monotonic() - t0):.0f} ms "
              "(CLI process start included)", file=sys.stderr)

        # The usage record is in PostgreSQL, readable by the CLI.
        rec = self.ws.wait_usage(1)[0]
        self.assertEqual((rec["vkey_name"], rec["model"], rec["status"]), ("pg-key", "echo", 200))
        self.assertEqual(self.serve.stop(), 0)


class PostgresDownAtStartupTest(unittest.TestCase):
    def test_unreachable_database_is_a_clear_error(self):
        url = "postgres://postgres:hunter2@127.0.0.1:1/nowhere"  # nothing listens on port 1
        p = subprocess.run([BIN, "--db", url, "serve", "--listen", "127.0.0.1:0"],
                           capture_output=True, text=True, timeout=30, env=base_env())
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertIn("llm-proxy: error:", p.stderr)
        self.assertNotIn("hunter2", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
