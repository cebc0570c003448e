"""Live reload: edits to watched files apply without a restart and without a
failed request; malformed input is reported while the last good config
keeps serving."""

import http.client
import re
import threading
import time
import unittest

from harness import (PorticoCase, backend, backend_ref, free_port, gateway, gateway_class,
                     http_route, listener, match, request, rule, run_check)


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


class ReloadTest(PorticoCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.a = cls.start_nginx("svc-a")
        cls.b = cls.start_nginx("svc-b")
        cls.port = free_port()
        cls.p = cls.make_portico()
        cls.p.write("gateway.yaml", [gateway_class(), gateway("gw", [listener(cls.port)])])
        cls.p.write("backends.yaml", backend("svc-a", cls.a.port) + backend("svc-b", cls.b.port))
        cls.p.write("stable.yaml", http_route("stable", [rule([backend_ref("svc-a", 80)])],
                                              hostnames=["stable.example.com"]))
        cls.p.write("reload.yaml", cls.reload_route("svc-a"))
        cls.p.start(wait_ports=[cls.port])

    @staticmethod
    def reload_route(svc, host="reload.example.com", name="reload"):
        return http_route(name, [rule([backend_ref(svc, 80)])], hostnames=[host])

    def wait_backend(self, host, want, timeout=5.0):
        self.assertEventually(
            lambda: request(self.port, "/", host=host).json().get("backend") == want, timeout,
            f"{host} never served by {want}")

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


if __name__ == "__main__":
    unittest.main()
