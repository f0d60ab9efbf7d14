"""One training run from a composed Hydra config: fit, test on the best checkpoint, report.

The task wrapper in the lightning-hydra-template sense: whatever happens, the loggers are closed
(a W&B run that failed is marked failed), and nothing already in the run directory is changed
by a start that is refused.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from mpnn.training import slurm
from mpnn.training.build import build, build_callbacks, build_loggers, build_trainer
from mpnn.training.callbacks import Diverged, MetricHistory, Throughput
from mpnn.training.reporting import close_loggers, write_results
from mpnn.training.resume import CONFIG_FILE, checkpoint_to_resume, keep_csv_history
from mpnn.training.wandb_offline import run_ids


def record_start(cfg: DictConfig, run_dir: Path) -> None:
    """config_resolved.yaml, the SLURM job (if any) and Hydra's record of the start (.hydra/: config, hydra,
    overrides).

    Written here, once the start is accepted, rather than by Hydra before any check
    (hydra.output_subdir: null), so that a refused start changes nothing in the run directory.
    """
    (run_dir / CONFIG_FILE).write_text(OmegaConf.to_yaml(cfg, resolve=True))
    slurm.record_job(run_dir)
    if HydraConfig.initialized():
        hydra_dir, hydra_cfg = run_dir / ".hydra", HydraConfig.instance().cfg
        hydra_dir.mkdir(exist_ok=True)
        (hydra_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
        (hydra_dir / "hydra.yaml").write_text(OmegaConf.to_yaml(hydra_cfg))
        (hydra_dir / "overrides.yaml").write_text(OmegaConf.to_yaml(hydra_cfg.hydra.overrides.task))


def train(cfg: DictConfig, run_dir: Path, model_name: str | None = None) -> dict:
    """Fit, test the best checkpoint, write results.json; `resume=true` continues an interrupted run.

    Returns the results (empty on DDP ranks other than 0). `model_name` is the config's name for
    the model (e.g. "edge_net"), recorded in results.json. A run whose loss diverges writes
    results.json with "status": "diverged" and raises `Diverged`.
    """
    finished = run_dir / "results.json"
    if slurm.continues_here(run_dir) and finished.exists():  # requeued after it finished: nothing to do twice
        print(f"SLURM requeued job {slurm.job_id()} after its run finished: {finished}", flush=True)
        return json.loads(finished.read_text())
    resume_from = checkpoint_to_resume(cfg, run_dir)
    start = time.perf_counter()
    datamodule, module = build(cfg)
    earlier = run_ids(run_dir) if resume_from is not None else []
    loggers = build_loggers(cfg, wandb_id=earlier[-1] if earlier else None)
    failed = True
    try:
        callbacks = build_callbacks(cfg, loggers)
        if resume_from is None:  # a resumed run keeps the configuration it started with, and its metrics
            record_start(cfg, run_dir)
        else:
            keep_csv_history(loggers, resume_from)
        trainer = build_trainer(cfg, run_dir, loggers, callbacks)
        for logger in trainer.loggers:
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
        except Diverged as error:
            if trainer.is_global_zero:
                write_results(run_dir / "results.json", diverged_results(error, trainer, module, cfg, model_name))
            raise
        # Read before testing: loading the best checkpoint for the test also restores the callbacks' states.
        throughput = next((c for c in callbacks if isinstance(c, Throughput)), None)
        history = next((c for c in callbacks if isinstance(c, MetricHistory)), None)
        val_mae_per_epoch = list(history.val_mae) if history else []
        device = trainer.strategy.root_device
        target = module.target
        one_model = module.models()[0]
        common = {
            "status": "completed",
            "target": target.name,
            "unit": target.unit,
            "chemical_accuracy": target.chemical_accuracy,
            "paper_enn_s2s_mae": target.paper_enn_s2s_mae,
            "model": model_name or type(one_model).__name__,
            "backend": module.hparams.backend,
            "recipe": module.spec.recipe,
            "epochs": trainer.current_epoch,
            "final_train_loss": float(trainer.callback_metrics.get("train/loss", math.nan)),
            "global_steps": trainer.global_step,
            "train_molecules_per_s": throughput.molecules_per_s if throughput else math.nan,
            "val_mae_per_epoch": val_mae_per_epoch,
            "molecules": {name: len(getattr(datamodule.split, name)) for name in ("train", "val", "test")},
            "edges": module.spec.edges,
            "explicit_h": module.spec.explicit_h,
            "parameters": sum(p.numel() for p in one_model.parameters()),
            "split_file": str(datamodule.split_file),
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),  # which GPU of the node, in a sweep
        }
        common["wall_s"] = time.perf_counter() - start  # fitting, validation included; not the test
        results = module.report(cfg, run_dir, trainer, datamodule, common)
        failed = False
        return results
    finally:
        close_loggers(loggers, failed)


def diverged_results(error: Diverged, trainer, module, cfg: DictConfig, model_name: str | None) -> dict:
    """results.json of a diverged run: where it diverged, and the best checkpoint it kept (not tested)."""
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    score = checkpoint.best_model_score if best else None
    history = next((c for c in trainer.callbacks if isinstance(c, MetricHistory)), None)
    target = module.target
    return {
        "status": "diverged",
        "error": str(error),
        "diverged_epoch": error.epoch,
        "diverged_step": error.step,
        "target": target.name,
        "unit": target.unit,
        "chemical_accuracy": target.chemical_accuracy,
        "test_mae": None,
        "test_error_ratio": None,
        "best_val_mae": float(score) if score is not None else None,
        "model": model_name or type(getattr(module, "model", module)).__name__,
        "epochs": trainer.current_epoch,
        "global_steps": trainer.global_step,
        "val_mae_per_epoch": list(history.val_mae) if history else [],
        "best_checkpoint": os.path.relpath(best, trainer.default_root_dir) if best else None,
        "seed": cfg.seed,
    }
