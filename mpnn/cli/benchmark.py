"""`mpnn-benchmark MODE [options] [Hydra overrides]`: how fast this project trains, against PyG's QM9
example, and whether every paper config learns. `mpnn-benchmark MODE --help` lists a mode's own options.

    mpnn-benchmark throughput --device cpu --quick  # against the example: last line `speedup: X`
    mpnn-benchmark throughput --device cuda         # the same on the full training split, one GPU
    mpnn-benchmark data-path                        # on-device PyG batches vs PyG's DataLoader, alone and in steps
    mpnn-benchmark zoo                              # SchNet, DimeNet++, ViSNet steps: on-device batches vs DataLoader
    mpnn-benchmark accuracy                         # validation MAE of the speed-ups vs the plain path, 3 seeds
    mpnn-benchmark time-to-accuracy                 # validation MAE against seconds, this project vs the example
    mpnn-benchmark learning                         # does every paper config learn? exit 1 if one does not
    mpnn-benchmark ensemble --sizes 1,2,5           # step of K enn_s2s models in one process vs K single runs
    mpnn-benchmark step [overrides]                 # the training step alone, no Lightning, no loader
    mpnn-benchmark flops [overrides]                # floating-point operations of one step, by operator
    mpnn-benchmark precision [overrides]            # each precision's gradient error against float64, by part
    mpnn-benchmark profile [overrides]              # kernels per step, their time, the device's idle share

Every mode takes --device, --quick (CI-sized), --json (its numbers as one JSON line) and --results PATH
(its numbers in a JSON file, as the GPU check reads them), then Hydra overrides.
The old flag form still works: `mpnn-benchmark --learning --configs enn_s2s`, `--ensemble 1,2,5`, and
without a mode (`mpnn-benchmark --device cpu --quick`) the mode is throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from mpnn.bench.learning import DEFAULT_EPOCHS, DEFAULT_SUBSET, PAPER_CONFIGS, config_overrides
from mpnn.bench.throughput import EXAMPLE_OVERRIDES, fast_path
from mpnn.bench.timing import device_name, matmul_peak
from mpnn.bench.zoo import ZOO
from mpnn.config import compose
from mpnn.files import check_writable
from mpnn.training.reporting import strict_json


@dataclass
class Outcome:
    """What a mode hands back: its numbers (the --json line, the --results file), the line printed last
    (what scripts read: `speedup: X`, learning's verdict) and the exit status (learning's gate)."""

    numbers: dict
    last_line: str | None = None
    exit_status: int = 0


def accelerator(device: torch.device) -> str:
    return f"trainer.accelerator={'gpu' if device.type == 'cuda' else 'cpu'}"


def example_overrides(device: torch.device, quick: bool, overrides: list[str]) -> list[str]:
    """This project's side of the throughput, step, FLOP and data-path modes: the example's configuration
    on the device's fast path, then the user's overrides."""
    return [*EXAMPLE_OVERRIDES, *fast_path(device), accelerator(device), *(["data.subset=2000"] if quick else []),
            *overrides]  # fmt: skip


def comma_list(text: str) -> tuple[str, ...]:
    return tuple(item for item in text.split(",") if item)


def whole_numbers(text: str) -> list[int]:
    try:
        return [int(item) for item in comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers, e.g. 1,2,5") from None


def config_names(text: str) -> tuple[str, ...]:
    """Checked before any training: a misspelt name fails at once, not after the first configs' minutes."""
    names = comma_list(text)
    for name in names:
        try:
            config_overrides(name)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return names


