"""Compare runs against chemical accuracy: `python scripts/compare.py outputs/sweeps/<date> [more dirs]`.

Prints one line per run (test MAE, error ratio, the paper's enn-s2s ratio, validation MAE, the
settings that differ between the runs), the run selected on validation MAE for each target, seed
groups as mean ± standard deviation and as an ensemble, and draws error_ratios.png (--out),
learning_curves.png (--curves) and, for targets run at several training-set sizes
(`data.train_size`), training_sizes.png (--sizes), with chemical accuracy as the reference line, and,
when runs differ in numeric settings other than the seed (a search's hyperparameters),
settings.png (--settings): validation error against each of them.
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
    parser.add_argument("--out", default="error_ratios.png", help="where to draw the error-ratio chart")
    parser.add_argument("--curves", default="learning_curves.png", help="where to draw the validation curves")
    parser.add_argument("--sizes", default="training_sizes.png", help="where to draw error against training size")
    parser.add_argument("--settings", default="settings.png", help="where to draw error against differing settings")
    args = parser.parse_args()

    from mpnn.report import collect, differing_settings, table, training_size_groups
    from mpnn.training.plots import (
        draw_error_ratios,
        draw_learning_curves,
        draw_setting_effects,
        draw_training_sizes,
    )

    try:
        runs = collect(args.paths)
    except FileNotFoundError as error:
        parser.error(str(error))
    print(table(runs))
    draw_error_ratios(runs, Path(args.out))
    draw_learning_curves(runs, Path(args.curves))
    charts = [args.out, args.curves]
    groups = training_size_groups(runs)
    if groups:
        draw_training_sizes(groups, Path(args.sizes))
        charts.append(args.sizes)
    if draw_setting_effects(runs, differing_settings(runs), Path(args.settings)):
        charts.append(args.settings)
    print(f"charts: {', '.join(charts)}")


if __name__ == "__main__":
    main()
