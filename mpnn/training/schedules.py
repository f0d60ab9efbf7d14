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


def step_decay(
    optimizer: torch.optim.Optimizer, total_steps: int, every_steps: int = 500_000, factor: float = 0.5
) -> LambdaLR:
    """The paper's reference implementation (brain-research/mpnn): lr times `factor` after every
    `every_steps` optimisation steps, counted in steps as its code does, not as a fraction of training;
    stepped every optimisation step. `total_steps` is unused."""
    if not (isinstance(every_steps, int) and every_steps >= 1):
        raise ValueError(f"schedule.every_steps={every_steps!r} must be a whole number >= 1")
    if not 0 < factor <= 1:
        raise ValueError(f"schedule.factor={factor!r} must be in (0, 1]")
    return LambdaLR(optimizer, lambda step: factor ** (step // every_steps))


def plateau(
    optimizer: torch.optim.Optimizer, total_steps: int, factor: float = 0.7, patience: int = 5, min_lr: float = 1e-5
) -> ReduceLROnPlateau:
    """PyG's QM9 example: multiply the learning rate by `factor` when the validation MAE has not
    improved for `patience` epochs; stepped after every validation."""
    return ReduceLROnPlateau(optimizer, mode="min", factor=factor, patience=patience, min_lr=min_lr)


def warmup_exponential_decay(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int = 3000,
    decay_rate: float = 0.01,
    decay_steps: int = 4_000_000,
) -> LambdaLR:
    """DimeNet's schedule (gasteigerjo/dimenet, dimenet/training/schedules.py): lr times a linear
    warmup from 1/`warmup_steps` to 1 over `warmup_steps`, times `decay_rate` ** (step / `decay_steps`)
    (continuous exponential decay, from step 0); stepped every optimisation step. `total_steps` is unused:
    the decay is set in steps, as in the reference, not as a fraction of training."""
    if not (isinstance(warmup_steps, int) and warmup_steps >= 1):
        raise ValueError(f"schedule.warmup_steps={warmup_steps!r} must be a whole number >= 1")
    if not 0 < decay_rate <= 1:
        raise ValueError(f"schedule.decay_rate={decay_rate!r} must be in (0, 1]")
    if not decay_steps > 0:
        raise ValueError(f"schedule.decay_steps={decay_steps!r} must be positive")

    def factor(step: int) -> float:
        warmup = min(1.0, 1 / warmup_steps + (1 - 1 / warmup_steps) * step / warmup_steps)
        return warmup * decay_rate ** (step / decay_steps)

    return LambdaLR(optimizer, factor)
