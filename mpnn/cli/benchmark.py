"""`mpnn-benchmark`: training throughput of this project against PyG's QM9 NNConv example, in one process.

    mpnn-benchmark --device cuda                 # full training split, one H100/H200
    mpnn-benchmark --device cpu --quick          # a couple of minutes on a laptop CPU
    mpnn-benchmark --step [overrides]            # the training step alone, no Lightning, no loader
    mpnn-benchmark --flops [overrides]           # floating-point operations of one step, by operator

Both sides use the example's configuration (dim 64, edge network width 128, 3 steps, mean
aggregation, set2set with 3 steps, batch 128, complete graph with explicit hydrogens, bond one-hot
+ distance edges, Adam 1e-3) on the same molecules. (a) is the real Lightning Trainer fed by
QM9DataModule; (b) is PyG's DataLoader with the per-sample Complete + Distance transforms,
NNConv, nn.GRU and Set2Set, as the example ships. The last line is `speedup: X`. Extra Hydra
overrides apply to this project's side (e.g. backend=pyg, trainer.precision=bf16-mixed).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from omegaconf import DictConfig

from mpnn.cli import compose

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


def _peak_memory(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_ours(cfg: DictConfig, device: torch.device, max_batches: int | None) -> tuple[dict, object]:
    import lightning as L

    from mpnn.training.build import build
    from mpnn.training.callbacks import Throughput

    datamodule, module = build(cfg)
    throughput = Throughput()
    trainer = L.Trainer(
        accelerator=device.type if device.type == "cuda" else "cpu",
        devices=1,
        precision=cfg.trainer.precision,  # 32-true (TF32 matmuls) unless overridden, e.g. bf16-mixed
        max_epochs=2,  # the first epoch warms up (allocator, kernels); the second is timed
        limit_train_batches=max_batches,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[throughput],
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer.fit(module, datamodule=datamodule)
    rate = throughput.epoch_rates[-1]
    numbers = {
        "molecules_per_s": rate,
        "ms_per_step": 1000 * cfg.data.batch_size / rate,
        "peak_memory_gib": _peak_memory(device),
    }
    return numbers, datamodule


def run_baseline(datamodule, device: torch.device, steps: int, warmup: int, workers: int) -> dict:
    from torch_geometric.loader import DataLoader

    from mpnn.baseline import ExampleNet, MoleculeList, example_transform, to_pyg

    y, _ = datamodule.training_targets()
    mean, std = float(y.mean()), float(y.std())
    molecules = to_pyg(datamodule.packed, datamodule.split.train, datamodule.target_column, mean, std)
    dataset = MoleculeList(molecules, transform=example_transform())
    loader = DataLoader(dataset, batch_size=128, shuffle=True, num_workers=workers)
    model = ExampleNet(dataset.num_features).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    _synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    done, molecules_timed, start = 0, 0, 0.0
    while done < warmup + steps:
        for data in loader:
            if done == warmup:
                _synchronize(device)
                start = time.perf_counter()
            data = data.to(device)
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(data), data.y)
            loss.backward()
            loss.item()  # the example accumulates loss.item() * num_graphs every step
            optimizer.step()
            if done >= warmup:
                molecules_timed += data.num_graphs
            done += 1
            if done == warmup + steps:
                break
    _synchronize(device)
    elapsed = time.perf_counter() - start
    rate = molecules_timed / elapsed
    return {"molecules_per_s": rate, "ms_per_step": 1000 * elapsed / steps, "peak_memory_gib": _peak_memory(device)}


def step_alone(cfg: DictConfig, device: torch.device, count_flops: bool, steps: int = 400, warmup: int = 30) -> str:
    """The training step without Lightning or the DataLoader (gather on the device, forward,
    backward, Adam): the ceiling the pipeline can reach; or its floating-point operations."""
    from mpnn.training.build import build

    datamodule, module = build(cfg)
    module = module.to(device)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3, fused=device.type == "cuda")
    batch_size = cfg.data.batch_size
    steps = min(steps, len(datamodule.split.train) // batch_size)
    warmup = min(warmup, steps // 2)
    rows = torch.from_numpy(datamodule.split.train[: steps * batch_size].copy()).view(steps, batch_size)
    batches = [datamodule._collate(r.numpy()) for r in rows]

    def batch(i: int):
        index, sizes = batches[i]
        return datamodule.dataset.gather(index.to(device), sizes)

    if count_flops:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            module.compute_gradients(batch(0), optimizer)
        counts = counter.get_flop_counts()["Global"]
        by_operator = {str(op).split(".")[-1]: f"{flops / 1e9:.2f}" for op, flops in counts.items()}
        return f"one step (forward + backward), GFLOP: {counter.get_total_flops() / 1e9:.2f} {by_operator}"

    def step(i: int) -> None:
        module.compute_gradients(batch(i), optimizer)
        optimizer.step()

    for i in range(warmup):
        step(i)
    _synchronize(device)
    start = time.perf_counter()
    for i in range(warmup, steps):
        step(i)
    _synchronize(device)
    rate = (steps - warmup) * batch_size / (time.perf_counter() - start)
    return f"step alone ({device}): {rate:.0f} molecules/s"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="a small subset and a few steps (CPU smoke benchmark)")
    parser.add_argument("--json", action="store_true", help="also print the numbers as one JSON line")
    parser.add_argument("--step", action="store_true", help="time the training step alone (no Lightning, no loader)")
    parser.add_argument("--flops", action="store_true", help="count the floating-point operations of one step")
    parser.add_argument("--baseline-steps", type=int, default=None, help="timed baseline steps")
    parser.add_argument("--baseline-workers", type=int, default=0, help="baseline DataLoader workers (example: 0)")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for this project's side")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is visible; use --device cpu")

    from mpnn.logs import quiet_logs

    quiet_logs()
    device = torch.device(args.device)
    overrides = EXAMPLE_OVERRIDES + [f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}"]
    if args.quick:
        overrides.append("data.subset=2000")
    cfg = compose(overrides + args.overrides)
    if args.step or args.flops:
        print(step_alone(cfg, device, args.flops))
        return
    max_batches = 6 if args.quick else None
    baseline_steps = args.baseline_steps or (4 if args.quick else 300)

    ours, datamodule = run_ours(cfg, device, max_batches)
    baseline = run_baseline(
        datamodule, device, baseline_steps, warmup=1 if args.quick else 20, workers=args.baseline_workers
    )
    speedup = ours["molecules_per_s"] / baseline["molecules_per_s"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}; training molecules: {len(datamodule.split.train)}")
    for label, numbers in (
        ("this project (Lightning, resident data)", ours),
        ("PyG qm9_nn_conv.py baseline", baseline),
    ):
        memory = f"{numbers['peak_memory_gib']:.2f} GiB" if numbers["peak_memory_gib"] is not None else "n/a on cpu"
        print(
            f"{label:42s} {numbers['molecules_per_s']:10.0f} molecules/s  "
            f"{numbers['ms_per_step']:8.2f} ms/step  peak memory {memory}"
        )
    if args.json:
        print(json.dumps({"device": name, "ours": ours, "baseline": baseline, "speedup": speedup}))
    print(f"speedup: {speedup:.1f}")


if __name__ == "__main__":
    main()
