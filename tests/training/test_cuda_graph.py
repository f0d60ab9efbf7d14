"""optim.cuda_graph: the captured step must train exactly like the eager one (GPU tests skip on CPU)."""

import dataclasses

import lightning as L
import numpy as np
import pytest
import torch
from torch._subclasses.fake_tensor import DataDependentOutputException, FakeTensor, FakeTensorMode

from mpnn.training.build import build
from mpnn.training.callbacks import MetricHistory
from mpnn.training.cuda_graph import CudaGraphStep, _copy_into
from mpnn.training.module import RegressionModule
from tests.training.test_module import compose_config
from tests.training.test_train import config_choices

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("data.static_shapes=false", "optim.cuda_graph=true"), "replays one batch shape; set data.static_shapes=true"),
        (("data.static_shapes=true", "optim.cuda_graph=true"), "needs a CUDA device; this run is on cpu"),
        (("data.static_shapes=false", "optim.compile=true"), "per batch shape; set data.static_shapes=true"),
    ],
)
def test_misconfigured_runs_fail_before_training(overrides, message, packed):
    datamodule, module = build(compose_config("data.subset=300", *overrides))
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match=message):
        trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 0


def test_cpu_batches_are_refused_with_a_clear_error(datamodule_factory):
    batch = datamodule_factory(subset=300).batch(range(8))
    with pytest.raises(ValueError, match="needs a CUDA device"):
        CudaGraphStep(lambda b: b.y.sum(), lambda: [])(batch)


def test_a_new_batch_is_copied_into_every_captured_tensor(datamodule_factory):
    datamodule = datamodule_factory(subset=300, static_shapes=True)
    static, batch = datamodule.batch(range(8)), datamodule.batch(range(8, 16))
    assert not torch.equal(static.x, batch.x)
    _copy_into(static, batch)
    for field in dataclasses.fields(batch):
        assert torch.equal(getattr(static, field.name), getattr(batch, field.name)), field.name


def test_batches_of_another_shape_are_refused(datamodule_factory):
    datamodule = datamodule_factory(subset=300)
    small, large = datamodule.batch([0]), datamodule.batch(range(8))  # dynamic shapes: padded to the largest molecule
    assert small.x.shape != large.x.shape
    with pytest.raises(ValueError, match="set data.static_shapes=true"):
        _copy_into(small, large)


@pytest.mark.parametrize("choice", config_choices(), ids=" ".join)
def test_every_config_steps_without_host_synchronisation(choice, packed):
    """A CUDA graph cannot capture a step that waits for the host (`.item()`, data-dependent shapes).

    Fake tensors carry shapes but no values, so they raise on exactly those; this checks on the CPU
    what capture needs, for the whole captured step (forward, loss, backward, clipping) of every
    model, message and experiment.
    """
    datamodule, module = build(compose_config(*choice, "data.subset=300", "data.static_shapes=true"))
    batch = datamodule.batch(datamodule.split.train[:16])
    with FakeTensorMode(allow_non_fake_inputs=True):
        loss = module._forward_backward(batch, backward=torch.Tensor.backward)
    assert isinstance(loss, FakeTensor) and loss.shape == ()
    assert all(isinstance(p.grad, FakeTensor) for p in module.parameters())


def test_the_fake_tensor_check_catches_a_host_synchronisation(packed):
    datamodule, module = build(compose_config("data.subset=300", "data.static_shapes=true"))
    forward = module.model.forward
    module.model.forward = lambda batch: forward(batch) * (forward(batch).sum().item() > 0)
    with pytest.raises(DataDependentOutputException), FakeTensorMode(allow_non_fake_inputs=True):
        module._forward_backward(datamodule.batch(range(16)), backward=torch.Tensor.backward)


def _train_steps(cuda_graph: bool, steps: int = 8, move_at: int | None = None) -> list[torch.Tensor]:
    """Plain training steps; at step `move_at` the module goes to the CPU and back (new storage)."""
    datamodule, module = build(
        compose_config(
            "data.subset=2000", "data.static_shapes=true", f"optim.cuda_graph={cuda_graph}", "matmul_precision=highest"
        )
    )
    module = module.cuda()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    losses = []
    for i in range(steps):
        if i == move_at:
            module.cpu().cuda()
        index = torch.from_numpy(datamodule.split.train[i * 64 : (i + 1) * 64].copy()).cuda()
        losses.append(module.compute_gradients(datamodule.dataset.gather(index, datamodule.dataset.n_max), optimizer))
        losses[-1] = losses[-1].clone()  # the graph's output is overwritten by the next replay
        optimizer.step()
    return losses + [p.detach().clone() for p in module.parameters()]


@needs_cuda
@pytest.mark.parametrize("move_at", [None, 6], ids=["in place", "parameters moved after capture"])
def test_captured_step_trains_like_the_eager_step(move_at, packed):
    eager, graphed = _train_steps(False, 12, move_at), _train_steps(True, 12, move_at)
    for a, b in zip(eager, graphed):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


class ParameterChanges(L.Callback):
    """Whether every parameter moved during each training epoch."""

    def __init__(self):
        self.every_parameter_moved: list[bool] = []

    def on_train_epoch_start(self, trainer, module) -> None:
        self._before = [p.detach().clone() for p in module.parameters()]

    def on_train_epoch_end(self, trainer, module) -> None:
        moved = [not torch.equal(a, p) for a, p in zip(self._before, module.parameters())]
        self.every_parameter_moved.append(all(moved))


def _lightning_fit(cuda_graph: bool) -> tuple[RegressionModule, L.Trainer, ParameterChanges, list[float]]:
    datamodule, module = build(
        compose_config(
            "data.subset=2000", "data.static_shapes=true", f"optim.cuda_graph={cuda_graph}", "data.batch_size=64",
            "matmul_precision=highest",
        )
    )  # fmt: skip
    changes, history = ParameterChanges(), MetricHistory()
    trainer = L.Trainer(
        accelerator="gpu", devices=1, max_epochs=3, logger=False, enable_checkpointing=False,
        callbacks=[changes, history],
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    return module, trainer, changes, history.val_mae


@needs_cuda
def test_lightning_fit_with_cuda_graph(packed):
    """Validation after every epoch: Lightning clears `.grad` before it, and training must go on."""
    module, trainer, changes, val_mae = _lightning_fit(cuda_graph=True)
    assert module._graph_step.captured
    assert trainer.global_step == 3 * (1694 // 64)
    assert changes.every_parameter_moved == [True, True, True]
    _, _, _, eager_val_mae = _lightning_fit(cuda_graph=False)
    np.testing.assert_allclose(val_mae, eager_val_mae, rtol=0.05)
