"""`mpnn-errors RUN_DIR [--top 10]`: where a trained run errs.

Prints the test MAE (and the published MAE of the run's model on its target, where known), the
molecules with the largest errors (QM9 index, SMILES, size, how their bonds were derived) and the
MAE by number of heavy atoms and by featurization path; writes every test molecule's error to
RUN_DIR/test_errors.csv and draws RUN_DIR/test_errors.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a finished run directory (holds test_predictions.npz)")
    parser.add_argument("--top", type=int, default=10, help="how many of the largest errors to list")
    parser.add_argument("--data-root", type=Path, help="the featurized cache's folder (default: the run's data.root)")
    args = parser.parse_args(argv)

    from mpnn.analysis import per_molecule_errors, summary
    from mpnn.sweep_plots import draw_error_breakdown

    try:
        frame, target = per_molecule_errors(args.run_dir, args.data_root)
    except FileNotFoundError as error:
        parser.error(str(error))
    results = args.run_dir / "results.json"
    model = json.loads(results.read_text()).get("model") if results.exists() else None
    print(summary(frame, target, args.top, model))
    frame.to_csv(args.run_dir / "test_errors.csv", index=False)
    draw_error_breakdown(frame, target, args.run_dir / "test_errors.png")
    print(f"\nall test molecules: {args.run_dir / 'test_errors.csv'}; chart: {args.run_dir / 'test_errors.png'}")


if __name__ == "__main__":
    main()
