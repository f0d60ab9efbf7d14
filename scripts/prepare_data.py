"""Thin wrapper: `python scripts/prepare_data.py ...` is `mpnn-prepare ...` (mpnn/cli/prepare.py)."""

from mpnn.cli.prepare import main

if __name__ == "__main__":
    raise SystemExit(main())
