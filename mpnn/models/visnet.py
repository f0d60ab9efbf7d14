"""ViSNet (Wang et al., 2024) as PyG implements it, under the project's model protocol.

Only `representation_model.distance` is replaced: PyG's `Distance` calls
`torch_geometric.nn.radius_graph` (pyg-lib or torch-cluster); `RadiusDistance` builds the same
graph, self-loops included, in plain torch.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Batch
from torch_geometric.nn.models import visnet as pyg_visnet

from mpnn.data.spec import DataSpec
from mpnn.models.geometry import radius_graph
from mpnn.models.protocol import MoleculeModel


class RadiusDistance(pyg_visnet.Distance):
    """PyG's ViSNet `Distance` (edges, their lengths and vectors pos_j - pos_i) built without pyg-lib.

    Self-loops get length 0 in the dtype of `pos` (PyG's version makes them float32 whatever `pos`
    is, which breaks `.double()`), and their norm is never taken, so gradients stay finite.
    """

    def forward(self, pos: Tensor, batch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        edge_index = radius_graph(
            pos, batch, self.cutoff, loop=self.add_self_loops, max_num_neighbors=self.max_num_neighbors
        )
        edge_vec = pos[edge_index[0]] - pos[edge_index[1]]
        if self.add_self_loops:
            mask = edge_index[0] != edge_index[1]
            edge_weight = torch.zeros(edge_vec.size(0), dtype=pos.dtype, device=pos.device)
            edge_weight[mask] = torch.norm(edge_vec[mask], dim=-1)
        else:
            edge_weight = torch.norm(edge_vec, dim=-1)
        return edge_index, edge_weight, edge_vec


class ViSNetModel(MoleculeModel):
    """`torch_geometric.nn.models.ViSNet` on atomic numbers and positions, outputs summed or averaged per molecule.

    PyG's own mean/std stay 0/1 (the target scaler standardises). Its `prior_model` (a per-element
    offset, zero at start and trained) is kept as PyG builds it.
    """

    backends = ("pyg",)

    def __init__(
        self,
        data: DataSpec,
        lmax: int = 1,
        vecnorm_type: str | None = None,
        trainable_vecnorm: bool = False,
        num_heads: int = 8,
        num_layers: int = 6,
        hidden_channels: int = 128,
        num_rbf: int = 32,
        trainable_rbf: bool = False,
        max_z: int = 100,
        cutoff: float = 5.0,
        max_num_neighbors: int = 32,
        vertex: bool = False,
    ):
        super().__init__()
        self.net = pyg_visnet.ViSNet(
            lmax=lmax,
            vecnorm_type=vecnorm_type,
            trainable_vecnorm=trainable_vecnorm,
            num_heads=num_heads,
            num_layers=num_layers,
            hidden_channels=hidden_channels,
            num_rbf=num_rbf,
            trainable_rbf=trainable_rbf,
            max_z=max_z,
            cutoff=cutoff,
            max_num_neighbors=max_num_neighbors,
            vertex=vertex,
            reduce_op="sum" if data.pooling == "sum" else "mean",
        )
        pyg_distance = self.net.representation_model.distance
        self.net.representation_model.distance = RadiusDistance(
            pyg_distance.cutoff, pyg_distance.max_num_neighbors, pyg_distance.add_self_loops
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        y, _ = self.net(batch.z, batch.pos, batch.batch)  # (energy, negative forces): no forces asked
        return y.squeeze(-1)
