"""OmegaConf resolvers used by this project's configs; `register()` runs before Hydra composes them.

`${unique_dir:PATH}` makes run and sweep directories unique: two runs (or two sweeps) started in the
same second get `PATH` and `PATH_2` instead of sharing one directory, where they would overwrite each
other's files. It is cached (`use_cache`): a config resolves it once, and Hydra copies that cache
from a sweep's config to each of its jobs, so all jobs of one sweep land in the sweep's one directory
(forked gpu_pool jobs inherit it; submitit's jobs receive it, and the resolver, in their pickle).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


def claim_directory(path: str) -> str:
    """Create and return `path`, or `path_2`, `path_3`, ... if taken: `mkdir` either creates a
    directory or fails because it exists, so no two processes can claim the same one."""
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    candidate, number = base, 1
    while True:
        try:
            candidate.mkdir()
            return str(candidate)
        except FileExistsError:
            number += 1
            candidate = base.with_name(f"{base.name}_{number}")


def register() -> None:
    """Make the resolvers known to OmegaConf (again: registering twice is harmless)."""
    OmegaConf.register_new_resolver("unique_dir", claim_directory, use_cache=True, replace=True)
