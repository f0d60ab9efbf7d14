"""The debug configs of train.py: overfit two batches, one batch per stage, the profiler."""

import time

import pytest

from tests.conftest import train

pytestmark = pytest.mark.slow


def test_debug_overfit_reaches_low_training_loss(tmp_path, packed):
    start = time.perf_counter()
    results = train(tmp_path / "run", "debug=overfit", "data.subset=200")
    assert time.perf_counter() - start < 300
    assert results["final_train_loss"] < 0.05


@pytest.mark.parametrize("debug", ["fast", "profile"])
def test_other_debug_configs(debug, tmp_path, packed):
    results = train(tmp_path / "run", f"debug={debug}", "data.subset=1000")
    assert results["epochs"] <= 1
    if debug == "profile":
        assert (tmp_path / "run" / "fit-profile.txt").read_text().count("Action") >= 1
