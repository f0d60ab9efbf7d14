"""Callbacks: training throughput, metric history, prediction dynamics, and weight averaging."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn

from mpnn.plots import draw_prediction_dynamics


def _synchronize(module: L.LightningModule) -> None:
    if module.device.type == "cuda":
        torch.cuda.synchronize(module.device)


class Throughput(L.Callback):
    """Training molecules per second, timed over the training batches of each epoch.

    Timing stops when validation starts, so it measures training alone. The device is
    synchronised only at the two ends of the epoch, never per step.
    """

    def __init__(self):
        self.epoch_rates: list[float] = []
        self._start = 0.0
        self._molecules = 0
        self._open = False

    def on_train_epoch_start(self, trainer, module) -> None:
        _synchronize(module)
        self._start, self._molecules, self._open = time.perf_counter(), 0, True

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self._molecules += batch.num_graphs

    def _close(self, trainer, module) -> None:
        if not self._open or self._molecules == 0:
            return
        _synchronize(module)
        self._open = False
        rate = self._molecules * trainer.world_size / (time.perf_counter() - self._start)
        self.epoch_rates.append(rate)
        module.log("train/molecules_per_s", rate, on_epoch=True, on_step=False)

    def on_validation_start(self, trainer, module) -> None:
        if trainer.training:
            self._close(trainer, module)

    def on_train_epoch_end(self, trainer, module) -> None:
        self._close(trainer, module)

    # Kept in checkpoints, so a resumed run reports over all its epochs.
    def state_dict(self) -> dict:
        return {"epoch_rates": self.epoch_rates}

    def load_state_dict(self, state: dict) -> None:
        self.epoch_rates = list(state["epoch_rates"])

    @property
    def molecules_per_s(self) -> float:
        """Median over epochs after the first (which pays for warm-up), or the first if alone."""
        rates = self.epoch_rates[1:] or self.epoch_rates
        return float(np.median(rates)) if rates else float("nan")


class MetricHistory(L.Callback):
    """Validation MAE per epoch, for the learning-curve figure."""

    def __init__(self):
        self.val_mae: list[float] = []

    def on_validation_epoch_end(self, trainer, module) -> None:
        if not trainer.sanity_checking and "val/mae" in trainer.callback_metrics:
            self.val_mae.append(float(trainer.callback_metrics["val/mae"]))

    def state_dict(self) -> dict:
        return {"val_mae": self.val_mae}

    def load_state_dict(self, state: dict) -> None:
        self.val_mae = list(state["val_mae"])


class PredictionDynamics(L.Callback):
    """Records predictions on a fixed validation batch each epoch and draws them over epochs."""

    def __init__(self, num_molecules: int = 64, filename: str = "prediction_dynamics.png"):
        self.num_molecules = num_molecules
        self.filename = filename
        self.history: list[np.ndarray] = []
        self.truth: np.ndarray | None = None

    def on_validation_epoch_end(self, trainer, module) -> None:
        if trainer.sanity_checking:
            return
        datamodule = trainer.datamodule
        batch = datamodule.batch(datamodule.split.val[: self.num_molecules], module.device)
        was_training = module.training
        module.eval()
        self.history.append(module.model.predict(batch).cpu().numpy())
        module.train(was_training)
        self.truth = batch.y.cpu().numpy()

    def state_dict(self) -> dict:  # plain lists: checkpoints stay loadable with weights_only=True
        return {"history": [h.tolist() for h in self.history]}

    def load_state_dict(self, state: dict) -> None:
        self.history = [np.asarray(h) for h in state["history"]]

    def on_fit_end(self, trainer, module) -> None:
        if not self.history or not trainer.is_global_zero:
            return
        path = Path(trainer.default_root_dir) / self.filename
        draw_prediction_dynamics(self.truth, np.stack(self.history), module.target, path)
        for logger in trainer.loggers:
            if isinstance(logger, L.pytorch.loggers.WandbLogger):
                logger.log_image("prediction_dynamics", [str(path)])


class EMA(EMAWeightAveraging):
    """Lightning's exponential moving average of the weights, evaluated as validation chose it.

    A checkpoint's `state_dict` holds the averaged weights (validation scored them and picked the
    best checkpoint by them). Lightning's callback loads the raw weights over them whenever a
    checkpoint is loaded; this one does so only to continue training, so `trainer.test` and
    `trainer.validate` on a checkpoint evaluate the averaged weights, as `load_model` does.
    """

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
