"""Checks to run before trusting a number (the "recipe for training neural networks").

Each check builds the configured model and data exactly as train.py does and answers one
question: is the loss at initialisation right, does a trivial baseline lose, do the inputs carry
signal, can the model fit one batch, does each prediction depend only on its own molecule, and
(the paper's MPNN) are messages on the scale the GRU can use (`mpnn.message_scale`)?
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
from omegaconf import DictConfig

from mpnn.data.batch import MoleculeBatch
from mpnn.data.datamodule import QM9DataModule
from mpnn.message_scale import message_scale
from mpnn.plain_steps import PlainAdam
from mpnn.training.build import build
from mpnn.training.module import RegressionModule

EXPECTED_INIT_LOSS = 1.0  # MSE of a ~zero prediction on a standardised target


LATTICE_SPACING = 1.5  # Angstrom, about a bond: distances and angles stay defined for every geometric model


def _placeholder_positions(local: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Positions that depend only on each atom's place in its molecule: atom k sits on the k-th point of
    a 3 x 3 x ... lattice. Not all zero: models that build their graph from `pos` (SchNet, DimeNet++,
    ViSNet) would see zero distances, where DimeNet's radial basis and ViSNet's unit vectors are NaN."""
    lattice = torch.stack([local % 3, (local // 3) % 3, local // 9], dim=-1)
    return lattice.to(dtype) * LATTICE_SPACING


def zeroed_inputs(batch):
    """The same batch with what describes the molecule removed: features, bond types and edge features
    zeroed, every atom made the same element and put on a lattice point set by its index alone. Only
    the atom count survives (and, in a PyG batch, the edge list: with the default complete-graph
    edges that is the atom count too; with `data.edges=chemical_graph` the bond graph stays)."""
    if isinstance(batch, MoleculeBatch):
        local = torch.arange(batch.z.shape[1], device=batch.z.device).expand_as(batch.z)
        pos = _placeholder_positions(local, batch.pos.dtype) * batch.mask.unsqueeze(-1)
        return dataclasses.replace(
            batch, x=torch.zeros_like(batch.x), z=batch.mask.long(), pos=pos, bond=torch.zeros_like(batch.bond)
        )
    zeroed = batch.clone()
    local = torch.arange(batch.num_nodes, device=batch.z.device) - batch.ptr[batch.batch]
    zeroed.x, zeroed.pos = torch.zeros_like(batch.x), _placeholder_positions(local, batch.pos.dtype)
    zeroed.z, zeroed.edge_attr = torch.ones_like(batch.z), torch.zeros_like(batch.edge_attr)
    return zeroed


def _fit(module: RegressionModule, batches: list, steps: int, lr: float, zero_inputs: bool = False) -> float:
    """Plain Adam on the given batches, cycling; returns the last loss."""
    optimizer = PlainAdam(module.parameters(), lr=lr)
    module.train()

    def loss_of(batch) -> torch.Tensor:
        target = module.model.normalise(batch)  # from the real molecule (element counts)
        prediction = module.model(zeroed_inputs(batch) if zero_inputs else batch)
        return torch.nn.functional.mse_loss(prediction, target)

    loss = torch.tensor(float("nan"))
    for step in range(steps):
        loss = optimizer.step(loss_of, batches[step % len(batches)])
    return loss.item()


@torch.no_grad()
def _mae(module: RegressionModule, batches: list, zero_inputs: bool = False) -> float:
    module.eval()
    model = module.model
    errors = [
        (model.denormalise(model(zeroed_inputs(b) if zero_inputs else b), b) - b.y.double()).abs() for b in batches
    ]
    return torch.cat(errors).mean().item()


def _batches(datamodule: QM9DataModule, indices: np.ndarray, size: int) -> list:
    return [datamodule.batch(indices[i : i + size]) for i in range(0, len(indices), size)]


def batch_independence(module: RegressionModule, batch, molecule: int = 0) -> bool:
    """Backpropagate from one molecule's output: only that molecule's inputs (features and
    coordinates, whichever the model reads) get gradient."""
    module.eval()
    probe = dataclasses.replace(batch) if isinstance(batch, MoleculeBatch) else batch.clone()
    probe.x = batch.x.clone().requires_grad_(True)
    probe.pos = batch.pos.clone().requires_grad_(True)
    module.model(probe)[molecule].backward()
    # Per atom; an input the model does not read (x for SchNet, DimeNet++, ViSNet) has no gradient.
    per_atom = sum(t.grad.abs().sum(-1) for t in (probe.x, probe.pos) if t.grad is not None)
    if not torch.is_tensor(per_atom):  # neither input reaches the output
        return False
    if isinstance(batch, MoleculeBatch):
        grad = per_atom.sum(-1)  # (B, n) -> per molecule
    else:
        grad = per_atom.new_zeros(batch.num_graphs).index_add_(0, batch.batch, per_atom)
    own = grad[molecule].item()
    others = torch.cat([grad[:molecule], grad[molecule + 1 :]]).sum().item()
    return own > 0 and others == 0


def diagnose(cfg: DictConfig, train_steps: int = 100, overfit_steps: int = 200, overfit_size: int = 8) -> dict:
    """The sanity checks of a config. One batch of 8 molecules: with 16, the default edge_net's loss
    sat on a plateau near 0.66 for 60 to 200 of the 200 steps, depending on the thread count."""
    datamodule, module = build(cfg)
    split = datamodule.split
    batch_size = min(cfg.data.batch_size, 32)
    train_batches = _batches(datamodule, split.train, batch_size)
    val_batches = _batches(datamodule, split.val, 512)

    with torch.no_grad():
        module.eval()
        init_loss = sum(module.loss(b)[0].item() * b.num_graphs for b in train_batches) / len(split.train)
    val_y = torch.cat([b.y for b in val_batches]).double()
    offsets = torch.cat([module.model.denormalise(torch.zeros(b.num_graphs), b) for b in val_batches])
    mean_predictor_mae = (val_y - offsets).abs().mean().item()

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
        # On the trained copy: at initialisation DimeNet++'s output layers are zero for mu, HOMO, LUMO
        # (its reference configuration), so no input would get any gradient.
        "batch_independence": batch_independence(copy.deepcopy(real), datamodule.batch(split.train[:8])),
        "unit": datamodule.target.unit,
        "train_steps": train_steps,
        "overfit_steps": overfit_steps,
        "overfit_molecules": overfit_size,
    }
    clip = cfg.optim.gradient_clip_val
    report["message_scale"] = message_scale(module, train_batches, val_batches[:1], train_steps, lr, clip)
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
    found += message_scale_warnings(report.get("message_scale") or {})
    return found


SATURATED_LIMIT = 0.5  # more than half of a GRU gate's pre-activations on the flat part of its activation
MESSAGE_TO_STATE_LIMIT = 10.0


def message_scale_warnings(scale: dict) -> list[str]:
    """What `mpnn.message_scale` found that stalls training (docs/TRAINING.md). Saturation is judged at
    initialisation only: a trained GRU saturates some gates on purpose (70-90% after 100 steps in runs
    that learn well)."""
    found = []
    steps = scale.get("at_init", [])
    if steps:
        worst = max(steps, key=lambda s: max(s["saturated_reset"], s["saturated_update"], s["saturated_candidate"]))
        saturated = max(worst["saturated_reset"], worst["saturated_update"], worst["saturated_candidate"])
        ratio = max(s["message_to_state"] for s in steps)
        if saturated > SATURATED_LIMIT or ratio > MESSAGE_TO_STATE_LIMIT:
            found.append(
                f"at initialisation messages reach {ratio:.3g}x the node states and {saturated:.0%} of a GRU "
                f"gate's pre-activations saturate (step {worst['step']}): the update cannot use them; see "
                "docs/TRAINING.md (model.message.sum_scale)"
            )
    readout = scale.get("readout")
    if readout and not readout["loss_without_states"] > 1.05 * readout["loss"]:
        found.append(
            f"after {scale['training_steps']} steps the readout does as well without h_T (loss "
            f"{readout['loss_without_states']:.3g} vs {readout['loss']:.3g}): message passing has not helped yet; "
            "if a longer run shows the same, it carries nothing the readout uses"
        )
    return found