def throughput(args: argparse.Namespace, device: torch.device) -> Outcome:
    """Both sides train on the same molecules in the example's configuration (dim 64, edge network width
    128, 3 steps, mean aggregation, set2set with 3 steps, batch 128, complete graph with explicit hydrogens,
    bond one-hot + distance edges, Adam 1e-3): this project through its real Lightning Trainer and
    QM9DataModule on the device's fastest path, the example as it ships. It also measures the machine's
    matrix-multiply peak (fp32, bf16) and the GFLOP/s the training step achieves. The overrides apply to
    this project's side (e.g. trainer.precision=32-true data.batch_parts=1 for the plain path, backend=pyg).
    """
    from mpnn.bench.throughput import gflop_per_molecule, run_baseline, run_ours

    cfg = compose(example_overrides(device, args.quick, args.overrides))
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
    numbers = {"device": device_name(device), "path": path, "ours": ours, "baseline": baseline}
    numbers |= {"gflop_per_s": achieved, "matmul_peak_gflop_per_s": peaks, "speedup": speedup}
    return Outcome(numbers, f"speedup: {speedup:.1f}")


def throughput_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline-steps", type=int, default=None, help="timed steps of the example (300; quick: 4)")
    parser.add_argument("--baseline-workers", type=int, default=0, help="the example's DataLoader workers (default: 0)")


# The PyG side of data-path: edge_index batches, so no padding options and no compiled or captured step.
PYG_DATA_PATH = [
    "backend=pyg", "data.batch_parts=1", "data.bucketing=false", "data.static_shapes=false",
    "optim.compile=false", "optim.cuda_graph=false",
]  # fmt: skip


def data_path(args: argparse.Namespace, device: torch.device) -> Outcome:
    """PyG batches built on the device against PyG's DataLoader with the example's per-sample transforms:
    (a) the data path alone, no model; (b) inside training steps of the same model, and the dense backend's
    step beside them. The example's configuration on the device's fast path, then the overrides."""
    from mpnn.baseline import example_transform
    from mpnn.bench.data_path import batches_per_second, loader_batches, on_device_batches, pyg_loader, step_ms
    from mpnn.training.build import build

    quick = ["data.batch_size=32"] if args.quick else []
    overrides = example_overrides(device, args.quick, [*quick, *args.overrides])
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
    return Outcome({"device": device_name(device), "batches_per_s": rates, "ms_per_step": ms})


def zoo(args: argparse.Namespace, device: torch.device) -> Outcome:
    """Training steps of PyG's zoo models (PyG backend, chemical graph batches, batch 32): batches built on
    the device against PyG's DataLoader."""
    from mpnn.bench.zoo import zoo_steps

    quick = ["data.subset=1000", "data.batch_size=8"] if args.quick else []
    overrides = ["data.batch_size=32", accelerator(device), *quick, *args.overrides]
    steps, warmup = (2, 1) if args.quick else (10, 3)
    rows = zoo_steps(overrides, device, steps=steps, warmup=warmup, models=args.models)
    print(f"device: {device_name(device)}; torch {torch.__version__}; PyG backend, chemical graph batches")
    print(f"{'model':12s} {'on-device batches':>20s} {'PyG DataLoader':>20s} {'ratio':>7s}")
    for row in rows:
        ratio = row["dataloader_ms"] / row["on_device_ms"]
        print(
            f"{row['model']:12s} {row['on_device_ms']:14.1f} ms/step {row['dataloader_ms']:14.1f} ms/step {ratio:6.2f}x"
        )
    return Outcome({"device": device_name(device), "zoo": rows})


def zoo_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models", "--zoo-models", type=comma_list, default=ZOO, help=f"comma-separated (default: {','.join(ZOO)})"
    )


def accuracy(args: argparse.Namespace, device: torch.device) -> Outcome:
    """Does a speed-up cost accuracy? Validation MAE of each path after the same epochs (5,000 molecules,
    10 epochs; quick: 300 and 1), over several seeds, against the plain path."""
    from mpnn.bench.accuracy import accuracy_grid, accuracy_table

    subset, epochs = (300, 1) if args.quick else (5000, 10)
    overrides = [accelerator(device), f"data.subset={subset}", f"trainer.max_epochs={epochs}", *args.overrides]
    grid = accuracy_grid(overrides, list(range(args.seeds)), device)
    print(accuracy_table(grid))
    return Outcome(grid)


