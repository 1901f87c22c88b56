#!/usr/bin/env bash
# The whole test suite on a fresh machine: Python test deps, release build, cargo tests
# (release profile only, so one profile is compiled), then the end-to-end tests in tests/e2e
# against the built binary. Extra arguments go to pytest (e.g. scripts/test.sh -k durability).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

section() { printf '\n==================== %s ====================\n' "$*"; }
started=$(date +%s)
elapsed() { echo "$(( $(date +%s) - started ))s"; }

section "test dependencies (Python venv)"
scripts/install-test-deps.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/osprey-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
echo "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"

section "cargo build --release --workspace --bins  [$(elapsed)]"
cargo build --release --workspace --bins

section "cargo test --release --workspace  [$(elapsed)]"
cargo test --release --workspace

export OSPREY_BIN="${OSPREY_BIN:-$CARGO_TARGET_DIR/release/osprey}"
if [ ! -x "$OSPREY_BIN" ]; then
    echo "test.sh: $OSPREY_BIN was not built" >&2
    exit 1
fi

section "end-to-end tests: pytest tests/e2e (OSPREY_BIN=$OSPREY_BIN)  [$(elapsed)]"
"$ROOT/.venv/bin/python" -m pytest tests/e2e -q -p no:cacheprovider "$@"

section "all tests passed  [$(elapsed)]"
