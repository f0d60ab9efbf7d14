"""Runs and sweeps started in the same second get directories of their own (`${unique_dir:...}`)."""

import multiprocessing
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from mpnn.hydra_resolvers import claim_directory
from tests.conftest import REPO

TRAIN = ("data.subset=200", "trainer.max_epochs=1", "trainer.accelerator=cpu", "logger=csv")


def _claim(barrier, path: str, results) -> None:
    barrier.wait()
    results.put(claim_directory(path))


def test_processes_claiming_one_name_at_once_get_distinct_directories(tmp_path):
    fork = multiprocessing.get_context("fork")
    barrier, results = fork.Barrier(8), fork.Queue()
    base = tmp_path / "runs" / "mu-edge_net" / "2025-01-01_12-00-00"
    processes = [fork.Process(target=_claim, args=(barrier, str(base), results)) for _ in range(8)]
    for process in processes:
        process.start()
    claimed = sorted(results.get(timeout=60) for _ in processes)
    for process in processes:
        process.join()
    assert claimed == sorted([str(base)] + [f"{base}_{number}" for number in range(2, 9)])


def occupy_the_coming_seconds(folder: Path, seconds: int = 600) -> set[Path]:
    """Directories named as the default run (or sweep) directory would be for the next `seconds`, each
    holding a marker: as if another run had started in each of those seconds."""
    now = datetime.now()
    taken = set()
    for offset in range(-2, seconds):
        directory = folder / (now + timedelta(seconds=offset)).strftime("%Y-%m-%d_%H-%M-%S")
        directory.mkdir(parents=True)
        (directory / "taken").touch()
        taken.add(directory)
    return taken


def start_train(*overrides: str) -> subprocess.Popen:
    env = dict(os.environ, WANDB_SILENT="true", PYTHONUNBUFFERED="1")
    command = [sys.executable, str(REPO / "train.py"), *overrides]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(processes: list[subprocess.Popen]) -> None:
    outputs = [process.communicate(timeout=900)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes), [output[-3000:] for output in outputs]


@pytest.mark.slow
def test_runs_started_together_get_their_own_directories(tmp_path, packed):
    outputs = tmp_path / "outputs"
    taken = occupy_the_coming_seconds(outputs / "runs" / "mu-edge_net")
    explicit = tmp_path / "explicit"  # hydra.run.dir=DIR (how a run is resumed) is used as given
    explicit.mkdir()
    finish(
        [start_train(*TRAIN, f"paths.log_dir={outputs}") for _ in range(2)]
        + [start_train(*TRAIN, f"paths.log_dir={outputs}", f"hydra.run.dir={explicit}")]
    )
    runs = {path.parent for path in outputs.glob("runs/mu-edge_net/*/results.json")}
    assert len(runs) == 2 and not runs & taken
    assert all(run.name.rsplit("_", 1)[0] in {t.name for t in taken} for run in runs)  # the name, then _2 or _3
    assert all(sorted(p.name for p in directory.iterdir()) == ["taken"] for directory in taken)
    assert (explicit / "results.json").exists() and not list(tmp_path.glob("explicit_*"))


LAUNCHERS = {
    "basic": (),
    "gpu_pool": ("hydra/launcher=gpu_pool", "hydra.launcher.gpus=[0]"),  # forked jobs
    "local_jobs": ("hydra/launcher=local_jobs",),  # submitit: each job a new process, its config pickled
}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_sweeps_started_together_keep_their_jobs_together(tmp_path, packed, launcher):
    outputs = tmp_path / "outputs"
    taken = occupy_the_coming_seconds(outputs / "sweeps")
    sweeps = {"mu,homo": ["0-mu-edge_net", "1-homo-edge_net"], "alpha,gap": ["0-alpha-edge_net", "1-gap-edge_net"]}
    finish(
        [
            start_train("-m", *LAUNCHERS[launcher], f"target={targets}", *TRAIN, f"paths.log_dir={outputs}")
            for targets in sweeps
        ]
    )
    assert all(sorted(p.name for p in directory.iterdir()) == ["taken"] for directory in taken)
    new = [directory for directory in (outputs / "sweeps").iterdir() if directory not in taken]
    jobs = sorted(sorted(path.parent.name for path in sweep.glob("*/results.json")) for sweep in new)
    assert jobs == sorted(sweeps.values())  # two sweep directories, each with all of its own jobs
