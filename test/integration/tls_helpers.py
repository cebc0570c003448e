"""Backend TLS helpers on top of harness.py: BackendTLSPolicy / CA / Secret
manifests, Gateway API status lookups, reload waits, per-cluster ssl stats.

Python 3 stdlib only, like the harness.
"""

from __future__ import annotations

import base64
import http.client
import json
import subprocess
import time

import harness as h

POLICY_API_V1ALPHA3 = "gateway.networking.k8s.io/v1alpha3"
POLICY_API_V1 = "gateway.networking.k8s.io/v1"


# ---------------------------------------------------------------------------
# manifests
# ---------------------------------------------------------------------------

def _meta(name: str, namespace: str | None, created: str | None = None,
          labels: dict | None = None) -> dict:
    m: dict = {"name": name}
    if namespace:
        m["namespace"] = namespace
    if created:
        m["creationTimestamp"] = created
    if labels:
        m["labels"] = labels
    return m


def ca_ref(name: str, kind: str = "ConfigMap", group: str = "") -> dict:
    return {"group": group, "kind": kind, "name": name}


def backend_tls_policy(name: str, service: str, hostname: str,
                       ca_refs: list[dict] | None = None, well_known: str | None = None,
                       sans: list[dict] | None = None, section: str | None = None,
                       options: dict[str, str] | None = None, api: str = POLICY_API_V1ALPHA3,
                       created: str | None = None, namespace: str = "default",
                       extra_targets: list[dict] | None = None) -> dict:
    """A BackendTLSPolicy targeting core Service `service` (one port when
    `section` names it). sans: [{"type": "Hostname", "hostname": ...} |
    {"type": "URI", "uri": ...}]."""
    target: dict = {"group": "", "kind": "Service", "name": service}
    if section:
        target["sectionName"] = section
    validation: dict = {"hostname": hostname}
    if ca_refs is not None:
        validation["caCertificateRefs"] = ca_refs
    if well_known is not None:
        validation["wellKnownCACertificates"] = well_known
    if sans is not None:
        validation["subjectAltNames"] = sans
    spec: dict = {"targetRefs": [target] + (extra_targets or []), "validation": validation}
    if options:
        spec["options"] = options
    return {"apiVersion": api, "kind": "BackendTLSPolicy",
            "metadata": _meta(name, namespace, created), "spec": spec}


def san_hostname(host: str) -> dict:
    return {"type": "Hostname", "hostname": host}


def san_uri(uri: str) -> dict:
    return {"type": "URI", "uri": uri}


def ca_config_map(name: str, pem: str | None, namespace: str = "default") -> dict:
    """ConfigMap with data.ca.crt = pem (pem None: no ca.crt key at all)."""
    data = {} if pem is None else {"ca.crt": pem}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name, namespace),
            "data": data}


def ca_secret(name: str, pem: str, namespace: str = "default") -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(name, namespace),
            "type": "Opaque",
            "data": {"ca.crt": base64.b64encode(pem.encode()).decode()}}


def tls_secret(name: str, cert: h.Cert, namespace: str = "default",
               chain: bool = True) -> dict:
    """kubernetes.io/tls Secret (tls.crt = cert [+ intermediates], tls.key)."""
    crt = (cert.chain if chain else cert.cert).read_bytes()
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(name, namespace),
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": base64.b64encode(crt).decode(),
                     "tls.key": base64.b64encode(cert.key.read_bytes()).decode()}}


