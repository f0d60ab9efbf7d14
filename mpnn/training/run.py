"""One training run from a composed Hydra config: fit, test on the best checkpoint, report."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import WeightAveraging
from omegaconf import DictConfig, OmegaConf

from mpnn.data.batch import NODE_FEATURES
from mpnn.data.datamodule import QM9DataModule
from mpnn.data.edges import EdgeFeaturizer
from mpnn.models.mpnn import MPNN
from mpnn.targets import get_target
from mpnn.training.callbacks import MetricHistory, Throughput
from mpnn.training.module import MPNNModule
from mpnn.training.plots import draw_learning_curve, draw_parity


def build(cfg: DictConfig) -> tuple[QM9DataModule, MPNNModule]:
    """Data module (set up) and Lightning module (scaler fitted on the training split)."""
    get_target(cfg.target)  # fail early, with the list of valid targets
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    torch.set_float32_matmul_precision(cfg.matmul_precision)
    datamodule: QM9DataModule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup()
    model: MPNN = instantiate(cfg.model, **datamodule.model_inputs())
    model.scaler.fit(*datamodule.target_statistics())
    module = MPNNModule(model, cfg.target, **cfg.optim)
    return datamodule, module


# What defines a run: a resumed run must match its start in these (speed, trainer and logging may change).
RUN_DEFINING_KEYS = (
    "target", "seed", "model", "data.edges", "data.virtual_edges", "data.explicit_h", "data.batch_size",
    "data.subset", "data.train_size", "data.split_seed", "optim.lr", "optim.weight_decay", "optim.schedule",
    "optim.decay_start", "optim.final_lr_factor", "optim.plateau_patience", "optim.gradient_clip_val",
)  # fmt: skip


def train(cfg: DictConfig, run_dir: Path) -> dict:
    """Fit, test the best checkpoint, write results.json; `resume=true` continues an interrupted run."""
    results_path = run_dir / "results.json"
    if results_path.exists():
        raise FileExistsError(
            f"{results_path} exists: this run directory holds a finished run; choose another hydra.run.dir"
        )
    resume_from = _checkpoint_to_resume(cfg, run_dir)
    start = time.perf_counter()
    datamodule, module = build(cfg)
    if resume_from is None:  # a resumed run keeps the configuration it started with
        (run_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    loggers = [instantiate(c) for c in cfg.logger.values()] if cfg.get("logger") else []
    callbacks = [instantiate(c) for c in cfg.callbacks.values()] if cfg.get("callbacks") else []
    if any(isinstance(c, WeightAveraging) for c in callbacks) and (cfg.optim.compile or cfg.optim.cuda_graph):
        raise ValueError("callbacks=ema is not tested with optim.compile or optim.cuda_graph; use it without them")
    throughput = next((c for c in callbacks if isinstance(c, Throughput)), None)
    history = next((c for c in callbacks if isinstance(c, MetricHistory)), None)
    trainer: L.Trainer = instantiate(
        cfg.trainer, logger=loggers or False, callbacks=callbacks, default_root_dir=str(run_dir)
    )
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    # Read before testing: loading the best checkpoint for the test also restores the callbacks' states.
    molecules_per_s = throughput.molecules_per_s if throughput else math.nan
    val_mae_per_epoch = list(history.val_mae) if history else []
    device = trainer.strategy.root_device
    final_train_loss = float(trainer.callback_metrics.get("train/loss", math.nan))

    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    best_val = (
        checkpoint.best_model_score if checkpoint is not None and best else trainer.callback_metrics.get("val/mae")
    )
    ckpt_path = best or None
    test_metrics = trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)[0]
    if not trainer.is_global_zero:  # other DDP ranks are done: rank 0 reports
        return {}

    # The module holds the tested (best) weights; predict the whole test set on one device.
    target = get_target(cfg.target)
    index = datamodule.split.test
    predicted, truth = predict(module.model.to(device), datamodule, index)
    np.savez(run_dir / "test_predictions.npz", index=index, prediction=predicted, target=truth)
    test_mae = float(test_metrics["test/mae"])
    results = {
        "target": target.name,
        "unit": target.unit,
        "chemical_accuracy": target.chemical_accuracy,
        "test_mae": test_mae,
        "test_error_ratio": float(test_metrics["test/error_ratio"]),
        "best_val_mae": float(best_val) if best_val is not None else math.nan,
        "paper_enn_s2s_mae": target.paper_enn_s2s_mae,
        "epochs": trainer.current_epoch,
        "final_train_loss": final_train_loss,
        "global_steps": trainer.global_step,
        "train_molecules_per_s": molecules_per_s,
        "val_mae_per_epoch": val_mae_per_epoch,
        "wall_s": time.perf_counter() - start,
        "best_checkpoint": best,
        "molecules": {
            "train": len(datamodule.split.train),
            "val": len(datamodule.split.val),
            "test": len(datamodule.split.test),
        },
        "edges": datamodule.edge_featurizer.kind,
        "explicit_h": datamodule.explicit_h,
        "parameters": sum(p.numel() for p in module.model.parameters()),
        "seed": cfg.seed,
        "split_file": str(datamodule.split_file),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),  # which GPU of the node, in a sweep
    }
    draw_parity(truth, predicted, target, run_dir / "parity_test.png")
    curve = run_dir / "learning_curve.png"
    draw_learning_curve(val_mae_per_epoch, target, curve)
    _report_to_wandb(trainer, results, [run_dir / "parity_test.png", curve])
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def run_definition(cfg: DictConfig) -> dict:
    """The values of RUN_DEFINING_KEYS in a config, resolved to plain Python values."""
    values = {key: OmegaConf.select(cfg, key) for key in RUN_DEFINING_KEYS}
    return {key: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v for key, v in values.items()}


def _checkpoint_to_resume(cfg: DictConfig, run_dir: Path) -> str | None:
    """last.ckpt of an interrupted run when `resume=true`; refuses to mix two runs in one directory."""
    checkpoints = run_dir / "checkpoints"
    if not cfg.get("resume"):
        if checkpoints.is_dir() and any(checkpoints.iterdir()):
            raise FileExistsError(
                f"{checkpoints} holds checkpoints of an earlier run; continue it with resume=true, "
                "or choose another hydra.run.dir"
            )
        return None
    last = checkpoints / "last.ckpt"
    if not last.exists():
        raise FileNotFoundError(f"resume=true but {last} does not exist: there is no interrupted run to continue")
    saved = run_definition(OmegaConf.load(run_dir / "config_resolved.yaml"))
    changed = [key for key, value in run_definition(cfg).items() if saved[key] != value]
    if changed:
        raise ValueError(
            f"resume=true with settings that differ from the interrupted run: {', '.join(changed)} "
            f"(see {run_dir / 'config_resolved.yaml'}); only speed, trainer and logging settings may change"
        )
    return str(last)


@torch.no_grad()
def predict(model: MPNN, datamodule: QM9DataModule, indices: np.ndarray, batch_size: int = 512) -> tuple:
    """(predictions in physical units, targets) for the molecules `indices`, as numpy arrays."""
    model.eval()
    device = next(model.parameters()).device
    predicted, truth = [], []
    for start in range(0, len(indices), batch_size):
        batch = datamodule.batch(indices[start : start + batch_size], device)
        predicted.append(model.predict(batch).cpu())
        truth.append(batch.y.cpu())
    return torch.cat(predicted).numpy(), torch.cat(truth).numpy()


def _report_to_wandb(trainer: L.Trainer, results: dict, images: list[Path]) -> None:
    for logger in trainer.loggers:
        if isinstance(logger, L.pytorch.loggers.WandbLogger):
            import wandb

            run = logger.experiment
            run.summary.update({f"results/{k}": v for k, v in results.items() if isinstance(v, (int, float))})
            run.summary.update({"test/mae": results["test_mae"], "test/error_ratio": results["test_error_ratio"]})
            run.log({path.stem: wandb.Image(str(path)) for path in images if path.exists()})
            run.finish()


def load_datamodule(run_dir: str | Path, data_root: str | Path | None = None) -> QM9DataModule:
    """The data module of a run directory, set up as in the run (target, atoms kept, split,
    subset), so that its batches fit the run's model: `load_model(run).predict(dm.batch(rows))`."""
    cfg = OmegaConf.load(Path(run_dir) / "config_resolved.yaml")
    if data_root is not None:
        cfg.data.root = str(data_root)
    datamodule: QM9DataModule = instantiate(cfg.data)
    datamodule.setup()
    return datamodule


def load_model(run_dir: str | Path, checkpoint: str | Path | None = None) -> MPNN:
    """The trained model of a run directory (best checkpoint by default), ready to predict in
    physical units: `load_model(run).predict(batch)`, with batches from `load_datamodule(run)`."""
    run_dir = Path(run_dir)
    cfg = OmegaConf.load(run_dir / "config_resolved.yaml")
    if checkpoint is None:
        checkpoint = json.loads((run_dir / "results.json").read_text())["best_checkpoint"]
    edges = EdgeFeaturizer(cfg.data.edges, cfg.data.virtual_edges)
    model: MPNN = instantiate(cfg.model, node_features=len(NODE_FEATURES), edges=edges)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
    return model.eval()
