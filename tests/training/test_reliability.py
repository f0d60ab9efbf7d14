"""Lose nothing (issue 14): SIGTERM, kills between checkpoints, divergence, refused starts and bad
settings, each with real train.py processes, real signals, real Lightning and Hydra."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch.utils.data import DataLoader, TensorDataset

from mpnn.analysis import per_molecule_errors
from mpnn.cli import compare, compose
from tests.conftest import REPO, run_script

# 254 training molecules in 8 batches of 32; with a small model, about a second per epoch on a CPU.
BASE = (
    "data.subset=300", "data.batch_size=32", "trainer.max_epochs=4", "logger=csv", "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
)  # fmt: skip
SETTINGS = (*BASE, "model.hidden_dim=16")
STEPS_PER_EPOCH = 8


def start(run_dir: Path, *overrides: str) -> subprocess.Popen:
    """train.py as a process of its own, as a scheduler would start it."""
    env = dict(os.environ, WANDB_SILENT="true", PYTHONUNBUFFERED="1")
    command = [sys.executable, str(REPO / "train.py"), *overrides, f"hydra.run.dir={run_dir}"]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_writes(path: Path, process: subprocess.Popen, writes: int, timeout: float = 600) -> None:
    """Wait until `path` has been written `writes` times (each atomic write is a new file) or the process ends."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < writes and process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            seen.add(path.stat().st_ino)
        time.sleep(0.02)


def saved_step(checkpoint: Path) -> int:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"]


def epochs_logged(run_dir: Path, metric: str) -> list[int]:
    """The epochs of the rows of csv/metrics.csv that hold `metric`, in file order."""
    with (run_dir / "csv" / "metrics.csv").open(newline="") as file:
        return [int(row["epoch"]) for row in csv.DictReader(file) if row.get(metric)]


