"""Figures of one run that people look at rather than read: parity, learning curve, prediction dynamics,
message scale. The figures comparing runs are in mpnn/sweep_plots.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mpnn.targets import Target


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_parity(truth: np.ndarray, predicted: np.ndarray, target: Target, path: Path) -> None:
    plt = pyplot()
    mae = float(np.abs(predicted - truth).mean())
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(truth, predicted, s=3, alpha=0.4)
    lo, hi = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ratio = f", error ratio {mae / target.chemical_accuracy:.2f}" if target.chemical_accuracy else ""
    ax.set_title(f"{target.name} test set: MAE {mae:.4g} {target.unit}{ratio}", fontsize=10)
    ax.set_xlabel(f"DFT ({target.unit})")
    ax.set_ylabel(f"predicted ({target.unit})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_learning_curve(val_mae: list[float], target: Target, path: Path) -> None:
    if not val_mae:
        return
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(np.arange(1, len(val_mae) + 1), val_mae, marker="o", ms=3, label="validation MAE")
    if target.chemical_accuracy:
        ax.axhline(target.chemical_accuracy, color="g", ls="--", label="chemical accuracy")
    if target.paper_enn_s2s_mae:
        ax.axhline(target.paper_enn_s2s_mae, color="r", ls=":", label="Gilmer et al. enn-s2s")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"MAE ({target.unit})")
    ax.set_title(f"{target.name}: validation MAE per epoch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_prediction_dynamics(truth: np.ndarray, history: np.ndarray, target: Target, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    colors = plt.cm.viridis(np.linspace(0, 1, len(history)))
    for epoch, (predictions, color) in enumerate(zip(history, colors)):
        ax.scatter(
            truth, predictions, s=8, color=color, label=f"epoch {epoch}" if epoch in (0, len(history) - 1) else None
        )
    lo, hi = float(min(truth.min(), history.min())), float(max(truth.max(), history.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set_xlabel(f"DFT {target.name} ({target.unit})")
    ax.set_ylabel(f"predicted {target.name} ({target.unit})")
    ax.set_title(f"predictions on {len(truth)} fixed validation molecules, per epoch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_message_scale(scale: dict, title: str, path: Path) -> None:
    """`mpnn.message_scale`'s report: per message passing step, messages against node states (left) and
    the share of saturated GRU gate pre-activations (right), at initialisation and after training."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    for when, style in (("at_init", "-"), ("trained", "--")):
        label = "at init" if when == "at_init" else f"after {scale['training_steps']} steps"
        steps = [s["step"] for s in scale[when]]
        left.plot(steps, [s["message_to_state"] for s in scale[when]], style, marker="o", label=label)
        for gate, color in (("reset", "tab:blue"), ("update", "tab:orange"), ("candidate", "tab:green")):
            values = [s[f"saturated_{gate}"] for s in scale[when]]
            right.plot(steps, values, style, color=color, marker="o", label=f"{gate}, {label}")
    left.set_yscale("log")
    left.set(xlabel="message passing step", ylabel="RMS(message) / RMS(node state)")
    right.set(xlabel="message passing step", ylabel="saturated pre-activations", ylim=(-0.02, 1.02))
    left.legend(fontsize=8)
    right.legend(fontsize=7)
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
