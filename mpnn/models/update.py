"""Update functions U(h_v, m_v): the GRU of GG-NN, weights tied over the T steps."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mpnn.models.precision import float32, float32_region


class GRUUpdate(nn.Module):
    """h_v <- GRU(h_v, m_v) for every atom: node states (N, d) of a PyG batch or (B, n, d) dense.

    A GRUCell on all atoms at once replaces the length-1 cuDNN sequence call of the PyG example.
    The state stays in float32 under bf16 autocast (`mpnn.models.precision`). `fused=False` writes
    the cell out with the same weights (for `torch.func.vmap`, which runs the fused cell member by member).
    `bias=False` is the paper's reference implementation's GRU (no bias terms).
    """

    fused: bool = True

    def __init__(self, dim: int, bias: bool = True):
        super().__init__()
        self.cell = nn.GRUCell(dim, dim, bias=bias)

    def forward(self, h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        shape = h.shape
        with float32_region(h.device.type):
            m, h = float32(m).reshape(-1, shape[-1]), float32(h).reshape(-1, shape[-1])
            return (self.cell(m, h) if self.fused else self._written_out(m, h)).view(shape)

    def _written_out(self, m: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """PyTorch's GRUCell equations: reset r, update z, candidate n; h' = (1 - z) n + z h."""
        cell = self.cell
        i_r, i_z, i_n = F.linear(m, cell.weight_ih, cell.bias_ih).chunk(3, dim=-1)
        h_r, h_z, h_n = F.linear(h, cell.weight_hh, cell.bias_hh).chunk(3, dim=-1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h
