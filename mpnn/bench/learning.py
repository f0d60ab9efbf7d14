"""Learning health: does every paper config learn? (`mpnn-benchmark learning`)

Every config trains through the real Lightning pipeline on the same molecules for the same epochs,
with its own batch size, learning rate and schedule, on the device's fast path (CPU: bf16 matrix
products and 4 batch parts, within seed noise of fp32: docs/PERFORMANCE.md). Each is judged against a healthy reference:
PyG's QM9 example configuration (`examples/qm9_nn_conv.py`: edge network with mean aggregation,
d = 64, T = 3, set2set(3), batch 128, Adam 1e-3, its plateau schedule, no clipping), trained
through the same pipeline on the same molecules and epochs with the config's own input
representation (edges, hydrogens, virtual edges), so that a model without distances is compared
with a reference without distances. The reference is run, not stored: it costs a minute or two.

Verdicts (`verdict`):
- FAILED: a validation MAE that is not finite or above EXPLODED x the mean predictor's, a run
  stopped by divergence, or a curve that ends more than DIVERGING x above its best.
- not judged: the reference did not get clear of the mean predictor (best above CLEAR x its MAE):
  the budget is too small to tell a stall from slow learning.
- STALLED: the config's best is above STALLED_VS_REFERENCE x the reference's best, or above
  NEAR_MEAN x the mean predictor.
- learns: otherwise.

The default budget (DEFAULT_SUBSET molecules, DEFAULT_EPOCHS epochs) and the factors were chosen by
measurement (docs/TRAINING.md, section 3): there the reference gets clear of the mean predictor,
and enn_s2s with the plain sum (the stall that started the guard) is STALLED while enn_s2s as shipped learns.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mpnn.bench.accuracy import train_once
from mpnn.bench.throughput import fast_path
from mpnn.config import compose, experiment_names

DEFAULT_SUBSET = 5000
DEFAULT_EPOCHS = 8
DEFAULT = "default"  # the label of `python train.py` with no experiment (model=edge_net)
# The table's configs: the default and the paper's experiments (the zoo's *_qm9 recipes are too slow on a CPU;
# `--configs` runs any name in conf/experiment/).
PAPER_CONFIGS = (
    DEFAULT, "enn_s2s", "enn_s2s_implicit_h", "enn_s2s_reference", "ggnn_no_distance", "ggnn_virtual_edges",
    "ggnn_master_node", "ggnn_set2set", "towers_baseline", "towers8",
)  # fmt: skip
# PyG's examples/qm9_nn_conv.py configuration on this project's pipeline (mpnn.baseline has the example's own code).
REFERENCE_OVERRIDES = [
    "model=edge_net", "model.hidden_dim=64", "model.steps=3", "model.readout.steps=3", "model.message.hidden_dim=128",
    "model.message.aggregation=mean", "data.batch_size=128", "optim=adam", "optim.lr=1e-3",
    "optim.gradient_clip_val=null", "schedule=plateau",
]  # fmt: skip
REPRESENTATION = ("edges", "explicit_h", "virtual_edges")  # the data settings a reference shares with its config
# The user's overrides of these reach the configs but not the references, which stay the example's configuration.
MODEL_KEYS = ("model", "optim", "schedule", "experiment", "ensemble", "backend", "recipe")

CLEAR = 0.8  # the reference's best must be below this fraction of the mean predictor's MAE
NEAR_MEAN = 0.9  # a config whose best stays above this fraction of the mean predictor's MAE has stalled
STALLED_VS_REFERENCE = 1.1  # ... as has one whose best is above this multiple of the reference's best
DIVERGING = 1.5  # a curve ending above this multiple of its best got worse: FAILED
EXPLODED = 10.0  # a validation MAE above this multiple of the mean predictor's: FAILED


@dataclass(frozen=True)
class Verdict:
    status: str  # "learns", "STALLED", "FAILED" or "not judged"
    reason: str

    @property
    def passed(self) -> bool:
        return self.status == "learns"

    def __str__(self) -> str:
        return f"{self.status} ({self.reason})" if self.reason else self.status


def config_overrides(name: str) -> list[str]:
    """The overrides that select a config by name: `default`, or a file of conf/experiment/."""
    if name == DEFAULT:
        return []
    names = experiment_names()
    if name not in names:
        raise ValueError(f"unknown config {name!r}; valid: {', '.join([DEFAULT, *names])}")
    return [f"experiment={name}"]


def representation(overrides: list[str]) -> tuple:
    """(edges, explicit_h, virtual_edges) of the config the overrides compose."""
    data = compose(["logger=none", *overrides]).data
    return tuple(data[key] for key in REPRESENTATION)


def reference_overrides(rep: tuple, budget: list[str]) -> list[str]:
    """The reference for one input representation: the budget (the user's model settings dropped), then the
    example's configuration."""
    kept = [o for o in budget if o.lstrip("+~").split("=")[0].split(".")[0].split("/")[0] not in MODEL_KEYS]
    return [*kept, *REFERENCE_OVERRIDES, *(f"data.{key}={value}" for key, value in zip(REPRESENTATION, rep))]


def reference_label(rep: tuple) -> str:
    edges, explicit_h, virtual_edges = rep
    virtual = ", virtual edges" if virtual_edges else ""
    return f"reference ({edges}{virtual}, {'explicit' if explicit_h else 'implicit'} H)"


def mean_predictor_mae(datamodule) -> float:
    """Validation MAE of predicting the training split's mean: the input-independent floor to beat."""
    y_train, _ = datamodule.training_targets()
    y_val = datamodule.packed.targets[datamodule.split.val, datamodule.target_column]
    return float(np.abs(y_val - y_train.mean()).mean())


def verdict(
    curve: list[float], epochs: int, reference_best: float, mean_predictor: float, stopped: str | None = None
) -> Verdict:
    """Judge one validation curve (MAE per epoch) of a run meant to last `epochs` epochs."""
    bad = [i + 1 for i, value in enumerate(curve) if not math.isfinite(value)]
    if bad:
        return Verdict("FAILED", f"validation MAE not finite from epoch {bad[0]}")
    if stopped:
        return Verdict("FAILED", f"stopped after {len(curve)} of {epochs} epochs: {stopped}")
    if len(curve) < epochs:
        return Verdict("FAILED", f"only {len(curve)} of {epochs} epochs")
    best = min(curve)
    if max(curve) > EXPLODED * mean_predictor:
        return Verdict("FAILED", f"exploded: {max(curve):.3g}, {max(curve) / mean_predictor:.3g}x the mean predictor's")
    if curve[-1] > DIVERGING * best:
        return Verdict("FAILED", f"diverging: ends at {curve[-1]:.3g}, {curve[-1] / best:.1f}x its best")
    if not reference_best < CLEAR * mean_predictor:
        return Verdict(
            "not judged",
            f"the reference reached only {reference_best / mean_predictor:.2f} of the mean predictor's MAE: "
            "too small a budget to tell a stall from slow learning",
        )
    if best > NEAR_MEAN * mean_predictor:
        return Verdict("STALLED", f"best {best / mean_predictor:.2f} of the mean predictor's MAE")
    if best > STALLED_VS_REFERENCE * reference_best:
        return Verdict("STALLED", f"best {best / reference_best:.2f}x the reference's")
    return Verdict("learns", "")


def _train(overrides: list[str], device: torch.device) -> dict:
    run = train_once(overrides, device, allow_divergence=True)
    return {key: run[key] for key in ("val_mae", "seconds", "stopped", "unit")}


def learning_health(
    subset: int, epochs: int, device: torch.device, configs: tuple[str, ...] = PAPER_CONFIGS, extra: list[str] = ()
) -> dict:
    """Every config and the reference for each input representation among them, on the same molecules
    and epochs; `extra` (the user's overrides) reaches every run, the references' model and optimiser
    settings aside. Returns {"runs": {label: run}, "unit", "mean_predictor_mae", "subset", "epochs"}."""
    budget = [f"data.subset={subset}", f"trainer.max_epochs={epochs}", *fast_path(device), *extra]
    selected = {name: config_overrides(name) for name in configs}
    runs, references = {}, {}
    for name, overrides in selected.items():
        rep = representation([*overrides, *budget])
        if rep not in references:
            label = reference_label(rep)
            references[rep] = label
            runs[label] = {**_train(reference_overrides(rep, budget), device), "reference": None}
            _print_run(label, runs[label])
        runs[name] = {**_train([*overrides, *budget], device), "reference": references[rep]}
        _print_run(name, runs[name])
    from mpnn.training.build import build_datamodule

    datamodule = build_datamodule(compose(["logger=none", *budget]), "dense")
    return {
        "runs": runs,
        "unit": next(iter(runs.values()))["unit"],
        "mean_predictor_mae": mean_predictor_mae(datamodule),
        "subset": subset,
        "epochs": epochs,
    }


def _print_run(label: str, run: dict) -> None:
    stopped = f"; stopped: {run['stopped']}" if run["stopped"] else ""
    print(f"{label}: {' '.join(_mae(v) for v in run['val_mae'])} ({run['seconds']:.0f} s{stopped})", flush=True)


def gate(judged: dict[str, Verdict]) -> tuple[int, str]:
    """(exit status, closing line) of `mpnn-benchmark learning`: 1 if any config STALLED or FAILED;
    3 if none did but some could not be judged (too small a budget); 0 only if every config learns."""
    failed = [f"{name} {v.status}" for name, v in judged.items() if v.status in ("STALLED", "FAILED")]
    if failed:
        return 1, f"learning health: FAILED: {', '.join(failed)}"
    unjudged = [name for name, v in judged.items() if v.status == "not judged"]
    if unjudged:
        return 3, f"learning health: NOT JUDGED ({', '.join(unjudged)}): the budget was too small for the reference"
    return 0, f"learning health: every config learns ({len(judged)})"


def _mae(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 1000 else f"{value:.2e}"


def verdicts(result: dict) -> dict[str, Verdict]:
    """{config: verdict} for every config of a `learning_health` result (the references are the yardsticks)."""
    runs = result["runs"]
    judged = {}
    for label, run in runs.items():
        if run["reference"] is None:
            continue
        reference = runs[run["reference"]]
        reference_best = min(reference["val_mae"], default=math.nan)
        if reference["stopped"] or not math.isfinite(reference_best):
            reference_best = math.inf  # a failed reference judges nothing
        judged[label] = verdict(
            run["val_mae"], result["epochs"], reference_best, result["mean_predictor_mae"], run["stopped"]
        )
    return judged


def learning_table(result: dict) -> str:
    """Markdown: validation MAE per epoch, best, best relative to its reference, verdict, seconds."""
    runs, unit, epochs = result["runs"], result["unit"], result["epochs"]
    judged = verdicts(result)
    header = " | ".join(f"ep {e + 1}" for e in range(epochs))
    lines = [
        f"| config | {header} | best ({unit}) | best / reference's | verdict | seconds |",
        "| --- |" + " --- |" * (epochs + 4),
    ]
    for label, run in runs.items():
        curve = run["val_mae"]
        cells = [_mae(v) for v in curve] + ["-"] * (epochs - len(curve))
        best = min(curve, default=math.nan)
        if run["reference"] is None:
            ratio, outcome = "", "reference"
        else:
            reference_best = min(runs[run["reference"]]["val_mae"], default=math.nan)
            ratio, outcome = f"{best / reference_best:.2f}", str(judged[label])
        lines.append(f"| {label} | {' | '.join(cells)} | {_mae(best)} | {ratio} | {outcome} | {run['seconds']:.0f} |")
    lines.append(
        f"\nMean predictor (training mean): {result['mean_predictor_mae']:.3f} {unit}; {result['subset']} molecules, "
        f"{epochs} epochs."
    )
    return "\n".join(lines)


def draw_learning(result: dict, path: Path) -> None:
    """Validation MAE per epoch, one line per config; the references black, each with its own dash pattern
    (a table has up to five), the mean predictor grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    judged = verdicts(result)
    dashes = itertools.cycle(["--", ":", "-.", (0, (6, 2, 1, 2, 1, 2)), (0, (1, 4))])
    fig, ax = plt.subplots(figsize=(7.6, 4.8))
    for label, run in result["runs"].items():
        epochs = np.arange(1, len(run["val_mae"]) + 1)
        if run["reference"] is None:
            ax.plot(epochs, run["val_mae"], label=label, linestyle=next(dashes), linewidth=2, color="black", alpha=0.7)
        else:
            status = judged[label].status
            name = label if status == "learns" else f"{label}: {status}"
            ax.plot(epochs, run["val_mae"], label=name, marker="o", markersize=3)
    ax.axhline(result["mean_predictor_mae"], color="grey", linewidth=1)
    ax.text(1, result["mean_predictor_mae"], " mean predictor", va="bottom", color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation MAE ({result['unit']})")
    ax.set_title(f"Learning health: {result['subset']} molecules, {result['epochs']} epochs for every config")
    ax.legend(fontsize=6, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
