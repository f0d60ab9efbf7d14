"""train.py end to end: real QM9 subset, real Hydra, real Lightning Trainer, real offline W&B."""

import csv
import json
import math
import sys

import pytest

from mpnn.training.wandb_offline import offline_summary
from tests.conftest import DATA_ROOT, REPO, SMALL_MODELS, kill_after_first_checkpoint, run_script, train

pytestmark = pytest.mark.slow


def test_main_command_writes_results_and_wandb_summary(tmp_path, packed):
    out = tmp_path / "run"
    results = train(out, "model=edge_net", "target=mu", "data.subset=1000", "trainer.max_epochs=2")
    for key in (
        "target", "unit", "chemical_accuracy", "test_mae", "test_error_ratio", "best_val_mae",
        "epochs", "train_molecules_per_s", "wall_s", "best_checkpoint",
    ):  # fmt: skip
        assert key in results
    assert results["target"] == "mu" and results["unit"] == "D" and results["epochs"] == 2
    assert len(results["val_mae_per_epoch"]) == 2 and min(results["val_mae_per_epoch"]) == results["best_val_mae"]
    assert math.isfinite(results["test_mae"]) and results["test_mae"] > 0
    assert results["test_error_ratio"] == pytest.approx(results["test_mae"] / 0.1, rel=1e-5)
    assert (out / "config_resolved.yaml").exists() and (out / ".hydra" / "config.yaml").exists()
    for figure in ("parity_test.png", "learning_curve.png", "prediction_dynamics.png"):
        assert (out / figure).stat().st_size > 1000
    summary = offline_summary(out)
    assert summary["test/mae"] == pytest.approx(results["test_mae"], rel=1e-6)
    assert summary["test/error_ratio"] == pytest.approx(results["test_error_ratio"], rel=1e-6)
    assert summary["prediction_dynamics/_type"] == "images/separated"  # the figure reached W&B

    # The best checkpoint predicts in Debye by itself: its scaler buffers came from the training split,
    # it loads with weights_only=True, and it reproduces the test MAE on the run's test molecules.
    import numpy as np
    import torch

    from mpnn.inference import load_checkpoint, predict, run_checkpoint

    assert results["best_checkpoint"].startswith("checkpoints/best-")  # relative: the run directory may move
    checkpoint = torch.load(out / results["best_checkpoint"], map_location="cpu", weights_only=True)
    assert 2.0 < checkpoint["state_dict"]["model.scaler.mean"].item() < 3.5  # mean dipole of QM9 molecules, in Debye
    model = load_checkpoint(run_checkpoint(out))
    saved = np.load(out / "test_predictions.npz")
    from mpnn.data import cache
    from mpnn.data.datamodule import molecule_store

    store = molecule_store(cache.load_or_build(DATA_ROOT)[0], model.spec, model.backend)
    prediction = predict(model, store, saved["index"])
    np.testing.assert_allclose(prediction, saved["prediction"], rtol=1e-6)
    assert np.abs(prediction - saved["target"]).mean() == pytest.approx(results["test_mae"], rel=1e-4)

    # A finished run directory is never overwritten.
    again = run_script("train.py", "data.subset=1000", "trainer.max_epochs=1", f"hydra.run.dir={out}")
    assert again.returncode != 0 and "holds a finished run" in again.stderr
    assert json.loads((out / "results.json").read_text()) == results


def test_runs_without_any_logger(tmp_path, packed):
    results = train(tmp_path / "run", "logger=none", "data.subset=300", "trainer.max_epochs=1")
    assert math.isfinite(results["test_mae"]) and not (tmp_path / "run" / "wandb").exists()


def test_a_seed_fixes_the_whole_run(tmp_path, packed):
    """Same seed, same numbers (initialisation, shuffling, every epoch); another seed, other numbers."""
    settings = ("logger=none", "data.subset=300", "trainer.max_epochs=2", "model.hidden_dim=16", "model.steps=2")
    first, again = (train(tmp_path / name, *settings, "seed=3") for name in ("first", "again"))
    other = train(tmp_path / "other", *settings, "seed=4")
    assert first["val_mae_per_epoch"] == again["val_mae_per_epoch"] and first["test_mae"] == again["test_mae"]
    assert first["val_mae_per_epoch"] != other["val_mae_per_epoch"]


