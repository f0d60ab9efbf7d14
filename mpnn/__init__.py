"""mpnn-qm9: Gilmer et al.'s message passing neural networks on QM9, in PyTorch Geometric.

from mpnn import load_checkpoint
model = load_checkpoint("best.ckpt")      # ready to predict in physical units
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mpnn.inference import load_checkpoint

__all__ = ["load_checkpoint"]


def __getattr__(name: str):
    if name == "load_checkpoint":  # imported on first use: `import mpnn.data.cache` stays light
        from mpnn.inference import load_checkpoint

        return load_checkpoint
    raise AttributeError(f"module 'mpnn' has no attribute {name!r}")
