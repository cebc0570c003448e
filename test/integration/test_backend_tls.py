"""Backend TLS end to end (issue 3, "Done means"): the real portico against
real nginx TLS backends on 127.0.0.1, certificates generated at test time.

One portico and one set of nginx backends serve every case: each case has its
own Service (-> its own cluster kube_default_<svc>_<port>), BackendTLSPolicy
and HTTPRoute hostname, so the static cases load once; the live cases
(rotation, observedGeneration) edit only their own files and wait for the
reload through /config_dump's version.

The nginx backends echo $ssl_server_name, $ssl_protocol, $ssl_client_s_dn and
$ssl_client_verify as JSON, so the tests see what portico really sent.
"""

from __future__ import annotations

import calendar
import http.client
import json
import shutil
import subprocess
import time
import unittest
from pathlib import Path

import harness as h
import tls_helpers as t

EXAMPLES = h.REPO_ROOT / "examples" / "backend-tls"
GW_NS = "kgateway-system"
SPIFFE = "spiffe://portico.test/ns/default/sa/backend"
SPIFFE_OTHER = "spiffe://portico.test/ns/default/sa/other"
VERIFY_FAILED = ("upstream connect error or disconnect/reset before headers. reset reason: "
                 "connection failure, transport failure reason: TLS_error: "
                 "CERTIFICATE_VERIFY_FAILED: ")


def cluster(svc: str, port: int = 443) -> str:
    return h.cluster_name(svc, port)


