"""Where a trained model errs: its test errors joined with what each molecule is.

A run's `test_predictions.npz` holds dataset rows, predictions and DFT values; this adds the QM9
index, SMILES, size and featurization path of each molecule, so that the largest errors can be
looked at and the error can be broken down by molecule size and by how the bonds were derived
(a much larger error on the fallback paths would point at the featurization, not the model).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from mpnn.data import cache
from mpnn.data.featurize import PATHS
from mpnn.data.source import read_smiles
from mpnn.targets import Target, get_target


def per_molecule_errors(run_dir: str | Path, data_root: str | Path | None = None) -> tuple[pd.DataFrame, Target]:
    """One row per test molecule of a finished run, largest absolute error first.

    `data_root` is where the featurized cache lives (default: the run's `data.root`).
    """
    run_dir = Path(run_dir)
    results = run_dir / "results.json"
    status = json.loads(results.read_text()) if results.exists() else {}
    if status.get("status", "completed") != "completed":
        raise FileNotFoundError(
            f"{run_dir} did not complete, so it has no test errors ({status['status']}: "
            f"{status.get('error', 'see its results.json')})"
        )
    predictions = run_dir / "test_predictions.npz"
    if not predictions.exists():
        raise FileNotFoundError(f"{predictions} not found: is {run_dir} a finished run directory?")
    cfg = OmegaConf.load(run_dir / "config_resolved.yaml")
    target = get_target(cfg.target)
    packed, _ = cache.load_or_build(Path(data_root or cfg.data.root))
    with np.load(predictions) as saved:
        rows, predicted, dft = saved["index"], saved["prediction"], saved["target"]
    atom_ptr = np.concatenate([[0], np.cumsum(packed.num_atoms.astype(np.int64))])
    heavy = np.add.reduceat((packed.z > 1).astype(np.int64), atom_ptr[:-1])
    qm9_index = packed.index[rows]
    smiles = read_smiles()
    frame = pd.DataFrame(
        {
            "qm9_index": qm9_index,
            "smiles": [smiles[int(i)] for i in qm9_index],
            "atoms": packed.num_atoms[rows].astype(int),
            "heavy_atoms": heavy[rows],
            "path": [PATHS[code] for code in packed.path[rows]],
            "dft": dft,
            "predicted": predicted,
            "error": predicted - dft,
        }
    )
    frame["abs_error"] = frame["error"].abs()
    return frame.sort_values("abs_error", ascending=False, ignore_index=True), target


def breakdown(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Molecule count and MAE per value of a column (e.g. heavy_atoms, path)."""
    grouped = frame.groupby(by)["abs_error"]
    return pd.DataFrame({"molecules": grouped.size(), "mae": grouped.mean()})


def summary(frame: pd.DataFrame, target: Target, top: int = 10, model: str | None = None) -> str:
    """The test MAE, the largest errors and the breakdowns; with the run's `model` (its config name),
    also what was published for that model on this target (`mpnn.published`), as the yardstick."""
    from mpnn.published import PUBLISHED_MAE

    unit = target.unit
    mae = frame["abs_error"].mean()
    ratio = f", error ratio {mae / target.chemical_accuracy:.3g}" if target.chemical_accuracy else ""
    lines = [f"{target.name}: test MAE {mae:.4g} {unit}{ratio} over {len(frame)} molecules"]
    if model is not None:
        known = PUBLISHED_MAE.get(model, {}).get(target.name)
        reported = f"published test MAE {known.mae:.4g} {unit} ({known.source})" if known else "no published MAE known"
        lines.append(f"model {model}: {reported}")
    lines.append("")
    lines.append(f"largest errors ({unit}):")
    columns = ["qm9_index", "smiles", "heavy_atoms", "path", "dft", "predicted", "error"]
    lines.append(frame.head(top)[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for by in ("heavy_atoms", "path"):
        lines += ["", f"by {by} (MAE in {unit}):"]
        lines.append(breakdown(frame, by).to_string(float_format=lambda v: f"{v:.4g}"))
    return "\n".join(lines)
