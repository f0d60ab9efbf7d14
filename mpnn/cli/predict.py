"""`mpnn-predict MODEL [MODEL ...] --xyz molecules.xyz`: predict new molecules in physical units.

A MODEL is a checkpoint file (`--checkpoint FILE.ckpt` works too; the file alone is enough, no run
directory, config or QM9 cache) or a finished run directory (its best checkpoint; an ensemble run's,
`ensemble.size=K`: every member's).
molecules.xyz holds one or more XYZ blocks (atom count, comment line, `element x y z` in
Angstrom; elements H, C, N, O, F as in QM9). `--smiles FILE` (one SMILES per block, in order)
gives bond orders from a template, as QM9's own molecules were featurized; without it they are
perceived from the geometry. Several models of one target form an ensemble (mean, and the
standard deviation across them); models of other targets add columns. Prints one line per
molecule; `--out FILE.csv` also writes the table.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", type=Path, nargs="*", help="checkpoint files or finished run directories")
    parser.add_argument("--checkpoint", type=Path, action="append", default=[], help="a checkpoint file (repeatable)")
    parser.add_argument("--xyz", type=Path, required=True, help="XYZ file with one or more molecules")
    parser.add_argument("--smiles", type=Path, help="file with one SMILES per molecule, in the XYZ file's order")
    parser.add_argument("--out", type=Path, help="also write the predictions to this CSV file")
    args = parser.parse_args(argv)
    models = args.models + args.checkpoint
    if not models:
        parser.error("name at least one model: a checkpoint file (--checkpoint FILE.ckpt) or a run directory")
    for model in models:
        if not model.exists():
            parser.error(f"{model} does not exist")
    if args.out is not None and args.out.exists():
        parser.error(f"{args.out} exists; choose another --out")

    from mpnn.inference import predict_xyz

    try:
        smiles = args.smiles.read_text().split() if args.smiles else None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = predict_xyz(models, args.xyz.read_text(), smiles)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    for warning in caught:
        print(f"warning: {warning.message}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    if args.out is not None:
        table.to_csv(args.out, index=False)
        print(f"written: {args.out}")


if __name__ == "__main__":
    main()
