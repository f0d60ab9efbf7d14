"""Target standardisation stored in the model, so a checkpoint predicts in physical units."""

from __future__ import annotations

import torch
from torch import nn


class TargetScaler(nn.Module):
    """y_normalised = (y - mean) / std, with mean and std fitted on the training split only."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("std", torch.ones((), dtype=torch.float64))

    def fit(self, mean: float, std: float) -> None:
        if not std > 0:
            raise ValueError(f"target standard deviation must be positive, got {std}")
        self.mean.fill_(mean)
        self.std.fill_(std)

    def normalise(self, y: torch.Tensor) -> torch.Tensor:
        return ((y.double() - self.mean) / self.std).float()

    def denormalise(self, y: torch.Tensor) -> torch.Tensor:
        return y.double() * self.std + self.mean
