"""Helpers shared by the benchmarks: the one benchmark Trainer, device synchronisation, autocast as
Lightning opens it, the matrix-multiply peak of the machine."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def bench_trainer(device: torch.device, precision: str = "32-true", callbacks: list = (), **settings):
    """The Lightning Trainer every benchmark trains through (the training build makes the runs' own): one
    device, no logger, no checkpoints, no progress bar or model summary; `settings` add the run's length
    and validation limits (max_epochs, max_steps, limit_val_batches, num_sanity_val_steps, ...)."""
    import lightning as L

    return L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        **settings,
    )


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The autocast region Lightning opens around each step for `trainer.precision=precision`."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")


def seconds_per_call(call: Callable[[int], object], calls: int, warmup: int, device: torch.device) -> float:
    """Median seconds of `call(i)` for i in warmup..warmup+calls-1, after `warmup` untimed calls.

    The median, not the mean: on a shared machine a few calls stall for another process.
    """
    for i in range(warmup):
        call(i)
    times = []
    for i in range(warmup, warmup + calls):
        synchronize(device)
        start = time.perf_counter()
        call(i)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int | None = None) -> float:
    """GFLOP/s of a square matrix product of `size` (default: 2048 on CPU, 8192 on GPU), best of 5."""
    size = size or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    for i in range(7):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        if i >= 2:  # two warm-up products
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9
