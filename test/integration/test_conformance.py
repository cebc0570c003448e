"""The Gateway API conformance tests (kubernetes-sigs/gateway-api,
conformance/tests/httproute-*.go) replayed against the real binary: the same
manifests adapted to standalone files, the same requests and expectations.

Each upstream test gets its own Gateway on its own port, so their catch-all
routes don't meet (the suite applies one test's manifests at a time). Listener
ports are picked at run time, so where upstream listens on 80 or 8080 the
expected Location carries the real port; the scheme/port defaulting rules are
the ones the upstream test checks. The backends are small Python echo servers
in the spirit of the suite's echo-basic: they answer with JSON naming the
backend and what it received, and set the response headers listed in
X-Echo-Set-Header."""

import collections
import hashlib
import http.client
import os
import re
import socket
import ssl
import time
import unittest
import urllib.parse
import uuid

import harness as h
import tls_helpers as t

NS = "gateway-conformance-infra"
WEB_NS = "gateway-conformance-web-backend"
BACKENDS = ("infra-backend-v1", "infra-backend-v2", "infra-backend-v3")

# The HTTPRouteRequestHeaderModifier / HTTPRouteResponseHeaderModifier cases
# (upstream uses one table for both): (path, headers sent - by the client or
# by the backend -, headers expected on the other side, headers absent).
HEADER_MODIFIER_CASES = [
    ("/set", {"Some-Other-Header": "val"},
     {"some-other-header": "val", "x-header-set": "set-overwrites-values"}, []),
    ("/set", {"Some-Other-Header": "val", "X-Header-Set": "some-other-value"},
     {"some-other-header": "val", "x-header-set": "set-overwrites-values"}, []),
    ("/add", {"Some-Other-Header": "val"},
     {"some-other-header": "val", "x-header-add": "add-appends-values"}, []),
    ("/add", {"Some-Other-Header": "val", "X-Header-Add": "some-other-value"},
     {"some-other-header": "val", "x-header-add": "some-other-value,add-appends-values"},
     []),
    ("/remove", {"X-Header-Remove": "val"}, {}, ["x-header-remove"]),
    ("/multiple", {"X-Header-Set-2": "set-val-2", "X-Header-Add-2": "add-val-2",
                   "X-Header-Remove-2": "remove-val-2", "Another-Header": "another-header-val"},
     {"x-header-set-1": "header-set-1", "x-header-set-2": "header-set-2",
      "x-header-add-1": "header-add-1", "x-header-add-2": "add-val-2,header-add-2",
      "x-header-add-3": "header-add-3", "another-header": "another-header-val"},
     ["x-header-remove-1", "x-header-remove-2"]),
    ("/case-insensitivity", {"x-header-set": "original-val-set",
                             "x-header-add": "original-val-add",
                             "x-header-remove": "original-val-remove",
                             "Another-Header": "another-header-val"},
     {"x-header-set": "header-set", "x-header-add": "original-val-add,header-add",
      "another-header": "another-header-val"}, ["x-header-remove"]),
]


def ref(name: str, port: int = 8080, **kw) -> dict:
    return h.backend_ref(name, port, **kw)


def route(name: str, gw: str, rules: list[dict], hostnames: list[str] | None = None,
          namespace: str = NS, **kw) -> dict:
    return h.http_route(name, rules, parent=gw, hostnames=hostnames, namespace=namespace,
                        parent_namespace=NS, **kw)


def redirect(**kw) -> dict:
    return {"type": "RequestRedirect", "requestRedirect": kw}


def rewrite(**kw) -> dict:
    return {"type": "URLRewrite", "urlRewrite": kw}


def prefix(value: str) -> dict:
    return {"type": "ReplacePrefixMatch", "replacePrefixMatch": value}


def full(value: str) -> dict:
    return {"type": "ReplaceFullPath", "replaceFullPath": value}


def header_mod(kind: str, set_=None, add=None, remove=None) -> dict:
    m: dict = {}
    if set_:
        m["set"] = [{"name": k, "value": v} for k, v in set_.items()]
    if add:
        m["add"] = [{"name": k, "value": v} for k, v in add.items()]
    if remove:
        m["remove"] = list(remove)
    key = kind[0].lower() + kind[1:]
    return {"type": kind, key: m}


