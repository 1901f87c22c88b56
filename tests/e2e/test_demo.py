"""`osprey demo` end to end: the demo app of demo/ (five uninstrumented Python services and one
Node.js service) started by the real binary on free ports, each service as the operator's
webhook mutates its pod, its spans stored by the demo's own `osprey up`; the Jaeger API shows
connected traces load → generator → upper/lower/digit/special, the UI answers, and Ctrl-C
stops every child.

Needs the payloads and the demo venv of scripts/build-autoinstrumentation.sh (which
scripts/install-test-deps.sh runs); `osprey demo` would build them itself otherwise.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from conftest import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"load", "generator", "upper", "lower", "digit", "special"}
CHARACTER_SERVICES = ("upper", "lower", "digit", "special")
STARTUP_TIMEOUT = 300  # payload import on a slow machine, six processes


def free_port_run(n: int) -> int:
    """The first of `n` consecutive free loopback ports (below the ephemeral range)."""
    for _ in range(100):
        base = free_port()
        if base + n >= 32768:
            continue
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of free ports found")


def children_of(pid: int) -> dict[int, str]:
    """pid → command name of every process whose parent is `pid`."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        ppid = int(text[text.rindex(")") + 2:].split()[1])
        if ppid == pid:
            out[int(stat.parent.name)] = name
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Demo:
    def __init__(self, binary: Path, tmp: Path):
        self.http = f"127.0.0.1:{free_port()}"
        self.api = f"http://{self.http}"
        self.data = tmp / "demo-data"
        self.log_path = tmp / "demo.log"
        self.name = "osprey demo"
        self.cmd = [
            str(binary), "demo", "--dir", str(ROOT / "demo"), "--data-dir", str(self.data),
            "--http-addr", self.http,
            "--otlp-http-addr", f"127.0.0.1:{free_port()}",
            "--otlp-grpc-addr", f"127.0.0.1:{free_port()}",
            "--grpc-addr", f"127.0.0.1:{free_port()}",
            "--pg-addr", f"127.0.0.1:{free_port()}",
            "--jaeger-thrift-addr", "none", "--jaeger-grpc-addr", "none", "--zipkin-addr", "none",
            "--app-port-base", str(free_port_run(5)), "--interval", "0.5",
        ]
        keep = {"OSPREY_AUTOINSTRUMENTATION_DIR", "OSPREY_DEMO_VENV"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("OSPREY_") or k in keep}
        env["NO_COLOR"] = "1"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)

    def log_tail(self, lines=80) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        logs = self.data / "demo-logs"
        for f in sorted(logs.glob("*.log")) if logs.is_dir() else []:
            text += [f"----- {f.name}", *f.read_text(errors="replace").splitlines()[-15:]]
        return "\n".join(text)

    def wait_running(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while "Press Ctrl-C to stop" not in self.log_path.read_text(errors="replace"):
            code = self.proc.poll()
            assert code is None, f"osprey demo exited with {code}:\n{self.log_tail()}"
            assert time.monotonic() < deadline, f"osprey demo not running:\n{self.log_tail()}"
            time.sleep(0.2)

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture
def demo(binary, tmp_path, request):
    d = Demo(binary, tmp_path)
    request.node._osprey_servers = [d]
    yield d
    kids = children_of(d.proc.pid) if d.proc.poll() is None else {}
    d.kill()
    for pid in kids:  # each child has its own process group
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def connected_trace(api: str) -> dict | None:
    """A trace of the generator with a span from every service, or None."""
    r = requests.get(f"{api}/api/traces", params={"service": "generator", "limit": 50},
                     timeout=30)
    r.raise_for_status()
    for trace in r.json()["data"]:
        services = {p["serviceName"] for p in trace["processes"].values()}
        if services >= SERVICES:
            return trace
    return None


def tags(span_or_process: dict) -> dict:
    return {t["key"]: t["value"] for t in span_or_process.get("tags") or []}


def test_demo_traces_reach_the_jaeger_api_and_ctrl_c_stops_everything(demo):
    demo.wait_running()
    out = demo.log_path.read_text()
    assert f"http://{demo.http}/" in out and f"http://{demo.http}/api/traces" in out, out
    kids = children_of(demo.proc.pid)
    assert len(kids) == 7, f"expected osprey up + 6 services, got {kids}"

    services = wait_until(
        lambda: (lambda s: s if s >= SERVICES else None)(
            set(requests.get(f"{demo.api}/api/services", timeout=30).json()["data"])),
        timeout=120, what="all six demo services in /api/services")
    assert services >= SERVICES

    trace = wait_until(lambda: connected_trace(demo.api), timeout=120,
                       what="a trace spanning all six services")
    spans = {s["spanID"]: s for s in trace["spans"]}
    service_of = {sid: trace["processes"][s["processID"]]["serviceName"]
                  for sid, s in spans.items()}
    parent = {}
    for sid, s in spans.items():
        refs = [r for r in s.get("references") or [] if r["refType"] == "CHILD_OF"]
        if refs:
            assert refs[0]["spanID"] in spans, f"dangling parent of {s['operationName']}"
            parent[sid] = refs[0]["spanID"]
    roots = [sid for sid in spans if sid not in parent]
    assert len(roots) == 1 and service_of[roots[0]] == "load", \
        [(service_of[r], spans[r]["operationName"]) for r in roots]

    def ancestors(sid):
        while sid in parent:
            sid = parent[sid]
            yield sid

    gen_servers = [sid for sid in spans if service_of[sid] == "generator"
                   and tags(spans[sid]).get("span.kind") == "server"]
    assert len(gen_servers) == 1, [spans[s]["operationName"] for s in spans]
    for svc in CHARACTER_SERVICES:
        servers = [sid for sid in spans if service_of[sid] == svc
                   and tags(spans[sid]).get("span.kind") == "server"]
        assert servers, f"no server span of {svc}"
        for sid in servers:
            # character server span ← generator client span ← generator server span
            assert service_of[parent[sid]] == "generator", svc
            assert tags(spans[parent[sid]]).get("span.kind") == "client", svc
            assert gen_servers[0] in ancestors(sid), svc

    # The resource is the one the webhook's env gives the simulated pod.
    for svc in SERVICES:
        pod = yaml.safe_load((demo.data / "demo-logs" / f"{svc}.pod.yaml").read_text())
        lang = "nodejs" if svc == "special" else "python"
        assert [c["name"] for c in pod["spec"]["initContainers"]] == \
            [f"opentelemetry-auto-instrumentation-{lang}"]
        process = next(p for p in trace["processes"].values() if p["serviceName"] == svc)
        res = tags(process)
        assert res.get("k8s.pod.name") == pod["metadata"]["name"], res
        assert res.get("k8s.namespace.name") == "osprey-demo", res
        assert res.get("k8s.deployment.name") == svc, res

    ui = requests.get(f"{demo.api}/", timeout=30)
    assert ui.status_code == 200
    assert ui.headers.get("content-type", "").startswith("text/html"), ui.headers
    # ...and the web UI shows them (headless Chromium, tests/ui/demo_view.mjs).
    ui_dir = Path(__file__).resolve().parents[2] / "tests" / "ui"
    node = shutil.which("node")
    assert node and (ui_dir / "node_modules" / "playwright-core").is_dir(), \
        "node or tests/ui/node_modules missing: run scripts/install-test-deps.sh"
    env = dict(os.environ, OSPREY_URL=demo.api, OSPREY_DEMO_SERVICES=",".join(sorted(SERVICES)),
               OSPREY_DEMO_TRACE=trace["traceID"], OSPREY_DEMO_SPANS=str(len(spans)),
               OSPREY_UI_SCREENSHOTS=os.environ.get("OSPREY_UI_SCREENSHOTS") or str(ui_dir / "screenshots"))
    run = subprocess.run([node, str(ui_dir / "demo_view.mjs")], cwd=ui_dir, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"the UI does not show the demo's traces:\n{run.stdout}\n{run.stderr}"

    os.kill(demo.proc.pid, signal.SIGINT)
    code = demo.proc.wait(timeout=120)
    assert code == 0, demo.log_tail()
    left = {pid: name for pid, name in kids.items() if alive(pid)}
    assert not left, f"children still running after osprey demo exited: {left}"


def test_demo_without_the_demo_dir_says_where_to_run_it(binary, tmp_path):
    done = subprocess.run([str(binary), "demo", "--dir", str(tmp_path / "nope"),
                           "--data-dir", str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "the demo app is not at" in done.stderr and "--dir" in done.stderr, done.stderr
    assert not (tmp_path / "data").exists()
