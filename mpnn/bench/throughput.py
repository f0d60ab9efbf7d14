"""Training throughput: this project's pipeline against PyG's QM9 NNConv example on the same molecules.

Both sides use the example's configuration (dim 64, edge network width 128, 3 steps, mean
aggregation, set2set with 3 steps, batch 128, complete graph with explicit hydrogens, bond one-hot
+ distance edges, Adam 1e-3). This project's side is the real Lightning Trainer fed by
QM9DataModule, on its fastest measured path for the device (`FAST_PATHS`); the example's is PyG's
DataLoader with the per-sample Complete + Distance transforms, NNConv, nn.GRU and Set2Set, as it ships.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from omegaconf import DictConfig

from mpnn.bench.timing import autocast, bench_trainer, peak_memory_gib, synchronize
from mpnn.plain_steps import PlainAdam

EXAMPLE_OVERRIDES = [
    "model=edge_net",
    "model.hidden_dim=64",
    "model.steps=3",
    "model.readout.steps=3",
    "model.message.hidden_dim=128",
    "model.message.aggregation=mean",
    "data.batch_size=128",
    "data.edges=raw_distance",
    "data.explicit_h=true",
    "optim.lr=1e-3",
    "schedule=constant",
    "optim.gradient_clip_val=null",  # the example does not clip
    "logger=none",
]
# This project's fastest measured path per device type (docs/PERFORMANCE.md, "The fast path per device").
# CPU: bf16 matrix products and batches split into 4 size-sorted parts, each padded to its own largest
# molecule; both keep the validation error within seed-to-seed noise ("Accuracy within noise"). CUDA: one
# static shape and the compiled step, the fastest GPU path measured so far (the measurements and their
# dates are in docs/PERFORMANCE.md).
FAST_PATHS = {
    "cpu": ["trainer.precision=bf16-mixed", "data.batch_parts=4"],
    "cuda": ["trainer.precision=32-true", "data.batch_parts=1", "data.static_shapes=true", "optim.compile=true"],
}


def fast_path(device: torch.device | str) -> list[str]:
    """The overrides of this project's fastest measured path on `device`'s type."""
    return list(FAST_PATHS[torch.device(device).type])


def run_ours(cfg: DictConfig, device: torch.device, epochs: int) -> tuple[dict, object, object]:
    """(numbers, data module, Lightning module): `epochs` training epochs through the real Trainer,
    without validation; the first warms up (allocator, kernels, compilation), the others are timed."""
    from mpnn.training.build import build
    from mpnn.training.callbacks import Throughput

    datamodule, module = build(cfg)
    throughput = Throughput()
    trainer = bench_trainer(device, cfg.trainer.precision, [throughput], max_epochs=epochs, limit_val_batches=0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer.fit(module, datamodule=datamodule)
    rate = throughput.molecules_per_s  # median over the epochs after the first
    numbers = {
        "molecules_per_s": rate,
        "ms_per_step": 1000 * cfg.data.batch_size / rate,
        "peak_memory_gib": peak_memory_gib(device),
    }
    return numbers, datamodule, module


def run_baseline(datamodule, device: torch.device, steps: int, warmup: int, workers: int) -> dict:
    """PyG's example as shipped, on the training split of `datamodule`: `steps` timed steps after `warmup`."""
    from mpnn.bench.time_to_accuracy import Example

    example = Example(datamodule, device, workers=workers)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    example.model.train()
    done, molecules_timed, start = 0, 0, 0.0
    while done < warmup + steps:
        for data in example.train:
            if done == warmup:
                synchronize(device)
                start = time.perf_counter()
            # the example accumulates loss.item() * num_graphs every step, between backward and step
            example.step(data, inspect=torch.Tensor.item)
            if done >= warmup:
                molecules_timed += data.num_graphs
            done += 1
            if done == warmup + steps:
                break
    synchronize(device)
    elapsed = time.perf_counter() - start
    rate = molecules_timed / elapsed
    return {"molecules_per_s": rate, "ms_per_step": 1000 * elapsed / steps, "peak_memory_gib": peak_memory_gib(device)}


def step_flops(module, batch, device: torch.device, precision: str) -> tuple[float, dict[str, float]]:
    """(GFLOP, GFLOP by operator) of the matrix products of one training step (forward + backward)
    on `batch`; element-wise work is not counted. Counted on the eager step, also for a module that
    trains with `optim.compile` or `optim.cuda_graph`: the same products, which a replay would hide."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, autocast(device, precision):
        module.eager_gradients(batch)
    by_operator = {str(op).split(".")[-1]: flops / 1e9 for op, flops in counter.get_flop_counts()["Global"].items()}
    return counter.get_total_flops() / 1e9, by_operator


def gflop_per_molecule(module, datamodule, device: torch.device, precision: str, batches: int = 4) -> float:
    """Matrix-product GFLOP per training molecule, averaged over the first `batches` training batches
    (batches padded to different sizes differ in work)."""
    total, molecules = 0.0, 0
    for i, (index, sizes) in enumerate(datamodule.train_dataloader()):
        if i == batches:
            break
        batch = datamodule.on_after_batch_transfer((index.to(device), sizes), 0)
        total += step_flops(module, batch, device, precision)[0]
        molecules += batch.num_graphs
    return total / molecules


def training_steps(cfg: DictConfig, device: torch.device) -> tuple[Callable[[int], None], list[int]]:
    """(step(i), molecules of batch i): the training step without Lightning or the DataLoader (gather on
    the device, forward, backward, clipping, fused Adam on CUDA, under the configured precision and
    the configured CUDA graph or compilation), over the training split's batches, pre-loaded."""
    from mpnn.training.build import build

    datamodule, module = build(cfg)
    module = module.to(device)
    optimizer = PlainAdam(module.parameters(), fused=device.type == "cuda")
    batches = [(index.to(device), sizes) for index, sizes in datamodule.train_dataloader()]

    def step(i: int) -> None:
        batch = datamodule.on_after_batch_transfer(batches[i % len(batches)], 0)
        optimizer.module_step(module, batch, autocast(device, cfg.trainer.precision))

    return step, [len(index) for index, _ in batches]


def step_alone(cfg: DictConfig, device: torch.device, steps: int = 400, warmup: int = 30) -> float:
    """Molecules per second of `training_steps`: the ceiling of the pipeline."""
    step, molecules = training_steps(cfg, device)
    steps = min(steps, len(molecules))
    warmup = min(warmup, steps // 2)
    for i in range(warmup):
        step(i)
    synchronize(device)
    start = time.perf_counter()
    for i in range(warmup, steps):
        step(i)
    synchronize(device)
    return sum(molecules[warmup:steps]) / (time.perf_counter() - start)
