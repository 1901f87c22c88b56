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

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
    && "$VENV/bin/python" -c 'import pytest, requests, grpc, psycopg, opentelemetry.sdk, opentelemetry.proto' 2>/dev/null; then
    echo "install-test-deps: $VENV is up to date"
    exit 0
fi

echo "install-test-deps: installing $REQ into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
echo "$want" > "$STAMP"
"$VENV/bin/python" -m pip list --disable-pip-version-check 2>/dev/null \
    | grep -iE '^(pytest|requests|grpcio|protobuf|psycopg|psycopg-binary|opentelemetry-(sdk|proto|api)) ' || true