def accuracy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=3, help="seeds per path (default: 3)")


def time_to_accuracy(args: argparse.Namespace, device: torch.device) -> Outcome:
    """Validation MAE against training seconds, this project (its fast path, constant learning rate) against
    PyG's example on the same molecules (CPU: 10,000; CUDA: the full split; quick: 1,000), and the seconds
    each needs to reach each error ratio."""
    from mpnn.bench.time_to_accuracy import draw, seconds_to, train_example, train_ours
    from mpnn.training.build import build_datamodule

    subset = ["data.subset=1000"] if args.quick else ["data.subset=10000"] if device.type == "cpu" else []
    cfg = compose([*fast_path(device), "schedule=constant", accelerator(device), *subset, *args.overrides])
    budget = args.budget or (10 if args.quick else 600 if device.type == "cuda" else 300)
    every = budget / (3 if args.quick else args.evaluations)
    ours = train_ours(cfg, device, budget, every)
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
    return Outcome({"device": device_name(device), "budget_s": budget, "curves": curves})


def time_to_accuracy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--budget", type=float, default=None, help="training seconds per side (CUDA: 600, CPU: 300, quick: 10)"
    )
    parser.add_argument("--evaluations", type=int, default=20, help="validations per side (default: 20; quick: 3)")
    parser.add_argument(
        "--ratio", type=float, action="append", default=[], help="an error ratio to report (repeatable)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("time_to_accuracy.png"), help="the figure (default: %(default)s)"
    )


def learning(args: argparse.Namespace, device: torch.device) -> Outcome:
    """Does every paper config learn? Each trains on the same molecules for the same epochs and is judged
    against PyG's example configuration with the same input representation (mpnn/bench/learning.py). The
    overrides reach every config. Exit status: 1 if a config STALLED or FAILED, 3 if some could not be judged
    (too small a budget), 0 only if every config learns."""
    from mpnn.bench.learning import draw_learning, gate, learning_health, learning_table, verdicts

    subset, epochs = (300, 1) if args.quick else (args.subset, args.epochs)
    result = learning_health(subset, epochs, device, args.configs, extra=[accelerator(device), *args.overrides])
    print(learning_table(result))
    draw_learning(result, args.out)
    print(f"figure: {args.out}")
    judged = verdicts(result)
    status, line = gate(judged)
    numbers = {"device": device_name(device), **result, "verdicts": {k: str(v) for k, v in judged.items()}}
    return Outcome(numbers, line, status)


def learning_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--configs", type=config_names, default=PAPER_CONFIGS,
        help="comma-separated names of conf/experiment/ and default (default: the table's, PAPER_CONFIGS)",
    )  # fmt: skip
    parser.add_argument("--subset", type=int, default=DEFAULT_SUBSET, help="molecules, split as usual (quick: 300)")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="epochs per config (quick: 1)")
    parser.add_argument(
        "--out", type=Path, default=Path("learning_health.png"), help="the figure (default: %(default)s)"
    )


def ensemble(args: argparse.Namespace, device: torch.device) -> Outcome:
    """Step time of K experiment=enn_s2s models trained in one process (each ensemble engine) against K
    single runs, on 1,000 molecules."""
    from mpnn.bench.ensemble import ensemble_table, ensemble_timing

    quick = ["model.hidden_dim=16", "model.steps=2", "model.readout.steps=2"] if args.quick else []
    overrides = ["experiment=enn_s2s", "data.subset=1000", accelerator(device), *quick, *args.overrides]
    result = ensemble_timing(overrides, args.sizes, list(args.engines), device, 5 if args.quick else args.steps)
    print(ensemble_table(result))
    return Outcome(result)


def ensemble_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=whole_numbers, default=[1, 2, 5], help="ensemble sizes K (default: 1,2,5)")
    parser.add_argument(
        "--engines", type=comma_list, default=("loop", "stacked"), help="ensemble.engine values (default: loop,stacked)"
    )
    parser.add_argument("--steps", type=int, default=20, help="timed steps per configuration (default: 20; quick: 5)")