def checksums(run_dir: Path) -> dict[str, str]:
    """Every file of a run directory (hidden ones included) and its content's hash."""
    return {
        str(path.relative_to(run_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(run_dir.rglob("*"))
        if path.is_file()
    }


def strict_json(text: str) -> dict:
    """json.loads that refuses NaN and Infinity, which are not JSON."""

    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def sigterm_run(tmp_path_factory, packed) -> SimpleNamespace:
    """A 4-epoch run sent SIGTERM during its second epoch, a copy of it as SIGTERM left it, then the
    same run continued with the command its message gives."""
    run_dir = tmp_path_factory.mktemp("sigterm") / "run"
    process = start(run_dir, *SETTINGS)
    wait_for_writes(run_dir / "checkpoints" / "last.ckpt", process, writes=1)
    time.sleep(0.3)  # into the second epoch
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    interrupted = tmp_path_factory.mktemp("interrupted") / "run"
    shutil.copytree(run_dir, interrupted)
    hint = stderr.strip().splitlines()[-1].strip() if stderr.strip() else ""
    resumed = None
    if hint.startswith("python train.py"):  # run as given, from the repository root
        env = dict(os.environ, WANDB_SILENT="true")
        command = [sys.executable, *shlex.split(hint)[1:]]
        resumed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    return SimpleNamespace(
        run_dir=run_dir, interrupted=interrupted, returncode=process.returncode, stderr=stderr, hint=hint,
        resumed=resumed,
    )  # fmt: skip


@pytest.mark.slow
def test_sigterm_keeps_the_last_whole_epoch_exits_non_zero_and_says_how_to_resume(sigterm_run):
    assert sigterm_run.returncode == 128 + signal.SIGTERM, sigterm_run.stderr[-3000:]
    assert "Stopped by SIGTERM" in sigterm_run.stderr and "Traceback" not in sigterm_run.stderr
    assert sigterm_run.hint.startswith("python train.py data.subset=300")
    assert sigterm_run.hint.endswith(f"resume=true hydra.run.dir={sigterm_run.run_dir}")
    assert not (sigterm_run.interrupted / "results.json").exists()
    # last.ckpt holds whole epochs only (at least the first), not the part of an epoch before SIGTERM, which
    # the resumed run redoes.
    saved = saved_step(sigterm_run.interrupted / "checkpoints" / "last.ckpt")
    assert saved % STEPS_PER_EPOCH == 0 and STEPS_PER_EPOCH <= saved < 4 * STEPS_PER_EPOCH


@pytest.mark.slow
def test_the_run_continued_after_sigterm_finishes_with_its_whole_history(sigterm_run):
    resumed = sigterm_run.resumed
    assert resumed is not None and resumed.returncode == 0, (resumed.stderr if resumed else sigterm_run.stderr)[-3000:]
    results = json.loads((sigterm_run.run_dir / "results.json").read_text())
    assert results["epochs"] == 4 and results["global_steps"] == 4 * STEPS_PER_EPOCH
    assert len(results["val_mae_per_epoch"]) == 4
    # The CSV history of the part before SIGTERM is kept: every epoch once.
    assert epochs_logged(sigterm_run.run_dir, "val/mae") == [0, 1, 2, 3]
    assert epochs_logged(sigterm_run.run_dir, "train/loss") == [0, 1, 2, 3]


@pytest.mark.slow
def test_refused_starts_change_nothing_in_the_run_directory(sigterm_run):
    """Hydra used to write .hydra/*.yaml and the log file before any check: now nothing changes."""
    interrupted, finished = sigterm_run.interrupted, sigterm_run.run_dir
    refusals = [
        (interrupted, (), "continue it with resume=true"),
        # A resumed run may change speed and logging, not what the run is; the message names the setting.
        (interrupted, ("resume=true", "callbacks=ema"), "differ from the interrupted run: callbacks.ema (absent, now"),
        (interrupted, ("resume=true", "optim.lr=fast"), "optim.lr (0.001, now fast)"),
        (finished, ("resume=true",), "holds a finished run"),
    ]
    for run_dir, extra, message in refusals:
        before = checksums(run_dir)
        result = run_script("train.py", *SETTINGS, *extra, f"hydra.run.dir={run_dir}")
        assert result.returncode != 0 and message in result.stderr, result.stderr[-3000:]
        assert checksums(run_dir) == before, message


@pytest.mark.slow
def test_bad_numbers_are_refused_by_name_before_anything_is_written(tmp_path):
    for setting, message in {
        "trainer.max_epochs=0": "trainer.max_epochs=0 must be a whole number >= 1",
        "data.batch_size=big": "data.batch_size='big' must be a whole number",
    }.items():
        run_dir = tmp_path / setting.split("=")[0]
        result = run_script("train.py", setting, "logger=csv", f"hydra.run.dir={run_dir}")
        assert result.returncode != 0 and message in result.stderr, result.stderr[-3000:]
        assert "Traceback" not in result.stderr, result.stderr
        assert not run_dir.exists() or not any(run_dir.iterdir())


@pytest.mark.slow
def test_last_checkpoint_after_every_epoch_and_a_kill_after_the_best_one_resumes(tmp_path, packed):
    """With a learning rate too small to change the weights, only the first epoch improves validation:
    best-000.ckpt. last.ckpt must still follow every epoch, so a kill loses at most the one in progress."""
    run_dir, settings = tmp_path / "run", (*SETTINGS, "optim.lr=1e-30")
    process = start(run_dir, *settings)
    last = run_dir / "checkpoints" / "last.ckpt"
    wait_for_writes(last, process, writes=2)
    process.kill()
    process.communicate()
    assert not (run_dir / "results.json").exists(), "the run finished: last.ckpt was not written after epoch 2"
    assert saved_step(last) >= 2 * STEPS_PER_EPOCH
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best-000.ckpt", "last.ckpt"]

    resumed = run_script("train.py", *settings, "resume=true", f"hydra.run.dir={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["epochs"] == 4 and results["global_steps"] == 4 * STEPS_PER_EPOCH
    assert results["best_checkpoint"] == "checkpoints/best-000.ckpt"
    assert results["best_val_mae"] == results["val_mae_per_epoch"][0] and len(results["val_mae_per_epoch"]) == 4
    assert epochs_logged(run_dir, "val/mae") == [0, 1, 2, 3]


@pytest.mark.slow
def test_a_diverged_run_stops_in_its_epoch_and_is_reported_as_failed(tmp_path, sigterm_run, capsys):
    run_dir = tmp_path / "diverged"
    diverging = ("data.subset=100", *BASE[1:], "optim.lr=1e6")  # the default model size; 3 batches an epoch
    result = run_script("train.py", *diverging, f"hydra.run.dir={run_dir}")
    assert result.returncode != 0
    assert re.search(r"Diverged: training loss became (nan|inf) at epoch 0, step", result.stderr), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    results = strict_json((run_dir / "results.json").read_text())
    assert results["status"] == "diverged" and results["diverged_epoch"] == 0 and results["epochs"] == 0
    assert results["global_steps"] <= 3 and results["test_mae"] is None  # stopped within the epoch
    assert not (run_dir / "test_predictions.npz").exists()

    # compare.py lists it as failed, apart from the table of completed runs; errors.py says why it has no errors.
    charts = [f"--{name}={tmp_path / name}.png" for name in ("out", "curves", "sizes", "settings")]
    compare.main([str(sigterm_run.run_dir), str(run_dir), *charts, f"--csv={tmp_path / 'runs.csv'}"])
    table, failed = capsys.readouterr().out.split("failed, not compared: 1 runs")
    assert str(run_dir) not in table and str(sigterm_run.run_dir) in table
    assert re.search(rf"  {re.escape(str(run_dir))}  diverged: training loss became (nan|inf) at epoch 0", failed)
    with pytest.raises(FileNotFoundError, match=f"{re.escape(str(run_dir))} did not complete.*diverged"):
        per_molecule_errors(run_dir)

    # In a sweep the diverged job is reported and the sweep goes on (a search's sweeper gets infinity).
    sweep = tmp_path / "sweep"
    swept = run_script("train.py", "-m", *diverging, f"hydra.sweep.dir={sweep}")
    assert swept.returncode == 0 and re.search("Diverged: training loss became (nan|inf)", swept.stderr), swept.stderr
    assert strict_json((sweep / "0-mu-edge_net" / "results.json").read_text())["status"] == "diverged"


class Line(L.LightningModule):
    """y = w x, fitted from w = 0: its validation error falls every epoch, or never changes with lr=0."""

    def __init__(self, lr: float):
        super().__init__()
        self.lr, self.weight = lr, torch.nn.Parameter(torch.zeros(()))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.ones(4), torch.full((4,), 2.0)), batch_size=4)

    def val_dataloader(self) -> DataLoader:
        return self.train_dataloader()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return ((self.weight * x - y) ** 2).mean()

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        self.log("val/mae", (self.weight * x - y).abs().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class RecordedIO(TorchCheckpointIO):
    """Lightning's checkpoint writing, with the order of its writes and deletions recorded."""

    def __init__(self):
        super().__init__()
        self.events: list[str] = []

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        super().save_checkpoint(checkpoint, path, storage_options)
        self.events.append(f"write {Path(path).name}")

    def remove_checkpoint(self, path) -> None:
        super().remove_checkpoint(path)
        self.events.append(f"delete {Path(path).name}")


def checkpoint_events(tmp_path: Path, lr: float, epochs: int = 3) -> list[str]:
    """The checkpoint writes and deletions of a real Trainer with the project's checkpoint callback."""
    checkpoint = instantiate(compose([f"callbacks.checkpoint.dirpath={tmp_path}"]).callbacks.checkpoint)
    recorded = RecordedIO()
    trainer = L.Trainer(
        max_epochs=epochs, callbacks=[checkpoint], plugins=[recorded], logger=False, accelerator="cpu",
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(Line(lr))
    return recorded.events


def test_last_checkpoint_follows_every_epoch_improving_or_not(tmp_path):
    assert checkpoint_events(tmp_path, lr=0.0) == ["write best-000.ckpt"] + ["write last.ckpt"] * 3


def test_the_previous_best_checkpoint_is_deleted_only_after_last_checkpoint(tmp_path):
    """last.ckpt names the best checkpoint: a kill between writes must leave that one on disk."""
    assert checkpoint_events(tmp_path, lr=0.1) == [
        "write best-000.ckpt", "write last.ckpt",
        "write best-001.ckpt", "write last.ckpt", "delete best-000.ckpt",
        "write best-002.ckpt", "write last.ckpt", "delete best-001.ckpt",
    ]  # fmt: skip