def multi_port_service(name: str, ports: list[tuple[str, int]],
                       namespace: str = "default") -> dict:
    """A Service with several named ports: [(port_name, port), ...]."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, namespace),
            "spec": {"ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports]}}


def tls_backend(name: str, nginx_port: int, svc_port: int = 443, port_name: str = "https",
                namespace: str = "default") -> list[dict]:
    """Service `name` (port svc_port named port_name) -> 127.0.0.1:nginx_port."""
    return [h.service(name, svc_port, port_name=port_name, namespace=namespace),
            h.endpoint_slice(name, nginx_port, port_name=port_name, namespace=namespace)]


def route_to(name: str, host: str, service: str, port: int = 443, parent: str = "http",
             parent_namespace: str | None = "kgateway-system",
             section: str | None = None) -> dict:
    return h.http_route(name, [h.rule([h.backend_ref(service, port)])], parent=parent,
                        hostnames=[host], parent_namespace=parent_namespace,
                        section_name=section)


# ---------------------------------------------------------------------------
# status
# ---------------------------------------------------------------------------

def status_items(p: h.Portico) -> list[dict]:
    st, body = p.admin("/status")
    if st != 200:
        raise AssertionError(f"/status -> {st}: {body[:300]}")
    return json.loads(body).get("items", [])


def find_object(items: list[dict], kind: str, name: str,
                namespace: str | None = "default") -> dict | None:
    for it in items:
        md = it.get("metadata", {})
        if it.get("kind") == kind and md.get("name") == name and (
                namespace is None or md.get("namespace", "default") == namespace):
            return it
    return None


def policy_conditions(items: list[dict], name: str, namespace: str = "default",
                      gateway: str | None = None) -> dict[str, dict]:
    """type -> condition of a BackendTLSPolicy's first ancestor (or the
    ancestor whose ancestorRef names `gateway`)."""
    obj = find_object(items, "BackendTLSPolicy", name, namespace)
    if obj is None:
        raise AssertionError(f"BackendTLSPolicy {namespace}/{name} not in status")
    ancestors = obj.get("status", {}).get("ancestors", [])
    for a in ancestors:
        if gateway is None or a.get("ancestorRef", {}).get("name") == gateway:
            return {c["type"]: c for c in a.get("conditions", [])}
    raise AssertionError(f"BackendTLSPolicy {namespace}/{name} has no ancestor"
                         f"{' for ' + gateway if gateway else ''}: {json.dumps(obj.get('status'))}")


def gateway_conditions(items: list[dict], name: str, namespace: str) -> dict[str, dict]:
    obj = find_object(items, "Gateway", name, namespace)
    if obj is None:
        raise AssertionError(f"Gateway {namespace}/{name} not in status")
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


def listener_conditions(items: list[dict], gateway: str, namespace: str,
                        listener: str) -> dict[str, dict]:
    obj = find_object(items, "Gateway", gateway, namespace)
    for ls in (obj or {}).get("status", {}).get("listeners", []):
        if ls.get("name") == listener:
            return {c["type"]: c for c in ls.get("conditions", [])}
    raise AssertionError(f"listener {listener} of Gateway {namespace}/{gateway} not in status")


def cond(conds: dict[str, dict], type_: str) -> tuple[str | None, str | None]:
    c = conds.get(type_)
    return (c.get("status"), c.get("reason")) if c else (None, None)


# ---------------------------------------------------------------------------
# reloads
# ---------------------------------------------------------------------------

def config_version(p: h.Portico) -> int:
    st, body = p.admin("/config_dump")
    if st != 200:
        raise AssertionError(f"/config_dump -> {st}")
    return int(json.loads(body).get("version", 0))


def wait_reload(p: h.Portico, after: int, timeout: float = 5.0) -> int:
    """Waits for a config version newer than `after`; returns it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = config_version(p)
            if v > after:
                return v
        except (OSError, http.client.HTTPException, ValueError):
            pass
        time.sleep(0.03)
    raise AssertionError(f"portico did not reload within {timeout}s (still version <= {after})")


def write_and_wait(p: h.Portico, filename: str, content, timeout: float = 5.0) -> int:
    before = config_version(p)
    p.write(filename, content)
    return wait_reload(p, before, timeout)


def remove_and_wait(p: h.Portico, filename: str, timeout: float = 5.0) -> int:
    before = config_version(p)
    p.remove(filename)
    return wait_reload(p, before, timeout)


def cluster_stats(p: h.Portico, cluster: str) -> dict[str, int]:
    """cluster.<name>.ssl.* counters, keyed by the part after `ssl.`."""
    prefix = f"cluster.{cluster}.ssl."
    return {k[len(prefix):]: v for k, v in p.stats().items()
            if k.startswith(prefix) and isinstance(v, int)}


def delta(before: dict[str, int], after: dict[str, int], key: str) -> int:
    return after.get(key, 0) - before.get(key, 0)


# ---------------------------------------------------------------------------
# clients
# ---------------------------------------------------------------------------

def get(port: int, host: str, path: str = "/", timeout: float = 10.0) -> h.Response:
    return h.request(port, path, host=host, timeout=timeout)


def curl(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, text=True,
                          timeout=timeout)

