"""PyG's model zoo (SchNet, DimeNet++, ViSNet) on the PyG backend: a training step fed by batches
built on the device against the same step fed by `torch_geometric.loader.DataLoader`.

The zoo models read only atomic numbers and positions and build their own radius graphs, so both
sides carry the chemical graph only (`data.edges=chemical_graph`): no per-sample transform on the
DataLoader side, no complete graph on the device side.
"""

from __future__ import annotations

import torch

from mpnn.bench.data_path import loader_batches, on_device_batches, pyg_loader, step_ms
from mpnn.data.transforms import transform_for

ZOO = ("schnet", "dimenet_pp", "visnet")


def zoo_steps(
    overrides: list[str], device: torch.device, steps: int, warmup: int, models: tuple[str, ...] = ZOO
) -> list[dict]:
    """Per zoo model: milliseconds per training step with on-device batches and with PyG's DataLoader."""
    from mpnn.config import compose
    from mpnn.training.build import build

    rows = []
    for name in models:
        cfg = compose([f"model={name}", "backend=pyg", "data.edges=chemical_graph", *overrides])
        datamodule, module = build(cfg)
        module = module.to(device)
        loader = pyg_loader(datamodule, datamodule.split.train, transform_for(datamodule.spec), cfg.data.batch_size)
        precision = cfg.trainer.precision
        on_device = step_ms(module, on_device_batches(datamodule, device), device, precision, steps, warmup)
        from_loader = step_ms(module, loader_batches(loader, device), device, precision, steps, warmup)
        rows.append({"model": name, "on_device_ms": on_device, "dataloader_ms": from_loader})
    return rows
