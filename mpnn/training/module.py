"""RegressionModule: the Lightning training logic for one QM9 target and any model of the protocol.

Loss: MSE on the standardised target. Metrics: MAE in the target's unit over the whole
validation/test set, and the error ratio MAE / chemical accuracy (Gilmer et al. Table 2).

The module is built from plain settings (the model's config, the data spec, optimizer and
schedule configs), all saved as its hyperparameters: a checkpoint alone rebuilds the model
(`mpnn.inference.load_checkpoint`). The target scaler is fitted in `setup("fit")` from the
training split and saved with the weights.

The optimisation step is written out here (Lightning's manual optimisation) rather than left to
Lightning: forward, backward and gradient clipping are one function, which `optim.cuda_graph=true`
captures as a CUDA graph and which runs eagerly everywhere else, on the CPU included.

Under `trainer.precision=bf16-mixed`, Lightning runs training_step, validation_step and test_step
inside autocast (the captured step too): matrix products in bfloat16, weights and optimizer in
float32; the model keeps recurrent states, readout and prediction in float32
(`mpnn.models.precision`), so the loss is computed in float32.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torchmetrics import MeanAbsoluteError

from mpnn.data.buckets import SplitBatch
from mpnn.data.spec import DataSpec
from mpnn.models.factory import build_model
from mpnn.models.protocol import MoleculeModel
from mpnn.targets import get_target
from mpnn.training.cuda_graph import CudaGraphStep
from mpnn.training.reporting import single_run_results
from mpnn.training.task import TrainingTask


def normalised_loss(model: MoleculeModel, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(MSE of `model`'s prediction on the standardised target, the prediction) for one batch."""
    prediction = model(batch)
    return torch.nn.functional.mse_loss(prediction, model.normalise(batch)), prediction


