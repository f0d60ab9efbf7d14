"""Every use of Lightning's private API, in one module (tests/training/test_lightning_overrides.py fails
if Lightning changes what they rely on; pyproject.toml allows the Lightning minor version they were checked
on, 2.6).

- `RunCheckpoint` (ModelCheckpoint): `_save_last_checkpoint`, `_remove_checkpoint`,
  `_should_skip_saving_checkpoint`, `_monitor_candidates`.
- `ResumableCSVLogger` (CSVLogger) and its writer (ExperimentWriter): `_rewrite_with_new_header`, the
  logger's `_experiment` and `_fs`.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint (best by validation, last.ckpt), made so that a kill at any moment
    loses at most the epoch in progress, and a resumed run ends as the uninterrupted one would.

    - last.ckpt is written after every epoch, improving or not (Lightning writes it only on epochs
      that save a best checkpoint, so a kill lost every epoch since the best).
    - The previous best checkpoint is deleted only after last.ckpt, which names the new one, is
      written: a kill between the two writes leaves a last.ckpt whose best checkpoint still exists.
    - last.ckpt is written at epoch ends only, also on SIGTERM (what SLURM sends before it kills or requeues
      a job; Lightning stops at the end of the batch in progress). A checkpoint from the middle of an epoch
      resumes with other batches than the uninterrupted run would train on (measured on a real SLURM: the
      validation MAEs differed by 7% after a few epochs); redoing the epoch in progress gives the same ones.
    - The loggers are flushed before last.ckpt is written and at every epoch start, so the metrics
      files hold what last.ckpt holds (a resumed run keeps them: `mpnn.training.resume.keep_csv_history`).
      Lightning hands an epoch's training metrics to the loggers only after the epoch's checkpoint:
      a kill in the moment between the two loses that epoch's train/loss row.

    Writes are atomic (Lightning writes to a temporary file and renames it).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._superseded: list[str] = []  # checkpoints to delete once last.ckpt no longer names them

    @staticmethod
    def _flush_loggers(trainer: L.Trainer) -> None:
        for logger in trainer.loggers:
            logger.save()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush_loggers(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)  # best (and then last) when validation improved
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _remove_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        if self.save_last:
            self._superseded.append(filepath)
        else:
            super()._remove_checkpoint(trainer, filepath)

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict) -> None:
        self._flush_loggers(trainer)
        super()._save_last_checkpoint(trainer, monitor_candidates)
        for filepath in self._superseded:
            super()._remove_checkpoint(trainer, filepath)
        self._superseded.clear()


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    """Write a CSV table with a header to `path` (a temporary file, renamed into place by the caller)."""
    with path.open("w", newline="") as file:
        table = csv.DictWriter(file, fieldnames=columns)
        table.writeheader()
        table.writerows(rows)
    return path


class _AtomicWriter(ExperimentWriter):
    """Lightning's CSV writer, but a new column rewrites metrics.csv through a temporary file: Lightning
    truncates the file and writes it again, so a kill in between (the epoch after a checkpoint, when the
    training metrics add their columns) left a resumed run without the rows before it."""

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        path = Path(self.metrics_file_path)
        with path.open(newline="") as file:
            rows = list(csv.DictReader(file))
        os.replace(write_csv(path.with_name(f".{path.name}.{os.getpid()}.tmp"), fieldnames, rows), path)


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSVLogger whose metrics.csv survives a kill at any moment (`_AtomicWriter`), so that
    `keep_csv_history` finds every row that last.ckpt holds."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AtomicWriter(log_dir=self.log_dir)
        return self._experiment
