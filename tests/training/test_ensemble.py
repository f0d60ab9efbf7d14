"""Ensembles in one process (`ensemble.size=K`): member k is the single run with seed k, step by step;
a run directory's members and ensemble reach results, mpnn-predict, mpnn-compare and resume."""

import json
import sys

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from mpnn.cli import compose
from mpnn.training.build import build
from mpnn.training.reporting import member_dir
from tests.conftest import DATA_ROOT, REPO, kill_after_first_checkpoint, run_script, train
from tests.test_predict import as_xyz

SMALL = ("model.hidden_dim=16", "model.steps=2", "model.readout.steps=2", "model.message.hidden_dim=16")
# The member-equals-single-run tests: clipping at 0.05 binds on every step (checked below), so a norm over all
# members would differ; the linear decay from step 0 changes the learning rate at every step.
EXACT = (*SMALL, "data.subset=150", "data.batch_size=10", "optim.gradient_clip_val=0.05", "schedule.decay_start=0.0",
         "schedule.final_lr_factor=0.1")  # fmt: skip


def compose_config(*overrides: str):
    return compose([f"paths.data_dir={DATA_ROOT}", "logger=none", *overrides])


class Trajectory(L.Callback):
    """Each model's parameters (one flat vector per model) after every step, and its MAE per validation."""

    def __init__(self):
        self.steps: list[list[torch.Tensor]] = []
        self.val_mae: list[list[float]] = []

    @staticmethod
    def models(module) -> list:
        return list(module.members) if hasattr(module, "members") else [module.model]

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        flat = [torch.cat([p.detach().reshape(-1) for p in m.parameters()]).clone() for m in self.models(module)]
        self.steps.append(flat)

    def on_validation_epoch_end(self, trainer, module) -> None:
        if not trainer.sanity_checking:  # the single run's MAE or each member's, recomputed from the metrics
            metrics = module.member_mae if hasattr(module, "member_mae") else [module.metrics["val_mae"]]
            self.val_mae.append([float(metric.compute()) for metric in metrics])


def fit(overrides: tuple[str, ...], root, max_epochs: int = 2) -> tuple[Trajectory, L.LightningModule]:
    cfg = compose_config(*overrides)
    datamodule, module = build(cfg)
    trajectory = Trajectory()
    # callbacks=early_stopping: a single run stops on Lightning's EarlyStopping, an ensemble's members inside the module
    stopping = "early_stopping" in cfg.callbacks and not hasattr(module, "members")
    trainer = L.Trainer(
        accelerator="cpu", precision="64-true", max_epochs=max_epochs, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[trajectory, *([instantiate(cfg.callbacks.early_stopping)] if stopping else [])],
        default_root_dir=str(root),
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    return trajectory, module


@pytest.mark.parametrize("engine", ["loop", "stacked"])
def test_every_member_follows_the_single_run_of_its_seed(engine, tmp_path, packed):
    settings = EXACT
    ensemble, _ = fit((*settings, "ensemble.size=2", f"ensemble.engine={engine}"), tmp_path / "ensemble")
    assert len(ensemble.steps) >= 20 and len(ensemble.val_mae) == 2
    for k in range(2):
        single, _ = fit((*settings, f"seed={k}"), tmp_path / f"seed{k}")
        assert len(single.steps) == len(ensemble.steps)
        for step, (alone, together) in enumerate(zip(single.steps, ensemble.steps)):
            assert torch.allclose(alone[0], together[k], rtol=0, atol=1e-10), f"member {k} parts at step {step}"
        np.testing.assert_allclose([v[0] for v in single.val_mae], [v[k] for v in ensemble.val_mae], rtol=0, atol=1e-10)
    # The members are different models, and each has moved from its start.
    assert not torch.allclose(ensemble.steps[-1][0], ensemble.steps[-1][1])
    # Clipping binds: the first batch's gradient norm of member 0 is well above 0.05.
    datamodule, module = build(compose_config(*settings, "ensemble.size=2"))
    member = module.members[0].double()
    batch = datamodule.batch(datamodule.split.train[:10], dtype=torch.float64)
    torch.nn.functional.mse_loss(member(batch), member.normalise(batch).double()).backward()
    assert torch.nn.utils.clip_grad_norm_(member.parameters(), float("inf")) > 0.1


@pytest.mark.parametrize("engine", ["loop", "stacked"])
def test_with_min_delta_every_member_stops_and_selects_as_the_single_run_of_its_seed(engine, tmp_path, packed):
    """callbacks=early_stopping with min_delta > 0: member k trains, stops and keeps its best checkpoint at the
    epochs where the single run with seed k (Lightning's EarlyStopping and ModelCheckpoint) does."""
    settings = (*EXACT, "callbacks=early_stopping", "callbacks.early_stopping.patience=2",
                "callbacks.early_stopping.min_delta=0.002")  # fmt: skip
    ensemble, module = fit((*settings, "ensemble.size=2", f"ensemble.engine={engine}"), tmp_path / "ensemble", 6)
    epochs = []
    for k in range(2):
        single, _ = fit((*settings, f"seed={k}"), tmp_path / f"seed{k}", 6)
        curve = [v[0] for v in single.val_mae]
        np.testing.assert_allclose(module.val_history[k], curve, rtol=0, atol=1e-10)
        for step, together in enumerate(ensemble.steps):  # the same steps, then member k's weights stand still
            alone = single.steps[min(step, len(single.steps) - 1)][0]
            assert torch.allclose(alone, together[k], rtol=0, atol=1e-10), f"member {k} at step {step}"
        best = torch.load(member_dir(tmp_path / "ensemble", k) / "checkpoints" / "best.ckpt", weights_only=True)
        assert best["epoch"] == int(np.argmin(curve)), f"member {k}'s best checkpoint"
        epochs.append((len(curve), int(np.argmin(curve))))
    # What makes the case: seed 0 stops after 3 of 6 epochs, its best checkpoint from an improvement smaller than
    # min_delta (epoch 2: 0.8694 after 0.8709), while seed 1 trains on; min_delta = 0 would not stop seed 0 there.
    assert epochs[0] == (3, 1) and epochs[1][0] == 6


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("schedule=plateau", "schedule=plateau lowers one learning rate"),
        ("optim.cuda_graph=true", "optim.cuda_graph=true is not supported with ensemble.size > 1"),
        ("callbacks=ema", "callbacks=ema is not supported with ensemble.size > 1"),
        ("model=schnet", "train one model per run"),
        ("trainer=ddp", "without trainer=ddp"),
        ("ensemble.size=0", "ensemble.size=0 must be a whole number >= 1"),
    ],
)
def test_what_an_ensemble_does_not_support_is_refused_by_name(override, message, packed):
    with pytest.raises(ValueError, match=message):
        build(compose_config("data.subset=100", "ensemble.size=2", override))


