"""`mpnn-benchmark`: how fast this project trains, against PyG's QM9 example, in one process.

    mpnn-benchmark --device cpu --quick          # throughput against the example: last line `speedup: X`
    mpnn-benchmark --device cuda                 # the same on the full training split, one GPU
    mpnn-benchmark --data-path                   # on-device PyG batches vs PyG's DataLoader, alone and in steps
    mpnn-benchmark --zoo                         # SchNet, DimeNet++, ViSNet steps: on-device batches vs DataLoader
    mpnn-benchmark --accuracy                    # validation MAE of the speed-ups vs the plain path, 3 seeds
    mpnn-benchmark --time-to-accuracy            # validation MAE against seconds, this project vs the example
    mpnn-benchmark --learning                    # does every paper config learn? non-zero exit if one does not
    mpnn-benchmark --ensemble 1,2,5              # step of K enn_s2s models in one process vs K single runs
    mpnn-benchmark --step [overrides]            # the training step alone, no Lightning, no loader
    mpnn-benchmark --flops [overrides]           # floating-point operations of one step, by operator
    mpnn-benchmark --precision [overrides]       # each precision's gradient error against float64, by part
    mpnn-benchmark --profile [overrides]         # kernels per step, their time, the device's idle share

The default mode trains both sides on the same molecules in the example's configuration (dim 64,
edge network width 128, 3 steps, mean aggregation, set2set with 3 steps, batch 128, complete graph
with explicit hydrogens, bond one-hot + distance edges, Adam 1e-3): this project through its real
Lightning Trainer and QM9DataModule on its fastest path (bf16 matrix products, batches split
into size-sorted parts padded separately), the example as it ships. It also measures the
machine's matrix-multiply peak (fp32, bf16) and the GFLOP/s the training step achieves.
`--quick` makes every mode CI-sized. Extra Hydra overrides apply to this project's side (e.g.
trainer.precision=32-true data.batch_parts=1 for the plain path, backend=pyg).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from mpnn.bench.learning import DEFAULT_EPOCHS, DEFAULT_SUBSET
from mpnn.bench.throughput import EXAMPLE_OVERRIDES, fast_path
from mpnn.bench.timing import device_name, matmul_peak
from mpnn.bench.zoo import ZOO
from mpnn.config import compose

DEFAULT_FIGURE = Path("time_to_accuracy.png")


def throughput(args, overrides: list[str], device: torch.device) -> None:
    from mpnn.bench.throughput import gflop_per_molecule, run_baseline, run_ours

    cfg = compose(overrides)
    ours, datamodule, module = run_ours(cfg, device, epochs=3 if args.quick else 2)
    baseline = run_baseline(
        datamodule,
        device,
        args.baseline_steps or (4 if args.quick else 300),
        warmup=1 if args.quick else 20,
        workers=args.baseline_workers,
    )
    speedup = ours["molecules_per_s"] / baseline["molecules_per_s"]
    gflop = gflop_per_molecule(module, datamodule, device, cfg.trainer.precision)
    achieved = gflop * ours["molecules_per_s"]
    peaks = {name: matmul_peak(device, dtype) for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    precision = "bf16" if cfg.trainer.precision == "bf16-mixed" else "fp32"
    data = cfg.data
    path = (
        f"precision {cfg.trainer.precision}, batch parts {data.batch_parts}, bucketing {data.bucketing}, "
        f"static shapes {data.static_shapes}, compile {cfg.optim.compile}, CUDA graph {cfg.optim.cuda_graph}"
    )
    print(
        f"device: {device_name(device)}; torch {torch.__version__}; training molecules: {len(datamodule.split.train)}"
    )
    print(f"this project's path: {path}")
    for label, numbers in (
        ("this project (Lightning, resident data)", ours),
        ("PyG qm9_nn_conv.py baseline", baseline),
    ):
        memory = f"{numbers['peak_memory_gib']:.2f} GiB" if numbers["peak_memory_gib"] is not None else "n/a on cpu"
        print(
            f"{label:42s} {numbers['molecules_per_s']:10.0f} molecules/s  "
            f"{numbers['ms_per_step']:8.2f} ms/step  peak memory {memory}"
        )
    print(
        f"GFLOP/s: {achieved:.0f} achieved by this project's training step ({1000 * gflop:.0f} MFLOP of matrix "
        f"products per molecule), {achieved / peaks[precision]:.0%} of the measured {precision} matmul peak; "
        f"peak fp32 {peaks['fp32']:.0f}, bf16 {peaks['bf16']:.0f}"
    )
    if args.json:
        numbers = {"ours": ours, "baseline": baseline, "gflop_per_s": achieved, "matmul_peak_gflop_per_s": peaks}
        print(json.dumps({"device": device_name(device), "path": path, **numbers, "speedup": speedup}))
    print(f"speedup: {speedup:.1f}")


# The PyG side of --data-path: edge_index batches, so no padding options and no compiled or captured step.
PYG_DATA_PATH = [
    "backend=pyg", "data.batch_parts=1", "data.bucketing=false", "data.static_shapes=false",
    "optim.compile=false", "optim.cuda_graph=false",
]  # fmt: skip


def data_path(args, overrides: list[str], device: torch.device) -> None:
    from mpnn.baseline import example_transform
    from mpnn.bench.data_path import batches_per_second, loader_batches, on_device_batches, pyg_loader, step_ms
    from mpnn.training.build import build

    pyg_cfg = compose([*overrides, *PYG_DATA_PATH])
    dense_cfg = compose([*overrides, "backend=dense"])
    pyg_dm, pyg_module = build(pyg_cfg)
    dense_dm, dense_module = build(dense_cfg)
    batch_size = pyg_cfg.data.batch_size
    loader = pyg_loader(pyg_dm, pyg_dm.split.train, example_transform(), batch_size)
    calls, loader_calls, steps = (20, 5, 2) if args.quick else (200, 30, 20)
    rates = {
        "on-device PyG Batch (backend=pyg)": batches_per_second(on_device_batches(pyg_dm, device), device, calls),
        "PyG DataLoader + Complete + Distance": batches_per_second(
            loader_batches(loader, device), device, loader_calls
        ),
        "on-device dense batch (backend=dense)": batches_per_second(on_device_batches(dense_dm, device), device, calls),
    }
    print(f"device: {device_name(device)}; torch {torch.__version__}; batch size {batch_size}")
    print("(a) data path alone, no model:")
    for label, rate in rates.items():
        print(f"  {label:40s} {rate:9.1f} batches/s  {rate * batch_size:10.0f} molecules/s")
    ratio = rates["on-device PyG Batch (backend=pyg)"] / rates["PyG DataLoader + Complete + Distance"]
    print(f"  on-device PyG batches / PyG DataLoader: {ratio:.1f}x")
    precision = pyg_cfg.trainer.precision
    pyg_module, dense_module = pyg_module.to(device), dense_module.to(device)
    warmup = 1 if args.quick else 3
    ms = {
        "backend=pyg, on-device batches": step_ms(
            pyg_module, on_device_batches(pyg_dm, device), device, precision, steps, warmup
        ),
        "backend=pyg, PyG DataLoader": step_ms(
            pyg_module, loader_batches(loader, device), device, precision, steps, warmup
        ),
        f"backend=dense (batch parts {dense_cfg.data.batch_parts})": step_ms(
            dense_module, on_device_batches(dense_dm, device), device, precision, steps, warmup
        ),
    }
    print(f"(b) training steps of the same model (edge_net, example configuration, precision {precision}):")
    for label, value in ms.items():
        print(f"  {label:40s} {value:9.1f} ms/step  {1000 * batch_size / value:10.0f} molecules/s")
    if args.json:
        print(json.dumps({"device": device_name(device), "batches_per_s": rates, "ms_per_step": ms}))


def zoo(args, overrides: list[str], device: torch.device) -> None:
    from mpnn.bench.zoo import zoo_steps

    models = tuple(args.zoo_models.split(","))
    rows = zoo_steps(overrides, device, steps=2 if args.quick else 10, warmup=1 if args.quick else 3, models=models)
    print(f"device: {device_name(device)}; torch {torch.__version__}; PyG backend, chemical graph batches")
    print(f"{'model':12s} {'on-device batches':>20s} {'PyG DataLoader':>20s} {'ratio':>7s}")
    for row in rows:
        ratio = row["dataloader_ms"] / row["on_device_ms"]
        print(
            f"{row['model']:12s} {row['on_device_ms']:14.1f} ms/step {row['dataloader_ms']:14.1f} ms/step {ratio:6.2f}x"
        )
    if args.json:
        print(json.dumps({"device": device_name(device), "zoo": rows}))


def accuracy(args, overrides: list[str], device: torch.device) -> None:
    from mpnn.bench.accuracy import accuracy_grid, accuracy_table

    grid = accuracy_grid(overrides, list(range(args.seeds)), device)
    print(accuracy_table(grid))
    if args.json:
        print(json.dumps(grid))


def time_to_accuracy(args, overrides: list[str], device: torch.device) -> None:
    from mpnn.bench.time_to_accuracy import draw, seconds_to, train_example, train_ours

    budget = args.budget or (10 if args.quick else 600 if device.type == "cuda" else 300)
    every = budget / (3 if args.quick else args.evaluations)
    cfg = compose(overrides)
    ours = train_ours(cfg, device, budget, every)
    from mpnn.training.build import build_datamodule

    datamodule = build_datamodule(cfg, "dense")
    example = train_example(datamodule, device, budget, every)
    target = datamodule.target
    name = f"this project (edge_net, {cfg.trainer.precision}, batch parts {cfg.data.batch_parts})"
    curves = {name: ours["curve"], "PyG qm9_nn_conv.py example": example["curve"]}
    print(
        f"time to accuracy: target {target.name}, {device_name(device)}, {len(datamodule.split.train)} training "
        f"and {len(datamodule.split.val)} validation molecules, {budget:.0f} s of training each"
    )
    for label, run in zip(curves, (ours, example)):
        best = min(mae for _, mae in run["curve"])
        print(
            f"  {label}: best validation MAE {best:.4f} {target.unit}, {run['steps']} steps, {run['epochs']:.1f} epochs"
        )
        print("    seconds, MAE: " + ", ".join(f"{s:.0f} {mae:.4f}" for s, mae in run["curve"]))
    scale = target.chemical_accuracy or 1.0
    example_best = min(mae for _, mae in example["curve"]) / scale
    for ratio in sorted({example_best, *args.ratio}, reverse=True):
        ours_s, example_s = seconds_to(ours["curve"], ratio * scale), seconds_to(example["curve"], ratio * scale)
        text = [f"{s:.0f} s" if s is not None else f"not within {budget:.0f} s" for s in (ours_s, example_s)]
        faster = f": {example_s / ours_s:.1f}x sooner" if ours_s and example_s else ""
        print(f"seconds to error ratio {ratio:.2f}: this project {text[0]}, PyG example {text[1]}{faster}")
    draw(curves, target.unit, target.chemical_accuracy, example_best, args.out)
    print(f"figure: {args.out}")
    if args.json:
        print(json.dumps({"device": device_name(device), "budget_s": budget, "curves": curves}))


def learning(args, overrides: list[str], device: torch.device) -> int:
    """The learning-health table; the exit status is non-zero unless every config learns (1: a config
    STALLED or FAILED; 3: none did, but the budget was too small to judge some)."""
    from mpnn.bench.learning import (
        PAPER_CONFIGS,
        config_overrides,
        draw_learning,
        gate,
        learning_health,
        learning_table,
        verdicts,
    )

    subset, epochs = (300, 1) if args.quick else (args.subset, args.epochs)
    configs = tuple(args.configs.split(",")) if args.configs else PAPER_CONFIGS
    for name in configs:
        try:
            config_overrides(name)
        except ValueError as error:
            raise SystemExit(f"--configs: {error}") from None
    result = learning_health(subset, epochs, device, configs, extra=overrides)
    print(learning_table(result))
    out = args.out if args.out != DEFAULT_FIGURE else Path("learning_health.png")
    draw_learning(result, out)
    print(f"figure: {out}")
    judged = verdicts(result)
    if args.json:
        print(json.dumps({"device": device_name(device), **result, "verdicts": {k: str(v) for k, v in judged.items()}}))
    status, line = gate(judged)
    print(line)
    return status


def ensemble(args, accelerator: list[str], device: torch.device) -> None:
    from mpnn.bench.ensemble import ensemble_table, ensemble_timing

    try:
        sizes = [int(k) for k in args.ensemble.split(",")]
    except ValueError:
        raise SystemExit(f"--ensemble {args.ensemble!r}: give ensemble sizes as whole numbers, e.g. 1,2,5") from None
    quick = ["model.hidden_dim=16", "model.steps=2", "model.readout.steps=2"] if args.quick else []
    overrides = ["experiment=enn_s2s", "data.subset=1000", *accelerator, *quick, *args.overrides]
    result = ensemble_timing(overrides, sizes, args.engines.split(","), device, 5 if args.quick else args.steps)
    print(ensemble_table(result))
    if args.json:
        print(json.dumps(result))


def flops(overrides: list[str], device: torch.device) -> None:
    """Matrix-product FLOPs of one step on the first training batch in split order."""
    from mpnn.bench.throughput import step_flops
    from mpnn.training.build import build

    cfg = compose(overrides)
    datamodule, module = build(cfg)
    module = module.to(device)
    batch = datamodule.batch(datamodule.split.train[: cfg.data.batch_size], device)
    total, by_operator = step_flops(module, batch, device, cfg.trainer.precision)
    by_operator = {name: f"{value:.2f}" for name, value in by_operator.items()}
    print(f"one step (forward + backward), GFLOP: {total:.2f} {by_operator} (padded to {batch.x.shape[1]} atoms)")


def example_overrides(device: torch.device, quick: bool, overrides: list[str]) -> list[str]:
    """This project's side of the throughput, step, FLOP and data-path modes: the example's configuration
    on the device's fast path, then the user's overrides."""
    accelerator = f"trainer.accelerator={'gpu' if device.type == 'cuda' else 'cpu'}"
    return [*EXAMPLE_OVERRIDES, *fast_path(device), accelerator, *(["data.subset=2000"] if quick else []), *overrides]


def profile(args, overrides: list[str], device: torch.device) -> None:
    from mpnn.bench.profile import profile_steps, profile_table

    cfg = compose(overrides)
    numbers = profile_steps(cfg, device, steps=5 if args.quick else 20, warmup=2 if args.quick else 10)
    print(f"device: {device_name(device)}; torch {torch.__version__}; train.py's step with {' '.join(overrides)}")
    print(profile_table(numbers))
    if args.json:
        print(json.dumps({"device": device_name(device), "overrides": overrides, **numbers}))


def precision(args, overrides: list[str], device: torch.device) -> None:
    from mpnn.bench.precision import briefly_trained, error_table, gradient_errors
    from mpnn.training.build import build

    datamodule, module = build(compose(overrides))
    module.load_state_dict(briefly_trained(overrides))
    rows = gradient_errors(module, datamodule, datamodule.split.val[:256], device)
    print(f"device: {device_name(device)}; torch {torch.__version__}; 256 validation molecules, weights after 20 steps")
    print(error_table(rows))
    if args.json:
        print(json.dumps({"device": device_name(device), "gradient_errors": rows}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="CI-sized: a small subset and a few steps")
    parser.add_argument("--json", action="store_true", help="also print the numbers as one JSON line")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--step", action="store_true", help="time the training step alone (no Lightning, no loader)")
    mode.add_argument("--flops", action="store_true", help="count the floating-point operations of one step")
    mode.add_argument("--precision", action="store_true", help="gradient errors of fp32/TF32/bf16 against float64")
    mode.add_argument("--profile", action="store_true", help="train.py's step (with overrides): kernels, idle time")
    mode.add_argument("--data-path", action="store_true", help="on-device PyG batches vs PyG's DataLoader")
    mode.add_argument("--zoo", action="store_true", help="zoo models' steps: on-device batches vs PyG's DataLoader")
    mode.add_argument("--accuracy", action="store_true", help="validation MAE of the speed-ups, seeds x epochs")
    mode.add_argument("--time-to-accuracy", action="store_true", help="validation MAE against training seconds")
    mode.add_argument("--learning", action="store_true", help="every paper config's validation MAE per epoch")
    mode.add_argument("--ensemble", default=None, help="step time of K models in one process, e.g. 1,2,5")
    parser.add_argument("--baseline-steps", type=int, default=None, help="timed baseline steps")
    parser.add_argument("--baseline-workers", type=int, default=0, help="baseline DataLoader workers (example: 0)")
    parser.add_argument("--zoo-models", default=",".join(ZOO), help="--zoo: comma-separated models")
    parser.add_argument("--seeds", type=int, default=3, help="--accuracy: seeds per path")
    parser.add_argument("--budget", type=float, default=None, help="--time-to-accuracy: training seconds per side")
    parser.add_argument("--evaluations", type=int, default=20, help="--time-to-accuracy: evaluations per side")
    parser.add_argument("--ratio", type=float, action="append", default=[], help="--time-to-accuracy: error ratio")
    parser.add_argument("--out", type=Path, default=DEFAULT_FIGURE, help="figure (--time-to-accuracy, --learning)")
    parser.add_argument("--subset", type=int, default=DEFAULT_SUBSET, help="--learning: molecules (split as usual)")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="--learning: epochs per config")
    parser.add_argument(
        "--configs", default=None, help="--learning: comma-separated names of conf/experiment/ and default"
    )
    parser.add_argument("--engines", default="loop,stacked", help="--ensemble: ensemble.engine values to time")
    parser.add_argument("--steps", type=int, default=20, help="--ensemble: timed steps per configuration")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for this project's side")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is visible; use --device cpu")

    from mpnn.logs import quiet_logs

    quiet_logs()
    device = torch.device(args.device)
    accelerator = [f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}"]
    if args.zoo:
        quick = ["data.subset=1000", "data.batch_size=8"] if args.quick else []
        zoo(args, ["data.batch_size=32", *accelerator, *quick, *args.overrides], device)
    elif args.accuracy:
        epochs = (
            ["data.subset=300", "trainer.max_epochs=1"] if args.quick else ["data.subset=5000", "trainer.max_epochs=10"]
        )
        accuracy(args, [*accelerator, *epochs, *args.overrides], device)
    elif args.learning:
        return learning(args, [*accelerator, *args.overrides], device)
    elif args.ensemble:
        ensemble(args, accelerator, device)
    elif args.profile:
        profile(args, [*accelerator, *(["data.subset=2000"] if args.quick else []), *args.overrides], device)
    elif args.precision:
        precision(args, ["data.subset=1000", *args.overrides], device)
    elif args.time_to_accuracy:
        subset = ["data.subset=1000"] if args.quick else ["data.subset=10000"] if args.device == "cpu" else []
        overrides = [*fast_path(device), "schedule=constant", *accelerator, *subset, *args.overrides]
        time_to_accuracy(args, overrides, device)
    else:
        overrides = example_overrides(device, args.quick, args.overrides)
        if args.data_path:
            data_path(args, [*overrides, "data.batch_size=32"] if args.quick else overrides, device)
        elif args.step:
            from mpnn.bench.throughput import step_alone

            print(f"step alone ({device}): {step_alone(compose(overrides), device):.0f} molecules/s")
        elif args.flops:
            flops(overrides, device)
        else:
            throughput(args, overrides, device)


if __name__ == "__main__":
    raise SystemExit(main())
