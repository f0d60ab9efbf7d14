"""mpnn-compare (scripts/compare.py) on real sweeps: seeds, ensembles, training-set sizes, the paper's search."""

import json
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_script

pytestmark = pytest.mark.slow


def _multirun(sweep: Path, *overrides: str) -> list[dict]:
    """A real Hydra multirun of one-epoch CPU runs; their results.json, in job order."""
    args = ("-m", *overrides, "trainer.max_epochs=1", "trainer.accelerator=cpu", f"hydra.sweep.dir={sweep}")
    result = run_script("train.py", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(r.read_text()) for r in sorted(sweep.glob("*/results.json"))]


def _target_of(run_dir: Path) -> str | None:
    results = run_dir / "results.json"
    return json.loads(results.read_text())["target"] if results.exists() else None


def test_multirun_sweep_then_compare(tmp_path, packed):
    """A real Hydra multirun over two targets and two seeds, then the comparison table and chart."""
    sweep = tmp_path / "sweep"
    runs = _multirun(sweep, "target=mu,homo", "seed=0,1", "data.subset=300", "logger=csv")
    assert sorted((r["target"], r["seed"]) for r in runs) == [("homo", 0), ("homo", 1), ("mu", 0), ("mu", 1)]

    chart = tmp_path / "ratios.png"
    curves, sizes = tmp_path / "curves.png", tmp_path / "sizes.png"
    settings = tmp_path / "settings.png"
    compared = run_script(
        "scripts/compare.py", str(sweep), "--out", str(chart), "--curves", str(curves), "--sizes", str(sizes),
        "--settings", str(settings),
    )  # fmt: skip
    assert compared.returncode == 0, compared.stderr
    lines = compared.stdout.splitlines()
    homo = next(line for line in lines if line.startswith("homo"))
    assert " eV " in homo and "0.99" in homo  # unit and the paper's ratio
    per_target = [statistics.mean(r["test_error_ratio"] for r in runs if r["target"] == t) for t in ("mu", "homo")]
    mean_line = f"mean error ratio over 2 targets: {statistics.mean(per_target):.2f}"
    assert f"{mean_line} (paper enn-s2s on the same targets: {(0.30 + 0.99) / 2:.2f})" in compared.stdout
    mu_mae = [r["test_mae"] for r in runs if r["target"] == "mu"]
    summary = next(line for line in lines if line.startswith("mu       2 seeds"))
    assert f"test MAE {statistics.mean(mu_mae):.4g} ± {statistics.stdev(mu_mae):.2g} D" in summary
    saved = [np.load(d / "test_predictions.npz") for d in sorted(sweep.iterdir()) if _target_of(d) == "mu"]
    assert np.array_equal(saved[0]["index"], saved[1]["index"])
    ensemble = np.abs((saved[0]["prediction"] + saved[1]["prediction"]) / 2 - saved[0]["target"]).mean()
    # |mean error| <= mean |error|, molecule by molecule (float32 predictions: a relative tolerance)
    assert ensemble <= statistics.mean(mu_mae) * (1 + 1e-6)
    ensemble_line = lines[lines.index(summary) + 1]
    expected = f"ensemble of 2: test MAE {ensemble:.4g} D  error ratio {ensemble / 0.1:.3g} (paper ens5: 0.20)"
    assert expected in ensemble_line
    assert chart.stat().st_size > 1000 and curves.stat().st_size > 1000
    assert not sizes.exists()  # one training-set size only: nothing to draw
    assert not settings.exists()  # only the seed differs between runs of a target: no setting to draw
    missing = run_script("scripts/compare.py", str(tmp_path / "nothing"))
    assert missing.returncode != 0 and "no results.json under" in missing.stderr


def test_training_set_size_sweep(tmp_path, packed):
    """data.train_size shrinks the training split only; compare.py draws error against training size."""
    sweep = tmp_path / "sweep"
    runs = _multirun(sweep, "target=mu", "data.train_size=100,400", "data.subset=600", "logger=none")
    assert sorted(r["molecules"]["train"] for r in runs) == [100, 400]
    assert {(r["molecules"]["val"], r["molecules"]["test"]) for r in runs} == {(46, 46)}
    sizes = tmp_path / "sizes.png"
    charts = ("--out", str(tmp_path / "r.png"), "--curves", str(tmp_path / "c.png"), "--sizes", str(sizes))
    charts += ("--settings", str(tmp_path / "s.png"))
    compared = run_script("scripts/compare.py", str(sweep), *charts)
    assert compared.returncode == 0, compared.stderr
    assert str(sizes) in compared.stdout and sizes.stat().st_size > 1000
    assert sorted(pd.read_csv(sweep / "runs.csv")["train_molecules"]) == [100, 400]
    too_large = run_script("train.py", "data.train_size=600", "data.subset=600", f"hydra.run.dir={tmp_path / 'x'}")
    assert too_large.returncode != 0 and "data.train_size=600 is out of range; use 1..508" in too_large.stderr