def step(args: argparse.Namespace, device: torch.device) -> Outcome:
    """The training step alone (no Lightning, no loader), in the example's configuration on the device's
    fast path: the ceiling of the pipeline."""
    from mpnn.bench.throughput import step_alone

    rate = step_alone(compose(example_overrides(device, args.quick, args.overrides)), device)
    line = f"step alone ({device}): {rate:.0f} molecules/s"
    return Outcome({"device": device_name(device), "molecules_per_s": rate}, line)


def flops(args: argparse.Namespace, device: torch.device) -> Outcome:
    """Matrix-product FLOPs of one training step (forward + backward) on the first training batch in split
    order, by operator, in the example's configuration on the device's fast path."""
    from mpnn.bench.throughput import step_flops
    from mpnn.training.build import build

    cfg = compose(example_overrides(device, args.quick, args.overrides))
    datamodule, module = build(cfg)
    batch = datamodule.batch(datamodule.split.train[: cfg.data.batch_size], device)
    total, by_operator = step_flops(module.to(device), batch, device, cfg.trainer.precision)
    shown = {name: f"{value:.2f}" for name, value in by_operator.items()}
    line = f"one step (forward + backward), GFLOP: {total:.2f} {shown} (padded to {batch.x.shape[1]} atoms)"
    return Outcome({"device": device_name(device), "gflop": total, "gflop_by_operator": by_operator}, line)


def precision(args: argparse.Namespace, device: torch.device) -> Outcome:
    """How far each precision's gradient (fp32, TF32, bf16) is from float64's, by part of the model, on 256
    validation molecules with the weights after 20 training steps (1,000 molecules, then the overrides)."""
    from mpnn.bench.precision import briefly_trained, error_table, gradient_errors
    from mpnn.training.build import build

    overrides = ["data.subset=1000", *args.overrides]
    datamodule, module = build(compose(overrides))
    module.load_state_dict(briefly_trained(overrides))
    rows = gradient_errors(module, datamodule, datamodule.split.val[:256], device)
    print(f"device: {device_name(device)}; torch {torch.__version__}; 256 validation molecules, weights after 20 steps")
    print(error_table(rows))
    return Outcome({"device": device_name(device), "gradient_errors": rows})


def profile(args: argparse.Namespace, device: torch.device) -> Outcome:
    """Where train.py's training step (the config the overrides compose) spends its time: kernels per
    step, their time, the device's idle share."""
    from mpnn.bench.profile import profile_steps, profile_table

    overrides = [accelerator(device), *(["data.subset=2000"] if args.quick else []), *args.overrides]
    steps, warmup = (5, 2) if args.quick else (20, 10)
    numbers = profile_steps(compose(overrides), device, steps=steps, warmup=warmup)
    print(f"device: {device_name(device)}; torch {torch.__version__}; train.py's step with {' '.join(overrides)}")
    print(profile_table(numbers))
    return Outcome({"device": device_name(device), "overrides": overrides, **numbers})


@dataclass(frozen=True)
class Mode:
    """A subcommand: its function (whose docstring is its --help description), its line in the list of
    modes, and the options it alone takes."""

    run: Callable[[argparse.Namespace, torch.device], Outcome]
    help: str
    options: Callable[[argparse.ArgumentParser], None] | None = None


