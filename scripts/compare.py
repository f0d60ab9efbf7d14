"""Compare runs against chemical accuracy: `python scripts/compare.py outputs/sweeps/<date> [more dirs]`.

Prints one line per run (test MAE, error ratio, the paper's enn-s2s ratio) and draws
error_ratios.png (or --out PATH) with chemical accuracy as the reference line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="run or sweep directories, or results.json files")
    parser.add_argument("--out", default="error_ratios.png", help="where to draw the chart")
    args = parser.parse_args()

    from mpnn.report import collect, table
    from mpnn.training.plots import draw_error_ratios

    try:
        runs = collect(args.paths)
    except FileNotFoundError as error:
        parser.error(str(error))
    print(table(runs))
    draw_error_ratios(runs, Path(args.out))
    print(f"chart: {args.out}")


if __name__ == "__main__":
    main()
