"""A Hydra launcher that runs a sweep's jobs in parallel on one machine, each job on its own GPU.

`python train.py -m hydra/launcher=gpu_pool target=mu,alpha,homo` on a node with several GPUs runs one
job per GPU at a time and queues the rest (`hydra.launcher.jobs_per_gpu=2` shares each GPU between two
jobs, worth it for small models). Each job is a forked process that sees only its GPU through
CUDA_VISIBLE_DEVICES, so the training code is unchanged; its console output goes to `console.log` in
its run directory. Hydra's own launchers run jobs one after another (basic) or give every local job
the same devices (submitit's local executor), which is why this one exists.
"""

import logging
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


def visible_gpus() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else every GPU nvidia-smi lists."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [gpu.strip() for gpu in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if gpu.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    listed = subprocess.run(
        ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, check=False
    )
    return listed.stdout.split() if listed.returncode == 0 else []


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(f"sweep stopped by signal {signal.Signals(signum).name}")


@dataclass
class _RunningJob:
    index: int
    overrides: list[str]
    gpu: str
    process: BaseProcess
    job_dir: Path
    start: float


class GpuPoolLauncher(Launcher):
    """Runs sweep jobs as parallel processes, `jobs_per_gpu` per GPU, each pinned to one GPU."""

    def __init__(self, gpus: Sequence[int | str] | int | str | None = None, jobs_per_gpu: int = 1) -> None:
        if not isinstance(jobs_per_gpu, int) or jobs_per_gpu < 1:
            raise ValueError(f"hydra.launcher.jobs_per_gpu={jobs_per_gpu!r}: must be a whole number >= 1")
        if isinstance(gpus, (int, str)):  # gpus=3 or gpus="0,2"
            gpus = str(gpus).split(",")
        self.gpus = None if gpus is None else [str(gpu).strip() for gpu in gpus]
        self.jobs_per_gpu = jobs_per_gpu
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def slots(self) -> list[str]:
        """One GPU id per job that may run at once, alternating GPUs so that jobs spread out first."""
        visible = visible_gpus()
        gpus = visible if self.gpus is None else self.gpus
        if not gpus:
            raise ValueError(
                "hydra/launcher=gpu_pool found no GPU (neither CUDA_VISIBLE_DEVICES nor nvidia-smi lists one); "
                "name them with hydra.launcher.gpus=[0,1], or drop hydra/launcher=gpu_pool to run jobs in turn"
            )
        unknown = ", ".join(gpu for gpu in gpus if visible and gpu not in visible)
        if unknown:
            raise ValueError(f"hydra.launcher.gpus: {unknown} not among the visible GPUs {', '.join(visible)}")
        if not visible:
            log.warning(f"no GPU is visible here: the jobs get CUDA_VISIBLE_DEVICES={','.join(gpus)} but will see none")
        return [gpu for _ in range(self.jobs_per_gpu) for gpu in gpus]

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        free = self.slots()
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info(f"Launching {len(job_overrides)} jobs on GPUs {', '.join(sorted(set(free)))}, {len(free)} at a time")
        fork = multiprocessing.get_context("fork")  # a job inherits its config and the task; only results are pickled
        pending = list(enumerate(job_overrides, start=initial_job_idx))
        running: dict[Connection, _RunningJob] = {}
        returns: dict[int, JobReturn] = {}
        start = time.perf_counter()
        previous_handler = signal.signal(signal.SIGTERM, _exit_on_signal)  # `kill` stops the jobs too
        try:
            while pending or running:
                while pending and free:
                    index, overrides = pending.pop(0)
                    gpu = free.pop(0)
                    config = self._job_config(list(overrides), index)
                    job_dir = Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)
                    receive, send = fork.Pipe(duplex=False)
                    process = fork.Process(target=self._run_in_child, args=(config, gpu, job_dir, send))
                    process.start()
                    send.close()  # the child holds the only sending end: its exit wakes `wait`
                    running[receive] = _RunningJob(index, list(overrides), gpu, process, job_dir, time.perf_counter())
                    log.info(f"\t#{index} started on GPU {gpu}: {' '.join(filter_overrides(overrides))}")
                for receive in wait(list(running)):
                    job = running.pop(receive)
                    returns[job.index] = self._collect(receive, job)
                    free.append(job.gpu)
                    status = returns[job.index].status.name.lower()
                    log.info(
                        f"\t#{job.index} {status} on GPU {job.gpu} after {time.perf_counter() - job.start:.0f} s "
                        f"({len(returns)}/{len(job_overrides)} done); output in {job.job_dir / 'console.log'}"
                    )
        finally:
            signal.signal(signal.SIGTERM, previous_handler)
            for job in running.values():  # interrupted or killed: leave no job running on the GPUs
                job.process.terminate()
                job.process.join()
        failed = [index for index, result in sorted(returns.items()) if result.status != JobStatus.COMPLETED]
        log.info(
            f"{len(returns) - len(failed)} of {len(returns)} jobs completed in {time.perf_counter() - start:.0f} s"
            + (f"; failed: {', '.join(f'#{index}' for index in failed)}" if failed else "")
        )
        return [returns[index] for index in sorted(returns)]

    def _job_config(self, overrides: list[str], index: int) -> DictConfig:
        assert self.config is not None and self.hydra_context is not None
        config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(config):
            config.hydra.job.id = index
            config.hydra.job.num = index
        HydraConfig.instance().set_config(config)  # resolves ${hydra:...} in the job's directory name
        return config

    def _run_in_child(self, config: DictConfig, gpu: str, job_dir: Path, send: Connection) -> None:
        """In the forked job: see one GPU, write the console to the run directory, run, report back."""
        assert self.hydra_context is not None and self.task_function is not None
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the sweep's handler: terminate() ends the job
        os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # the same numbering as nvidia-smi
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        job_dir.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        console = os.open(job_dir / "console.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(console, 1)
        os.dup2(console, 2)
        result = run_job(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        try:
            send.send(result)
        except Exception as error:  # an exception or return value that cannot be pickled
            result.status = JobStatus.FAILED
            result.return_value = RuntimeError(f"{result._return_value!r} (not picklable: {error})")
            send.send(result)

    @staticmethod
    def _collect(receive: Connection, job: _RunningJob) -> JobReturn:
        """The job's JobReturn, or a failed one if the process died without sending it."""
        try:
            result = receive.recv()
        except EOFError:
            result = None
        receive.close()
        job.process.join()
        if result is None:
            result = JobReturn(overrides=job.overrides, status=JobStatus.FAILED, working_dir=str(job.job_dir))
            result.return_value = RuntimeError(
                f"sweep job #{job.index} died with exit code {job.process.exitcode} before reporting; "
                f"see {job.job_dir / 'console.log'}"
            )
        return result
