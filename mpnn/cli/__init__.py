"""Command-line entry points (`mpnn-train`, `mpnn-predict`, ...; see pyproject.toml). The scripts
in scripts/ and train.py at the top of the repository call these."""

from __future__ import annotations

from pathlib import Path

from mpnn import hydra_resolvers

hydra_resolvers.register()  # before Hydra composes a config: run and sweep directories use ${unique_dir:...}

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"  # the repository's configs (editable install)


def compose(overrides: list[str]):
    """The training config composed as `mpnn-train` would, for tools that take its overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)
