"""EnsembleModule: K models of one configuration trained together in one process (`ensemble.size=K`).

Member k is the single run with seed `seed + k`: its initial weights come from that seed
(`build_model(seed=...)`), its training batches from that seed's own shuffle
(`mpnn.data.sampling`), and it has its own Adam state (one parameter group per member), its own
gradient clipping (each member's own norm), the learning-rate schedule of a single run, its own
validation MAE, best checkpoint and early stopping. tests/training/test_ensemble.py checks, in
float64, that every member follows the single run of its seed step by step.

The members run one after another inside each step (on a CPU, K members cost about K single
runs). The ensemble's prediction is the members' mean, its uncertainty their spread.

A run directory of an ensemble holds `members/seed<s>/` per member, each laid out as a single
run (results.json, test_predictions.npz, config_resolved.yaml, checkpoints/best.ckpt), so that
`mpnn-predict`, `mpnn-compare` and `mpnn.load_checkpoint` treat a member as the run it equals;
the top-level results.json has the ensemble's test MAE and a `members` list.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torchmetrics import MeanAbsoluteError

from mpnn.data.batch import EnsembleBatch
from mpnn.data.spec import DataSpec
from mpnn.files import write_atomically
from mpnn.models.factory import build_model
from mpnn.targets import get_target
from mpnn.training.module import batch_loss, denormalise, normalised_loss
from mpnn.training.reporting import ensemble_results, member_dir
from mpnn.training.stacked import StackedMembers
from mpnn.training.task import TrainingTask

# loop: one member after another; stacked: all members in one vmapped forward pass (mpnn.training.stacked).
ENGINES = ("loop", "stacked")


class EnsembleModule(TrainingTask):
    """K members trained together (what it does not support is refused by `mpnn.training.build.check_ensemble`);
    see the module docstring. `patience`: a member stops training once its
    validation MAE has not improved by `min_delta` for that many validations (None: never); the run stops
    when every member has."""

    def __init__(
        self,
        model: dict,
        data: dict,
        optimizer: dict,
        schedule: dict,
        seeds: list[int],
        backend: str = "dense",
        gradient_clip_val: float | None = 10.0,
        patience: int | None = None,
        min_delta: float = 0.0,
        engine: str = "loop",
    ):
        super().__init__()
        if engine not in ENGINES:
            raise ValueError(f"unknown ensemble.engine={engine!r}; valid: {', '.join(ENGINES)}")
        if len(seeds) < 2 or len(set(seeds)) != len(seeds):
            raise ValueError(f"an ensemble needs two or more different seeds, got {seeds}")
        if patience is not None and patience < 1:
            raise ValueError(f"early stopping patience={patience} must be >= 1")
        self.save_hyperparameters()
        self.spec = DataSpec(**data)
        self.members = nn.ModuleList(build_model(model, self.spec, seed) for seed in seeds)
        self.stacked = StackedMembers(self.members) if engine == "stacked" else None
        self.target = get_target(self.spec.target)
        self.member_mae = nn.ModuleList(MeanAbsoluteError() for _ in seeds)
        self.ensemble_mae = MeanAbsoluteError()
        # Per member, as a single run's callbacks keep them: the best validation MAE (its best checkpoint, kept on
        # any improvement, as ModelCheckpoint does), the best by `min_delta` and the validations since (its early
        # stopping, as EarlyStopping counts), still training, MAE per epoch.
        self.best_val = [math.inf] * len(seeds)
        self.stopping_best = [math.inf] * len(seeds)
        self.since_best = [0] * len(seeds)
        self.training_members = [True] * len(seeds)
        self.val_history: list[list[float]] = [[] for _ in seeds]

    @property
    def seeds(self) -> list[int]:
        return list(self.hparams.seeds)

    def models(self) -> list:
        return list(self.members)

    def training_step(self, batch: EnsembleBatch, batch_idx: int) -> None:
        if not isinstance(batch, EnsembleBatch) or len(batch.members) != len(self.members):
            raise ValueError(f"an ensemble of {len(self.members)} trains on one batch per member (data.shuffle_seeds)")
        optimizer = self.optimizers()
        optimizer.zero_grad()  # members that stopped keep no gradient: the optimizer leaves them as they are
        training = [k for k, on in enumerate(self.training_members) if on]
        losses = self.member_losses(batch, training)
        self.manual_backward(sum(losses.values()))  # members share no weights: each gets its own gradient
        for k in set(range(len(self.members))) - set(training):  # stopped members: no gradient, no step
            for parameter in self.members[k].parameters():
                parameter.grad = None
        clip = self.hparams.gradient_clip_val
        if clip:
            for k in training:
                torch.nn.utils.clip_grad_norm_(self.members[k].parameters(), clip)
        self.optimizer_step_and_schedule()
        molecules = sum(batch.members[k].num_graphs for k in training)
        summed = sum(loss.detach() * batch.members[k].num_graphs for k, loss in losses.items())
        self.add_training_loss(summed, molecules)

    def member_losses(self, batch: EnsembleBatch, training: list[int]) -> dict[int, torch.Tensor]:
        """MSE on the standardised target of each training member k on its batch `batch.members[k]`."""
        if self.stacked is None:
            return {
                k: batch_loss(lambda part, m=self.members[k]: normalised_loss(m, part), batch.members[k])[0]
                for k in training
            }
        predictions = self.stacked(batch.members)  # every member runs; those stopped get no gradient
        targets = torch.stack([m.normalise(part) for m, part in zip(self.members, batch.members)])
        errors = ((predictions - targets) ** 2).mean(-1)  # as torch.nn.functional.mse_loss, per member
        return {k: errors[k] for k in training}

    def member_predictions(self, batch) -> torch.Tensor:
        """(K, molecules) predictions of every member in the target's physical unit (float64)."""
        if self.stacked is not None:
            standardised = self.stacked(batch)
            return torch.stack([m.denormalise(p, batch) for m, p in zip(self.members, standardised)])
        predictions = []
        for member in self.members:
            prediction = batch_loss(lambda part, m=member: normalised_loss(m, part), batch)[1]
            predictions.append(denormalise(member, prediction, batch))
        return torch.stack(predictions)

    @torch.no_grad()
    def predict(self, batch) -> torch.Tensor:
        """The ensemble's prediction (the members' mean) in the target's physical unit (float64)."""
        return self.member_predictions(batch).mean(0)

    def validation_step(self, batch, batch_idx: int) -> None:
        predictions = self.member_predictions(batch)
        truth, size = batch.y.float(), batch.num_graphs
        for seed, metric, prediction in zip(self.seeds, self.member_mae, predictions):
            metric.update(prediction.float(), truth)
            self.log(f"val/mae/seed{seed}", metric, on_step=False, on_epoch=True, batch_size=size)
        self.ensemble_mae.update(predictions.mean(0).float(), truth)
        self.log("val/mae", self.ensemble_mae, on_step=False, on_epoch=True, batch_size=size, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        ensemble = self.ensemble_mae.compute()
        ratio = self.target.chemical_accuracy
        self.log("val/error_ratio", ensemble / ratio if ratio else ensemble)
        if not self.trainer.sanity_checking:
            self.select([float(metric.compute()) for metric in self.member_mae])

    def select(self, maes: list[float]) -> None:
        """After a validation: keep each improved member's weights as its best checkpoint; stop members
        whose patience ran out, and the run once all have."""
        patience, min_delta = self.hparams.patience, self.hparams.min_delta
        for k, mae in enumerate(maes):
            if not self.training_members[k]:
                continue
            self.val_history[k].append(mae)
            if mae < self.best_val[k]:
                self.best_val[k] = mae
                if self.trainer.is_global_zero:
                    self.save_member(k, Path(self.trainer.default_root_dir), epoch=self.current_epoch, val_mae=mae)
            if mae < self.stopping_best[k] - min_delta:
                self.stopping_best[k], self.since_best[k] = mae, 0
            else:
                self.since_best[k] += 1
                if patience is not None and self.since_best[k] >= patience:
                    self.training_members[k] = False
        if not any(self.training_members):
            self.trainer.should_stop = True

    def member_checkpoint(self, k: int, **extra) -> dict:
        """Member k as a single run's checkpoint: `mpnn.load_checkpoint` rebuilds it alone."""
        hparams = {key: self.hparams[key] for key in ("model", "data", "optimizer", "schedule", "backend")}
        hparams.update(gradient_clip_val=self.hparams.gradient_clip_val, seed=self.seeds[k])
        state = {f"model.{name}": value.detach().cpu() for name, value in self.members[k].state_dict().items()}
        return {"hyper_parameters": hparams, "state_dict": state, **extra}

    def save_member(self, k: int, run_dir: Path, **extra) -> Path:
        path = member_dir(run_dir, self.seeds[k]) / "checkpoints" / "best.ckpt"
        path.parent.mkdir(parents=True, exist_ok=True)
        checkpoint = self.member_checkpoint(k, **extra)
        write_atomically(path, lambda file: torch.save(checkpoint, file))
        return path

    def on_save_checkpoint(self, checkpoint: dict) -> None:  # plain lists: loadable with weights_only=True
        checkpoint["ensemble"] = {
            "best_val": self.best_val,
            "stopping_best": self.stopping_best,
            "since_best": self.since_best,
            "training_members": self.training_members,
            "val_history": self.val_history,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["ensemble"]
        self.best_val, self.since_best = list(state["best_val"]), list(state["since_best"])
        self.stopping_best = list(state.get("stopping_best", state["best_val"]))
        self.training_members = list(state["training_members"])
        self.val_history = [list(history) for history in state["val_history"]]

    def report(self, cfg, run_dir, trainer, datamodule, common: dict) -> dict:
        return ensemble_results(cfg, run_dir, trainer, self, datamodule, common)
