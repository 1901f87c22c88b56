"""A kubelet for one Pod on this machine: runs a mutated Pod (`osprey inject` output) the way
Kubernetes would, as far as auto-instrumentation is concerned, so that the end-to-end tests run
the real auto-instrumentation payloads against real apps without a cluster.

In the kubelet's order:
- **Scheduling**: the fields set after admission are filled in when absent: `metadata.uid`,
  `spec.nodeName`, `spec.serviceAccountName` (`default`), `status.podIP`, `status.hostIP`
  (loopback addresses: nothing is ever sent to them).
- **Volumes**: each `emptyDir` (or `ephemeral`) volume is a new directory under the work dir.
  Other volume types are refused (`PodSimError`).
- **Images** are looked up in a map `image -> Image`: a local directory standing for the image's
  filesystem root, with its WORKDIR, ENV, PATH, ENTRYPOINT and CMD. The tests map the
  autoinstrumentation images to the payloads of scripts/build-autoinstrumentation.sh and the
  app's image to its demo/ service directory.
- **Init containers** run in order, each to completion, before any container starts. Only the
  command the operator injects is understood, `cp -r SRC DST` (`SRC/.` copies SRC's content):
  both paths resolve in the container's volumeMounts, else in its image; the real `cp` runs on
  the resolved paths. Any other command is refused.
- **Env**: `value`s get Kubernetes' `$(VAR)` expansion (a variable defined earlier in the list
  expands, `$$` is a literal `$`, anything else stays as written); `valueFrom.fieldRef` reads
  the pod (`metadata.name|namespace|uid|labels['k']|annotations['k']`, `spec.nodeName`,
  `spec.serviceAccountName`, `status.podIP|hostIP`); other sources are refused. `command` and
  `args` are expanded against the finished env, as the kubelet does. The image's ENV comes
  first; the container runtime's PATH (from the image), HOME and HOSTNAME (the pod name) are
  added when the container does not set them. Nothing else: no service-link variables, no
  KUBERNETES_* (there is no API server).
- **The one liberty**: a container's mountPaths (absolute paths like
  /otel-auto-instrumentation-python) cannot exist on this machine, so every occurrence of a
  mountPath in the container's env values, command, args and workingDir is rewritten to its
  volume's directory (subPath honoured). Nothing else is changed.
- **Containers** start as child processes (own session) with exactly that env; stdout and
  stderr go to `<workdir>/logs/<container>.log`. Networking is this machine's: all pods share
  the loopback interface, so each pod must be told (in its env) a port of its own.
  `readinessProbe` httpGet/tcpSocket is honoured by `wait_ready()`. Resources,
  securityContext and pull policies are ignored.
"""
from __future__ import annotations

import copy
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class PodSimError(Exception):
    """The pod uses something the simulation does not support, or a step failed."""


@dataclass
class Image:
    """What the simulation knows of a container image. `root` stands for its filesystem root;
    `workdir` is a path inside it; `path` lists host directories for PATH (before the system
    ones), e.g. the bin/ of a venv standing for the image's Python."""

    root: Path
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    path: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()

    def file(self, path: str) -> str:
        """Host path of an absolute path inside the image (kept as a string: `X/.` matters)."""
        return str(self.root).rstrip("/") + "/" + path.lstrip("/")


# ------------------------------------------------------------------ pure helpers

