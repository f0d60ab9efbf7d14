"""optim.cuda_graph: the captured step must train exactly like the eager one (GPU tests skip on CPU)."""

import collections
import dataclasses

import lightning as L
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch._subclasses.fake_tensor import DataDependentOutputException, FakeTensor, FakeTensorMode

from mpnn.models.factory import model_class
from mpnn.training.build import build
from mpnn.training.callbacks import MetricHistory
from mpnn.training.cuda_graph import CudaGraphStep, _copy_into, signature
from tests.conftest import needs_cuda
from tests.training.test_module import compose_config
from tests.training.test_train import config_choices

cuda_only = needs_cuda("CUDA graphs need a CUDA device")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("data.static_shapes=false", "optim.cuda_graph=true"), "per batch shape; set data.static_shapes=true"),
        (("data.static_shapes=true", "optim.cuda_graph=true"), "needs a CUDA device; this run is on cpu"),
        (("data.static_shapes=false", "optim.compile=true"), "per batch shape; set data.static_shapes=true"),
    ],
)
def test_misconfigured_runs_fail_before_training(overrides, message, packed):
    """Refused when the run is built (before data loads) where the config tells, else when fitting starts."""
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match=message):
        datamodule, module = build(compose_config("data.subset=300", *overrides))
        trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 0


def test_the_same_refusal_holds_when_a_trainer_is_built_by_hand(packed):
    """A module built for one setting and fitted by a Trainer that breaks it: the task's own check refuses."""
    datamodule, module = build(compose_config("data.subset=300", "data.static_shapes=true", "optim.cuda_graph=true"))
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match="needs a CUDA device; this run is on cpu"):
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


def test_each_bucket_shape_has_its_own_graph(datamodule_factory):
    """With static shapes and bucketing, batches of one bucket share a graph; other buckets get their own."""
    datamodule = datamodule_factory(subset=2000, batch_size=64, static_shapes=True, bucketing=True)
    by_shape = collections.defaultdict(list)
    for raw in datamodule.train_dataloader():
        by_shape[raw[1]].append(datamodule.on_after_batch_transfer(raw, 0))
    assert set(by_shape) == set(datamodule.pad_sizes) and len(by_shape) == 6
    signatures = {n: {signature(batch) for batch in batches} for n, batches in by_shape.items()}
    assert all(len(s) == 1 for s in signatures.values())  # one graph per bucket...
    assert len(set.union(*signatures.values())) == 6  # ...and a different one for each


def dense_choices() -> list[tuple[str, ...]]:
    """The configs whose model runs on the dense backend, the only one optim.cuda_graph captures."""
    model = lambda choice: OmegaConf.to_container(compose_config(*choice).model, resolve=True)  # noqa: E731
    return [choice for choice in config_choices() if "dense" in model_class(model(choice)).backends]


@pytest.mark.parametrize("choice", dense_choices(), ids=" ".join)
def test_every_config_steps_without_host_synchronisation(choice, packed):
    """A CUDA graph cannot capture a step that waits for the host (`.item()`, data-dependent shapes).

    Fake tensors carry shapes but no values, so they raise on exactly those; this checks on the CPU
    what capture needs, for the whole captured step (forward, loss, backward, clipping) of every
    dense model, message and experiment.
    """
    datamodule, module = build(compose_config(*choice, "data.subset=300", "data.static_shapes=true"))
    batch = datamodule.batch(datamodule.split.train[:16])
    with FakeTensorMode(allow_non_fake_inputs=True):
        loss = module._forward_backward(batch, backward=torch.Tensor.backward)
    assert isinstance(loss, FakeTensor) and loss.shape == ()
    assert all(isinstance(p.grad, FakeTensor) for p in module.parameters())


def test_bucketed_bf16_step_runs_without_host_synchronisation(packed):
    """The same check for the fast path: bucket-shaped batches under bf16 autocast (float32 islands included)."""
    datamodule, module = build(
        compose_config("data.subset=300", "data.static_shapes=true", "data.bucketing=true", "data.batch_size=16")
    )
    index, n = next(iter(datamodule.train_dataloader()))
    batch = datamodule.on_after_batch_transfer((index, n), 0)
    assert n < datamodule.dataset.n_max or batch.mask[:, -1].any()
    with FakeTensorMode(allow_non_fake_inputs=True), torch.autocast("cpu", dtype=torch.bfloat16):
        loss = module._forward_backward(batch, backward=torch.Tensor.backward)
    assert isinstance(loss, FakeTensor) and loss.dtype == torch.float32


def test_the_fake_tensor_check_catches_a_host_synchronisation(packed):
    datamodule, module = build(compose_config("data.subset=300", "data.static_shapes=true"))
    forward = module.model.forward
    module.model.forward = lambda batch: forward(batch) * (forward(batch).sum().item() > 0)
    with pytest.raises(DataDependentOutputException), FakeTensorMode(allow_non_fake_inputs=True):
        module._forward_backward(datamodule.batch(range(16)), backward=torch.Tensor.backward)


