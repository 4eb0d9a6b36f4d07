"""Limits that hold: claims under concurrency on one instance, and shared state
across instances through a real redis-server (started by the tests on a free
loopback port), against the real binary and a fake OpenAI upstream.

Each test makes its key before starting its serve instances (so no instance
has to reload to see it), sends its requests at once from threads released
by one barrier, and checks the statuses, the headers and the stored usage."""

import json
import os
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fake_openai as fo  # noqa: E402
from harness import Serve, Workspace, chat_body, request, wait_until, SSEStream  # noqa: E402
from redis_server import RedisServer  # noqa: E402

SLOW = 0.8  # seconds the slow upstream takes: every burst request is in flight at once
# What the upstream reports for a short one-message prompt answered to its
# max_tokens of 10 (OpenAI counts "hello there" as a user message at ~10).
USAGE = (10, 10)


def rid(tag):
    return f"{tag}-{uuid.uuid4().hex[:10]}"


def burst(ports, n, body, key, path="/v1/chat/completions", timeout=20.0):
    """n requests at once, spread over the instances' ports; their responses."""
    results = [None] * n
    gate = threading.Barrier(n)

    def one(i):
        gate.wait()
        results[i] = request(ports[i % len(ports)], "POST", path, body, key=key, timeout=timeout)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    return results


def statuses(results):
    return sorted(r.status for r in results)


