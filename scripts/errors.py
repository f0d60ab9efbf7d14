"""Thin wrapper: `python scripts/errors.py ...` is `mpnn-errors ...` (mpnn/cli/errors.py)."""

from mpnn.cli.errors import main

if __name__ == "__main__":
    main()
