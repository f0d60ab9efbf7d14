"""The training config as Hydra composes it, for every layer that takes the command line's overrides
(the benchmark, the diagnostics, the tests) without going through a command-line entry point."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from mpnn.hydra_resolvers import register

register()  # before Hydra composes a config: run and sweep directories use ${unique_dir:...}

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"  # the repository's configs (editable install)


def compose(overrides: list[str]) -> DictConfig:
    """The training config composed as `mpnn-train` would, for tools that take its overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


def experiment_names() -> list[str]:
    """The configs in conf/experiment/, by name (what `experiment=NAME` takes)."""
    return sorted(path.stem for path in (CONF_DIR / "experiment").glob("*.yaml"))
