"""Fixtures for the end-to-end tests: the real `osprey` binary, started as `osprey up` on free
loopback ports in a temporary data dir.

The binary is `$OSPREY_BIN`, else `$CARGO_TARGET_DIR/release/osprey`, else
`~/.cache/osprey-target/release/osprey`. Each server's stdout/stderr goes to a log file whose
tail is attached to the report of a failing test.
"""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

READY_TIMEOUT = 90  # seconds; WAL replay after a crash happens before /readyz turns 200
STOP_TIMEOUT = 60


def osprey_bin() -> Path:
    env = os.environ.get("OSPREY_BIN")
    if env:
        return Path(env)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/osprey-target")
    return Path(target) / "release" / "osprey"


def free_port() -> int:
    """A free loopback port below Linux's ephemeral range (32768+), so that no client
    connection of another test can take it between now and the server's bind."""
    for _ in range(200):
        port = random.randrange(15000, 32000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port found in 15000-32000")


def wait_until(fn, timeout=30.0, interval=0.2, what="condition"):
    """Polls `fn` until it returns a truthy value (returned), failing after `timeout` seconds
    with the last value (or exception) seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - reported below
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


class ChildProcess:
    """What `osprey up` and `osprey collector` under test share: a child process with a log
    file (`self.proc`, `self.log_path`, `self.name`), polled readiness, SIGTERM/SIGKILL."""

    name = "osprey"
    proc: subprocess.Popen | None = None
    log_path: Path

    def wait_ready_url(self, url: str, timeout: float):
        """Polls `url` until it answers 200; fails at once if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                raise AssertionError(f"{self.name} exited with {code} before ready:\n{self.log_tail()}")
            try:
                if requests.get(url, timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} not 200 after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.running():
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        if self.running():
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"{self.name} did not exit within {STOP_TIMEOUT}s of SIGTERM")

    def log_tail(self, lines=150) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Server(ChildProcess):
    """One `osprey up` process. Ports and data dir stay the same across restart()."""

    def __init__(self, binary: Path, workdir: Path, args=()):
        self.binary = binary
        self.data_dir = workdir / "data"
        self.log_path = workdir / "osprey.log"
        self.args = list(args)
        self.otlp_grpc_port = free_port()
        self.otlp_http_port = free_port()
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.pg_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    # -- addresses
    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def otlp_http(self) -> str:
        return f"http://127.0.0.1:{self.otlp_http_port}"

    @property
    def otlp_grpc(self) -> str:
        return f"127.0.0.1:{self.otlp_grpc_port}"

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> list[str]:
        return [
            str(self.binary), "up",
            "--data-dir", str(self.data_dir),
            "--otlp-grpc-addr", self.otlp_grpc,
            "--otlp-http-addr", f"127.0.0.1:{self.otlp_http_port}",
            "--grpc-addr", self.grpc,
            "--http-addr", f"127.0.0.1:{self.http_port}",
            "--pg-addr", f"127.0.0.1:{self.pg_port}",
            "--jaeger-thrift-addr", "none",
            "--jaeger-grpc-addr", "none",
            "--zipkin-addr", "none",
            *self.args,
        ]

    # -- lifecycle
    def start(self) -> "Server":
        """Starts the server. A port taken meanwhile (by a process outside the tests) is
        retried: with new ports on a first start, with the same ones on a restart."""
        for attempt in range(5):
            try:
                return self._start_once()
            except AssertionError as e:
                if "Address already in use" not in str(e) or attempt == 4:
                    raise
                if self.starts == 1:
                    self.otlp_grpc_port, self.otlp_http_port = free_port(), free_port()
                    self.grpc_port, self.http_port = free_port(), free_port()
                    self.pg_port = free_port()
                    self.starts = 0
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def _start_once(self) -> "Server":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OSPREY_")}
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        log.close()
        self.wait_ready()
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        self.wait_ready_url(self.api + "/readyz", timeout)

    def restart(self) -> "Server":
        if self.running():
            self.stop()
        return self.start()

    # -- queries
    def sql_response(self, query: str, timeout=120) -> requests.Response:
        return requests.post(self.api + "/api/sql", json={"sql": query}, timeout=timeout)

    def sql(self, query: str, timeout=120) -> dict:
        r = self.sql_response(query, timeout=timeout)
        assert r.status_code == 200, f"SQL {query!r} → HTTP {r.status_code}: {r.text[:2000]}"
        body = r.json()
        assert set(body) >= {"columns", "rows"}, body
        return body

    def rows(self, query: str) -> list[dict]:
        body = self.sql(query)
        return [dict(zip(body["columns"], row)) for row in body["rows"]]

    def span_ids(self) -> list[str]:
        return [r[0] for r in self.sql("select span_id from spans")["rows"]]

    def healthy(self) -> bool:
        return (self.running()
                and requests.get(self.api + "/healthz", timeout=10).status_code == 200)

    def rss_kib(self, field="VmRSS") -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"{field} not in /proc/{self.pid}/status")



# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def binary() -> Path:
    b = osprey_bin()
    if not (b.is_file() and os.access(b, os.X_OK)):
        pytest.fail(f"osprey binary not found at {b}: build it (cargo build --release -p osprey) "
                    f"or set OSPREY_BIN", pytrace=False)
    return b


@pytest.fixture
def make_server(binary, tmp_path, request):
    """`make_server(*args)` starts `osprey up` with extra flags; all are killed at teardown."""
    servers: list[Server] = []

    def make(*args, start=True) -> Server:
        workdir = tmp_path / f"server{len(servers)}"
        workdir.mkdir()
        s = Server(binary, workdir, args)
        servers.append(s)
        if getattr(request.node, "_osprey_servers", None) is None:
            request.node._osprey_servers = []
        request.node._osprey_servers.append(s)
        return s.start() if start else s

    yield make
    for s in servers:
        s.kill9()


@pytest.fixture
def server(make_server) -> Server:
    return make_server()


@pytest.fixture
def make_collector(binary, tmp_path, request):
    """`make_collector(config, start=True)` runs `osprey collector` on a config dict or YAML
    text (see collector.py); all are killed at teardown and their logs attached to failures."""
    from collector import Collector
    made = []

    def make(config, *args, start=True):
        c = Collector(binary, tmp_path / f"collector{len(made)}", config, args)
        made.append(c)
        servers = getattr(request.node, "_osprey_servers", None)
        if servers is None:
            request.node._osprey_servers = servers = []
        servers.append(c)
        return c.start() if start else c

    yield make
    for c in made:
        c.kill9()


# Modules that share one server and one SDK data load define a module-scoped `env` fixture
# yielding (server, dataset); these two give its parts to the tests.
@pytest.fixture
def srv(env, request) -> Server:
    server, _ = env
    request.node._osprey_servers = [server]  # attach its log to a failing test's report
    return server


@pytest.fixture
def ds(env):
    return env[1]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for i, s in enumerate(getattr(item, "_osprey_servers", [])):
            rep.sections.append((f"osprey server {i} log ({s.log_path})", s.log_tail()))
