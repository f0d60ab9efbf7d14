"""Predict for new molecules: `python scripts/predict.py RUN_DIR [RUN_DIR ...] molecules.xyz`.

molecules.xyz holds one or more XYZ blocks (atom count, comment line, `element x y z` in
Angstrom; elements H, C, N, O, F as in QM9). `--smiles FILE` (one SMILES per block, in order)
gives bond orders from a template, as QM9's own molecules were featurized; without it they are
perceived from the geometry. Several runs of one target form an ensemble (mean, and the
standard deviation across the runs); runs of other targets add columns. Prints one line per
molecule; `--out FILE.csv` also writes the table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", type=Path, nargs="+", help="finished run directories (best checkpoint, config)")
    parser.add_argument("xyz", type=Path, help="XYZ file with one or more molecules")
    parser.add_argument("--smiles", type=Path, help="file with one SMILES per molecule, in the XYZ file's order")
    parser.add_argument("--out", type=Path, help="also write the predictions to this CSV file")
    args = parser.parse_args()
    for run_dir in args.run_dirs:
        if not (run_dir / "results.json").exists():
            parser.error(f"{run_dir} holds no finished run (no results.json)")
    if args.out is not None and args.out.exists():
        parser.error(f"{args.out} exists; choose another --out")

    from mpnn.predict import predict_xyz

    try:
        smiles = args.smiles.read_text().split() if args.smiles else None
        table = predict_xyz(args.run_dirs, args.xyz.read_text(), smiles)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    if args.out is not None:
        table.to_csv(args.out, index=False)
        print(f"written: {args.out}")


if __name__ == "__main__":
    main()
