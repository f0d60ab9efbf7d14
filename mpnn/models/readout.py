"""Readout functions R({h_v^T, x_v}) -> one vector per molecule, on PyG batches and dense batches.

`forward(h, batch)`: node states h of a PyG `Batch` ((N, d), molecules given by `batch.batch`) or
of a dense `MoleculeBatch` ((B, n, d), padding masked out). The readout is a config group:
`model/readout=set2set` or `model/readout=gated_sum`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn.aggr import Set2Set
from torch_geometric.utils import scatter

from mpnn.data.batch import MoleculeBatch


class Set2SetReadout(nn.Module):
    """set2set (Vinyals et al. 2015) over the atoms, as in Gilmer et al.: `steps` attention steps.

    PyG batches go through `torch_geometric.nn.aggr.Set2Set` itself; dense batches run the same
    LSTM and attention with a masked softmax over the padded atom slots. `fused=False` writes the
    LSTM step out with the same weights (for `torch.func.vmap`, which has no rule for the fused call).
    """

    fused: bool = True

    def __init__(self, in_dim: int, steps: int = 3):
        super().__init__()
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"model.readout.steps={steps!r} must be a whole number >= 1")
        self.set2set = Set2Set(in_dim, processing_steps=steps)
        self.out_dim = 2 * in_dim

    def forward(self, h: torch.Tensor, batch) -> torch.Tensor:
        if not isinstance(batch, MoleculeBatch):
            return self.set2set(h, index=batch.batch, dim_size=batch.num_graphs)
        b, d = h.shape[0], h.shape[-1]
        q, cell = h.new_zeros(b, d), h.new_zeros(b, d)
        q_star = h.new_zeros(b, 2 * d)
        for _ in range(self.set2set.processing_steps):
            if self.fused:
                q, (_, cell) = self.set2set.lstm(q_star.unsqueeze(0), (q.unsqueeze(0), cell.unsqueeze(0)))
                q, cell = q.view(b, d), cell.view(b, d)
            else:
                q, cell = self._lstm_step(q_star, q, cell)
            scores = torch.einsum("bnd,bd->bn", h, q).masked_fill(~batch.mask, float("-inf"))
            r = torch.einsum("bn,bnd->bd", torch.softmax(scores, dim=1), h)
            q_star = torch.cat([q, r], dim=-1)
        return q_star

    def _lstm_step(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of set2set's LSTM with its weights, written out (PyTorch's LSTM equations)."""
        lstm = self.set2set.lstm
        gates = x @ lstm.weight_ih_l0.T + lstm.bias_ih_l0 + h @ lstm.weight_hh_l0.T + lstm.bias_hh_l0
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class GatedSumReadout(nn.Module):
    """GG-NN readout (Li et al. 2016): sum_v sigmoid(i(h_v, x_v)) * j(h_v, x_v)."""

    def __init__(self, in_dim: int, out_dim: int = 128):
        super().__init__()
        self.gate = nn.Linear(in_dim, out_dim)
        self.value = nn.Linear(in_dim, out_dim)
        self.out_dim = out_dim

    def forward(self, h: torch.Tensor, batch) -> torch.Tensor:
        gated = torch.sigmoid(self.gate(h)) * self.value(h)
        if isinstance(batch, MoleculeBatch):
            return (gated * batch.mask.unsqueeze(-1)).sum(1)
        return scatter(gated, batch.batch, dim=0, dim_size=batch.num_graphs, reduce="sum")
