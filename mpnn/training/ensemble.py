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

import copy
import dataclasses
import math
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn
from torch.func import functional_call, vmap
from torchmetrics import MeanAbsoluteError

from mpnn.data.batch import EnsembleBatch, MoleculeBatch
from mpnn.data.spec import DataSpec
from mpnn.files import write_atomically
from mpnn.inference import load_checkpoint, predict
from mpnn.models.factory import build_model
from mpnn.recipes import RECIPES
from mpnn.targets import get_target
from mpnn.training.module import FUSED_OPTIMIZERS, batch_loss, denormalise, normalised_loss
from mpnn.training.reporting import draw_run_figures, report_to_wandb, write_results
from mpnn.training.resume import CONFIG_FILE

MEMBERS_DIR = "members"
# loop: one member after another; stacked: all members in one vmapped forward pass (StackedMembers).
ENGINES = ("loop", "stacked")


def member_dir(run_dir: Path, seed: int) -> Path:
    """Where member `seed` of an ensemble run keeps its results and best checkpoint."""
    return Path(run_dir) / MEMBERS_DIR / f"seed{seed}"


class EnsembleModule(L.LightningModule):
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
        self.automatic_optimization = False  # one optimizer step for all members, as RegressionModule's
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
        self._train_loss_sum = torch.zeros(())
        self._train_molecules = 0

    @property
    def seeds(self) -> list[int]:
        return list(self.hparams.seeds)

    def fit_scaler(self, datamodule) -> None:
        """Fit every member's target scaler on the training split (the same split for all)."""
        y, counts = datamodule.training_targets()
        for member in self.members:
            member.scaler.fit(y, counts, atomrefs=RECIPES[self.spec.recipe].atomrefs)

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.fit_scaler(self.trainer.datamodule)

    def on_fit_start(self) -> None:
        if self.trainer.world_size > 1:
            raise ValueError("ensemble.size > 1 trains its members on one device; use it without trainer=ddp")
        if self.trainer.precision in ("16-mixed", "bf16-true", "16-true"):
            raise ValueError(f"trainer.precision={self.trainer.precision} is not supported; use bf16-mixed or 32-true")

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
        optimizer.step()
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
        molecules = sum(batch.members[k].num_graphs for k in training)
        summed = sum(loss.detach() * batch.members[k].num_graphs for k, loss in losses.items())
        self._train_loss_sum = self._train_loss_sum.to(summed.device) + summed
        self._train_molecules += molecules

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

    def on_train_epoch_end(self) -> None:
        if self._train_molecules:
            self.log("train/loss", self._train_loss_sum / self._train_molecules)
        self._train_loss_sum, self._train_molecules = torch.zeros((), device=self.device), 0

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

    def configure_optimizers(self) -> torch.optim.Optimizer | dict:
        factory = instantiate(self.hparams.optimizer)
        fused = self.device.type == "cuda" and factory.func in FUSED_OPTIMIZERS
        groups = [{"params": list(member.parameters())} for member in self.members]
        optimizer = factory(groups, **({"fused": True} if fused else {}))
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = instantiate(self.hparams.schedule)(optimizer, total_steps=total_steps)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class StackedMembers:
    """The members' forward passes as one batched computation: their parameters stacked along a new
    first dimension (differentiably: gradients reach each member's own parameters) and the model run
    once under `torch.func.vmap`, on one dense batch per member or one batch for all.

    The model is a copy of member 0 on the meta device with its fused recurrent cells written out
    (`fused=False`), called with the stacked tensors by `torch.func.functional_call`.
    """

    def __init__(self, members: nn.ModuleList):
        self.members = members
        self.template = copy.deepcopy(members[0]).to("meta")
        for module in self.template.modules():
            if hasattr(module, "fused"):
                module.fused = False

    def __call__(self, batches: list[MoleculeBatch] | MoleculeBatch) -> torch.Tensor:
        """(K, molecules) standardised predictions: member k's of `batches[k]`, or of the one batch given."""
        names = [name for name, _ in self.members[0].named_parameters()]
        stacked = {name: torch.stack([member.get_parameter(name) for member in self.members]) for name in names}
        buffers = {
            name: torch.stack([member.get_buffer(name) for member in self.members])
            for name, _ in self.members[0].named_buffers()
        }
        shared = isinstance(batches, MoleculeBatch)
        fields = astuple_shallow(batches if shared else stack_batches(batches))

        def forward(parameters: dict, buffers: dict, *fields: torch.Tensor) -> torch.Tensor:
            return functional_call(self.template, (parameters, buffers), (MoleculeBatch(*fields),))

        in_dims = (0, 0, *([None] * len(fields) if shared else [0] * len(fields)))
        return vmap(forward, in_dims=in_dims)(stacked, buffers, *fields)


def astuple_shallow(batch: MoleculeBatch) -> tuple[torch.Tensor, ...]:
    """A batch's tensors in field order (`dataclasses.astuple` would copy them)."""
    return tuple(getattr(batch, field.name) for field in dataclasses.fields(batch))


def stack_batches(batches: list[MoleculeBatch]) -> MoleculeBatch:
    """Dense batches of the same molecule count stacked along a new first dimension, each padded to the
    largest atom count among them (padding is masked, as within a batch)."""
    if len({batch.num_graphs for batch in batches}) != 1:
        raise ValueError("ensemble.engine=stacked needs the members' batches to hold the same number of molecules")
    n = max(batch.x.shape[1] for batch in batches)

    def padded(batch: MoleculeBatch) -> list[torch.Tensor]:
        extra = n - batch.x.shape[1]
        return [
            F.pad(batch.x, (0, 0, 0, extra)),
            F.pad(batch.z, (0, extra)),
            F.pad(batch.pos, (0, 0, 0, extra)),
            F.pad(batch.bond, (0, extra, 0, extra)),
            F.pad(batch.mask.to(torch.uint8), (0, extra)).bool(),
            batch.y,
            batch.index,
        ]

    return MoleculeBatch(*(torch.stack(field) for field in zip(*map(padded, batches))))


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


def ensemble_results(cfg, run_dir: Path, trainer: L.Trainer, module: EnsembleModule, datamodule, common: dict) -> dict:
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
