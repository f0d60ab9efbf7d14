#!/usr/bin/env bash
# The prepared GPU check: bash scripts/gpu_check.sh [OUT_DIR]. What it runs and writes: mpnn/bench/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m mpnn.bench.gpu_check "$@"
