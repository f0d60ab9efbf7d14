"""The Lightning module: loss at initialisation, scaler, the optimisation step and schedules."""

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir

from mpnn.training.run import build
from tests.conftest import DATA_ROOT, REPO


def compose_config(*overrides: str):
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.data_dir={DATA_ROOT}", "logger=none", *overrides])
    return cfg


@pytest.mark.parametrize("model", ["edge_net", "ggnn", "pair_message"])
def test_normalised_loss_at_initialisation_is_near_one(model, packed):
    datamodule, module = build(compose_config(f"model={model}", "data.subset=1000"))
    batch = datamodule.batch(datamodule.split.train[:256])
    with torch.no_grad():
        loss, _ = module.loss(batch)
    assert 0.7 < loss.item() < 1.4


def test_scaler_is_fitted_on_the_training_split_only(packed):
    datamodule, module = build(compose_config("data.subset=1000", "target=homo"))
    train_y = datamodule.dataset.y[torch.from_numpy(datamodule.split.train)]
    all_y = datamodule.dataset.y[torch.tensor(datamodule.split.train.tolist() + datamodule.split.val.tolist())]
    assert module.model.scaler.mean.item() == pytest.approx(train_y.mean().item())
    assert module.model.scaler.mean.item() != pytest.approx(all_y.mean().item(), rel=1e-9)


def test_unknown_schedule_is_rejected(packed):
    with pytest.raises(ValueError, match="valid: constant, linear_decay, plateau"):
        build(compose_config("data.subset=100", "optim.schedule=cosine"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=-1", "optim.lr=-1 must be positive"),
        ("optim.decay_start=1.5", r"optim.decay_start=1.5 must be in \[0, 1\]"),
        ("optim.final_lr_factor=0", r"optim.final_lr_factor=0 must be in \(0, 1\]"),
    ],
)
def test_optimiser_settings_out_of_range_are_rejected(override, message, packed):
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
    trainer, module = fit(2, "optim.schedule=linear_decay", "optim.final_lr_factor=0.05")
    assert trainer.global_step == 2 * 8  # every optimiser step counted
    assert module.optimizers().param_groups[0]["lr"] == pytest.approx(1e-3 * 0.05)


def test_plateau_schedule_steps_once_per_validation(packed):
    trainer, module = fit(3, "optim.schedule=plateau")
    scheduler = module.lr_schedulers()
    assert scheduler.last_epoch == 3  # the sanity-check validation does not count
    assert scheduler.best == pytest.approx(trainer.callback_metrics["val/mae"].item(), rel=0.5)


def test_bf16_autocast_trains_with_float32_weights(packed):
    trainer, module = fit(2, "optim.schedule=constant", precision="bf16-mixed")
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
