"""Thin wrapper: `python scripts/diagnose.py ...` is `mpnn-diagnose ...` (mpnn/cli/diagnose.py)."""

from mpnn.cli.diagnose import main

if __name__ == "__main__":
    raise SystemExit(main())
