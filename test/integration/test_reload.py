"""Live reload: edits to watched files apply without a restart and without a
failed request; malformed input is reported while the last good config
keeps serving."""

import http.client
import os
import re
import threading
import time
import unittest

from harness import (PorticoCase, backend, backend_ref, free_port, gateway, gateway_class,
                     http_route, listener, match, request, rule, run_check, to_yaml)


class ClientLoop:
    """Requests in a loop on one host until stopped; records every outcome.
    Alternates fresh and kept-alive client connections so both paths are
    exercised across the snapshot swap."""

    def __init__(self, port, host, path="/"):
        self.port, self.host, self.path = port, host, path
        self.results = []  # (monotonic time, status or exception text, backend or None)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        kept = None
        i = 0
        while not self._stop.is_set():
            i += 1
            use_kept = i % 2 == 0
            try:
                if use_kept and kept is None:
                    kept = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                r = request(self.port, self.path, host=self.host, timeout=5,
                            conn=kept if use_kept else None)
                be = r.json().get("backend") if r.status == 200 else None
                self.results.append((time.monotonic(), r.status, be))
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                self.results.append((time.monotonic(), repr(e), None))
                if kept is not None:
                    kept.close()
                    kept = None
        if kept is not None:
            kept.close()

    def start(self):
        self._t.start()
        return self

    def stop(self):
        self._stop.set()
        self._t.join(10)

    def failures(self):
        return [r for r in self.results if r[1] != 200]

    def seen(self, be):
        return any(r[2] == be for r in self.results)


class TwoBackendsCase(PorticoCase):
    """Services svc-a and svc-b on two nginx backends of the same names, and a
    Gateway on one port; a subclass adds routes and starts portico."""

    WORKERS = 2
    ENV: dict | None = None  # extra environment for portico

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.a = cls.start_nginx("svc-a")
        cls.b = cls.start_nginx("svc-b")
        cls.port = free_port()
        cls.p = cls.make_portico(workers=cls.WORKERS, env=cls.ENV)
        cls.p.write("gateway.yaml", [gateway_class(), gateway("gw", [listener(cls.port)])])
        cls.p.write("backends.yaml", backend("svc-a", cls.a.port) + backend("svc-b", cls.b.port))

    def wait_backend(self, host, want, timeout=5.0):
        self.assertEventually(
            lambda: request(self.port, "/", host=host).json().get("backend") == want, timeout,
            f"{host} never served by {want}")


