"""QM9 data: `from mpnn.data import QM9Dataset` (a PyG dataset) and `QM9DataModule` (the training pipeline's).

Both are imported on first use, so that `mpnn.data.cache` alone stays light (no PyG, Lightning or RDKit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mpnn.data.datamodule import QM9DataModule
    from mpnn.data.dataset import QM9Dataset

__all__ = ["QM9Dataset", "QM9DataModule"]


def __getattr__(name: str):
    if name == "QM9Dataset":
        from mpnn.data.dataset import QM9Dataset

        return QM9Dataset
    if name == "QM9DataModule":
        from mpnn.data.datamodule import QM9DataModule

        return QM9DataModule
    raise AttributeError(f"module 'mpnn.data' has no attribute {name!r}")
