"""The debug configs of train.py: overfit two batches, one batch per stage, the profiler."""

import time

import pytest

from tests.conftest import train

pytestmark = pytest.mark.slow


def test_debug_overfit_reaches_low_training_loss(tmp_path, packed):
    start = time.perf_counter()
    results = train(tmp_path / "run", "debug=overfit", "data.subset=200")
    assert results["final_train_loss"] < 0.05
    assert time.perf_counter() - start < 600  # a quick check: about 3 minutes on 2 idle cores


def test_debug_overfit_verdict_for_schnet(tmp_path, packed):
    """The same verdict for PyG's SchNet, which reads only atomic numbers and positions. Smaller than
    the paper's (32 features and filters, 2 interactions, 25 Gaussians, cutoff 4 A instead of 128, 6,
    50, 10 A) and 150 epochs instead of 300, for CI time: its loss falls below 0.01 by epoch 100 and
    is 5e-5 at epoch 150 (seed 0)."""
    small = ("model=schnet", "model.hidden_channels=32", "model.num_filters=32", "model.num_interactions=2")
    small += ("model.num_gaussians=25", "model.cutoff=4.0", "trainer.max_epochs=150")
    results = train(tmp_path / "run", "debug=overfit", "data.subset=200", *small)
    assert results["model"] == "schnet" and results["epochs"] == 150
    assert results["final_train_loss"] < 0.05


@pytest.mark.parametrize("debug", ["fast", "profile"])
def test_other_debug_configs(debug, tmp_path, packed):
    results = train(tmp_path / "run", f"debug={debug}", "data.subset=1000")
    assert results["epochs"] <= 1
    if debug == "profile":
        assert (tmp_path / "run" / "fit-profile.txt").read_text().count("Action") >= 1
