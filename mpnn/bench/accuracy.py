"""Accuracy within noise: does a speed-up cost accuracy? Validation MAE of each path after a fixed
epoch budget, over several seeds (initialisation and shuffling; the split stays the same).

A speed-up whose mean validation MAE differs from the plain path's by more than the seed-to-seed
spread is not a free speed-up and stays off by default.
"""

from __future__ import annotations

import time

import numpy as np
import torch

PLAIN = ["data.batch_parts=1", "data.bucketing=false"]
VARIANTS = {
    "fp32, batches padded to their largest molecule": ["trainer.precision=32-true", *PLAIN],
    "bf16-mixed": ["trainer.precision=bf16-mixed", *PLAIN],
    "batch parts (4)": ["trainer.precision=32-true", "data.batch_parts=4", "data.bucketing=false"],
    "bf16-mixed + batch parts (4)": ["trainer.precision=bf16-mixed", "data.batch_parts=4", "data.bucketing=false"],
    "bucketing": ["trainer.precision=32-true", "data.batch_parts=1", "data.bucketing=true"],
    "bf16-mixed + bucketing": ["trainer.precision=bf16-mixed", "data.batch_parts=1", "data.bucketing=true"],
}


def train_once(overrides: list[str], device: torch.device, allow_divergence: bool = False) -> dict:
    """One run through the real Trainer (validation after every epoch): its validation MAE per epoch,
    training throughput and wall seconds. A diverging run raises `Diverged`; with `allow_divergence` it
    returns the epochs it completed and the reason under "stopped" (None for a run that finished)."""
    from mpnn.bench.timing import bench_trainer
    from mpnn.config import compose
    from mpnn.training.build import build
    from mpnn.training.callbacks import Diverged, MetricHistory, StopOnDivergence, Throughput

    cfg = compose(["logger=none", *overrides])
    start = time.perf_counter()
    datamodule, module = build(cfg)
    throughput, history = Throughput(), MetricHistory()
    trainer = bench_trainer(
        device,
        cfg.trainer.precision,
        [throughput, history, StopOnDivergence()],
        max_epochs=cfg.trainer.max_epochs,
        num_sanity_val_steps=0,
    )
    stopped = None
    try:
        trainer.fit(module, datamodule=datamodule)
    except Diverged as error:
        if not allow_divergence:
            raise
        stopped = str(error)
    return {
        "stopped": stopped,
        "val_mae": history.val_mae,
        "molecules_per_s": throughput.molecules_per_s,
        "seconds": time.perf_counter() - start,
        "unit": module.target.unit,
    }


def accuracy_grid(overrides: list[str], seeds: list[int], device: torch.device, variants: dict = VARIANTS) -> dict:
    """{variant: [run of each seed]} for the same data, model and epoch budget (`overrides`)."""
    return {
        name: [train_once([*overrides, *changes, f"seed={seed}"], device) for seed in seeds]
        for name, changes in variants.items()
    }


def accuracy_table(grid: dict) -> str:
    """A Markdown table: final validation MAE per seed, mean and spread, throughput, against the first variant."""
    reference = np.mean([run["val_mae"][-1] for run in next(iter(grid.values()))])
    unit = next(iter(grid.values()))[0]["unit"]
    lines = [
        f"| path | validation MAE per seed ({unit}) | mean +- std | vs first row | molecules/s (median) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, runs in grid.items():
        final = np.array([run["val_mae"][-1] for run in runs])
        spread = final.std(ddof=1) if len(final) > 1 else float("nan")
        rate = np.median([run["molecules_per_s"] for run in runs])
        per_seed = ", ".join(f"{value:.4f}" for value in final)
        lines.append(
            f"| {name} | {per_seed} | {final.mean():.4f} +- {spread:.4f} | {final.mean() / reference - 1:+.1%} "
            f"| {rate:.0f} |"
        )
    return "\n".join(lines)
