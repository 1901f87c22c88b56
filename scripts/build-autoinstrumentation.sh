#!/usr/bin/env bash
# Builds, from PyPI and npm with the pinned versions under scripts/autoinstrumentation/, what the
# pod simulation (tests/e2e/podsim.py) and the demo (demo/) need:
#
#   $CACHE/python/autoinstrumentation/   the Python payload, laid out like upstream's
#                                        autoinstrumentation-python image (`pip install --target`
#                                        of opentelemetry-distro, the OTLP/HTTP exporter, the
#                                        propagators and the instrumentations)
#   $CACHE/python/autoinstrumentation-musl/  the same from musllinux wheels (for pods annotated
#                                        otel-python-platform: musl; not runnable on this host)
#   $CACHE/nodejs/autoinstrumentation/   the Node.js payload, like upstream's autoinstrumentation-
#                                        nodejs image: autoinstrumentation.js + node_modules with
#                                        @opentelemetry/auto-instrumentations-node
#   $DEMO_VENV                           a plain venv with the demo's Flask + requests (no
#                                        OpenTelemetry: that comes from the payload via PYTHONPATH)
#
# Each directory is the root of the "image": the init container's `cp -r /autoinstrumentation/. …`
# copies $CACHE/<lang>/autoinstrumentation. CACHE defaults to ~/.cache/osprey-autoinstrumentation
# (OSPREY_AUTOINSTRUMENTATION_DIR), DEMO_VENV to ~/.cache/osprey-demo-venv (OSPREY_DEMO_VENV).
# Idempotent: a stamp (hash of the pinned inputs and interpreter version) skips what is up to
# date; a build goes to a temp dir first, so an interrupted one leaves nothing half-made.
# --force rebuilds everything. Uses $PYTHON (default python3): the apps must run on the same
# CPython the payload was built with.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

CACHE="${OSPREY_AUTOINSTRUMENTATION_DIR:-$HOME/.cache/osprey-autoinstrumentation}"
DEMO_VENV="${OSPREY_DEMO_VENV:-$HOME/.cache/osprey-demo-venv}"
PYTHON="${PYTHON:-python3}"
SRC="$ROOT/scripts/autoinstrumentation"
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

log() { echo "build-autoinstrumentation: $*"; }
hash_of() { sha256sum | cut -d' ' -f1; }
up_to_date() { [ "$FORCE" = 0 ] && [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }
PIP=(--quiet --disable-pip-version-check --no-input --root-user-action=ignore)

mkdir -p "$CACHE"

# ---------------------------------------------------------------- python payload
py_version="$("$PYTHON" -c 'import sys; print(sys.version)')"
want="$({ cat "$SRC/python-requirements.txt"; echo "$py_version"; echo layout-2; } | hash_of)"
if up_to_date "$CACHE/python/.stamp" "$want"; then
    log "python payload is up to date ($CACHE/python)"
else
    log "building the python payload with $PYTHON ($py_version)"
    tmp="$(mktemp -d "$CACHE/.python.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    "$PYTHON" -m pip install "${PIP[@]}" --only-binary=:all: \
        --target "$tmp/autoinstrumentation" -r "$SRC/python-requirements.txt"
    # The musl variant (annotation otel-python-platform: musl), from musllinux wheels.
    py_tag="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
    "$PYTHON" -m pip install "${PIP[@]}" --only-binary=:all: \
        --platform "musllinux_1_2_$(uname -m)" --platform "musllinux_1_1_$(uname -m)" \
        --python-version "$py_tag" --implementation cp --abi "cp$py_tag" --abi abi3 --abi none \
        --target "$tmp/autoinstrumentation-musl" -r "$SRC/python-requirements.txt"
    chmod -R go+rX "$tmp"
    echo "$want" > "$tmp/.stamp"
    rm -rf "$CACHE/python"
    mv "$tmp" "$CACHE/python"
    trap - EXIT
    log "python payloads: $CACHE/python/autoinstrumentation{,-musl} ($(du -sh "$CACHE/python" | cut -f1))"
fi

# ---------------------------------------------------------------- nodejs payload
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "node/npm not found; installing Debian's nodejs and npm"
        apt-get update -qq || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    else
        echo "build-autoinstrumentation: node and npm not found (and cannot apt-get them): the Node.js payload is not built" >&2
    fi
fi
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    node_major="$(node -p 'process.versions.node.split(".")[0]')"
    want="$({ cat "$SRC/nodejs/package.json" "$SRC/nodejs/package-lock.json" \
        "$SRC/nodejs/autoinstrumentation.js"; echo "node $node_major"; echo layout-2; } | hash_of)"
    if up_to_date "$CACHE/nodejs/.stamp" "$want"; then
        log "nodejs payload is up to date ($CACHE/nodejs)"
    else
        log "building the nodejs payload with node $(node --version), npm $(npm --version)"
        tmp="$(mktemp -d "$CACHE/.nodejs.XXXXXX")"
        trap 'rm -rf "$tmp"' EXIT
        dest="$tmp/autoinstrumentation"
        mkdir -p "$dest"
        cp "$SRC/nodejs/package.json" "$SRC/nodejs/package-lock.json" \
            "$SRC/nodejs/autoinstrumentation.js" "$dest/"
        # --ignore-scripts: no package needs its install script at run time (protobufjs's only
        # checks its CLI's dependencies), and the payload stays the same wherever it is built.
        (cd "$dest" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
        # Type declarations and source maps are never loaded at run time; they are 60% of the
        # files, and every pod's init container copies every file.
        find "$dest/node_modules" -type f \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' \
            -o -name '*.d.cts' \) -delete
        chmod -R go+rX "$tmp"
        echo "$want" > "$tmp/.stamp"
        rm -rf "$CACHE/nodejs"
        mv "$tmp" "$CACHE/nodejs"
        trap - EXIT
        log "nodejs payload: $CACHE/nodejs/autoinstrumentation ($(du -sh "$CACHE/nodejs" | cut -f1))"
    fi
fi

# ---------------------------------------------------------------- demo venv
want="$({ cat "$ROOT/demo/requirements.txt"; echo "$py_version"; } | hash_of)"
if up_to_date "$DEMO_VENV/.osprey-stamp" "$want" && [ -x "$DEMO_VENV/bin/python" ]; then
    log "demo venv is up to date ($DEMO_VENV)"
else
    log "creating the demo venv $DEMO_VENV"
    rm -rf "$DEMO_VENV"
    "$PYTHON" -m venv "$DEMO_VENV"
    "$DEMO_VENV/bin/python" -m pip install "${PIP[@]}" --only-binary=:all: -r "$ROOT/demo/requirements.txt"
    echo "$want" > "$DEMO_VENV/.osprey-stamp"
fi
