"""The training step alone, without Lightning or the DataLoader: the ceiling the pipeline can reach.

    python scripts/step_throughput.py [hydra overrides]      # e.g. data.static_shapes=true optim.compile=true
    python scripts/step_throughput.py --flops [overrides]   # floating-point operations of one step, by operator

Runs the benchmark's configuration (scripts/benchmark.py) as a bare loop: index gather on the
device, MPNNModule.compute_gradients (compiled when optim.compile=true, one CUDA graph when
optim.cuda_graph=true), fused Adam on CUDA. Comparing its
molecules/s with the benchmark's shows the per-step cost of the training loop around the model.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(overrides: list[str], steps: int = 400, warmup: int = 30) -> None:
    count_flops = "--flops" in overrides
    overrides = [o for o in overrides if o != "--flops"]
    from hydra import compose, initialize_config_dir

    from mpnn.training.run import build
    from scripts.benchmark import EXAMPLE_OVERRIDES

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=EXAMPLE_OVERRIDES + overrides)
    cfg.paths.root_dir = str(ROOT)
    datamodule, module = build(cfg)
    module = module.to(device)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3, fused=device.type == "cuda")
    batch_size = cfg.data.batch_size
    steps = min(steps, len(datamodule.split.train) // batch_size)
    warmup = min(warmup, steps // 2)
    index = torch.from_numpy(datamodule.split.train[: steps * batch_size].copy()).view(steps, batch_size).to(device)
    n = datamodule.dataset.n_max if cfg.data.static_shapes else None

    if count_flops:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            module.compute_gradients(datamodule.dataset.gather(index[0], n), optimizer)
        counts = counter.get_flop_counts()["Global"]
        by_operator = {str(op).split(".")[-1]: f"{flops / 1e9:.2f}" for op, flops in counts.items()}
        print(f"one step (forward + backward), GFLOP: {counter.get_total_flops() / 1e9:.2f} {by_operator}")
        return

    def step(i: int) -> None:
        module.compute_gradients(datamodule.dataset.gather(index[i], n), optimizer)
        optimizer.step()

    for i in range(warmup):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(warmup, steps):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    rate = (steps - warmup) * batch_size / (time.perf_counter() - start)
    print(f"step alone ({device}): {rate:.0f} molecules/s")


if __name__ == "__main__":
    main(sys.argv[1:])
