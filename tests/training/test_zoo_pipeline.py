"""PyG's SchNet, DimeNet++ and ViSNet through the whole pipeline, as users run it, with no model named
in any caller: a gpu_pool multirun with offline W&B and EMA, results.json, resume after a kill,
mpnn-compare next to edge_net with each model's published MAE, mpnn-errors, and predictions on XYZ
from an ensemble of the three. Small model sizes on a few hundred real molecules (CPU CI); the
papers' sizes are the acceptance runs recorded in docs/MODELS.md."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mpnn.published import PUBLISHED_MAE
from mpnn.training.wandb_offline import offline_summary
from tests.conftest import REPO, kill_after_first_checkpoint, run_script, train

RUN = ("target=u0", "data.subset=300", "trainer.max_epochs=1", "trainer.accelerator=cpu")
# Keys every zoo model has: one sweep shrinks all of them (SchNet keeps 6 interactions, ViSNet 9 layers).
SMALL_ZOO = ("model.hidden_channels=16", "model.cutoff=4.0")
# The same in a sweep over models: a plain model.* override is checked against the default model
# (edge_net) before the sweep; a one-value choice() is applied per job.
SWEPT_SMALL_ZOO = ("model.hidden_channels=choice(16)", "model.cutoff=choice(4.0)")
# DimeNet++ builds its spherical basis with sympy: 7 x 6 functions take 20 s and more on 2 cores.
SMALL_DIMENET = (
    "model=dimenet_pp", *SMALL_ZOO, "model.num_blocks=2", "model.int_emb_size=16", "model.out_emb_channels=32",
    "model.num_spherical=3", "model.num_radial=3",
)  # fmt: skip
U0_CHEMICAL_ACCURACY = 0.043  # eV


@pytest.fixture(scope="module")
def zoo_runs(tmp_path_factory, packed) -> dict[str, Path]:
    """Run directories of u0 runs: schnet and visnet from one gpu_pool multirun (offline W&B, EMA),
    dimenet_pp from train.py (EMA), edge_net from train.py (its defaults)."""
    root = tmp_path_factory.mktemp("zoo")
    sweep = root / "sweep"
    args = ("-m", "hydra/launcher=gpu_pool", "hydra.launcher.gpus=[0,1]", "model=schnet,visnet", *SWEPT_SMALL_ZOO)
    result = run_script("train.py", *args, *RUN, "callbacks=ema", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    assert "2 of 2 jobs completed in" in result.stdout + result.stderr
    runs = {"schnet": sweep / "0-u0-schnet", "visnet": sweep / "1-u0-visnet"}
    train(root / "dimenet_pp", *SMALL_DIMENET, *RUN, "callbacks=ema")
    train(root / "edge_net", "model=edge_net", *RUN, "logger=none")
    return {**runs, "dimenet_pp": root / "dimenet_pp", "edge_net": root / "edge_net"}


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("model", ["schnet", "dimenet_pp", "visnet"])
def test_each_zoo_run_reports_like_edge_net(zoo_runs, model):
    """results.json: the model's config name, the extensive recipe, a finite MAE and its error ratio;
    W&B (offline) got the same numbers; EMA's averaged weights were tested, the raw ones kept."""
    run_dir = zoo_runs[model]
    results = _results(run_dir)
    assert results["model"] == model and results["backend"] == "pyg" and results["recipe"] == "extensive"
    assert math.isfinite(results["test_mae"]) and results["test_mae"] > 0
    assert results["test_error_ratio"] == pytest.approx(results["test_mae"] / U0_CHEMICAL_ACCURACY, rel=1e-5)
    summary = offline_summary(run_dir)
    assert summary["test/mae"] == pytest.approx(results["test_mae"], rel=1e-6)
    assert summary["results/test_error_ratio"] == pytest.approx(results["test_error_ratio"], rel=1e-6)

    checkpoint = torch.load(run_dir / results["best_checkpoint"], map_location="cpu", weights_only=True)
    averaged, raw = checkpoint["state_dict"], checkpoint["current_model_state"]
    assert any(not torch.equal(averaged[k], raw[k]) for k in raw if k.startswith("model.net."))
    saved = np.load(run_dir / "test_predictions.npz")  # predicted with the tested (averaged) weights
    assert np.abs(saved["prediction"] - saved["target"]).mean() == pytest.approx(results["test_mae"], rel=1e-4)


@pytest.mark.slow
def test_compare_shows_zoo_rows_next_to_edge_net_with_published_maes(zoo_runs, tmp_path):
    charts = ("--out", str(tmp_path / "r.png"), "--curves", str(tmp_path / "c.png"))
    charts += ("--settings", str(tmp_path / "s.png"), "--csv", str(tmp_path / "runs.csv"))
    compared = run_script("scripts/compare.py", *map(str, zoo_runs.values()), *charts)
    assert compared.returncode == 0, compared.stderr
    lines = compared.stdout.splitlines()
    assert lines[0].split()[:4] == ["target", "model", "test", "MAE"] and "published" in lines[0]
    for model, run_dir in zoo_runs.items():
        row = next(line for line in lines if f"  {run_dir}" in line)
        fields = row.split()
        assert fields[:2] == ["u0", model]
        assert float(fields[2]) == pytest.approx(_results(run_dir)["test_mae"], rel=1e-3)
        known = PUBLISHED_MAE.get(model, {}).get("u0")
        assert fields[3] == (f"{known.mae:.4g}" if known else "-"), row
    assert PUBLISHED_MAE["schnet"]["u0"].mae == 0.012 and PUBLISHED_MAE["dimenet_pp"]["u0"].mae == 0.00632
    table = pd.read_csv(tmp_path / "runs.csv").set_index("model")
    assert sorted(table.index) == sorted(zoo_runs)
    assert table.loc["dimenet_pp", "published_mae"] == pytest.approx(0.00632)
    assert "SchNetPack" in table.loc["schnet", "published_source"]
    assert math.isnan(table.loc["edge_net", "published_mae"]) and math.isnan(table.loc["visnet", "published_mae"])
    assert (tmp_path / "r.png").stat().st_size > 1000


