"""Thin wrapper: `python scripts/predict.py ...` is `mpnn-predict ...` (mpnn/cli/predict.py)."""

from mpnn.cli.predict import main

if __name__ == "__main__":
    main()
