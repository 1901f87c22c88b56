"""`osprey operator` end to end: the real binary against the fake Kubernetes API server
(fake_kube.py, through a kubeconfig). It must create its webhook certificate Secret and publish
the CA in the MutatingWebhookConfiguration, reconcile the seed's OpenTelemetryCollector into the
objects upstream's operator creates, keep the last good objects when the config turns invalid
(reporting it on the CR status), and answer AdmissionReview v1 over HTTPS with a JSONPatch that
instruments an annotated pod.
"""
from __future__ import annotations

import base64
import http.client
import json
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import ChildProcess, free_port, wait_until
from fake_kube import FakeKube, json_patch

FIXTURES = Path(__file__).parent / "fixtures"
CRS = "/apis/opentelemetry.io/v1alpha1/opentelemetrycollectors"
INSTS = "/apis/opentelemetry.io/v1alpha1/instrumentations"
MWC = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


class Operator(ChildProcess):
    name = "operator"

    def __init__(self, binary: Path, workdir: Path, kubeconfig: Path, port: int):
        self.binary, self.workdir, self.port = binary, workdir, port
        workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = kubeconfig
        self.log_path = workdir / "operator.log"
        self.proc = None

    def command(self):
        return [str(self.binary), "operator", "--namespace", "osprey-system",
                "--webhook-addr", f"127.0.0.1:{self.port}"]

    def start(self):
        import os
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), RUST_LOG="info")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.command(), stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env)
        return self


@pytest.fixture
def cluster(tmp_path, binary, request):
    kube = FakeKube()
    seed = yaml.safe_load((FIXTURES / "collector-fixed.yaml").read_text())
    kube.add(CRS, seed)
    kube.add(INSTS, {
        "apiVersion": "opentelemetry.io/v1alpha1", "kind": "Instrumentation",
        "metadata": {"name": "tobs-auto-instrumentation", "namespace": "default"},
        "spec": {"exporter": {"endpoint": "http://tobs-opentelemetry-collector.default.svc:4318"},
                 "propagators": ["tracecontext", "baggage", "b3"],
                 "sampler": {"type": "parentbased_traceidratio", "argument": "0.25"}},
    })
    kube.add("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": "default"}})
    kube.add(MWC, {"apiVersion": "admissionregistration.k8s.io/v1",
                   "kind": "MutatingWebhookConfiguration",
                   "metadata": {"name": "osprey-operator-mutation"},
                   "webhooks": [{"name": "mpod.osprey.dev", "admissionReviewVersions": ["v1"],
                                 "sideEffects": "None", "failurePolicy": "Ignore",
                                 "clientConfig": {"service": {
                                     "name": "osprey-operator-webhook",
                                     "namespace": "osprey-system",
                                     "path": "/mutate-v1-pod"}}}]})
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    op = Operator(binary, tmp_path / "operator", kubeconfig, free_port())
    request.node._osprey_servers = [op]
    op.start()
    yield kube, op
    op.kill9()
    kube.stop()


def find(kube: FakeKube, collection: str, name: str, namespace="default"):
    return kube.find(collection, namespace, name)


