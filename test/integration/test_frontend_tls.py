"""Client certificates on HTTPS listeners: the Gateway's spec.tls.frontend
(GEP-91). Replays upstream's GatewayFrontendClientCertificateValidation and
...InsecureFallback (a default for every HTTPS listener, a perPort entry
overriding it on its port), then what they leave out: the listener status
for unusable CA references (never served without the check), the listener's
ssl stats, the CA names a client is offered, and that a TLS session made on a
listener without the check is never resumed past it (TLS 1.2 and 1.3).

Clients are Python's ssl module with certificates generated here; backends
are echo servers that name themselves."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import unittest

import harness as h
import tls_helpers as t

NS = "gateway-conformance-infra"
OTHER_NS = "other"


class FrontendTlsTest(h.PorticoCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.echo = {}
        for n in ("infra-backend-v1", "infra-backend-v2"):
            cls.echo[n] = h.EchoServer(n, NS).start()
            cls.addClassCleanup(cls.echo[n].stop)
        certs = h.CertFactory(cls.tmp / "certs")
        cls.root = certs.ca("server-ca")
        server = certs.leaf("server", cls.root, dns=["example.org", "second-example.org", "same.example",
                                                     "open.example", "checked.example"])
        ca_default = certs.ca("client-ca-default")
        ca_port = certs.ca("client-ca-per-port")
        ca_stranger = certs.ca("client-ca-stranger")
        cls.client_default = certs.leaf("client-default", ca_default, cn="default", client=True)
        cls.client_port = certs.leaf("client-per-port", ca_port, cn="per-port", client=True)
        cls.client_stranger = certs.leaf("client-stranger", ca_stranger, cn="x", client=True)
        cls.port = {n: h.free_port() for n in ("default", "per-port", "insecure",
                                               "insecure-per-port", "shared", "bad", "mixed",
                                               "same-name")}

        def https(name, port, hostname=None):
            ln = h.listener(port, name=name, protocol="HTTPS", hostname=hostname,
                            from_namespaces="Same")
            ln["tls"] = {"mode": "Terminate", "certificateRefs": [{"kind": "Secret",
                                                                   "name": "server"}]}
            return ln

        def gw(name, listeners, frontend=None):
            g = h.gateway(name, listeners, namespace=NS)
            if frontend is not None:
                g["spec"]["tls"] = {"frontend": frontend}
            return g

        def validation(*names, mode=None, kind="ConfigMap", namespace=None):
            refs = []
            for n in names:
                r = {"group": "", "kind": kind, "name": n}
                if namespace:
                    r["namespace"] = namespace
                refs.append(r)
            v = {"caCertificateRefs": refs}
            if mode:
                v["mode"] = mode
            return {"validation": v}

        def route(name, gw_name, backend, hostnames=None, section=None):
            return h.http_route(name, [h.rule([h.backend_ref(backend, 8080)])], parent=gw_name,
                                hostnames=hostnames, namespace=NS, section_name=section)

        docs = [h.gateway_class(), {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": NS}},
                t.tls_secret("server", server, namespace=NS),
                t.ca_config_map("ca-default", ca_default.cert.read_text(), namespace=NS),
                t.ca_config_map("ca-per-port", ca_port.cert.read_text(), namespace=NS),
                t.ca_config_map("ca-elsewhere", ca_default.cert.read_text(),
                                namespace=OTHER_NS)]
        for n, e in cls.echo.items():
            docs += h.backend(n, e.port, svc_port=8080, namespace=NS)
        p = cls.port
        # Upstream's two Gateways: a default and a perPort override.
        for name, mode in (("client-validation-default", None),
                           ("client-validation-insecure-fallback", "AllowInsecureFallback")):
            first, second = ("default", "per-port") if mode is None else (
                "insecure", "insecure-per-port")
            docs.append(gw(name, [https("https", p[first]),
                                  https("https-with-hostname", p[second], "second-example.org")],
                           {"default": validation("ca-default", mode=mode),
                            "perPort": [{"port": p[second],
                                         "tls": validation("ca-per-port", mode=mode)}]}))
            docs += [route(f"{name}-route", name, "infra-backend-v1", ["example.org"]),
                     route(f"{name}-no-hostname", name, "infra-backend-v2",
                           section="https-with-hostname")]
        # Two Gateways on one port: one without the check, one with it.
        docs.append(gw("open", [https("https", p["shared"], "open.example")]))
        docs.append(gw("checked", [https("https", p["shared"], "checked.example")],
                       {"default": validation("ca-default")}))
        docs += [route("open", "open", "infra-backend-v1", ["open.example"]),
                 route("checked", "checked", "infra-backend-v2", ["checked.example"])]
        # Two Gateways, one port and one hostname (one listener on the wire),
        # only one with the check: the older (here: by name) keeps it.
        docs.append(gw("alpha-open", [https("https", p["same-name"], "same.example")]))
        docs.append(gw("beta-checked", [https("https", p["same-name"], "same.example")],
                       {"default": validation("ca-default")}))
        docs += [route("alpha", "alpha-open", "infra-backend-v1", ["same.example"]),
                 route("beta", "beta-checked", "infra-backend-v2", ["same.example"])]
        # No usable CA: a missing ConfigMap, another namespace's without a
        # ReferenceGrant. Then a wrong kind next to a usable one.
        docs.append(gw("bad-refs", [https("https", p["bad"])], {"default": validation(
            "missing")}))
        docs.append(gw("not-granted", [https("https", h.free_port())],
                       {"default": validation("ca-elsewhere", namespace=OTHER_NS)}))
        mixed = validation("ca-default")
        mixed["validation"]["caCertificateRefs"].insert(0, {"group": "", "kind": "Service",
                                                            "name": "x"})
        docs.append(gw("mixed-refs", [https("https", p["mixed"])], {"default": mixed}))
        docs += [route("mixed", "mixed-refs", "infra-backend-v1")]
        cls.p = cls.make_portico()
        cls.p.write("frontend.yaml", docs)
        cls.p.start(wait_ports=[p[k] for k in p if k != "bad"])
        cls.status = t.status_items(cls.p)

    # --- helpers ----------------------------------------------------------------------

    def context(self, client: h.Cert | None, max_version=None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.root.cert))
        if client is not None:
            ctx.load_cert_chain(str(client.cert), str(client.key))
        if max_version is not None:
            ctx.maximum_version = max_version
        return ctx

    def get(self, port: int, host: str, client: h.Cert | None = None,
            ctx: ssl.SSLContext | None = None, session=None):
        """(status, backend, TLS session, whether it was resumed), or raises."""
        ctx = ctx or self.context(client)
        sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                               server_hostname=host, session=session)
        try:
            c = http.client.HTTPConnection(host, port, timeout=10)
            c.sock = sock
            c.request("GET", "/", headers={"Host": host})
            r = c.getresponse()
            body = r.read()
            backend = json.loads(body).get("backend") if r.status == 200 else None
            return r.status, backend, sock.session, sock.session_reused
        finally:
            sock.close()

    def assertServed(self, port, host, client, backend, what):
        try:
            status, got, _, _ = self.get(port, host, client)
        except (ssl.SSLError, OSError) as e:
            self.fail(f"{what}: {e!r}")
        self.assertEqual((status, got), (200, backend), what)

    def assertRefused(self, port, host, client, what):
        with self.assertRaises((ssl.SSLError, OSError, http.client.HTTPException), msg=what):
            self.get(port, host, client)

    def listener_conds(self, gw: str) -> dict:
        return t.listener_conditions(self.status, gw, NS, "https")

    # --- upstream GatewayFrontendClientCertificateValidation ----------------------------

    def test_default_and_per_port_validation(self):
        p = self.port
        for name in ("client-validation-default-route", "client-validation-default-no-hostname"):
            obj = t.find_object(self.status, "HTTPRoute", name, NS)
            conds = {c["type"]: c for c in obj["status"]["parents"][0]["conditions"]}
            self.assertEqual(t.cond(conds, "Accepted"), ("True", "Accepted"), name)
            self.assertEqual(t.cond(conds, "ResolvedRefs"), ("True", "ResolvedRefs"), name)
        self.assertServed(p["default"], "example.org", self.client_default, "infra-backend-v1",
                          "default CA's client on the default listener")
        self.assertRefused(p["per-port"], "second-example.org", self.client_default,
                           "default CA's client on the perPort listener")
        self.assertServed(p["per-port"], "second-example.org", self.client_port,
                          "infra-backend-v2", "perPort CA's client on the perPort listener")
        self.assertRefused(p["default"], "example.org", self.client_port,
                           "perPort CA's client on the default listener")
        self.assertRefused(p["default"], "example.org", None, "no client certificate")
        self.assertRefused(p["default"], "example.org", self.client_stranger,
                           "a certificate from a CA nobody trusts")
        conds = t.gateway_conditions(self.status, "client-validation-default", NS)
        self.assertNotIn("InsecureFrontendValidationMode", conds)
        classes = [o for o in self.status if o.get("kind") == "GatewayClass"]
        features = [f["name"] for f in classes[0]["status"]["supportedFeatures"]]
        self.assertIn("GatewayFrontendClientCertificateValidation", features)

    def test_listener_ssl_stats(self):
        suffix = f"_{self.port['default']}.ssl.handshake"
        prefix = next(k for k in self.p.stats() if k.startswith("listener.") and
                      k.endswith(suffix))[:-len("handshake")]
        before = {k: self.p.stat(prefix + k) for k in
                  ("fail_verify_no_cert", "fail_verify_error", "handshake")}
        self.assertRefused(self.port["default"], "example.org", None, "no certificate")
        self.assertRefused(self.port["default"], "example.org", self.client_stranger, "stranger")
        self.assertServed(self.port["default"], "example.org", self.client_default,
                          "infra-backend-v1", "trusted")
        for k in before:
            self.assertEventually(lambda k=k: self.p.stat(prefix + k) == before[k] + 1, 5,
                                  f"{prefix}{k} went up by one")

    def test_client_is_told_which_cas_are_trusted(self):
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.port['per-port']}",
                            "-servername", "second-example.org", "-tls1_2"],
                           input="", capture_output=True, text=True, timeout=20)
        out = r.stdout + r.stderr
        self.assertIn("Acceptable client certificate CA names", out, out[-2000:])
        self.assertIn("CN = client-ca-per-port", out)
        self.assertNotIn("CN = client-ca-default", out)

    # --- upstream GatewayFrontendClientCertificateValidationInsecureFallback ------------

    def test_insecure_fallback(self):
        conds = t.gateway_conditions(self.status, "client-validation-insecure-fallback", NS)
        self.assertEqual(t.cond(conds, "InsecureFrontendValidationMode"),
                         ("True", "ConfigurationChanged"))
        for port, host, backend in ((self.port["insecure"], "example.org", "infra-backend-v1"),
                                    (self.port["insecure-per-port"], "second-example.org",
                                     "infra-backend-v2")):
            for client in (self.client_default, self.client_port, None, self.client_stranger):
                self.assertServed(port, host, client, backend,
                                  f"{host} with {client.name if client else 'no certificate'}")
        classes = [o for o in self.status if o.get("kind") == "GatewayClass"]
        features = [f["name"] for f in classes[0]["status"]["supportedFeatures"]]
        self.assertIn("GatewayFrontendClientCertificateValidationInsecureFallback", features)

    # --- sessions ---------------------------------------------------------------------

    def test_no_session_resumes_past_the_check(self):
        port = self.port["shared"]
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = self.context(None, max_version=version)
            status, backend, session, _ = self.get(port, "open.example", ctx=ctx)
            self.assertEqual((status, backend), (200, "infra-backend-v1"))
            # Resumption works on the listener that made the session...
            _, _, _, reused = self.get(port, "open.example", ctx=ctx, session=session)
            self.assertTrue(reused, f"{version}: the session resumes where it was made")
            # ...and never on the one that checks client certificates.
            with self.assertRaises((ssl.SSLError, OSError, http.client.HTTPException),
                                   msg=f"{version}: resumed past the client certificate check"):
                self.get(port, "checked.example", ctx=ctx, session=session)
        self.assertServed(port, "checked.example", self.client_default, "infra-backend-v2",
                          "a trusted client on the checking listener")

    def test_one_name_on_one_port_has_one_check(self):
        conds = self.listener_conds("beta-checked")
        self.assertEqual(t.cond(conds, "Conflicted"), ("True", "HostnameConflict"))
        self.assertEqual(t.cond(conds, "Accepted")[0], "False")
        self.assertIn("alpha-open", conds["Conflicted"]["message"])
        self.assertEqual(t.cond(self.listener_conds("alpha-open"), "Accepted"),
                         ("True", "Accepted"))
        # No client certificate: the open Gateway's route, never the checked one's.
        for _ in range(4):
            self.assertServed(self.port["same-name"], "same.example", None, "infra-backend-v1",
                              "the older Gateway's listener")

    def test_sessions_resume_on_any_worker_and_after_a_reload(self):
        # Every listener context shares one set of ticket keys: a client's
        # next connection resumes whichever worker takes it, and after a
        # reload rebuilt the contexts.
        port = self.port["shared"]
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = self.context(None, max_version=version)
            _, _, session, _ = self.get(port, "open.example", ctx=ctx)
            reused = [self.get(port, "open.example", ctx=ctx, session=session)[3]
                      for _ in range(8)]
            self.assertEqual(reused, [True] * 8, f"{version}: resumed on every connection")
            t.write_and_wait(self.p, f"reload-{version.name}.yaml",
                             [t.ca_config_map(f"unused-{version.name.lower()}", "x",
                                              namespace=NS)])
            _, _, _, again = self.get(port, "open.example", ctx=ctx, session=session)
            self.assertTrue(again, f"{version}: resumed after a reload")

    # --- unusable references ----------------------------------------------------------

    def test_unusable_ca_references(self):
        conds = self.listener_conds("bad-refs")
        self.assertEqual(t.cond(conds, "Accepted"), ("False", "NoValidCACertificate"))
        self.assertEqual(t.cond(conds, "ResolvedRefs"), ("False", "InvalidCACertificateRef"))
        self.assertEqual(t.cond(conds, "Programmed")[0], "False")
        self.assertIn("ConfigMap gateway-conformance-infra/missing not found",
                      conds["ResolvedRefs"]["message"])
        with self.assertRaises(OSError, msg="a listener without a usable CA is not served"):
            socket.create_connection(("127.0.0.1", self.port["bad"]), timeout=2).close()
        conds = self.listener_conds("not-granted")
        self.assertEqual(t.cond(conds, "Accepted"), ("False", "NoValidCACertificate"))
        self.assertEqual(t.cond(conds, "ResolvedRefs"), ("False", "RefNotPermitted"))
        # A wrong kind next to a usable ConfigMap: said, and the usable CA is used.
        conds = self.listener_conds("mixed-refs")
        self.assertEqual(t.cond(conds, "Accepted"), ("True", "Accepted"))
        self.assertEqual(t.cond(conds, "ResolvedRefs"), ("False", "InvalidCACertificateKind"))
        self.assertServed(self.port["mixed"], "example.org", self.client_default,
                          "infra-backend-v1", "the usable CA of mixed references")
        self.assertRefused(self.port["mixed"], "example.org", None, "still checked")


if __name__ == "__main__":
    unittest.main()
