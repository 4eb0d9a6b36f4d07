"""The admin REST API (/admin/api/…) through the real binary: authentication,
every resource and verb, error statuses, the same JSON as the CLI's --json,
and changes made through it reaching the proxy."""

import os
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Serve, Workspace, chat_body, request, wait_until  # noqa: E402

MASTER = "sk-admin-master-key-for-tests-0123456789"
RELOAD = 2.0  # config changes reach serve within this


def without_times(obj):
    """Drops created_at/updated_at (the CLI and the API read at different times)."""
    if isinstance(obj, list):
        return [without_times(o) for o in obj]
    if isinstance(obj, dict):
        return {k: without_times(v) for k, v in obj.items() if k not in ("created_at", "updated_at")}
    return obj


class AdminApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ws = Workspace()
        cls.addClassCleanup(cls.ws.cleanup)
        cls.serve = Serve(cls.ws, "--master-key", MASTER)
        cls.addClassCleanup(cls.serve.kill)

    def api(self, method, path, body=None, key=MASTER):
        return request(self.serve.port, method, "/admin/api" + path, body, key=key)

    def ok(self, method, path, body=None, status=200):
        r = self.api(method, path, body)
        self.assertEqual(r.status, status, r.body)
        return r.json() if r.body else None

    def assertError(self, r, status, type_):
        self.assertEqual(r.status, status, r.body)
        self.assertTrue(r.header("content-type").startswith("application/json"))
        err = r.json()["error"]
        self.assertEqual(err["type"], type_, err)
        self.assertTrue(err["message"])
        return err

    # --- authentication ----------------------------------------------------------
    def test_requires_the_master_key(self):
        self.assertError(self.api("GET", "/vkeys", key=None), 401, "unauthorized")
        self.assertError(self.api("GET", "/vkeys", key="sk-wrong"), 401, "unauthorized")
        self.assertError(self.api("GET", "/vkeys", key=MASTER[:-1]), 401, "unauthorized")
        # A virtual key is not an admin token.
        self.ok("POST", "/connections", {"name": "auth-m", "provider": "mock"}, 201)
        self.ok("POST", "/models", {"name": "auth-echo", "remote": "e", "conn_id": "auth-m"}, 201)
        k = self.ok("POST", "/vkeys", {"name": "auth-k", "model_id": "auth-echo"}, 201)["key"]
        self.assertError(self.api("GET", "/vkeys", key=k), 401, "unauthorized")

    def test_disabled_without_a_master_key(self):
        serve = Serve(self.ws)
        try:
            r = request(serve.port, "GET", "/admin/api/vkeys", key=MASTER)
            err = self.assertError(r, 401, "unauthorized")
            self.assertIn("master key", err["message"])
        finally:
            self.assertEqual(serve.stop(), 0)

    # --- resources -----------------------------------------------------------------
    def test_crud_matches_the_cli_and_reaches_the_proxy(self):
        conn = self.ok("POST", "/connections",
                       {"name": "crud-m", "provider": "mock", "headers": {"X-Team": "search"},
                        "timeout": 30}, 201)
        self.assertEqual((conn["name"], conn["provider"], conn["timeout"]), ("crud-m", "mock", 30))
        self.assertEqual(conn["headers"], {"X-Team": "****"})  # values never shown
        model = self.ok("POST", "/models", {"name": "crud-echo", "remote": "echo-1",
                                             "conn_id": conn["id"], "input_price": 1.5}, 201)
        self.assertEqual((model["conn_id"], model["input_price"]), (conn["id"], 1.5))
        created = self.ok("POST", "/vkeys", {"name": "crud-k", "model_id": ["crud-echo"],
                                             "rpm": 100}, 201)
        key = created["key"]
        self.assertTrue(key.startswith("sk-"))
        self.assertEqual(created["assignments"][0]["rpm"], 100)

        # The same JSON as the CLI's --json, field for field.
        self.assertEqual(without_times(self.ok("GET", "/connections")),
                         without_times(self.ws.cli("connection", "list")))
        self.assertEqual(without_times(self.ok("GET", "/models")),
                         without_times(self.ws.cli("model", "list")))
        self.assertEqual(without_times(self.ok("GET", "/vkeys")),
                         without_times(self.ws.cli("vkey", "list")))
        self.assertEqual(without_times(self.ok("GET", "/assignments")),
                         without_times(self.ws.cli("assignment", "list")))
        shown = self.ok("GET", "/vkeys/crud-k")
        self.assertNotIn("key", shown)  # shown once, at creation
        self.assertNotIn(key, str(self.ok("GET", "/vkeys")))

        # The new key works on the proxy without a restart.
        def answered():
            r = self.serve.post("/v1/chat/completions", chat_body("crud-echo", "hi there"), key=key)
            return r if r.status == 200 else None
        r = wait_until(answered, RELOAD, message="the API-created key to work")
        self.assertEqual(r.json()["choices"][0]["message"]["content"], "hi there")

        # Disable, then enable.
        self.assertFalse(self.ok("POST", "/vkeys/crud-k/disable")["enabled"])
        wait_until(lambda: self.serve.post("/v1/chat/completions", chat_body("crud-echo"),
                                           key=key).status == 401, RELOAD,
                   message="the disabled key to be refused")
        self.assertTrue(self.ok("PATCH", "/vkeys/crud-k", {"enabled": True})["enabled"])
        wait_until(lambda: self.serve.post("/v1/chat/completions", chat_body("crud-echo"),
                                           key=key).status == 200, RELOAD,
                   message="the enabled key to work again")

        # Rotate: the old key stops working, the new one works.
        new_key = self.ok("POST", "/vkeys/crud-k/rotate")["key"]
        self.assertNotEqual(new_key, key)
        wait_until(lambda: self.serve.post("/v1/chat/completions", chat_body("crud-echo"),
                                           key=new_key).status == 200, RELOAD,
                   message="the rotated key to work")
        self.assertEqual(self.serve.post("/v1/chat/completions", chat_body("crud-echo"),
                                         key=key).status, 401)

        # Update fields, limits on an assignment, rename.
        self.assertEqual(self.ok("PATCH", "/models/crud-echo", {"output_price": 3})["output_price"], 3)
        a_id = self.ok("GET", "/assignments?vkey_id=crud-k")[0]["id"]
        self.assertEqual(self.ok("PATCH", f"/assignments/{a_id}", {"tps": 2.5})["tps"], 2.5)
        self.assertEqual(self.ok("PATCH", "/vkeys/crud-k", {"name": "crud-k2"})["name"], "crud-k2")
        self.assertEqual(self.ok("PATCH", "/connections/crud-m", {"timeout": 12})["timeout"], 12)

        # Assignments: grant the whole connection too, then take it away.
        grant = self.ok("POST", "/assignments", {"vkey_id": "crud-k2", "conn_id": "crud-m",
                                                 "token_limit": 1000, "token_window": "day"}, 201)
        self.assertEqual((grant["conn_id"], grant["token_limit"]), (conn["id"], 1000))
        self.ok("DELETE", f"/assignments/{grant['id']}", status=204)
        self.assertEqual(len(self.ok("GET", "/assignments?vkey_id=crud-k2")), 1)

        # Removing what is in use: 409, unless forced.
        self.assertError(self.api("DELETE", "/connections/crud-m"), 409, "conflict")
        self.ok("DELETE", "/vkeys/crud-k2", status=204)
        self.ok("DELETE", "/connections/crud-m?force=true", status=204)
        self.assertError(self.api("GET", "/connections/crud-m"), 404, "not_found")
        self.assertError(self.api("GET", "/models/crud-echo"), 404, "not_found")

    def test_bad_input_is_refused_and_changes_nothing(self):
        before = self.ws.cli("connection", "list")
        cases = [
            ("POST", "/connections", "{not json", 400, "invalid_request"),
            ("POST", "/connections", [1, 2], 400, "invalid_request"),
            ("POST", "/connections", {"name": "x", "provider": "nope"}, 400, "invalid_request"),
            ("POST", "/connections", {"name": "x", "provider": "mock", "typo": 1}, 400,
             "invalid_request"),
            ("POST", "/connections", {"name": 5, "provider": "mock"}, 400, "invalid_request"),
            ("POST", "/connections", {"name": "x", "provider": "mock", "timeout": -1}, 400,
             "invalid_request"),
            ("POST", "/models", {"name": "x", "remote": "r", "conn_id": "no-such"}, 404,
             "not_found"),
            ("POST", "/vkeys", {"name": "x", "model_id": "no-such"}, 404, "not_found"),
            ("POST", "/vkeys", {"name": "x", "rpm": -5}, 400, "invalid_request"),
            ("GET", "/vkeys/no-such", None, 404, "not_found"),
            ("GET", "/nothing-here", None, 404, "not_found"),
            ("PUT", "/usage", None, 405, "invalid_request"),
            ("GET", "/usage?by=week", None, 400, "invalid_request"),
        ]
        for method, path, body, status, type_ in cases:
            with self.subTest(method=method, path=path, body=body):
                self.assertError(self.api(method, path, body), status, type_)
        self.assertEqual(self.ws.cli("connection", "list"), before)

    def test_conflicts(self):
        self.ok("POST", "/connections", {"name": "dup", "provider": "mock"}, 201)
        err = self.assertError(self.api("POST", "/connections", {"name": "dup", "provider": "mock"}),
                               409, "conflict")
        # The same message as the CLI's.
        cli = self.ws.cli("connection", "add", "--name", "dup", "--provider", "mock", check=False)
        self.assertEqual(cli.returncode, 4)
        self.assertEqual(cli.stderr.strip(), "llm-proxy: error: " + err["message"])

    def test_usage_and_slow(self):
        self.ok("POST", "/connections", {"name": "use-m", "provider": "mock"}, 201)
        self.ok("POST", "/models", {"name": "use-echo", "remote": "e", "conn_id": "use-m",
                                    "input_price": 1, "output_price": 2}, 201)
        key = self.ok("POST", "/vkeys", {"name": "use-k", "model_id": "use-echo"}, 201)["key"]
        wait_until(lambda: self.serve.post("/v1/chat/completions", chat_body("use-echo", "one"),
                                           key=key).status == 200, RELOAD, message="the key")
        for text in ("two words", "three more words"):
            self.assertEqual(self.serve.post("/v1/chat/completions", chat_body("use-echo", text),
                                             key=key).status, 200)
        records = wait_until(lambda: (lambda u: u if len(u) >= 3 else None)(
            self.ok("GET", "/usage?vkey_id=use-k&limit=0")), 5.0, message="3 usage records")
        self.assertEqual(len(records), 3)
        self.assertEqual(without_times(records),
                         without_times(self.ws.cli("usage", "--vkey-id", "use-k", "--limit", "0")))
        by_model = self.ok("GET", "/usage?by=model&vkey_id=use-k")
        self.assertEqual(by_model, self.ws.cli("usage", "--by", "model", "--vkey-id", "use-k"))
        self.assertEqual(by_model[0]["group"], "use-echo")
        self.assertEqual(by_model[0]["requests"], 3)
        slow = self.ok("GET", "/slow?limit=2")
        self.assertEqual(len(slow), 2)
        self.assertGreaterEqual(slow[0]["latency_ms"], slow[1]["latency_ms"])
        everything = self.ok("GET", "/usage?limit=0")
        self.assertEqual(slow[0]["latency_ms"], max(r["latency_ms"] for r in everything))
        self.assertError(self.api("GET", "/slow?limit=0"), 400, "invalid_request")


if __name__ == "__main__":
    unittest.main(verbosity=2)
