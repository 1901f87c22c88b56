"""A real Prometheus (Debian's /usr/bin/prometheus, installed by scripts/install-test-deps.sh)
for the end-to-end tests: started on a free loopback port with the remote-write receiver on
(`--web.enable-remote-write-receiver`, as the install's Prometheus runs) and no scrape targets,
in its own temporary directory; plus small helpers for its HTTP API.

Used by test_collector_processing.py (spanmetrics -> prometheusremotewrite) and
test_grafana_prometheus.py (the Grafana dashboards' PromQL).
"""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import requests

from conftest import free_port, wait_until

BINARY = "/usr/bin/prometheus"
READY_TIMEOUT = 60
STOP_TIMEOUT = 30


class PrometheusServer:
    """`with PrometheusServer(workdir) as prom:` runs Prometheus until the block ends;
    `prom.url` is its base URL (remote write at `prom.url + "/api/v1/write"`)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "prometheus.log"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "PrometheusServer":
        config = self.workdir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 15s\n")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [BINARY, f"--config.file={config}",
                 f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}",
                 "--web.enable-remote-write-receiver"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.workdir, start_new_session=True)

        def ready():
            assert self.proc.poll() is None, f"prometheus exited:\n{self.log_tail()}"
            return requests.get(self.url + "/-/ready", timeout=5).status_code == 200
        wait_until(ready, timeout=READY_TIMEOUT, what="prometheus /-/ready")
        return self

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT)

    def log_tail(self, chars=3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> "PrometheusServer":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()


def prom_query(url: str, q: str) -> list[dict]:
    """An instant query's result (vector samples); fails unless the API says success."""
    r = requests.get(url + "/api/v1/query", params={"query": q}, timeout=30)
    assert r.status_code == 200, r.text[:1000]
    body = r.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def prom_values(url: str, q: str) -> dict[tuple, float]:
    """frozen label set (without __name__) -> value."""
    return {tuple(sorted((k, v) for k, v in s["metric"].items() if k != "__name__")):
            float(s["value"][1]) for s in prom_query(url, q)}