def expand(text: str, defined: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: `$(NAME)` becomes NAME's value when NAME is in `defined`,
    else stays as written; `$$` is one literal `$`; a `$` before anything else is kept."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "$" or i + 1 == n:
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close < 0:  # unterminated: "$(" is literal, the rest is scanned on
                out.append("$(")
                i += 2
                continue
            name = text[i + 2:close]
            out.append(defined[name] if name in defined else f"$({name})")
            i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


_FIELD_KEY = re.compile(r"^metadata\.(labels|annotations)\['([^']*)'\]$")


def field_value(pod: dict, path: str) -> str:
    """The value of a `fieldRef.fieldPath` on the (scheduled) pod."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
    }
    if path in simple:
        return simple[path] or ""
    m = _FIELD_KEY.match(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    raise PodSimError(f"fieldRef {path!r} is not supported by the simulation")


def rewrite_mounts(text: str, mounts: dict[str, str]) -> str:
    """Replaces every mountPath (a key of `mounts`) in `text` by its host directory: only whole
    path components (`/m`, `/m/x`, `…:/m`, `--require /m/x.js`), longest mountPath first."""
    if not mounts:
        return text
    alternatives = "|".join(re.escape(m) for m in sorted(mounts, key=len, reverse=True))
    pattern = re.compile(r"(?<![^\s:=,;\"'])(" + alternatives + r")(?=$|[/\s:=,;\"'])")
    return pattern.sub(lambda m: mounts[m.group(1)], text)


def schedule(pod: dict, node_name="podsim-node", pod_ip="127.0.0.1",
             host_ip="127.0.0.1") -> dict:
    """A copy of `pod` with what the API server (name from generateName, uid) and the
    scheduler (node) would have set, and the status the kubelet reports."""
    pod = copy.deepcopy(pod)
    meta = pod.setdefault("metadata", {})
    meta.setdefault("namespace", "default")
    if not meta.get("name"):
        if not meta.get("generateName"):
            raise PodSimError("the pod has neither metadata.name nor metadata.generateName")
        meta["name"] = meta["generateName"] + "".join(
            random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
    meta.setdefault("uid", str(uuid.uuid4()))
    spec = pod.setdefault("spec", {})
    spec.setdefault("nodeName", node_name)
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    status = pod.setdefault("status", {})
    status.setdefault("podIP", pod_ip)
    status.setdefault("hostIP", host_ip)
    return pod


def container_env(pod: dict, container: dict, image: Image | None = None) -> dict[str, str]:
    """The container's env as the kubelet computes it (image ENV first, then `env` in order,
    each `value` expanded against what is defined so far), before any mount rewriting."""
    if container.get("envFrom"):
        raise PodSimError(f"container {container.get('name')}: envFrom is not supported")
    env = dict(image.env) if image else {}
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" in var:
            source = var["valueFrom"] or {}
            if set(source) != {"fieldRef"}:
                raise PodSimError(f"env {name}: valueFrom {sorted(source)} is not supported")
            env[name] = field_value(pod, source["fieldRef"]["fieldPath"])
        else:
            env[name] = expand(var.get("value") or "", env)
    return env


# ------------------------------------------------------------------ the pod

class Container:
    """One started container: its process and log (the shape conftest attaches to reports)."""

    def __init__(self, name: str, spec: dict, proc: subprocess.Popen, log_path: Path,
                 env: dict[str, str], argv: list[str]):
        self.name, self.spec, self.proc = name, spec, proc
        self.log_path, self.env, self.argv = log_path, env, argv

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines=150) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self, sig: int):
        try:
            os.killpg(self.proc.pid, sig)  # the container's whole process group
        except ProcessLookupError:
            pass

    def stop(self, grace: float) -> int:
        if self.running():
            self.kill(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            return self.proc.wait(timeout=30)


class PodSim:
    """Runs one pod: `start()` (volumes, init containers, containers), `wait_ready()`, `stop()`."""

    def __init__(self, pod: dict, images: dict[str, Image], workdir: Path, **status):
        if pod.get("kind", "Pod") != "Pod":
            raise PodSimError(f"expected a Pod, got {pod.get('kind')}")
        self.pod = schedule(pod, **status)
        self.images = images
        self.workdir = Path(workdir)
        self.volumes: dict[str, Path] = {}
        self.containers: list[Container] = []

    @property
    def name(self) -> str:
        return self.pod["metadata"].get("name") or "pod"

    def image(self, container: dict) -> Image:
        ref = container.get("image", "")
        if ref not in self.images:
            raise PodSimError(f"container {container['name']}: no local stand-in for image {ref!r}")
        return self.images[ref]

    # -- steps
    def make_volumes(self):
        for vol in self.pod["spec"].get("volumes") or []:
            if not ({"emptyDir", "ephemeral"} & set(vol)):
                raise PodSimError(f"volume {vol['name']}: only emptyDir/ephemeral are supported")
            path = self.workdir / "volumes" / vol["name"]
            path.mkdir(parents=True, exist_ok=False)
            self.volumes[vol["name"]] = path

    def mounts(self, container: dict) -> dict[str, str]:
        """mountPath -> host directory, for the container's volumeMounts."""
        out = {}
        for m in container.get("volumeMounts") or []:
            if m["name"] not in self.volumes:
                raise PodSimError(f"container {container['name']}: volumeMount of unknown "
                                  f"volume {m['name']!r}")
            host = self.volumes[m["name"]]
            if m.get("subPath"):
                host = host / m["subPath"]
                host.mkdir(parents=True, exist_ok=True)
            out[m["mountPath"].rstrip("/") or "/"] = str(host)
        return out

    def resolve(self, container: dict, path: str, image: Image) -> str:
        """Host path of `path` as the container sees it: inside a mount, else inside the image."""
        mounts = self.mounts(container)
        for mount in sorted(mounts, key=len, reverse=True):
            if path == mount or path.startswith(mount + "/"):
                return mounts[mount] + path[len(mount):]
        if not path.startswith("/"):
            path = (container.get("workingDir") or image.workdir).rstrip("/") + "/" + path
        return image.file(path)

    def argv(self, container: dict, image: Image, env: dict[str, str]) -> list[str]:
        command, args = container.get("command"), container.get("args")
        if command:
            argv = list(command) + list(args or [])
        else:
            argv = list(image.entrypoint) + list(args if args else image.cmd)
        if not argv:
            raise PodSimError(f"container {container['name']}: nothing to run")
        return [expand(a, env) for a in argv]

    def run_init_container(self, container: dict):
        image = self.image(container)
        argv = self.argv(container, image, container_env(self.pod, container, image))
        if len(argv) != 4 or argv[:2] != ["cp", "-r"]:
            raise PodSimError(f"init container {container['name']}: only `cp -r SRC DST` is "
                              f"supported, got {argv}")
        src = self.resolve(container, argv[2], image)
        dst = self.resolve(container, argv[3], image)
        done = subprocess.run(["cp", "-r", src, dst], capture_output=True, text=True)
        if done.returncode != 0:
            raise PodSimError(f"init container {container['name']}: cp -r {src} {dst} failed: "
                              f"{done.stderr.strip()}")

    def prepare(self, container: dict) -> tuple[list[str], dict[str, str], str]:
        """argv, env and working directory of an app container, mounts rewritten."""
        image = self.image(container)
        mounts = self.mounts(container)
        env = container_env(self.pod, container, image)
        argv = [rewrite_mounts(a, mounts) for a in self.argv(container, image, env)]
        env = {k: rewrite_mounts(v, mounts) for k, v in env.items()}
        env.setdefault("PATH", ":".join([*image.path, SYSTEM_PATH]))
        env.setdefault("HOME", str(self.workdir / "home"))
        env.setdefault("HOSTNAME", self.name)
        Path(env["HOME"]).mkdir(parents=True, exist_ok=True)
        cwd = self.resolve(container, container.get("workingDir") or image.workdir, image)
        exe = shutil.which(argv[0], path=env["PATH"]) if "/" not in argv[0] else argv[0]
        if not exe:
            raise PodSimError(f"container {container['name']}: {argv[0]!r} not found in "
                              f"PATH={env['PATH']}")
        return [exe, *argv[1:]], env, cwd

    # -- lifecycle
    def start(self, only: list[str] | None = None) -> "PodSim":
        """Volumes, every init container in order, then the containers (all, or `only`)."""
        self.make_volumes()
        for init in self.pod["spec"].get("initContainers") or []:
            self.run_init_container(init)
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for spec in self.pod["spec"]["containers"]:
            if only is not None and spec["name"] not in only:
                continue
            argv, env, cwd = self.prepare(spec)
            log_path = logs / f"{spec['name']}.log"
            with open(log_path, "ab") as log:
                log.write(f"===== podsim: {' '.join(argv)} (cwd {cwd})\n".encode())
                log.flush()
                proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
            self.containers.append(Container(spec["name"], spec, proc, log_path, env, argv))
        return self

    def container(self, name: str | None = None) -> Container:
        for c in self.containers:
            if name is None or c.name == name:
                return c
        raise KeyError(name)

    def wait_ready(self, timeout=60.0):
        """Polls each started container's readinessProbe (httpGet or tcpSocket, on 127.0.0.1)
        until all pass; fails at once when a container exits."""
        deadline = time.monotonic() + timeout
        pending = list(self.containers)
        while pending:
            c = pending[0]
            if not c.running():
                raise PodSimError(f"{self.name}/{c.name} exited with {c.proc.returncode}:\n"
                                  f"{c.log_tail()}")
            if self._probe(c):
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                raise PodSimError(f"{self.name}/{c.name} not ready after {timeout}s:\n"
                                  f"{c.log_tail()}")
            time.sleep(0.1)
        return self

    def _probe(self, c: Container) -> bool:
        probe = c.spec.get("readinessProbe") or {}
        check = probe.get("httpGet") or probe.get("tcpSocket")
        if not check:
            return True
        port = check.get("port")
        if isinstance(port, str) and not port.isdigit():
            named = [p for p in c.spec.get("ports") or [] if p.get("name") == port]
            if not named:
                raise PodSimError(f"{c.name}: probe port {port!r} is not a named port")
            port = named[0]["containerPort"]
        try:
            if "httpGet" in probe:
                url = f"http://127.0.0.1:{int(port)}{check.get('path', '/')}"
                return 200 <= requests.get(url, timeout=2).status_code < 400
            with socket.create_connection(("127.0.0.1", int(port)), timeout=2):
                return True
        except (OSError, requests.RequestException):
            return False

    def stop(self, grace: float | None = None) -> dict[str, int]:
        """SIGTERM every container, SIGKILL after the grace period (the pod's
        terminationGracePeriodSeconds, at most 10 s); returns the exit codes."""
        if grace is None:
            grace = min(float(self.pod["spec"].get("terminationGracePeriodSeconds", 30)), 10.0)
        return {c.name: c.stop(grace) for c in self.containers}

    def delete(self) -> dict[str, int]:
        """`stop()`, then remove the pod's volumes, as deleting the pod does (logs are kept)."""
        codes = self.stop()
        shutil.rmtree(self.workdir / "volumes", ignore_errors=True)
        self.volumes.clear()
        return codes
