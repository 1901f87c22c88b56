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

# Debian packages some tests need, installed when missing (root with apt-get only).
# apt_need PROGRAM PACKAGE WHAT: PROGRAM is a command name or an absolute path.
apt_need() {
    local program="$1" package="$2" what="$3"
    if [ -x "$program" ] || command -v "$program" >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "install-test-deps: installing $package (Debian)"
        apt-get update -qq || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null
    else
        echo "install-test-deps: $program not found and cannot apt-get install $package (not root); $what will fail" >&2
    fi
}
apt_need prometheus prometheus "the collector's remote-write tests"
apt_need kubectl kubectl "tests/e2e/test_demo_k8s.py (kubectl kustomize)"
# Headless Chromium and playwright-core (npm, tests/ui) for tests/e2e/test_ui.py.
apt_need /usr/bin/chromium chromium "the UI test"
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
