"""The cluster path on a real one-node SLURM (scripts/slurm_local.sh): sweeps through `hydra/launcher=slurm`,
jobs that SLURM requeues or warns of their time limit continue their runs, failures fail.

Skipped only where SLURM cannot start here (not root, packages missing); with MPNN_REQUIRE_SLURM=1 (set by
.ci/run) that is a failure instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mpnn.training.wandb_offline import offline_summary, run_ids
from tests.conftest import REPO

# One SLURM per machine (fixed ports): under pytest-xdist these tests share one worker.
pytestmark = pytest.mark.xdist_group("slurm")

# Small CPU jobs: 300 molecules (240 training, 8 batches), 12 epochs (time to interrupt them), one core each.
RUN = ["target=mu", "data.subset=300", "data.batch_size=32", "trainer.max_epochs=12", "trainer.accelerator=cpu"]
JOB = [
    "hydra/launcher=slurm", "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=3", "hydra.launcher.partition=debug", "hydra.launcher.timeout_min=30",
]  # fmt: skip


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A running one-node SLURM; SLURM_CONF set for this process and its children. Session-wide: under
    pytest-xdist other modules' tests can run between these on their worker, and a module fixture would stop
    and restart SLURM each time."""
    state = tmp_path_factory.mktemp("slurm")
    script = REPO / "scripts" / "slurm_local.sh"
    started = subprocess.run(["bash", str(script), "start", str(state)], capture_output=True, text=True)
    if started.returncode != 0:
        reason = f"SLURM could not start here: {started.stderr.strip()}"
        if os.environ.get("MPNN_REQUIRE_SLURM") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(state / "slurm.conf")
    yield state
    subprocess.run(["bash", str(script), "stop", str(state)], check=False)
    if previous is None:
        os.environ.pop("SLURM_CONF")
    else:
        os.environ["SLURM_CONF"] = previous


def start_sweep(sweep: Path, *overrides: str) -> subprocess.Popen:
    env = dict(os.environ, WANDB_SILENT="true", PYTHONUNBUFFERED="1")
    command = [sys.executable, str(REPO / "train.py"), "-m", *JOB, *RUN, *overrides, f"hydra.sweep.dir={sweep}"]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(sweep: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    output, _ = sweep.communicate(timeout=timeout)
    return sweep.returncode, output


def job_of(run_dir: Path, timeout: float = 120) -> str:
    """The SLURM job id (as squeue shows it) of the run in `run_dir`, once the run has recorded it."""
    recorded = run_dir / "slurm_job"
    deadline = time.monotonic() + timeout
    while not recorded.exists():
        assert time.monotonic() < deadline, f"no run started in {run_dir}"
        time.sleep(0.5)
    return recorded.read_text().strip()


def after_first_checkpoint(run_dir: Path, timeout: float = 300) -> None:
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + timeout
    while not last.exists():
        assert time.monotonic() < deadline, f"no checkpoint in {run_dir}"
        time.sleep(0.2)


def start_now(job: str) -> None:
    """A requeued job waits ~2 minutes (its BeginTime) before SLURM starts it again; start it now."""
    deadline = time.monotonic() + 60
    shown = ["scontrol", "show", "job", job]
    while "JobState=PENDING" not in subprocess.run(shown, capture_output=True, text=True).stdout:
        assert time.monotonic() < deadline, f"job {job} was not requeued"
        time.sleep(0.5)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)


def job_state(job: str, timeout: float = 60) -> str:
    """The state SLURM ends `job` in (a job's result is written a moment before its process exits)."""
    deadline = time.monotonic() + timeout
    while True:
        shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
        state = next(field.split("=")[1] for field in shown.split() if field.startswith("JobState="))
        if state not in ("RUNNING", "COMPLETING") or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


@pytest.fixture(scope="module")
def uninterrupted(slurm, tmp_path_factory, packed):
    """A sweep of two seeds that nothing interrupts: each run's results."""
    sweep = tmp_path_factory.mktemp("sweep") / "plain"
    status, output = finish(start_sweep(sweep, "seed=0,1", "logger=csv"))
    assert status == 0, output[-3000:]
    return sweep, {seed: json.loads((sweep / f"{seed}-mu-edge_net" / "results.json").read_text()) for seed in (0, 1)}