class ConformanceTest(h.PorticoCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.echo = {}
        for n in BACKENDS:
            e = h.EchoServer(n, NS).start()
            cls.addClassCleanup(e.stop)
            cls.echo[n] = e
        certs = h.CertFactory(cls.tmp / "certs")
        cls.root = certs.ca("root-ca")
        leaf = certs.leaf("example-org", cls.root, dns=["example.org", "*.example.org"])
        cls.ports: dict[str, int] = {}
        docs = [h.gateway_class(), {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": WEB_NS}}]
        for n, e in cls.echo.items():
            docs += h.backend(n, e.port, svc_port=8080, namespace=NS)
        docs += h.backend("web-backend", cls.echo["infra-backend-v1"].port, svc_port=8080,
                          namespace=WEB_NS)
        docs.append(t.tls_secret("tls-validity-checks-certificate", leaf, namespace=NS))

        def gw(name, protocol="HTTP", from_ns="Same", **kw):
            port = h.free_port()
            cls.ports[name] = port
            ln = h.listener(port, name="http" if protocol == "HTTP" else "https",
                            protocol=protocol, from_namespaces=from_ns, **kw)
            if protocol == "HTTPS":
                ln["tls"] = {"mode": "Terminate", "certificateRefs": [
                    {"kind": "Secret", "name": "tls-validity-checks-certificate"}]}
            docs.append(h.gateway(name, [ln], namespace=NS))
            return name

        cls.gw = gw
        for builder in [m for m in dir(cls) if m.startswith("manifests_")]:
            docs += getattr(cls, builder)()
        cls.p = cls.make_portico()
        cls.p.write("conformance.yaml", docs)
        cls.p.start(wait_ports=list(cls.ports.values()))
        cls.status = t.status_items(cls.p)

    # --- helpers ------------------------------------------------------------------

    def req(self, gw: str, path: str, host: str | None = None, method: str = "GET",
            headers: dict | None = None) -> h.Response:
        port = self.ports[gw]
        return h.request(port, path, host=host or f"127.0.0.1:{port}", method=method,
                         headers=headers)

    def tls_req(self, gw: str, path: str, host: str = "example.org") -> h.Response:
        ctx = ssl.create_default_context(cafile=str(self.root.cert))
        c = http.client.HTTPSConnection("127.0.0.1", self.ports[gw], timeout=10, context=ctx)
        # SNI and certificate check against the name asked for, not 127.0.0.1.
        c.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.ports[gw]), 10),
                                 server_hostname=host)
        try:
            return h.request(self.ports[gw], path, host=host, conn=c)
        finally:
            c.close()

    def backend(self, gw: str, path: str, expected: str, **kw) -> dict:
        r = self.req(gw, path, **kw)
        self.assertEqual(r.status, 200, f"{gw} {path} {kw}: {r.status} {r.text[:300]}")
        j = r.json()
        self.assertEqual(j["backend"], expected, f"{gw} {path} {kw}")
        return j

    def assertLocation(self, r: h.Response, status: int, location: str, what: str = ""):
        self.assertEqual((r.status, r.headers.get("location")), (status, location), what)

    def route_parents(self, name: str, namespace: str = NS) -> list[dict]:
        obj = t.find_object(self.status, "HTTPRoute", name, namespace)
        self.assertIsNotNone(obj, f"HTTPRoute {namespace}/{name} has no status")
        return obj.get("status", {}).get("parents", [])

    def route_cond(self, name: str, type_: str, namespace: str = NS) -> tuple:
        parents = self.route_parents(name, namespace)
        self.assertEqual(len(parents), 1, parents)
        return t.cond({c["type"]: c for c in parents[0]["conditions"]}, type_)

    def attached_routes(self, gw: str) -> list[int]:
        obj = t.find_object(self.status, "Gateway", gw, NS)
        return [ls.get("attachedRoutes") for ls in obj["status"]["listeners"]]

    # --- HTTPRouteRedirectPortAndScheme ----------------------------------------------

    @classmethod
    def manifests_redirect_port_and_scheme(cls):
        def rules(cases):
            out = []
            for path, scheme, port in cases:
                kw = {"hostname": "example.org"}
                if scheme:
                    kw["scheme"] = scheme
                if port:
                    kw["port"] = port
                out.append(h.rule([], [h.match(path)], filters=[redirect(**kw)]))
            return out
        return [
            route("http-route-for-listener-on-port-80", cls.gw("same-namespace"), rules([
                ("/scheme-nil-and-port-nil", None, None),
                ("/scheme-nil-and-port-80", None, 80),
                ("/scheme-nil-and-port-8080", None, 8080),
                ("/scheme-https-and-port-nil", "https", None),
                ("/scheme-https-and-port-443", "https", 443),
                ("/scheme-https-and-port-8443", "https", 8443)])),
            route("http-route-for-listener-on-port-8080",
                  cls.gw("same-namespace-with-http-listener-on-8080"), rules([
                      ("/scheme-nil-and-port-nil", None, None),
                      ("/scheme-nil-and-port-80", None, 80),
                      ("/scheme-https-and-port-nil", "https", None)])),
            route("http-route-for-listener-on-port-443",
                  cls.gw("same-namespace-with-https-listener", "HTTPS"), rules([
                      ("/scheme-nil-and-port-nil", None, None),
                      ("/scheme-nil-and-port-443", None, 443),
                      ("/scheme-nil-and-port-8443", None, 8443),
                      ("/scheme-http-and-port-nil", "http", None),
                      ("/scheme-http-and-port-80", "http", 80),
                      ("/scheme-http-and-port-8080", "http", 8080)])),
        ]

    def test_redirect_port_and_scheme(self):
        gw = "same-namespace"
        p = self.ports[gw]
        for path, loc in [
                # Scheme and port unset: the listener's port (80 upstream, dropped there).
                ("/scheme-nil-and-port-nil", f"http://example.org:{p}"),
                ("/scheme-nil-and-port-80", "http://example.org"),
                ("/scheme-nil-and-port-8080", "http://example.org:8080"),
                # A scheme without a port: that scheme's well-known port, left out.
                ("/scheme-https-and-port-nil", "https://example.org"),
                ("/scheme-https-and-port-443", "https://example.org"),
                ("/scheme-https-and-port-8443", "https://example.org:8443")]:
            self.assertLocation(self.req(gw, path), 302, loc + path, path)
        gw = "same-namespace-with-http-listener-on-8080"
        p = self.ports[gw]
        for path, loc in [
                ("/scheme-nil-and-port-nil", f"http://example.org:{p}"),
                ("/scheme-nil-and-port-80", "http://example.org"),
                ("/scheme-https-and-port-nil", "https://example.org")]:
            self.assertLocation(self.req(gw, path), 302, loc + path, path)
        gw = "same-namespace-with-https-listener"
        p = self.ports[gw]
        for path, loc in [
                ("/scheme-nil-and-port-nil", f"https://example.org:{p}"),
                ("/scheme-nil-and-port-443", "https://example.org"),
                ("/scheme-nil-and-port-8443", "https://example.org:8443"),
                ("/scheme-http-and-port-nil", "http://example.org"),
                ("/scheme-http-and-port-80", "http://example.org"),
                ("/scheme-http-and-port-8080", "http://example.org:8080")]:
            self.assertLocation(self.tls_req(gw, path), 302, loc + path, path)
        for r in ("http-route-for-listener-on-port-80", "http-route-for-listener-on-port-8080",
                  "http-route-for-listener-on-port-443"):
            self.assertEqual(self.route_cond(r, "Accepted"), ("True", "Accepted"))
            self.assertEqual(self.route_cond(r, "ResolvedRefs"), ("True", "ResolvedRefs"))

    # --- HTTPRouteRedirectHostAndStatus ---------------------------------------------------

    @classmethod
    def manifests_redirect_host_and_status(cls):
        return [route("redirect-host-and-status", cls.gw("gw-redirect-host-and-status"), [
            h.rule([ref("infra-backend-v1")], [h.match("/hostname-redirect")],
                   filters=[redirect(hostname="example.org")]),
            h.rule([], [h.match("/status-code-301")], filters=[redirect(statusCode=301)]),
            h.rule([ref("infra-backend-v1")], [h.match("/host-and-status")],
                   filters=[redirect(statusCode=301, hostname="example.org")]),
            # HTTPRouteRedirectScheme, HTTPRoute303/307/308RedirectScheme
            h.rule([], [h.match("/scheme")], filters=[redirect(scheme="https")]),
            h.rule([], [h.match("/scheme-and-host")],
                   filters=[redirect(scheme="https", hostname="example.org")]),
            h.rule([], [h.match("/scheme-and-status")],
                   filters=[redirect(scheme="https", statusCode=301)]),
            h.rule([], [h.match("/scheme-and-host-and-status")],
                   filters=[redirect(scheme="https", statusCode=302, hostname="example.org")]),
            h.rule([], [h.match("/scheme-and-see-other")],
                   filters=[redirect(scheme="https", statusCode=303)]),
            h.rule([], [h.match("/scheme-and-temporary")],
                   filters=[redirect(scheme="https", statusCode=307)]),
            h.rule([], [h.match("/scheme-and-permanent")],
                   filters=[redirect(scheme="https", statusCode=308)]),
        ])]

    def test_redirect_host_and_status(self):
        gw = "gw-redirect-host-and-status"
        p = self.ports[gw]
        self.assertLocation(self.req(gw, "/hostname-redirect"), 302,
                            f"http://example.org:{p}/hostname-redirect")
        self.assertLocation(self.req(gw, "/host-and-status"), 301,
                            f"http://example.org:{p}/host-and-status")
        # No hostname in the filter: the request's, without the port it came with.
        self.assertLocation(self.req(gw, "/status-code-301", host=f"foo.example:{p}"), 301,
                            f"http://foo.example:{p}/status-code-301")
        for path, status, host in [
                ("/scheme", 302, "foo.example"), ("/scheme-and-host", 302, "example.org"),
                ("/scheme-and-status", 301, "foo.example"),
                ("/scheme-and-host-and-status", 302, "example.org"),
                ("/scheme-and-see-other", 303, "foo.example"),
                ("/scheme-and-temporary", 307, "foo.example"),
                ("/scheme-and-permanent", 308, "foo.example")]:
            self.assertLocation(self.req(gw, path, host=f"foo.example:{p}"), status,
                                f"https://{host}{path}", path)

    # --- HTTPRouteRedirectPath ----------------------------------------------------------------

    @classmethod
    def manifests_redirect_path(cls):
        g = cls.gw("gw-redirect-path")
        docs = [route("redirect-path", g, [
            h.rule([], [h.match("/original-prefix")],
                   filters=[redirect(path=prefix("/replacement-prefix"))]),
            h.rule([], [h.match("/full")], filters=[redirect(path=full("/full-path-replacement"))]),
            h.rule([], [h.match("/path-and-host")],
                   filters=[redirect(hostname="example.org", path=prefix("/replacement-prefix"))]),
            h.rule([], [h.match("/path-and-status")],
                   filters=[redirect(path=prefix("/replacement-prefix"), statusCode=301)]),
            h.rule([], [h.match("/full-path-and-host")],
                   filters=[redirect(hostname="example.org", path=full("/replacement-full"))]),
            h.rule([], [h.match("/full-path-and-status")],
                   filters=[redirect(path=full("/replacement-full"), statusCode=301)]),
        ])]
        # The ReplacePrefixMatch table of HTTPPathModifier, one hostname per row.
        for i, (match, repl) in enumerate(cls.PREFIX_TABLE_RULES):
            docs.append(route(f"redirect-prefix-table-{i}", g, [
                h.rule([], [h.match(match)], filters=[redirect(path=prefix(repl))])],
                hostnames=[f"row{i}.redirect.example"]))
        return docs

    # (prefix match, replacePrefixMatch) and, per rule, (request path, expected path).
    PREFIX_TABLE_RULES = [("/foo", "/xyz"), ("/foo", "/xyz/"), ("/foo/", "/xyz"),
                          ("/foo/", "/xyz/"), ("/foo", ""), ("/foo", "/"), ("/", "/xyz")]
    PREFIX_TABLE = {
        0: [("/foo/bar", "/xyz/bar"), ("/foo", "/xyz"), ("/foo/", "/xyz/")],
        1: [("/foo/bar", "/xyz/bar")],
        2: [("/foo/bar", "/xyz/bar")],
        3: [("/foo/bar", "/xyz/bar")],
        4: [("/foo/bar", "/bar"), ("/foo/", "/"), ("/foo", "/")],
        5: [("/foo/", "/"), ("/foo", "/"), ("/foo/bar", "/bar")],
        6: [("/abc", "/xyz/abc"), ("/", "/xyz")],
    }

    def test_redirect_path(self):
        gw = "gw-redirect-path"
        p = self.ports[gw]
        host = f"127.0.0.1:{p}"
        for path, status, loc in [
                ("/original-prefix/lemon", 302, f"http://127.0.0.1:{p}/replacement-prefix/lemon"),
                ("/full/path/original", 302, f"http://127.0.0.1:{p}/full-path-replacement"),
                ("/path-and-host", 302, f"http://example.org:{p}/replacement-prefix"),
                ("/path-and-status", 301, f"http://127.0.0.1:{p}/replacement-prefix"),
                ("/full-path-and-host", 302, f"http://example.org:{p}/replacement-full"),
                ("/full-path-and-status", 301, f"http://127.0.0.1:{p}/replacement-full"),
                # Not the examples upstream tests, the same rules.
                ("/original-prefix", 302, f"http://127.0.0.1:{p}/replacement-prefix"),
                ("/original-prefix/", 302, f"http://127.0.0.1:{p}/replacement-prefix/"),
                ("/original-prefix/lemon?x=1", 302,
                 f"http://127.0.0.1:{p}/replacement-prefix/lemon?x=1")]:
            self.assertLocation(self.req(gw, path, host=host), status, loc, path)
        self.assertEqual(self.req(gw, "/original-prefixed").status, 404)
        for i, cases in self.PREFIX_TABLE.items():
            for path, want in cases:
                hn = f"row{i}.redirect.example"
                self.assertLocation(self.req(gw, path, host=hn), 302,
                                    f"http://{hn}:{p}{want}",
                                    f"{self.PREFIX_TABLE_RULES[i]} {path}")

    # --- HTTPRouteRewritePath -----------------------------------------------------------------

    @classmethod
    def manifests_rewrite_path(cls):
        g = cls.gw("gw-rewrite-path")
        mods = header_mod("RequestHeaderModifier", set_={"X-Header-Set": "set-overwrites-values"},
                          add={"X-Header-Add": "header-val-1", "X-Header-Add-Append": "header-val-2"},
                          remove=["X-Header-Remove"])
        v1 = [ref("infra-backend-v1")]
        docs = [route("rewrite-path", g, [
            h.rule(v1, [h.match("/prefix/one")], filters=[rewrite(path=prefix("/one"))]),
            h.rule(v1, [h.match("/strip-prefix")], filters=[rewrite(path=prefix("/"))]),
            h.rule(v1, [h.match("/full/one")], filters=[rewrite(path=full("/one"))]),
            h.rule(v1, [h.match("/full/rewrite-path-and-modify-headers")],
                   filters=[rewrite(path=full("/test")), mods]),
            h.rule(v1, [h.match("/prefix/rewrite-path-and-modify-headers")],
                   filters=[rewrite(path=prefix("/prefix")), mods]),
        ])]
        for i, (match, repl) in enumerate(cls.PREFIX_TABLE_RULES):
            docs.append(route(f"rewrite-prefix-table-{i}", g, [
                h.rule(v1, [h.match(match)], filters=[rewrite(path=prefix(repl))])],
                hostnames=[f"row{i}.rewrite.example"]))
        return docs

    def test_rewrite_path(self):
        gw = "gw-rewrite-path"
        for path, want in [("/prefix/one/two", "/one/two"), ("/strip-prefix/three", "/three"),
                           ("/strip-prefix", "/"), ("/full/one/two", "/one"),
                           # the query is kept
                           ("/prefix/one/two?a=b", "/one/two?a=b"),
                           ("/strip-prefix/?a=b", "/?a=b")]:
            self.assertEqual(self.backend(gw, path, "infra-backend-v1")["path"], want, path)
        sent = {"X-Header-Remove": "remove-val", "X-Header-Add-Append": "append-val-1",
                "X-Header-Set": "set-val"}
        for path, want in [("/full/rewrite-path-and-modify-headers/test", "/test"),
                           ("/prefix/rewrite-path-and-modify-headers/one", "/prefix/one")]:
            j = self.backend(gw, path, "infra-backend-v1", headers=sent)
            self.assertEqual(j["path"], want)
            hd = j["headers"]
            self.assertEqual(hd.get("x-header-add"), ["header-val-1"])
            self.assertEqual(hd.get("x-header-add-append"), ["append-val-1,header-val-2"])
            self.assertEqual(hd.get("x-header-set"), ["set-overwrites-values"])
            self.assertNotIn("x-header-remove", hd)
        for i, cases in self.PREFIX_TABLE.items():
            for path, want in cases:
                j = self.backend(gw, path, "infra-backend-v1", host=f"row{i}.rewrite.example")
                self.assertEqual(j["path"], want, f"{self.PREFIX_TABLE_RULES[i]} {path}")

    # --- HTTPRouteRewriteHost -----------------------------------------------------------------

    @classmethod
    def manifests_rewrite_host(cls):
        return [route("rewrite-host", cls.gw("gw-rewrite-host"), [
            h.rule([ref("infra-backend-v1")], [h.match("/one")],
                   filters=[rewrite(hostname="one.example.org")]),
            h.rule([ref("infra-backend-v2")], filters=[rewrite(hostname="example.org")]),
        ], hostnames=["rewrite.example"])]

    def test_rewrite_host(self):
        gw = "gw-rewrite-host"
        j = self.backend(gw, "/one", "infra-backend-v1", host="rewrite.example")
        self.assertEqual(j["host"], "one.example.org")
        j = self.backend(gw, "/", "infra-backend-v2", host="rewrite.example")
        self.assertEqual(j["host"], "example.org")

    # --- HTTPRouteRequestHeaderModifier -------------------------------------------------------

    @classmethod
    def manifests_request_header_modifier(cls):
        return [route("request-header-modifier", cls.gw("gw-request-header-modifier"),
                      cls.header_modifier_rules())]

    @staticmethod
    def header_modifier_rules(kind: str = "RequestHeaderModifier"):
        """Upstream's rules for HTTPRouteRequestHeaderModifier, and the same
        ones for HTTPRouteResponseHeaderModifier with kind changed."""
        v1 = [ref("infra-backend-v1")]
        m = lambda **kw: [header_mod(kind, **kw)]  # noqa: E731
        return [
            h.rule(v1, [h.match("/set")], filters=m(set_={"X-Header-Set": "set-overwrites-values"})),
            h.rule(v1, [h.match("/add")], filters=m(add={"X-Header-Add": "add-appends-values"})),
            h.rule(v1, [h.match("/remove")], filters=m(remove=["X-Header-Remove"])),
            h.rule(v1, [h.match("/multiple")], filters=m(
                set_={"X-Header-Set-1": "header-set-1", "X-Header-Set-2": "header-set-2"},
                add={"X-Header-Add-1": "header-add-1", "X-Header-Add-2": "header-add-2",
                     "X-Header-Add-3": "header-add-3"},
                remove=["X-Header-Remove-1", "X-Header-Remove-2"])),
            h.rule(v1, [h.match("/case-insensitivity")], filters=m(
                set_={"X-Header-Set": "header-set"}, add={"X-Header-Add": "header-add"},
                remove=["X-Header-Remove"])),
        ]

    def test_request_header_modifier(self, gw="gw-request-header-modifier"):
        for path, sent, want, absent in HEADER_MODIFIER_CASES:
            hd = self.backend(gw, path, "infra-backend-v1", headers=sent)["headers"]
            for k, v in want.items():
                self.assertEqual(hd.get(k), [v], f"{path} {sent}: {k} in {hd}")
            for k in absent:
                self.assertNotIn(k, hd, f"{path} {sent}")

    # --- HTTPRouteBackendRequestHeaderModifier ------------------------------------------------

    @classmethod
    def manifests_backend_request_header_modifier(cls):
        # The same filters as HTTPRouteRequestHeaderModifier, on the backendRef.
        rules = []
        for r in cls.header_modifier_rules():
            b = dict(r["backendRefs"][0], filters=r.pop("filters"))
            rules.append(dict(r, backendRefs=[b]))
        g = cls.gw("gw-backend-request-header-modifier")
        # Two backends, a modifier on one of them only.
        split = h.rule([
            dict(ref("infra-backend-v1"), filters=[
                header_mod("RequestHeaderModifier", set_={"X-Header-Set": "v1-only"}),
                header_mod("ResponseHeaderModifier", add={"X-Via-Backend": "v1"})]),
            ref("infra-backend-v2")])
        return [route("backend-request-header-modifier", g, rules),
                route("backend-filter-split", g, [split], hostnames=["split.example"])]

    def test_backend_request_header_modifier(self):
        self.assertEqual(self.route_cond("backend-request-header-modifier", "Accepted"),
                         ("True", "Accepted"))
        self.test_request_header_modifier("gw-backend-request-header-modifier")
        seen = set()
        for _ in range(40):
            r = self.req("gw-backend-request-header-modifier", "/", host="split.example")
            self.assertEqual(r.status, 200)
            j = r.json()
            seen.add(j["backend"])
            v1 = j["backend"] == "infra-backend-v1"
            self.assertEqual(j["headers"].get("x-header-set"), ["v1-only"] if v1 else None, j)
            self.assertEqual(r.headers.get("x-via-backend"), "v1" if v1 else None)
        self.assertEqual(seen, {"infra-backend-v1", "infra-backend-v2"})

    # --- HTTPRouteResponseHeaderModifier ------------------------------------------------------

    @classmethod
    def manifests_response_header_modifier(cls):
        return [route("response-header-modifier", cls.gw("gw-response-header-modifier"),
                      cls.header_modifier_rules("ResponseHeaderModifier"))]

    def test_response_header_modifier(self):
        gw = "gw-response-header-modifier"
        # (path, headers the backend answers with, expected response headers, absent)
        for path, backend_sets, want, absent in HEADER_MODIFIER_CASES:
            echo = ",".join(f"{k}:{v}" for k, v in backend_sets.items())
            r = self.req(gw, path, headers={"X-Echo-Set-Header": echo})
            self.assertEqual(r.status, 200)
            got = collections.defaultdict(list)
            for k, v in r.header_list:
                got[k.lower()].append(v)
            for k, v in want.items():
                self.assertEqual(",".join(got.get(k, [])), v, f"{path} {backend_sets}: {k}")
            for k in absent:
                self.assertNotIn(k, got, f"{path} {backend_sets}")

    # --- HTTPRouteCORS ---------------------------------------------------------------

    @classmethod
    def manifests_cors(cls):
        def cors(path, **kw):
            return h.rule([ref("infra-backend-v1")], [h.match(path)],
                          filters=[{"type": "CORS", "cors": kw}])
        g = cls.gw("gw-cors")
        wildcards = dict(allowOrigins=["https://*.foo.com"], allowMethods=["*"],
                         allowHeaders=["*"])
        return [
            route("cors-multiple-origins-methods-headers", g, [cors(
                "/cors-1", allowOrigins=["https://www.foo.com", "https://*.bar.com"],
                allowMethods=["GET", "OPTIONS"], allowHeaders=["x-header-1", "x-header-2"],
                exposeHeaders=["x-header-3", "x-header-4"], allowCredentials=True,
                maxAge=3600)]),
            route("cors-wildcard-methods", g, [cors(
                "/cors-2", allowOrigins=["https://www.foo.com"], allowMethods=["*"])]),
            route("cors-wildcard-origin", g, [cors(
                "/cors-wildcard-origin", allowOrigins=["*"], allowMethods=["*"])]),
            route("cors-wildcard-methods-headers", g, [
                cors("/cors-wildcard-methods-headers-unauth", **wildcards),
                cors("/cors-wildcard-methods-headers", allowCredentials=True, **wildcards)]),
        ]

    def test_cors(self):
        """Upstream HTTPRouteCORS's cases: (method, path, request headers, allowed
        statuses, expected headers (each one of several values; comma lists compared
        without whitespace), absent headers, whether the backend sees the request)."""
        gw = "gw-cors"
        for name in ("cors-multiple-origins-methods-headers", "cors-wildcard-methods",
                     "cors-wildcard-origin", "cors-wildcard-methods-headers"):
            self.assertEqual(self.route_cond(name, "Accepted"), ("True", "Accepted"), name)
            self.assertEqual(self.route_cond(name, "ResolvedRefs"), ("True", "ResolvedRefs"))
        pre = {"access-control-request-method": "GET",
               "access-control-request-headers": "x-header-1, x-header-2"}
        full_answer = {
            "access-control-allow-methods": ["GET, OPTIONS", "OPTIONS, GET"],
            "access-control-allow-headers": ["x-header-1, x-header-2", "x-header-2, x-header-1"],
            "access-control-expose-headers": ["x-header-3, x-header-4", "x-header-4, x-header-3"],
            "access-control-max-age": ["3600"], "access-control-allow-credentials": ["true"]}
        creds = "access-control-allow-credentials"
        other = "https://other.foo.com"
        asked = {"access-control-request-method": "PUT",
                 "access-control-request-headers": "x-header-1, x-header-2"}
        cases = [
            ("OPTIONS", "/cors-1", dict(pre, Origin="https://www.foo.com"), {200, 204},
             dict(full_answer, **{"access-control-allow-origin": ["https://www.foo.com"]}), [],
             False),
            ("OPTIONS", "/cors-1", dict(pre, Origin="https://www.bar.com"), {200},
             dict(full_answer, **{"access-control-allow-origin": ["https://www.bar.com"]}), [],
             False),
            ("OPTIONS", "/cors-1", dict(pre, Origin="https://xpto.www.bar.com"), {200},
             dict(full_answer, **{"access-control-allow-origin": ["https://xpto.www.bar.com"]}),
             [], False),
            ("OPTIONS", "/cors-1", {"Origin": "https://foobar.com",
                                    "access-control-request-method": "GET"}, {200, 204, 403},
             {}, ["access-control-allow-origin"], False),
            ("GET", "/cors-1", dict(pre, Origin="https://www.foo.com"), {200, 204},
             {"access-control-allow-origin": ["https://www.foo.com"]}, [], True),
            ("GET", "/cors-1", dict(pre, Origin="https://www.bar.com"), {200, 204},
             {"access-control-allow-origin": ["https://www.bar.com"]}, [], True),
            ("GET", "/cors-1", {"Origin": "https://foobar.com",
                                "access-control-request-method": "GET"}, {200},
             {}, ["access-control-allow-origin"], True),
            ("OPTIONS", "/cors-2", {"Origin": "https://www.foo.com",
                                    "access-control-request-method": "POST"}, {200, 204},
             {"access-control-allow-methods": ["POST", "*"],
              "access-control-allow-origin": ["https://www.foo.com"]}, [creds], False),
            ("OPTIONS", "/cors-wildcard-origin", {"Origin": "https://foobar.com",
                                                  "access-control-request-method": "PUT"},
             {200, 204}, {"access-control-allow-origin": ["https://foobar.com", "*"],
                          "access-control-allow-methods": ["PUT"]}, [creds], False),
            ("OPTIONS", "/cors-wildcard-origin", {"Origin": "https://foobar.com:12345",
                                                  "access-control-request-method": "PUT"},
             {200, 204}, {"access-control-allow-origin": ["https://foobar.com:12345", "*"],
                          "access-control-allow-methods": ["PUT"]}, [creds], False),
            ("PUT", "/cors-wildcard-origin", {"Origin": "https://foobar.com:12345"}, {200},
             {"access-control-allow-origin": ["https://foobar.com:12345", "*"]}, [], True),
            ("PUT", "/cors-wildcard-origin", {"Origin": "https://foobar.com"}, {200, 204},
             {"access-control-allow-origin": ["https://foobar.com", "*"]}, [creds], True),
            ("OPTIONS", "/cors-wildcard-methods-headers", dict(asked, Origin=other), {200},
             {"access-control-allow-origin": [other], "access-control-allow-methods": ["PUT"],
              "access-control-allow-headers": ["x-header-1, x-header-2",
                                               "x-header-2, x-header-1"],
              creds: ["true"]}, [], False),
            ("OPTIONS", "/cors-wildcard-methods-headers-unauth", dict(asked, Origin=other),
             {200}, {"access-control-allow-origin": [other, "*"],
                     "access-control-allow-methods": ["PUT", "*"],
                     "access-control-allow-headers": ["x-header-1, x-header-2",
                                                      "x-header-2, x-header-1", "*"]},
             [creds], False),
            ("GET", "/cors-wildcard-methods-headers",
             {"Origin": other, "Authorization": "Bearer test"}, {200},
             {"access-control-allow-origin": [other], creds: ["true"]}, [], True),
            ("GET", "/cors-wildcard-methods-headers-unauth",
             {"Origin": other, "Authorization": "Bearer test"}, {200},
             {"access-control-allow-origin": [other]}, [creds], True),
        ]
        squash = lambda v: "".join(v.split())  # noqa: E731
        for method, path, sent, statuses, want, absent, forwarded in cases:
            what = f"{method} {path} {sent}"
            r = self.req(gw, path, method=method, headers=sent)
            self.assertIn(r.status, statuses, f"{what}: {r.status} {r.text[:200]}")
            for k, values in want.items():
                self.assertIn(squash(r.headers.get(k, "<absent>")), [squash(v) for v in values],
                              f"{what}: {k}")
            for k in absent:
                self.assertNotIn(k, r.headers, what)
            # A preflight is answered by the gateway; anything else is proxied.
            self.assertEqual(r.body.startswith(b"{"), forwarded, f"{what}: {r.text[:200]}")
            if "access-control-allow-origin" in r.headers:
                self.assertIn("Origin", r.headers.get("vary", ""), what)
        # A request without Origin is not a CORS request: nothing added, but
        # the answer still varies by Origin for caches.
        r = self.req(gw, "/cors-1")
        self.assertEqual(r.status, 200)
        self.assertFalse([k for k in r.headers if k.startswith("access-control-")], r.headers)
        self.assertEqual(r.headers.get("vary"), "Origin")
        # A backend's own Vary fields stay; Origin comes as a field of its own.
        r = self.req(gw, "/cors-1", headers={"X-Echo-Set-Header": "Vary:Accept-Language"})
        self.assertEqual([v for k, v in r.header_list if k.lower() == "vary"],
                         ["Accept-Language", "Origin"])
        classes = [o for o in self.status if o.get("kind") == "GatewayClass"]
        self.assertIn("HTTPRouteCORS", [f["name"] for f in
                                        classes[0]["status"].get("supportedFeatures", [])])

    # --- HTTPRouteRetry, HTTPRouteRetryWithTimeouts, HTTPRouteRetryConnectionError -------

    @classmethod
    def manifests_retry(cls):
        def rule(path, timeout=None, backend_timeout=None, **retry):
            r = h.rule([ref("infra-backend-v3")], [h.match(path)], timeout=timeout,
                       backend_timeout=backend_timeout)
            r["retry"] = retry
            return r
        g = cls.gw("gw-retry")
        # Upstream's manifests are not at hand: the paths, codes and attempts
        # are the ones its tests name; the timeouts rule's request timeout is
        # ours (700ms: two 200ms tries and their backoffs, at most ~515ms, fit
        # with room for a loaded machine; a fourth try can't start before
        # 3 x 200ms + 175ms of backoff).
        return [
            route("retries", g, [
                rule("/retry/code-500-attempts-3", codes=[500], attempts=3),
                rule("/retry/code-all-attempts-2", codes=[500, 502, 503, 504], attempts=2),
                rule("/retry/backoff-300ms", codes=[503], attempts=1, backoff="300ms")]),
            route("retries-with-timeouts", g, [
                rule("/retry/backend-request-timeout-200ms", timeout="700ms",
                     backend_timeout="200ms", codes=[500], attempts=3),
                rule("/retry/request-timeout-200ms", timeout="200ms", codes=[500], attempts=3)]),
            route("retries-connection-error", g, [
                rule("/retry-on-connection-errors", attempts=2)]),
        ]

    def retry_req(self, path: str, method: str = "GET", body: bytes | None = None,
                  **sim) -> h.Response:
        query = urllib.parse.urlencode(dict(sim, uuid=uuid.uuid4().hex))
        return h.request(self.ports["gw-retry"], f"{path}?{query}", method=method, body=body)

    def test_retry(self):
        for name in ("retries", "retries-with-timeouts", "retries-connection-error"):
            self.assertEqual(self.route_cond(name, "Accepted"), ("True", "Accepted"), name)
        a3, a2 = "/retry/code-500-attempts-3", "/retry/code-all-attempts-2"
        cases = [(a3, "500", 2, 200), (a3, "500", 4, 500), (a3, "503", 2, 503),
                 (a2, "500", 1, 200), (a2, "500", 3, 500), (a2, "502", 1, 200),
                 (a2, "502", 3, 502), (a2, "503", 1, 200), (a2, "503", 3, 503),
                 (a2, "504", 1, 200), (a2, "504", 3, 504)]
        cl = h.cluster_name("infra-backend-v3", 8080, NS)
        before = {k: self.p.stat(f"cluster.{cl}.upstream_rq_{k}")
                  for k in ("retry", "retry_limit_exceeded", "retry_success")}
        for path, code, after, want in cases:
            r = self.retry_req(path, responseCode=code, succeedAfter=after)
            self.assertEqual(r.status, want, f"{path} {code} x{after}: {r.text[:200]}")
            if want == 200:
                self.assertEqual(r.json()["backend"], "infra-backend-v3")
        # Retries: 2+3+0+1+2+1+2+1+2+1+2; limits hit: 5 (503 is no retry code
        # of the first rule); successes after a retry: 5.
        self.assertEqual(self.p.stat(f"cluster.{cl}.upstream_rq_retry") - before["retry"], 17)
        self.assertEqual(self.p.stat(f"cluster.{cl}.upstream_rq_retry_limit_exceeded")
                         - before["retry_limit_exceeded"], 5)
        self.assertEqual(self.p.stat(f"cluster.{cl}.upstream_rq_retry_success")
                         - before["retry_success"], 5)
        self.assertEventually(lambda: re.search(r'"GET /retry/code-500-attempts-3\?responseCode=500'
                                                r'&succeedAfter=4[^"]*" 500 URX ', self.p.stdout()),
                              5, "access log flags the exhausted retry URX")
        # A body is kept for another try while it fits in 64 KiB; a bigger one
        # streams through once. The body that arrives is the client's.
        small = os.urandom(40 * 1024)
        r = self.retry_req(a3, method="POST", body=small, responseCode="500", succeedAfter=2)
        self.assertEqual(r.status, 200, "a small body goes again")
        self.assertEqual(r.json()["body_sha256"], hashlib.sha256(small).hexdigest())
        r = self.retry_req(a3, method="POST", body=os.urandom(100 * 1024), responseCode="500",
                           succeedAfter=1)
        self.assertEqual(r.status, 500, "a request with a big body is tried once")
        # The backoff is the least time between tries.
        start = time.monotonic()
        r = self.retry_req("/retry/backoff-300ms", responseCode="503", succeedAfter=1)
        self.assertEqual(r.status, 200)
        self.assertGreaterEqual(time.monotonic() - start, 0.3)

    def test_retry_with_timeouts(self):
        cl = h.cluster_name("infra-backend-v3", 8080, NS)
        per_try = self.p.stat(f"cluster.{cl}.upstream_rq_per_try_timeout")
        b, rq = "/retry/backend-request-timeout-200ms", "/retry/request-timeout-200ms"
        for path, after, delay, want in [(b, 2, "300ms", 200), (b, 3, "300ms", 504),
                                         (rq, 1, None, 200), (rq, 4, "100ms", 504)]:
            sim = {"responseCode": "500", "succeedAfter": after}
            if delay:
                sim["delayRetry"] = delay
            r = self.retry_req(path, **sim)
            self.assertEqual(r.status, want, f"{path} x{after}: {r.text[:200]}")
        self.assertGreaterEqual(self.p.stat(f"cluster.{cl}.upstream_rq_per_try_timeout") - per_try,
                                4, "each 300ms try of the first two requests hit the 200ms one")

    def test_retry_connection_error(self):
        path = "/retry-on-connection-errors"
        # Two attempts after the first try; a reset on a pooled connection may
        # also get Portico's own one re-send (a stale keep-alive connection).
        for resets, want in [(1, 200), (2, 200), (4, 503)]:
            r = self.retry_req(path, resetFirst=resets)
            self.assertEqual(r.status, want, f"{resets} resets: {r.text[:200]}")
        # Once sent, a request that is not idempotent never goes again.
        r = self.retry_req(path, method="POST", resetFirst=1)
        self.assertEqual(r.status, 503, "a reset POST is not sent again")
        classes = [o for o in self.status if o.get("kind") == "GatewayClass"]
        features = [f["name"] for f in classes[0]["status"]["supportedFeatures"]]
        for f in ("HTTPRouteRetry", "HTTPRouteRetryBackendTimeout",
                  "HTTPRouteRetryConnectionError"):
            self.assertIn(f, features)

    # --- HTTPRouteMatching, HTTPRouteExactPathMatching, HTTPRoutePathMatchOrder ------------------

    @classmethod
    def manifests_matching(cls):
        v = {i: [ref(f"infra-backend-v{i}")] for i in (1, 2, 3)}
        return [
            route("matching", cls.gw("gw-matching"), [
                h.rule(v[1], [h.match("/")]),
                h.rule(v[2], [h.match("/v2"), h.match(headers={"version": "two"})]),
            ]),
            route("exact-matching", cls.gw("gw-exact-path-matching"), [
                h.rule(v[1], [h.match("/one", "Exact")]),
                h.rule(v[2], [h.match("/two", "Exact")]),
            ]),
            route("path-matching-order", cls.gw("gw-path-match-order"), [
                h.rule(v[1], [h.match("/match", "Exact")]),
                h.rule(v[2], [h.match("/match/exact", "Exact")]),
                h.rule(v[3], [h.match("/match/exact/one", "Exact")]),
                h.rule(v[3], [h.match("/match/")]),
                h.rule(v[1], [h.match("/match/prefix/")]),
                h.rule(v[2], [h.match("/match/prefix/one")]),
            ]),
        ]

    def test_matching(self):
        gw = "gw-matching"
        for path, hd, want in [("/", None, 1), ("/example", None, 1), ("/", {"Version": "one"}, 1),
                               ("/v2", None, 2), ("/v2/example", None, 2),
                               ("/", {"Version": "two"}, 2), ("/v2example", None, 1),
                               ("/foo/v2/example", None, 1)]:
            self.backend(gw, path, f"infra-backend-v{want}", headers=hd)

    def test_exact_path_matching(self):
        gw = "gw-exact-path-matching"
        self.backend(gw, "/one", "infra-backend-v1")
        self.backend(gw, "/two", "infra-backend-v2")
        for path in ("/", "/one/example", "/two/", "/Two"):
            self.assertEqual(self.req(gw, path).status, 404, path)

    def test_path_match_order(self):
        gw = "gw-path-match-order"
        for path, want in [("/match/exact/one", 3), ("/match/exact", 2), ("/match", 1),
                           ("/match/prefix/one/any", 2), ("/match/prefix/any", 1),
                           ("/match/any", 3)]:
            self.backend(gw, path, f"infra-backend-v{want}")

    # --- HTTPRouteHeaderMatching, HTTPRouteQueryParamMatching, HTTPRouteMethodMatching ----------

    @classmethod
    def manifests_header_query_method(cls):
        v = {i: [ref(f"infra-backend-v{i}")] for i in (1, 2, 3)}
        docs = [route("header-matching", cls.gw("gw-header-matching"), [
            h.rule(v[1], [{"headers": [{"name": "version", "value": "one"}]}]),
            h.rule(v[2], [{"headers": [{"name": "version", "value": "two"}]}]),
            h.rule(v[1], [{"headers": [{"name": "version", "value": "two"},
                                       {"name": "color", "value": "orange"}]}]),
            h.rule(v[1], [{"headers": [{"name": "color", "value": "blue"}]},
                          {"headers": [{"name": "color", "value": "green"}]}]),
            h.rule(v[2], [{"headers": [{"name": "color", "value": "red"}]},
                          {"headers": [{"name": "color", "value": "yellow"}]}]),
        ])]
        qp = lambda **kv: [{"name": k, "value": v} for k, v in kv.items()]  # noqa: E731
        hv = lambda val: [{"name": "version", "value": val}]  # noqa: E731
        pp = lambda val: {"type": "PathPrefix", "value": val}  # noqa: E731
        docs.append(route("query-param-matching", cls.gw("gw-query-param-matching"), [
            h.rule(v[1], [{"queryParams": qp(animal="whale")}]),
            h.rule(v[2], [{"queryParams": qp(animal="dolphin")}]),
            h.rule(v[3], [{"queryParams": qp(animal="dolphin", color="blue")},
                          {"queryParams": qp(ANIMAL="Whale")}]),
            h.rule(v[1], [{"path": pp("/path1"), "queryParams": qp(animal="whale")}]),
            h.rule(v[2], [{"headers": hv("one"), "queryParams": qp(animal="whale")}]),
            h.rule(v[3], [{"path": pp("/path2"), "headers": hv("two"),
                           "queryParams": qp(animal="whale")}]),
            h.rule(v[1], [{"path": pp("/path3"), "queryParams": qp(animal="shark")},
                          {"path": pp("/path4"), "headers": hv("three"),
                           "queryParams": qp(animal="kraken")}]),
            h.rule(v[1], [{"path": pp("/path5")}]),
            h.rule(v[2], [{"queryParams": qp(animal="hydra")}]),
            h.rule(v[3], [{"headers": hv("four"), "queryParams": qp(animal="hydra")}]),
        ]))
        docs.append(route("method-matching", cls.gw("gw-method-matching"), [
            h.rule(v[1], [{"method": "POST"}]),
            h.rule(v[2], [{"method": "GET"}]),
            h.rule(v[1], [{"path": pp("/path1"), "method": "GET"}]),
            h.rule(v[2], [{"headers": hv("one"), "method": "PUT"}]),
            h.rule(v[3], [{"path": pp("/path2"), "headers": hv("two"), "method": "POST"}]),
            h.rule(v[1], [{"path": pp("/path3"), "method": "PATCH"},
                          {"path": pp("/path4"), "headers": hv("three"), "method": "DELETE"}]),
            h.rule(v[1], [{"path": pp("/path5")}]),
            h.rule(v[3], [{"method": "PATCH"}]),
            h.rule(v[2], [{"headers": hv("four"), "method": "PATCH"}]),
        ]))
        return docs

    def test_header_matching(self):
        gw = "gw-header-matching"
        for hd, want in [({"Version": "one"}, 1), ({"Version": "two"}, 2),
                         ({"Version": "two", "Color": "orange"}, 1),
                         ({"Version": "two", "Color": "blue"}, 2),
                         ({"Color": "blue"}, 1), ({"Color": "green"}, 1), ({"Color": "red"}, 2),
                         ({"Color": "yellow"}, 2),
                         ({"Color": "orange"}, 404), ({"Some-Other-Header": "one"}, 404),
                         ({"Color": "purple"}, 404)]:
            if want == 404:
                self.assertEqual(self.req(gw, "/", headers=hd).status, 404, hd)
            else:
                self.backend(gw, "/", f"infra-backend-v{want}", headers=hd)

    def test_query_param_matching(self):
        gw = "gw-query-param-matching"
        for path, hd, want in [
                ("/?animal=whale", None, 1), ("/?animal=dolphin", None, 2),
                ("/?animal=dolphin&color=blue", None, 3), ("/?ANIMAL=Whale", None, 3),
                ("/?animal=whale&otherparam=irrelevant", None, 1),
                ("/?animal=dolphin&color=yellow", None, 2),
                ("/?color=blue", None, 404), ("/?animal=dog", None, 404),
                ("/?animal=whaledolphin", None, 404), ("/", None, 404),
                ("/path1?animal=whale", None, 1), ("/?animal=whale", {"version": "one"}, 2),
                ("/path2?animal=whale", {"version": "two"}, 3),
                ("/path3?animal=shark", None, 1), ("/path4?animal=kraken", {"version": "three"}, 1),
                ("/?animal=shark", None, 404), ("/path4?animal=kraken", None, 404),
                ("/path5?animal=hydra", None, 1), ("/?animal=hydra", {"version": "four"}, 3)]:
            if want == 404:
                self.assertEqual(self.req(gw, path, headers=hd).status, 404, path)
            else:
                self.backend(gw, path, f"infra-backend-v{want}", headers=hd)

    def test_method_matching(self):
        gw = "gw-method-matching"
        for method, path, hd, want in [
                ("POST", "/", None, 1), ("GET", "/", None, 2), ("HEAD", "/", None, 404),
                ("GET", "/path1", None, 1), ("PUT", "/", {"version": "one"}, 2),
                ("POST", "/path2", {"version": "two"}, 3),
                ("PATCH", "/path3", None, 1), ("DELETE", "/path4", {"version": "three"}, 1),
                ("PUT", "/", None, 404), ("DELETE", "/path4", None, 404),
                ("PATCH", "/path5", None, 1), ("PATCH", "/", {"version": "four"}, 2)]:
            if want == 404:
                self.assertEqual(self.req(gw, path, method=method, headers=hd).status, 404,
                                 (method, path))
            else:
                self.backend(gw, path, f"infra-backend-v{want}", method=method, headers=hd)

    # --- HTTPRouteMatchingAcrossRoutes ----------------------------------------------------------

    @classmethod
    def manifests_matching_across_routes(cls):
        g = cls.gw("gw-matching-across-routes")
        return [
            route("matching-part1", g, [
                h.rule([ref("infra-backend-v1")], [h.match("/")]),
                h.rule([ref("infra-backend-v2")], [h.match("/v2")]),
            ], hostnames=["example.com", "example.net"]),
            route("matching-part2", g, [
                h.rule([ref("infra-backend-v2")], [h.match("/", headers={"version": "two"})]),
            ], hostnames=["example.com"]),
        ]

    def test_matching_across_routes(self):
        gw = "gw-matching-across-routes"
        for host, path, hd, want in [
                ("example.com", "/", None, 1), ("example.net", "/", None, 1),
                ("example.com", "/example", None, 1), ("example.net", "/example", None, 1),
                ("example.com", "/example", {"Version": "one"}, 1),
                ("example.com", "/v2", None, 2), ("example.net", "/v2", None, 2),
                ("example.com", "/v2/example", None, 2),
                ("example.com", "/", {"Version": "two"}, 2),
                ("example.net", "/", {"Version": "two"}, 1)]:
            self.backend(gw, path, f"infra-backend-v{want}", host=host, headers=hd)

    # --- HTTPRouteHostnameIntersection, HTTPRouteListenerHostnameMatching -----------------------

    @classmethod
    def manifests_hostname_intersection(cls):
        port = h.free_port()
        cls.ports["httproute-hostname-intersection"] = port
        lns = []
        for i, hn in enumerate(["very.specific.com", "*.wildcard.io", "*.anotherwildcard.io"]):
            lns.append(h.listener(port, name=f"listener-{i + 1}", hostname=hn,
                                  from_namespaces="Same"))
        g = "httproute-hostname-intersection"
        docs = [h.gateway(g, lns, namespace=NS)]
        docs += [
            route("specific-host-matches-listener-specific-host", g,
                  [h.rule([ref("infra-backend-v1")], [h.match("/s1")])],
                  hostnames=["non.matching.com", "*.nonmatchingwildcard.io", "very.specific.com"]),
            route("specific-host-matches-listener-wildcard-host", g,
                  [h.rule([ref("infra-backend-v2")], [h.match("/s2")])],
                  hostnames=["non.matching.com", "wildcard.io", "foo.wildcard.io",
                             "bar.wildcard.io", "foo.bar.wildcard.io"]),
            route("wildcard-host-matches-listener-specific-host", g,
                  [h.rule([ref("infra-backend-v3")], [h.match("/s3")])],
                  hostnames=["non.matching.com", "*.specific.com"]),
            route("wildcard-host-matches-listener-wildcard-host", g,
                  [h.rule([ref("infra-backend-v1")], [h.match("/s4")])],
                  hostnames=["*.anotherwildcard.io"]),
            route("no-intersecting-hosts", g,
                  [h.rule([ref("infra-backend-v2")], [h.match("/s5")])],
                  hostnames=["specific.but.wrong.com", "wildcard.io"]),
            route("httproute-hostname-intersection-all", cls.gw("httproute-hostname-intersection-all"),
                  [h.rule([ref("infra-backend-v2")])],
                  hostnames=["first.com", "*.first.com", "second.com", "*.second.com"]),
        ]
        # HTTPRouteListenerHostnameMatching
        port = h.free_port()
        cls.ports["httproute-listener-hostname-matching"] = port
        g = "httproute-listener-hostname-matching"
        docs.append(h.gateway(g, [
            h.listener(port, name="listener-1", hostname="bar.com", from_namespaces="Same"),
            h.listener(port, name="listener-2", hostname="foo.bar.com", from_namespaces="Same"),
            h.listener(port, name="listener-3", hostname="*.bar.com", from_namespaces="Same"),
            h.listener(port, name="listener-4", hostname="*.foo.com", from_namespaces="Same"),
        ], namespace=NS))
        docs += [
            route("backend-v1", g, [h.rule([ref("infra-backend-v1")])], section_name="listener-1"),
            route("backend-v2", g, [h.rule([ref("infra-backend-v2")])], section_name="listener-2"),
            h.http_route("backend-v3", [h.rule([ref("infra-backend-v3")])], namespace=NS,
                         parent=g, parent_namespace=NS, section_name="listener-3"),
        ]
        # backend-v3 also attaches to listener-4 (two parentRefs)
        docs[-1]["spec"]["parentRefs"].append({"name": g, "namespace": NS,
                                               "sectionName": "listener-4"})
        return docs

    def test_hostname_intersection(self):
        gw = "httproute-hostname-intersection"
        for host, path, want in [
                ("very.specific.com", "/s1", 1), ("very.specific.com:1234", "/s1", 1),
                ("non.matching.com", "/s1", 404), ("foo.nonmatchingwildcard.io", "/s1", 404),
                ("foo.wildcard.io", "/s1", 404), ("very.specific.com", "/non-matching-prefix", 404),
                ("foo.wildcard.io", "/s2", 2), ("bar.wildcard.io", "/s2", 2),
                ("foo.bar.wildcard.io", "/s2", 2), ("non.matching.com", "/s2", 404),
                ("wildcard.io", "/s2", 404), ("very.specific.com", "/s2", 404),
                ("foo.wildcard.io", "/non-matching-prefix", 404),
                ("very.specific.com", "/s3", 3), ("non.matching.com", "/s3", 404),
                ("foo.specific.com", "/s3", 404), ("foo.wildcard.io", "/s3", 404),
                ("foo.anotherwildcard.io", "/s4", 1), ("bar.anotherwildcard.io", "/s4", 1),
                ("foo.bar.anotherwildcard.io", "/s4", 1), ("anotherwildcard.io", "/s4", 404),
                ("foo.wildcard.io", "/s4", 404), ("very.specific.com", "/s4", 404),
                ("foo.anotherwildcard.io", "/non-matching-prefix", 404),
                ("specific.but.wrong.com", "/s5", 404), ("wildcard.io", "/s5", 404)]:
            if want == 404:
                self.assertEqual(self.req(gw, path, host=host).status, 404, (host, path))
            else:
                self.backend(gw, path, f"infra-backend-v{want}", host=host)
        self.assertEqual(self.route_cond("no-intersecting-hosts", "Accepted"),
                         ("False", "NoMatchingListenerHostname"))
        self.assertEqual(self.attached_routes(gw), [2, 1, 1])
        gw = "httproute-hostname-intersection-all"
        for host, want in [("first.com", 2), ("sub.first.com", 2), ("second.com", 2),
                           ("sub.second.com", 2), ("third.com", 404), ("sub.third.com", 404)]:
            if want == 404:
                self.assertEqual(self.req(gw, "/", host=host).status, 404, host)
            else:
                self.backend(gw, "/", f"infra-backend-v{want}", host=host)

    def test_listener_hostname_matching(self):
        gw = "httproute-listener-hostname-matching"
        for host, want in [("bar.com", 1), ("foo.bar.com", 2), ("baz.bar.com", 3),
                           ("boo.bar.com", 3), ("multiple.prefixes.bar.com", 3),
                           ("multiple.prefixes.foo.com", 3), ("foo.com", 404), ("no.matching.host", 404)]:
            if want == 404:
                self.assertEqual(self.req(gw, "/", host=host).status, 404, host)
            else:
                self.backend(gw, "/", f"infra-backend-v{want}", host=host)

    # --- HTTPRouteWeight ------------------------------------------------------------------------

    @classmethod
    def manifests_weight(cls):
        return [route("weighted-backends", cls.gw("gw-weight"), [h.rule([
            ref("infra-backend-v1", weight=70), ref("infra-backend-v2", weight=30),
            ref("infra-backend-v3", weight=0)])])]

    def test_weight(self):
        counts = collections.Counter()
        n = 500
        for _ in range(n):
            r = self.req("gw-weight", "/")
            self.assertEqual(r.status, 200)
            counts[r.json()["backend"]] += 1
        self.assertNotIn("infra-backend-v3", counts)
        self.assertAlmostEqual(counts["infra-backend-v1"] / n, 0.7, delta=0.07, msg=counts)

    # --- invalid routes: status and 500s --------------------------------------------------------

    @classmethod
    def manifests_invalid(cls):
        g = cls.gw("gw-invalid")
        docs = [
            # HTTPRouteInvalidNonExistentBackendRef
            route("invalid-nonexistent-backend-ref", g,
                  [h.rule([ref("nonexistent")], [h.match("/nonexistent")])]),
            # HTTPRouteInvalidBackendRefUnknownKind
            route("invalid-backend-ref-unknown-kind", g, [h.rule(
                [{"group": "unknownkind.example.com", "kind": "NonExistent",
                  "name": "infra-backend-v1", "port": 8080}], [h.match("/unknown-kind")])]),
            # HTTPRouteInvalidCrossNamespaceBackendRef
            route("invalid-cross-namespace-backend-ref", g, [h.rule(
                [ref("web-backend", namespace=WEB_NS)], [h.match("/cross-ns")])]),
            # HTTPRoutePartiallyInvalidViaInvalidReferenceGrant: a grant for another Service
            route("invalid-reference-grant", g, [
                h.rule([ref("infra-backend-v1")], [h.match("/")]),
                h.rule([ref("web-backend", namespace=WEB_NS)], [h.match("/v2")]),
            ], hostnames=["partially-invalid.example"]),
            {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
             "metadata": {"name": "reference-grant-wrong-svc", "namespace": WEB_NS},
             "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                                "namespace": NS}],
                      "to": [{"group": "", "kind": "Service", "name": "not-web-backend"}]}},
            # HTTPRouteInvalidCrossNamespaceParentRef: listener allows Same only
            route("invalid-cross-namespace-parent-ref", g,
                  [h.rule([ref("web-backend")], [h.match("/cross-parent")])], namespace=WEB_NS),
            # HTTPRouteInvalidParentRefNotMatchingSectionName / ListenerPort
            route("httproute-listener-not-matching-section-name", g,
                  [h.rule([ref("infra-backend-v1")])], section_name="wrong-name",
                  hostnames=["section.example"]),
        ]
        p = route("httproute-listener-not-matching-route-port", g,
                  [h.rule([ref("infra-backend-v1")])], hostnames=["port.example"])
        p["spec"]["parentRefs"][0]["port"] = 1
        docs.append(p)
        # HTTPRouteDisallowedKind: the listener takes only some other kind
        ln = h.listener(h.free_port(), name="tls", protocol="TLS", from_namespaces="Same")
        ln["tls"] = {"mode": "Passthrough"}
        ln["allowedRoutes"]["kinds"] = [{"kind": "TLSRoute"}]
        docs.append(h.gateway("tlsroutes-only", [ln], namespace=NS))
        docs.append(route("disallowed-kind", "tlsroutes-only", [h.rule([ref("infra-backend-v1")])]))
        return docs

    def test_invalid_routes(self):
        gw = "gw-invalid"
        for name, reason, path in [
                ("invalid-nonexistent-backend-ref", "BackendNotFound", "/nonexistent"),
                ("invalid-backend-ref-unknown-kind", "InvalidKind", "/unknown-kind"),
                ("invalid-cross-namespace-backend-ref", "RefNotPermitted", "/cross-ns")]:
            self.assertEqual(self.route_cond(name, "Accepted"), ("True", "Accepted"), name)
            self.assertEqual(self.route_cond(name, "ResolvedRefs"), ("False", reason), name)
            self.assertEqual(self.req(gw, path).status, 500, name)
        name = "invalid-reference-grant"
        self.assertEqual(self.route_cond(name, "Accepted"), ("True", "Accepted"))
        self.assertEqual(self.route_cond(name, "ResolvedRefs"), ("False", "RefNotPermitted"))
        self.backend(gw, "/", "infra-backend-v1", host="partially-invalid.example")
        self.assertEqual(self.req(gw, "/v2", host="partially-invalid.example").status, 500)
        self.assertEqual(self.route_cond("invalid-cross-namespace-parent-ref", "Accepted",
                                         namespace=WEB_NS), ("False", "NotAllowedByListeners"))
        self.assertEqual(self.req(gw, "/cross-parent").status, 404)
        for name, host in [("httproute-listener-not-matching-section-name", "section.example"),
                           ("httproute-listener-not-matching-route-port", "port.example")]:
            self.assertEqual(self.route_cond(name, "Accepted"), ("False", "NoMatchingParent"))
            self.assertEqual(self.req(gw, "/", host=host).status, 404, name)
        self.assertEqual(self.route_cond("disallowed-kind", "Accepted"),
                         ("False", "NotAllowedByListeners"))
        self.assertEqual(self.attached_routes("tlsroutes-only"), [0])


if __name__ == "__main__":
    unittest.main()