def test_unknown_target_fails_with_a_short_message(tmp_path):
    result = run_script("train.py", "target=dipole", f"hydra.run.dir={tmp_path}", "logger=csv")
    assert result.returncode != 0
    assert "unknown target 'dipole'; valid targets: mu, alpha, homo" in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr and len(lines) <= 3, result.stderr  # the job, the error, the hint


def config_choices():
    """Every model, message, readout and experiment file. A message alone runs on distance bins, the
    edge representation every message function accepts (discrete types and one-hot features)."""
    choices = []
    for group in ("model", "model/message", "model/readout", "experiment"):
        for path in sorted((REPO / "conf" / group).glob("*.yaml")):
            # The zoo's recipes (experiment=schnet_qm9, ...) run their model small, like model=schnet.
            small = SMALL_MODELS.get(path.stem.removesuffix("_qm9"), ())
            extra = ("data.edges=distance_bins",) if group == "model/message" else small
            choices.append((f"{group}={path.stem}", *extra))
    return choices


def config_sweeps() -> list[tuple[str, ...]]:
    """`config_choices` as Hydra multiruns: one process per group of options that share their other
    overrides (a run's start-up costs more than its 300-molecule epoch), each PyG model on its own."""
    sweeps: dict[tuple[str, ...], list[str]] = {}
    for choice, *extra in config_choices():
        group, option = choice.split("=")
        key = (group, *extra) if extra else (group,)
        sweeps.setdefault(key, []).append(option)
    return [(f"{key[0]}={','.join(options)}", *key[1:]) for key, options in sweeps.items()]


