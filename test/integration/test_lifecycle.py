"""Process lifecycle and the CLI: SIGTERM drain, `portico version`,
`portico check` (on generated input and on the shipped examples)."""

import http.client
import json
import re
import subprocess
import threading
import time
import unittest
from pathlib import Path

from harness import (REPO_ROOT, Nginx, Portico, PorticoCase, PyBackend, backend, backend_ref, free_port, gateway,
                     gateway_class, http_route, listener, port_refuses, portico_binary, request,
                     rule, run_check, slow_handler, to_yaml)

SLOW_BODY = b"slow response done " * 1000


class DrainTest(PorticoCase):

    def setUp(self):
        # Per test: each one ends the process.
        self.seen = threading.Event()
        self.slow = PyBackend(slow_handler(2.0, SLOW_BODY, self.seen))
        self.addCleanup(self.slow.stop)
        self.slow.start()
        self.fast = Nginx(self.tmp, f"fast-{self._testMethodName}")
        self.addCleanup(self.fast.stop)
        self.fast.start()
        self.port = free_port()
        self.p = Portico(self.tmp / f"portico-{self._testMethodName}")
        self.addCleanup(self.p.stop, check=False)
        docs = [gateway_class(), gateway("gw", [listener(self.port)])]
        docs += backend("svc-slow", self.slow.port) + backend("svc-fast", self.fast.port)
        docs += [http_route("slow", [rule([backend_ref("svc-slow", 80)])],
                            hostnames=["slow.example.com"]),
                 http_route("fast", [rule([backend_ref("svc-fast", 80)])],
                            hostnames=["fast.example.com"])]
        self.p.write("drain.yaml", docs)
        self.p.start(wait_ports=[self.port])

    def test_sigterm_drains_in_flight_then_exits_0(self):
        # An idle kept-alive client connection must not hold the exit.
        idle = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        self.assertEqual(request(self.port, "/", host="fast.example.com", conn=idle).status, 200)

        result = {}

        def slow_request():
            try:
                r = request(self.port, "/slow", host="slow.example.com", timeout=15)
                result["status"], result["body"] = r.status, r.body
            except Exception as e:  # noqa: BLE001
                result["error"] = repr(e)

        t = threading.Thread(target=slow_request)
        t.start()
        self.assertTrue(self.seen.wait(5), "slow request never reached the backend")
        t_term = time.monotonic()
        self.p.terminate()

        # New connections are refused soon after SIGTERM.
        refused = False
        while time.monotonic() - t_term < 1.5:
            if port_refuses(self.port):
                refused = True
                break
            time.sleep(0.05)
        self.assertTrue(refused, "listener still accepting 1.5s after SIGTERM")
        if not self.p.alive():
            t.join(15)
            self.fail(f"exited (code {self.p.proc.returncode}) before the in-flight request "
                      f"finished; client saw {result}\n{self.p.stderr()[-1500:]}")

        t.join(15)
        self.assertEqual(result.get("error"), None)
        self.assertEqual(result.get("status"), 200)
        self.assertEqual(result.get("body"), SLOW_BODY, "in-flight response truncated")
        code = self.p.wait(timeout=10)
        idle.close()
        self.assertEqual(code, 0, self.p.stderr()[-2000:])
        self.assertLess(time.monotonic() - t_term, 10)

    def test_sigterm_idle_exits_promptly(self):
        t0 = time.monotonic()
        code = self.p.stop(check=False, timeout=10)
        self.assertEqual(code, 0, self.p.stderr()[-2000:])
        self.assertLess(time.monotonic() - t0, 5, "idle process took too long to exit")


