"""The resume policy: which checkpoint a start continues from, and what must not change when it does.

A run directory holds one run. A start refused for any reason changes nothing in it.
"""

from __future__ import annotations

import csv
import os
import shlex
from pathlib import Path

import torch
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from mpnn.training import slurm
from mpnn.training.lightning_overrides import write_csv

# What defines a run: a resumed run must match its start in these (speed, logging and the other trainer
# settings may change). trainer.max_epochs sets the length of the learning-rate schedule.
RUN_DEFINING_KEYS = (
    "target", "recipe", "seed", "ensemble", "model", "data.edges", "data.virtual_edges", "data.explicit_h",
    "data.batch_size", "data.subset", "data.train_size", "data.split_seed", "optim.lr", "optim.weight_decay",
    "optim.optimizer", "optim.gradient_clip_val", "schedule", "callbacks", "trainer.max_epochs",
)  # fmt: skip
CONFIG_FILE = "config_resolved.yaml"


def run_definition(cfg: DictConfig) -> dict:
    """The values of RUN_DEFINING_KEYS in a config, resolved to plain Python values, without the
    callbacks' output folders (a run directory may move)."""
    values = {key: OmegaConf.select(cfg, key) for key in RUN_DEFINING_KEYS}
    plain = {key: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v for key, v in values.items()}
    for callback in (plain["callbacks"] or {}).values():
        if isinstance(callback, dict):
            callback.pop("dirpath", None)  # where a checkpoint callback writes, inside the run directory
    return plain


def differences(before: dict, after: dict, prefix: str = "") -> list[str]:
    """The settings that differ between two run definitions, by their full names, with both values."""
    changed = []
    for key in [*before, *(key for key in after if key not in before)]:
        old, new = before.get(key, "absent"), after.get(key, "absent")
        if isinstance(old, dict) and isinstance(new, dict):
            changed += differences(old, new, f"{prefix}{key}.")
        elif old != new:
            changed.append(f"{prefix}{key} ({_brief(old)}, now {_brief(new)})")
    return changed


def _brief(value: object) -> str:
    return "set" if isinstance(value, dict) else str(value)


def checkpoint_to_resume(cfg: DictConfig, run_dir: Path) -> Path | None:
    """last.ckpt of an interrupted run when `resume=true` or when SLURM requeued the job that started it,
    else None; refuses to mix two runs in one directory."""
    results = run_dir / "results.json"
    if results.exists():
        raise FileExistsError(
            f"{results} exists: this run directory holds a finished run; choose another hydra.run.dir"
        )
    checkpoints = run_dir / "checkpoints"
    if slurm.continues_here(run_dir):  # SLURM requeued the job that started this run: continue it
        if not (checkpoints / "last.ckpt").exists():
            return None  # stopped before its first checkpoint: start again
    elif not cfg.get("resume"):
        if checkpoints.is_dir() and any(checkpoints.iterdir()):
            raise FileExistsError(
                f"{checkpoints} holds checkpoints of an earlier run; continue it with resume=true, "
                "or choose another hydra.run.dir"
            )
        return None
    last = checkpoints / "last.ckpt"
    if not last.exists():
        raise FileNotFoundError(f"resume=true but {last} does not exist: there is no interrupted run to continue")
    changed = differences(run_definition(OmegaConf.load(run_dir / CONFIG_FILE)), run_definition(cfg))
    if changed:
        raise ValueError(
            f"resume=true with settings that differ from the interrupted run: {', '.join(changed)} "
            f"(see {run_dir / CONFIG_FILE}); only speed, logging and other trainer settings may change"
        )
    return last


def resume_command(run_dir: Path, overrides: list[str]) -> str:
    """The command that continues the run in `run_dir` started with `overrides`."""
    kept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != "resume"]
    return shlex.join(["python", "train.py", *kept, "resume=true", f"hydra.run.dir={run_dir.resolve()}"])


def keep_csv_history(loggers: list, checkpoint: Path) -> None:
    """Keep the CSV metrics of the epochs a resumed run continues from.

    Lightning's CSV logger deletes an existing metrics.csv when it starts; this keeps its rows up to
    the checkpoint's step (later rows belong to the interrupted part that the run now repeats) and
    hands the logger their columns, so that it appends to them.
    """
    step = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)["global_step"]
    for logger in loggers:
        if not isinstance(logger, CSVLogger):
            continue
        metrics = Path(logger.log_dir) / "metrics.csv"
        if not metrics.exists():
            continue
        with metrics.open(newline="") as file:
            reader = csv.DictReader(file)
            columns = list(reader.fieldnames or [])
            rows = [row for row in reader if int(row["step"]) < step]
        kept = write_csv(metrics.with_name(f".{metrics.name}.{os.getpid()}.tmp"), columns, rows)
        logger.experiment.metrics_keys = columns  # creating the writer deletes metrics.csv: replace it after
        os.replace(kept, metrics)
