"""MPNNModule: the Lightning training logic for one QM9 target.

Loss: MSE on the standardised target. Metrics: MAE in the target's unit over the whole
validation/test set, and the error ratio MAE / chemical accuracy (Gilmer et al. Table 2).
"""

from __future__ import annotations

import lightning as L
import torch
from torchmetrics import MeanAbsoluteError

from mpnn.data.batch import MoleculeBatch
from mpnn.models.mpnn import MPNN
from mpnn.targets import get_target

SCHEDULES = ("constant", "linear_decay", "plateau")


class MPNNModule(L.LightningModule):
    def __init__(
        self,
        model: MPNN,
        target: str,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        schedule: str = "linear_decay",
        decay_start: float = 0.5,
        final_lr_factor: float = 0.05,
        plateau_patience: int = 5,
        compile: bool = False,
        compile_mode: str | None = "reduce-overhead",
    ):
        super().__init__()
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown optim.schedule={schedule!r}; valid: {', '.join(SCHEDULES)}")
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.target = get_target(target)
        self.metrics = torch.nn.ModuleDict({stage: MeanAbsoluteError() for stage in ("val_mae", "test_mae")})
        # torch.compile with CUDA graphs ("reduce-overhead") wants static shapes: data.static_shapes=true.
        # The compiled region covers edges, model, target standardisation and loss.
        self._loss = torch.compile(self._normalised_loss, mode=compile_mode, dynamic=False) if compile else None
        self._train_loss_sum = torch.zeros(())
        self._train_molecules = 0

    def forward(self, batch: MoleculeBatch) -> torch.Tensor:
        return self.model(batch)

    def _normalised_loss(self, batch: MoleculeBatch) -> tuple[torch.Tensor, torch.Tensor]:
        prediction = self.model(batch)
        return torch.nn.functional.mse_loss(prediction, self.model.scaler.normalise(batch.y)), prediction

    def loss(self, batch: MoleculeBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(MSE on the standardised target, prediction) for a batch."""
        return (self._loss or self._normalised_loss)(batch)

    def training_step(self, batch: MoleculeBatch, batch_idx: int) -> torch.Tensor:
        loss, _ = self.loss(batch)
        # Accumulated on the device and logged once per epoch: no per-step host synchronisation.
        self._train_loss_sum = self._train_loss_sum.to(loss.device) + loss.detach() * batch.num_molecules
        self._train_molecules += batch.num_molecules
        return loss

    def on_train_epoch_end(self) -> None:
        if self._train_molecules:
            self.log("train/loss", self._train_loss_sum / self._train_molecules, sync_dist=True)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"])
        self._train_loss_sum, self._train_molecules = torch.zeros((), device=self.device), 0

    def _evaluate(self, batch: MoleculeBatch, stage: str) -> None:
        loss, prediction = self.loss(batch)
        metric = self.metrics[f"{stage}_mae"]
        metric.update(self.model.scaler.denormalise(prediction).float(), batch.y.float())
        batch_size = batch.num_molecules
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, batch_size=batch_size)
        self.log(f"{stage}/mae", metric, on_step=False, on_epoch=True, batch_size=batch_size, prog_bar=stage == "val")

    def on_validation_epoch_end(self) -> None:
        self._log_ratio("val")

    def on_test_epoch_end(self) -> None:
        self._log_ratio("test")

    def _log_ratio(self, stage: str) -> None:
        # The MAE metric is computed (and synchronised across processes) by Lightning at epoch end;
        # compute() here returns that same cached value.
        mae = self.metrics[f"{stage}_mae"].compute()
        self.log(f"{stage}/error_ratio", mae / self.target.chemical_accuracy if self.target.chemical_accuracy else mae)

    def validation_step(self, batch: MoleculeBatch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: MoleculeBatch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def configure_optimizers(self):
        hp = self.hparams
        fused = self.device.type == "cuda"  # one fused kernel instead of many small ones
        optimizer = torch.optim.Adam(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay, fused=fused)
        if hp.schedule == "constant":
            return optimizer
        if hp.schedule == "plateau":  # the PyG example's schedule
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=0.7, patience=hp.plateau_patience, min_lr=1e-5
            )
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val/mae"}}
        # Gilmer et al.: constant, then linear decay to lr * F from a fraction of training onwards.
        total = max(1, int(self.trainer.estimated_stepping_batches))
        start = int(hp.decay_start * total)

        def factor(step: int) -> float:
            if step <= start:
                return 1.0
            progress = min(1.0, (step - start) / max(1, total - start))
            return 1.0 - progress * (1.0 - hp.final_lr_factor)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