def admission(op: Operator, ca_pem: str, pod: dict, tmp_path: Path) -> dict:
    ca = tmp_path / "ca.crt"
    ca.write_text(ca_pem)
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False  # issued for the Service's DNS names, reached on 127.0.0.1
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
              "request": {"uid": "0b3f5e2a-1111-4c1e-9a57-3f6f3a0c9d01",
                          "kind": {"group": "", "version": "v1", "kind": "Pod"},
                          "resource": {"group": "", "version": "v1", "resource": "pods"},
                          "namespace": "default", "operation": "CREATE",
                          "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                          "object": pod, "dryRun": False}}
    conn = http.client.HTTPSConnection("127.0.0.1", op.port, context=ctx, timeout=30)
    conn.request("POST", "/mutate-v1-pod", body=json.dumps(review),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 200, body
    return json.loads(body)["response"]


def test_operator_certificates_reconcile_and_webhook(cluster, tmp_path):
    kube, op = cluster

    # Certificates: a Secret in the operator's namespace, its CA published as caBundle.
    secret = wait_until(lambda: find(kube, "/api/v1/secrets", "osprey-operator-webhook-cert",
                                     "osprey-system"), timeout=60, what="the certificate Secret")
    ca_pem = base64.b64decode(secret["data"]["ca.crt"]).decode()
    assert "BEGIN CERTIFICATE" in ca_pem
    mwc = wait_until(lambda: (w := find(kube, MWC, "osprey-operator-mutation", None))
                     and w["webhooks"][0]["clientConfig"].get("caBundle") and w,
                     timeout=60, what="caBundle patched")
    assert base64.b64decode(mwc["webhooks"][0]["clientConfig"]["caBundle"]).decode() == ca_pem

    # Reconcile: upstream's names, Osprey running the collector.
    deploy = wait_until(lambda: find(kube, "/apis/apps/v1/deployments",
                                     "tobs-tobs-opentelemetry-collector"),
                        timeout=60, what="the collector Deployment")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "otc-container"
    assert "collector" in container["args"], container
    svc = wait_until(lambda: find(kube, "/api/v1/services", "tobs-tobs-opentelemetry-collector"),
                     timeout=30, what="the collector Service")
    ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    assert ports["otlp-grpc"] == 4317 and ports["otlp-http"] == 4318, ports
    assert ports["jaeger-grpc"] == 14250 and ports["port-14268"] == 14268, ports
    assert find(kube, "/api/v1/services", "tobs-tobs-opentelemetry-collector-headless")
    cm_name = deploy["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
    assert cm_name.startswith("tobs-tobs-opentelemetry-collector-")
    assert find(kube, "/api/v1/configmaps", cm_name)
    old_hash = deploy["spec"]["template"]["metadata"]["annotations"][
        "opentelemetry-operator-config/sha256"]

    # An invalid config: the Deployment keeps the last good config, the CR says why.
    cr = find(kube, CRS, "tobs-tobs-opentelemetry")
    with kube._lock:
        cr["spec"]["config"] = cr["spec"]["config"].replace("batch:", "batchx:", 1)
        cr["metadata"]["generation"] = 2
        kube._record("MODIFIED", CRS, cr)
    # The valid seed config already has warnings in status.messages (`batch:` with no value),
    # so wait for the message that names the bad key.
    def status_messages():
        status = find(kube, CRS, "tobs-tobs-opentelemetry").get("status") or {}
        return " ".join(status.get("messages") or [])
    msg = wait_until(lambda: "batchx" in status_messages() and status_messages(),
                     timeout=60, what="the invalid config on the CR status")
    assert 'unknown processor type "batchx"' in msg, msg
    deploy = find(kube, "/apis/apps/v1/deployments", "tobs-tobs-opentelemetry-collector")
    assert deploy["spec"]["template"]["metadata"]["annotations"][
        "opentelemetry-operator-config/sha256"] == old_hash

    # The webhook, over HTTPS with the operator's own CA.
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web-1", "namespace": "default",
                        "annotations": {"instrumentation.opentelemetry.io/inject-python": "true"}},
           "spec": {"containers": [{"name": "web", "image": "example/web:1.2"}]}}
    resp = wait_until(lambda: (r := admission(op, ca_pem, pod, tmp_path)).get("patch") and r,
                      timeout=60, what="a patch from the webhook")
    assert resp["allowed"] is True and resp["uid"] == "0b3f5e2a-1111-4c1e-9a57-3f6f3a0c9d01"
    assert resp["patchType"] == "JSONPatch"
    mutated = json_patch(pod, json.loads(base64.b64decode(resp["patch"])))
    inits = [c["name"] for c in mutated["spec"]["initContainers"]]
    assert inits == ["opentelemetry-auto-instrumentation-python"], inits
    env = {e["name"]: e.get("value") for e in mutated["spec"]["containers"][0]["env"]}
    assert env["PYTHONPATH"].startswith("/otel-auto-instrumentation-python/")
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://tobs-opentelemetry-collector.default.svc:4318"
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.25"

    # A pod without annotations is admitted untouched.
    plain = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
             "spec": {"containers": [{"name": "c", "image": "x"}]}}
    resp = admission(op, ca_pem, plain, tmp_path)
    assert resp["allowed"] is True and not resp.get("patch")
