"""Target standardisation stored in the model as buffers, so a checkpoint predicts in physical units.

    normalised = (y - offset) / std,   offset = sum over atoms of atomref[z] + mean

`atomref` (per-element reference values) is zero unless the recipe is extensive; then it is fitted
on the training split by least squares over element counts (`fit_atomrefs`). `mean` and `std` are
the training split's statistics of what the atomrefs leave.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mpnn.data.elements import MAX_Z


def fit_atomrefs(counts: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-element values a (MAX_Z + 1,) minimising ||counts @ a - y||, from element counts (M, MAX_Z + 1).

    Elements absent from `counts` get 0 (they cannot be fitted). No intercept: the scaler's mean
    takes what is left.
    """
    counts = np.asarray(counts, dtype=np.float64)
    present = counts.sum(0) > 0
    atomref = np.zeros(counts.shape[1])
    atomref[present] = np.linalg.lstsq(counts[:, present], np.asarray(y, dtype=np.float64), rcond=None)[0]
    return atomref


class TargetScaler(nn.Module):
    """(y - offset) / std with offset = counts @ atomref + mean, all fitted on the training split only."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("std", torch.ones((), dtype=torch.float64))
        self.register_buffer("atomref", torch.zeros(MAX_Z + 1, dtype=torch.float64))

    def fit(self, y: np.ndarray, counts: np.ndarray, atomrefs: bool) -> None:
        """Fit on the training split: `y` (M,) in physical units, `counts` (M, MAX_Z + 1) element counts."""
        y = np.asarray(y, dtype=np.float64)
        atomref = fit_atomrefs(counts, y) if atomrefs else np.zeros(MAX_Z + 1)
        residual = y - np.asarray(counts, dtype=np.float64) @ atomref
        std = float(residual.std(ddof=1)) if len(residual) > 1 else 0.0
        if not std > 0:
            raise ValueError(f"target standard deviation over the training split must be positive, got {std}")
        self.atomref.copy_(torch.from_numpy(atomref))
        self.mean.fill_(float(residual.mean()))
        self.std.fill_(std)

    def offset(self, counts: torch.Tensor) -> torch.Tensor:
        return counts @ self.atomref + self.mean

    def normalise(self, y: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return ((y.double() - self.offset(counts)) / self.std).float()

    def denormalise(self, prediction: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return prediction.double() * self.std + self.offset(counts)
