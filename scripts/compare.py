"""Thin wrapper: `python scripts/compare.py ...` is `mpnn-compare ...` (mpnn/cli/compare.py)."""

from mpnn.cli.compare import main

if __name__ == "__main__":
    main()
