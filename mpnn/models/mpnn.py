"""The message passing neural network of Gilmer et al. (2017), assembled from small parts.

    h_v^0   = embed(x_v)
    m_v^t+1 = sum_w M(h_v^t, h_w^t, e_vw)          (message module, prepared once per forward)
    h_v^t+1 = U(h_v^t, m_v^t+1)                    (update module, weights tied over t)
    y       = head(R({[h_v^T, x_v]}))              (readout module, then an MLP)

Variants (section 5 of the paper): `towers=k` splits h into k parts of d/k, each with its own
message and update, mixed by a shared network after every step; `master_node=True` adds a
node linked to every atom by its own edge type, with its own state size and GRU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mpnn.data.batch import MoleculeBatch
from mpnn.data.edges import EdgeFeaturizer
from mpnn.models.message import Message
from mpnn.models.readout import GatedSumReadout, Set2SetReadout
from mpnn.models.scaler import TargetScaler

READOUTS = {"set2set": Set2SetReadout, "gated_sum": GatedSumReadout}


class MasterNode(nn.Module):
    """A global node: receives a sum over atoms, sends one message to every atom."""

    def __init__(self, dim: int, master_dim: int):
        super().__init__()
        self.initial = nn.Parameter(torch.zeros(master_dim))
        self.to_atoms = nn.Linear(master_dim, dim)  # the master's own edge type towards atoms
        self.from_atoms = nn.Linear(dim, master_dim)
        self.update = nn.GRUCell(master_dim, master_dim)

    def start(self, batch_size: int) -> torch.Tensor:
        return self.initial.expand(batch_size, -1)

    def step(self, g: torch.Tensor, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (message to every atom (B, 1, d), new master state)."""
        to_atoms = self.to_atoms(g).unsqueeze(1)
        received = (self.from_atoms(h) * mask.unsqueeze(-1)).sum(1)
        return to_atoms, self.update(received, g)


class MPNN(nn.Module):
    def __init__(
        self,
        node_features: int,
        edges: EdgeFeaturizer,
        message: Callable[..., Message],
        update: Callable[..., nn.Module],
        readout: str | Callable[..., nn.Module] = "set2set",
        readout_steps: int = 3,
        hidden_dim: int = 64,
        steps: int = 3,
        towers: int = 1,
        master_node: bool = False,
        master_dim: int | None = None,
    ):
        super().__init__()
        for name, value, least in (("hidden_dim", hidden_dim, 1), ("steps", steps, 0), ("towers", towers, 1)):
            if not isinstance(value, int) or value < least:
                raise ValueError(f"model.{name}={value!r} must be a whole number >= {least}")
        if readout == "set2set" and (not isinstance(readout_steps, int) or readout_steps < 1):
            raise ValueError(f"model.readout_steps={readout_steps!r} must be a whole number >= 1")
        if hidden_dim % towers:
            raise ValueError(f"model.hidden_dim={hidden_dim} must be divisible by model.towers={towers}")
        self.steps = steps
        self.towers = towers
        part = hidden_dim // towers
        self.edges = edges
        edge_dim, num_edge_types = edges.edge_dim, edges.num_edge_types
        self.embed = nn.Sequential(nn.Linear(node_features, hidden_dim), nn.ReLU())
        self.messages = nn.ModuleList(
            message(dim=part, edge_dim=edge_dim, num_edge_types=num_edge_types) for _ in range(towers)
        )
        self.updates = nn.ModuleList(update(dim=part) for _ in range(towers))
        self.mix = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.ReLU()) if towers > 1 else None
        self.master = MasterNode(hidden_dim, master_dim or hidden_dim) if master_node else None
        self.readout = self._readout(readout, hidden_dim + node_features, readout_steps)
        self.head = nn.Sequential(nn.Linear(self.readout.out_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1))
        # Start at the normalised target mean (0) with a small spread, so the initial loss is ~1.
        nn.init.zeros_(self.head[-1].bias)
        self.head[-1].weight.data.mul_(0.1)
        self.scaler = TargetScaler()

    @staticmethod
    def _readout(readout: str | Callable[..., nn.Module], in_dim: int, steps: int) -> nn.Module:
        """A readout by name (`model.readout=gated_sum`) or any factory taking `in_dim`."""
        if callable(readout):
            return readout(in_dim=in_dim)
        if readout not in READOUTS:
            raise ValueError(f"unknown model.readout={readout!r}; valid: {', '.join(READOUTS)}")
        return Set2SetReadout(in_dim, steps) if readout == "set2set" else GatedSumReadout(in_dim)

    def forward(self, batch: MoleculeBatch) -> torch.Tensor:
        """Prediction of the normalised target, shape (B,)."""
        x, mask = batch.x, batch.mask
        edges = batch.edges if batch.edges is not None else self.edges(batch)
        h = self.embed(x) * mask.unsqueeze(-1)
        prepared = [message.prepare(edges) for message in self.messages]
        g = self.master.start(x.shape[0]) if self.master is not None else None
        for _ in range(self.steps):
            parts = h.chunk(self.towers, dim=-1)
            m = torch.cat([msg(part, prep) for msg, part, prep in zip(self.messages, parts, prepared)], -1)
            if self.master is not None:
                to_atoms, g = self.master.step(g, h, mask)
                m = m + to_atoms
            m_parts = m.chunk(self.towers, dim=-1)
            h = torch.cat([update(part, mp) for update, part, mp in zip(self.updates, parts, m_parts)], -1)
            if self.mix is not None:
                h = self.mix(h)
            h = h * mask.unsqueeze(-1)
        graph = self.readout(torch.cat([h, x], -1), mask)
        return self.head(graph).squeeze(-1)

    @torch.no_grad()
    def predict(self, batch: MoleculeBatch) -> torch.Tensor:
        """Prediction in the target's physical unit (float64)."""
        return self.scaler.denormalise(self(batch))
