"""GINE (Hu et al., 2020), built from PyG's layers: the worked example of adding a model (README).

A model is a `MoleculeModel` (mpnn/models/protocol.py): it takes `data` (what the batches hold)
plus its own settings, and maps a PyG batch to one standardised prediction per molecule.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import GINEConv, global_add_pool, global_mean_pool

from mpnn.data.spec import DataSpec
from mpnn.models.protocol import MoleculeModel


class GINE(MoleculeModel):
    backends = ("pyg",)  # forward takes PyG batches

    def __init__(self, data: DataSpec, hidden_dim: int = 128, layers: int = 4):
        super().__init__()
        self.embed = nn.Linear(data.node_features, hidden_dim)
        self.convs = nn.ModuleList(
            GINEConv(nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, hidden_dim)),
                     edge_dim=data.edge_dim)
            for _ in range(layers)
        )  # fmt: skip
        # On the complete graph a sum over ~17 neighbours per layer grows activations ~17x per layer
        # (an initial loss in the thousands); a LayerNorm after each layer keeps them at unit scale.
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_dim) for _ in range(layers))
        self.pool = global_add_pool if data.pooling == "sum" else global_mean_pool  # the target's recipe
        # Normalised pooled states: the untrained prediction is near 0, the standardised target's mean.
        self.head = nn.Sequential(
            nn.LayerNorm(hidden_dim), nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1)
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        h = self.embed(batch.x)
        for conv, norm in zip(self.convs, self.norms):
            h = h + torch.relu(norm(conv(h, batch.edge_index, batch.edge_attr)))
        return self.head(self.pool(h, batch.batch)).squeeze(-1)