def batch_loss(loss: Callable, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """`loss(batch)`; a `SplitBatch` part by part, weighted by the parts' sizes: the mean over the whole batch."""
    if not isinstance(batch, SplitBatch):
        return loss(batch)
    losses, predictions = zip(*(loss(part) for part in batch.parts))
    weights = [part.num_graphs / batch.num_graphs for part in batch.parts]
    return sum(w * part_loss for w, part_loss in zip(weights, losses)), torch.cat(predictions)


def denormalise(model: MoleculeModel, prediction: torch.Tensor, batch) -> torch.Tensor:
    """`batch_loss`'s prediction of a batch (or `SplitBatch`) in the target's physical unit."""
    if not isinstance(batch, SplitBatch):
        return model.denormalise(prediction, batch)
    parts = prediction.split([part.num_graphs for part in batch.parts])
    return torch.cat([model.denormalise(p, part) for p, part in zip(parts, batch.parts)])


class RegressionModule(TrainingTask):
    """One model trained on one target (the shared parts, optimizer and refusals: `TrainingTask`)."""

    def __init__(
        self,
        model: dict,
        data: dict,
        optimizer: dict,
        schedule: dict,
        backend: str = "dense",
        gradient_clip_val: float | None = 10.0,
        compile: bool = False,
        compile_mode: str | None = None,
        cuda_graph: bool = False,
        seed: int | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.spec = DataSpec(**data)
        self.model: MoleculeModel = build_model(model, self.spec, seed)
        self.target = get_target(self.spec.target)
        self.metrics = torch.nn.ModuleDict({stage: MeanAbsoluteError() for stage in ("val_mae", "test_mae")})
        # Both torch.compile with CUDA graphs ("reduce-overhead", the default without optim.cuda_graph)
        # and optim.cuda_graph want static shapes: data.static_shapes=true. The compiled region
        # covers edges, model, target standardisation and loss.
        mode = compile_mode or ("default" if cuda_graph else "reduce-overhead")
        self._loss = torch.compile(self._normalised_loss, mode=mode, dynamic=False) if compile else None
        if compile:  # one graph per batch shape: with data.bucketing, per bucket and per batch size
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        plain_step = partial(self._forward_backward, backward=torch.Tensor.backward)
        self._graph_step = CudaGraphStep(plain_step, self.parameters) if cuda_graph else None

    def models(self) -> list[MoleculeModel]:
        return [self.model]

    def forward(self, batch) -> torch.Tensor:
        return self.model(batch)

    @torch.no_grad()
    def predict(self, batch) -> torch.Tensor:
        """The model's prediction in the target's physical unit (float64)."""
        return self.model.predict(batch)

    def _normalised_loss(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        return normalised_loss(self.model, batch)

    def loss(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(MSE on the standardised target, prediction) for a batch or `SplitBatch` (see `batch_loss`)."""
        return batch_loss(self._loss or self._normalised_loss, batch)

    def denormalise(self, prediction: torch.Tensor, batch) -> torch.Tensor:
        """`loss`'s prediction of a batch (or `SplitBatch`) in the target's physical unit."""
        return denormalise(self.model, prediction, batch)

    def _forward_backward(self, batch, backward: Callable[[torch.Tensor], None]) -> torch.Tensor:
        """Loss, gradients (clipped to `gradient_clip_val` in total norm); no host synchronisation."""
        loss, _ = self.loss(batch)
        backward(loss)
        if self.hparams.gradient_clip_val:
            torch.nn.utils.clip_grad_norm_(self.parameters(), self.hparams.gradient_clip_val)
        return loss.detach()

    def compute_gradients(self, batch, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        """Loss of `batch`, with its clipped gradients left in `.grad` for `optimizer.step()`.

        Replays the captured CUDA graph under `optim.cuda_graph=true`; otherwise runs eagerly,
        with Lightning's backward (DDP, precision) when a Trainer runs this module.
        """
        if self._graph_step is not None:
            return self._graph_step(batch)
        optimizer.zero_grad()
        attached = self._trainer is not None
        return self._forward_backward(batch, self.manual_backward if attached else torch.Tensor.backward)

    def eager_gradients(self, batch) -> torch.Tensor:
        """`compute_gradients` without the compiled loss or the CUDA graph: the same arithmetic, run op by
        op, so that tools which watch operations (the FLOP counter) see it; a graph replay shows them none."""
        self.zero_grad(set_to_none=True)
        compiled, self._loss = self._loss, None
        try:
            return self._forward_backward(batch, torch.Tensor.backward)
        finally:
            self._loss = compiled

    def training_step(self, batch, batch_idx: int) -> None:
        loss = self.compute_gradients(batch, self.optimizers())
        self.optimizer_step_and_schedule()
        self.add_training_loss(loss * batch.num_graphs, batch.num_graphs)

    def _evaluate(self, batch, stage: str) -> None:
        loss, prediction = self.loss(batch)
        metric = self.metrics[f"{stage}_mae"]
        metric.update(self.denormalise(prediction, batch).float(), batch.y.float())
        batch_size = batch.num_graphs
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, batch_size=batch_size)
        self.log(f"{stage}/mae", metric, on_step=False, on_epoch=True, batch_size=batch_size, prog_bar=stage == "val")

    def on_validation_epoch_end(self) -> None:
        mae = self._log_ratio("val")
        scheduler = self.lr_schedulers()
        if isinstance(scheduler, ReduceLROnPlateau) and not self.trainer.sanity_checking:
            scheduler.step(mae)

    def on_test_epoch_end(self) -> None:
        self._log_ratio("test")

    def _log_ratio(self, stage: str) -> torch.Tensor:
        """Log MAE / chemical accuracy; returns the MAE (synchronised across processes)."""
        mae = self.metrics[f"{stage}_mae"].compute()
        self.log(f"{stage}/error_ratio", mae / self.target.chemical_accuracy if self.target.chemical_accuracy else mae)
        return mae

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def report(self, cfg, run_dir, trainer, datamodule, common: dict) -> dict:
        return single_run_results(cfg, run_dir, trainer, self, datamodule, common)
