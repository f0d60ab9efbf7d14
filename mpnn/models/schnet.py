"""SchNet (Schütt et al., 2017) as PyG implements it, under the project's model protocol.

Only the interaction graph is replaced: PyG's default one calls `torch_geometric.nn.radius_graph`,
which needs pyg-lib or torch-cluster; this one builds the same edges in plain torch.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Batch
from torch_geometric.nn.models import schnet as pyg_schnet

from mpnn.data.spec import DataSpec
from mpnn.models.geometry import radius_graph
from mpnn.models.protocol import MoleculeModel


class RadiusInteractionGraph(pyg_schnet.RadiusInteractionGraph):
    """PyG's SchNet interaction graph (edges within `cutoff` and their lengths), built without pyg-lib."""

    def forward(self, pos: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]:
        edge_index = radius_graph(pos, batch, self.cutoff, max_num_neighbors=self.max_num_neighbors)
        row, col = edge_index
        return edge_index, (pos[row] - pos[col]).norm(dim=-1)


class SchNetModel(MoleculeModel):
    """`torch_geometric.nn.models.SchNet` on atomic numbers and positions; per-atom outputs summed or averaged.

    The target scaler replaces SchNet's own mean/std/atomref, so those stay unset; SchNet's dipole
    head (charges times positions, used by SchNetPack for mu) predicts |mu| in physical units and
    cannot predict the standardised target, so it is not offered.
    """

    backends = ("pyg",)

    def __init__(
        self,
        data: DataSpec,
        hidden_channels: int = 128,
        num_filters: int = 128,
        num_interactions: int = 6,
        num_gaussians: int = 50,
        cutoff: float = 10.0,
        max_num_neighbors: int = 32,
    ):
        super().__init__()
        self.net = pyg_schnet.SchNet(
            hidden_channels=hidden_channels,
            num_filters=num_filters,
            num_interactions=num_interactions,
            num_gaussians=num_gaussians,
            cutoff=cutoff,
            interaction_graph=RadiusInteractionGraph(cutoff, max_num_neighbors),
            readout="add" if data.pooling == "sum" else "mean",
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.net(batch.z, batch.pos, batch.batch).squeeze(-1)