class ReloadTest(TwoBackendsCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.p.write("stable.yaml", http_route("stable", [rule([backend_ref("svc-a", 80)])],
                                              hostnames=["stable.example.com"]))
        cls.p.write("reload.yaml", cls.reload_route("svc-a"))
        cls.p.start(wait_ports=[cls.port])

    @staticmethod
    def reload_route(svc, host="reload.example.com", name="reload"):
        return http_route(name, [rule([backend_ref(svc, 80)])], hostnames=[host])

    def test_edit_while_client_loops_no_failed_request(self):
        self.wait_backend("reload.example.com", "svc-a")
        loop = ClientLoop(self.port, "reload.example.com").start()
        try:
            time.sleep(0.7)
            t_edit = time.monotonic()
            self.p.write("reload.yaml", self.reload_route("svc-b"))
            deadline = time.monotonic() + 5
            while not loop.seen("svc-b") and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertTrue(loop.seen("svc-b"), "route change not observed within 5s")
            t_seen = next(t for t, _, be in loop.results if be == "svc-b")
            time.sleep(0.7)
            # And back again, so two swaps happen under load.
            self.p.write("reload.yaml", self.reload_route("svc-a"))
            deadline = time.monotonic() + 5
            while (not any(be == "svc-a" and t > t_seen + 0.7 for t, _, be in loop.results)
                   and time.monotonic() < deadline):
                time.sleep(0.02)
            time.sleep(0.5)
        finally:
            loop.stop()
        n = len(loop.results)
        self.assertGreater(n, 50, "client loop made too few requests to mean anything")
        self.assertEqual(loop.failures(), [], f"{len(loop.failures())} of {n} requests failed")
        self.assertLess(t_seen - t_edit, 2.0, "edit took more than 2s to serve")
        # Once the change is visible (plus slack for every worker to swap),
        # the old backend is not used any more.
        late_b = [r for r in loop.results if t_seen + 0.3 < r[0] < t_seen + 0.7]
        self.assertTrue(late_b and all(be == "svc-b" for _, _, be in late_b), late_b[:5])
        self.assertEqual(loop.results[-1][2], "svc-a", "second edit not applied")

    def test_route_added_and_removed(self):
        self.assertEqual(request(self.port, "/", host="added.example.com").status, 404)
        self.p.write("added.yaml", self.reload_route("svc-b", "added.example.com", "added"))
        self.wait_backend("added.example.com", "svc-b")
        self.p.remove("added.yaml")
        self.assertEventually(
            lambda: request(self.port, "/", host="added.example.com").status == 404, 5,
            "removed route still served")
        self.assertEqual(request(self.port, "/", host="stable.example.com").status, 200)

    def test_in_place_edit_is_picked_up(self):
        # Some editors and `echo >` truncate and rewrite in place.
        self.p.write("inplace.yaml", self.reload_route("svc-a", "inplace.example.com", "inplace"),
                     atomic=False)
        self.wait_backend("inplace.example.com", "svc-a")
        self.p.write("inplace.yaml", self.reload_route("svc-b", "inplace.example.com", "inplace"),
                     atomic=False)
        self.wait_backend("inplace.example.com", "svc-b")

    def test_hidden_files_ignored(self):
        self.p.write(".hidden.yaml", self.reload_route("svc-b", "hidden.example.com", "hidden"),
                     atomic=False)
        time.sleep(1.0)
        self.assertEqual(request(self.port, "/", host="hidden.example.com").status, 404)
        (self.p.config_dir / ".hidden.yaml").unlink()

    def test_malformed_file_added_while_serving(self):
        bad_doc = ("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
                   "metadata:\n  name: broken\nspec:\n  parentRefs:\n  - name: gw\n"
                   "  hostnames: [\"broken.example.com\"]\n  rules:\n  - backendRefs:\n"
                   "    - name: svc-b\n      port: eighty\n")
        good_doc = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fine\n"
                    "data:\n  k: v\n")
        loop = ClientLoop(self.port, "stable.example.com").start()
        try:
            time.sleep(0.3)
            self.p.write("bad.yaml", "---\n" + good_doc + "---\n" + bad_doc)
            self.p.write("syntax.yaml", "kind: HTTPRoute\nmetadata: {name: [unclosed\n")
            self.assertEventually(lambda: "bad.yaml" in self.p.logs(), 5,
                                  "malformed bad.yaml not reported in the log")
            self.assertEventually(lambda: "syntax.yaml" in self.p.logs(), 5,
                                  "malformed syntax.yaml not reported in the log")
            time.sleep(1.0)
        finally:
            loop.stop()
        self.assertTrue(self.p.alive(), "portico died on malformed input")
        self.assertGreater(len(loop.results), 20)
        self.assertEqual(loop.failures(), [], "old config must keep serving")
        self.assertTrue(all(be == "svc-a" for _, _, be in loop.results))
        self.assertEqual(request(self.port, "/", host="reload.example.com").status, 200)

        # `portico check` on the same directory: exit 1 with a located error.
        r = run_check(self.p.binary, self.p.config_dir)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-2000:])
        self.assertRegex(out, r"(?m)bad\.yaml: document 2: [^\s:]*port[^\s:]*: \S",
                         "expected `file: document N: field path: message`")
        self.assertRegex(out, r"(?m)syntax\.yaml: document 1: ")

        # Fixing the files recovers without a restart.
        self.p.write("bad.yaml", "---\n" + good_doc + "---\n" + bad_doc.replace("eighty", "80"))
        self.p.remove("syntax.yaml")
        self.wait_backend("broken.example.com", "svc-b")
        r = run_check(self.p.binary, self.p.config_dir)
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr)[-2000:])
        self.p.remove("bad.yaml")


