"""`osprey collector` under test: writes a Collector YAML config into a temp dir, starts the real
binary on it, waits for its own-telemetry endpoint, and reads its Prometheus metrics.

Configs are plain dicts (dumped as YAML) or text. Unless the config sets it, the telemetry
endpoint is put on a free loopback port so tests never collide on 8888.
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import requests
import yaml

from conftest import ChildProcess, free_port

READY_TIMEOUT = 60
STOP_TIMEOUT = 30


def seed_collector_config() -> dict:
    """The `config` of the seed's OpenTelemetryCollector (collector-fixed.yaml; a copy is in tests/e2e/fixtures for clones outside the workspace). parsed."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        seed = parent / "shared" / "seed" / "examples" / "collector-fixed.yaml"
        if seed.is_file():
            cr = yaml.safe_load(seed.read_text())
            return yaml.safe_load(cr["spec"]["config"])
    local = here.parent / "fixtures" / "collector-fixed.yaml"
    cr = yaml.safe_load(local.read_text())
    return yaml.safe_load(cr["spec"]["config"])


class Collector(ChildProcess):
    name = "collector"

    def __init__(self, binary: Path, workdir: Path, config, extra_args=()):
        self.binary = binary
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "config.yaml"
        self.log_path = workdir / "collector.log"
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        self.telemetry_port = free_port()
        self.set_config(config)

    def set_config(self, config):
        if isinstance(config, dict):
            config = dict(config)
            service = dict(config.get("service") or {})
            telemetry = dict(service.get("telemetry") or {})
            metrics = dict(telemetry.get("metrics") or {})
            metrics.setdefault("address", f"127.0.0.1:{self.telemetry_port}")
            m = re.search(r":(\d+)$", str(metrics["address"]))
            if m:
                self.telemetry_port = int(m.group(1))
            telemetry["metrics"] = metrics
            service["telemetry"] = telemetry
            config["service"] = service
            text = yaml.safe_dump(config, sort_keys=False)
        else:
            text = config
        self.config_path.write_text(text)

    @property
    def telemetry(self) -> str:
        return f"http://127.0.0.1:{self.telemetry_port}"

    def command(self) -> list[str]:
        return [str(self.binary), "collector", "--config", str(self.config_path), *self.extra_args]

    def start(self, wait=True) -> "Collector":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OSPREY_")}
        env.setdefault("RUST_LOG", "info")
        env.setdefault("NO_COLOR", "1")
        log = open(self.log_path, "ab")
        log.write(f"\n===== start: {' '.join(self.command())}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        self.wait_ready_url(self.telemetry + "/metrics", timeout)

    def metrics(self) -> dict[str, float]:
        """Samples of /metrics keyed by `name{labels}` exactly as exposed."""
        text = requests.get(self.telemetry + "/metrics", timeout=10).text
        out = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
        return out

    def metric(self, name: str, **labels) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        total = 0.0
        for key, value in self.metrics().items():
            n, _, rest = key.partition("{")
            if n != name:
                continue
            if all(f'{k}="{v}"' in rest for k, v in labels.items()):
                total += value
        return total

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""



def run_validate(binary: Path, *config_paths: Path, env=None) -> subprocess.CompletedProcess:
    args = [str(binary), "collector", "validate"]
    for p in config_paths:
        args += ["--config", str(p)]
    e = {k: v for k, v in os.environ.items() if not k.startswith("OSPREY_")}
    e.update(env or {})
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=e)
