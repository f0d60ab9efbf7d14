"""`mpnn-compare outputs/sweeps/<date> [more dirs]`: compare runs against chemical accuracy and published results.

Charts and runs.csv (the table, one row per run) go into the first directory given (or next to
the first results.json) unless named.
Prints one line per run (test MAE, error ratio, the paper's enn-s2s ratio, validation MAE, the
settings that differ between the runs), the run selected on validation MAE for each target, seed
groups as mean ± standard deviation and as an ensemble, and draws error_ratios.png (--out),
learning_curves.png (--curves) and, for targets run at several training-set sizes
(`data.train_size`), training_sizes.png (--sizes), with chemical accuracy as the reference line, and,
when runs differ in numeric settings other than the seed (a search's hyperparameters),
settings.png (--settings): validation error against each of them. --wandb logs the table, the error
ratios and the charts as one offline W&B run of the sweep (in <first dir>/wandb).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="run or sweep directories, or results.json files")
    parser.add_argument("--out", type=Path, help="the error-ratio chart (default: error_ratios.png in the first path)")
    parser.add_argument("--curves", type=Path, help="the validation curves (default: learning_curves.png, as --out)")
    parser.add_argument("--sizes", type=Path, help="error against training size (default: training_sizes.png)")
    parser.add_argument("--settings", type=Path, help="error against differing settings (default: settings.png)")
    parser.add_argument("--csv", type=Path, help="the table, one row per run (default: runs.csv, as --out)")
    parser.add_argument(
        "--wandb", action="store_true", help="also log the table and charts as one offline W&B run of the sweep"
    )
    args = parser.parse_args(argv)
    first = Path(args.paths[0])
    chart_dir = first if first.is_dir() else first.parent  # charts go next to the runs they show
    out = args.out or chart_dir / "error_ratios.png"
    curves = args.curves or chart_dir / "learning_curves.png"
    sizes = args.sizes or chart_dir / "training_sizes.png"
    settings = args.settings or chart_dir / "settings.png"
    csv = args.csv or chart_dir / "runs.csv"

    import pandas as pd

    from mpnn.compare import collect, differing_settings, failed, rows, table, training_size_groups, unfinished
    from mpnn.sweep_plots import (
        draw_error_ratios,
        draw_learning_curves,
        draw_setting_effects,
        draw_training_sizes,
    )

    failures = failed(args.paths)
    failures_text = f"failed, not compared: {len(failures)} runs\n" + "\n".join(f"  {r}  {why}" for r, why in failures)
    try:
        runs = collect(args.paths)
    except FileNotFoundError as error:
        parser.error(f"{error}\n{failures_text}" if failures else str(error))
    print(table(runs))
    if failures:
        print(failures_text)
    missing = unfinished(args.paths)
    if missing:
        print(f"not compared, no results.json (failed, interrupted or running): {len(missing)} runs")
        print("\n".join(f"  {run}" for run in missing))
    draw_error_ratios(runs, out)
    draw_learning_curves(runs, curves)
    charts = [out, curves]
    groups = training_size_groups(runs)
    if groups:
        draw_training_sizes(groups, sizes)
        charts.append(sizes)
    if draw_setting_effects(runs, differing_settings(runs), settings):
        charts.append(settings)
    print(f"charts: {', '.join(map(str, charts))}")
    pd.DataFrame(rows(runs)).to_csv(csv, index=False)
    print(f"table: {csv}")
    if args.wandb:
        from mpnn.compare import log_to_wandb

        print(f"W&B: {log_to_wandb(rows(runs), charts, chart_dir)} (upload with `wandb sync`)")


if __name__ == "__main__":
    main()
