"""backend=dense and backend=pyg are one pipeline: the same run gives the same numbers on both."""

import pytest

from tests.conftest import run_script, train

pytestmark = pytest.mark.slow


def test_a_seeded_run_gives_the_same_validation_mae_on_both_backends(tmp_path, packed):
    """2 epochs on 2,000 molecules, CPU, same seed: validation MAE within 1e-4 (relative) on both.

    In float64: the backends sum in different orders, and early training amplifies float32's
    rounding differences (1e-7 after the first step) to 1e-3 within ten steps."""
    settings = (
        "model=edge_net", "target=mu", "data.subset=2000", "trainer.max_epochs=2", "logger=csv",
        "trainer.precision=64-true",
    )  # fmt: skip
    dense = train(tmp_path / "dense", *settings, "backend=dense")
    pyg = train(tmp_path / "pyg", *settings, "backend=pyg")
    assert dense["backend"] == "dense" and pyg["backend"] == "pyg"
    for a, b in zip(dense["val_mae_per_epoch"], pyg["val_mae_per_epoch"], strict=True):
        assert abs(a - b) <= 1e-4 * a
    assert pyg["test_mae"] == pytest.approx(dense["test_mae"], rel=1e-4)
    assert pyg["test_error_ratio"] == pytest.approx(pyg["test_mae"] / 0.1, rel=1e-6)


def test_a_model_that_lacks_a_backend_is_refused_by_name(tmp_path):
    result = run_script("train.py", "model=schnet", "backend=dense", f"hydra.run.dir={tmp_path / 'run'}", "logger=none")
    assert result.returncode != 0
    assert "SchNetModel (mpnn.models.schnet.SchNetModel) supports backend=pyg only, not backend=dense" in result.stderr
    unknown = run_script("train.py", "backend=jax", f"hydra.run.dir={tmp_path / 'other'}", "logger=none")
    assert unknown.returncode != 0 and "unknown backend='jax'; valid: auto, dense, pyg" in unknown.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before any work
