"""Where a training step's time goes (`mpnn-benchmark profile`): kernels per step, their time, and
the device's idle gaps between them.

A small step (the paper's batch of 20) is bound by launches, not arithmetic: what matters is how
many kernels a step runs, how long they take together, and how much of the step's wall time the
device sits idle between them. On a GPU the kernels are CUDA kernels (also inside a replayed CUDA
graph); on a CPU they are the ATen operators that do the work (those with no operator beneath them).
"""

from __future__ import annotations

import collections
import time

import torch
from omegaconf import DictConfig
from torch.autograd import DeviceType

from mpnn.bench.throughput import training_steps
from mpnn.bench.timing import synchronize


def profile_steps(cfg: DictConfig, device: torch.device, steps: int = 20, warmup: int = 10) -> dict:
    """Profile `steps` training steps after `warmup` (compilation, CUDA graph capture): wall ms per step,
    kernels per step, kernel ms per step, the share of the wall time with no kernel running, and the
    ten kernels with the most time (calls and ms per step)."""
    from torch.profiler import ProfilerActivity, profile

    step, _ = training_steps(cfg, device)
    for i in range(warmup):
        step(i)
    synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        start = time.perf_counter()
        for i in range(warmup, warmup + steps):
            step(i)
        synchronize(device)
        wall_ms = 1000 * (time.perf_counter() - start)
    kernels = device_kernels(profiler.events(), device)
    by_name: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for name, _, duration_us in kernels:
        by_name[name][0] += 1
        by_name[name][1] += duration_us / 1000
    top = sorted(by_name.items(), key=lambda item: -item[1][1])[:10]
    busy_ms = covered_ms([(start, start + duration) for _, start, duration in kernels])
    return {
        "steps": steps,
        "ms_per_step": wall_ms / steps,
        "kernels_per_step": len(kernels) / steps,
        "kernel_ms_per_step": sum(duration for _, _, duration in kernels) / 1000 / steps,
        "idle_share": max(0.0, 1 - busy_ms / wall_ms),
        "top": [{"kernel": name, "calls_per_step": n / steps, "ms_per_step": ms / steps} for name, (n, ms) in top],
    }


# ATen operators that only describe memory (views, metadata, allocation): no kernel on any device.
NO_WORK = {
    "aten::view", "aten::_unsafe_view", "aten::reshape", "aten::expand", "aten::as_strided", "aten::t",
    "aten::transpose", "aten::permute", "aten::unsqueeze", "aten::squeeze", "aten::select", "aten::slice",
    "aten::detach", "aten::detach_", "aten::alias", "aten::lift_fresh", "aten::empty", "aten::empty_strided",
    "aten::empty_like", "aten::resolve_conj", "aten::resolve_neg", "aten::split", "aten::unbind",
    "aten::narrow", "aten::chunk", "aten::tensor_split", "aten::unflatten", "aten::flatten", "aten::to",
    "aten::_to_copy", "aten::contiguous", "aten::result_type", "aten::is_nonzero", "aten::size", "aten::stride",
}  # fmt: skip


def device_kernels(events, device: torch.device) -> list[tuple[str, float, float]]:
    """(name, start µs, duration µs) of each piece of device work. On a GPU: the CUDA kernels, on the
    GPU's timeline. On a CPU: each ATen operator that does work, with its self time (without the
    operators it calls), placed at its start, so that time outside operators counts as idle."""
    if device.type == "cuda":
        return [
            (e.name, e.time_range.start, e.time_range.elapsed_us()) for e in events if e.device_type == DeviceType.CUDA
        ]
    return [
        (e.name, e.time_range.start, e.self_cpu_time_total)
        for e in events
        if e.device_type == DeviceType.CPU and e.name.startswith("aten::") and e.name not in NO_WORK
    ]


def covered_ms(intervals: list[tuple[float, float]]) -> float:
    """Milliseconds covered by the union of (start, end) intervals in microseconds (overlaps once)."""
    covered, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    return covered / 1000


def profile_table(numbers: dict) -> str:
    """`profile_steps`' numbers as text."""
    lines = [
        f"{numbers['ms_per_step']:.2f} ms per step (wall, {numbers['steps']} steps); {numbers['kernels_per_step']:.0f} "
        f"kernels per step taking {numbers['kernel_ms_per_step']:.2f} ms; device idle {numbers['idle_share']:.0%} "
        "of the wall time",
        f"{'kernel':60s} {'calls/step':>10s} {'ms/step':>9s}",
    ]
    for row in numbers["top"]:
        lines.append(f"{row['kernel'][:60]:60s} {row['calls_per_step']:10.1f} {row['ms_per_step']:9.3f}")
    return "\n".join(lines)
