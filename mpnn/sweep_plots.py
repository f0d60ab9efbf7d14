"""Figures that compare runs (`mpnn-compare`, `mpnn-errors`): error ratios against the paper and the
published models, learning curves, training-set sizes, settings, and a run's test errors by size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mpnn.plots import pyplot
from mpnn.targets import Target


def draw_error_ratios(runs: list[dict], path: Path) -> None:
    """Error ratio (MAE / chemical accuracy) per run, next to the published ratio of the run's model
    (`mpnn.published`, where known) and the paper's enn-s2s ratio."""
    from mpnn.compare import published, run_model
    from mpnn.targets import get_target

    plt = pyplot()
    runs = sorted(runs, key=lambda r: (r["target"], run_model(r)))
    labels = [f"{r['target']} {run_model(r)}\n{Path(r['run_dir']).name}"[:40] for r in runs]
    x = np.arange(len(runs))
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(runs) + 2), 4))
    ax.bar(x - 0.27, [r["test_error_ratio"] for r in runs], 0.27, label="this run")
    accuracy = [get_target(r["target"]).chemical_accuracy for r in runs]
    reported = [(known.mae / a if (known := published(r)) and a else np.nan) for r, a in zip(runs, accuracy)]
    ax.bar(x, reported, 0.27, label="published, same model")
    paper = [get_target(r["target"]).paper_enn_s2s_ratio or np.nan for r in runs]
    ax.bar(x + 0.27, paper, 0.27, label="Gilmer et al. enn-s2s")
    ax.axhline(1.0, color="g", ls="--", label="chemical accuracy")
    ax.set_yscale("log")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("test MAE / chemical accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_learning_curves(runs: list[dict], path: Path) -> None:
    """Validation error ratio per epoch of many runs, one panel per target, against chemical accuracy."""
    from mpnn.targets import get_target

    plt = pyplot()
    by_target: dict[str, list[dict]] = {}
    for run in sorted(runs, key=lambda r: (r["target"], r["run_dir"])):
        if run.get("val_mae_per_epoch"):
            by_target.setdefault(run["target"], []).append(run)
    if not by_target:
        return
    columns = min(4, len(by_target))
    rows = -(-len(by_target) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), squeeze=False)
    for ax, (name, target_runs) in zip(axes.flat, by_target.items()):
        target = get_target(name)
        scale = target.chemical_accuracy or 1.0
        for run in target_runs:
            curve = np.asarray(run["val_mae_per_epoch"]) / scale
            label = f"{Path(run['run_dir']).name[:24]} (seed {run.get('seed')})"
            ax.plot(np.arange(1, len(curve) + 1), curve, lw=1, label=label)
        if target.chemical_accuracy:
            ax.axhline(1.0, color="g", ls="--", lw=1, label="chemical accuracy")
        if target.paper_enn_s2s_ratio:
            ax.axhline(target.paper_enn_s2s_ratio, color="r", ls=":", lw=1, label="Gilmer et al. enn-s2s")
        ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation MAE / chemical accuracy" if target.chemical_accuracy else f"MAE ({target.unit})")
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(by_target) :]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_training_sizes(groups: dict[str, dict[int, list[float]]], path: Path) -> None:
    """Test error ratio against the number of training molecules (`mpnn.report.training_size_groups`)."""
    from mpnn.targets import PAPER_MU_RATIO_BY_TRAIN_SIZE

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, sizes in groups.items():
        x = sorted(sizes)
        ax.plot(x, [np.mean(sizes[size]) for size in x], marker="o", label=f"{name} (mean over seeds)")
    paper = sorted(PAPER_MU_RATIO_BY_TRAIN_SIZE.items())
    ax.plot(*zip(*paper), "r:", marker="s", label="Gilmer et al. enn-s2s, mu")
    ax.axhline(1.0, color="g", ls="--", label="chemical accuracy")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training molecules")
    ax.set_ylabel("test MAE / chemical accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_setting_effects(runs: list[dict], settings: list[dict], path: Path) -> bool:
    """Validation error ratio against each numeric setting that differs between the runs (the
    hyperparameters of a search, not the seed), one panel per setting, the run selected on
    validation per target starred. False (and nothing drawn) when no such setting differs."""
    from mpnn.compare import best_on_validation
    from mpnn.targets import get_target

    keys = sorted({key for differs in settings for key, value in differs.items() if _is_number(value)} - {"seed"})
    if not keys:
        return False
    plt = pyplot()
    columns = min(3, len(keys))
    rows = -(-len(keys) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.5 * rows), squeeze=False)
    selected = {id(run) for run in best_on_validation(runs)}
    for ax, key in zip(axes.flat, keys):
        for name in sorted({run["target"] for run in runs}):
            accuracy = get_target(name).chemical_accuracy or 1.0
            points = [
                (differs[key], run["best_val_mae"] / accuracy, id(run) in selected)
                for run, differs in zip(runs, settings)
                if run["target"] == name and _is_number(differs.get(key))
            ]
            line = ax.scatter([x for x, _, _ in points], [y for _, y, _ in points], s=18, label=name)
            best = [(x, y) for x, y, chosen in points if chosen]
            if best:
                ax.scatter(*zip(*best), marker="*", s=160, color=line.get_facecolor()[0], edgecolor="k")
        values = [differs[key] for differs in settings if _is_number(differs.get(key))]
        if min(values) > 0 and max(values) / min(values) > 10:
            ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel("best validation MAE / chemical accuracy")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_visible(False)
    fig.suptitle("each run's validation error against the settings that differ (star: selected)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def draw_error_breakdown(frame: pd.DataFrame, target: Target, path: Path) -> None:
    """Test MAE by number of heavy atoms (with molecule counts) and the distribution of errors."""
    from mpnn.analysis import breakdown

    plt = pyplot()
    by_size = breakdown(frame, "heavy_atoms")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    bars = left.bar(by_size.index, by_size["mae"])
    left.bar_label(bars, labels=[str(n) for n in by_size["molecules"]], fontsize=7)
    left.set_xticks(by_size.index)
    if target.chemical_accuracy:
        left.axhline(target.chemical_accuracy, color="g", ls="--", label="chemical accuracy")
        left.legend(fontsize=8)
    left.set_xlabel("heavy atoms (bar labels: test molecules)")
    left.set_ylabel(f"test MAE ({target.unit})")
    right.hist(frame["error"], bins=80, log=True)
    right.set_xlabel(f"predicted - DFT ({target.unit})")
    right.set_ylabel("test molecules")
    fig.suptitle(f"{target.name}: test errors", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
