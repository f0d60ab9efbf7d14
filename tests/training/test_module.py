"""The Lightning module's recipe checks: loss at initialisation, schedules."""

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
