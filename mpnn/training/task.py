"""What every training run shares, a single model or an ensemble of K: the Lightning task.

`TrainingTask` holds the parts that do not depend on how many models train: the target scaler fitted
on the training split for every model, one optimizer with one parameter group per model and the
run's learning-rate schedule, the training loss summed on the device (public: the divergence check
reads it), and the refusals. `RegressionModule` (mpnn/training/module.py) trains one model,
`EnsembleModule` (mpnn/training/ensemble.py) K; each says how it steps, validates and reports
(`report`), so that `mpnn.training.run` treats both alike.

The refusals (`refusal`) are one list, checked before any data loads from the config
(`mpnn.training.build.check_run`) and again when a Trainer starts fitting (for Trainers built by hand).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from torch.optim.lr_scheduler import ReduceLROnPlateau

from mpnn.models.protocol import MoleculeModel
from mpnn.recipes import RECIPES

FUSED_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD)  # one fused kernel per step on a GPU


def refusal(
    *,
    precision: str,
    world_size: int,
    device_type: str | None,
    static_shapes: bool,
    compile: bool,
    cuda_graph: bool,
    models: int,
    backend: str = "dense",
    compile_mode: str | None = None,
) -> str | None:
    """Why a run with these settings cannot train (one message naming the setting and what to use instead),
    or None. `device_type` None: not known yet (the config leaves the accelerator to Lightning)."""
    if precision == "16-mixed":  # its loss scaling would need unscaling before clipping
        return "trainer.precision=16-mixed is not supported; use bf16-mixed or 32-true"
    if precision in ("bf16-true", "16-true"):  # would round the float64 target scaler too
        return (
            f"trainer.precision={precision} casts weights and target scaler to half precision; "
            "use bf16-mixed (bf16 matrix products, float32 weights) or 32-true"
        )
    if models > 1 and world_size > 1:
        return (
            "ensemble.size > 1 trains its members on one device: use it without trainer=ddp (trainer.devices=1); "
            "to use several GPUs, run one ensemble per GPU (hydra/launcher=gpu_pool)"
        )
    if cuda_graph and compile_mode == "reduce-overhead":
        return (
            "optim.compile_mode=reduce-overhead captures its own CUDA graphs and cannot run inside "
            "optim.cuda_graph=true; use optim.compile_mode=default (or null) with it"
        )
    if (compile or cuda_graph) and backend != "dense":
        return "optim.compile and optim.cuda_graph need fixed batch shapes: use them with backend=dense"
    if compile and not static_shapes:  # one compilation per atom count, then eager
        return "optim.compile=true compiles one graph per batch shape; set data.static_shapes=true"
    if cuda_graph:
        if not static_shapes:
            return (
                "optim.cuda_graph=true captures one graph per batch shape; set data.static_shapes=true "
                "(one shape, or one per bucket with data.bucketing=true)"
            )
        if device_type is not None and device_type != "cuda":
            return f"optim.cuda_graph=true needs a CUDA device; this run is on {device_type}"
        if world_size > 1:
            return "optim.cuda_graph=true runs on one device; use it without trainer=ddp"
    return None


class TrainingTask(L.LightningModule):
    """The shared half of a run's Lightning module (see the module docstring); subclasses give `models()`
    and their steps. Optimisation is manual: each subclass's `training_step` computes gradients and calls
    `optimizer_step`."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.train_loss_sum = torch.zeros(())  # the epoch's summed training loss, on the device, unsynchronised
        self.train_molecules = 0

    def models(self) -> list[MoleculeModel]:
        """The models this run trains, in parameter-group order."""
        raise NotImplementedError

    def fit_scaler(self, datamodule) -> None:
        """Fit every model's target scaler (mean, std, atomrefs) on the training split of a set-up data module."""
        y, counts = datamodule.training_targets()
        for model in self.models():
            model.scaler.fit(y, counts, atomrefs=RECIPES[self.spec.recipe].atomrefs)

    def setup(self, stage: str) -> None:
        # A resumed run restores the fitted buffers from its checkpoint after this.
        if stage == "fit":
            self.fit_scaler(self.trainer.datamodule)

    def on_fit_start(self) -> None:
        trainer = self.trainer
        message = refusal(
            precision=str(trainer.precision),
            world_size=trainer.world_size,
            device_type=self.device.type,
            static_shapes=getattr(trainer.datamodule, "static_shapes", True),
            compile=bool(self.hparams.get("compile")),
            cuda_graph=bool(self.hparams.get("cuda_graph")),
            models=len(self.models()),
            backend=self.hparams.get("backend", "dense"),
            compile_mode=self.hparams.get("compile_mode"),
        )
        if message:
            raise ValueError(message)

    def optimizer_step_and_schedule(self) -> None:
        """The optimizer's step, then the schedule's when it is stepped per optimisation step."""
        self.optimizers().step()
        scheduler = self.lr_schedulers()
        if scheduler is not None and not isinstance(scheduler, ReduceLROnPlateau):
            scheduler.step()

    def add_training_loss(self, loss_sum: torch.Tensor, molecules: int) -> None:
        """Add a step's summed loss (loss x molecules) on the device: no host synchronisation per step."""
        self.train_loss_sum = self.train_loss_sum.to(loss_sum.device) + loss_sum
        self.train_molecules += molecules

    def on_train_epoch_end(self) -> None:
        if self.train_molecules:
            self.log("train/loss", self.train_loss_sum / self.train_molecules, sync_dist=True)
        self.train_loss_sum, self.train_molecules = torch.zeros((), device=self.device), 0

    def configure_optimizers(self) -> torch.optim.Optimizer | dict:
        """The run's optimizer with one parameter group per model (each model's own Adam state and learning
        rate), and its schedule: per optimisation step, or per validation for the plateau schedule."""
        factory = instantiate(self.hparams.optimizer)
        fused = self.device.type == "cuda" and factory.func in FUSED_OPTIMIZERS
        groups = [{"params": list(model.parameters())} for model in self.models()]
        optimizer = factory(groups, **({"fused": True} if fused else {}))
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = instantiate(self.hparams.schedule)(optimizer, total_steps=total_steps)
        if scheduler is None:
            return optimizer
        interval = "epoch" if isinstance(scheduler, ReduceLROnPlateau) else "step"
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}

    def report(self, cfg, run_dir: Path, trainer: L.Trainer, datamodule, common: dict) -> dict:
        """After fitting: test, write results.json and the figures, and return the results (empty on DDP
        ranks other than 0). `common`: the fields every run's results share."""
        raise NotImplementedError
