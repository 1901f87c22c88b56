"""The images' Dockerfiles, checked by reading them (no Docker daemon here): the root
Dockerfile is a multi-stage build of the one `osprey` binary into a small non-root runtime
image exposing the ports of docs (interfaces.md); its build context keeps every file the
build embeds; the demo's images run as a numeric non-root user.
"""
from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PORTS = {4317, 4318, 9201, 9202, 14268, 14250, 9411, 5433}  # interfaces.md


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages(path: Path) -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for ins in instructions(path):
        if ins[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def last(stage, word) -> str | None:
    found = [a for w, a in stage if w == word]
    return found[-1] if found else None


def non_root(user: str | None) -> bool:
    if user is None:
        return False
    uid = user.split(":")[0]
    return uid not in ("0", "root") and (not uid.isdigit() or int(uid) > 0)


def test_root_dockerfile_is_multi_stage_with_one_binary_and_non_root():
    st = stages(ROOT / "Dockerfile")
    assert len(st) >= 2, "multi-stage build expected"
    builder = st[0][0][1]
    assert re.match(r"rust:1-bookworm\s+AS\s+(\S+)$", builder, re.I), builder
    build_name = builder.split()[-1]
    runs = " ".join(a for w, a in st[0] if w == "RUN")
    assert "cargo build --release" in runs and "--locked" in runs and "-p osprey" in runs
    assert "--mount=type=cache,target=/usr/local/cargo/registry" in runs
    assert "target/release/osprey" in runs

    runtime = st[-1]
    base = runtime[0][1]
    assert base.startswith(("gcr.io/distroless/cc-debian12", "debian:bookworm-slim")), base
    copies = [a for w, a in runtime if w == "COPY"]
    binaries = [c for c in copies if c.startswith(f"--from={build_name} ")
                and c.endswith("/usr/local/bin/osprey")]
    assert len(binaries) == 1, copies
    user = last(runtime, "USER")
    assert non_root(user), f"runtime stage runs as {user!r}"
    assert json.loads(last(runtime, "ENTRYPOINT")) == ["osprey"]
    cmd = json.loads(last(runtime, "CMD"))
    assert cmd[0] == "up" and "--listen-all" in cmd, cmd
    exposed = {int(p.split("/")[0]) for w, a in runtime if w == "EXPOSE" for p in a.split()}
    assert PORTS <= exposed, PORTS - exposed


def ignored(rel: str, patterns: list[str]) -> bool:
    """Whether a top-level Docker build context path matches a .dockerignore line (the subset
    of the syntax the file uses: names, globs, `**/` prefixes; no `!` exceptions)."""
    for p in patterns:
        p = p.strip("/")
        if p.startswith("**/"):
            if any(fnmatch.fnmatch(part, p[3:]) for part in rel.split("/")):
                return True
        elif fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(rel.split("/")[0], p):
            return True
    return False


def test_dockerignore_keeps_what_the_build_reads():
    lines = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [l for l in lines if l and not l.startswith("#")]
    assert not any(p.startswith("!") for p in patterns), "exceptions: extend ignored()"
    for heavy in ("target", ".git", ".venv"):
        assert ignored(heavy, patterns), heavy
    for needed in ("Cargo.toml", "Cargo.lock", "crates/osprey/src/main.rs"):
        assert not ignored(needed, patterns), needed
    # every file a non-test source embeds from outside its crate is in the context
    embed = re.compile(r'include_(?:str|bytes)!\(\s*"((?:\.\./)+[^"]+)"')
    for src in (ROOT / "crates").rglob("*.rs"):
        if src.name in ("tests.rs",) or "tests" in src.relative_to(ROOT).parts:
            continue
        text = src.read_text()
        cut = text.find("#[cfg(test)]")
        for m in embed.finditer(text if cut < 0 else text[:cut]):
            target = (src.parent / m.group(1)).resolve()
            rel = target.relative_to(ROOT).as_posix()
            assert target.exists(), f"{src}: {rel}"
            assert not ignored(rel, patterns), f"{src} embeds {rel}, which .dockerignore drops"


def test_demo_images_run_as_a_numeric_non_root_user():
    for name, entry in (("Dockerfile", ["python", "app.py"]),
                        ("Dockerfile.special", ["node", "server.js"])):
        st = stages(ROOT / "demo" / name)
        runtime = st[-1]
        user = last(runtime, "USER")
        assert user and user.split(":")[0].isdigit() and non_root(user), (name, user)
        assert json.loads(last(runtime, "CMD")) == entry, name
        if name == "Dockerfile":
            assert runtime[0][1] == "python:3.12-slim"
            # the build context (demo/) has what the COPY lines name
            for w, a in runtime:
                if w == "COPY" and "${SERVICE}" in a:
                    for svc in ("generator", "upper", "lower", "digit", "load"):
                        src = a.split()[0].replace("${SERVICE}", svc)
                        assert (ROOT / "demo" / src).is_file(), src
        else:
            assert (ROOT / "demo" / "special" / "server.js").is_file()
