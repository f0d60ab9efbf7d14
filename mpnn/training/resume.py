"""The resume policy: which checkpoint a start continues from, and what must not change when it does.

A run directory holds one run. A start refused for any reason changes nothing in it.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

# What defines a run: a resumed run must match its start in these (speed, trainer and logging may change).
RUN_DEFINING_KEYS = (
    "target", "recipe", "seed", "model", "data.edges", "data.virtual_edges", "data.explicit_h", "data.batch_size",
    "data.subset", "data.train_size", "data.split_seed", "optim.lr", "optim.weight_decay", "optim.optimizer",
    "optim.gradient_clip_val", "schedule", "callbacks",
)  # fmt: skip
CONFIG_FILE = "config_resolved.yaml"


def run_definition(cfg: DictConfig) -> dict:
    """The values of RUN_DEFINING_KEYS in a config, resolved to plain Python values."""
    values = {key: OmegaConf.select(cfg, key) for key in RUN_DEFINING_KEYS}
    return {key: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v for key, v in values.items()}


def checkpoint_to_resume(cfg: DictConfig, run_dir: Path) -> Path | None:
    """last.ckpt of an interrupted run when `resume=true`, else None; refuses to mix two runs in one directory."""
    results = run_dir / "results.json"
    if results.exists():
        raise FileExistsError(
            f"{results} exists: this run directory holds a finished run; choose another hydra.run.dir"
        )
    checkpoints = run_dir / "checkpoints"
    if not cfg.get("resume"):
        if checkpoints.is_dir() and any(checkpoints.iterdir()):
            raise FileExistsError(
                f"{checkpoints} holds checkpoints of an earlier run; continue it with resume=true, "
                "or choose another hydra.run.dir"
            )
        return None
    last = checkpoints / "last.ckpt"
    if not last.exists():
        raise FileNotFoundError(f"resume=true but {last} does not exist: there is no interrupted run to continue")
    saved = run_definition(OmegaConf.load(run_dir / CONFIG_FILE))
    changed = [key for key, value in run_definition(cfg).items() if saved[key] != value]
    if changed:
        raise ValueError(
            f"resume=true with settings that differ from the interrupted run: {', '.join(changed)} "
            f"(see {run_dir / CONFIG_FILE}); only speed, trainer and logging settings may change"
        )
    return last
