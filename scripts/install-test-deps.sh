#!/usr/bin/env bash
# Creates ./.venv (python3 -m venv) and installs requirements-test.txt into it.
# Idempotent: does nothing when the venv already matches the requirements file.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
REQ=requirements-test.txt
STAMP="$VENV/.requirements-test.sha256"
PYTHON="${PYTHON:-python3}"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "install-test-deps: $PYTHON not found; install Python 3.9+ (apt-get install python3 python3-venv)" >&2
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "install-test-deps: creating $VENV"
    if ! "$PYTHON" -m venv "$VENV"; then
        rm -rf "$VENV"
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "install-test-deps: python3 -m venv failed; installing python3-venv"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
            "$PYTHON" -m venv "$VENV"
        else
            echo "install-test-deps: python3 -m venv failed (on Debian: apt-get install python3-venv)" >&2
            exit 1
        fi
    fi
fi

# Prometheus (Debian) for the remote-write tests of the collector.
if ! command -v prometheus >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "install-test-deps: installing prometheus (Debian)"
        apt-get update -qq || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    else
        echo "install-test-deps: prometheus not found and cannot apt-get install it (not root); the remote-write tests will fail" >&2
    fi
fi

# kubectl (Debian package `kubectl`) for `kubectl kustomize` in tests/e2e/test_demo_k8s.py.
if ! command -v kubectl >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "install-test-deps: installing kubectl (Debian)"
        apt-get update -qq || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubectl >/dev/null
    else
        echo "install-test-deps: kubectl not found and cannot apt-get install it (not root); the demo kustomize test will fail" >&2
    fi
fi

# Headless Chromium (Debian) and playwright-core (npm, tests/ui) for tests/e2e/test_ui.py.
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "install-test-deps: installing chromium (Debian)"
        apt-get update -qq || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    else
        echo "install-test-deps: /usr/bin/chromium not found and cannot apt-get install it (not root); the UI test will fail" >&2
    fi
fi
if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: installing nodejs and npm (Debian)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
UI_STAMP=tests/ui/node_modules/.package-lock.sha256
ui_want="$(sha256sum tests/ui/package-lock.json | cut -d' ' -f1)"
if [ ! -f "$UI_STAMP" ] || [ "$(cat "$UI_STAMP")" != "$ui_want" ]; then
    if command -v npm >/dev/null 2>&1; then
        echo "install-test-deps: npm ci in tests/ui"
        (cd tests/ui && npm ci --no-audit --no-fund --loglevel=error)
        echo "$ui_want" > "$UI_STAMP"
    else
        echo "install-test-deps: npm not found; the UI test will fail (apt-get install nodejs npm)" >&2
    fi
fi

# The legacy Jaeger exporter's own venv (it needs the SDK of its time).
LEGACY=.venv-legacy
LEGACY_REQ=requirements-legacy.txt
LEGACY_STAMP="$LEGACY/.requirements.sha256"
legacy_want="$(sha256sum "$LEGACY_REQ" | cut -d' ' -f1)"
if [ ! -f "$LEGACY_STAMP" ] || [ "$(cat "$LEGACY_STAMP")" != "$legacy_want" ] \
    || ! "$LEGACY/bin/python" -c 'import opentelemetry.exporter.jaeger.thrift' 2>/dev/null; then
    echo "install-test-deps: installing $LEGACY_REQ into $LEGACY"
    [ -x "$LEGACY/bin/python" ] || "$PYTHON" -m venv "$LEGACY"
    "$LEGACY/bin/python" -m pip install --quiet --disable-pip-version-check -r "$LEGACY_REQ"
    echo "$legacy_want" > "$LEGACY_STAMP"
fi

# Auto-instrumentation payloads (PyPI/npm) and the demo venv, for tests/e2e/test_operator_podsim.py.
scripts/build-autoinstrumentation.sh

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
    && "$VENV/bin/python" -c 'import pytest, requests, grpc, psycopg, opentelemetry.sdk, opentelemetry.proto, opentelemetry.exporter.zipkin.json' 2>/dev/null; then
    echo "install-test-deps: $VENV is up to date"
    exit 0
fi

echo "install-test-deps: installing $REQ into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
echo "$want" > "$STAMP"
"$VENV/bin/python" -m pip list --disable-pip-version-check 2>/dev/null \
    | grep -iE '^(pytest|requests|grpcio|protobuf|psycopg|psycopg-binary|opentelemetry-(sdk|proto|api)) ' || true
