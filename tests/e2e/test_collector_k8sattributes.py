"""`osprey collector` with the `k8sattributes` processor, end to end: the real binary lists and
watches pods from a fake Kubernetes API server (fake_kube.py, reached through a kubeconfig with
`auth_type: kubeConfig`), real OTLP/gRPC clients send spans, and the spans stored in `osprey up`
carry the pod's metadata.

Expectations (processor/k8sattributesprocessor README, read, not copied): without
`pod_association` a resource is matched to a pod by the connection's IP address (the pod's
`status.podIP`); a `pod_association` rule `from: resource_attribute, name: k8s.pod.uid` matches
by that attribute first; the default extracted metadata includes k8s.namespace.name,
k8s.pod.name, k8s.pod.uid, k8s.deployment.name (the ReplicaSet name minus the
pod-template-hash) and k8s.node.name; `extract.labels` copies a pod label to `tag_name`.
"""
from __future__ import annotations

import time

import pytest

from conftest import free_port
from fake_kube import FakeKube
from test_collector_processing import (
    SERVER, base_ns, export, grpc_receiver, mk_request, mk_span, span_id, to_osprey, trace_id,
    wait_for_spans,
)

PODS = "/api/v1/pods"


def pod(name: str, uid: str, ip: str, *, team: str, rs: str | None = None, node="node-a") -> dict:
    meta = {"name": name, "namespace": "shop", "uid": uid,
            "creationTimestamp": "2026-11-20T10:00:00Z", "labels": {"team": team}}
    if rs:
        pod_hash = rs.rsplit("-", 1)[1]
        meta["labels"]["pod-template-hash"] = pod_hash
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                                    "uid": f"rs-{uid}", "controller": True}]
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"nodeName": node,
                 "containers": [{"name": "app", "image": "ghcr.io/acme/shop:1.4.2"}]},
        "status": {"phase": "Running", "podIP": ip, "startTime": "2026-11-20T10:00:05Z"},
    }


@pytest.fixture
def kube(tmp_path, monkeypatch):
    fake = FakeKube()
    monkeypatch.setenv("KUBECONFIG", str(fake.write_kubeconfig(tmp_path / "kubeconfig")))
    yield fake
    fake.stop()


def collector_config(in_port: int, server, association=None) -> dict:
    k8s = {
        "auth_type": "kubeConfig",
        "wait_for_metadata": True,
        "extract": {
            "metadata": ["k8s.namespace.name", "k8s.pod.name", "k8s.pod.uid",
                         "k8s.deployment.name", "k8s.node.name"],
            "labels": [{"tag_name": "team", "key": "team", "from": "pod"}],
        },
    }
    if association:
        k8s["pod_association"] = association
    return {
        "receivers": grpc_receiver(in_port),
        "processors": {"k8sattributes": k8s},
        "exporters": {"otlp": to_osprey(server)},
        "service": {"pipelines": {"traces": {"receivers": ["otlp"],
                                             "processors": ["k8sattributes"],
                                             "exporters": ["otlp"]}}},
    }


def send_one(port: int, test_no: int, i: int, resource: dict) -> str:
    sid = span_id(i, 1)
    export(f"127.0.0.1:{port}", mk_request([(resource, [
        mk_span(trace_id(test_no, i), sid, f"GET /item/{i}", base_ns(), 0, 5, kind=SERVER)])]))
    return sid.hex()


def test_pod_found_by_connection_ip_gets_its_metadata(kube, server, make_collector):
    kube.add(PODS, pod("checkout-5d8f7c9b6-x2x7q", "uid-checkout", "127.0.0.1",
                       team="payments", rs="checkout-5d8f7c9b6"))
    kube.add(PODS, pod("other-pod", "uid-other", "10.1.2.3", team="other"))
    port = free_port()
    make_collector(collector_config(port, server))
    sid = send_one(port, 901, 1, {"service.name": "checkout"})
    rows = wait_for_spans(server, {sid: "GET /item/1"}, "the enriched span")
    res = rows[sid]["resource_attributes"]
    assert res["k8s.pod.name"] == "checkout-5d8f7c9b6-x2x7q", res
    assert res["k8s.pod.uid"] == "uid-checkout"
    assert res["k8s.namespace.name"] == "shop"
    assert res["k8s.deployment.name"] == "checkout"
    assert res["k8s.node.name"] == "node-a"
    assert res["team"] == "payments"
    assert res["service.name"] == "checkout", "existing attributes are kept"
    assert any(p.startswith(PODS) for _, p in kube.requests), kube.requests


def test_resource_attribute_association_wins_and_watch_sees_new_pods(kube, server,
                                                                      make_collector):
    kube.add(PODS, pod("gateway-7c6b9-abcde", "uid-gateway", "127.0.0.1",
                       team="edge", rs="gateway-7c6b9"))
    port = free_port()
    association = [
        {"sources": [{"from": "resource_attribute", "name": "k8s.pod.uid"}]},
        {"sources": [{"from": "connection"}]},
    ]
    make_collector(collector_config(port, server, association))

    by_ip = send_one(port, 902, 1, {"service.name": "gateway"})
    # A pod created after the collector started arrives through the watch.
    kube.add(PODS, pod("worker-0", "uid-worker", "10.9.9.9", team="batch"))
    deadline = time.monotonic() + 60
    sids = {by_ip: "GET /item/1"}
    i = 2
    while True:
        sid = send_one(port, 902, i, {"service.name": "worker", "k8s.pod.uid": "uid-worker"})
        sids[sid] = f"GET /item/{i}"
        rows = wait_for_spans(server, sids, "spans by uid")
        if rows[sid]["resource_attributes"].get("k8s.pod.name") == "worker-0":
            break
        assert time.monotonic() < deadline, (
            f"the pod added later never enriched spans: {rows[sid]['resource_attributes']}")
        i += 1
        time.sleep(0.5)

    assert rows[by_ip]["resource_attributes"]["k8s.pod.name"] == "gateway-7c6b9-abcde"
    worker = rows[sid]["resource_attributes"]
    assert worker["team"] == "batch", "matched by uid, not by the connection (gateway's IP)"
    assert "k8s.deployment.name" not in worker, "a bare pod has no deployment"
