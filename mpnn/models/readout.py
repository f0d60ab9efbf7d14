"""Readout functions R({h_v^T, x_v}) -> graph vector, masked over padded atom slots."""

from __future__ import annotations

import torch
from torch import nn


class Set2SetReadout(nn.Module):
    """set2set (Vinyals et al. 2015) over the atoms, as in Gilmer et al.: M attention steps."""

    def __init__(self, in_dim: int, steps: int = 3):
        super().__init__()
        self.in_dim = in_dim
        self.steps = steps
        self.lstm = nn.LSTMCell(2 * in_dim, in_dim)
        self.out_dim = 2 * in_dim

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b = h.shape[0]
        q_star = h.new_zeros(b, 2 * self.in_dim)
        state = (h.new_zeros(b, self.in_dim), h.new_zeros(b, self.in_dim))
        for _ in range(self.steps):
            q, c = self.lstm(q_star, state)
            state = (q, c)
            scores = torch.einsum("bnd,bd->bn", h, q).masked_fill(~mask, float("-inf"))
            attention = torch.softmax(scores, dim=1)
            r = torch.einsum("bn,bnd->bd", attention, h)
            q_star = torch.cat([q, r], dim=-1)
        return q_star


class GatedSumReadout(nn.Module):
    """GG-NN readout (Li et al. 2016): sum_v sigmoid(i(h_v, x_v)) * j(h_v, x_v)."""

    def __init__(self, in_dim: int, out_dim: int = 128):
        super().__init__()
        self.gate = nn.Linear(in_dim, out_dim)
        self.value = nn.Linear(in_dim, out_dim)
        self.out_dim = out_dim

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        gated = torch.sigmoid(self.gate(h)) * self.value(h)
        return (gated * mask.unsqueeze(-1)).sum(1)
