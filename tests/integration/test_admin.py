"""The admin REST API (/admin/api/…) through the real binary: authentication,
every resource and verb, error statuses, the same JSON as the CLI's --json,
and changes made through it reaching the proxy."""

import base64
import json
import os
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Serve, Workspace, base_env, chat_body, request, wait_until  # noqa: E402

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
            self.assertIn("admin add", err["message"])  # how to get in without one
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

    def test_plans_and_the_new_limits_match_the_cli(self):
        plan = self.ok("POST", "/plans", {"name": "api-free", "rpm": 10, "token_limit": 10000,
                                          "token_window": "day", "budget": 5}, 201)
        self.assertEqual((plan["name"], plan["rpm"], plan["token_limit"], plan["budget"],
                          plan["budget_window"], plan["assignments"]),
                         ("api-free", 10, 10000, 5, "month", 0))
        for unset in ("tps", "rph", "rpd", "max_parallel", "reserve_tokens"):
            self.assertIsNone(plan[unset], unset)
        self.assertEqual(self.ok("GET", f"/plans/{plan['id']}"), self.ok("GET", "/plans/api-free"))
        plan = self.ok("PATCH", "/plans/api-free", {"rpm": 20, "max_parallel": 2, "token_limit": 0})
        self.assertEqual((plan["rpm"], plan["max_parallel"], plan["token_limit"]), (20, 2, None))

        self.ok("POST", "/connections", {"name": "plan-m", "provider": "mock"}, 201)
        self.ok("POST", "/models", {"name": "plan-echo", "remote": "e", "conn_id": "plan-m"}, 201)
        key = self.ok("POST", "/vkeys", {"name": "plan-k", "model_id": "plan-echo",
                                         "plan": "api-free", "rph": 100, "budget": 1.5,
                                         "key_budget": 50, "key_budget_window": "day"}, 201)
        grant = key["assignments"][0]
        self.assertEqual((grant["plan"], grant["rph"], grant["rpm"], grant["budget"]),
                         ("api-free", 100, None, 1.5))
        self.assertEqual(grant["effective"]["rpm"], 20)  # the plan's, where it sets none
        self.assertEqual(grant["effective"]["budget"], 1.5)  # its own wins
        self.assertEqual(grant["effective"]["max_parallel"], 2)
        self.assertEqual((key["key_budget"], key["key_budget_window"], key["key_token_limit"]),
                         (50, "day", None))
        key = self.ok("PATCH", "/vkeys/plan-k", {"key_token_limit": 1000,
                                                 "key_token_window": "hour", "key_budget": 0})
        self.assertEqual((key["key_token_limit"], key["key_token_window"], key["key_budget"]),
                         (1000, "hour", None))
        whole = self.ok("POST", "/assignments", {"vkey_id": "plan-k", "conn_id": "plan-m",
                                                 "plan": plan["id"], "max_parallel": 4,
                                                 "reserve_tokens": 64}, 201)
        self.assertEqual((whole["plan"], whole["max_parallel"], whole["reserve_tokens"]),
                         ("api-free", 4, 64))
        detached = self.ok("PATCH", f"/assignments/{whole['id']}", {"plan": "none", "rpd": 5})
        self.assertIsNone(detached["plan"])
        self.assertEqual((detached["rpd"], detached["effective"]["rpm"]), (5, None))
        self.assertEqual(self.ok("GET", "/plans/api-free")["assignments"], 1)

        # The same JSON as the CLI's --json.
        for path, args in (("/plans", ("plan", "list")), ("/vkeys", ("vkey", "list")),
                           ("/assignments", ("assignment", "list")),
                           ("/plans/api-free", ("plan", "show", "api-free"))):
            with self.subTest(path=path):
                self.assertEqual(without_times(self.ok("GET", path)),
                                 without_times(self.ws.cli(*args)))

        # In use: 409 and nothing changes; ?force=true detaches it.
        self.assertError(self.api("DELETE", "/plans/api-free"), 409, "conflict")
        self.assertEqual(self.ok("GET", "/assignments?vkey_id=plan-k")[0]["plan"], "api-free")
        self.ok("DELETE", "/plans/api-free?force=true", status=204)
        self.assertError(self.api("GET", "/plans/api-free"), 404, "not_found")
        left = self.ok("GET", "/assignments?vkey_id=plan-k")
        self.assertEqual([a["plan"] for a in left], [None, None])
        self.assertEqual(sorted(a["rph"] or 0 for a in left), [0, 100])  # own limits stay

    def test_bad_plan_input_is_refused_and_changes_nothing(self):
        self.ok("POST", "/plans", {"name": "bad-p", "rpm": 1}, 201)
        before = (self.ws.cli("plan", "list"), self.ws.cli("vkey", "list"))
        cases = [
            ("POST", "/plans", {"name": "x", "rpm": -1}, 400, "invalid_request"),
            ("POST", "/plans", {"name": "x", "budget": "lots"}, 400, "invalid_request"),
            ("POST", "/plans", {"name": "x", "plan": "bad-p"}, 400, "invalid_request"),
            ("POST", "/plans", {"name": "none"}, 400, "invalid_request"),
            ("POST", "/plans", {"rpm": 5}, 400, "invalid_request"),
            ("POST", "/plans", {"name": "bad-p"}, 409, "conflict"),
            ("PATCH", "/plans/bad-p", {"budget_window": "weekly"}, 400, "invalid_request"),
            ("PATCH", "/plans/no-such", {"rpm": 1}, 404, "not_found"),
            ("DELETE", "/plans/no-such", None, 404, "not_found"),
            ("POST", "/vkeys", {"name": "x", "plan": "bad-p"}, 400, "invalid_request"),
            ("POST", "/vkeys", {"name": "x", "key_budget": -1}, 400, "invalid_request"),
            ("POST", "/vkeys", {"name": "x", "model_id": "nope", "plan": "bad-p"}, 404,
             "not_found"),
            ("PATCH", "/vkeys/no-such", {"key_budget": 1}, 404, "not_found"),
            ("GET", "/budgets?vkey_id=no-such", None, 404, "not_found"),
            ("POST", "/budgets", {}, 405, "invalid_request"),
        ]
        for method, path, body, status, type_ in cases:
            with self.subTest(method=method, path=path, body=body):
                self.assertError(self.api(method, path, body), status, type_)
        self.assertEqual((self.ws.cli("plan", "list"), self.ws.cli("vkey", "list")), before)

    def test_budgets_show_spend_from_the_usage_records(self):
        self.ok("POST", "/connections", {"name": "bud-m", "provider": "mock"}, 201)
        self.ok("POST", "/models", {"name": "bud-echo", "remote": "e", "conn_id": "bud-m",
                                    "input_price": 1000, "output_price": 2000}, 201)
        self.ok("POST", "/plans", {"name": "bud-plan", "budget": 100, "budget_window": "day"},
                201)
        created = self.ok("POST", "/vkeys", {"name": "bud-k", "model_id": "bud-echo",
                                             "plan": "bud-plan", "key_budget": 500}, 201)
        key, grant = created["key"], created["assignments"][0]["id"]
        wait_until(lambda: self.serve.post("/v1/chat/completions", chat_body("bud-echo", "one"),
                                           key=key).status == 200, RELOAD, message="the key")
        self.assertEqual(self.serve.post("/v1/chat/completions",
                                         chat_body("bud-echo", "two words"), key=key).status, 200)
        records = wait_until(lambda: (lambda u: u if len(u) >= 2 else None)(
            self.ok("GET", "/usage?vkey_id=bud-k&limit=0")), 5.0, message="2 usage records")
        cost = sum(r["cost"] for r in records)
        self.assertGreater(cost, 0)

        budgets = self.ok("GET", "/budgets?vkey_id=bud-k")
        self.assertEqual(budgets, self.ws.cli("usage", "--budgets", "--vkey-id", "bud-k"))
        self.assertEqual([b["scope"] for b in budgets], ["assignment", "key"])
        mine, whole = budgets
        self.assertEqual((mine["assignment_id"], mine["plan"], mine["budget"],
                          mine["budget_window"]), (grant, "bud-plan", 100, "day"))
        self.assertEqual((whole["budget"], whole["budget_window"], whole["plan"]),
                         (500, "month", None))
        for b in budgets:
            self.assertAlmostEqual(b["spent"], cost, places=9)
            self.assertAlmostEqual(b["remaining"], b["budget"] - cost, places=9)
            self.assertTrue(b["window_start"].endswith("T00:00:00Z"), b)
        self.assertIn("bud-k", [b["vkey_name"] for b in self.ok("GET", "/budgets")])

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