def test_paper_random_search_selects_on_validation(tmp_path, packed):
    """hparams_search=paper_random_search: Optuna samples the paper's ranges and minimises validation MAE."""
    from omegaconf import OmegaConf

    sweep = tmp_path / "search"
    search = ("hparams_search=paper_random_search", "hydra.sweeper.n_trials=3", "target=mu", "data.subset=300")
    runs = _multirun(sweep, *search, "logger=none")
    run_dirs = sorted(path.parent for path in sweep.glob("*/results.json"))
    configs = [OmegaConf.load(run_dir / "config_resolved.yaml") for run_dir in run_dirs]
    assert len(runs) == 3
    for config in configs:  # the paper's ranges
        assert 3 <= config.model.steps <= 8 and 1 <= config.model.readout.steps <= 12
        assert 1e-5 <= config.optim.lr <= 5e-4 and 0.01 <= config.schedule.final_lr_factor <= 1
        assert 0.1 <= config.schedule.decay_start <= 0.9 and config.schedule._target_.endswith("linear_decay")
    assert len({config.optim.lr for config in configs}) == 3  # sampled per trial
    # The sweeper minimised what train.py returns: the best validation MAE, not the test MAE.
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == pytest.approx(min(run["best_val_mae"] for run in runs), rel=1e-6)

    compared = run_script("scripts/compare.py", str(sweep))
    assert compared.returncode == 0, compared.stderr
    for chart in ("error_ratios.png", "learning_curves.png", "settings.png"):  # by default next to the runs
        assert str(sweep / chart) in compared.stdout and (sweep / chart).stat().st_size > 1000
    table = pd.read_csv(sweep / "runs.csv").sort_values("run_dir")
    assert list(table["run_dir"]) == [str(run_dir) for run_dir in run_dirs]
    assert list(table["best_val_mae"]) == pytest.approx([run["best_val_mae"] for run in runs])
    assert list(table["optim.lr"]) == pytest.approx([config.optim.lr for config in configs])
    assert list(table["model.steps"]) == [config.model.steps for config in configs]
    lines = compared.stdout.splitlines()
    chosen = min(range(3), key=lambda i: runs[i]["best_val_mae"])
    selected = lines[lines.index("selected on validation MAE, per target (its test MAE is the one to report):") + 1]
    assert str(run_dirs[chosen]) in selected and f"test MAE {runs[chosen]['test_mae']:.4g} D" in selected
    assert f"optim.lr={configs[chosen].optim.lr:.4g}" in selected and "model.steps=" in selected
    assert "seeds" not in compared.stdout  # trials differ in hyperparameters, not only in the seed


def test_a_search_with_storage_continues_in_a_later_sweep(tmp_path, packed):
    """hydra.sweeper.storage: a second sweep adds its trials to the first one's study."""
    import optuna
    from omegaconf import OmegaConf

    storage = f"sqlite:///{tmp_path / 'mu_search.db'}"
    search = ("hparams_search=paper_random_search", "target=mu", "data.subset=300", "logger=none")
    first = _multirun(tmp_path / "a", *search, "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage={storage}")
    later = _multirun(
        tmp_path / "b", *search, "hydra.sweeper.n_trials=1", f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.sampler.seed=1",
    )  # fmt: skip
    study = optuna.load_study(study_name="mu", storage=storage)
    assert len(study.trials) == 3
    assert sorted(t.value for t in study.trials) == sorted(r["best_val_mae"] for r in first + later)
    assert len({t.params["optim.lr"] for t in study.trials}) == 3  # the later sweep sampled new points
    best = OmegaConf.load(tmp_path / "b" / "optimization_results.yaml")
    assert best.best_value == pytest.approx(min(r["best_val_mae"] for r in first + later), rel=1e-6)
