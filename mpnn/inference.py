"""Trained models as files: load a checkpoint, predict molecules in physical units. One path for all.

    from mpnn import load_checkpoint
    model = load_checkpoint("best.ckpt")        # a ready MoleculeModel; no run directory, config or cache needed

A checkpoint carries the model's config, the data spec (target, recipe, edges, hydrogens) and the
fitted scaler, so it predicts by itself. Checkpoints are shared between people, so they are read
with `torch.load(weights_only=True)`: one that carries pickled Python objects is refused, and a
model config may only name classes of this project, PyG or PyTorch (`mpnn.models.factory`).

New molecules (XYZ, optionally with SMILES) go through the same RDKit featurization as QM9's.
Models that use distances expect geometries of QM9's quality (B3LYP/6-31G(2df,p) minima).
"""

from __future__ import annotations

import json
import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mpnn.data.cache import PackedQM9, pack
from mpnn.data.datamodule import molecule_store
from mpnn.data.graphs import GraphQM9
from mpnn.data.padded import PaddedQM9
from mpnn.data.source import read_xyz
from mpnn.data.spec import DataSpec
from mpnn.models.factory import build_model
from mpnn.models.protocol import MoleculeModel
from mpnn.targets import get_target

QM9_MAX_ATOMS = 29  # the largest QM9 molecule: larger ones are extrapolation
MAX_ATOMS = 255  # the cache layout counts atoms in one byte
MIN_DISTANCE = 0.5  # Angstrom: closer atoms overlap (a broken geometry, not a molecule)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> MoleculeModel:
    """The model of a checkpoint file, in eval mode, with `model.spec` (its DataSpec) and
    `model.backend` set; `model.predict(batch)` gives physical units."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0]
        raise ValueError(
            f"{path} holds pickled Python objects, which could run code when loaded; refusing it "
            f"(torch.load weights_only=True: {first_line})"
        ) from None
    hparams = checkpoint.get("hyper_parameters", {})
    if not {"model", "data"} <= hparams.keys():
        raise ValueError(f"{path} is not a checkpoint of this project (no model config and data spec in it)")
    if "seeds" in hparams:
        raise ValueError(
            f"{path} is the training checkpoint of an ensemble of {len(hparams['seeds'])} (for resuming it); predict "
            "with its run directory, or with a member's members/seed<s>/checkpoints/best.ckpt"
        )
    spec = DataSpec(**hparams["data"])
    model = build_model(hparams["model"], spec)
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state)
    model.backend = hparams.get("backend", model.backends[0])
    return model.to(map_location).eval()


def run_checkpoint(run_dir: str | Path, checkpoint: str | Path | None = None) -> Path:
    """The checkpoint of a run directory: `checkpoint` (relative to the run directory, or absolute),
    else the best one named in its results.json, always looked up inside the run directory (which
    may have moved since)."""
    run_dir = Path(run_dir)
    if checkpoint is None:
        results = run_dir / "results.json"
        if not results.exists():
            raise FileNotFoundError(f"{run_dir} holds no finished run (no results.json); name a checkpoint file")
        recorded = json.loads(results.read_text())["best_checkpoint"]
        if recorded is None:
            raise FileNotFoundError(f"{results} names no best checkpoint (the run saved none)")
        checkpoint = Path(recorded)
        if checkpoint.is_absolute():  # written by an older version: keep only the part inside the run
            checkpoint = Path("checkpoints") / checkpoint.name
    path = Path(checkpoint) if Path(checkpoint).is_absolute() else run_dir / checkpoint
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (the run's checkpoint was moved or deleted)")
    return path


def run_checkpoints(run_dir: str | Path) -> list[Path]:
    """The checkpoints a finished run directory predicts with: its best one, or for an ensemble run
    (`ensemble.size` > 1) every member's best one."""
    run_dir = Path(run_dir)
    results = run_dir / "results.json"
    members = json.loads(results.read_text()).get("members") if results.exists() else None
    if not members:
        return [run_checkpoint(run_dir)]
    return [run_checkpoint(run_dir / member["run_dir"]) for member in members]


