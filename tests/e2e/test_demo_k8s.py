"""The demo's Kubernetes manifests (demo/k8s, for `kubectl apply -k demo/k8s`): they render with
the real `kubectl kustomize`, every object validates against the Kubernetes OpenAPI schemas
(`kubernetes-validate`, strict: unknown fields are errors) or, for the Instrumentation, against
the CRD schema `osprey operator crds` serves; the pods ask for auto-instrumentation, run as
non-root with resources set, and the operator's webhook code (`osprey inject`) really
instruments every Deployment's pod.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "demo" / "k8s"
NS = "osprey-demo"
KUBE_VERSION = "1.33.0"  # the API version k8s-openapi is built for (Cargo.toml: v1_33)
PYTHON = ("generator", "upper", "lower", "digit", "load")
NODE = ("special",)
SERVERS = ("generator", "upper", "lower", "digit", "special")


def kubectl() -> str:
    path = shutil.which("kubectl") or "/usr/bin/kubectl"
    if not Path(path).is_file():
        pytest.fail("kubectl not found (it renders the kustomization)", pytrace=False)
    return path


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    done = subprocess.run([kubectl(), "kustomize", str(K8S)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def by_kind(objs, kind) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


@pytest.fixture(scope="module")
def crd_schemas(binary) -> dict[str, dict]:
    done = subprocess.run([str(binary), "operator", "crds"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    out = {}
    for crd in yaml.safe_load_all(done.stdout):
        if not crd:
            continue
        for v in crd["spec"]["versions"]:
            out[f"{crd['spec']['group']}/{v['name']}/{crd['spec']['names']['kind']}"] = \
                v["schema"]["openAPIV3Schema"]
    return out


def test_renders_the_whole_demo(rendered):
    kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in rendered)
    assert kinds == sorted(
        ["Namespace/osprey-demo", "Instrumentation/osprey-demo"]
        + [f"Deployment/{s}" for s in PYTHON + NODE]
        + [f"Service/{s}" for s in SERVERS])
    for o in rendered:
        if o["kind"] != "Namespace":
            assert o["metadata"].get("namespace") == NS, o["metadata"]


def test_every_object_validates(rendered, crd_schemas):
    for o in rendered:
        group_version = o["apiVersion"]
        if group_version.startswith("opentelemetry.io/"):
            schema = crd_schemas[f"{group_version}/{o['kind']}"]
            jsonschema.validate(o, schema)
        else:
            kubernetes_validate.validate(o, KUBE_VERSION, strict=True)


def test_validation_catches_a_bad_object(rendered, crd_schemas):
    """The validators above do reject: a misspelt field and a wrong type."""
    dep = yaml.safe_load(yaml.safe_dump(by_kind(rendered, "Deployment")["upper"]))
    dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, KUBE_VERSION, strict=True)
    inst = yaml.safe_load(yaml.safe_dump(by_kind(rendered, "Instrumentation")[NS]))
    inst["spec"]["propagators"] = "tracecontext"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(inst, crd_schemas["opentelemetry.io/v1alpha1/Instrumentation"])


def test_pods_ask_for_auto_instrumentation(rendered):
    for name, dep in by_kind(rendered, "Deployment").items():
        ann = dep["spec"]["template"]["metadata"].get("annotations") or {}
        lang = "nodejs" if name in NODE else "python"
        assert ann.get(f"instrumentation.opentelemetry.io/inject-{lang}") == "true", (name, ann)
    inst = by_kind(rendered, "Instrumentation")[NS]
    endpoint = urlparse(inst["spec"]["exporter"]["endpoint"])
    # the default collector `osprey install` creates, OTLP/HTTP
    assert (endpoint.hostname, endpoint.port) == ("osprey-collector.osprey-system.svc", 4318)


def test_containers_have_resources_and_run_as_non_root(rendered):
    for name, dep in by_kind(rendered, "Deployment").items():
        pod = dep["spec"]["template"]["spec"]
        pod_sc = pod.get("securityContext") or {}
        for c in pod["containers"]:
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(res.get(part) or {}), (name, part, res)
            sc = c.get("securityContext") or {}
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, name
            assert sc.get("runAsUser", pod_sc.get("runAsUser", 0)) != 0, name
            assert sc.get("allowPrivilegeEscalation") is False, name
            assert "ALL" in (sc.get("capabilities") or {}).get("drop", []), name
            assert c["image"].startswith(f"osprey-demo/{name}:"), c["image"]


def test_services_match_their_deployments(rendered):
    deps = by_kind(rendered, "Deployment")
    for name, svc in by_kind(rendered, "Service").items():
        labels = deps[name]["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= labels.items(), name
        ports = {p["name"] for c in deps[name]["spec"]["template"]["spec"]["containers"]
                 for p in c.get("ports") or []}
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in ports, (name, p)
    # the peers the apps are told about are Services of the demo
    for dep in deps.values():
        for c in dep["spec"]["template"]["spec"]["containers"]:
            for var in c.get("env") or []:
                if var["name"].endswith("_URL"):
                    url = urlparse(var["value"])
                    assert url.hostname in by_kind(rendered, "Service"), var
                    assert url.port == 8080, var


def test_the_webhook_instruments_every_deployment(rendered, binary, tmp_path):
    """Each Deployment's pod, as the ReplicaSet would create it, through `osprey inject` (the
    webhook's code) with the demo's Instrumentation and Namespace."""
    inst_file = tmp_path / "inst.yaml"
    inst_file.write_text(yaml.safe_dump(by_kind(rendered, "Instrumentation")[NS]))
    ns_file = tmp_path / "ns.yaml"
    ns_file.write_text(yaml.safe_dump(by_kind(rendered, "Namespace")[NS]))
    for name, dep in by_kind(rendered, "Deployment").items():
        template = dep["spec"]["template"]
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {**template["metadata"], "generateName": f"{name}-abc-",
                            "namespace": NS},
               "spec": template["spec"]}
        pod_file = tmp_path / f"{name}.yaml"
        pod_file.write_text(yaml.safe_dump(pod))
        done = subprocess.run(
            [str(binary), "inject", "--pod", str(pod_file), "--instrumentation", str(inst_file),
             "--namespace", str(ns_file), "--owner", f"ReplicaSet/{name}-abc",
             "--owner", f"Deployment/{name}"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        mutated = yaml.safe_load(done.stdout)
        lang = "nodejs" if name in NODE else "python"
        inits = [c["name"] for c in mutated["spec"].get("initContainers") or []]
        assert inits == [f"opentelemetry-auto-instrumentation-{lang}"], (name, done.stderr)
        env = {e["name"]: e.get("value") for e in mutated["spec"]["containers"][0]["env"]}
        assert env["OTEL_SERVICE_NAME"] == name
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == \
            "http://osprey-collector.osprey-system.svc:4318"
        # the mutated pod is still a valid Pod
        kubernetes_validate.validate(mutated, KUBE_VERSION, strict=True)
