"""Auto-instrumentation end to end, without a cluster: the demo's uninstrumented services run in
pods mutated by `osprey inject` (the webhook's code), each pod run by the simulator
(podsim.py: init container copy of the real payload, env with fieldRefs and `$(VAR)`s, the
app's command), their spans sent to an `osprey collector` (otlp → batch → otlp) and stored by
`osprey up`, then checked with SQL.

The payloads (the real PyPI / npm auto-instrumentation packages, laid out like upstream's
autoinstrumentation images) and the demo's venv come from scripts/build-autoinstrumentation.sh,
which scripts/install-test-deps.sh runs. The simulator's own rules (env expansion, mount
rewriting, init copy) are tested at the end.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import yaml

from conftest import free_port, wait_until
from podsim import (Image, PodSim, PodSimError, container_env, expand, rewrite_mounts,
                    schedule)

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo"
PAYLOADS = Path(os.environ.get("OSPREY_AUTOINSTRUMENTATION_DIR")
                or Path.home() / ".cache" / "osprey-autoinstrumentation")
DEMO_VENV = Path(os.environ.get("OSPREY_DEMO_VENV") or Path.home() / ".cache" / "osprey-demo-venv")

NS = "shop"
PY_IMAGE = "osprey.test/autoinstrumentation-python:podsim"
NODE_IMAGE = "osprey.test/autoinstrumentation-nodejs:podsim"
VERSION = "0.1.0"
PYTHON_SERVICES = ("generator", "upper", "lower", "digit", "load")
NODE_SERVICES = ("special",)


def rs_hash(service: str) -> str:
    """A pod-template-hash (Kubernetes' alphabet) standing for the ReplicaSet's."""
    digest = hashlib.sha256(service.encode()).digest()
    return "".join("bcdfghjklmnpqrstvwxz2456789"[b % 27] for b in digest[:10])


def images() -> dict[str, Image]:
    """The local stand-ins of every image the pods name."""
    for need in (PAYLOADS / "python" / "autoinstrumentation", PAYLOADS / "nodejs" /
                 "autoinstrumentation" / "node_modules", DEMO_VENV / "bin" / "python"):
        if not need.exists():
            pytest.fail(f"{need} is missing: run scripts/build-autoinstrumentation.sh "
                        f"(scripts/install-test-deps.sh does)", pytrace=False)
    out = {PY_IMAGE: Image(PAYLOADS / "python"), NODE_IMAGE: Image(PAYLOADS / "nodejs")}
    for svc in PYTHON_SERVICES:
        out[f"osprey-demo/{svc}:{VERSION}"] = Image(
            DEMO / svc, env={"LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"},
            path=(str(DEMO_VENV / "bin"),), cmd=("python", "app.py"))
    for svc in NODE_SERVICES:
        out[f"osprey-demo/{svc}:{VERSION}"] = Image(DEMO / svc, cmd=("node", "server.js"))
    return out


# ------------------------------------------------------------------ manifests

def demo_pod(service: str, port: int | None, env: dict[str, str]) -> dict:
    """The pod a Deployment `service` of the demo would create (name not yet generated)."""
    lang = "nodejs" if service in NODE_SERVICES else "python"
    h = rs_hash(service)
    container = {"name": service, "image": f"osprey-demo/{service}:{VERSION}",
                 "env": [{"name": k, "value": v} for k, v in env.items()]}
    if port is not None:
        container["env"] = [{"name": "HOST", "value": "127.0.0.1"},
                            {"name": "PORT", "value": str(port)}, *container["env"]]
        container["ports"] = [{"name": "http", "containerPort": port}]
        container["readinessProbe"] = {"httpGet": {"path": "/healthz", "port": "http"}}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "generateName": f"{service}-{h}-", "namespace": NS,
            "labels": {"app": service, "pod-template-hash": h},
            "annotations": {f"instrumentation.opentelemetry.io/inject-{lang}": "true"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{service}-{h}",
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{service}-{h}")),
                "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 5},
    }


def instrumentation(collector_http_port: int) -> dict:
    return {
        "apiVersion": "opentelemetry.io/v1alpha1", "kind": "Instrumentation",
        "metadata": {"name": "podsim", "namespace": NS},
        "spec": {
            "exporter": {"endpoint": f"http://127.0.0.1:{collector_http_port}"},
            "propagators": ["tracecontext", "baggage", "b3"],
            "sampler": {"type": "parentbased_always_on"},
            # export within a fraction of a second (the SDKs' default is every 5 s)
            "env": [{"name": "OTEL_BSP_SCHEDULE_DELAY", "value": "200"}],
            "python": {"image": PY_IMAGE},
            "nodejs": {"image": NODE_IMAGE},
        },
    }


def inject(binary: Path, workdir: Path, pod: dict, inst: dict, deployment: str) -> dict:
    """The pod as `osprey inject` mutates it (the webhook's code, offline)."""
    workdir.mkdir(parents=True, exist_ok=True)
    files = {"pod": pod, "instrumentation": inst,
             "namespace": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}}
    for name, obj in files.items():
        (workdir / f"{name}.yaml").write_text(yaml.safe_dump(obj, sort_keys=False))
    args = [str(binary), "inject", "--pod", str(workdir / "pod.yaml"),
            "--instrumentation", str(workdir / "instrumentation.yaml"),
            "--namespace", str(workdir / "namespace.yaml"),
            # the owner chain, nearest first: what the webhook GETs from the API server
            "--owner", f"ReplicaSet/{pod['metadata']['ownerReferences'][0]['name']}",
            "--owner", f"Deployment/{deployment}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(args)} → {done.returncode}:\n{done.stderr}"
    (workdir / "mutated.yaml").write_text(done.stdout)
    (workdir / "inject.stderr").write_text(done.stderr)
    mutated = yaml.safe_load(done.stdout)
    assert mutated["kind"] == "Pod", done.stdout[:2000]
    lang = "nodejs" if deployment in NODE_SERVICES else "python"
    inits = [c["name"] for c in mutated["spec"].get("initContainers") or []]
    assert f"opentelemetry-auto-instrumentation-{lang}" in inits, \
        f"{deployment}: nothing injected; osprey inject said:\n{done.stderr}"
    return mutated


# ------------------------------------------------------------------ fixtures

@pytest.fixture
def stack(make_server, make_collector, tmp_path):
    """`osprey up` behind an `osprey collector` whose OTLP/HTTP port the Instrumentation names;
    the apps' metrics and logs go to files (the SDKs export them too)."""
    server = make_server()
    http_port = free_port()
    make_collector({
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{http_port}"}}}},
        "processors": {"batch": {"timeout": "200ms"}},
        "exporters": {"otlp": {"endpoint": server.grpc, "tls": {"insecure": True}},
                      "file/metrics": {"path": str(tmp_path / "metrics.json")},
                      "file/logs": {"path": str(tmp_path / "logs.json")}},
        "service": {"pipelines": {
            "traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["otlp"]},
            "metrics": {"receivers": ["otlp"], "processors": ["batch"],
                        "exporters": ["file/metrics"]},
            "logs": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["file/logs"]},
        }},
    })
    return server, instrumentation(http_port)


@pytest.fixture
def run_pod(binary, tmp_path, request):
    """`run_pod(service, port, env, inst)`: injects, simulates and waits for the demo pod of
    `service`; every pod is deleted at teardown (its volumes too), and its log attached to a
    failing report."""
    pods: list[PodSim] = []
    imgs = images()

    def run(service: str, port: int | None, env: dict[str, str], inst: dict) -> PodSim:
        work = tmp_path / f"pod-{service}"
        mutated = inject(binary, work / "manifests", demo_pod(service, port, env), inst, service)
        sim = PodSim(mutated, imgs, work)
        pods.append(sim)
        sim.start()
        vars(request.node).setdefault("_osprey_servers", []).extend(sim.containers)
        return sim.wait_ready()

    yield run
    with ThreadPoolExecutor(max(len(pods), 1)) as pool:
        list(pool.map(PodSim.delete, pods))


class Peer(BaseHTTPRequestHandler):
    """A stand-in for the character services: answers /chars, records the request headers."""
    seen: list[dict[str, str]] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        Peer.seen.append({k.lower(): v for k, v in self.headers.items()})
        count = int(self.path.partition("count=")[2] or 1)
        body = json.dumps({"chars": ["x"] * count}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def peer():
    Peer.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Peer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


# ------------------------------------------------------------------ helpers

def spans_of(server, where: str) -> list[dict]:
    return server.rows("select trace_id, span_id, parent_span_id, service_name, span_name, "
                       "span_kind, span_attributes, resource_attributes, scope_name "
                       f"from spans where {where}")


def wait_spans(server, where: str, ok, what: str, timeout=45.0) -> list[dict]:
    return wait_until(lambda: (lambda rows: rows if ok(rows) else None)(spans_of(server, where)),
                      timeout=timeout, what=what)


def assert_k8s_resource(row: dict, sim: PodSim, service: str, language: str):
    res = row["resource_attributes"]
    pod_name = sim.pod["metadata"]["name"]
    want = {"service.name": service, "k8s.pod.name": pod_name, "k8s.namespace.name": NS,
            "k8s.node.name": sim.pod["spec"]["nodeName"], "k8s.deployment.name": service,
            "k8s.replicaset.name": f"{service}-{rs_hash(service)}",
            "k8s.container.name": service,
            "service.instance.id": f"{NS}.{pod_name}.{service}",
            "telemetry.sdk.language": language}
    got = {k: res.get(k) for k in want}
    assert got == want, f"resource of {row['span_name']!r}: {json.dumps(res, indent=1)}"
    assert row["service_name"] == service


# ------------------------------------------------------------------ tests

def test_python_flask_and_requests_are_traced_with_k8s_resource(stack, run_pod, peer):
    server, inst = stack
    port = free_port()
    peers = {f"{c.upper()}_URL": peer for c in ("upper", "lower", "digit", "special")}
    sim = run_pod("generator", port, peers, inst)
    env = sim.container().env
    volume = sim.volumes["opentelemetry-auto-instrumentation-python"]
    assert env["PYTHONPATH"].startswith(str(volume))
    assert (volume / "opentelemetry/instrumentation/auto_instrumentation" / "sitecustomize.py"
            ).is_file()

    for length in (6, 9, 12):
        r = requests.get(f"http://127.0.0.1:{port}/password", params={"length": length}, timeout=30)
        assert r.status_code == 200, r.text
        assert len(r.json()["password"]) == length

    def password_spans(rows):
        return [r for r in rows if r["span_kind"] == "SPAN_KIND_SERVER"
                and r["span_attributes"].get("http.route") == "/password"]

    rows = wait_spans(server, "service_name = 'generator'",
                      lambda rows: len(password_spans(rows)) >= 3
                      and sum(r["span_kind"] == "SPAN_KIND_CLIENT" for r in rows) >= 12,
                      "3 server spans of /password and 12 client spans of the generator")
    for row in rows:
        assert_k8s_resource(row, sim, "generator", "python")
    # the readiness probe's GET /healthz is traced too, like in a cluster
    assert {r["span_kind"] for r in rows} == {"SPAN_KIND_SERVER", "SPAN_KIND_CLIENT"}
    servers = password_spans(rows)
    clients = [r for r in rows if r["span_kind"] == "SPAN_KIND_CLIENT"]
    assert len(servers) == 3 and len(clients) == 12, \
        [(r["span_name"], r["span_kind"]) for r in rows]
    assert {r["scope_name"] for r in servers} == {"opentelemetry.instrumentation.flask"}
    assert {r["span_name"] for r in servers} == {"GET /password"}
    assert {r["scope_name"] for r in clients} == {"opentelemetry.instrumentation.requests"}
    # each outgoing call is a child of its request's server span ...
    by_id = {r["span_id"]: r for r in servers}
    assert all(by_id[c["parent_span_id"]]["trace_id"] == c["trace_id"] for c in clients)
    # ... and carries the context on the wire, in every propagator the Instrumentation names
    traceparents = {h["traceparent"].split("-")[2] for h in Peer.seen}
    assert traceparents == {c["span_id"] for c in clients}
    assert all("b3" in h for h in Peer.seen), Peer.seen[0]


def test_nodejs_http_server_is_traced_with_k8s_resource(stack, run_pod):
    server, inst = stack
    port = free_port()
    sim = run_pod("special", port, {}, inst)
    assert sim.container().env["NODE_OPTIONS"].strip() == (
        f"--require {sim.volumes['opentelemetry-auto-instrumentation-nodejs']}"
        "/autoinstrumentation.js")

    trace_id, parent = os.urandom(16).hex(), os.urandom(8).hex()
    r = requests.get(f"http://127.0.0.1:{port}/chars", params={"count": 5}, timeout=30,
                     headers={"traceparent": f"00-{trace_id}-{parent}-01"})
    assert r.status_code == 200 and len(r.json()["chars"]) == 5, r.text
    for _ in range(2):
        assert requests.get(f"http://127.0.0.1:{port}/chars", timeout=30).status_code == 200

    rows = wait_spans(server, "service_name = 'special' and span_kind = 'SPAN_KIND_SERVER'",
                      lambda rows: len(rows) >= 3, "3 server spans of the Node.js service")
    for row in rows:
        assert_k8s_resource(row, sim, "special", "nodejs")
        assert row["scope_name"] == "@opentelemetry/instrumentation-http"
        assert row["span_attributes"].get("http.method", row["span_attributes"].get(
            "http.request.method")) == "GET", row["span_attributes"]
    continued = [r for r in rows if r["trace_id"] == trace_id]
    assert len(continued) == 1 and continued[0]["parent_span_id"] == parent, rows


def test_demo_load_generator_and_char_services_make_connected_traces(stack, run_pod):
    """The whole demo, every pod instrumented (5 Python, 1 Node.js): `load` calls the
    generator 3 times, each call fans out to the 4 character services; each of the 3 traces
    spans the 6 services with every parent present (10 spans: load's client span, the
    generator's server span and 4 client spans, one server span per character service)."""
    server, inst = stack
    ports = {svc: free_port() for svc in ("upper", "lower", "digit", "special", "generator")}
    url = {svc: f"http://127.0.0.1:{port}" for svc, port in ports.items()}
    chars = ("upper", "lower", "digit", "special")
    with ThreadPoolExecutor(len(chars)) as pool:  # their init copies overlap
        sims = dict(zip(chars, pool.map(lambda svc: run_pod(svc, ports[svc], {}, inst), chars)))
    sims["generator"] = run_pod("generator", ports["generator"],
                                {f"{c.upper()}_URL": url[c] for c in chars}, inst)
    sims["load"] = run_pod("load", None, {"GENERATOR_URL": url["generator"], "COUNT": "3",
                                          "INTERVAL": "0.1"}, inst)
    load = sims["load"].container()
    assert load.proc.wait(timeout=60) == 0, load.log_tail()
    assert "load: 3 of 3 passwords generated" in load.log_path.read_text(), load.log_tail()

    services = set(sims)

    def complete(rows):
        traces: dict[str, list[dict]] = {}
        for r in rows:
            traces.setdefault(r["trace_id"], []).append(r)
        done = [t for t in traces.values()
                if {r["service_name"] for r in t} == services and len(t) >= 10
                and {r["parent_span_id"] for r in t} - {None} <= {r["span_id"] for r in t}]
        return traces if len(traces) == 3 and len(done) == 3 else None

    rows = wait_spans(server, "trace_id in (select trace_id from spans where "
                      "service_name = 'load')", complete,
                      "3 complete traces from load through generator to the 4 character services")
    traces = complete(rows)
    for spans in traces.values():
        roots = [r for r in spans if r["parent_span_id"] is None]
        assert [(r["service_name"], r["span_kind"]) for r in roots] == \
            [("load", "SPAN_KIND_CLIENT")], roots
        kinds = sorted((r["service_name"], r["span_kind"]) for r in spans)
        assert kinds == sorted([("load", "SPAN_KIND_CLIENT"), ("generator", "SPAN_KIND_SERVER"),
                                *[("generator", "SPAN_KIND_CLIENT")] * 4,
                                *[(c, "SPAN_KIND_SERVER") for c in
                                  ("upper", "lower", "digit", "special")]]), kinds
        for r in spans:
            res = r["resource_attributes"]
            svc = r["service_name"]
            assert res.get("k8s.deployment.name") == svc, res
            assert res.get("k8s.pod.name") == sims[svc].pod["metadata"]["name"], res
            assert res.get("k8s.namespace.name") == NS, res


# ------------------------------------------------------------------ the simulator itself

def test_podsim_expands_env_like_the_kubelet():
    assert expand("a$(X)b", {"X": "1"}) == "a1b"
    assert expand("$(Y)", {"X": "1"}) == "$(Y)"           # unknown: kept as written
    assert expand("$$(X) $$ $x $(X", {"X": "1"}) == "$(X) $ $x $(X"
    assert expand("$(X)$(X)$", {"X": "$(X)"}) == "$(X)$(X)$"  # no recursion
    pod = schedule({"metadata": {"generateName": "web-abc-", "namespace": "ns",
                                 "labels": {"app": "web"}}}, node_name="n1", pod_ip="127.0.0.9")
    assert pod["metadata"]["name"].startswith("web-abc-") and len(pod["metadata"]["name"]) == 13
    field = lambda p: {"fieldRef": {"fieldPath": p}}  # noqa: E731
    env = container_env(pod, {"name": "c", "env": [
        {"name": "LATER", "value": "$(POD)"},               # POD is defined after: not expanded
        {"name": "POD", "valueFrom": field("metadata.name")},
        {"name": "NODE", "valueFrom": field("spec.nodeName")},
        {"name": "IP", "valueFrom": field("status.podIP")},
        {"name": "APP", "valueFrom": field("metadata.labels['app']")},
        {"name": "ATTRS", "value": "k8s.pod.name=$(POD),k8s.node.name=$(NODE),x=$$(POD)"},
    ]}, Image(Path("/nonexistent"), env={"LANG": "C.UTF-8"}))
    assert env == {"LANG": "C.UTF-8", "LATER": "$(POD)", "POD": pod["metadata"]["name"],
                   "NODE": "n1", "IP": "127.0.0.9", "APP": "web",
                   "ATTRS": f"k8s.pod.name={pod['metadata']['name']},k8s.node.name=n1,x=$(POD)"}
    with pytest.raises(PodSimError, match="secretKeyRef"):
        container_env(pod, {"name": "c", "env": [
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]})


def test_podsim_rewrites_only_whole_mount_paths():
    mounts = {"/otel-auto-instrumentation-python": "/tmp/v/py", "/otel-java": "/tmp/v/j",
              "/otel-java/extensions": "/tmp/v/ext"}
    assert rewrite_mounts("/otel-auto-instrumentation-python/opentelemetry/instrumentation/"
                          "auto_instrumentation:/otel-auto-instrumentation-python", mounts) == \
        "/tmp/v/py/opentelemetry/instrumentation/auto_instrumentation:/tmp/v/py"
    assert rewrite_mounts(" --require /otel-java/x.js", mounts) == " --require /tmp/v/j/x.js"
    assert rewrite_mounts("-Dext=/otel-java/extensions/a.jar", mounts) == "-Dext=/tmp/v/ext/a.jar"
    for untouched in ("/otel-java-app/x", "/srv/otel-java", "/otel-javax"):
        assert rewrite_mounts(untouched, mounts) == untouched


def test_podsim_runs_the_init_copy_and_refuses_what_it_cannot_simulate(tmp_path):
    image_root = tmp_path / "image"
    (image_root / "autoinstrumentation" / "pkg").mkdir(parents=True)
    (image_root / "autoinstrumentation" / "pkg" / "mod.py").write_text("x = 1\n")
    app_root = tmp_path / "app"
    app_root.mkdir()
    (app_root / "main.py").write_text("import os, mod; print(os.environ['WHERE'], mod.x)\n")
    pod = {"metadata": {"name": "p"}, "spec": {
        "volumes": [{"name": "v", "emptyDir": {}}],
        "initContainers": [{"name": "copy", "image": "payload",
                            "command": ["cp", "-r", "/autoinstrumentation/pkg/.", "/mnt/v"],
                            "volumeMounts": [{"name": "v", "mountPath": "/mnt/v"}]}],
        "containers": [{"name": "app", "image": "app", "args": ["main.py"],
                        "env": [{"name": "PYTHONPATH", "value": "/otel"},
                                {"name": "WHERE", "value": "$(PYTHONPATH)/mod.py"}],
                        "volumeMounts": [{"name": "v", "mountPath": "/otel"}]}]}}
    python = Path(sys.executable).parent
    imgs = {"payload": Image(image_root),
            "app": Image(app_root, path=(str(python),), entrypoint=("python3",))}
    sim = PodSim(pod, imgs, tmp_path / "run").start()
    c = sim.container("app")
    assert c.proc.wait(timeout=30) == 0, c.log_tail()
    vol = sim.volumes["v"]
    assert (vol / "mod.py").is_file() and not (vol / "pkg").exists()
    assert c.log_tail().splitlines()[-1] == f"{vol}/mod.py 1"
    assert c.env["PYTHONPATH"] == str(vol)
    assert c.argv == [str(Path(sys.executable).parent / "python3"), "main.py"]

    bad_cmd = json.loads(json.dumps(pod))
    bad_cmd["spec"]["initContainers"][0]["command"] = ["sh", "-c", "cp -r /a /b"]
    with pytest.raises(PodSimError, match="only `cp -r SRC DST`"):
        PodSim(bad_cmd, imgs, tmp_path / "run2").start()
    host_path = json.loads(json.dumps(pod))
    host_path["spec"]["volumes"] = [{"name": "v", "hostPath": {"path": "/"}}]
    with pytest.raises(PodSimError, match="only emptyDir"):
        PodSim(host_path, imgs, tmp_path / "run3").start()