def metric(serve, name):
    text = serve.get("/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


class LimitsCase(unittest.TestCase):
    """One workspace, one fake upstream and one Redis per class; serve
    instances per test."""

    @classmethod
    def setUpClass(cls):
        cls.ws = Workspace()
        cls.addClassCleanup(cls.ws.cleanup)
        cls.fake = fo.FakeOpenAI().start()
        cls.addClassCleanup(cls.fake.stop)
        cls.redis = RedisServer(cls.ws.dir).start()
        cls.addClassCleanup(cls.redis.stop)
        base = cls.fake.base_url + "/v1"
        cls.ws.connection("up", "openai", endpoint=base, api_key="sk-upstream-secret")
        cls.fake.on("slow-1", fo.slow(SLOW, fo.chat_reply(usage=USAGE)))
        cls.fake.on("fast-1", fo.chat_reply(usage=USAGE))
        # $2 / $8 per million: 10 + 500 tokens (its max_tokens) cost $0.00402.
        cls.fake.on("priced-1", fo.slow(SLOW, fo.chat_reply(usage=(10, 500))))
        cls.fake.on("stream-1", fo.sse_reply(pieces=("a", "b", "c", "d"), interval=0.4))
        cls.ws.model("slow", "slow-1", "up")
        cls.ws.model("fast", "fast-1", "up")
        cls.ws.model("priced", "priced-1", "up", input_price=2.0, output_price=8.0)
        cls.ws.model("priced2", "priced-1", "up", input_price=2.0, output_price=8.0)
        cls.ws.model("stream", "stream-1", "up")
        cls.names = 0

    def key(self, model, **limits):
        type(self).names += 1
        key, _ = self.ws.vkey(f"k{self.names}", model_id=[model], **limits)
        return key

    def serves(self, n, *args, shared=True):
        """n instances on the workspace's database (sharing the Redis if shared)."""
        extra = ("--redis", self.redis.url) if shared else ()
        out = []
        for _ in range(n):
            s = Serve(self.ws, *extra, *args)
            self.addCleanup(self._stop, s)
            out.append(s)
        return out

    def _stop(self, serve):
        if serve.running:
            self.assertEqual(serve.stop(), 0, serve.stderr())

    def assertRefused(self, r, type_, status=429):
        self.assertEqual(r.status, status, r.body)
        err = r.json()["error"]
        self.assertEqual(err["type"], type_, err)
        self.assertEqual(err["code"], type_, err)

    def usage_for(self, request_ids):
        """The stored usage records of these requests (waiting until all are in)."""
        wanted = set(request_ids)

        def found():
            got = [u for u in self.ws.usage() if u["request_id"] in wanted]
            return got if len(got) == len(wanted) else None
        return wait_until(found, 10, interval=0.1, message=f"{len(wanted)} usage records")


class ReservationsTest(LimitsCase):
    """Claims: requests in flight never jointly overshoot a window."""

    def check_token_burst(self, key, serves):
        ports = [s.port for s in serves]
        results = burst(ports, 20, chat_body("slow", "hello there", max_tokens=10), key)
        ok = [r for r in results if r.status == 200]
        for r in results:
            if r.status != 200:
                self.assertRefused(r, "tokens_exceeded")
        # Before claims all 20 got in: 460 tokens against a limit of 100.
        self.assertGreaterEqual(len(ok), 1, statuses(results))
        ids = [r.header("x-request-id") for r in results]
        records = self.usage_for(ids)
        spent = sum(u["prompt_tokens"] + u["completion_tokens"] for u in records
                    if u["status"] == 200)
        self.assertEqual(spent, 20 * len(ok))
        # The guarantee: within the limit plus what one request used beyond
        # its claim (the last one admitted, whose claim was capped at what
        # was left; at most all of its 20 tokens). Before claims: 400.
        self.assertLessEqual(spent, 100 + 20, statuses(results))
        self.assertEqual(len(records), 20)  # refusals are recorded too
        return ok

    def test_token_limit_on_one_instance(self):
        key = self.key("slow", token_limit=100, token_window="day")
        ok = self.check_token_burst(key, self.serves(1, shared=False))
        self.assertLessEqual(len(ok), 5)

    def test_token_limit_across_two_instances(self):
        key = self.key("slow", token_limit=100, token_window="day")
        ok = self.check_token_burst(key, self.serves(2))
        self.assertLessEqual(len(ok), 5)

    def test_budget_across_two_instances(self):
        key = self.key("priced", budget=0.02, budget_window="month")
        serves = self.serves(2)
        results = burst([s.port for s in serves], 10,
                        chat_body("priced", "price me", max_tokens=500), key)
        ok = [r for r in results if r.status == 200]
        for r in results:
            if r.status != 200:
                self.assertRefused(r, "budget_exceeded")
        self.assertGreaterEqual(len(ok), 1)
        self.assertEqual(ok[0].header("x-ratelimit-limit-budget"), "0.02")
        self.assertIsNotNone(ok[0].header("x-ratelimit-remaining-budget"))
        records = self.usage_for([r.header("x-request-id") for r in results])
        cost = sum(u["cost"] for u in records if u["status"] == 200)
        self.assertAlmostEqual(cost, 0.00402 * len(ok), places=9)
        # Within the budget plus one request's use beyond its capped claim.
        self.assertLessEqual(cost, 0.02 + 0.00402 + 1e-9, statuses(results))
        self.assertLessEqual(len(ok), 5, statuses(results))
        # Spent (the settlements went out with the replies): refused, saying why.
        r = request(serves[0].port, "POST", "/v1/chat/completions",
                    chat_body("priced", "more", max_tokens=500), key=key)
        self.assertRefused(r, "budget_exceeded")
        self.assertIn("budget of $0.02 per month", r.json()["error"]["message"])
        self.assertEqual(r.header("x-ratelimit-remaining-budget"), "0")

    def test_remaining_tokens_count_claims_in_flight(self):
        key = self.key("fast", token_limit=1000, token_window="hour")
        serve, = self.serves(1, shared=False)
        r = request(serve.port, "POST", "/v1/chat/completions",
                    chat_body("fast", "x", max_tokens=100), key=key)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.header("x-ratelimit-limit-tokens"), "1000")
        remaining = int(r.header("x-ratelimit-remaining-tokens"))
        # What the request claimed (its prompt estimate + its max_tokens) is
        # not available to others while it runs.
        self.assertLess(remaining, 1000 - 100)
        self.assertGreater(remaining, 1000 - 100 - 50)

    def test_default_completion_reserve(self):
        key = self.key("fast", token_limit=1000)
        serve, = self.serves(1, "--default-completion-reserve", "300", shared=False)
        r = request(serve.port, "POST", "/v1/chat/completions", chat_body("fast", "x"), key=key)
        self.assertEqual(r.status, 200, r.body)
        remaining = int(r.header("x-ratelimit-remaining-tokens"))
        self.assertLess(remaining, 1000 - 300)
        self.assertGreater(remaining, 1000 - 300 - 50)


