"""PyG batches built on the training device against `torch_geometric.loader.DataLoader`.

(a) The data path alone, no model: batches per second of the PyG backend's batch builder
(`QM9DataModule` with `backend=pyg`: a loader of indices, then `GraphQM9.gather` on the device)
against a `torch_geometric.loader.DataLoader` over `QM9Dataset` with the per-sample transforms
of PyG's QM9 example (Complete + Distance), and of the dense backend's gather for reference.
(b) Full training steps of one model (the example's configuration of edge_net, PyG backend) fed
by either path, and of the same model on the dense backend.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from torch_geometric.transforms import BaseTransform, Compose

from mpnn.bench.timing import autocast, seconds_per_call
from mpnn.plain_steps import PlainAdam


class SelectTarget(BaseTransform):
    """Keeps one column of a `QM9Dataset` molecule's `y` ((1, 17) -> (1,)), as the pipeline's batches carry it."""

    def __init__(self, column: int):
        self.column = column

    def forward(self, data: Data) -> Data:
        data = copy.copy(data)
        data.y = data.y[:, self.column]
        return data


def pyg_loader(datamodule, rows: np.ndarray, transform: Callable[[Data], Data], batch_size: int) -> DataLoader:
    """A `torch_geometric.loader.DataLoader` over the `QM9Dataset` molecules `rows`, transformed per sample
    and reduced to the datamodule's target, shuffled, in the main process (as PyG's QM9 example)."""
    from mpnn.data import QM9Dataset

    transform = Compose([transform, SelectTarget(datamodule.target_column)])
    dataset = QM9Dataset(datamodule.root, transform=transform, packed=datamodule.packed)[rows]
    return DataLoader(dataset, batch_size=batch_size, shuffle=True)


def on_device_batches(datamodule, device: torch.device) -> Iterator:
    """Training batches of `datamodule` built on `device` as the Trainer builds them, epoch after epoch."""
    while True:
        for index, sizes in datamodule.train_dataloader():
            yield datamodule.on_after_batch_transfer((index.to(device, non_blocking=True), sizes), 0)


def loader_batches(loader: DataLoader, device: torch.device) -> Iterator:
    """Batches of a PyG DataLoader moved to `device`, epoch after epoch."""
    while True:
        for batch in loader:
            yield batch.to(device, non_blocking=True)


def batches_per_second(batches: Iterator, device: torch.device, calls: int, warmup: int = 2) -> float:
    return 1 / seconds_per_call(lambda _: next(batches), calls, warmup, device)


def step_ms(module, batches: Iterator, device: torch.device, precision: str, steps: int, warmup: int) -> float:
    """Median milliseconds of a training step (batch, forward, backward, Adam) of `module` fed by `batches`."""
    optimizer = PlainAdam(module.parameters())

    def step(_: int) -> None:
        optimizer.module_step(module, next(batches), autocast(device, precision))

    return 1000 * seconds_per_call(step, steps, warmup, device)