@pytest.mark.parametrize("sweep", config_sweeps(), ids=lambda sweep: sweep[0])
def test_every_config_trains(sweep, tmp_path, packed):
    """Every model, message, readout and experiment file trains one epoch and reports (default logger: offline W&B)."""
    result = run_script(
        "train.py", "-m", *sweep, "data.subset=300", "trainer.max_epochs=1", "trainer.accelerator=cpu",
        f"hydra.sweep.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    results = [json.loads(path.read_text()) for path in sorted(tmp_path.glob("*/results.json"))]
    assert len(results) == len(sweep[0].split("=")[1].split(","))
    assert all(math.isfinite(r["test_mae"]) and r["status"] == "completed" for r in results)


def test_ddp_on_two_cpu_processes(tmp_path, packed):
    """trainer=ddp: two processes share the epoch; rank 0 alone reports on the whole test set."""
    import numpy as np

    out = tmp_path / "run"
    results = train(out, "trainer=ddp", "trainer.devices=2", "data.subset=500", "trainer.max_epochs=1", "logger=csv")
    predictions = np.load(out / "test_predictions.npz")
    assert len(predictions["index"]) == results["molecules"]["test"]
    assert np.abs(predictions["prediction"] - predictions["target"]).mean() == pytest.approx(
        results["test_mae"], rel=1e-4
    )


def test_slurm_launcher_asks_one_gpu_per_job():
    result = run_script("train.py", "hydra/launcher=slurm", "--cfg", "hydra")
    assert result.returncode == 0, result.stderr[-2000:]
    launcher = result.stdout.split("  launcher:")[1]
    assert "gpus_per_node: 1" in launcher and "tasks_per_node: 1" in launcher
    assert "hydra_plugins.mpnn_launchers.slurm_launcher.SlurmLauncher" in launcher


def test_submitit_local_sweep_runs_jobs_as_separate_processes(tmp_path, packed):
    """The submitit code path that SLURM sweeps use, run on this machine."""
    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py", "-m", "hydra/launcher=local_jobs", "target=mu,homo", "data.subset=300",
        "trainer.max_epochs=1", "trainer.accelerator=cpu", "logger=csv", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    targets = sorted(json.loads(p.read_text())["target"] for p in sweep.glob("*/results.json"))
    assert targets == ["homo", "mu"]
    assert list(sweep.glob(".submitit/*/*_log.out"))  # submitit ran them as jobs


def test_ema_weights_are_validated_checkpointed_and_tested(tmp_path, packed):
    """callbacks=ema: validation scores the averaged weights, the checkpoint and the test hold them."""
    import numpy as np
    import torch
    from omegaconf import OmegaConf

    from mpnn.data.datamodule import molecule_store
    from mpnn.inference import load_checkpoint, predict, run_checkpoint
    from mpnn.training.build import build_datamodule

    out = tmp_path / "run"
    results = train(out, "callbacks=ema", "callbacks.ema.decay=0.9", "data.subset=600", "trainer.max_epochs=3")
    model = load_checkpoint(run_checkpoint(out))
    datamodule = build_datamodule(OmegaConf.load(out / "config_resolved.yaml"), model.backend)
    store = molecule_store(datamodule.packed, model.spec, model.backend)

    def mae(indices) -> float:
        truth = datamodule.packed.targets[indices, datamodule.target_column]
        return float(np.abs(predict(model, store, indices) - truth).mean())

    assert mae(datamodule.split.val) == pytest.approx(results["best_val_mae"], rel=1e-5)
    assert mae(datamodule.split.test) == pytest.approx(results["test_mae"], rel=1e-5)
    checkpoint = torch.load(out / results["best_checkpoint"], map_location="cpu", weights_only=True)
    raw = {k.removeprefix("model."): v for k, v in checkpoint["current_model_state"].items() if k.startswith("model.")}
    model.load_state_dict(raw)  # the raw weights, kept for resuming, are another model
    assert abs(mae(datamodule.split.val) - results["best_val_mae"]) > 1e-4

    refused = run_script("train.py", "callbacks=ema", "optim.compile=true", "data.static_shapes=true")
    assert refused.returncode != 0 and "callbacks=ema is not tested with optim.compile" in refused.stderr


def test_an_interrupted_run_resumes_from_its_last_checkpoint(tmp_path, packed):
    """Kill a real run after its first checkpoint; resume=true finishes it with the full history, in the
    same W&B run (one id across the two offline-run folders, which `wandb sync` uploads as one run)."""
    from mpnn.training.wandb_offline import offline_summary, run_ids

    out = tmp_path / "run"
    settings = ["data.subset=300", "data.batch_size=32", "trainer.max_epochs=12", "logger=[csv,wandb]"]
    command = [sys.executable, str(REPO / "train.py"), *settings, f"hydra.run.dir={out}", "trainer.accelerator=cpu"]
    last = kill_after_first_checkpoint(command, out)
    assert last.exists() and not (out / "results.json").exists()  # interrupted after 1 of 12 epochs or so

    refused = run_script("train.py", *settings, f"hydra.run.dir={out}", "trainer.accelerator=cpu")
    assert refused.returncode != 0 and "continue it with resume=true" in refused.stderr
    changed = run_script("train.py", *settings, "resume=true", "optim.lr=0.01", f"hydra.run.dir={out}")
    assert changed.returncode != 0 and "differ from the interrupted run: optim.lr" in changed.stderr

    results = train(out, *settings, "resume=true")
    assert results["epochs"] == 12 and results["global_steps"] == 12 * 8
    assert len(results["val_mae_per_epoch"]) == 12  # the history before the interruption is kept
    assert math.isfinite(results["test_mae"])
    with (out / "csv" / "metrics.csv").open(newline="") as file:  # and so is the CSV history (resume used to wipe it)
        assert [int(row["epoch"]) for row in csv.DictReader(file) if row["val/mae"]] == list(range(12))
    ids = run_ids(out)
    assert len(ids) == 2 and len(set(ids)) == 1, ids  # the killed start and the resumed one: one W&B run
    assert offline_summary(out)["test/mae"] == pytest.approx(results["test_mae"])


def test_resume_without_an_interrupted_run_fails_clearly(tmp_path):
    result = run_script("train.py", "resume=true", "logger=csv", f"hydra.run.dir={tmp_path / 'new'}")
    assert result.returncode != 0 and "there is no interrupted run to continue" in result.stderr
