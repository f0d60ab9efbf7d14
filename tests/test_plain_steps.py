"""PlainAdam, the Adam steps the diagnostics and benchmarks take outside a Trainer: it learns, its `inspect`
sees the gradients before clipping while Adam gets the clipped ones, and a module step clips as the module
is configured."""

import pytest
import torch

from mpnn.cli import compose
from mpnn.plain_steps import PlainAdam
from mpnn.training.build import build
from tests.conftest import DATA_ROOT


def linear_problem(scale: float = 1.0) -> tuple[torch.nn.Linear, torch.Tensor, torch.Tensor]:
    """A linear model and 64 points of a noiseless linear map (times `scale`) it can fit exactly."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=generator)
    y = scale * x @ torch.randn(5, 1, generator=generator)
    torch.manual_seed(0)
    return torch.nn.Linear(5, 1), x, y


def mse(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.mse_loss(model(x), y)


def total_norm(parameters) -> float:
    return torch.nn.utils.get_total_norm([p.grad for p in parameters]).item()


def test_steps_lower_the_loss_and_return_it_detached():
    model, x, y = linear_problem()
    optimizer = PlainAdam(model.parameters(), lr=0.1)
    losses = [optimizer.step(mse, model, x, y) for _ in range(100)]
    assert not losses[0].requires_grad
    assert losses[-1] < 0.01 * losses[0]


@pytest.mark.parametrize("clip", [1.0, None])
def test_inspect_sees_the_unclipped_gradients_and_adam_steps_on_the_clipped_ones(clip):
    model, x, y = linear_problem(scale=100.0)  # gradients far above the clip
    optimizer = PlainAdam(model.parameters(), clip=clip)
    seen = []
    loss = optimizer.step(
        mse, model, x, y, inspect=lambda loss: seen.append((loss.item(), total_norm(model.parameters())))
    )
    ((inspected_loss, unclipped),) = seen
    assert inspected_loss == loss.item() and unclipped > 100
    used = min(unclipped, clip) if clip else unclipped
    assert total_norm(model.parameters()) == pytest.approx(used, rel=1e-5)
    # Adam's first moment after one step: (1 - beta1) times the gradient it was given.
    moments = [optimizer.optimizer.state[p]["exp_avg"] for p in model.parameters()]
    assert torch.linalg.vector_norm(torch.cat([m.flatten() for m in moments])).item() == pytest.approx(0.1 * used)


def test_module_step_trains_a_module_with_its_own_clipping(packed):
    clip = 0.5  # below the default model's initial gradient norm on these molecules
    cfg = compose([f"paths.data_dir={DATA_ROOT}", "logger=none", "data.subset=300", f"optim.gradient_clip_val={clip}"])
    datamodule, module = build(cfg)
    batch = datamodule.batch(datamodule.split.train[:16])
    optimizer = PlainAdam(module.parameters())
    losses, norms = [], []
    for _ in range(10):
        losses.append(optimizer.module_step(module, batch).item())
        norms.append(total_norm(p for p in module.parameters() if p.grad is not None))
    assert losses[-1] < 0.9 * losses[0]
    assert norms[0] == pytest.approx(clip, rel=1e-4) and max(norms) <= clip * (1 + 1e-5)