class SharedRatesTest(LimitsCase):
    """Request rates across instances: one bucket or window, not one each."""

    def admitted(self, key, n, serves, model="fast"):
        t0 = time.monotonic()
        results = burst([s.port for s in serves], n, chat_body(model, "hi"), key)
        window = time.monotonic() - t0
        for r in results:
            if r.status != 200:
                self.assertRefused(r, "rate_limit_exceeded")
                self.assertGreaterEqual(int(r.header("retry-after")), 1)
        return sum(r.status == 200 for r in results), window, results

    def test_tps_across_two_instances(self):
        key = self.key("fast", tps=5)
        ok, window, results = self.admitted(key, 20, self.serves(2))
        # The burst of 5, plus what the bucket refilled while the requests ran.
        self.assertGreaterEqual(ok, 5, statuses(results))
        self.assertLessEqual(ok, 5 + 1 + int(5 * window), (statuses(results), window))

    def test_tps_without_redis_is_per_instance(self):
        # What --redis fixes: each instance has a bucket of its own.
        key = self.key("fast", tps=5)
        ok, window, results = self.admitted(key, 20, self.serves(2, shared=False))
        self.assertGreaterEqual(ok, 10, statuses(results))

    def test_rpm_across_two_instances(self):
        key = self.key("fast", rpm=10)
        ok, window, results = self.admitted(key, 30, self.serves(2))
        self.assertGreaterEqual(ok, 10, statuses(results))
        self.assertLessEqual(ok, 10 + 1 + int(window / 6), (statuses(results), window))

    def test_rph_and_rpd_across_two_instances(self):
        for flag in ("rph", "rpd"):
            key = self.key("fast", **{flag: 3})
            serves = self.serves(2)
            ok, _, results = self.admitted(key, 8, serves)
            self.assertEqual(ok, 3, (flag, statuses(results)))
            refused = next(r for r in results if r.status != 200)
            per = "hour" if flag == "rph" else "day"
            self.assertIn(f"3 requests per {per}", refused.json()["error"]["message"])
            for s in serves:
                s.stop()

    def test_max_parallel_streams_across_two_instances(self):
        key = self.key("stream", max_parallel=2)
        serves = self.serves(2)
        body = chat_body("stream", "stream please", stream=True)
        results = burst([s.port for s in serves], 10, body, key)
        ok = [r for r in results if r.status == 200]
        self.assertEqual(len(ok), 2, statuses(results))
        for r in results:
            if r.status != 200:
                self.assertRefused(r, "concurrency_exceeded")
        # The streams have ended (burst read them whole): slots are free again.
        r = request(serves[1].port, "POST", "/v1/chat/completions", body, key=key)
        self.assertEqual(r.status, 200, r.body)


class RedisFaultsTest(LimitsCase):
    """Redis goes away, comes back; an instance dies holding claims."""

    def load(self, serves, key, stop, out):
        i = 0
        while not stop.is_set():
            r = request(serves[i % len(serves)].port, "POST", "/v1/chat/completions",
                        chat_body("fast", "load"), key=key, timeout=5)
            out.append(r)
            i += 1

    def test_fail_open_keeps_answering_then_shares_again(self):
        key = self.key("fast", rpm=100000)
        serves = self.serves(2)
        for s in serves:
            wait_until(lambda: metric(s, "llm_proxy_limits_shared") == 1, 5,
                       message="shared limits")
        stop, results = threading.Event(), []
        loader = threading.Thread(target=self.load, args=(serves, key, stop, results))
        loader.start()
        try:
            wait_until(lambda: len(results) >= 20, 10, message="load before the outage")
            self.redis.kill()
            wait_until(lambda: all(metric(s, "llm_proxy_limits_shared") == 0 for s in serves),
                       10, message="both instances to notice Redis is gone")
            before = len(results)
            wait_until(lambda: len(results) >= before + 20, 10, message="answers during the outage")
            ready = serves[0].get("/health/ready").json()
            self.assertEqual(ready["status"], "degraded", ready)
            self.assertEqual(ready["limits"], "local", ready)
            self.redis.restart()
            wait_until(lambda: all(metric(s, "llm_proxy_limits_shared") == 1 for s in serves),
                       10, message="both instances back on shared limits")
            self.assertEqual(serves[0].get("/health/ready").json()["limits"], "shared")
        finally:
            stop.set()
            loader.join(10)
        self.assertTrue(all(r.status == 200 for r in results), statuses(results)[-5:])
        self.usage_for([r.header("x-request-id") for r in results])  # none lost
        for s in serves:
            log = s.stderr()
            self.assertEqual(log.count("shared limits: Redis unavailable"), 1, log)
            self.assertIn("limits are shared again", log)

    def test_fail_closed_refuses_limited_requests_with_503(self):
        limited = self.key("fast", rpm=1000)
        unlimited = self.key("fast")
        serve, = self.serves(1, "--redis-fail", "closed", "--redis-timeout", "0.2")
        self.assertEqual(request(serve.port, "POST", "/v1/chat/completions",
                                 chat_body("fast"), key=limited).status, 200)
        self.redis.kill()
        try:
            t0 = time.monotonic()
            r = request(serve.port, "POST", "/v1/chat/completions", chat_body("fast"),
                        key=limited, timeout=5)
            self.assertRefused(r, "limits_unavailable", 503)
            self.assertLess(time.monotonic() - t0, 2.0)  # no hanging on a dead Redis
            # A key without limits needs no check.
            r = request(serve.port, "POST", "/v1/chat/completions", chat_body("fast"),
                        key=unlimited)
            self.assertEqual(r.status, 200, r.body)
        finally:
            self.redis.restart()
        r = wait_until(lambda: (lambda x: x if x.status == 200 else None)(
            request(serve.port, "POST", "/v1/chat/completions", chat_body("fast"), key=limited)),
            10, interval=0.2, message="limited requests admitted once Redis is back")
        self.assertEqual(r.status, 200)

    def test_windows_survive_restarts_and_a_redis_that_lost_its_data(self):
        key = self.key("fast", token_limit=25, token_window="day")
        first, = self.serves(1)
        for _ in range(2):  # 20 tokens each: the second still finds 5 unclaimed
            r = request(first.port, "POST", "/v1/chat/completions", chat_body("fast"), key=key)
            self.assertEqual(r.status, 200, r.body)
        self.assertRefused(request(first.port, "POST", "/v1/chat/completions", chat_body("fast"),
                                   key=key), "tokens_exceeded")
        first.stop()
        self.redis.client_command("FLUSHALL")  # a Redis restarted without persistence
        again, = self.serves(1)
        # Rebuilt from the usage records and brought into Redis at startup.
        self.assertRefused(request(again.port, "POST", "/v1/chat/completions", chat_body("fast"),
                                   key=key), "tokens_exceeded")

    def test_claims_of_a_killed_instance_expire(self):
        key = self.key("stream", max_parallel=1)
        a, b = self.serves(2, "--redis-lease", "1")
        body = chat_body("stream", "long", stream=True)
        self.fake.on("stream-1", fo.sse_reply(pieces=("x",) * 100, interval=0.2))
        self.addCleanup(self.fake.on, "stream-1",
                        fo.sse_reply(pieces=("a", "b", "c", "d"), interval=0.4))
        held = SSEStream(a.port, "/v1/chat/completions", body, key=key)
        self.assertEqual(held.status, 200)
        self.assertRefused(request(b.port, "POST", "/v1/chat/completions", body, key=key),
                           "concurrency_exceeded")
        a.kill()  # dies holding the slot: nobody settles it
        t0 = time.monotonic()
        self.fake.on("stream-1", fo.sse_reply(pieces=("a",), interval=0))
        r = wait_until(lambda: (lambda x: x if x.status == 200 else None)(
            request(b.port, "POST", "/v1/chat/completions", body, key=key)),
            10, interval=0.2, message="the dead instance's claim to expire")
        self.assertEqual(r.status, 200)
        self.assertLess(time.monotonic() - t0, 5)
        held.abort()