@pytest.mark.slow
def test_an_ensemble_run_reports_members_predicts_compares_and_resumes(tmp_path, packed):
    from mpnn.inference import load_checkpoint

    settings = ("target=mu", *SMALL, "data.subset=300", "trainer.max_epochs=2", "logger=csv")
    out = tmp_path / "ensemble"
    results = train(out, *settings, "ensemble.size=3")
    # Each member is reported as a single run, and the ensemble (the members' mean) on the same test set.
    assert [m["seed"] for m in results["members"]] == [0, 1, 2] and results["ensemble_size"] == 3
    member_mae = []
    for member in results["members"]:
        alone = json.loads((out / member["run_dir"] / "results.json").read_text())
        assert (
            alone["seed"] == member["seed"] and np.isfinite(alone["test_mae"]) and len(alone["val_mae_per_epoch"]) == 2
        )
        assert (out / member["best_checkpoint"]).is_file()
        member_mae.append(alone["test_mae"])
    assert np.isfinite(results["test_mae"]) and results["test_mae"] <= np.mean(member_mae) + 1e-12
    # The ensemble's best_val_mae (what mpnn-compare selects on) is that of the models it was tested with.
    datamodule, _ = build(compose_config(*settings, "ensemble.size=3", "trainer.accelerator=cpu"))
    batch = datamodule.batch(datamodule.split.val)
    mean = torch.stack([load_checkpoint(out / m["best_checkpoint"]).predict(batch) for m in results["members"]]).mean(0)
    truth = datamodule.packed.targets[datamodule.split.val, datamodule.target_column]
    assert results["best_val_mae"] == pytest.approx(np.abs(mean.double().numpy() - truth).mean(), rel=1e-5)
    assert len({round(mae, 9) for mae in member_mae}) == 3  # three different models
    saved = np.load(out / "test_predictions.npz")
    assert np.abs(saved["prediction"] - saved["target"]).mean() == pytest.approx(results["test_mae"])
    assert (saved["spread"] > 0).all()
    with pytest.raises(ValueError, match="training checkpoint of an ensemble of 3"):
        load_checkpoint(out / "checkpoints" / "last.ckpt")
    metrics = (out / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert all(f"val/mae/seed{seed}" in metrics for seed in (0, 1, 2)) and "test/mae/seed2" in metrics

    # mpnn-predict on the run directory: every member's checkpoint, their mean and spread per molecule.
    xyz, _ = as_xyz(np.load(out / "test_predictions.npz")["index"][:2])
    (tmp_path / "two.xyz").write_text(xyz)
    predicted = run_script("mpnn/cli/predict.py", str(out), "--xyz", str(tmp_path / "two.xyz"))
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    header, *rows = predicted.stdout.strip().splitlines()
    assert "mu [D]" in header and "mu std [D]" in header and len(rows) == 2

    # mpnn-compare: a row per member, the ensemble's row, and the members' ensemble line.
    compared = run_script("mpnn/cli/compare.py", str(out), "--out", str(tmp_path / "ratios.png"))
    assert compared.returncode == 0, compared.stderr[-2000:]
    for seed in (0, 1, 2):
        assert f"members/seed{seed}" in compared.stdout
    assert "ensemble.size=3" in compared.stdout
    assert f"ensemble of 3: test MAE {results['test_mae']:.4g}" in compared.stdout

    # Killed after its first epoch and resumed: the same members as the run that was not interrupted.
    resumed_dir = tmp_path / "resumed"
    command = [sys.executable, str(REPO / "train.py"), *settings, "ensemble.size=3", f"hydra.run.dir={resumed_dir}",
               "trainer.accelerator=cpu"]  # fmt: skip
    assert kill_after_first_checkpoint(command, resumed_dir).exists()
    resumed = train(resumed_dir, *settings, "ensemble.size=3", "resume=true")
    for before, after in zip(results["members"], resumed["members"]):
        assert after["best_val_mae"] == pytest.approx(before["best_val_mae"], rel=1e-5)
        assert after["test_mae"] == pytest.approx(before["test_mae"], rel=1e-5)


def test_each_member_keeps_its_best_checkpoint_and_stops_on_its_own_patience(tmp_path, packed):
    from mpnn.inference import load_checkpoint

    datamodule, module = build(compose_config(*SMALL, "data.subset=100", "ensemble.size=2", "seed=7"))
    module.trainer = L.Trainer(default_root_dir=str(tmp_path), logger=False, accelerator="cpu")
    module.hparams.patience = 1
    module.select([1.0, 2.0])  # both improve on nothing: both saved
    module.select([1.1, 1.5])  # member seed 7 gets worse: stopped; seed 8 improves: saved again
    assert module.training_members == [False, True] and module.best_val == [1.0, 1.5]
    assert not module.trainer.should_stop
    module.select([0.5, 1.6])  # a stopped member is not selected again; seed 8 stops too, and the run
    assert module.training_members == [False, False] and module.best_val == [1.0, 1.5]
    assert module.trainer.should_stop and module.val_history == [[1.0, 1.1], [2.0, 1.5, 1.6]]
    batch = datamodule.batch(datamodule.split.val[:8])
    for k, seed in enumerate((7, 8)):
        loaded = load_checkpoint(tmp_path / "members" / f"seed{seed}" / "checkpoints" / "best.ckpt")
        assert torch.equal(loaded.predict(batch), module.members[k].eval().predict(batch))


def test_min_delta_counts_for_early_stopping_not_for_the_best_checkpoint(tmp_path, packed):
    """As a single run's callbacks do: ModelCheckpoint keeps any improvement, EarlyStopping waits for one of
    min_delta. Member k then selects the checkpoint the single run with seed k selects."""
    from mpnn.inference import load_checkpoint

    datamodule, module = build(compose_config(*SMALL, "data.subset=100", "ensemble.size=2"))
    module.trainer = L.Trainer(default_root_dir=str(tmp_path), logger=False, accelerator="cpu")
    module.hparams.patience, module.hparams.min_delta = 2, 0.1
    module.select([1.0, 1.0])
    module.members[0].head[-1].bias.data.fill_(0.5)  # member seed 0's weights change before its next validation
    module.select([0.95, 1.05])  # seed 0 improves by less than min_delta: best checkpoint, but no reset
    assert module.best_val == [0.95, 1.0] and module.since_best == [1, 1]
    module.select([0.97, 1.2])  # no improvement of 0.1 in two validations: both stop
    assert module.training_members == [False, False] and module.trainer.should_stop
    batch = datamodule.batch(datamodule.split.val[:8])
    for k, seed in enumerate((0, 1)):
        loaded = load_checkpoint(tmp_path / "members" / f"seed{seed}" / "checkpoints" / "best.ckpt")
        assert torch.equal(loaded.predict(batch), module.members[k].eval().predict(batch))


@pytest.mark.parametrize(
    "config",
    [f"experiment={name}" for name in ("enn_s2s", "enn_s2s_implicit_h", "ggnn_no_distance", "ggnn_virtual_edges",
     "ggnn_master_node", "ggnn_set2set", "towers_baseline", "towers8")] + ["model=pair_message"],
)  # fmt: skip
def test_the_stacked_engine_predicts_as_each_member_alone(config, packed):
    """Every paper configuration (each message, update, readout and variant): the vmapped forward pass of
    all members equals each member's own, in float64."""
    small = ("model.hidden_dim=16", "model.steps=2", "data.subset=100")
    datamodule, module = build(compose_config(config, *small, "ensemble.size=3", "ensemble.engine=stacked"))
    module = module.double().eval()
    batch = datamodule.batch(datamodule.split.train[:12], dtype=torch.float64)
    with torch.no_grad():
        stacked = module.member_predictions(batch)
        alone = torch.stack([member.predict(batch) for member in module.members])
    assert stacked.shape == (3, 12) and not torch.allclose(alone[0], alone[1])
    torch.testing.assert_close(stacked, alone, rtol=0, atol=1e-10)
