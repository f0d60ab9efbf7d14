"""How the paper's MPNN propagates at a config's initial weights and after a short training: the
"message scale" check of `mpnn-diagnose` (docs/TRAINING.md says what it found and why it matters).

Summed over the complete graph (~18 atoms on QM9 with hydrogens), messages can be far larger than
the node states. Then the GRU's gate pre-activations sit where sigmoid and tanh are flat, the
update neither passes gradient nor changes h, and the readout learns from x alone. This module
measures each link of that chain on real batches:

- per message passing step: RMS of the aggregated message m and of the node state h, and the
  fraction of saturated GRU pre-activations (reset and update gates, candidate), "saturated"
  meaning the activation's slope is below 5% of its maximum (|a| > 4.36 for sigmoid, > 2.18 for tanh);
- during training: the gradient norm of each part (embedding, messages, updates, readout, head)
  and how often gradient clipping binds;
- after training: the loss with h_T removed from the readout's input (x alone) against the loss
  with it, i.e. whether message passing carries information the readout uses.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict

import torch

from mpnn.data.batch import MoleculeBatch
from mpnn.models.mpnn import MPNN
from mpnn.models.update import GRUUpdate
from mpnn.plain_steps import PlainAdam

SIGMOID_SATURATED = 2 * math.acosh(1 / math.sqrt(0.05))  # sigmoid' < 5% of its maximum 1/4: |a| > 4.36
TANH_SATURATED = math.atanh(math.sqrt(0.95))  # tanh' = 1 - tanh^2 < 5% of its maximum 1: |a| > 2.18
PARTS = ("embed", "messages", "updates", "mix", "master", "readout", "head")


class _StepRecorder:
    """Forward hooks on every GRU update of an MPNN: per step, message and state RMS and gate saturation."""

    def __init__(self, model: MPNN):
        self.model = model
        self.rows: torch.Tensor | None = None  # which rows of the flattened states are real atoms
        self.step = 0
        self.sums: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.handles = [model.register_forward_pre_hook(self._start)]
        self.handles += [u.register_forward_hook(self._record) for u in model.updates if isinstance(u, GRUUpdate)]
        self.towers = len(self.handles) - 1

    def _start(self, module, args) -> None:
        batch = args[0]
        self.rows = batch.mask.reshape(-1) if isinstance(batch, MoleculeBatch) else None
        self.step = 0

    @torch.no_grad()
    def _record(self, update: GRUUpdate, args, output) -> None:
        h, m = (a.float().reshape(-1, a.shape[-1]) for a in args)
        if self.rows is not None:
            h, m = h[self.rows], m[self.rows]
        cell = update.cell
        gi = torch.nn.functional.linear(m, cell.weight_ih, cell.bias_ih)
        gh = torch.nn.functional.linear(h, cell.weight_hh, cell.bias_hh)
        (i_r, i_z, i_n), (h_r, h_z, h_n) = gi.chunk(3, -1), gh.chunk(3, -1)
        reset_pre, update_pre = i_r + h_r, i_z + h_z
        candidate_pre = i_n + torch.sigmoid(reset_pre) * h_n
        sums = self.sums[self.step // self.towers]
        sums["m_sq"] += m.pow(2).sum().item()
        sums["h_sq"] += h.pow(2).sum().item()
        sums["values"] += m.numel()
        sums["reset"] += (reset_pre.abs() > SIGMOID_SATURATED).sum().item()
        sums["update"] += (update_pre.abs() > SIGMOID_SATURATED).sum().item()
        sums["candidate"] += (candidate_pre.abs() > TANH_SATURATED).sum().item()
        self.step += 1

    def report(self) -> list[dict]:
        steps = []
        for t in sorted(self.sums):
            s = self.sums[t]
            m_rms, h_rms = math.sqrt(s["m_sq"] / s["values"]), math.sqrt(s["h_sq"] / s["values"])
            steps.append(
                {
                    "step": t + 1,
                    "message_rms": m_rms,
                    "state_rms": h_rms,
                    "message_to_state": m_rms / max(h_rms, 1e-12),
                    "saturated_reset": s["reset"] / s["values"],
                    "saturated_update": s["update"] / s["values"],
                    "saturated_candidate": s["candidate"] / s["values"],
                }
            )
        return steps

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


@torch.no_grad()
def propagation(model: MPNN, batches: list) -> list[dict]:
    """Per message passing step t = 1..T, over `batches`: message and state RMS, saturated fractions."""
    recorder = _StepRecorder(model)
    model.eval()
    try:
        for batch in batches:
            model(batch)
    finally:
        recorder.close()
    return recorder.report()


def _part(name: str) -> str:
    top = name.split(".")[0]
    return top if top in PARTS else "other"


def train_and_watch(module, batches: list, steps: int, lr: float, clip: float | None) -> dict:
    """Adam on `batches` (cycling) with the run's clipping: gradient norm per part, how often clipping binds."""
    optimizer = PlainAdam(module.parameters(), lr=lr, clip=clip)
    module.train()
    norms: dict[str, list[float]] = defaultdict(list)

    def record_norms(_loss: torch.Tensor) -> None:  # before clipping
        per_part: dict[str, float] = defaultdict(float)
        for name, p in module.model.named_parameters():
            if p.grad is not None:
                per_part[_part(name)] += p.grad.pow(2).sum().item()
        for part, sq in per_part.items():
            norms[part].append(math.sqrt(sq))
        norms["total"].append(math.sqrt(sum(per_part.values())))

    losses = [
        optimizer.step(lambda b: module.loss(b)[0], batches[step % len(batches)], inspect=record_norms).item()
        for step in range(steps)
    ]
    return {
        "gradient_norm": {part: sum(v) / len(v) for part, v in norms.items()},
        "clipped_fraction": sum(total > clip for total in norms["total"]) / steps if clip else 0.0,
        "first_loss": sum(losses[:10]) / len(losses[:10]),
        "last_loss": sum(losses[-10:]) / len(losses[-10:]),
    }


@torch.no_grad()
def readout_uses_states(module, batches: list) -> dict:
    """Loss with h_T in the readout's input against with h_T zeroed (x alone), over `batches`."""
    model: MPNN = module.model
    model.eval()
    hidden = model.hidden_dim  # the readout reads [h_T, x]

    def drop_states(_, args):
        inputs = args[0].clone()
        inputs[..., :hidden] = 0
        return (inputs, *args[1:])

    def mean_loss() -> float:
        total = sum(module.loss(b)[0].item() * b.num_graphs for b in batches)
        return total / sum(b.num_graphs for b in batches)

    with_states = mean_loss()
    handle = model.readout.register_forward_pre_hook(drop_states)
    try:
        x_alone = mean_loss()
    finally:
        handle.remove()
    return {"loss": with_states, "loss_without_states": x_alone}


def message_scale(module, train_batches: list, eval_batches: list, steps: int, lr: float, clip: float | None) -> dict:
    """The whole check on a copy of `module` (its weights are left as they are); empty for non-MPNN models."""
    if not isinstance(module.model, MPNN):
        return {}
    trained = copy.deepcopy(module)
    report = {"at_init": propagation(trained.model, eval_batches)}
    report["training"] = train_and_watch(trained, train_batches, steps, lr, clip)
    report["trained"] = propagation(trained.model, eval_batches)
    report["readout"] = readout_uses_states(trained, eval_batches)
    report["training_steps"] = steps
    return report
