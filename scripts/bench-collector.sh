#!/usr/bin/env bash
# Collector benchmark beside Rotel: installs Rotel (PyPI package `rotel`, which ships its binary)
# into ./.venv-bench, builds the release binary, runs `osprey bench collector`, which rewrites
# its section of BENCHMARKS.md. Extra arguments go to `osprey bench collector`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/osprey-target}"
if [ ! -x .venv-bench/bin/python ]; then
    python3 -m venv .venv-bench
fi
.venv-bench/bin/python -m pip install --quiet --disable-pip-version-check 'rotel==0.0.1a15'
ROTEL="$(.venv-bench/bin/python -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')"
cargo build --release -p osprey
"$CARGO_TARGET_DIR/release/osprey" bench collector --rotel "$ROTEL" "$@"
