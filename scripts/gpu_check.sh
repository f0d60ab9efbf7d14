#!/usr/bin/env bash
# The prepared GPU check: bash scripts/gpu_check.sh [OUT_DIR]. What it runs and writes: mpnn/bench/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
# Nodes that have only python3 (no `python` on PATH) run it too.
PYTHON=$(command -v python || command -v python3) || { echo "gpu_check.sh: neither python nor python3 is on PATH" >&2; exit 127; }
exec "$PYTHON" -m mpnn.bench.gpu_check "$@"