@pytest.mark.slow
def test_errors_of_a_zoo_run_name_its_published_mae(zoo_runs):
    run_dir = zoo_runs["schnet"]
    shown = run_script("scripts/errors.py", str(run_dir), "--top", "3")
    assert shown.returncode == 0, shown.stderr
    assert f"u0: test MAE {_results(run_dir)['test_mae']:.4g} eV" in shown.stdout
    assert "model schnet: published test MAE 0.012 eV (SchNet as benchmarked by SchNetPack" in shown.stdout
    assert "by heavy_atoms" in shown.stdout and (run_dir / "test_errors.png").stat().st_size > 1000
    visnet = run_script("scripts/errors.py", str(zoo_runs["visnet"]), "--top", "3")
    assert visnet.returncode == 0 and "model visnet: no published MAE known" in visnet.stdout


@pytest.mark.slow
def test_the_three_zoo_models_predict_xyz_as_an_ensemble(zoo_runs, packed):
    """mpnn-predict on QM9 molecules written as XYZ: each model gives what the dataset path gives, and
    the three u0 models together give their mean and spread."""
    from mpnn.data.datamodule import molecule_store
    from mpnn.inference import load_checkpoint, predict, predict_xyz, run_checkpoint
    from tests.test_predict import as_xyz

    rows = np.load(zoo_runs["schnet"] / "test_predictions.npz")["index"][:5]
    xyz, smiles = as_xyz(rows)
    members = []
    for model in ("schnet", "dimenet_pp", "visnet"):
        loaded = load_checkpoint(run_checkpoint(zoo_runs[model]))
        members.append(predict(loaded, molecule_store(packed, loaded.spec, loaded.backend), rows))
    assert len({tuple(m) for m in members}) == 3  # three different models

    table = predict_xyz([zoo_runs[m] for m in ("schnet", "dimenet_pp", "visnet")], xyz, smiles)
    assert list(table.columns[4:]) == ["u0 [eV]", "u0 std [eV]"] and (table["path"] == "template").all()
    np.testing.assert_allclose(table["u0 [eV]"], np.mean(members, axis=0), rtol=1e-9)
    np.testing.assert_allclose(table["u0 std [eV]"], np.std(members, axis=0, ddof=1), rtol=1e-5)
    geometry_only = predict_xyz(zoo_runs["schnet"], xyz)  # no SMILES: the zoo reads z and pos only
    np.testing.assert_allclose(geometry_only["u0 [eV]"], members[0], rtol=1e-9)


@pytest.mark.slow
def test_a_killed_zoo_run_resumes(tmp_path, packed):
    """Kill a SchNet run after its first checkpoint; resume=true finishes it with the whole history."""
    out = tmp_path / "run"
    small = ("model=schnet", *SMALL_ZOO, "model.num_interactions=2", "model.num_filters=16", "model.num_gaussians=16")
    settings = [*small, *RUN[:2], "data.batch_size=32", "trainer.max_epochs=3", "logger=csv"]
    command = [sys.executable, str(REPO / "train.py"), *settings, f"hydra.run.dir={out}", "trainer.accelerator=cpu"]
    last = kill_after_first_checkpoint(command, out)
    assert last.exists() and not (out / "results.json").exists()

    results = train(out, *settings, "resume=true")
    assert results["model"] == "schnet" and results["epochs"] == 3 and results["global_steps"] == 3 * 8
    assert len(results["val_mae_per_epoch"]) == 3 and math.isfinite(results["test_mae"])


def test_dimenet_schedule_is_the_reference_one():
    """warmup_exponential_decay against the reference's formula (TF's PolynomialDecay from 1/warmup to 1,
    power 1, times ExponentialDecay), and experiment=dimenet_pp_qm9 builds AMSGrad Adam with it."""
    from hydra.utils import instantiate

    from mpnn.cli import compose
    from mpnn.training.schedules import warmup_exponential_decay

    def reference(step: int, warmup: int = 3000, rate: float = 0.01, decay: int = 4_000_000) -> float:
        polynomial = (1 / warmup - 1) * (1 - min(step, warmup) / warmup) + 1
        return polynomial * rate ** (step / decay)

    cfg = compose(["experiment=dimenet_pp_qm9", "target=u0"])
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = instantiate(cfg.optim.optimizer)([parameter])
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["amsgrad"] is True
    scheduler = instantiate(cfg.schedule)(optimizer, total_steps=10)
    for step in (0, 1, 1500, 2999, 3000, 3001, 100_000, 3_000_000):
        assert scheduler.lr_lambdas[0](step) == pytest.approx(reference(step), rel=1e-12), step
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 / 3000)  # the first step's rate
    with pytest.raises(ValueError, match="schedule.warmup_steps=0 must be a whole number >= 1"):
        warmup_exponential_decay(optimizer, 10, warmup_steps=0)
