"""Command-line entry points (`mpnn-train`, `mpnn-predict`, ...; see pyproject.toml). The scripts
in scripts/ and train.py at the top of the repository call these."""

from __future__ import annotations

from mpnn.config import CONF_DIR, compose

__all__ = ["CONF_DIR", "compose"]
