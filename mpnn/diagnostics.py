"""Checks to run before trusting a number (the "recipe for training neural networks").

Each check builds the configured model and data exactly as train.py does and answers one
question: is the loss at initialisation right, does a trivial baseline lose, do the inputs carry
signal, can the model fit one batch, does each prediction depend only on its own molecule?
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from omegaconf import DictConfig

from mpnn.data.batch import MoleculeBatch
from mpnn.data.datamodule import QM9DataModule
from mpnn.training.module import MPNNModule
from mpnn.training.run import build

EXPECTED_INIT_LOSS = 1.0  # MSE of a ~zero prediction on a standardised target


def _zeroed(batch: MoleculeBatch) -> MoleculeBatch:
    """The same batch with every input set to zero (only the atom count survives)."""
    return MoleculeBatch(
        x=torch.zeros_like(batch.x),
        pos=torch.zeros_like(batch.pos),
        bond=torch.zeros_like(batch.bond),
        mask=batch.mask,
        y=batch.y,
        index=batch.index,
    )


def _fit(module: MPNNModule, batches: list[MoleculeBatch], steps: int, lr: float, zero_inputs: bool = False) -> float:
    """Plain Adam on the given batches, cycling; returns the last loss."""
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    module.train()
    loss = torch.tensor(float("nan"))
    for step in range(steps):
        batch = batches[step % len(batches)]
        loss, _ = module.loss(_zeroed(batch) if zero_inputs else batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


@torch.no_grad()
def _mae(module: MPNNModule, batches: list[MoleculeBatch], zero_inputs: bool = False) -> float:
    module.eval()
    errors = [(module.model.predict(_zeroed(b) if zero_inputs else b) - b.y.double()).abs() for b in batches]
    return torch.cat(errors).mean().item()


def _batches(datamodule: QM9DataModule, indices: np.ndarray, size: int) -> list[MoleculeBatch]:
    return [datamodule.batch(indices[i : i + size]) for i in range(0, len(indices), size)]


def batch_independence(module: MPNNModule, batch: MoleculeBatch, molecule: int = 0) -> bool:
    """Backpropagate from one molecule's output: only that molecule's inputs get gradient."""
    module.eval()
    x = batch.x.clone().requires_grad_(True)
    probe = MoleculeBatch(x=x, pos=batch.pos, bond=batch.bond, mask=batch.mask, y=batch.y, index=batch.index)
    module.model(probe)[molecule].backward()
    own = x.grad[molecule].abs().sum().item()
    others = torch.cat([x.grad[:molecule], x.grad[molecule + 1 :]]).abs().sum().item()
    return own > 0 and others == 0


def diagnose(cfg: DictConfig, train_steps: int = 100, overfit_steps: int = 200, overfit_size: int = 16) -> dict:
    datamodule, module = build(cfg)
    split = datamodule.split
    batch_size = min(cfg.data.batch_size, 32)
    train_batches = _batches(datamodule, split.train, batch_size)
    val_batches = _batches(datamodule, split.val, 512)

    with torch.no_grad():
        module.eval()
        init_loss = sum(module.loss(b)[0].item() * b.num_molecules for b in train_batches) / len(split.train)
    val_y = torch.cat([b.y for b in val_batches]).double()
    mean_predictor_mae = (val_y - module.model.scaler.mean).abs().mean().item()

    lr = cfg.optim.lr
    real, zero = copy.deepcopy(module), copy.deepcopy(module)  # same initial weights
    _fit(real, train_batches, train_steps, lr)
    _fit(zero, train_batches, train_steps, lr, zero_inputs=True)
    real_input_mae, input_independent_mae = _mae(real, val_batches), _mae(zero, val_batches, zero_inputs=True)

    overfit = copy.deepcopy(module)
    one_batch = datamodule.batch(split.train[:overfit_size])
    overfit_loss = _fit(overfit, [one_batch], overfit_steps, lr=3e-3)

    report = {
        "init_loss": init_loss,
        "expected_init_loss": EXPECTED_INIT_LOSS,
        "mean_predictor_mae": mean_predictor_mae,
        "input_independent_mae": input_independent_mae,
        "real_input_mae": real_input_mae,
        "overfit_one_batch_loss": overfit_loss,
        "batch_independence": batch_independence(copy.deepcopy(module), datamodule.batch(split.train[:8])),
        "unit": datamodule.target.unit,
        "train_steps": train_steps,
        "overfit_steps": overfit_steps,
        "overfit_molecules": overfit_size,
    }
    report["warnings"] = warnings(report)
    return report


def warnings(report: dict) -> list[str]:
    found = []
    if not 0.5 < report["init_loss"] < 2.0:
        found.append(
            f"initial loss {report['init_loss']:.3g} is far from {EXPECTED_INIT_LOSS}: check output init/scaling"
        )
    if not report["input_independent_mae"] > report["real_input_mae"]:
        found.append("the model does no better with real inputs than with zeroed inputs")
    if not report["overfit_one_batch_loss"] < 0.05:
        found.append(f"could not overfit one batch (loss {report['overfit_one_batch_loss']:.3g})")
    if not report["batch_independence"]:
        found.append("a molecule's prediction depends on other molecules in its batch")
    return found
