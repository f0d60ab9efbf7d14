"""Learning health: does every paper config learn? (`mpnn-benchmark --learning`)

Every Gilmer et al. experiment config and the default `model=edge_net` train through the real
Lightning pipeline on the same CPU-sized subset for the same epochs, next to PyG's QM9 example
(NNConv with mean aggregation + GRU + Set2Set, d = 64, batch 128, Adam 1e-3; `mpnn.baseline`) on
the same training and validation molecules, and next to the mean predictor. The result is a table
of validation MAE per epoch and a figure on which a stalled config stands out. Small budgets favour
small, fast-stepping models (the example, d = 64), so a paper config somewhat behind the example
here is expected; one that stays near the mean predictor, or gets worse, is broken.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from mpnn.bench.accuracy import train_once

# Label -> overrides: the default, then the paper's experiment configs (conf/experiment/).
CONFIGS = {
    "edge_net (default)": [],
    "enn_s2s": ["experiment=enn_s2s"],
    "enn_s2s_implicit_h": ["experiment=enn_s2s_implicit_h"],
    "ggnn_no_distance": ["experiment=ggnn_no_distance"],
    "ggnn_virtual_edges": ["experiment=ggnn_virtual_edges"],
    "ggnn_master_node": ["experiment=ggnn_master_node"],
    "ggnn_set2set": ["experiment=ggnn_set2set"],
    "towers_baseline": ["experiment=towers_baseline"],
    "towers8": ["experiment=towers8"],
}
EXAMPLE = "PyG example (NNConv, mean)"
# Behind the example's best by more than this factor: flagged in the table.
BEHIND_FACTOR = 1.5


def mean_predictor_mae(datamodule) -> float:
    """Validation MAE of predicting the training split's mean: the input-independent floor to beat."""
    y_train, _ = datamodule.training_targets()
    y_val = datamodule.packed.targets[datamodule.split.val, datamodule.target_column]
    return float(np.abs(y_val - y_train.mean()).mean())


def train_example_epochs(overrides: list[str], epochs: int, device: torch.device) -> dict:
    """PyG's example for `epochs` epochs on the molecules the same overrides select."""
    from mpnn.bench.time_to_accuracy import Example
    from mpnn.cli import compose
    from mpnn.training.build import build_datamodule

    start = time.perf_counter()
    datamodule = build_datamodule(compose(["logger=none", *overrides]), "dense")
    example = Example(datamodule, device)
    curve = []
    for _ in range(epochs):
        for data in example.train:
            example.step(data)
        curve.append(example.evaluate())
    return {
        "val_mae": curve,
        "seconds": time.perf_counter() - start,
        "mean_predictor_mae": mean_predictor_mae(datamodule),
    }


def learning_health(
    subset: int, epochs: int, device: torch.device, configs: dict = CONFIGS, extra: list[str] = ()
) -> dict:
    """{label: {"val_mae": per epoch, "seconds": wall}} for every config and the example; plus the unit
    and the mean predictor's MAE."""
    shared = [f"data.subset={subset}", f"trainer.max_epochs={epochs}", *extra]
    runs = {}
    for label, overrides in configs.items():
        run = train_once([*overrides, *shared], device)
        runs[label] = {"val_mae": run["val_mae"], "seconds": run["seconds"]}
        unit = run["unit"]
        print(f"{label}: {' '.join(f'{v:.3f}' for v in run['val_mae'])} ({run['seconds']:.0f} s)", flush=True)
    example = train_example_epochs(shared, epochs, device)
    runs[EXAMPLE] = {"val_mae": example["val_mae"], "seconds": example["seconds"]}
    print(f"{EXAMPLE}: {' '.join(f'{v:.3f}' for v in example['val_mae'])} ({example['seconds']:.0f} s)", flush=True)
    return {"runs": runs, "unit": unit, "mean_predictor_mae": example["mean_predictor_mae"], "subset": subset}


def verdict(curve: list[float], example_best: float, mean_predictor: float) -> str:
    """STALLED: near the mean predictor where PyG's example, on the same molecules and epochs, got clear
    of it; behind: more than BEHIND_FACTOR x the example's best; else learns. A config near the mean
    predictor when the example is too is not judged: the budget gave neither enough steps."""
    best = min(curve)
    if best > 0.9 * mean_predictor:
        if example_best > 0.9 * mean_predictor:
            return "not judged (the example did not learn either in this budget)"
        return "STALLED (near the mean predictor)"
    if best > BEHIND_FACTOR * example_best:
        return f"behind (> {BEHIND_FACTOR}x the example)"
    return "learns"


def learning_table(result: dict) -> str:
    """Markdown: validation MAE per epoch, best, best relative to PyG's example, verdict, seconds."""
    runs, unit = result["runs"], result["unit"]
    epochs = max(len(run["val_mae"]) for run in runs.values())
    example_best = min(runs[EXAMPLE]["val_mae"])
    header = " | ".join(f"ep {e + 1}" for e in range(epochs))
    lines = [
        f"| config | {header} | best ({unit}) | best / example's | verdict | seconds |",
        "| --- |" + " --- |" * (epochs + 4),
    ]
    for label, run in runs.items():
        curve = run["val_mae"]
        cells = " | ".join(f"{v:.3f}" for v in curve)
        best = min(curve)
        lines.append(
            f"| {label} | {cells} | {best:.3f} | {best / example_best:.2f} | "
            f"{verdict(curve, example_best, result['mean_predictor_mae'])} | {run['seconds']:.0f} |"
        )
    lines.append(f"\nMean predictor (training mean): {result['mean_predictor_mae']:.3f} {unit}.")
    return "\n".join(lines)


def draw_learning(result: dict, path: Path) -> None:
    """Validation MAE per epoch, one line per config; PyG's example thick and dashed, the mean predictor grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    for label, run in result["runs"].items():
        epochs = np.arange(1, len(run["val_mae"]) + 1)
        style = {"linestyle": "--", "linewidth": 2.5, "color": "black"} if label == EXAMPLE else {"marker": "o"}
        ax.plot(epochs, run["val_mae"], label=label, markersize=3, **style)
    ax.axhline(result["mean_predictor_mae"], color="grey", linewidth=1)
    ax.text(1, result["mean_predictor_mae"], " mean predictor", va="bottom", color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation MAE ({result['unit']})")
    ax.set_title(f"Learning health: {result['subset']} molecules, same epochs for every config")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