@torch.no_grad()
def predict(model: MoleculeModel, store: PaddedQM9 | GraphQM9, rows: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Predictions in physical units (float64) for dataset rows `rows` of a store built for the
    model (`mpnn.data.datamodule.molecule_store`), on the model's device."""
    model.eval()
    weight = next(model.parameters())
    chunks = [torch.as_tensor(rows[i : i + batch_size], dtype=torch.long) for i in range(0, len(rows), batch_size)]
    batches = (store.gather(chunk.to(weight.device), dtype=weight.dtype) for chunk in chunks)
    return np.concatenate([model.predict(batch).cpu().numpy() for batch in batches])


def predict_packed(model: MoleculeModel, packed: PackedQM9, batch_size: int = 512) -> np.ndarray:
    """Predictions for every molecule of `packed`, featurized as the model was trained."""
    store = molecule_store(packed, model.spec, model.backend)
    return predict(model, store, np.arange(len(packed)), batch_size)


def featurize_xyz(xyz_text: str, smiles: list[str] | None = None) -> tuple[PackedQM9, list[str]]:
    """Molecules of an XYZ text, featurized as QM9's (RDKit), and their comment lines. Refuses
    overlapping atoms; warns about molecules larger than QM9's and SMILES that do not fit."""
    from mpnn.data.featurize import PATHS, featurize

    raw, comments = read_xyz(xyz_text, smiles)
    for m, (lo, hi) in enumerate(zip(raw.atom_ptr[:-1], raw.atom_ptr[1:])):
        name = f"molecule {m + 1} ({comments[m] or 'no comment'})"
        if hi - lo > MAX_ATOMS:
            raise ValueError(f"{name} has {hi - lo} atoms; at most {MAX_ATOMS} fit")
        pos = raw.pos[lo:hi].astype(np.float64)
        distance = np.linalg.norm(pos[:, None] - pos[None, :], axis=-1) + np.eye(hi - lo) * 1e9
        if distance.min() < MIN_DISTANCE:
            i, j = np.unravel_index(distance.argmin(), distance.shape)
            raise ValueError(
                f"{name}: atoms {i + 1} and {j + 1} are {distance.min():.3f} A apart (< {MIN_DISTANCE} A): "
                "overlapping atoms, not a molecule; check the coordinates (Angstrom)"
            )
        if hi - lo > QM9_MAX_ATOMS:
            warnings.warn(
                f"{name} has {hi - lo} atoms, more than any QM9 molecule ({QM9_MAX_ATOMS}): the prediction "
                "is an extrapolation",
                stacklevel=2,
            )
    packed = pack(raw, featurize(raw, workers=1, progress=False))
    if smiles is not None:
        for m in np.flatnonzero(packed.path != PATHS.index("template")):
            warnings.warn(
                f"molecule {m + 1} ({comments[m] or 'no comment'}): its SMILES {smiles[m]!r} does not match the "
                f"geometry's connectivity; bond orders were perceived from the geometry ({PATHS[packed.path[m]]})",
                stacklevel=2,
            )
    return packed, comments


def predict_xyz(
    checkpoints: str | Path | Sequence[str | Path], xyz_text: str, smiles: list[str] | None = None
) -> pd.DataFrame:
    """One row per XYZ block: its comment line, atom count, bond path and each target's prediction.

    `checkpoints` are checkpoint files or run directories (their best checkpoint; an ensemble run's:
    every member's). Several models of one target act as an ensemble: their mean, and the standard
    deviation across them (a rough uncertainty). Models of other targets give more columns, named
    `<target> [<unit>]` and `<target> std [<unit>]`.
    """
    from mpnn.data.featurize import PATHS

    sources = [checkpoints] if isinstance(checkpoints, (str, Path)) else list(checkpoints)
    packed, comments = featurize_xyz(xyz_text, smiles)
    by_target: dict[str, list[np.ndarray]] = {}
    files = [run_checkpoints(source) if source.is_dir() else [source] for source in map(Path, sources)]
    for file in (file for group in files for file in group):
        model = load_checkpoint(file)
        by_target.setdefault(model.spec.target, []).append(predict_packed(model, packed))
    table = {
        "molecule": np.arange(1, len(packed) + 1),
        "comment": comments,
        "atoms": packed.num_atoms.astype(int),
        "path": [PATHS[code] for code in packed.path],
    }
    for name, predictions in by_target.items():
        unit = get_target(name).unit
        table[f"{name} [{unit}]"] = np.mean(predictions, axis=0)
        if len(predictions) > 1:
            table[f"{name} std [{unit}]"] = np.std(predictions, axis=0, ddof=1)
    return pd.DataFrame(table)
