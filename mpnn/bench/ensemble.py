"""Time per training step of K models trained together (`ensemble.size=K`, each engine) against K
single runs of the same configuration, through the real Trainer, on one device."""

from __future__ import annotations

import tempfile
import time

import lightning as L
import torch

from mpnn.bench.timing import bench_trainer, device_name, synchronize
from mpnn.config import compose
from mpnn.training.build import build


class StepTimes(L.Callback):
    """Seconds of every training step (device synchronised at both ends)."""

    def __init__(self):
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        synchronize(module.device)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        synchronize(module.device)
        self.seconds.append(time.perf_counter() - self._start)


def step_seconds(overrides: list[str], device: torch.device, steps: int, warmup: int = 3) -> float:
    """Median seconds of one training step of the run `overrides` compose (ensemble or single)."""
    datamodule, module = build(compose(["logger=none", *overrides]))
    times = StepTimes()
    with tempfile.TemporaryDirectory() as root:
        trainer = bench_trainer(
            device,
            callbacks=[times],
            max_steps=warmup + steps,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            default_root_dir=root,
        )
        trainer.fit(module, datamodule=datamodule)
    timed = sorted(times.seconds[warmup:])
    return timed[len(timed) // 2]


def ensemble_timing(
    overrides: list[str], sizes: list[int], engines: list[str], device: torch.device, steps: int
) -> dict:
    """{"single_s": one run's step, "rows": [{size, engine, step_s, per_member_s, vs_separate}]}: `vs_separate`
    is the step time over K single runs' (1: no faster than running them one after another)."""
    single = step_seconds(overrides, device, steps)
    rows = []
    for size in (k for k in sizes if k > 1):
        for engine in engines:
            seconds = step_seconds([*overrides, f"ensemble.size={size}", f"ensemble.engine={engine}"], device, steps)
            rows.append(
                {"size": size, "engine": engine, "step_s": seconds, "per_member_s": seconds / size,
                 "vs_separate": seconds / (size * single)}
            )  # fmt: skip
    return {"device": device_name(device), "overrides": overrides, "steps": steps, "single_s": single, "rows": rows}


def ensemble_table(result: dict) -> str:
    lines = [
        f"training step of K models in one process ({result['device']}; median of {result['steps']} steps; "
        f"{' '.join(result['overrides'])})",
        f"{'K':>3s} {'engine':8s} {'ms/step':>9s} {'ms/member':>10s} {'vs K single runs':>17s}",
        f"{1:3d} {'single':8s} {result['single_s'] * 1e3:9.1f} {result['single_s'] * 1e3:10.1f} {1:16.2f}x",
    ]
    for row in result["rows"]:
        lines.append(
            f"{row['size']:3d} {row['engine']:8s} {row['step_s'] * 1e3:9.1f} {row['per_member_s'] * 1e3:10.1f} "
            f"{row['vs_separate']:16.2f}x"
        )
    return "\n".join(lines)