MODES = {
    "throughput": Mode(throughput, "this project vs PyG's QM9 example (the default mode)", throughput_options),
    "data-path": Mode(data_path, "on-device PyG batches vs PyG's DataLoader, alone and in steps"),
    "zoo": Mode(zoo, "SchNet, DimeNet++, ViSNet steps: on-device batches vs PyG's DataLoader", zoo_options),
    "accuracy": Mode(accuracy, "validation MAE of the speed-ups vs the plain path, over seeds", accuracy_options),
    "time-to-accuracy": Mode(
        time_to_accuracy, "validation MAE against training seconds, vs the example", time_to_accuracy_options
    ),
    "learning": Mode(learning, "does every paper config learn? exit 1 if one does not", learning_options),
    "ensemble": Mode(ensemble, "step time of K models in one process vs K single runs", ensemble_options),
    "step": Mode(step, "the training step alone, no Lightning, no loader"),
    "flops": Mode(flops, "floating-point operations of one step, by operator"),
    "precision": Mode(precision, "each precision's gradient error against float64, by part"),
    "profile": Mode(profile, "train.py's step: kernels per step, their time, the device's idle share"),
}
# The old form chose the mode by a flag; `--ensemble` carried the sizes.
OLD_MODE_FLAGS = {f"--{name}": name for name in MODES if name != "throughput"}


def add_shared_options(parser: argparse.ArgumentParser) -> None:
    """The options every mode takes, and the Hydra overrides after them."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", choices=["cpu", "cuda"], default=device, help=f"(here: {device})")
    parser.add_argument("--quick", action="store_true", help="CI-sized: a small subset and a few steps")
    parser.add_argument("--json", action="store_true", help="also print the numbers as one JSON line")
    parser.add_argument(
        "--results", type=Path, default=None, metavar="PATH",
        help="write the numbers, the mode and the command to this JSON file; refused if PATH exists (never "
        "overwritten), and written whole under a temporary name first, so a reader sees all of it or nothing",
    )  # fmt: skip
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data.subset=2000 trainer.precision=32-true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mpnn-benchmark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    modes = parser.add_subparsers(dest="mode", metavar="MODE", required=True)
    for name, mode in MODES.items():
        sub = modes.add_parser(name, help=mode.help, description=mode.run.__doc__)
        if mode.options:
            mode.options(sub)
        add_shared_options(sub)
        sub.set_defaults(run=mode.run)
    return parser


def subcommand_form(argv: list[str]) -> list[str]:
    """A command line of the old flag form as the subcommand form: the mode flag, wherever it stands, becomes
    the subcommand in front (`--ensemble K` becomes `ensemble --sizes K`); without one the mode is throughput."""
    if argv[:1] and argv[0] in (*MODES, "-h", "--help"):
        return argv
    for i, token in enumerate(argv):
        flag, equals, sizes = token.partition("=")
        if flag == "--ensemble":
            return ["ensemble", *argv[:i], f"--sizes{equals}{sizes}", *argv[i + 1 :]]
        if token in OLD_MODE_FLAGS:
            return [OLD_MODE_FLAGS[token], *argv[:i], *argv[i + 1 :]]
    return ["throughput", *argv]


def publish(path: Path, results: dict) -> None:
    """Write `path` whole or not at all, and never over a file that appeared during the run: the JSON goes to
    a temporary file, hard-linked to `path` (which fails if `path` exists); on such a clash the temporary file
    stays and the message names it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(strict_json(results), indent=2, allow_nan=False) + "\n")
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise SystemExit(f"--results {path} appeared during this run; this run's results are in {temporary}") from None
    temporary.unlink()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(subcommand_form(argv))
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is visible; use --device cpu")
    if args.results is not None:  # refused before minutes of work whose numbers could not be kept
        if args.results.exists():
            parser.error(f"--results {args.results} exists (another run's?): remove it or name a new file")
        try:
            check_writable(args.results.parent, "--results")
        except PermissionError as error:
            parser.error(str(error))

    from mpnn.logs import quiet_logs

    quiet_logs()
    outcome = args.run(args, torch.device(args.device))
    if args.json:
        print(json.dumps(outcome.numbers))
    if args.results is not None:
        results = {"mode": args.mode, "argv": argv, "exit_status": outcome.exit_status, "numbers": outcome.numbers}
        publish(args.results, results)
    if outcome.last_line:
        print(outcome.last_line)
    return outcome.exit_status


if __name__ == "__main__":
    raise SystemExit(main())