@pytest.mark.slow
def test_a_sweep_runs_as_slurm_jobs_and_compares(uninterrupted):
    sweep, results = uninterrupted
    for seed, run in results.items():
        run_dir = sweep / f"{seed}-mu-edge_net"
        assert run["status"] == "completed" and run["epochs"] == 12 and len(run["val_mae_per_epoch"]) == 12
        assert job_state(job_of(run_dir)) == "COMPLETED"
        log = next(sweep.glob(f".submitit/{job_of(run_dir)}/*_log.out")).read_text()
        assert "[progress] epoch 12/12 end" in log  # progress lines reach the SLURM job's log
    assert results[0]["val_mae_per_epoch"] != results[1]["val_mae_per_epoch"]  # two seeds, two runs
    env = dict(os.environ, WANDB_SILENT="true")
    compared = subprocess.run(
        [sys.executable, "-m", "mpnn.cli.compare", str(sweep), "--wandb"], cwd=REPO, env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    assert compared.returncode == 0, compared.stderr
    assert all(f"{run['test_mae']:.4g}"[:4] in compared.stdout for run in results.values()), compared.stdout
    summary = offline_summary(sweep / "wandb")  # one offline W&B run of the sweep, every run's error ratio in it
    for seed, run in results.items():
        assert summary[f"{seed}-mu-edge_net/test_error_ratio"] == pytest.approx(run["test_error_ratio"])


@pytest.mark.slow
def test_requeued_and_signalled_jobs_continue_their_runs(uninterrupted, tmp_path):
    """Seed 0 is requeued as a preemption does (`scontrol requeue`: SIGTERM); seed 1 gets USR2, what SLURM
    sends before the time limit. Both continue from last.ckpt in the same run directory and end with the
    uninterrupted runs' validation MAEs, one W&B run each; the sweep waits for them and succeeds."""
    _, plain = uninterrupted
    sweep = tmp_path / "interrupted"
    process = start_sweep(sweep, "seed=0,1", "logger=[csv,wandb]")
    runs = {seed: sweep / f"{seed}-mu-edge_net" for seed in (0, 1)}
    jobs = {}
    for seed, interrupt in ((0, ["scontrol", "requeue"]), (1, ["scancel", "--signal=USR2"])):
        jobs[seed] = job_of(runs[seed])
        after_first_checkpoint(runs[seed])
        subprocess.run([*interrupt, jobs[seed]], check=True)
        start_now(jobs[seed])
    status, output = finish(process)
    assert status == 0, output[-3000:]
    for seed, run_dir in runs.items():
        results = json.loads((run_dir / "results.json").read_text())
        assert results["epochs"] == 12
        assert results["val_mae_per_epoch"] == pytest.approx(plain[seed]["val_mae_per_epoch"], rel=1e-5)
        ids = run_ids(run_dir)
        assert len(ids) == 2 and len(set(ids)) == 1, ids  # two starts, one W&B run
        assert job_state(jobs[seed]) == "COMPLETED"
        logs = "".join(p.read_text() for p in sweep.glob(f".submitit/{jobs[seed]}/*_log.*"))
        assert "Restored all states from the checkpoint" in logs
    signalled = "".join(p.read_text() for p in sweep.glob(f".submitit/{jobs[1]}/*_log.*"))
    assert "stopping at the end of this batch to requeue" in signalled and "Requeued job" in signalled


@pytest.mark.slow
def test_a_refused_job_fails_for_slurm_and_the_sweep(slurm, tmp_path, packed):
    sweep = tmp_path / "refused"
    process = start_sweep(sweep, "callbacks=ema", "optim.compile=true", "data.static_shapes=true", "logger=csv")
    status, output = finish(process)
    assert status != 0 and "callbacks=ema is not tested with optim.compile" in output, output[-3000:]
    (job,) = [folder.name for folder in (sweep / ".submitit").iterdir() if folder.is_dir()]
    assert job_state(job) == "FAILED"


def test_only_a_requeued_start_of_the_same_job_continues_a_run(tmp_path, monkeypatch):
    from mpnn.training import slurm

    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT"):
        monkeypatch.delenv(name, raising=False)
    slurm.record_job(tmp_path)
    assert slurm.job_id() is None and not (tmp_path / slurm.JOB_FILE).exists()  # outside SLURM: nothing
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "40")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    slurm.record_job(tmp_path)
    assert slurm.job_id() == "40_1" and not slurm.continues_here(tmp_path)  # the first start
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert slurm.continues_here(tmp_path)  # SLURM requeued it
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    assert not slurm.continues_here(tmp_path)  # another job's run directory: refused as before
