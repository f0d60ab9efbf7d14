"""hydra/launcher=gpu_pool: sweep jobs in parallel, each pinned to its own GPU, the rest queued."""

import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra.core.utils import JobStatus

from hydra_plugins.mpnn_launchers.gpu_pool_launcher import GpuPoolLauncher, _RunningJob
from tests.conftest import REPO, run_script

SWEEP = ("data.subset=300", "trainer.max_epochs=1", "trainer.accelerator=cpu", "logger=csv")


def _sweep(sweep: Path, targets: str) -> tuple[int, str]:
    """A real two-slot gpu_pool multirun of one-epoch CPU runs: its exit code and its console output."""
    args = ("-m", "hydra/launcher=gpu_pool", "hydra.launcher.gpus=[0,1]", f"target={targets}", *SWEEP)
    result = run_script("train.py", *args, f"hydra.sweep.dir={sweep}")
    return result.returncode, result.stdout + result.stderr


def _events(log: str) -> list[tuple[str, int]]:
    """('started' | 'completed' | 'failed', job number) in the order the launcher logged them."""
    return [(event, int(job)) for job, event in re.findall(r"#(\d+) (started|completed|failed) on GPU", log)]


@pytest.mark.slow
def test_jobs_run_two_at_a_time_each_on_its_own_gpu(tmp_path, packed):
    sweep = tmp_path / "sweep"
    returncode, output = _sweep(sweep, "mu,homo,alpha")
    assert returncode == 0, output[-5000:]
    runs = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/results.json")}
    assert sorted(runs) == ["0-mu-edge_net", "1-homo-edge_net", "2-alpha-edge_net"]
    assert {run["cuda_visible_devices"] for run in runs.values()} == {"0", "1"}
    assert runs["0-mu-edge_net"]["cuda_visible_devices"] == "0"
    assert runs["1-homo-edge_net"]["cuda_visible_devices"] == "1"
    events = _events(output)
    # Jobs 0 and 1 start together; job 2 waits for a free GPU.
    assert events[:2] == [("started", 0), ("started", 1)] and events[2][0] == "completed"
    assert events.index(("started", 2)) > 2 and len(events) == 6
    assert re.search(r"3 of 3 jobs completed in \d+ s\n", output)
    for name, run in runs.items():  # each job's console went to its own run directory
        assert f"{run['target']}: test MAE" in (sweep / name / "console.log").read_text()


@pytest.mark.slow
def test_a_failed_job_fails_the_sweep_and_the_others_finish(tmp_path, packed):
    sweep = tmp_path / "sweep"
    returncode, output = _sweep(sweep, "nonsense,mu")
    assert returncode != 0 and "unknown target 'nonsense'" in output
    assert ("failed", 0) in _events(output) and "1 of 2 jobs completed in" in output and "; failed: #0" in output
    assert json.loads((sweep / "1-mu-edge_net" / "results.json").read_text())["target"] == "mu"
    compared = run_script("scripts/compare.py", str(sweep))  # the failed run is named, not silently left out
    assert compared.returncode == 0, compared.stderr
    assert f"no results.json (failed, interrupted or running): 1 runs\n  {sweep / '0-nonsense-edge_net'}\n" in (
        compared.stdout
    )


def test_slots_alternate_gpus_and_bad_settings_are_refused(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    assert GpuPoolLauncher().slots() == ["0", "1", "2"]
    assert GpuPoolLauncher(gpus=[2, 0], jobs_per_gpu=2).slots() == ["2", "0", "2", "0"]
    assert GpuPoolLauncher(gpus=1).slots() == ["1"] and GpuPoolLauncher(gpus="0, 2").slots() == ["0", "2"]
    with pytest.raises(ValueError, match="5 not among the visible GPUs 0, 1, 2"):
        GpuPoolLauncher(gpus=[0, 5]).slots()
    with pytest.raises(ValueError, match="jobs_per_gpu=0: must be a whole number >= 1"):
        GpuPoolLauncher(jobs_per_gpu=0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ValueError, match="found no GPU"):
        GpuPoolLauncher().slots()


def test_a_job_that_dies_without_reporting_is_a_failure(tmp_path):
    """A job killed from outside (out of memory, a segfault) must fail the sweep, not hang it."""
    fork = multiprocessing.get_context("fork")
    receive, send = fork.Pipe(duplex=False)
    process = fork.Process(target=os._exit, args=(3,))
    process.start()
    send.close()
    job = _RunningJob(4, ["target=mu"], "1", process, Path(tmp_path), time.perf_counter())
    result = GpuPoolLauncher._collect(receive, job)
    assert result.status == JobStatus.FAILED and result.overrides == ["target=mu"]
    with pytest.raises(RuntimeError, match="sweep job #4 died with exit code 3"):
        _ = result.return_value


@pytest.mark.slow
def test_killing_the_sweep_stops_its_jobs(tmp_path, packed):
    """SIGTERM to the sweep (`kill`, a scheduler's time limit) must not leave jobs training on the GPUs."""
    command = [
        sys.executable, str(REPO / "train.py"), "-m", "hydra/launcher=gpu_pool", "hydra.launcher.gpus=[0,1]",
        "target=mu,homo,alpha", "data.subset=1000", "trainer.max_epochs=200", "trainer.accelerator=cpu",
        "logger=none", f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]  # fmt: skip
    env = dict(os.environ, WANDB_SILENT="true", PYTHONUNBUFFERED="1")
    sweep = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = ""
    while "#1 started" not in seen:
        line = sweep.stdout.readline()
        assert line, seen
        seen += line
    jobs = [
        int(pid)
        for pid in subprocess.run(["pgrep", "-P", str(sweep.pid)], capture_output=True, text=True).stdout.split()
    ]
    assert len(jobs) == 2
    checkpoint = tmp_path / "sweep" / "0-mu-edge_net" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 180
    while not checkpoint.exists():  # a job in the middle of training
        assert time.monotonic() < deadline and sweep.poll() is None
        time.sleep(0.5)
    sweep.send_signal(signal.SIGTERM)
    assert sweep.wait(timeout=60) != 0
    for pid in jobs:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not list((tmp_path / "sweep").glob("*/results.json"))
