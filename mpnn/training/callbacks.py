"""Callbacks: checkpoints, divergence stop, training throughput, metric history, prediction dynamics,
and weight averaging."""

from __future__ import annotations

import sys
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


class Diverged(RuntimeError):
    """The training loss (or validation MAE) became NaN or infinite: the run stops and is reported as diverged."""

    def __init__(self, message: str, epoch: int, step: int):
        super().__init__(message)
        self.epoch, self.step = epoch, step


class StopOnDivergence(L.Callback):
    """Raises `Diverged` at the first non-finite training loss, naming its epoch and step, before
    validation scores or a checkpoint keeps the diverged weights; likewise for a non-finite
    validation MAE.

    The module sums the loss on the device without synchronising per step. A non-finite loss makes
    that sum non-finite for the rest of the epoch, so counting on the device the steps after which
    the sum is still finite (one tiny kernel per step, no synchronisation) gives the first bad step
    exactly. The host reads the count every `check_every_n_steps` steps and at the epoch's last
    batch: one synchronisation per N steps, and a stop at most N - 1 steps after the first bad one.
    """

    def __init__(self, check_every_n_steps: int = 50):
        if check_every_n_steps < 1:
            raise ValueError(f"callbacks.divergence.check_every_n_steps={check_every_n_steps} must be >= 1")
        self.check_every_n_steps = check_every_n_steps
        self._finite_steps: torch.Tensor | None = None
        self._steps = 0

    def on_train_epoch_start(self, trainer, module) -> None:
        self._finite_steps, self._steps = None, 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        finite = torch.isfinite(module.train_loss_sum)  # the epoch's running loss sum, on the device
        self._finite_steps = finite.int() if self._finite_steps is None else self._finite_steps + finite
        self._steps += 1
        last = batch_idx + 1 >= trainer.num_training_batches
        if self._steps % self.check_every_n_steps and not last:
            return
        finite_steps = int(self._finite_steps.item())
        if trainer.strategy.reduce_boolean_decision(finite_steps < self._steps, all=False):
            value = float(module.train_loss_sum)
            step = trainer.global_step - self._steps + finite_steps
            raise Diverged(
                f"training loss became {value} at epoch {trainer.current_epoch}, step {step} (both counted from 0); "
                "try a smaller optim.lr",
                trainer.current_epoch,
                step,
            )

    def on_validation_end(self, trainer, module) -> None:
        mae = trainer.callback_metrics.get("val/mae")
        if trainer.sanity_checking or mae is None or bool(torch.isfinite(mae)):
            return
        raise Diverged(
            f"validation MAE is {float(mae)} after epoch {trainer.current_epoch}, step {trainer.global_step} "
            "(both counted from 0); try a smaller optim.lr",
            trainer.current_epoch,
            trainer.global_step,
        )


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


class ProgressLines(L.Callback):
    """Plain progress lines when stdout is not a terminal (SLURM, nohup, the gpu_pool launcher's
    console.log), where Lightning's bar shows nothing until an epoch ends: every `every_s` seconds
    and at each epoch's end, epoch, step of total, molecules/s, elapsed and estimated time left,
    the last validation MAE. In a terminal (or with `always=False` and a tty) the bar is enough."""

    def __init__(self, every_s: float = 30.0, always: bool = False):
        if not every_s > 0:
            raise ValueError(f"callbacks.progress.every_s={every_s!r} must be a positive number of seconds")
        self.every_s = every_s
        self.always = always
        self._active = False
        self._start = self._last = 0.0
        self._molecules = 0
        self._first_step = 0  # the global step this process started at (not 0 after a resume)

    def on_train_start(self, trainer, module) -> None:
        self._active = trainer.is_global_zero and (self.always or not sys.stdout.isatty())
        self._start = self._last = time.monotonic()
        self._molecules = 0
        self._first_step = trainer.global_step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self._molecules += batch.num_graphs
        if self._active and time.monotonic() - self._last >= self.every_s:
            self._print(trainer, f"step {batch_idx + 1}/{trainer.num_training_batches}")

    def on_train_epoch_end(self, trainer, module) -> None:  # after validation: its MAE is current
        if self._active:
            self._print(trainer, "end")

    def _print(self, trainer, where: str) -> None:
        now = time.monotonic()
        self._last = now
        elapsed = now - self._start
        done, total = trainer.global_step, trainer.estimated_stepping_batches
        left = time_left(elapsed, done - self._first_step, total - done)
        mae = trainer.callback_metrics.get("val/mae")
        line = (
            f"[progress] epoch {trainer.current_epoch + 1}/{trainer.max_epochs} {where} | "
            f"{self._molecules * trainer.world_size / max(elapsed, 1e-9):,.0f} molecules/s | "
            f"elapsed {_clock(elapsed)} | left ~{_clock(left)}"
            + (f" | val/mae {float(mae):.4g}" if mae is not None else "")
        )
        print(line, flush=True)


def time_left(elapsed: float, steps_taken: int, steps_left: float) -> float:
    """Seconds left at the pace of the steps this process took (nan until it took one, or without an end)."""
    if steps_taken <= 0 or steps_left == float("inf"):
        return float("nan")
    return elapsed / steps_taken * steps_left


def _clock(seconds: float) -> str:
    if seconds != seconds:  # nan: not known yet
        return "?"
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}"


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
        batch = datamodule.batch(datamodule.split.val[: self.num_molecules], module.device, module.dtype)
        was_training = module.training
        module.eval()
        self.history.append(module.predict(batch).cpu().numpy())
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