def add_user(ws, username, password, *extra, env=None):
    """`llm-proxy admin add --password-stdin`; returns the CompletedProcess."""
    return subprocess.run([BIN, "--db", ws.db, "admin", "add", "--username", username,
                           "--password-stdin", *extra], input=password + "\n",
                          capture_output=True, text=True, env=base_env(env), timeout=60)


def b64url(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


class AdminUsersTest(unittest.TestCase):
    """Signing in with a user's name and password, roles, tokens, throttling."""

    ALICE_PW = "alice-password-123"
    VIEWER_PW = "viewer-password-456"

    @classmethod
    def setUpClass(cls):
        cls.ws = Workspace()
        cls.addClassCleanup(cls.ws.cleanup)
        for name, pw, role in (("alice", cls.ALICE_PW, "admin"), ("vera", cls.VIEWER_PW, "viewer")):
            p = add_user(cls.ws, name, pw, "--role", role)
            assert p.returncode == 0, p.stderr
        # No master key: users are the only way in.
        cls.serve = Serve(cls.ws)
        cls.addClassCleanup(cls.serve.kill)

    def login(self, username, password, serve=None):
        return request((serve or self.serve).port, "POST", "/admin/api/login",
                       {"username": username, "password": password})

    def token(self, username, password, serve=None):
        r = self.login(username, password, serve)
        self.assertEqual(r.status, 200, r.body)
        return r.json()["token"]

    def api(self, method, path, body=None, token=None, serve=None):
        return request((serve or self.serve).port, method, "/admin/api" + path, body, key=token)

    def assertError(self, r, status, type_):
        self.assertEqual(r.status, status, r.body)
        err = r.json()["error"]
        self.assertEqual(err["type"], type_, err)
        return err

    def test_login_gives_a_token_for_everything_an_admin_does(self):
        r = self.login("alice", self.ALICE_PW)
        self.assertEqual(r.status, 200, r.body)
        body = r.json()
        self.assertEqual((body["token_type"], body["username"], body["role"]),
                         ("Bearer", "alice", "admin"))
        self.assertGreater(body["expires_in"], 0)
        self.assertEqual(body["token"].count("."), 2)
        self.assertNotIn(self.ALICE_PW.encode(), r.body)
        token = body["token"]
        self.assertEqual(self.api("GET", "/me", token=token).json(),
                         {"username": "alice", "role": "admin"})
        self.assertEqual(self.api("POST", "/connections", {"name": "u-m", "provider": "mock"},
                                  token=token).status, 201)
        self.assertEqual(self.api("GET", "/connections/u-m", token=token).status, 200)
        self.assertError(self.api("GET", "/connections"), 401, "unauthorized")

    def test_viewer_reads_but_cannot_change_anything(self):
        admin = self.token("alice", self.ALICE_PW)
        self.assertEqual(self.api("POST", "/connections", {"name": "v-m", "provider": "mock"},
                                  token=admin).status, 201)
        viewer = self.token("vera", self.VIEWER_PW)
        self.assertEqual(self.api("GET", "/me", token=viewer).json(),
                         {"username": "vera", "role": "viewer"})
        for path in ("/connections", "/models", "/vkeys", "/assignments", "/plans", "/budgets",
                     "/usage", "/slow", "/users"):
            with self.subTest(path=path):
                self.assertEqual(self.api("GET", path, token=viewer).status, 200)
        self.assertEqual(self.api("POST", "/plans", {"name": "v-p"}, token=admin).status, 201)
        before = self.api("GET", "/vkeys", token=admin).json()
        plans = self.api("GET", "/plans", token=admin).json()
        for method, path, body in (("POST", "/vkeys", {"name": "v-k"}),
                                   ("POST", "/plans", {"name": "v-p2"}),
                                   ("PATCH", "/plans/v-p", {"rpm": 5}),
                                   ("DELETE", "/plans/v-p?force=true", None),
                                   ("POST", "/connections", {"name": "v2", "provider": "mock"}),
                                   ("DELETE", "/connections/v-m", None),
                                   ("PATCH", "/connections/v-m", {"timeout": 5}),
                                   ("POST", "/users", {"username": "x", "password": "y" * 12}),
                                   ("DELETE", "/users/alice", None)):
            with self.subTest(method=method, path=path):
                self.assertError(self.api(method, path, body, token=viewer), 403, "forbidden")
        self.assertEqual(self.api("GET", "/vkeys", token=admin).json(), before)
        self.assertEqual(self.api("GET", "/plans", token=admin).json(), plans)
        self.assertEqual(self.api("GET", "/connections/v-m", token=admin).status, 200)

    def test_wrong_password_and_unknown_user_look_the_same(self):
        wrong = self.login("alice", "not-her-password")
        unknown = self.login("nobody-by-this-name", "not-her-password")
        self.assertEqual(wrong.status, 401)
        self.assertEqual((wrong.status, wrong.body), (unknown.status, unknown.body))
        self.assertError(self.login("alice", ""), 401, "unauthorized")
        self.assertError(request(self.serve.port, "POST", "/admin/api/login", {"username": "alice"}),
                         400, "invalid_request")
        self.assertError(request(self.serve.port, "GET", "/admin/api/login"), 405,
                         "method_not_allowed")

    def test_forged_tampered_and_foreign_tokens_are_refused(self):
        viewer = self.token("vera", self.VIEWER_PW)
        head, claims, sig = viewer.split(".")
        payload = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
        payload["sub"] = "alice"  # promote oneself, keep the signature
        forged = ".".join([head, b64url(payload), sig])
        alg_none = ".".join([b64url({"alg": "none", "typ": "JWT"}), b64url(payload), ""])
        for bad in (forged, alg_none, viewer[:-3] + "AAA", "a.b.c", "sk-not-a-master-key"):
            with self.subTest(token=bad[:20]):
                self.assertError(self.api("GET", "/me", token=bad), 401, "unauthorized")
        # A token signed under another storage secret is refused too (the
        # same secret is shared trust: instances on one database accept each
        # other's tokens).
        other = Workspace()
        self.addCleanup(other.cleanup)
        env = {"LLM_PROXY_SECRET": "another-deployment-secret-0123456789abcdef"}
        self.assertEqual(add_user(other, "vera", self.VIEWER_PW, "--role", "viewer",
                                  env=env).returncode, 0)
        serve2 = Serve(other, env=env)
        self.addCleanup(serve2.kill)
        foreign = self.token("vera", self.VIEWER_PW, serve=serve2)
        self.assertError(self.api("GET", "/me", token=foreign), 401, "unauthorized")

    def test_tokens_expire(self):
        ws = Workspace()
        self.addCleanup(ws.cleanup)
        self.assertEqual(add_user(ws, "eve", "eve-password-1234").returncode, 0)
        serve = Serve(ws, "--admin-token-ttl", "1")
        self.addCleanup(serve.kill)
        r = request(serve.port, "POST", "/admin/api/login",
                    {"username": "eve", "password": "eve-password-1234"})
        self.assertEqual(r.json()["expires_in"], 1)
        token = r.json()["token"]
        self.assertEqual(self.api("GET", "/me", token=token, serve=serve).status, 200)
        wait_until(lambda: self.api("GET", "/me", token=token, serve=serve).status == 401, 5.0,
                   message="the token to expire")
        err = self.assertError(self.api("GET", "/me", token=token, serve=serve), 401,
                               "unauthorized")
        self.assertIn("sign in again", err["message"])

    def test_password_change_and_removal_void_tokens_and_a_restart_does_not(self):
        ws = Workspace()
        self.addCleanup(ws.cleanup)
        self.assertEqual(add_user(ws, "carl", "carl-password-1").returncode, 0)
        serve = Serve(ws)
        token = self.token("carl", "carl-password-1", serve=serve)
        self.assertEqual(serve.stop(), 0)
        serve = Serve(ws)  # same database secret: tokens survive a restart
        self.addCleanup(serve.kill)
        self.assertEqual(self.api("GET", "/me", token=token, serve=serve).status, 200)
        p = subprocess.run([BIN, "--db", ws.db, "admin", "passwd", "carl", "--password-stdin"],
                           input="carl-password-2\n", capture_output=True, text=True,
                           env=base_env(), timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertError(self.api("GET", "/me", token=token, serve=serve), 401, "unauthorized")
        self.assertError(self.login("carl", "carl-password-1", serve), 401, "unauthorized")
        token = self.token("carl", "carl-password-2", serve=serve)
        self.assertEqual(self.api("GET", "/me", token=token, serve=serve).status, 200)
        # The last admin cannot remove or demote themselves through the API...
        self.assertError(self.api("DELETE", "/users/carl", token=token, serve=serve), 409,
                         "conflict")
        self.assertError(self.api("PATCH", "/users/carl", {"role": "viewer"}, token=token,
                                  serve=serve), 409, "conflict")
        # ...once there is another admin they can.
        self.assertEqual(add_user(ws, "dan", "dan-password-12").returncode, 0)
        self.assertEqual(self.api("DELETE", "/users/carl", token=token, serve=serve).status, 204)
        self.assertError(self.api("GET", "/me", token=token, serve=serve), 401, "unauthorized")

    def test_users_through_the_api(self):
        admin = self.token("alice", self.ALICE_PW)
        r = self.api("POST", "/users", {"username": "dora", "password": "dora-password-1",
                                        "role": "viewer"}, token=admin)
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual((r.json()["username"], r.json()["role"]), ("dora", "viewer"))
        self.assertNotIn(b"password", r.body)
        listed = self.api("GET", "/users", token=admin).json()
        self.assertIn("dora", [u["username"] for u in listed])
        self.assertFalse(any("hash" in json.dumps(u) for u in listed))
        self.assertError(self.api("POST", "/users", {"username": "dora", "password": "x" * 12},
                                  token=admin), 409, "conflict")
        self.assertError(self.api("POST", "/users", {"username": "short", "password": "x"},
                                  token=admin), 400, "invalid_request")
        self.assertEqual(self.api("PATCH", "/users/dora", {"role": "admin"}, token=admin).status, 200)
        dora = self.token("dora", "dora-password-1")
        self.assertEqual(self.api("GET", "/me", token=dora).json()["role"], "admin")
        self.assertEqual(self.api("DELETE", "/users/dora", token=admin).status, 204)
        self.assertError(self.api("DELETE", "/users/dora", token=admin), 404, "not_found")
        self.assertError(self.login("dora", "dora-password-1"), 401, "unauthorized")

    def test_init_admin_creates_the_first_admin_once(self):
        ws = Workspace()
        self.addCleanup(ws.cleanup)
        env = {"LLM_PROXY_ADMIN_PASSWORD": "root-password-123"}
        serve = Serve(ws, "--init-admin", "root", env=env)
        self.assertEqual(self.token("root", "root-password-123", serve=serve).count("."), 2)
        self.assertEqual(serve.stop(), 0)
        # Users exist now: a second start changes nothing.
        serve = Serve(ws, "--init-admin", "root", env={"LLM_PROXY_ADMIN_PASSWORD": "other-pw-12345"})
        self.addCleanup(serve.kill)
        self.assertError(self.login("root", "other-pw-12345", serve), 401, "unauthorized")
        self.token("root", "root-password-123", serve=serve)
        # Without the password variable it refuses to start, in one line.
        p = subprocess.run([BIN, "--db", Workspace().db, "serve", "--listen", "127.0.0.1:0",
                            "--init-admin", "root"], capture_output=True, text=True,
                           env=base_env(), timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("LLM_PROXY_ADMIN_PASSWORD", p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)

    def test_login_attempts_are_rate_limited(self):
        ws = Workspace()
        self.addCleanup(ws.cleanup)
        self.assertEqual(add_user(ws, "gus", "gus-password-123").returncode, 0)
        self.assertEqual(add_user(ws, "hal", "hal-password-123").returncode, 0)
        serve = Serve(ws)
        self.addCleanup(serve.kill)
        # 5 failures for one username block it, even with the right password.
        for _ in range(5):
            self.assertError(self.login("gus", "guess", serve), 401, "unauthorized")
        r = self.login("gus", "gus-password-123", serve)  # right, but too late
        self.assertError(r, 429, "rate_limited")
        self.assertGreater(int(r.header("retry-after")), 0)
        # Other users are not locked out by it.
        self.token("hal", "hal-password-123", serve=serve)
        # The same for a name that does not exist: nothing to learn from it.
        for _ in range(5):
            self.assertError(self.login("ghost", "guess", serve), 401, "unauthorized")
        self.assertError(self.login("ghost", "guess", serve), 429, "rate_limited")
        # That made 10 failures from this address: now it may not try anyone.
        self.assertError(self.login("hal", "hal-password-123", serve), 429, "rate_limited")


if __name__ == "__main__":
    unittest.main(verbosity=2)
