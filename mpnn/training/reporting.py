"""What a run leaves behind: results.json (strict JSON), its figures, and the W&B summary."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import lightning as L
import numpy as np

from mpnn.plots import draw_learning_curve, draw_parity
from mpnn.targets import Target


def strict_json(value: object) -> object:
    """`value` with every non-finite float replaced by None: JSON has no NaN or Infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value


def write_results(path: Path, results: dict) -> None:
    """Write results.json atomically, as strict JSON (NaN and Infinity become null)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(strict_json(results), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def draw_run_figures(run_dir: Path, target: Target, truth: np.ndarray, predicted: np.ndarray, val_mae: list) -> list:
    """The test parity plot and the validation learning curve; returns the files written."""
    parity, curve = run_dir / "parity_test.png", run_dir / "learning_curve.png"
    draw_parity(truth, predicted, target, parity)
    draw_learning_curve(val_mae, target, curve)
    return [path for path in (parity, curve) if path.exists()]


def report_to_wandb(trainer: L.Trainer, results: dict, images: list[Path]) -> None:
    """Results as the W&B run's summary, figures as images (no-op without a W&B logger)."""
    for logger in trainer.loggers:
        if isinstance(logger, L.pytorch.loggers.WandbLogger):
            import wandb

            run = logger.experiment
            numbers = {k: v for k, v in results.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            run.summary.update({f"results/{k}": v for k, v in strict_json(numbers).items()})
            run.summary.update({"test/mae": results["test_mae"], "test/error_ratio": results["test_error_ratio"]})
            run.log({path.stem: wandb.Image(str(path)) for path in images})


def close_loggers(loggers: list, failed: bool) -> None:
    """Finish every logger's run, marking W&B runs failed when the run did not complete."""
    for logger in loggers:
        if isinstance(logger, L.pytorch.loggers.WandbLogger):
            import wandb

            if wandb.run is not None:
                wandb.finish(exit_code=1 if failed else 0)
        else:
            logger.finalize("failed" if failed else "success")
