"""Time to accuracy: validation MAE against seconds of training, this project's edge_net against PyG's
QM9 example, for the same wall-clock budget on the same molecules and device.

Each side trains from scratch for `budget_s` seconds of training and is evaluated on the whole
validation split every `budget_s / evaluations` seconds (and once before training); the clock
stops while it is evaluated. This project runs its real Lightning pipeline (the project's
defaults on the device's fastest path, `fast_path`; constant learning rate, since a wall-clock
budget has no known number of steps to decay over); the example runs as it ships (its DataLoader with
per-sample transforms, NNConv + GRU + Set2Set, Adam 1e-3), also at a constant learning rate:
its plateau schedule would not act within such a budget (patience 5 epochs).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch

from mpnn.bench.timing import autocast, bench_trainer, synchronize
from mpnn.plain_steps import PlainAdam

Curve = list[tuple[float, float]]  # (training seconds, validation MAE)


class _Clock:
    """Training seconds with pauses for evaluation; an evaluation every `every_s`, a stop at `budget_s`."""

    def __init__(self, evaluate: Callable[[], float], budget_s: float, every_s: float, device: torch.device):
        self.evaluate, self.budget_s, self.every_s, self.device = evaluate, budget_s, every_s, device
        self.curve: Curve = []
        self.trained = 0.0
        self.steps = 0

    def start(self) -> None:
        self.curve.append((0.0, self.evaluate()))
        self._next = self.every_s
        synchronize(self.device)
        self._resumed = time.perf_counter()

    def tick(self) -> bool:
        """After a training step: evaluate if due; True once the budget is spent."""
        self.steps += 1
        synchronize(self.device)
        elapsed = self.trained + time.perf_counter() - self._resumed
        if elapsed < self._next and elapsed < self.budget_s:
            return False
        self.trained = elapsed
        self.curve.append((elapsed, self.evaluate()))
        self._next = (elapsed // self.every_s + 1) * self.every_s
        synchronize(self.device)
        self._resumed = time.perf_counter()
        return elapsed >= self.budget_s


class _TimedTraining(L.Callback):
    def __init__(self, clock: _Clock):
        self.clock = clock

    def on_train_start(self, trainer, module) -> None:
        self.clock.start()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.clock.tick():
            trainer.should_stop = True


@torch.no_grad()
def validation_mae(module, datamodule, device: torch.device, precision: str) -> float:
    """MAE of `module` over the whole validation split, in the target's unit."""
    was_training = module.training
    module.eval()
    errors = []
    with autocast(device, precision):
        for index, sizes in datamodule.val_dataloader():
            batch = datamodule.on_after_batch_transfer((index.to(device), sizes), 0)
            errors.append((module.denormalise(module.loss(batch)[1], batch) - batch.y).abs())
    module.train(was_training)
    return float(torch.cat(errors).mean())


def train_ours(cfg, device: torch.device, budget_s: float, every_s: float) -> dict:
    """This project's pipeline for `budget_s` training seconds: its curve, steps and epochs."""
    from mpnn.training.build import build

    datamodule, module = build(cfg)
    clock = _Clock(lambda: validation_mae(module, datamodule, device, cfg.trainer.precision), budget_s, every_s, device)
    trainer = bench_trainer(
        device,
        cfg.trainer.precision,
        [_TimedTraining(clock)],
        max_epochs=1_000_000,  # stopped by the clock; a finite number, for the schedule's step count
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=datamodule)
    return {"curve": clock.curve, "steps": clock.steps, "epochs": clock.steps / len(datamodule.train_dataloader())}


class Example:
    """PyG's example (mpnn/baseline.py) on the training and validation molecules of a set-up data
    module: its DataLoader with per-sample transforms (in `workers` processes), its model, Adam 1e-3
    at a constant rate. The one set-up of the example, for its throughput and its time to accuracy."""

    def __init__(self, datamodule, device: torch.device, seed: int = 0, workers: int = 0):
        from mpnn.baseline import ExampleNet

        y, _ = datamodule.training_targets()
        self.datamodule, self.device, self.workers = datamodule, device, workers
        self.mean, self.std = float(y.mean()), float(y.std())
        torch.manual_seed(seed)
        self.train = self._molecules(datamodule.split.train, shuffle=True)
        self.model = ExampleNet(self.train.dataset.num_features).to(device)
        self.optimizer = PlainAdam(self.model.parameters(), lr=0.001)

    def _molecules(self, rows, shuffle: bool):
        from torch_geometric.loader import DataLoader

        from mpnn.baseline import MoleculeList, example_transform, to_pyg

        dm = self.datamodule
        data = to_pyg(dm.packed, rows, dm.target_column, self.mean, self.std)
        dataset = MoleculeList(data, transform=example_transform())
        return DataLoader(dataset, batch_size=128, shuffle=shuffle, num_workers=self.workers)

    @functools.cached_property
    def val(self):
        """The validation molecules' loader, built on first use: a throughput run never evaluates."""
        return self._molecules(self.datamodule.split.val, shuffle=False)

    @torch.no_grad()
    def evaluate(self) -> float:
        """MAE over the whole validation split, in the target's unit."""
        self.model.eval()
        error = sum(float((self.model(d.to(self.device)) - d.y).abs().sum()) for d in self.val)
        self.model.train()
        return error * self.std / len(self.val.dataset)

    def step(self, data, inspect: Callable[[torch.Tensor], object] | None = None) -> torch.Tensor:
        """One training step on the batch `data`; `inspect(loss)` as in `PlainAdam.step`."""
        data = data.to(self.device)
        return self.optimizer.step(lambda: torch.nn.functional.mse_loss(self.model(data), data.y), inspect=inspect)


def train_example(datamodule, device: torch.device, budget_s: float, every_s: float) -> dict:
    """PyG's example on the same training and validation molecules for `budget_s` training seconds."""
    example = Example(datamodule, device)
    clock = _Clock(example.evaluate, budget_s, every_s, device)
    clock.start()
    while True:
        for data in example.train:
            example.step(data)
            if clock.tick():
                return {"curve": clock.curve, "steps": clock.steps, "epochs": clock.steps / len(example.train)}


def seconds_to(curve: Curve, mae: float) -> float | None:
    """Training seconds at the first evaluation with validation MAE <= `mae` (None: not within the budget)."""
    return next((seconds for seconds, value in curve if value <= mae), None)


def draw(curves: dict[str, Curve], unit: str, chemical_accuracy: float | None, ratio: float, path: Path) -> None:
    """Validation MAE against training seconds, one line per side, and the error ratio compared."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, curve in curves.items():
        seconds, mae = zip(*curve)
        ax.plot(seconds, mae, marker="o", markersize=3, label=label)
    if chemical_accuracy:
        ax.axhline(ratio * chemical_accuracy, color="grey", linestyle="--", linewidth=1)
        ax.text(ax.get_xlim()[1], ratio * chemical_accuracy, f" error ratio {ratio:.2f}", va="bottom", ha="right")
    ax.set_yscale("log")
    ax.set_xlabel("training seconds (evaluation excluded)")
    ax.set_ylabel(f"validation MAE ({unit})")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
