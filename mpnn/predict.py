"""Predictions of a trained run for new molecules given as XYZ geometries.

The molecules go through the same featurization as QM9's (RDKit, bond orders from a SMILES
template when one is given, else from the geometry) and the run's own edge representation, and
the checkpoint's scaler returns physical units. Models that use distances expect geometries of
QM9's quality (B3LYP/6-31G(2df,p) minima); on other geometries their error is larger than on QM9.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from mpnn.data.batch import PaddedQM9
from mpnn.data.cache import pack
from mpnn.data.featurize import PATHS, featurize
from mpnn.data.source import read_xyz
from mpnn.targets import get_target
from mpnn.training.run import load_model

MAX_ATOMS = 255  # the cache layout counts atoms in one byte; QM9 molecules have at most 29


def predict_xyz(
    run_dirs: str | Path | Sequence[str | Path], xyz_text: str, smiles: list[str] | None = None
) -> pd.DataFrame:
    """One row per XYZ block: its comment line, atom count, bond path and each target's prediction.

    Several runs of one target act as an ensemble: their mean, and the standard deviation across
    them (the ensemble's spread, a rough uncertainty). Runs of other targets give more columns.
    Columns are named `<target> [<unit>]` and `<target> std [<unit>]`.
    """
    runs = [Path(run_dirs)] if isinstance(run_dirs, (str, Path)) else [Path(run_dir) for run_dir in run_dirs]
    raw, comments = read_xyz(xyz_text, smiles)
    sizes = np.diff(raw.atom_ptr)
    if sizes.max() > MAX_ATOMS:
        raise ValueError(f"molecule {int(sizes.argmax()) + 1} has {sizes.max()} atoms; at most {MAX_ATOMS} fit")
    packed = pack(raw, featurize(raw, workers=1, progress=False))
    by_target: dict[str, list[np.ndarray]] = {}
    for run_dir in runs:
        cfg = OmegaConf.load(run_dir / "config_resolved.yaml")
        dataset = PaddedQM9(packed, target_column=0, explicit_h=cfg.data.explicit_h)
        model = load_model(run_dir)
        chunks = torch.arange(len(dataset)).split(cfg.data.eval_batch_size)
        predicted = np.concatenate([model.predict(dataset.gather(chunk)).numpy() for chunk in chunks])
        by_target.setdefault(cfg.target, []).append(predicted)
    table = {
        "molecule": raw.index,
        "comment": comments,
        "atoms": sizes,
        "path": [PATHS[code] for code in packed.path],
    }
    for name, predictions in by_target.items():
        unit = get_target(name).unit
        table[f"{name} [{unit}]"] = np.mean(predictions, axis=0)
        if len(predictions) > 1:
            table[f"{name} std [{unit}]"] = np.std(predictions, axis=0, ddof=1)
    return pd.DataFrame(table)