def _train_steps(cuda_graph: bool, move_at: int | None = None, bucketed_bf16: bool = False) -> list[torch.Tensor]:
    """12 plain training steps; at step `move_at` the module goes to the CPU and back (new storage).

    `bucketed_bf16`: batches of two bucket shapes, alternating, under bf16 autocast (two graphs,
    each warmed up, captured and replayed twice); otherwise batches of 64 molecules padded to 29 atoms.
    """
    overrides = ["data.subset=2000", "data.static_shapes=true", "matmul_precision=highest"]
    overrides += [f"optim.cuda_graph={cuda_graph}", f"data.bucketing={bucketed_bf16}"]
    overrides += [f"data.batch_size={32 if bucketed_bf16 else 64}"]  # bucketed: 6 or more batches of each shape
    datamodule, module = build(compose_config(*overrides))
    module = module.cuda()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    if bucketed_bf16:
        by_shape = collections.defaultdict(list)
        for index, n in datamodule.train_dataloader():
            by_shape[n].append((index, n))
        first, second = sorted(by_shape.values(), key=len)[-2:]
        assert len(first) >= 6
        batches = [b for pair in zip(first[:6], second[:6]) for b in pair]
    else:
        batches = [(torch.from_numpy(datamodule.split.train[i * 64 : (i + 1) * 64].copy()), 29) for i in range(12)]
    losses = []
    for i, (index, n) in enumerate(batches):
        if i == move_at:
            module.cpu().cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bucketed_bf16):
            loss = module.compute_gradients(datamodule.dataset.gather(index.cuda(), n), optimizer)
        losses.append(loss.clone())  # the graph's output is overwritten by its next replay
        optimizer.step()
    if cuda_graph:
        assert module._graph_step.captured == (2 if bucketed_bf16 else 1)
    return losses + [p.detach().clone() for p in module.parameters()]


@cuda_only
@pytest.mark.parametrize(
    ("move_at", "bucketed_bf16"),
    [(None, False), (6, False), (None, True)],
    ids=["in place", "parameters moved after capture", "two bucket shapes under bf16 autocast"],
)
def test_captured_step_trains_like_the_eager_step(move_at, bucketed_bf16, packed):
    eager, graphed = _train_steps(False, move_at, bucketed_bf16), _train_steps(True, move_at, bucketed_bf16)
    tolerance = {"rtol": 1e-3, "atol": 1e-4} if bucketed_bf16 else {"rtol": 1e-4, "atol": 1e-6}
    for a, b in zip(eager, graphed):
        torch.testing.assert_close(a, b, **tolerance)


class ParameterChanges(L.Callback):
    """Whether every parameter moved during each training epoch; how often each batch shape came."""

    def __init__(self):
        self.every_parameter_moved: list[bool] = []
        self.shapes: collections.Counter = collections.Counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.shapes[tuple(batch.x.shape)] += 1

    def on_train_epoch_start(self, trainer, module) -> None:
        self._before = [p.detach().clone() for p in module.parameters()]

    def on_train_epoch_end(self, trainer, module) -> None:
        moved = [not torch.equal(a, p) for a, p in zip(self._before, module.parameters())]
        self.every_parameter_moved.append(all(moved))


def _lightning_fit(cuda_graph: bool, *overrides: str, precision: str = "32-true"):
    datamodule, module = build(
        compose_config(
            "data.subset=2000", "data.static_shapes=true", f"optim.cuda_graph={cuda_graph}", "data.batch_size=64",
            "matmul_precision=highest", *overrides,
        )
    )  # fmt: skip
    changes, history = ParameterChanges(), MetricHistory()
    trainer = L.Trainer(
        accelerator="gpu", devices=1, max_epochs=3, logger=False, enable_checkpointing=False,
        callbacks=[changes, history], precision=precision,
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    return module, trainer, changes, history.val_mae, len(datamodule.train_dataloader())


@cuda_only
@pytest.mark.parametrize(
    ("overrides", "precision"),
    [((), "32-true"), (("data.bucketing=true",), "bf16-mixed")],
    ids=["one shape", "one graph per bucket, bf16"],
)
def test_lightning_fit_with_cuda_graph(overrides, precision, packed):
    """Validation after every epoch: Lightning clears `.grad` before it, and training must go on."""
    module, trainer, changes, val_mae, steps_per_epoch = _lightning_fit(True, *overrides, precision=precision)
    # A shape is captured at its fourth step (three eager warm-up steps first).
    assert module._graph_step.captured == sum(count > 3 for count in changes.shapes.values())
    assert module._graph_step.captured >= (4 if overrides else 1)
    assert trainer.global_step == 3 * steps_per_epoch
    assert changes.every_parameter_moved == [True, True, True]
    _, _, _, eager_val_mae, _ = _lightning_fit(False, *overrides, precision=precision)
    np.testing.assert_allclose(val_mae, eager_val_mae, rtol=0.05)
