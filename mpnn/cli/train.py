"""`mpnn-train` (= `python train.py`): train one model on one QM9 target, e.g. `model=edge_net target=mu`."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import DictConfig

from mpnn.cli import CONF_DIR

# Errors this project raises for bad settings and refused starts; their messages say what to do.
USER_ERRORS = (ValueError, FileExistsError, FileNotFoundError, PermissionError)
SIGTERM_EXIT_CODE = 128 + 15  # as a process killed by SIGTERM: schedulers count the job as not completed


class RunRefused(CompactHydraException):
    """A refused or failed start, printed by Hydra as its message alone (HYDRA_FULL_ERROR=1: the traceback)."""


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float:
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from mpnn.logs import quiet_logs
    from mpnn.training import slurm
    from mpnn.training.callbacks import Diverged
    from mpnn.training.resume import resume_command
    from mpnn.training.run import train

    quiet_logs()
    hydra_config = HydraConfig.get()
    run_dir = Path(hydra_config.runtime.output_dir)
    try:
        with slurm.stop_before_requeue():
            results = train(cfg, run_dir, hydra_config.runtime.choices.get("model"))
    except (*USER_ERRORS, Diverged) as error:
        if isinstance(error, Diverged) and hydra_config.mode == RunMode.MULTIRUN:
            # One diverged job (its results.json says so) must not end a sweep: a search gets the worst value.
            print(f"Diverged: {error} ({run_dir})", file=sys.stderr)
            return math.inf
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        raise RunRefused(f"{type(error).__name__}: {error}") from None
    except SIGTERMException:  # Lightning stopped at the end of a batch; last.ckpt holds the last whole epoch
        slurm.requeue_if_requested()  # stopped before the time limit: submitit requeues the job and exits
        if (run_dir / "checkpoints" / "last.ckpt").exists():
            how = f"continue it with:\n  {resume_command(run_dir, list(hydra_config.overrides.task))}"
        else:
            how = "it stopped before saving a checkpoint: start it again"
        print(f"Stopped by SIGTERM: {run_dir} holds the interrupted run; {how}", file=sys.stderr)
        raise SystemExit(SIGTERM_EXIT_CODE) from None
    if not results:  # a non-zero DDP rank
        return float("nan")
    print(
        f"{results['target']}: test MAE {results['test_mae']:.5g} {results['unit']} "
        f"(error ratio {results['test_error_ratio']:.3f}); results in {hydra_config.runtime.output_dir}"
    )
    return results["best_val_mae"]  # what a Hydra sweeper minimises: model selection never sees the test set


if __name__ == "__main__":
    main()