def bulk_routes(n, extra=(), edit=0):
    """n HTTPRoutes, one hostname and one Service each, plus `extra` docs. A
    new `edit` changes every document (a label), so all of them decode again."""
    docs = []
    for i in range(n):
        r = http_route(f"bulk-{i:05d}", [rule([backend_ref(f"bulk-{i:05d}", 80)])],
                       hostnames=[f"b{i}.bulk.example.com"])
        r["metadata"]["labels"] = {"edit": str(edit)}
        docs.append(r)
    return to_yaml(docs + list(extra))


def bulk_services(n, target_port):
    """A Service and its EndpointSlice for every bulk route."""
    return to_yaml([d for i in range(n) for d in backend(f"bulk-{i:05d}", target_port)])


APPLIED_RE = re.compile(r"config version (\d+) applied: .* load (\d+) ms, translate (\d+) ms, "
                        r"publish (\d+) ms")


class LongReloadTest(TwoBackendsCase):
    """A config big enough that one reload takes a good fraction of a second
    (the scenario-6 shape, scaled down): the admin port must keep answering
    while it runs, and edits made meanwhile must not be lost."""

    # A real translate of a few thousand objects, stretched to a known length
    # by portico's test hook (PORTICO_TEST_RELOAD_DELAY_MS, on the control
    # thread after translate): how long translate itself takes depends on the
    # build type and the machine, and these tests must act while a reload runs.
    BULK = int(os.environ.get("PORTICO_IT_BULK", "2000"))
    DELAY_MS = 800
    ENV = {"PORTICO_TEST_RELOAD_DELAY_MS": str(DELAY_MS)}
    MIN_RELOAD_MS = 400  # below this the admin check would prove nothing
    ADMIN_DEADLINE = 0.2  # seconds an admin answer may take, reload or not
    WORKERS = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.p.write("bulk-services.yaml", bulk_services(cls.BULK, cls.a.port))
        cls.p.write("bulk-routes.yaml", bulk_routes(cls.BULK))
        cls.p.start(wait_ports=[cls.port], timeout=60)

    def applied(self):
        """[(version, load+translate+publish ms)] from the log, in order."""
        return [(int(m[1]), int(m[2]) + int(m[3]) + int(m[4]))
                for m in APPLIED_RE.finditer(self.p.stderr())]

    def wait_applied(self, version, timeout=30.0):
        """Polls the log for `config version <version> applied`; returns
        (time seen, reload ms)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for v, ms in self.applied():
                if v == version:
                    return time.monotonic(), ms
            time.sleep(0.01)
        self.fail(f"config version {version} not applied within {timeout}s\n"
                  f"{self.p.stderr()[-2000:]}")

    edits = 0

    def edit_bulk(self, host, svc, p=None):
        """Rewrites the big routes file, every route changed and one more
        added: a full decode and translate, as when a generator rewrites it."""
        LongReloadTest.edits += 1
        extra = http_route(host.split(".")[0], [rule([backend_ref(svc, 80)])], hostnames=[host])
        (p or self.p).write("bulk-routes.yaml", bulk_routes(self.BULK, [extra], self.edits))

    def test_admin_answers_during_long_reload(self):
        v0 = self.applied()[-1][0]
        polls = []  # (time answered, seconds taken, path, status or error)
        stop = threading.Event()

        # /ready: what a readiness probe asks, and cheap by itself (/stats and
        # /config_dump cost time of their own at this size).
        def poll():
            path = "/ready"
            while not stop.is_set():
                t = time.monotonic()
                try:
                    st, _ = self.p.admin(path, timeout=10)
                except Exception as e:  # noqa: BLE001 - every failure is recorded
                    st = repr(e)
                polls.append((time.monotonic(), time.monotonic() - t, path, st))
                time.sleep(0.01)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            time.sleep(0.2)
            self.edit_bulk("during.example.com", "svc-b")
            t_seen, reload_ms = self.wait_applied(v0 + 1)
            time.sleep(0.2)
        finally:
            stop.set()
            poller.join(15)
        self.assertGreaterEqual(
            reload_ms, self.MIN_RELOAD_MS,
            f"the reload took {reload_ms} ms: too quick to show anything (is the test delay hook "
            "PORTICO_TEST_RELOAD_DELAY_MS still honoured?)")
        bad = [p for p in polls if p[3] != 200]
        self.assertEqual(bad, [], "admin requests failed")
        slow = [(round(took, 3), path) for _, took, path, _ in polls if took > self.ADMIN_DEADLINE]
        self.assertEqual(slow, [], f"admin answers slower than {self.ADMIN_DEADLINE}s during a "
                         f"{reload_ms} ms reload")
        # Answered while the reload ran, not just before and after it.
        during = [p for p in polls if t_seen - reload_ms / 1000 < p[0] < t_seen - 0.05]
        self.assertGreaterEqual(len(during), 3, f"{len(polls)} polls, none during the reload")
        self.wait_backend("during.example.com", "svc-b", 30)

    def test_edits_during_reload_coalesce_into_one_more(self):
        v0 = self.applied()[-1][0]
        self.edit_bulk("first.example.com", "svc-a")
        # The reload starts after the 100 ms debounce; edit twice while it
        # runs, each edit past the debounce so each one asks for a reload.
        time.sleep(0.15)
        self.p.write("late.yaml", self.late_route("svc-a"))
        time.sleep(0.15)
        self.p.write("late.yaml", self.late_route("svc-b"))
        time.sleep(0.15)
        running = all(v <= v0 for v, _ in self.applied())
        self.assertTrue(running, "the first reload finished before the edits (is the test delay "
                        "hook PORTICO_TEST_RELOAD_DELAY_MS still honoured?)")
        self.wait_backend("first.example.com", "svc-a", 30)
        self.wait_backend("late.example.com", "svc-b", 30)  # the last edit is never lost
        time.sleep(0.5)
        versions = [v for v, _ in self.applied() if v > v0]
        self.assertEqual(versions, [v0 + 1, v0 + 2],
                         "expected the edited reload and exactly one coalesced reload after it")

    def test_sigterm_during_reload_exits_cleanly(self):
        # A portico of its own (this one ends), on the same big config.
        port = free_port()
        p = self.make_portico("term", workers=1, env=self.ENV)
        p.write("gateway.yaml", [gateway_class(), gateway("gw", [listener(port)])])
        for name in ("backends.yaml", "bulk-services.yaml", "bulk-routes.yaml"):
            p.write(name, (self.p.config_dir / name).read_text())
        p.start(wait_ports=[port], timeout=60)
        self.edit_bulk("term.example.com", "svc-a", p)
        time.sleep(0.3)  # past the debounce: the reload is running
        self.assertNotRegex(p.stderr(), r"config version 2 applied",
                            "the reload finished before SIGTERM (test delay hook not honoured?)")
        p.terminate()
        self.assertEqual(p.wait(timeout=10), 0, p.stderr()[-2000:])
        log = p.stderr()
        self.assertIn("portico stopped", log)
        # A reload still running when the drain began is not published.
        after = log[log.index("SIGTERM: draining"):]
        self.assertNotRegex(after, r"config version \d+ applied", log[-2000:])

    @staticmethod
    def late_route(svc):
        return http_route("late", [rule([backend_ref(svc, 80)])], hostnames=["late.example.com"])


if __name__ == "__main__":
    unittest.main()
