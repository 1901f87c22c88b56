"""`osprey install`, `osprey status` and `osprey uninstall` end to end: the real binary against
the fake Kubernetes API server (fake_kube.py, through a kubeconfig). The test plays the
controllers: it marks CRDs Established and workloads available (`FakeKube.on_write`), and
creates the Deployment the operator would make for the default collector.

- install applies every object of `--dry-run` with server-side apply (field manager `osprey`),
  custom resources only after their CRDs are established, and does not finish before every
  workload is available;
- an object the API server refuses is named in the error, with the API's message, and the
  command exits non-zero without applying the objects after it;
- status reports each object; uninstall deletes in reverse order and keeps the namespace, the
  CRDs and the data unless --purge.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import wait_until
from fake_kube import FakeKube

NS = "osprey-system"
DEPLOYMENTS = "/apis/apps/v1/deployments"
STATEFULSETS = "/apis/apps/v1/statefulsets"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
PVCS = "/api/v1/persistentvolumeclaims"

# Kind -> (collection, cluster-scoped)
COLLECTIONS = {
    "Namespace": ("/api/v1/namespaces", True),
    "CustomResourceDefinition": (CRDS, True),
    "ServiceAccount": ("/api/v1/serviceaccounts", False),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1/clusterroles", True),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", True),
    "Role": ("/apis/rbac.authorization.k8s.io/v1/roles", False),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1/rolebindings", False),
    "Deployment": (DEPLOYMENTS, False),
    "StatefulSet": (STATEFULSETS, False),
    "Service": ("/api/v1/services", False),
    "ConfigMap": ("/api/v1/configmaps", False),
    "MutatingWebhookConfiguration": (
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", True),
    "OpenTelemetryCollector": ("/apis/opentelemetry.io/v1alpha1/opentelemetrycollectors", False),
    "Instrumentation": ("/apis/opentelemetry.io/v1alpha1/instrumentations", False),
}


def dry_run(binary: Path, *args) -> list[dict]:
    out = subprocess.run([str(binary), "install", "--dry-run", *args], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def object_path(obj: dict) -> str:
    collection, cluster = COLLECTIONS[obj["kind"]]
    name = obj["metadata"]["name"]
    if cluster:
        return f"{collection}/{name}"
    prefix, plural = collection.rsplit("/", 1)
    return f"{prefix}/namespaces/{obj['metadata']['namespace']}/{plural}/{name}"


def status_lines(stdout: str) -> dict[tuple[str, str], str]:
    """`osprey status` rows: (kind, [namespace/]name) -> state."""
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0][0].isupper():
            out[(parts[0], parts[1])] = " ".join(parts[2:])
    return out


def ready_status(obj: dict) -> dict:
    replicas = obj.get("spec", {}).get("replicas", 1)
    return {"observedGeneration": obj["metadata"].get("generation", 1), "replicas": replicas,
            "readyReplicas": replicas, "availableReplicas": replicas,
            "updatedReplicas": replicas}


class Cluster:
    """A FakeKube whose 'controllers' are the test: CRDs get Established, workloads become
    available unless listed in `held` (then they stay at 0 available)."""

    def __init__(self, tmp_path: Path, binary: Path):
        self.kube = FakeKube()
        self.binary = binary
        self.kubeconfig = self.kube.write_kubeconfig(tmp_path / "kubeconfig")
        self.held: set[str] = set()
        self.kube.on_write = self._controllers
        self.tmp = tmp_path

    def _controllers(self, collection: str, obj: dict):
        if collection == CRDS:
            obj["status"] = {"conditions": [
                {"type": "NamesAccepted", "status": "True"},
                {"type": "Established", "status": "True"}]}
        elif collection in (DEPLOYMENTS, STATEFULSETS):
            if obj["metadata"]["name"] in self.held:
                obj["status"] = {"observedGeneration": obj["metadata"].get("generation", 1),
                                 "replicas": 1, "availableReplicas": 0, "readyReplicas": 0}
            else:
                obj["status"] = ready_status(obj)

    def release(self, name: str):
        """The held workload `name` becomes available."""
        with self.kube._lock:
            self.held.discard(name)
            obj = self.kube.find(DEPLOYMENTS, NS, name)
            obj["status"] = ready_status(obj)
            self.kube._record("MODIFIED", DEPLOYMENTS, obj)

    def add_collector_deployment(self):
        """What the operator creates for the OpenTelemetryCollector `osprey`."""
        obj = {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "osprey-collector", "namespace": NS},
               "spec": {"replicas": 1}}
        obj["status"] = ready_status({"metadata": {"generation": 1}, "spec": {"replicas": 1}})
        self.kube.add(DEPLOYMENTS, obj)

    def env(self):
        return dict(os.environ, KUBECONFIG=str(self.kubeconfig), OSPREY_LOG="warn")

    def run(self, *args, timeout=120) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.binary), *args], capture_output=True, text=True,
                              env=self.env(), timeout=timeout)

    def start(self, *args) -> tuple[subprocess.Popen, Path]:
        out = self.tmp / "install.out"
        proc = subprocess.Popen([str(self.binary), *args], stdout=open(out, "w"),
                                stderr=subprocess.STDOUT, env=self.env())
        return proc, out

    def stored(self, obj: dict) -> dict | None:
        collection, cluster = COLLECTIONS[obj["kind"]]
        ns = None if cluster else obj["metadata"]["namespace"]
        return self.kube.find(collection, ns, obj["metadata"]["name"])


@pytest.fixture
def cluster(tmp_path, binary):
    c = Cluster(tmp_path, binary)
    yield c
    c.kube.stop()


def test_install_applies_everything_and_waits(cluster, binary):
    expected = dry_run(binary)
    cluster.held = {"osprey-operator"}
    proc, out = cluster.start("install", "--timeout", "10m")
    try:
        text = lambda: out.read_text()  # noqa: E731
        wait_until(lambda: "waiting  Deployment osprey-system/osprey-operator (0/1 available)"
                   in text() and "osprey-collector (not created yet)" in text(),
                   timeout=120, what="install waiting for the operator and the collector")
        assert proc.poll() is None, text()
        # Everything is applied, with server-side apply by the field manager `osprey`.
        for obj in expected:
            assert cluster.stored(obj) is not None, f"{obj['kind']}/{obj['metadata']['name']}"
            path = object_path(obj)
            applies = [q for m, q in cluster.kube.requests
                       if m == "PATCH" and q.split("?")[0] == path]
            assert applies and "fieldManager=osprey" in applies[0], (path, applies)
        body = next(b for m, p, b in cluster.kube.bodies
                    if m == "PATCH" and p.startswith(object_path(expected[-1])))
        # (The fake stores the body itself, adding its own metadata: compare what was sent.)
        sent = dict(body, metadata={k: v for k, v in body["metadata"].items()
                                    if k in ("name", "namespace", "labels")})
        assert sent == expected[-1]
        # Custom resources are applied only after the CRDs were read back established.
        paths = [p.split("?")[0] for _, p in cluster.kube.requests]
        crd_reads = [i for i, (m, p) in enumerate(cluster.kube.requests)
                     if m == "GET" and p.startswith(CRDS)]
        first_cr = paths.index(object_path(
            next(o for o in expected if o["kind"] == "OpenTelemetryCollector")))
        assert crd_reads and max(crd_reads) < first_cr

        cluster.release("osprey-operator")
        wait_until(lambda: "ready    Deployment osprey-system/osprey-operator" in text(),
                   timeout=60, what="operator ready")
        assert proc.poll() is None, text()
        cluster.add_collector_deployment()
        assert proc.wait(timeout=120) == 0, text()
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.read_text()
    assert "port-forward svc/osprey 9201" in text
    assert "instrumentation.opentelemetry.io/inject-python" in text
    assert "osprey-system/osprey" in text


def test_rejected_object_is_named_and_fails(cluster, binary):
    expected = dry_run(binary)
    sts = next(o for o in expected if o["kind"] == "StatefulSet")
    cluster.kube.reject[object_path(sts)] = (
        422, 'StatefulSet.apps "osprey" is invalid: spec.volumeClaimTemplates: Forbidden')
    res = cluster.run("install", "--timeout", "2m")
    assert res.returncode != 0
    assert "applying StatefulSet osprey-system/osprey failed" in res.stderr, res.stderr
    assert "spec.volumeClaimTemplates: Forbidden" in res.stderr
    assert "HTTP 422" in res.stderr
    # Objects before it were applied, none after it.
    after = expected[expected.index(sts) + 1:]
    assert after and all(cluster.stored(o) is None for o in after)
    assert cluster.stored(expected[expected.index(sts) - 1]) is not None


def test_install_times_out_naming_what_is_not_ready(cluster):
    cluster.held = {"osprey-grafana"}
    res = cluster.run("install", "--timeout", "3s")
    assert res.returncode != 0
    assert "timed out waiting for" in res.stderr, res.stderr
    assert "Deployment osprey-system/osprey-grafana (0/1 available)" in res.stderr


def test_values_file_and_namespace_flag(cluster, binary, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("grafana: {enabled: false}\nstore: {retention: 3d}\n")
    objs = dry_run(binary, "--values", str(values), "--namespace", "tracing")
    assert not [o for o in objs if "grafana" in o["metadata"]["name"]]
    assert objs[0] == {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "tracing", "labels": {"app.kubernetes.io/name": "tracing",
                                      "app.kubernetes.io/component": "namespace",
                                      "app.kubernetes.io/part-of": "osprey"}}}
    sts = next(o for o in objs if o["kind"] == "StatefulSet")
    assert sts["metadata"]["namespace"] == "tracing"
    assert "--retention=3d" in sts["spec"]["template"]["spec"]["containers"][0]["args"]
    values.write_text("store: {storage: {size: huge}}\n")
    res = cluster.run("install", "--dry-run", "--values", str(values))
    assert res.returncode != 0 and "store.storage.size" in res.stderr, res.stderr


def test_status_and_uninstall(cluster, binary):
    expected = dry_run(binary)
    res = cluster.run("status")
    assert res.returncode != 0 and "missing" in res.stdout
    cluster.add_collector_deployment()
    res = cluster.run("install", "--timeout", "2m")
    assert res.returncode == 0, res.stdout + res.stderr

    res = cluster.run("status")
    assert res.returncode == 0, res.stdout + res.stderr
    states = status_lines(res.stdout)
    for obj in expected:
        meta = obj["metadata"]
        key = (obj["kind"], f"{meta['namespace']}/{meta['name']}" if "namespace" in meta
               else meta["name"])
        assert states[key] == ("ready" if obj["kind"] in ("Deployment", "StatefulSet")
                               else "present"), (key, res.stdout)
    assert states[("Deployment", "osprey-system/osprey-collector")] == "ready"

    with cluster.kube._lock:
        op = cluster.kube.find(DEPLOYMENTS, NS, "osprey-operator")
        op["status"]["availableReplicas"] = 0
    res = cluster.run("status")
    assert res.returncode != 0
    states = status_lines(res.stdout)
    assert states[("Deployment", "osprey-system/osprey-operator")] == "not ready: 0/1 available"

    # The store's claim, as the StatefulSet controller would create it.
    cluster.kube.add(PVCS, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                            "metadata": {"name": "data-osprey-0", "namespace": NS,
                                         "labels": {"app.kubernetes.io/part-of": "osprey"}}})
    res = cluster.run("uninstall")
    assert res.returncode == 0, res.stderr
    kept = {"Namespace", "CustomResourceDefinition"}
    for obj in expected:
        assert (cluster.stored(obj) is not None) == (obj["kind"] in kept), obj["metadata"]
    assert cluster.kube.find(PVCS, NS, "data-osprey-0") is not None
    deletes = [p.split("?")[0] for m, p in cluster.kube.requests if m == "DELETE"]
    order = [object_path(o) for o in reversed(expected) if o["kind"] not in kept]
    assert deletes == order
    assert "--purge" in res.stdout

    res = cluster.run("uninstall", "--purge")
    assert res.returncode == 0, res.stderr
    assert all(cluster.stored(obj) is None for obj in expected)
    assert cluster.kube.find(PVCS, NS, "data-osprey-0") is None
    assert "absent   Deployment osprey-system/osprey-operator" in res.stdout