class PlansTest(LimitsCase):
    """Plans: assignments take the plan's limits, their own override them, and
    a plan update reaches a running serve."""

    def test_plan_limits_overrides_and_live_update(self):
        self.ws.cli("plan", "add", "--name", "tier", "--rph", "2", "--max-parallel", "8")
        on_plan = self.key("fast", plan="tier")
        own = self.key("fast", plan="tier", rph=3)
        serve, = self.serves(1, shared=False)

        def chat(key):
            return request(serve.port, "POST", "/v1/chat/completions", chat_body("fast"), key=key)

        for key, allowed in ((on_plan, 2), (own, 3)):
            for _ in range(allowed):
                self.assertEqual(chat(key).status, 200)
            r = chat(key)
            self.assertRefused(r, "rate_limit_exceeded")
            self.assertIn(f"{allowed} requests per hour", r.json()["error"]["message"])
        self.ws.cli("plan", "update", "tier", "--rph", "4")
        t0 = time.monotonic()
        wait_until(lambda: chat(on_plan).status == 200, 5, interval=0.05,
                   message="the plan's new limit in the running serve")
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(chat(on_plan).status, 200)  # 4 in this hour now
        self.assertRefused(chat(on_plan), "rate_limit_exceeded")
        self.assertRefused(chat(own), "rate_limit_exceeded")  # its own 3 still apply

    def test_reserve_tokens_per_assignment(self):
        key = self.key("fast", token_limit=1000, reserve_tokens=200)
        serve, = self.serves(1, shared=False)
        r = request(serve.port, "POST", "/v1/chat/completions", chat_body("fast", "x"), key=key)
        self.assertEqual(r.status, 200, r.body)
        remaining = int(r.header("x-ratelimit-remaining-tokens"))
        self.assertLess(remaining, 1000 - 200)
        self.assertGreater(remaining, 1000 - 200 - 50)

    def test_key_budget_spans_the_keys_models(self):
        # One key on two priced models ($0.00402 a request), a cap of $0.01 for both.
        type(self).names += 1
        key, _ = self.ws.vkey(f"team{self.names}", model_id=["priced", "priced2"],
                              key_budget=0.01, key_budget_window="month")
        serve, = self.serves(1, shared=False)
        for model in ("priced", "priced2", "priced"):  # the third gets the $0.00196 left
            r = request(serve.port, "POST", "/v1/chat/completions",
                        chat_body(model, "x", max_tokens=500), key=key)
            self.assertEqual(r.status, 200, (model, r.body))
        r = request(serve.port, "POST", "/v1/chat/completions",
                    chat_body("priced2", "x", max_tokens=500), key=key)
        self.assertRefused(r, "budget_exceeded")
        self.assertIn("across its models", r.json()["error"]["message"])


if __name__ == "__main__":
    unittest.main()
