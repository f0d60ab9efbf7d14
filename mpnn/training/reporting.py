"""What a run leaves behind: results.json (strict JSON), its figures, and the W&B summary."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import lightning as L
import numpy as np
import torch
from omegaconf import OmegaConf

from mpnn.inference import load_checkpoint, predict
from mpnn.plots import draw_learning_curve, draw_parity
from mpnn.targets import Target
from mpnn.training.resume import CONFIG_FILE


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
                try:
                    wandb.finish(exit_code=1 if failed else 0)
                except (ConnectionError, OSError) as error:  # W&B's service died with the job (SIGTERM to all)
                    print(f"W&B could not finish its run ({error!r}); its files may miss the last records")
        else:
            logger.finalize("failed" if failed else "success")


MEMBERS_DIR = "members"


def member_dir(run_dir: Path, seed: int) -> Path:
    """Where member `seed` of an ensemble run keeps its results and best checkpoint."""
    return Path(run_dir) / MEMBERS_DIR / f"seed{seed}"


def single_run_results(cfg, run_dir: Path, trainer: L.Trainer, module, datamodule, common: dict) -> dict:
    """Test the best checkpoint (by validation MAE) on the whole test set; write test_predictions.npz, the
    figures and results.json. Returns the results (empty on DDP ranks other than 0)."""
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    best_val = checkpoint.best_model_score if best else trainer.callback_metrics.get("val/mae")
    test_metrics = trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)[0]
    if not trainer.is_global_zero:  # other DDP ranks are done: rank 0 reports
        return {}

    # The module holds the tested (best) weights; predict the whole test set on one device.
    device, index = trainer.strategy.root_device, datamodule.split.test
    predicted = predict(module.model.to(device), datamodule.dataset, index, datamodule.eval_batch_size)
    truth = datamodule.packed.targets[index, datamodule.target_column]
    np.savez(run_dir / "test_predictions.npz", index=index, prediction=predicted, target=truth)
    results = {
        **common,
        "test_mae": float(test_metrics["test/mae"]),
        "test_error_ratio": float(test_metrics["test/error_ratio"]),
        "best_val_mae": float(best_val) if best_val is not None else math.nan,
        "best_checkpoint": os.path.relpath(best, run_dir) if best else None,
        "seed": cfg.seed,
    }
    figures = draw_run_figures(run_dir, module.target, truth, predicted, common["val_mae_per_epoch"])
    report_to_wandb(trainer, results, figures)
    write_results(run_dir / "results.json", results)
    return results


@torch.no_grad()
def member_predictions(run_dir: Path, seeds: list[int], store, rows: np.ndarray, batch_size: int, device) -> list:
    """Each member's predictions (physical units) of dataset rows `rows`, from its best checkpoint on disk."""
    predictions = []
    for seed in seeds:
        path = member_dir(run_dir, seed) / "checkpoints" / "best.ckpt"
        if not path.is_file():
            raise FileNotFoundError(f"member seed {seed} saved no best checkpoint ({path}): no validation finished")
        predictions.append(predict(load_checkpoint(path, device), store, rows, batch_size))
    return predictions


def ensemble_results(cfg, run_dir: Path, trainer: L.Trainer, module, datamodule, common: dict) -> dict:
    """Test every member's best checkpoint and the ensemble (the members' mean prediction) on the whole test
    set; write each member's results as a single run's under members/seed<s>/, and the ensemble's at the top.

    `common`: the results fields all members share (target, model, data, timing...). Returns the ensemble's.
    """
    run_dir = Path(run_dir)
    target, index = module.target, datamodule.split.test
    truth = datamodule.packed.targets[index, datamodule.target_column]
    device = trainer.strategy.root_device
    predictions = member_predictions(
        run_dir, module.seeds, datamodule.dataset, index, datamodule.eval_batch_size, device
    )
    # The ensemble's validation MAE is that of the models it is tested with: the members' best checkpoints.
    val_index = datamodule.split.val
    val_mean = np.mean(
        member_predictions(run_dir, module.seeds, datamodule.dataset, val_index, datamodule.eval_batch_size, device),
        axis=0,
    )
    best_val = float(np.abs(val_mean - datamodule.packed.targets[val_index, datamodule.target_column]).mean())
    chemical = target.chemical_accuracy

    def scores(predicted: np.ndarray) -> dict:
        mae = float(np.abs(predicted - truth).mean())
        return {"test_mae": mae, "test_error_ratio": mae / chemical if chemical else mae}

    members = []
    for k, (seed, predicted) in enumerate(zip(module.seeds, predictions)):
        folder = member_dir(run_dir, seed)
        member_config = OmegaConf.merge(cfg, {"seed": seed, "ensemble": {"size": 1}})
        (folder / CONFIG_FILE).write_text(OmegaConf.to_yaml(member_config, resolve=True))
        np.savez(folder / "test_predictions.npz", index=index, prediction=predicted, target=truth)
        member = {
            **common,
            **scores(predicted),
            "best_val_mae": module.best_val[k],
            "val_mae_per_epoch": module.val_history[k],
            "stopped_early": not module.training_members[k],
            "best_checkpoint": "checkpoints/best.ckpt",
            "seed": seed,
            "ensemble_run": "../..",
        }
        write_results(folder / "results.json", member)
        members.append(member)
    mean, spread = np.mean(predictions, axis=0), np.std(predictions, axis=0, ddof=1)
    np.savez(run_dir / "test_predictions.npz", index=index, prediction=mean, spread=spread, target=truth)
    ensemble = scores(mean)
    results = {
        **common,
        **ensemble,
        "best_val_mae": best_val,  # what mpnn-compare selects on; val_mae_per_epoch: the mean of the current weights
        "ensemble_size": len(members),
        "members_mean_test_mae": float(np.mean([m["test_mae"] for m in members])),
        "members": [
            {
                "seed": m["seed"],
                "test_mae": m["test_mae"],
                "best_val_mae": m["best_val_mae"],
                "run_dir": str(Path(MEMBERS_DIR) / f"seed{m['seed']}"),
                "best_checkpoint": str(Path(MEMBERS_DIR) / f"seed{m['seed']}" / m["best_checkpoint"]),
            }
            for m in members
        ],
        "best_checkpoint": None,
        "seed": cfg.seed,
    }
    for logger in trainer.loggers:
        logger.log_metrics(
            {"test/mae": ensemble["test_mae"], **{f"test/mae/seed{m['seed']}": m["test_mae"] for m in members}},
            step=trainer.global_step,
        )
    figures = draw_run_figures(run_dir, target, truth, mean, common.get("val_mae_per_epoch", []))
    report_to_wandb(trainer, results, figures)
    write_results(run_dir / "results.json", results)
    return results
