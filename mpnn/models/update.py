"""Update functions U(h_v, m_v): the GRU of GG-NN, weights tied over the T steps."""

from __future__ import annotations

import torch
from torch import nn

from mpnn.models.precision import float32, float32_region


class GRUUpdate(nn.Module):
    """h_v <- GRU(h_v, m_v) for every atom: node states (N, d) of a PyG batch or (B, n, d) dense.

    A GRUCell on all atoms at once replaces the length-1 cuDNN sequence call of the PyG example.
    The state stays in float32 under bf16 autocast (`mpnn.models.precision`).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.cell = nn.GRUCell(dim, dim)

    def forward(self, h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        shape = h.shape
        with float32_region(h.device.type):
            return self.cell(float32(m).reshape(-1, shape[-1]), float32(h).reshape(-1, shape[-1])).view(shape)
