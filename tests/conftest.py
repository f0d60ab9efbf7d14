"""Shared fixtures: the real QM9 cache (built once under <repo>/data) and a train.py runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Under pytest-xdist each worker gets its share of the cores. Left alone, torch in every worker and in every
# process a test starts (train.py, eight concurrent runs, SLURM jobs) runs one thread per core, and spinning
# OpenMP threads then wait on each other: two diagnose tests side by side took ggnn's 35 s against 14 s with
# one thread each (2 cores, 2026-12-06). Subprocesses inherit the variables.
if workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")):
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, threads)


def pytest_configure(config: pytest.Config) -> None:
    """Under `--dist loadgroup` pytest-xdist (3.8) keeps each `xdist_group` on one worker by renaming its tests
    `<id>@<group>`; pytest 9 ignores the rename, the SLURM tests ran on both workers and the second SLURM
    refused to start (CI, 2026-12-06). Say so before anything runs (pyproject.toml pins pytest<9)."""
    if config.getoption("dist", "no") == "loadgroup" and int(pytest.__version__.split(".")[0]) >= 9:
        raise pytest.UsageError(
            f"--dist loadgroup needs pytest<9 (this is {pytest.__version__}): pytest-xdist's groups are ignored "
            "by pytest 9 and the SLURM tests would start two SLURMs; pip install -e '.[dev]' installs pytest<9"
        )


REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = REPO / "data"
# PyG's models at the sizes their papers used take minutes per CPU epoch; end-to-end tests run small ones.
SMALL_MODELS = {
    "schnet": (
        "model.hidden_channels=16", "model.num_filters=16", "model.num_interactions=2", "model.num_gaussians=16",
    ),
    "dimenet_pp": (
        "model.hidden_channels=16", "model.num_blocks=1", "model.int_emb_size=8", "model.basis_emb_size=4",
        "model.out_emb_channels=16", "model.num_spherical=2", "model.num_radial=3",
    ),
    "visnet": ("model.hidden_channels=16", "model.num_layers=2", "model.num_rbf=8", "model.num_heads=2"),
}  # fmt: skip
SAMPLE = REPO / "tests" / "fixtures" / "qm9_sample.npz"


def needs_cuda(reason: str = "needs a CUDA device"):
    """Marks a test `gpu` (the GPU check runs `pytest -m gpu`) and skips it where no CUDA device is visible."""
    import torch

    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason=reason)
    return lambda test: pytest.mark.gpu(skip(test))


@pytest.fixture(scope="session")
def sample():
    """48 real QM9 molecules in the cache format (tests/fixtures/README.md): fast, no cache needed."""
    from mpnn.data import cache

    return cache.load(SAMPLE)


@pytest.fixture(scope="session")
def packed():
    """All 130,831 featurized molecules (built on first use: about a minute on 2 cores)."""
    from mpnn.data import cache

    packed, _ = cache.load_or_build(DATA_ROOT)
    return packed


@pytest.fixture(scope="session")
def datamodule_factory(packed):
    from mpnn.data.datamodule import QM9DataModule

    def make(subset: int = 300, **kwargs) -> QM9DataModule:
        dm = QM9DataModule(root=str(DATA_ROOT), subset=subset, **kwargs)
        dm.setup()
        return dm

    return make


def run_script(script: str, *args: str, timeout: int = 900, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run a script of the repository (by path) as a user would, from `cwd`."""
    env = dict(os.environ, WANDB_SILENT="true", PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, str(REPO / script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def train(run_dir: Path, *overrides: str) -> dict:
    """Run train.py through Hydra's command line and return results.json."""
    result = run_script("train.py", *overrides, f"hydra.run.dir={run_dir}", "trainer.accelerator=cpu")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((run_dir / "results.json").read_text())


def kill_after_first_checkpoint(command: list[str], run_dir: Path, timeout: float = 300) -> Path:
    """Start a training command, kill it (SIGKILL) once its last.ckpt exists; the checkpoint's path."""
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + timeout
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()
    process.wait()
    return last


@pytest.fixture(scope="session")
def briefly_trained(packed) -> dict:
    """The default model's weights after 20 float32 steps on 1,000 molecules, for precision comparisons."""
    from mpnn.bench.precision import briefly_trained

    return briefly_trained([f"paths.data_dir={DATA_ROOT}", "logger=none", "data.subset=1000"])