class CliTest(PorticoCase):

    def test_version(self):
        r = subprocess.run([str(portico_binary()), "version"], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"\d+\.\d+\.\d+")

    def good_config(self, d: Path, missing_backend=False):
        d.mkdir(parents=True, exist_ok=True)
        docs = [gateway_class(), gateway("gw", [listener(free_port())])]
        docs += backend("svc-a", free_port())
        refs = [backend_ref("svc-a", 80)]
        if missing_backend:
            refs = [backend_ref("svc-missing", 80)]
        docs += [http_route("route", [rule(refs)], hostnames=["a.example.com"])]
        (d / "all.yaml").write_text(to_yaml(docs))
        return d

    @staticmethod
    def items_by_kind(lst):
        out = {}
        for it in lst["items"]:
            out.setdefault(it["kind"], []).append(it)
        return out

    @staticmethod
    def cond(obj_status, ctype):
        return next((c for c in obj_status.get("conditions", []) if c["type"] == ctype), None)

    def test_check_json_statuses(self):
        d = self.good_config(self.tmp / "good")
        r = run_check(portico_binary(), d, output="json")
        self.assertEqual(r.returncode, 0, r.stdout[-1000:] + r.stderr[-1000:])
        lst = json.loads(r.stdout)
        self.assertEqual(lst.get("kind"), "List")
        kinds = self.items_by_kind(lst)
        for k in ("GatewayClass", "Gateway", "HTTPRoute"):
            self.assertIn(k, kinds, f"check output lacks {k}")
        gw = kinds["Gateway"][0]
        self.assertEqual(gw["metadata"]["name"], "gw")
        for ct in ("Accepted", "Programmed"):
            c = self.cond(gw["status"], ct)
            self.assertIsNotNone(c, f"Gateway has no {ct} condition")
            self.assertEqual(c["status"], "True", c)
            self.assertEqual(c["observedGeneration"], 1)
        self.assertTrue(gw["status"].get("listeners"), "Gateway status lacks listeners")
        gc = kinds["GatewayClass"][0]
        self.assertEqual(self.cond(gc["status"], "Accepted")["status"], "True")
        route = kinds["HTTPRoute"][0]
        parents = route["status"]["parents"]
        self.assertEqual(len(parents), 1)
        self.assertEqual(parents[0]["controllerName"], "portico.dev/gateway-controller")
        self.assertEqual(parents[0]["parentRef"]["name"], "gw")
        self.assertEqual(self.cond(parents[0], "Accepted")["status"], "True")
        self.assertEqual(self.cond(parents[0], "ResolvedRefs")["status"], "True")

    def test_check_missing_backend_still_exit_0(self):
        d = self.good_config(self.tmp / "missing", missing_backend=True)
        r = run_check(portico_binary(), d, output="json")
        self.assertEqual(r.returncode, 0, r.stdout[-1000:] + r.stderr[-1000:])
        route = self.items_by_kind(json.loads(r.stdout))["HTTPRoute"][0]
        rr = self.cond(route["status"]["parents"][0], "ResolvedRefs")
        self.assertEqual((rr["status"], rr["reason"]), ("False", "BackendNotFound"))

    def test_check_yaml_default(self):
        d = self.good_config(self.tmp / "yaml")
        for args in ((), ("yaml",)):
            r = run_check(portico_binary(), d, output=args[0] if args else None)
            self.assertEqual(r.returncode, 0, r.stderr[-1000:])
            self.assertRegex(r.stdout, r"(?m)^kind: List\s*$")
            self.assertRegex(r.stdout, r"(?m)^\s*-?\s*kind: HTTPRoute\s*$")

    def test_check_malformed_exit_1_with_location(self):
        d = self.tmp / "malformed"
        d.mkdir()
        (d / "ok.yaml").write_text(to_yaml(gateway("gw", [listener(8080)])))
        (d / "bad.yaml").write_text(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: g2\n"
            "spec:\n  gatewayClassName: portico\n  listeners:\n  - name: http\n"
            "    port: not-a-port\n    protocol: HTTP\n")
        r = run_check(portico_binary(), d)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out[-2000:])
        self.assertRegex(out, r"(?m)bad\.yaml: document 1: [^\s:]*listeners[^\s:]*port: \S")

    def test_check_warns_about_a_near_miss_kind(self):
        # A BackendTLSPolicy Portico does not read (an older apiVersion, a kind
        # spelled in the wrong case) is ignored, which leaves its backend on
        # plaintext: say so where `check` users look, with what would be read.
        d = self.good_config(self.tmp / "near-miss")
        policy = ("apiVersion: {v}\nkind: {k}\nmetadata:\n  name: {n}\nspec:\n"
                  "  targetRefs:\n  - group: \"\"\n    kind: Service\n    name: svc-a\n"
                  "  validation:\n    hostname: a.example.com\n"
                  "    wellKnownCACertificates: System\n")
        (d / "old.yaml").write_text(policy.format(
            v="gateway.networking.k8s.io/v1alpha2", k="BackendTLSPolicy", n="old"))
        (d / "typo.yaml").write_text(policy.format(
            v="gateway.networking.k8s.io/v1alpha3", k="BackendTlsPolicy", n="typo"))
        (d / "other.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\n"
                                      "metadata:\n  name: nginx\n")
        r = run_check(portico_binary(), d)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertRegex(
            r.stderr, r"(?m)\[warning\] \S*old\.yaml: document 1: ignoring unsupported kind "
            r"BackendTLSPolicy \(gateway\.networking\.k8s\.io/v1alpha2\): Portico reads kind "
            r"BackendTLSPolicy with apiVersion gateway\.networking\.k8s\.io/v1alpha3, "
            r"gateway\.networking\.k8s\.io/v1$")
        self.assertRegex(r.stderr, r"(?m)\[warning\] \S*typo\.yaml: document 1: ignoring "
                         r"unsupported kind BackendTlsPolicy .*: Portico reads kind "
                         r"BackendTLSPolicy with")
        # Kinds that are not Portico's stay quiet (kgateway's nginx.yaml has some).
        self.assertNotIn("Deployment", r.stderr)
        self.assertIn("plaintext (no BackendTLSPolicy)", r.stderr)

    def test_check_examples(self):
        examples = sorted(p for p in (REPO_ROOT / "examples").glob("*")
                          if p.is_dir() and (any(p.glob("*.yaml")) or any(p.glob("*.json"))))
        self.assertTrue(examples, "no example manifests under examples/*/ to check")
        for ex in examples:
            with self.subTest(example=ex.name):
                r = run_check(portico_binary(), ex, output="json")
                self.assertEqual(r.returncode, 0, r.stdout[-1000:] + r.stderr[-1000:])
                lst = json.loads(r.stdout)
                self.assertEqual(lst.get("kind"), "List")
                self.assertTrue(lst.get("items"), f"{ex}: empty List")
                for it in lst["items"]:
                    if it.get("apiVersion", "").startswith("gateway.networking.k8s.io/"):
                        self.assertIn("status", it, f"{ex}: {it.get('kind')} without status")


if __name__ == "__main__":
    unittest.main()
