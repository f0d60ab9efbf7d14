"""Thin wrapper: `python scripts/benchmark.py ...` is `mpnn-benchmark ...` (mpnn/cli/benchmark.py)."""

from mpnn.cli.benchmark import main

if __name__ == "__main__":
    raise SystemExit(main())
