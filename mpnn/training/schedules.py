"""Learning-rate schedules, chosen with `schedule=<name>` (conf/schedule/).

Each is a function `(optimizer, total_steps, **settings) -> scheduler or None`; its YAML names it
as a `_partial_` Hydra target with the settings, and the Lightning module adds the optimizer
and the run's number of optimisation steps. A new schedule is one function plus one YAML.
"""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau


def constant(optimizer: torch.optim.Optimizer, total_steps: int) -> None:
    """The optimizer's learning rate throughout."""
    return None


def linear_decay(
    optimizer: torch.optim.Optimizer, total_steps: int, decay_start: float = 0.5, final_lr_factor: float = 0.05
) -> LambdaLR:
    """Gilmer et al.: constant, then from `decay_start` (a fraction of training) linearly down to
    lr * `final_lr_factor` at the last step; stepped every optimisation step."""
    if not 0 <= decay_start <= 1:
        raise ValueError(f"schedule.decay_start={decay_start!r} must be in [0, 1]: a fraction of training")
    if not 0 < final_lr_factor <= 1:
        raise ValueError(f"schedule.final_lr_factor={final_lr_factor!r} must be in (0, 1]")
    start = int(decay_start * total_steps)

    def factor(step: int) -> float:
        if step <= start:
            return 1.0
        progress = min(1.0, (step - start) / max(1, total_steps - start))
        return 1.0 - progress * (1.0 - final_lr_factor)

    return LambdaLR(optimizer, factor)


def plateau(
    optimizer: torch.optim.Optimizer, total_steps: int, factor: float = 0.7, patience: int = 5, min_lr: float = 1e-5
) -> ReduceLROnPlateau:
    """PyG's QM9 example: multiply the learning rate by `factor` when the validation MAE has not
    improved for `patience` epochs; stepped after every validation."""
    return ReduceLROnPlateau(optimizer, mode="min", factor=factor, patience=patience, min_lr=min_lr)
