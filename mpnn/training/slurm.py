"""A run inside a SLURM job started by Hydra's submitit launcher (`hydra/launcher=slurm`).

One mechanism requeues: submitit's. SLURM sends USR2 `hydra.launcher.signal_delay_s` before the time
limit (submitit asks for it with `--signal`); submitit's handler requeues the job with the same overrides
and job directory. Lightning's own SLURM requeue (a handler of USR1 that saves `hpc_ckpt_*.ckpt`) is
switched off in the training build. Here:

- USR2 stops training at the end of the batch in progress, as SIGTERM does, and only then hands the
  signal to submitit, which requeues the job and exits (submitit's handler alone would exit in the middle
  of a step, with the loggers open).
- A preemption or `scontrol requeue` sends SIGTERM: Lightning stops at the end of the batch, the process
  exits, and SLURM starts the job again later.
- Either way the run continues from last.ckpt, written at the end of the last whole epoch, and redoes the
  epoch in progress: it ends with the validation MAEs of an uninterrupted run (tests/training/test_slurm.py).
- A requeued job (SLURM_RESTART_COUNT > 0) continues the run its first start left in the same run
  directory, without `resume=true`: `mpnn.training.resume.checkpoint_to_resume` asks `continues_here`.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L

JOB_FILE = "slurm_job"  # in the run directory: the SLURM job that started the run
REQUEUE_SIGNAL = signal.SIGUSR2  # what submitit's SLURM jobs are sent before their time limit
_requested: list[Callable] = []  # the handler to call once training has stopped (submitit's)


def job_id() -> str | None:
    """This process's SLURM job ("<array job>_<task>" for an array task), or None outside SLURM.
    It stays the same when SLURM requeues the job."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def restarts() -> int:
    """How often SLURM has requeued this job (0 on its first start)."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0)


def record_job(run_dir: Path) -> None:
    """Remember which SLURM job started the run in `run_dir` (nothing outside SLURM)."""
    if job_id() is not None:
        (run_dir / JOB_FILE).write_text(f"{job_id()}\n")


def continues_here(run_dir: Path) -> bool:
    """True when this process is a requeued start of the SLURM job that started the run in `run_dir`."""
    recorded = run_dir / JOB_FILE
    return restarts() > 0 and recorded.exists() and recorded.read_text().strip() == job_id()


@contextmanager
def stop_before_requeue() -> Iterator[None]:
    """While training in a SLURM job: on REQUEUE_SIGNAL, remember the handler it replaced (submitit's)
    instead of running it at once in the middle of a step; `StopForRequeue` then ends training at the end
    of the batch, and `requeue_if_requested` runs submitit's handler after the checkpoint is written."""
    if job_id() is None:
        yield
        return
    previous = signal.getsignal(REQUEUE_SIGNAL)

    def remember(signum: int, frame) -> None:
        print(f"Received {signal.Signals(signum).name}: stopping at the end of this batch to requeue", flush=True)
        if callable(previous) and not _requested:
            _requested.append(previous)

    signal.signal(REQUEUE_SIGNAL, remember)
    try:
        yield
    finally:
        signal.signal(REQUEUE_SIGNAL, previous)


def requeue_if_requested() -> None:
    """After training stopped for REQUEUE_SIGNAL: run submitit's handler (requeue the job, exit)."""
    if _requested:
        _requested.pop()(REQUEUE_SIGNAL, None)


class StopForRequeue(L.Callback):
    """Once REQUEUE_SIGNAL arrived, sends this process SIGTERM at the end of the next batch, so that
    Lightning stops there exactly as on a preemption; a signal that came before training started stops it
    after its first batch."""

    def __init__(self) -> None:
        self._sent = False

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if _requested and not self._sent:
            self._sent = True
            os.kill(os.getpid(), signal.SIGTERM)