class BackendTlsTest(h.PorticoCase):
    """Static and live backend TLS cases on one shared portico."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        f = h.CertFactory(cls.tmp / "certs")
        cls.root = f.ca("root-ca")
        cls.other_root = f.ca("other-ca")
        cls.main_leaf = f.leaf("main", cls.root, dns=["backend.example.com", "other.example.com",
                                                         "*.wild.example.com"],
                               uris=[SPIFFE])
        cls.seed_leaf = f.self_signed_example_com()
        cls.expired_leaf = f.expired(cls.root)
        cls.chain_leaf = f.chain(cls.root)
        cls.client_ca = f.ca("client-ca")
        cls.client_cert = f.client(cls.client_ca, cn="portico-client")
        cls.https_cert = f.leaf("gw-https", cls.root, dns=["secure.test"])

        cls.n_main = cls.start_nginx("main", tls=cls.main_leaf)
        cls.n_seed = cls.start_nginx("seed", tls=cls.seed_leaf, ssl_protocols="TLSv1.2")
        cls.n_expired = cls.start_nginx("expired", tls=cls.expired_leaf)
        cls.n_chain = cls.start_nginx("chain", tls=cls.chain_leaf)
        cls.n_tls12 = cls.start_nginx("tls12", tls=cls.main_leaf, ssl_protocols="TLSv1.2")
        cls.n_tls13 = cls.start_nginx("tls13", tls=cls.main_leaf, ssl_protocols="TLSv1.3")
        cls.n_mtls = cls.start_nginx("mtls", tls=cls.main_leaf, client_ca=cls.client_ca.cert)
        # Every request needs a new upstream connection: resumption shows.
        cls.n_resume = cls.start_nginx("resume", tls=cls.main_leaf, keepalive_requests=1)

        cls.gw_port, cls.https_port, cls.nocert_port = (h.free_port() for _ in range(3))
        cls.p = cls.make_portico()
        cls.write_static_config(cls.p)
        cls.p.start(wait_ports=[cls.gw_port, cls.https_port, cls.nocert_port])

    # ------------------------------------------------------------------ config
    @classmethod
    def gateway_manifests(cls) -> list[dict]:
        http = h.listener(cls.gw_port, name="http")
        https = h.listener(cls.https_port, name="https", protocol="HTTPS",
                           hostname="secure.test")
        https["tls"] = {"mode": "Terminate",
                        "certificateRefs": [{"kind": "Secret", "name": "gw-https-cert"}]}
        gw = h.gateway("http", [http, https], namespace=GW_NS)
        gw["spec"]["tls"] = {"backend": {"clientCertificateRef": {
            "group": "", "kind": "Secret", "name": "gw-client-cert"}}}
        nocert = h.gateway("nocert", [h.listener(cls.nocert_port, name="http")], namespace=GW_NS)
        return [h.gateway_class(), gw, nocert,
                t.tls_secret("gw-https-cert", cls.https_cert, namespace=GW_NS),
                t.tls_secret("gw-client-cert", cls.client_cert, namespace=GW_NS)]

    @classmethod
    def case(cls, svc: str, nginx: h.Nginx, policies: list[dict],
             parent: str = "http") -> list[dict]:
        return [*t.tls_backend(svc, nginx.port), *policies,
                t.route_to(svc, f"{svc}.test", svc, parent=parent)]

    @classmethod
    def write_static_config(cls, p: h.Portico) -> None:
        p.write("00-gateway.yaml", cls.gateway_manifests())

        # The seed's own files, as examples/backend-tls ships them.
        for name in ("backend-tls-policy.yaml", "httproute.yaml"):
            shutil.copy(EXAMPLES / name, p.config_dir / f"seed-{name}")
        svc = (EXAMPLES / "nginx-service.yaml").read_text()
        head, sep, slice_part = svc.partition("kind: EndpointSlice")
        p.write("seed-nginx-service.yaml",
                head + sep + slice_part.replace("port: 8443", f"port: {cls.n_seed.port}"))
        p.write("seed-ca-configmap.yaml", t.ca_config_map("ca", cls.seed_leaf.pem()) | {
            "metadata": {"name": "ca", "labels": {"app": "nginx"}}})

        root_pem = cls.root.pem()
        root_cm = t.ca_config_map("root-ca", root_pem)
        other_cm = t.ca_config_map("other-ca", cls.other_root.pem())
        root = [t.ca_ref("root-ca")]
        pol = t.backend_tls_policy
        docs: list[dict] = [root_cm, other_cm,
                            t.ca_config_map("empty-ca", ""),
                            t.ca_secret("seed-ca-secret", cls.seed_leaf.pem())]
        m = cls.n_main
        docs += cls.case("sni", m, [pol("sni", "sni", "backend.example.com", root)])
        docs += cls.case("mismatch", m, [pol("mismatch", "mismatch", "nomatch.example.com", root)])
        docs += cls.case("wrongca", m, [pol("wrongca", "wrongca", "backend.example.com",
                                            [t.ca_ref("other-ca")])])
        # subjectAltNames: the hostname is only the SNI, never checked.
        docs += cls.case("san-dns-ok", m, [pol("san-dns-ok", "san-dns-ok", "sni-only.example.com",
                                               root, sans=[t.san_hostname("other.example.com")])])
        docs += cls.case("san-dns-bad", m, [pol("san-dns-bad", "san-dns-bad", "backend.example.com",
                                                root, sans=[t.san_hostname("nope.example.com")])])
        docs += cls.case("san-uri-ok", m, [pol("san-uri-ok", "san-uri-ok", "sni-only.example.com",
                                               root, sans=[t.san_uri(SPIFFE)])])
        docs += cls.case("san-uri-bad", m, [pol("san-uri-bad", "san-uri-bad", "backend.example.com",
                                                root, sans=[t.san_uri(SPIFFE_OTHER)])])
        docs += cls.case("san-both-ok", m, [pol(
            "san-both-ok", "san-both-ok", "sni-only.example.com", root,
            sans=[t.san_hostname("nope.example.com"), t.san_uri(SPIFFE)])])
        docs += cls.case("san-both-bad", m, [pol(
            "san-both-bad", "san-both-bad", "backend.example.com", root,
            sans=[t.san_hostname("nope.example.com"), t.san_uri(SPIFFE_OTHER)])])
        # A wildcard Hostname SAN (Gateway API's Hostname allows "*.") matches
        # the same wildcard in the certificate, as Envoy's DNS SAN matcher does.
        docs += cls.case("san-wild", m, [pol("san-wild", "san-wild", "sni-only.example.com",
                                             root, sans=[t.san_hostname("*.wild.example.com")])])
        docs += cls.case("san-wild-bad", m, [pol(
            "san-wild-bad", "san-wild-bad", "sni-only.example.com", root,
            sans=[t.san_hostname("*.example.com")])])
        docs += cls.case("wild", m, [pol("wild", "wild", "a.wild.example.com", root)])
        docs += cls.case("wild-deep", m, [pol("wild-deep", "wild-deep", "a.b.wild.example.com",
                                              root)])
        # Several refs: the usable ones are combined; a bad one is reported.
        docs += [t.ca_secret("root-ca-secret", root_pem),
                 t.ca_config_map("pem-bundle", cls.other_root.pem() + root_pem)]
        docs += cls.case("multiref", m, [pol("multiref", "multiref", "backend.example.com",
                                             [t.ca_ref("other-ca"),
                                              t.ca_ref("root-ca-secret", kind="Secret")])])
        docs += cls.case("pembundle", m, [pol("pembundle", "pembundle", "backend.example.com",
                                              [t.ca_ref("pem-bundle")])])
        docs += cls.case("partialref", m, [pol("partialref", "partialref", "backend.example.com",
                                               [t.ca_ref("does-not-exist"), t.ca_ref("root-ca")])])
        # Options: other domains' keys are ignored (and named); ours are checked.
        docs += cls.case("foreignopt", m, [pol("foreignopt", "foreignopt", "backend.example.com",
                                               root, options={"kgateway.dev/some-option": "x"})])
        docs += cls.case("badopt", m, [pol("badopt", "badopt", "backend.example.com", root,
                                           options={"portico.dev/bogus": "1"})])
        docs += cls.case("cipher", cls.n_tls12, [pol(
            "cipher", "cipher", "backend.example.com", root,
            options={"portico.dev/cipher-suites": "ECDHE-ECDSA-AES128-GCM-SHA256"})])
        docs += cls.case("curve", cls.n_tls13, [pol(
            "curve", "curve", "backend.example.com", root,
            options={"portico.dev/curves": "P-256"})])
        docs += cls.case("missingcm", m, [pol("missingcm", "missingcm", "backend.example.com",
                                              [t.ca_ref("does-not-exist")])])
        docs += cls.case("emptyca", m, [pol("emptyca", "emptyca", "backend.example.com",
                                            [t.ca_ref("empty-ca")])])
        docs += cls.case("badkind", m, [pol("badkind", "badkind", "backend.example.com",
                                            [t.ca_ref("root-ca", kind="Pod")])])
        docs += cls.case("badhost", m, [pol("badhost", "badhost", "*.example.com", root)])
        docs += cls.case("selfsigned", cls.n_seed, [pol(
            "selfsigned", "selfsigned", "example.com", [t.ca_ref("seed-ca-secret", kind="Secret")],
            api=t.POLICY_API_V1)])
        docs += cls.case("expired", cls.n_expired, [pol("expired", "expired", "expired.example.com",
                                                        root)])
        docs += cls.case("chain", cls.n_chain, [pol("chain", "chain", "chain.example.com", root)])
        v12 = {"portico.dev/min-tls-version": "1.2", "portico.dev/max-tls-version": "1.2"}
        docs += cls.case("tls12", cls.n_tls12, [pol("tls12", "tls12", "backend.example.com", root,
                                                    options=v12)])
        docs += cls.case("tls12-min13", cls.n_tls12, [pol(
            "tls12-min13", "tls12-min13", "backend.example.com", root,
            options={"portico.dev/min-tls-version": "1.3"})])
        docs += cls.case("tls13", cls.n_tls13, [pol(
            "tls13", "tls13", "backend.example.com", root,
            options={"portico.dev/min-tls-version": "1.3"})])
        docs += cls.case("tls13-max12", cls.n_tls13, [pol(
            "tls13-max12", "tls13-max12", "backend.example.com", root,
            options={"portico.dev/max-tls-version": "1.2"})])
        docs += cls.case("mtls", cls.n_mtls, [pol("mtls", "mtls", "backend.example.com", root)])
        docs.append(t.route_to("mtls-nocert", "mtls.test", "mtls", parent="nocert"))
        docs += cls.case("resume", cls.n_resume, [pol("resume", "resume", "backend.example.com",
                                                      root)])
        docs += cls.case("system", m, [pol("system", "system", "backend.example.com",
                                           well_known="System")])
        docs.append(t.route_to("secure", "secure.test", "sni", section="https"))

        # Conflicts. By creationTimestamp: the older wins although its name
        # sorts last. By name (same timestamp, both on sectionName https).
        docs += cls.case("conflict-ts", m, [
            pol("aa-newer", "conflict-ts", "other.example.com", root,
                created="2024-06-01T00:00:00Z"),
            pol("zz-older", "conflict-ts", "backend.example.com", root,
                created="2024-01-01T00:00:00Z")])
        docs += cls.case("conflict-name", m, [
            pol("b-policy", "conflict-name", "other.example.com", root, section="https",
                created="2024-01-01T00:00:00Z"),
            pol("a-policy", "conflict-name", "backend.example.com", root, section="https",
                created="2024-01-01T00:00:00Z")])
        # A policy with a sectionName and one without do not conflict.
        docs += [t.multi_port_service("sect", [("https-a", 443), ("https-b", 8443)]),
                 {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                  "metadata": {"name": "sect-slice", "namespace": "default",
                               "labels": {"kubernetes.io/service-name": "sect"}},
                  "addressType": "IPv4",
                  "ports": [{"name": "https-a", "port": m.port, "protocol": "TCP"},
                            {"name": "https-b", "port": m.port, "protocol": "TCP"}],
                  "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]},
                 pol("sect-all", "sect", "backend.example.com", root,
                     created="2024-06-01T00:00:00Z"),
                 pol("sect-b", "sect", "other.example.com", root, section="https-b",
                     created="2024-01-01T00:00:00Z"),
                 t.route_to("sect-a", "sect-a.test", "sect", port=443),
                 t.route_to("sect-b", "sect-b.test", "sect", port=8443)]
        # Live cases: their own files, edited by the tests.
        docs += [*t.tls_backend("rot", m.port),
                 pol("rot", "rot", "backend.example.com", [t.ca_ref("rot-ca")]),
                 t.route_to("rot", "rot.test", "rot")]
        p.write("10-cases.yaml", docs)
        p.write("20-gen.yaml", cls.case("gen", m, [pol("gen", "gen", "backend.example.com",
                                                       root)]))
        # The seed's cleanup, one object per file (kubectl delete ... -l app=nginx).
        p.write("40-cleanup-svc.yaml", t.tls_backend("cleanup", m.port))
        p.write("41-cleanup-policy.yaml", pol("cleanup", "cleanup", "backend.example.com", root))
        p.write("42-cleanup-route.yaml", t.route_to("cleanup", "cleanup.test", "cleanup"))

    # ------------------------------------------------------------------ helpers
    def get(self, host: str, port: int | None = None) -> h.Response:
        return t.get(port or self.gw_port, host)

    def echo(self, host: str, port: int | None = None) -> dict:
        r = self.get(host, port)
        self.assertEqual(r.status, 200, f"{host}: {r.status} {r.text[:400]}")
        return r.json()

    def assertVerifyFailed(self, host: str, reason: str, port: int | None = None) -> h.Response:
        r = self.get(host, port)
        self.assertEqual(r.status, 503, f"{host}: expected 503, got {r.status} {r.text[:300]}")
        self.assertIn(VERIFY_FAILED + reason, r.text)
        return r

    def policy(self, name: str, gateway: str | None = "http") -> dict[str, dict]:
        return t.policy_conditions(t.status_items(self.p), name, gateway=gateway)

    def assertPolicy(self, name: str, accepted: tuple[str, str],
                     resolved: tuple[str, str] | None = None,
                     gateway: str | None = "http") -> dict[str, dict]:
        conds = self.policy(name, gateway)
        self.assertEqual(t.cond(conds, "Accepted"), accepted, json.dumps(conds))
        if resolved is not None:
            self.assertEqual(t.cond(conds, "ResolvedRefs"), resolved, json.dumps(conds))
        return conds

    def ssl(self, svc: str, port: int = 443) -> dict[str, int]:
        return t.cluster_stats(self.p, cluster(svc, port))

    def cx(self, svc: str, port: int = 443) -> dict[str, int]:
        """cluster.<name>.upstream_cx_* counters, keyed by the part after the cluster."""
        prefix = f"cluster.{cluster(svc, port)}."
        return {k[len(prefix):]: v for k, v in self.p.stats().items()
                if k.startswith(prefix + "upstream_cx_") and isinstance(v, int)}

    def assertEnvoyVerifyFailureStats(self, svc: str, host: str, reason: str, counter: str):
        """Envoy's accounting of a certificate that does not verify: fail_verify_*
        grows, ssl.connection_error does not ("not including failed certificate
        verifications"), and the connection counts as upstream_cx_connect_fail
        (Envoy's pool sees no Connected event before the handshake is done)."""
        before, cx_before = self.ssl(svc), self.cx(svc)
        self.assertVerifyFailed(host, reason)
        after, cx_after = self.ssl(svc), self.cx(svc)
        self.assertGreaterEqual(t.delta(before, after, counter), 1, after)
        self.assertEqual(t.delta(before, after, "connection_error"), 0, after)
        self.assertEqual(t.delta(before, after, "handshake"), 0, after)
        self.assertGreaterEqual(t.delta(cx_before, cx_after, "upstream_cx_connect_fail"), 1,
                                cx_after)

    # ------------------------------------------------------------------ the seed
    def test_seed_flow(self):
        """The seed's manifests (examples/backend-tls): 200 and the seed's stats."""
        before = self.ssl("nginx", 8443)
        r = t.curl("-i", f"http://127.0.0.1:{self.gw_port}/", "-H",
                   f"host: example.com:{self.gw_port}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("HTTP/1.1 200 OK"), r.stdout[:300])
        body = json.loads(r.stdout.split("\n\n", 1)[1])  # text mode: \r\n -> \n
        self.assertEqual(body["backend"], "seed")
        self.assertEqual(body["ssl_server_name"], "example.com")
        self.assertEqual(body["ssl_protocol"], "TLSv1.2")
        after = self.ssl("nginx", 8443)
        self.assertGreaterEqual(t.delta(before, after, "handshake"), 1, after)
        self.assertGreaterEqual(t.delta(before, after, "versions.TLSv1.2"), 1, after)
        # The exact names the seed tells users to look for.
        stats = self.p.stats()
        self.assertIn("cluster.kube_default_nginx_8443.ssl.handshake", stats)
        self.assertIn("cluster.kube_default_nginx_8443.ssl.versions.TLSv1.2", stats)
        self.assertPolicy("nginx-tls-policy", ("True", "Accepted"), ("True", "ResolvedRefs"))
        prom = self.p.admin("/stats/prometheus")[1]
        self.assertRegex(prom, r'envoy_cluster_ssl_handshake\{envoy_cluster_name='
                               r'"kube_default_nginx_8443"\} [1-9]')

    def test_self_signed_leaf_as_anchor_v1_secret(self):
        """A self-signed leaf is its own trust anchor (v1 policy, CA in a Secret)."""
        body = self.echo("selfsigned.test")
        self.assertEqual(body["backend"], "seed")
        self.assertEqual(body["ssl_server_name"], "example.com")
        self.assertPolicy("selfsigned", ("True", "Accepted"), ("True", "ResolvedRefs"))

    # ------------------------------------------------------------------ verification
    def test_sni_is_validation_hostname(self):
        body = self.echo("sni.test")
        self.assertEqual(body["backend"], "main")
        self.assertEqual(body["ssl_server_name"], "backend.example.com")
        self.assertIn(body["ssl_protocol"], ("TLSv1.2", "TLSv1.3"))
        # The Host header is the client's, not the SNI.
        self.assertEqual(body["host"], "sni.test")

    def test_hostname_mismatch(self):
        before = self.ssl("mismatch")
        self.assertVerifyFailed("mismatch.test", "hostname mismatch")
        after = self.ssl("mismatch")
        self.assertGreaterEqual(t.delta(before, after, "fail_verify_san"), 1, after)
        self.assertEqual(t.delta(before, after, "handshake"), 0, after)
        # One log line naming cluster, endpoint and reason.
        self.assertRegex(self.p.logs(), rf"cluster={cluster('mismatch')} "
                                        rf"endpoint=127\.0\.0\.1:{self.n_main.port} .*hostname mismatch")

    def test_wrong_ca(self):
        self.assertEnvoyVerifyFailureStats("wrongca", "wrongca.test",
                                           "unable to get local issuer certificate",
                                           "fail_verify_error")

    def test_hostname_mismatch_stats_as_envoy(self):
        self.assertEnvoyVerifyFailureStats("mismatch", "mismatch.test", "hostname mismatch",
                                           "fail_verify_san")

    def test_san_list_mismatch_stats_as_envoy(self):
        self.assertEnvoyVerifyFailureStats("san-uri-bad", "san-uri-bad.test", "verify SAN list",
                                           "fail_verify_san")

    def test_san_hostname_match(self):
        body = self.echo("san-dns-ok.test")
        self.assertEqual(body["ssl_server_name"], "sni-only.example.com")

    def test_san_hostname_mismatch(self):
        # validation.hostname is in the certificate, but with subjectAltNames
        # only they count.
        before = self.ssl("san-dns-bad")
        self.assertVerifyFailed("san-dns-bad.test", "verify SAN list")
        self.assertGreaterEqual(t.delta(before, self.ssl("san-dns-bad"), "fail_verify_san"), 1)

    def test_san_uri_match(self):
        body = self.echo("san-uri-ok.test")
        self.assertEqual(body["ssl_server_name"], "sni-only.example.com")

    def test_san_uri_mismatch(self):
        before = self.ssl("san-uri-bad")
        self.assertVerifyFailed("san-uri-bad.test", "verify SAN list")
        self.assertGreaterEqual(t.delta(before, self.ssl("san-uri-bad"), "fail_verify_san"), 1)

    def test_san_both_types_one_matches(self):
        body = self.echo("san-both-ok.test")
        self.assertEqual(body["ssl_server_name"], "sni-only.example.com")

    def test_san_both_types_none_match(self):
        before = self.ssl("san-both-bad")
        self.assertVerifyFailed("san-both-bad.test", "verify SAN list")
        self.assertGreaterEqual(t.delta(before, self.ssl("san-both-bad"), "fail_verify_san"), 1)

    def test_wildcard_subject_alt_name(self):
        self.assertEqual(self.echo("san-wild.test")["ssl_server_name"], "sni-only.example.com")
        # A wildcard entry is not a pattern over the certificate's names:
        # "*.example.com" matches neither "backend.example.com" (it would let
        # any name in the zone through) nor "*.wild.example.com".
        self.assertVerifyFailed("san-wild-bad.test", "verify SAN list")

    def test_wildcard_san_left_most_label_only(self):
        self.assertEqual(self.echo("wild.test")["ssl_server_name"], "a.wild.example.com")
        self.assertVerifyFailed("wild-deep.test", "hostname mismatch")

    def test_ca_refs_are_combined(self):
        # A ConfigMap with the wrong CA plus a Secret with the right one.
        self.assertEqual(self.echo("multiref.test")["backend"], "main")
        self.assertPolicy("multiref", ("True", "Accepted"), ("True", "ResolvedRefs"))
        # One ConfigMap holding a PEM bundle of two CAs.
        self.assertEqual(self.echo("pembundle.test")["backend"], "main")

    def test_one_bad_ref_among_good_ones(self):
        self.assertEqual(self.echo("partialref.test")["backend"], "main")
        conds = self.assertPolicy("partialref", ("True", "Accepted"),
                                  ("False", "InvalidCACertificateRef"))
        self.assertIn("does-not-exist", conds["ResolvedRefs"]["message"])

    def test_expired_backend_certificate(self):
        before = self.ssl("expired")
        self.assertVerifyFailed("expired.test", "certificate has expired")
        self.assertGreaterEqual(t.delta(before, self.ssl("expired"), "fail_verify_error"), 1)

    def test_chain_with_only_root_trusted(self):
        # nginx sends leaf + intermediate; only the root is in the ConfigMap.
        self.assertEqual(self.chain_leaf.chain.read_text().count("BEGIN CERTIFICATE"), 2)
        body = self.echo("chain.test")
        self.assertEqual(body["backend"], "chain")
        self.assertEqual(body["ssl_server_name"], "chain.example.com")

    # ------------------------------------------------------------------ bad policies
    def assertFailsClosed(self, host: str, policy: str | None = None) -> h.Response:
        """A policy that cannot be honoured: 503 naming it, never plaintext."""
        r = self.get(host)
        self.assertEqual(r.status, 503, f"{host}: {r.status} {r.text[:300]}")
        self.assertNotIn('"backend"', r.text, "a request reached the backend")
        policy = policy or host.removesuffix(".test")
        self.assertIn(f"backend TLS policy default/{policy} not usable", r.text)
        return r

    def test_missing_configmap(self):
        r = self.assertFailsClosed("missingcm.test")
        self.assertIn("ConfigMap default/does-not-exist not found", r.text)
        conds = self.assertPolicy("missingcm", ("False", "NoValidCACertificate"),
                                  ("False", "InvalidCACertificateRef"))
        self.assertIn("does-not-exist", conds["ResolvedRefs"]["message"])

    def test_empty_ca_crt(self):
        r = self.assertFailsClosed("emptyca.test")
        self.assertIn("ca.crt is empty", r.text)
        self.assertPolicy("emptyca", ("False", "NoValidCACertificate"),
                          ("False", "InvalidCACertificateRef"))

    def test_invalid_kind(self):
        r = self.assertFailsClosed("badkind.test")
        self.assertIn("unsupported kind Pod", r.text)
        self.assertPolicy("badkind", ("False", "NoValidCACertificate"), ("False", "InvalidKind"))

    def test_invalid_hostname(self):
        self.assertFailsClosed("badhost.test")
        conds = self.assertPolicy("badhost", ("False", "Invalid"))
        self.assertIn("hostname", conds["Accepted"]["message"])

    def test_foreign_option_ignored_and_named(self):
        self.assertEqual(self.echo("foreignopt.test")["backend"], "main")
        conds = self.assertPolicy("foreignopt", ("True", "Accepted"))
        self.assertIn("kgateway.dev/some-option", conds["Accepted"]["message"])

    def test_unknown_portico_option_is_invalid(self):
        self.assertFailsClosed("badopt.test")
        conds = self.assertPolicy("badopt", ("False", "Invalid"))
        self.assertIn("portico.dev/bogus", conds["Accepted"]["message"])

    def test_check_reports_the_same_conditions(self):
        """`portico check -o json` on the same config agrees with /status."""
        r = self.p.check(self.p.config_dir, output="json")
        items = json.loads(r.stdout)["items"]
        for name, accepted in (("missingcm", "NoValidCACertificate"), ("badkind",
                               "NoValidCACertificate"), ("sni", "Accepted"),
                               ("aa-newer", "Conflicted")):
            conds = t.policy_conditions(items, name, gateway="http")
            self.assertEqual(conds["Accepted"]["reason"], accepted, name)
        text = self.p.check(self.p.config_dir)
        self.assertIn("backend default/sni:443 (cluster kube_default_sni_443): "
                      "BackendTLSPolicy default/sni", text.stdout + text.stderr)

    # ------------------------------------------------------------------ conflicts
    def test_conflict_by_creation_timestamp(self):
        body = self.echo("conflict-ts.test")
        self.assertEqual(body["ssl_server_name"], "backend.example.com")  # zz-older's
        self.assertPolicy("zz-older", ("True", "Accepted"))
        conds = self.assertPolicy("aa-newer", ("False", "Conflicted"))
        self.assertIn("zz-older", conds["Accepted"]["message"])

    def test_conflict_by_name_with_section_name(self):
        body = self.echo("conflict-name.test")
        self.assertEqual(body["ssl_server_name"], "backend.example.com")  # a-policy's
        self.assertPolicy("a-policy", ("True", "Accepted"))
        self.assertPolicy("b-policy", ("False", "Conflicted"))

    def test_section_name_and_whole_service_do_not_conflict(self):
        self.assertEqual(self.echo("sect-a.test")["ssl_server_name"], "backend.example.com")
        self.assertEqual(self.echo("sect-b.test")["ssl_server_name"], "other.example.com")
        self.assertPolicy("sect-all", ("True", "Accepted"))
        self.assertPolicy("sect-b", ("True", "Accepted"))

    # ------------------------------------------------------------------ versions
    def test_tls12_only_backend(self):
        before = self.ssl("tls12")
        self.assertEqual(self.echo("tls12.test")["ssl_protocol"], "TLSv1.2")
        after = self.ssl("tls12")
        self.assertGreaterEqual(t.delta(before, after, "versions.TLSv1.2"), 1)
        # Envoy's default upstream cipher order: AES-128-GCM first.
        self.assertGreaterEqual(t.delta(before, after, "ciphers.ECDHE-ECDSA-AES128-GCM-SHA256"),
                                1, after)
        r = self.get("tls12-min13.test")
        self.assertEqual(r.status, 503, r.text)
        self.assertIn("TLS_error", r.text)

    def test_tls13_only_backend(self):
        before = self.ssl("tls13")
        self.assertEqual(self.echo("tls13.test")["ssl_protocol"], "TLSv1.3")
        after = self.ssl("tls13")
        self.assertGreaterEqual(t.delta(before, after, "versions.TLSv1.3"), 1)
        self.assertGreaterEqual(t.delta(before, after, "ciphers.TLS_AES_128_GCM_SHA256"), 1, after)
        r = self.get("tls13-max12.test")
        self.assertEqual(r.status, 503, r.text)
        self.assertIn("TLS_error", r.text)

    def test_cipher_suites_option_and_envoy_cipher_name(self):
        # Envoy (BoringSSL) names TLS 1.2 ciphers the OpenSSL way:
        # ssl.ciphers.ECDHE-ECDSA-AES128-GCM-SHA256.
        before = self.ssl("cipher")
        self.assertEqual(self.echo("cipher.test")["ssl_protocol"], "TLSv1.2")
        after = self.ssl("cipher")
        self.assertGreaterEqual(t.delta(before, after, "ciphers.ECDHE-ECDSA-AES128-GCM-SHA256"),
                                1, after)

    def test_curves_option(self):
        before = self.ssl("curve")
        self.assertEqual(self.echo("curve.test")["ssl_protocol"], "TLSv1.3")
        after = self.ssl("curve")
        self.assertGreaterEqual(t.delta(before, after, "curves.P-256"), 1, after)
        self.assertEqual(t.delta(before, after, "curves.X25519"), 0, after)

    # ------------------------------------------------------------------ connections
    def test_session_resumption(self):
        before = self.ssl("resume")
        n = 8
        conn = http.client.HTTPConnection("127.0.0.1", self.gw_port, timeout=10)
        try:
            seen = set()
            for _ in range(n):
                r = h.request(self.gw_port, "/", host="resume.test", conn=conn)
                self.assertEqual(r.status, 200, r.text)
                seen.add(r.json()["connection"])
        finally:
            conn.close()
        self.assertEqual(len(seen), n, "nginx should have seen a new connection per request")
        after = self.ssl("resume")
        self.assertGreaterEqual(t.delta(before, after, "handshake"), n, after)
        # One downstream connection = one worker: after the first full
        # handshake, every new upstream connection resumes (slack of one).
        self.assertGreaterEqual(t.delta(before, after, "session_reused"), n - 2, after)

    def test_gateway_client_certificate(self):
        body = self.echo("mtls.test")
        self.assertIn("CN=portico-client", body["ssl_client_s_dn"])
        self.assertEqual(body["ssl_client_verify"], "SUCCESS")
        items = t.status_items(self.p)
        self.assertEqual(t.cond(t.gateway_conditions(items, "http", GW_NS), "ResolvedRefs"),
                         ("True", "ResolvedRefs"))
        self.assertEqual(t.cond(t.gateway_conditions(items, "http", GW_NS), "Accepted"),
                         ("True", "Accepted"))

    def test_gateway_without_client_certificate_presents_none(self):
        # Gateway `nocert` has no spec.tls.backend: its connections to the same
        # Service must carry no client certificate, so nginx refuses them.
        r = self.get("mtls.test", self.nocert_port)
        self.assertEqual(r.status, 400, f"ssl_client_s_dn={r.json().get('ssl_client_s_dn')!r}"
                         if r.status == 200 else r.text[:300])
        self.assertIn("No required SSL certificate was sent", r.text)

    def test_reencrypt_from_https_listener(self):
        r = t.curl("--cacert", str(self.root.cert), "--resolve",
                   f"secure.test:{self.https_port}:127.0.0.1",
                   f"https://secure.test:{self.https_port}/", "-w", "\n%{http_code}")
        self.assertEqual(r.returncode, 0, r.stderr)
        body, _, code = r.stdout.rpartition("\n")
        self.assertEqual(code, "200", r.stdout[:300])
        echo = json.loads(body)
        self.assertEqual(echo["ssl_server_name"], "backend.example.com")
        self.assertEqual(echo["x_forwarded_proto"], "https")
        listener = f"listener.127.0.0.1_{self.https_port}.ssl.handshake"
        self.assertGreaterEqual(self.p.stat(listener), 1)

    def test_system_trust_without_ssl_cert_file(self):
        # The test root is in no system store: wellKnownCACertificates: System
        # must fail verification here (see SystemTrustTest for the positive).
        self.assertVerifyFailed("system.test", "unable to get local issuer certificate")
        self.assertPolicy("system", ("True", "Accepted"))

    # ------------------------------------------------------------------ live changes
    def test_observed_generation_after_edit(self):
        conds = self.assertPolicy("gen", ("True", "Accepted"))
        self.assertEqual(conds["Accepted"]["observedGeneration"], 1)
        self.assertEqual(self.echo("gen.test")["ssl_server_name"], "backend.example.com")
        docs = self.case("gen", self.n_main, [t.backend_tls_policy(
            "gen", "gen", "other.example.com", [t.ca_ref("root-ca")])])
        t.write_and_wait(self.p, "20-gen.yaml", docs)
        conds = self.assertPolicy("gen", ("True", "Accepted"), ("True", "ResolvedRefs"))
        self.assertEqual(conds["Accepted"]["observedGeneration"], 2)
        self.assertEqual(conds["ResolvedRefs"]["observedGeneration"], 2)
        obj = t.find_object(t.status_items(self.p), "BackendTLSPolicy", "gen")
        self.assertEqual(obj["metadata"]["generation"], 2)
        # Live: the next request uses the new SNI (no pooled connection reused).
        self.assertEqual(self.echo("gen.test")["ssl_server_name"], "other.example.com")

    def test_seed_cleanup_policy_removed(self):
        """The seed's cleanup deletes the policy (with the ConfigMap and the
        route). With the policy gone but the route still there, the Gateway
        speaks plain HTTP to the TLS port, as kgateway's Envoy does: nginx
        answers 400. Never a TLS connection without a policy, never a 503."""
        self.assertEqual(self.echo("cleanup.test")["ssl_server_name"], "backend.example.com")
        before = self.ssl("cleanup")
        t.remove_and_wait(self.p, "41-cleanup-policy.yaml")
        r = self.get("cleanup.test")
        self.assertEqual(r.status, 400, r.text[:300])
        self.assertIn("The plain HTTP request was sent to HTTPS port", r.text)
        self.assertEqual(t.delta(before, self.ssl("cleanup"), "handshake"), 0)
        self.assertIn("backend default/cleanup:443 (cluster kube_default_cleanup_443): plaintext",
                      self.p.check(self.p.config_dir).stderr)
        t.remove_and_wait(self.p, "42-cleanup-route.yaml")
        self.assertEqual(self.get("cleanup.test").status, 404)

    # ------------------------------------------------------------------ admin /certs
    def certs(self) -> dict[str, dict]:
        st, body = self.p.admin("/certs")
        self.assertEqual(st, 200, body)
        return {e["name"]: e for e in json.loads(body)["certificates"]}

    def test_certs_admin_endpoint(self):
        """/certs lists the certificates the config loaded, shaped as Envoy's,
        with the days each has left, so an expired CA in a ConfigMap shows."""
        out = subprocess.run(["openssl", "x509", "-in", str(self.seed_leaf.cert), "-noout",
                              "-serial", "-enddate"], capture_output=True, text=True, check=True)
        fields = dict(line.split("=", 1) for line in out.stdout.splitlines())
        not_after = calendar.timegm(time.strptime(fields["notAfter"], "%b %d %H:%M:%S %Y %Z"))
        days_left = (not_after - int(time.time())) // 86400
        got = self.certs()
        seed = got["cluster kube_default_nginx_8443"]
        self.assertEqual(len(seed["ca_cert"]), 1, seed)
        ca = seed["ca_cert"][0]
        self.assertEqual(ca["serial_number"], fields["serial"].lower())
        self.assertEqual(ca["subject_alt_names"], [{"dns": "example.com"}])
        self.assertEqual(ca["expiration_time"],
                         time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(not_after)))
        self.assertIn(int(ca["days_until_expiration"]), (days_left - 1, days_left))
        self.assertEqual(ca["path"], "BackendTLSPolicy default/nginx-tls-policy")
        self.assertEqual(seed["cert_chain"], [])
        listener = got["listener certificate kgateway-system/gw-https-cert"]["cert_chain"]
        self.assertIn({"dns": "secure.test"}, listener[0]["subject_alt_names"])
        client = got["backend client certificate of Gateway kgateway-system/http"]["cert_chain"]
        self.assertIn("CN=portico-client", client[0]["subject"])
        # Envoy's gauge: the fewest days any loaded certificate has left.
        days = "server.days_until_first_cert_expiring"
        self.assertTrue(self.p.wait_for(lambda: 0 < self.p.stat(days) <= days_left, 3),
                        self.p.stat(days))
        # The seed's own CA (expired 2025-04-09): nothing left.
        t.write_and_wait(self.p, "50-certs-expired.yaml", [
            t.ca_config_map("certs-seed-ca", SEED_CA_PEM),
            *t.tls_backend("certs-expired", self.n_seed.port),
            t.backend_tls_policy("certs-expired", "certs-expired", "example.com",
                                 [t.ca_ref("certs-seed-ca")]),
            t.route_to("certs-expired", "certs-expired.test", "certs-expired")])
        try:
            ca = self.certs()[f"cluster {cluster('certs-expired')}"]["ca_cert"]
            self.assertEqual([(c["days_until_expiration"], c["expiration_time"]) for c in ca],
                             [("0", "2025-04-09T22:06:49Z")])
            # Set as the config is published, not at the next once-a-second tick.
            self.assertEqual(self.p.stat(days), 0)
        finally:
            t.remove_and_wait(self.p, "50-certs-expired.yaml")
        self.assertNotIn(f"cluster {cluster('certs-expired')}", self.certs())
        self.assertGreater(self.p.stat(days), 0)

    def test_ca_rotation_without_restart(self):
        pid = self.p.pid
        # 1. policy refers to a ConfigMap that does not exist yet.
        self.assertFailsClosed("rot.test", "rot")
        self.assertPolicy("rot", ("False", "NoValidCACertificate"),
                          ("False", "InvalidCACertificateRef"))
        # 2. created with the right CA.
        t.write_and_wait(self.p, "30-rot-ca.yaml", t.ca_config_map("rot-ca", self.root.pem()))
        self.assertPolicy("rot", ("True", "Accepted"), ("True", "ResolvedRefs"))
        conn = http.client.HTTPConnection("127.0.0.1", self.gw_port,
                                                                timeout=10)
        try:
            r = h.request(self.gw_port, "/", host="rot.test", conn=conn)
            self.assertEqual(r.status, 200, r.text)
            # 3. emptied: the pooled connection opened under the old CA must not
            # carry the next request.
            t.write_and_wait(self.p, "30-rot-ca.yaml", t.ca_config_map("rot-ca", ""))
            self.assertPolicy("rot", ("False", "NoValidCACertificate"),
                              ("False", "InvalidCACertificateRef"))
            r = h.request(self.gw_port, "/", host="rot.test", conn=conn)
            self.assertGreaterEqual(r.status, 500, r.text)
            self.assertNotIn('"backend"', r.text)
            # 3b. the wrong CA: a verification failure, not a pooled success.
            t.write_and_wait(self.p, "30-rot-ca.yaml",
                             t.ca_config_map("rot-ca", self.other_root.pem()))
            self.assertPolicy("rot", ("True", "Accepted"), ("True", "ResolvedRefs"))
            r = h.request(self.gw_port, "/", host="rot.test", conn=conn)
            self.assertEqual(r.status, 503, r.text)
            self.assertIn("unable to get local issuer certificate", r.text)
            # 4. restored.
            t.write_and_wait(self.p, "30-rot-ca.yaml", t.ca_config_map("rot-ca", self.root.pem()))
            self.assertPolicy("rot", ("True", "Accepted"), ("True", "ResolvedRefs"))
            r = h.request(self.gw_port, "/", host="rot.test", conn=conn)
            self.assertEqual(r.status, 200, r.text)
        finally:
            conn.close()
        self.assertEqual(self.p.pid, pid)
        self.assertTrue(self.p.alive())


# The seed's ConfigMap certificate, verbatim: public, expired 2025-04-09.
SEED_CA_PEM = """-----BEGIN CERTIFICATE-----
MIIC6zCCAdOgAwIBAgIJAPdgL5W5vugOMA0GCSqGSIb3DQEBCwUAMBYxFDASBgNV
BAMMC2V4YW1wbGUuY29tMB4XDTI1MDMxMDIyMDY0OVoXDTI1MDQwOTIyMDY0OVow
FjEUMBIGA1UEAwwLZXhhbXBsZS5jb20wggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAw
ggEKAoIBAQC46DSkpngZavNVgByw/h7rbKyvgzp2wGDW/fPGL0/rkLcKIsIiNgHH
6vA0UPTSI3YsHeu+CnQCEhZWk9KhQ2q8etSynUoizIrj2iuxKTEsL3SJ7cI03cpH
iQoMuUqp4L4lA6/YXsLkXjHWtnTLKjsvsrjBFiu96ueoje6B2sfcSlYRFI1WgMgZ
QP+LALy9tVtMManIqKVr63BG0884AghF3sPo5ryOEP/1Oc9F6Ivf67JfNjMhuBHa
hT500hYyuxzjgUPoMWyX1FQ7NL/OWUJ5EXuSnxpDb7edVDVCz+z199S76wpAKEe0
hoJG5Ahw1vWNRRBO8gnsSjLAHEw0nXpvAgMBAAGjPDA6MBYGA1UdEQQPMA2CC2V4
YW1wbGUuY29tMAsGA1UdDwQEAwIHgDATBgNVHSUEDDAKBggrBgEFBQcDATANBgkq
hkiG9w0BAQsFAAOCAQEANRIdAdlJgSsgBdUcO7fmAKAZtlUUPWHa1nq5hzxCkdBj
hnGBCE4d8tyffTkL4kZ3cQZmDjeb7KiVL9/OBDjbe3coaKrNeFRZ+0XTJtcnRzrB
gRpnXAJvYCbq4AIOkGdUfp2mw1fLdoNaoW8snb6RMV/7YrOSmhUa8H9YeiW3bZIh
oOhsl5u5DXaInkTUR4ZOVV6UJVsG+JnN71nFGikcKKMGgOC2rpFP658M3jCHX5yx
EGqH5JRIpCX9epfIvFeJWJY8u8G4pg3Sryko72RWwUQBQ5HGInO0nYGU1ff/enW6
ywK+felXBiCUKrWKFjChgwmrs2bGAUfegKF/TQtvWQ==
-----END CERTIFICATE-----
"""


class CheckTest(h.PorticoCase):
    """`portico check -o json` on small configs: statuses that need no traffic."""

    def check(self, name: str, docs: list[dict]) -> tuple[list[dict], str]:
        d = self.tmp / name
        d.mkdir()
        (d / "all.yaml").write_text(h.to_yaml(docs))
        r = h.run_check(h.portico_binary(), d, output="json")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        return json.loads(r.stdout)["items"], r.stderr + r.stdout

    def pem(self) -> str:
        return h.CertFactory(self.tmp / "certs").ca("check-ca").pem()

    def base(self, gw: dict | None = None) -> list[dict]:
        return [h.gateway_class(), gw or h.gateway("gw", [h.listener(8080)]),
                *t.tls_backend("svc", 9443),
                t.route_to("r", "svc.test", "svc", parent="gw", parent_namespace=None)]

    def test_seed_expired_ca_warning(self):
        items, out = self.check("seed", self.base() + [
            t.ca_config_map("ca", SEED_CA_PEM),
            t.backend_tls_policy("nginx-tls-policy", "svc", "example.com", [t.ca_ref("ca")])])
        self.assertIn("warning: BackendTLSPolicy default/nginx-tls-policy: ConfigMap default/ca "
                      "ca.crt: certificate 1 (CN=example.com) expired at 2025-04-09T22:06:49Z", out)
        # An expired anchor is still a parsable one: the handshake decides.
        self.assertEqual(t.cond(t.policy_conditions(items, "nginx-tls-policy"), "Accepted"),
                         ("True", "Accepted"))

    def test_schema_violations_are_invalid(self):
        pol = t.backend_tls_policy
        ca = [t.ca_ref("ca")]
        cases = {
            "ip-hostname": pol("ip-hostname", "svc", "10.0.0.1", ca),
            "both-trust": pol("both-trust", "svc", "a.example.com", ca, well_known="System"),
            "no-trust": pol("no-trust", "svc", "a.example.com"),
            "other-wellknown": pol("other-wellknown", "svc", "a.example.com",
                                   well_known="Mozilla"),
            "san-wrong-field": pol("san-wrong-field", "svc", "a.example.com", ca,
                                   sans=[{"type": "Hostname", "uri": "spiffe://x/y"}]),
            "bad-version": pol("bad-version", "svc", "a.example.com", ca,
                               options={"portico.dev/min-tls-version": "1.1"}),
            "min-above-max": pol("min-above-max", "svc", "a.example.com", ca,
                                 options={"portico.dev/min-tls-version": "1.3",
                                          "portico.dev/max-tls-version": "1.2"}),
        }
        # The control is alone on its Service (option-invalid policies still
        # take part in conflict resolution on theirs).
        control = pol("valid", "svc2", "a.example.com", [t.ca_ref("ca")])
        items, _ = self.check("schema", self.base() + [t.ca_config_map("ca", self.pem())]
                              + list(cases.values()) + [control, *t.tls_backend("svc2", 9444),
                              t.route_to("r2", "svc2.test", "svc2", parent="gw",
                                         parent_namespace=None)])
        self.assertEqual(t.cond(t.policy_conditions(items, "valid"), "Accepted"),
                         ("True", "Accepted"))
        for name in cases:
            conds = t.policy_conditions(items, name)
            self.assertEqual(t.cond(conds, "Accepted"), ("False", "Invalid"),
                             f"{name}: {json.dumps(conds.get('Accepted'))}")
            self.assertIn("spec.", conds["Accepted"]["message"], name)

    def test_invalid_policies_in_conflict_resolution(self):
        """An older policy the API server would refuse (schema) does not hold
        a Service against a newer valid one; an older one that is Invalid only
        for its options does (the newer is Conflicted; the Service fails
        closed). docs/backend-tls.md says so."""
        pol = t.backend_tls_policy
        ca = [t.ca_ref("ca")]
        docs = self.base() + [
            t.ca_config_map("ca", self.pem()),
            pol("a-schema", "svc", "*.example.com", ca, created="2020-01-01T00:00:00Z"),
            pol("b-valid", "svc", "a.example.com", ca, created="2021-01-01T00:00:00Z"),
            *t.tls_backend("svc2", 9444),
            t.route_to("r2", "svc2.test", "svc2", parent="gw", parent_namespace=None),
            pol("c-options", "svc2", "a.example.com", ca,
                options={"portico.dev/bogus": "1"}, created="2020-01-01T00:00:00Z"),
            pol("d-valid", "svc2", "a.example.com", ca, created="2021-01-01T00:00:00Z")]
        items, out = self.check("invalid-conflict", docs)
        cond = lambda name: t.cond(t.policy_conditions(items, name), "Accepted")  # noqa: E731
        self.assertEqual(cond("a-schema"), ("False", "Invalid"))
        self.assertEqual(cond("b-valid"), ("True", "Accepted"))
        self.assertIn("backend default/svc:443 (cluster kube_default_svc_443): "
                      "BackendTLSPolicy default/b-valid, SNI a.example.com", out)
        self.assertEqual(cond("c-options"), ("False", "Invalid"))
        self.assertEqual(cond("d-valid"), ("False", "Conflicted"))
        self.assertIn("BackendTLSPolicy default/c-options cannot be honoured", out)

    def test_gateway_client_certificate_ref_missing(self):
        gw = h.gateway("gw", [h.listener(8080)])
        gw["spec"]["tls"] = {"backend": {"clientCertificateRef": {"kind": "Secret",
                                                                   "name": "absent"}}}
        items, _ = self.check("clientcert", self.base(gw))
        conds = t.gateway_conditions(items, "gw", "default")
        self.assertEqual(t.cond(conds, "Accepted"), ("True", "Accepted"))
        self.assertEqual(t.cond(conds, "ResolvedRefs"), ("False", "InvalidClientCertificateRef"))

    def test_https_listener_bad_certificate_ref(self):
        ln = h.listener(8443, name="https", protocol="HTTPS", hostname="secure.test")
        ln["tls"] = {"mode": "Terminate", "certificateRefs": [{"kind": "Secret",
                                                               "name": "absent"}]}
        items, _ = self.check("listener", self.base(h.gateway("gw", [ln])))
        conds = t.listener_conditions(items, "gw", "default", "https")
        self.assertEqual(t.cond(conds, "ResolvedRefs"), ("False", "InvalidCertificateRef"))


class SystemTrustTest(h.PorticoCase):
    """wellKnownCACertificates: System honours SSL_CERT_FILE on the process."""

    def test_system_trust_via_ssl_cert_file(self):
        f = h.CertFactory(self.tmp / "certs")
        root = f.ca("sys-root")
        leaf = f.leaf("sys-leaf", root, dns=["backend.example.com"])
        n = self.start_nginx("sys", tls=leaf)
        port = h.free_port()
        p = self.make_portico(env={"SSL_CERT_FILE": str(root.cert)})
        p.write("all.yaml", [
            h.gateway_class(), h.gateway("gw", [h.listener(port)]),
            *t.tls_backend("sys", n.port),
            t.backend_tls_policy("sys", "sys", "backend.example.com", well_known="System",
                                 api=t.POLICY_API_V1),
            t.route_to("sys", "sys.test", "sys", parent="gw", parent_namespace=None)])
        p.start(wait_ports=[port])
        r = t.get(port, "sys.test")
        self.assertEqual(r.status, 200, r.text[:300])
        self.assertEqual(r.json()["ssl_server_name"], "backend.example.com")
        # Any other value of wellKnownCACertificates is Invalid and fails closed.
        t.write_and_wait(p, "all.yaml", [
            h.gateway_class(), h.gateway("gw", [h.listener(port)]),
            *t.tls_backend("sys", n.port),
            t.backend_tls_policy("sys", "sys", "backend.example.com", well_known="Mozilla",
                                 api=t.POLICY_API_V1),
            t.route_to("sys", "sys.test", "sys", parent="gw", parent_namespace=None)])
        r = t.get(port, "sys.test")
        self.assertGreaterEqual(r.status, 500, r.text[:300])
        conds = t.policy_conditions(t.status_items(p), "sys")
        self.assertEqual(t.cond(conds, "Accepted"), ("False", "Invalid"))


class RefusedPolicyTest(h.PorticoCase):
    """A BackendTLSPolicy manifest decode refuses (a type error, a bad value):
    with no last good version of its file, its targets fail closed, never
    plaintext; with one, that version keeps serving."""

    def test_refused_policy_fails_closed_then_last_good_keeps_serving(self):
        f = h.CertFactory(self.tmp / "certs")
        root = f.ca("refused-root")
        leaf = f.leaf("refused-leaf", root, dns=["backend.example.com"])
        n = self.start_nginx("refused", tls=leaf)
        port = h.free_port()
        p = self.make_portico()
        p.write("app.yaml", [
            h.gateway_class(), h.gateway("gw", [h.listener(port)]),
            *t.tls_backend("refused", n.port), t.ca_config_map("refused-ca", root.pem()),
            t.route_to("refused", "refused.test", "refused", parent="gw", parent_namespace=None)])
        good = t.backend_tls_policy("refused", "refused", "backend.example.com",
                                    ca_refs=[t.ca_ref("refused-ca")])
        broken = json.loads(json.dumps(good))
        broken["spec"]["validation"]["hostname"] = ["backend.example.com"]  # not a string
        p.write("policy.yaml", [broken])
        p.start(wait_ports=[port])

        # Started with only the broken version: fail closed, naming why.
        r = t.get(port, "refused.test")
        self.assertEqual(r.status, 503, r.text[:300])
        self.assertIn("the manifest was refused", r.text)
        self.assertIn("spec.validation.hostname: expected string, got list", r.text)
        conds = t.policy_conditions(t.status_items(p), "refused")
        self.assertEqual(t.cond(conds, "Accepted"), ("False", "Invalid"))

        # Fixed: TLS to the backend.
        t.write_and_wait(p, "policy.yaml", [good])
        r = t.get(port, "refused.test")
        self.assertEqual(r.status, 200, r.text[:300])
        self.assertEqual(r.json()["ssl_server_name"], "backend.example.com")

        # Broken again while running: the last good version keeps serving.
        logged = (p.stdout() + p.stderr()).count("expected string, got list")
        p.write("policy.yaml", [broken])
        self.assertEventually(
            lambda: (p.stdout() + p.stderr()).count("expected string, got list") > logged, 5,
            "the refusal of the new version is logged")
        r = t.get(port, "refused.test")
        self.assertEqual(r.status, 200, r.text[:300])
        self.assertEqual(r.json()["ssl_server_name"], "backend.example.com")


if __name__ == "__main__":
    unittest.main()
