"""Training throughput: this project's pipeline against PyG's QM9 NNConv example, in one process.

    python scripts/benchmark.py --device cuda          # full training split, one H100/H200
    python scripts/benchmark.py --device cpu --quick   # a couple of minutes on a laptop CPU

Both sides use the example's configuration (dim 64, edge network width 128, 3 steps, mean
aggregation, set2set with 3 steps, batch 128, complete graph with explicit hydrogens, distance +
bond one-hot edges, Adam 1e-3) on the same molecules. (a) is the real Lightning Trainer fed by
QM9DataModule; (b) is PyG's DataLoader with the per-sample Complete + Distance transforms,
NNConv, nn.GRU and Set2Set, as the example ships. The last line is `speedup: X`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from omegaconf import DictConfig

if TYPE_CHECKING:
    from mpnn.data.datamodule import QM9DataModule

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EXAMPLE_OVERRIDES = [
    "model=edge_net",
    "model.hidden_dim=64",
    "model.steps=3",
    "model.readout_steps=3",
    "model.message.hidden_dim=128",
    "model.message.aggregation=mean",
    "data.batch_size=128",
    "data.edges=raw_distance",
    "data.explicit_h=true",
    "optim.lr=1e-3",
    "optim.schedule=constant",
    "optim.gradient_clip_val=null",  # the example does not clip
    "logger=none",
]


def _peak_memory(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def run_ours(cfg: DictConfig, device: torch.device, max_batches: int | None) -> dict:
    import lightning as L

    from mpnn.training.callbacks import Throughput
    from mpnn.training.run import build

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
    return {
        "molecules_per_s": rate,
        "ms_per_step": 1000 * cfg.data.batch_size / rate,
        "peak_memory_gib": _peak_memory(device),
    }, datamodule


def run_baseline(datamodule: QM9DataModule, device: torch.device, steps: int, warmup: int, workers: int) -> dict:
    from torch_geometric.loader import DataLoader

    from mpnn.baseline import ExampleNet, MoleculeList, example_transform, to_pyg
    from mpnn.data import cache

    packed, _ = cache.load_or_build(datamodule.root, progress=False)
    mean, std = datamodule.target_statistics()
    molecules = to_pyg(packed, datamodule.split.train, datamodule.target_column, mean, std)
    dataset = MoleculeList(molecules, transform=example_transform())
    loader = DataLoader(dataset, batch_size=128, shuffle=True, num_workers=workers)
    model = ExampleNet(dataset.num_features).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    done, molecules_timed, start = 0, 0, 0.0
    while done < warmup + steps:
        for data in loader:
            if done == warmup:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
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
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    rate = molecules_timed / elapsed
    return {"molecules_per_s": rate, "ms_per_step": 1000 * elapsed / steps, "peak_memory_gib": _peak_memory(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="a small subset and a few steps (CPU smoke benchmark)")
    parser.add_argument("--json", action="store_true", help="also print the numbers as one JSON line")
    parser.add_argument("--baseline-steps", type=int, default=None, help="timed baseline steps")
    parser.add_argument("--baseline-workers", type=int, default=0, help="baseline DataLoader workers (example: 0)")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for this project's side")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is visible; use --device cpu")

    from hydra import compose, initialize_config_dir

    device = torch.device(args.device)
    overrides = EXAMPLE_OVERRIDES + [f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}"]
    if args.quick:
        overrides.append("data.subset=2000")
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides + args.overrides, return_hydra_config=False)
    cfg.paths.root_dir = str(ROOT)
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
