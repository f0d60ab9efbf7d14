"""The Lightning module: loss at initialisation, scaler fitted at setup, the optimisation step and schedules."""

import lightning as L
import pytest
import torch

from mpnn.cli import compose
from mpnn.training.build import build
from tests.conftest import DATA_ROOT


def compose_config(*overrides: str):
    return compose([f"paths.data_dir={DATA_ROOT}", "logger=none", *overrides])


@pytest.mark.parametrize("model", ["edge_net", "ggnn", "pair_message"])
@pytest.mark.parametrize("backend", ["dense", "pyg"])
def test_normalised_loss_at_initialisation_is_near_one(model, backend, packed):
    datamodule, module = build(compose_config(f"model={model}", f"backend={backend}", "data.subset=1000"))
    batch = datamodule.batch(datamodule.split.train[:256])
    with torch.no_grad():
        loss, _ = module.loss(batch)
    assert 0.7 < loss.item() < 1.4


@pytest.mark.parametrize("target", ["homo", "u0"])
def test_scaler_is_fitted_on_the_training_split_only(target, packed):
    datamodule, module = build(compose_config("data.subset=1000", f"target={target}"))
    scaler = module.model.scaler
    y, counts = datamodule.training_targets()
    residual = y - counts @ scaler.atomref.numpy()
    assert scaler.mean.item() == pytest.approx(residual.mean())
    assert scaler.std.item() == pytest.approx(residual.std(ddof=1))
    assert len(y) == len(datamodule.split.train)
    if target == "u0":  # extensive: atomrefs remove almost all of the total energy
        assert module.spec.recipe == "extensive" and scaler.std.item() < 0.01 * y.std()
    else:
        assert module.spec.recipe == "intensive" and scaler.atomref.abs().sum() == 0
    # Fitted again in setup("fit"), from the data module a Trainer hands it: the same numbers.
    before = {name: buffer.clone() for name, buffer in scaler.named_buffers()}
    scaler.mean.fill_(0)
    module.fit_scaler(datamodule)
    for name, buffer in scaler.named_buffers():
        assert torch.equal(buffer, before[name]), name


def test_unknown_schedule_lists_the_valid_ones():
    from hydra.errors import MissingConfigException

    valid = r"(?s)Could not find .schedule/cosine.*constant.*linear_decay.*plateau"
    with pytest.raises(MissingConfigException, match=valid):
        compose_config("schedule=cosine")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=-1", "optim.lr=-1 must be positive"),
        ("optim.lr=fast", "optim.lr='fast' must be a number"),
        ("trainer.max_epochs=three", "trainer.max_epochs='three' must be a whole number"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0 must be a whole number >= 1"),
        ("data.batch_size=big", "data.batch_size='big' must be a whole number"),
        ("seed=-1", "seed=-1 must be a whole number >= 0"),
    ],
)
def test_bad_numbers_are_refused_by_name_before_work_starts(override, message):
    with pytest.raises(ValueError, match=message):
        build(compose_config("data.subset=100", override))


def fit(epochs: int, *overrides: str, precision: str = "32-true"):
    """Train through the real Lightning Trainer on CPU; 254 training molecules, 8 batches per epoch."""
    datamodule, module = build(compose_config("data.subset=300", "data.batch_size=32", *overrides))
    trainer = L.Trainer(
        accelerator="cpu",
        precision=precision,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=datamodule)
    return trainer, module


def test_linear_decay_reaches_the_final_rate_on_the_last_step(packed):
    trainer, module = fit(2, "schedule=linear_decay", "schedule.final_lr_factor=0.05")
    assert trainer.global_step == 2 * 8  # every optimiser step counted
    assert module.optimizers().param_groups[0]["lr"] == pytest.approx(1e-3 * 0.05)


def test_step_decay_halves_after_every_period_of_steps(packed):
    trainer, module = fit(2, "schedule=step_decay", "schedule.every_steps=6")
    assert trainer.global_step == 16  # 16 steps: halved after steps 6 and 12
    assert module.optimizers().param_groups[0]["lr"] == pytest.approx(1e-3 / 4)
    with pytest.raises(ValueError, match=r"schedule.every_steps=0 must be a whole number >= 1"):
        fit(1, "schedule=step_decay", "schedule.every_steps=0")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("schedule.decay_start=1.5", r"schedule.decay_start=1.5 must be in \[0, 1\]"),
        ("schedule.final_lr_factor=0", r"schedule.final_lr_factor=0 must be in \(0, 1\]"),
    ],
)
def test_schedule_settings_out_of_range_are_rejected(override, message, packed):
    with pytest.raises(ValueError, match=message):
        fit(1, override)


def test_plateau_schedule_steps_once_per_validation(packed):
    trainer, module = fit(3, "schedule=plateau")
    scheduler = module.lr_schedulers()
    assert scheduler.last_epoch == 3  # the sanity-check validation does not count
    assert scheduler.best == pytest.approx(trainer.callback_metrics["val/mae"].item(), rel=0.5)


def test_optimizer_is_a_config_choice(packed):
    _, module = fit(1, "optim=adamw", "schedule=constant")
    optimizer = module.optimizers().optimizer
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.param_groups[0]["weight_decay"] == 0.01


def test_bf16_autocast_trains_with_float32_weights(packed):
    trainer, module = fit(2, "schedule=constant", precision="bf16-mixed")
    assert trainer.global_step == 16 and trainer.callback_metrics["train/loss"].isfinite()
    assert all(p.dtype == torch.float32 for p in module.parameters())
    assert module.model.scaler.mean.dtype == torch.float64  # the scaler keeps its precision


def test_gradients_are_clipped_to_the_configured_norm(packed):
    def gradient_norm(clip: str) -> float:
        datamodule, module = build(compose_config("data.subset=300", f"optim.gradient_clip_val={clip}"))
        module._forward_backward(datamodule.batch(datamodule.split.train[:64]), torch.Tensor.backward)
        return torch.nn.utils.get_total_norm([p.grad for p in module.parameters()]).item()

    assert gradient_norm("null") > 0.01
    assert gradient_norm("0.001") == pytest.approx(0.001, rel=1e-3)


def test_cuda_graph_refuses_inductor_cuda_graphs(packed):
    with pytest.raises(ValueError, match="compile_mode=default"):
        build(compose_config("data.subset=100", "optim.cuda_graph=true", "optim.compile_mode=reduce-overhead"))


def test_compiled_paths_need_the_dense_backend(packed):
    with pytest.raises(ValueError, match="use them with backend=dense"):
        build(compose_config("data.subset=100", "backend=pyg", "optim.compile=true"))
