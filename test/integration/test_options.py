"""`run` options and listener lifecycle: the JSON access log, an ExternalName
Service resolved by DNS, and a removed listener draining (its in-flight
request completes, new connections are refused) while the other listener
keeps serving."""

import json
import threading
import unittest

from harness import (PorticoCase, backend, backend_ref, free_port, gateway, gateway_class,
                     http_route, listener, port_refuses, request, rule, service, slow_handler)


class OptionsTest(PorticoCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ng = cls.start_nginx("svc-o")
        cls.seen = threading.Event()
        cls.slow = cls.start_py(slow_handler(1.5, b"slow body\n", cls.seen))
        cls.port_a = free_port()
        cls.port_b = free_port()
        cls.p = cls.make_portico(extra_args=["--access-log", "json"])
        cls.p.write("base.yaml", cls.docs(with_b=True))
        cls.p.start(wait_ports=[cls.port_a, cls.port_b])

    @classmethod
    def docs(cls, with_b):
        listeners = [listener(cls.port_a, name="a")]
        if with_b:
            listeners.append(listener(cls.port_b, name="b"))
        docs = [gateway_class(), gateway("gw", listeners)]
        docs += backend("svc-o", cls.ng.port) + backend("svc-slow", cls.slow.port)
        # An ExternalName Service: resolved by DNS on the main thread; the
        # Service port is the port connected to.
        ext = service("svc-ext", port=cls.ng.port)
        ext["spec"]["type"] = "ExternalName"
        ext["spec"]["externalName"] = "localhost"
        docs.append(ext)
        docs += [http_route("o", [rule([backend_ref("svc-o", 80)])], hostnames=["o.example.com"]),
                 http_route("slow", [rule([backend_ref("svc-slow", 80)])],
                            hostnames=["slow.example.com"]),
                 http_route("ext", [rule([backend_ref("svc-ext", cls.ng.port)])],
                            hostnames=["ext.example.com"])]
        return docs

    def test_json_access_log(self):
        r = request(self.port_a, "/json-log-probe?x=1", host="o.example.com",
                    headers={"User-Agent": 'quote"agent'})
        self.assertEqual(r.status, 200)

        def line():
            for ln in self.p.stdout().splitlines():
                if "json-log-probe" in ln:
                    return ln
            return None

        self.assertEventually(lambda: line() is not None, 5, "no access log line")
        entry = json.loads(line())  # one JSON object per line, escaping intact
        self.assertEqual(entry["method"], "GET")
        self.assertEqual(entry["path"], "/json-log-probe?x=1")
        self.assertEqual(entry["response_code"], 200)
        self.assertEqual(entry["user_agent"], 'quote"agent')
        self.assertEqual(entry["authority"], "o.example.com")
        self.assertEqual(entry["upstream_cluster"], "kube_default_svc-o_80")
        self.assertRegex(entry["x-request-id"], r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-")
        self.assertIn(":", entry["upstream_host"])

    def test_external_name_service_is_resolved_and_served(self):
        r = request(self.port_a, "/ext", host="ext.example.com")
        self.assertEqual(r.status, 200, r.body[:200])
        self.assertEqual(r.headers.get("x-backend"), "svc-o")  # the nginx behind "localhost"
        dump = self.p.admin("/config_dump")[1]
        self.assertIn('"dns_name": "localhost"', dump)

    def test_removed_listener_drains(self):
        result = {}

        def slow():
            try:
                r = request(self.port_b, "/", host="slow.example.com", timeout=10)
                result["status"], result["body"] = r.status, r.body
            except Exception as e:  # noqa: BLE001
                result["error"] = repr(e)

        t = threading.Thread(target=slow)
        t.start()
        self.assertTrue(self.seen.wait(5), "slow request never reached the backend")
        self.p.write("base.yaml", self.docs(with_b=False))  # listener b goes away
        self.assertEventually(lambda: port_refuses(self.port_b), 5,
                              "removed listener still accepting")
        t.join(10)
        self.assertEqual(result.get("error"), None)
        self.assertEqual(result.get("status"), 200)
        self.assertEqual(result.get("body"), b"slow body\n")
        self.assertEqual(request(self.port_a, "/", host="o.example.com").status, 200)
        self.p.write("base.yaml", self.docs(with_b=True))  # and back
        self.assertEventually(
            lambda: not port_refuses(self.port_b) and
            request(self.port_b, "/", host="o.example.com").status == 200, 5,
            "re-added listener not serving")


if __name__ == "__main__":
    unittest.main()
