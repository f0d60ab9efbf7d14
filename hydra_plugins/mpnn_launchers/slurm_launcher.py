"""Hydra's submitit SLURM launcher (`hydra/launcher=slurm`), with two changes a sweep on a cluster needs.

- A job whose run fails or is refused fails for SLURM too (exit status 1, state FAILED) and gives the
  sweep its traceback. Hydra's launcher returns the failure as a value: the job ended COMPLETED with exit
  code 0, and only a pickle under .submitit/ said otherwise.
- Job states come from `squeue` where SLURM keeps no accounting database (`sacct` fails; submitit then
  warned on every poll and could not tell a job that died without a result from one still queued).

Requeueing stays submitit's (see mpnn.training.slurm): a requeued job keeps its job id, so the sweep
waits for it to finish instead of failing with its first start.
"""

from __future__ import annotations

import logging
import subprocess

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from submitit.slurm import slurm as submitit_slurm

log = logging.getLogger(__name__)
_FIELDS = "JobID|State|NodeList"  # what submitit reads from sacct --parsable2
GONE = "NOT_IN_QUEUE"  # neither running nor queued, and no result written: the job died (counts as done)


class QueueWatcher(submitit_slurm.SlurmInfoWatcher):
    """submitit's job-state watcher, reading `squeue` when `sacct` has no accounting database to read."""

    def __init__(self, delay_s: int = 30) -> None:
        super().__init__(delay_s=delay_s)
        self._use_squeue: bool | None = None

    def _make_command(self) -> list[str] | None:
        if self._use_squeue is None:
            probe = subprocess.run(["sacct", "--noheader", "--jobs=1"], capture_output=True)
            self._use_squeue = probe.returncode != 0
            if self._use_squeue:
                log.info("sacct is not available (%s): job states from squeue", probe.stderr.decode().strip())
        if not self._use_squeue:
            return super()._make_command()
        if not self._registered - self._finished:
            return None
        return ["squeue", "--me", "--states=all", "--noheader", "--array", "--format=%i|%T|%N"]

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        if not self._use_squeue:
            return super().read_info(string)
        text = string.decode() if isinstance(string, bytes) else string
        found = super().read_info(f"{_FIELDS}\n{text}")
        for job in self._registered - self._finished - set(found):
            found[job] = {"JobID": job, "State": GONE, "NodeList": ""}
        return found


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    """One SLURM job per sweep point (conf/hydra/launcher/slurm.yaml)."""

    def __call__(self, *args, **kwargs) -> JobReturn:
        result = super().__call__(*args, **kwargs)
        if result.status == JobStatus.FAILED:
            _ = result.return_value  # raises the run's exception: submitit records its traceback, the job fails
        return result

    def launch(self, *args, **kwargs):
        if not isinstance(submitit_slurm.SlurmJob.watcher, QueueWatcher):
            submitit_slurm.SlurmJob.watcher = QueueWatcher()
        return super().launch(*args, **kwargs)
