"""mpnn-diagnose (scripts/diagnose.py): the sanity checks of every model config, run as users run them."""

import json

import pytest

from tests.conftest import REPO, run_script

pytestmark = pytest.mark.slow


def model_configs():
    return sorted(path.stem for path in (REPO / "conf" / "model").glob("*.yaml"))


@pytest.mark.parametrize("model", model_configs())
def test_diagnose_every_model(model, packed):
    result = run_script(
        "scripts/diagnose.py", f"model={model}", "target=mu", "data.subset=500", "trainer.accelerator=cpu", "--json"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for key in (
        "init_loss",
        "mean_predictor_mae",
        "input_independent_mae",
        "overfit_one_batch_loss",
        "batch_independence",
    ):
        assert key in report
    assert 0.5 < report["init_loss"] < 2.0
    assert report["overfit_one_batch_loss"] < 0.05
    assert report["batch_independence"] is True
    assert report["input_independent_mae"] > report["real_input_mae"]
