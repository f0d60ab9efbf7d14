"""DimeNet++ (Gasteiger et al., 2020) as PyG implements it, under the project's model protocol.

PyG's `DimeNet.forward` builds its graph with `torch_geometric.nn.radius_graph` (pyg-lib or
torch-cluster) and its angle triplets with torch-sparse; `PlainDimeNetPlusPlus` overrides that
forward only to call the plain-torch `mpnn.models.geometry` versions and to pool per the target.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Batch
from torch_geometric.nn.models import dimenet as pyg_dimenet
from torch_geometric.utils import scatter

from mpnn.data.spec import DataSpec
from mpnn.models.geometry import radius_graph, triplets
from mpnn.models.protocol import MoleculeModel

# The reference configuration (gasteigerjo/dimenet, config_pp.yaml) initialises the output layers
# orthogonally for these targets and with zeros for mu, HOMO, LUMO and ZPVE.
GLOROT_OUTPUT_TARGETS = frozenset({"alpha", "r2", "u0", "u", "h", "g", "cv", "u0_atom", "u_atom", "h_atom", "g_atom"})


class PlainDimeNetPlusPlus(pyg_dimenet.DimeNetPlusPlus):
    """PyG's DimeNet++ with its graph built in plain torch and its per-atom outputs reduced by `reduce`."""

    def __init__(self, *args, reduce: str = "sum", **kwargs):
        super().__init__(*args, **kwargs)
        self.reduce = reduce

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor | None = None) -> Tensor:
        """PyG's `DimeNet.forward` (DimeNet++ branch) with only the graph construction and the pooling changed."""
        edge_index = radius_graph(pos, batch, self.cutoff, max_num_neighbors=self.max_num_neighbors)

        i, j, idx_i, idx_j, idx_k, idx_kj, idx_ji = triplets(edge_index, num_nodes=z.size(0))

        # Calculate distances.
        dist = (pos[i] - pos[j]).pow(2).sum(dim=-1).sqrt()

        # Calculate angles.
        pos_jk, pos_ij = pos[idx_j] - pos[idx_k], pos[idx_i] - pos[idx_j]
        a = (pos_ij * pos_jk).sum(dim=-1)
        b = torch.cross(pos_ij, pos_jk, dim=1).norm(dim=-1)
        angle = torch.atan2(b, a)

        rbf = self.rbf(dist)
        sbf = self.sbf(dist, angle, idx_kj)

        # Embedding block.
        x = self.emb(z, rbf, i, j)
        P = self.output_blocks[0](x, rbf, i, num_nodes=pos.size(0))

        # Interaction blocks.
        for interaction_block, output_block in zip(self.interaction_blocks, self.output_blocks[1:]):
            x = interaction_block(x, rbf, sbf, idx_kj, idx_ji)
            P = P + output_block(x, rbf, i, num_nodes=pos.size(0))

        if batch is None:
            batch = torch.zeros_like(z)
        return scatter(P, batch, dim=0, reduce=self.reduce)


class DimeNetPlusPlusModel(MoleculeModel):
    """DimeNet++ on atomic numbers and positions, one output per molecule.

    `output_initializer=None` picks the reference configuration's choice for the target:
    "glorot_orthogonal" for alpha, R2, U0, U, H, G, Cv (and the atomization energies), "zeros" otherwise.
    """

    backends = ("pyg",)

    def __init__(
        self,
        data: DataSpec,
        hidden_channels: int = 128,
        num_blocks: int = 4,
        int_emb_size: int = 64,
        basis_emb_size: int = 8,
        out_emb_channels: int = 256,
        num_spherical: int = 7,
        num_radial: int = 6,
        cutoff: float = 5.0,
        max_num_neighbors: int = 32,
        envelope_exponent: int = 5,
        num_before_skip: int = 1,
        num_after_skip: int = 2,
        num_output_layers: int = 3,
        act: str = "swish",
        output_initializer: str | None = None,
    ):
        super().__init__()
        if output_initializer is None:
            output_initializer = "glorot_orthogonal" if data.target in GLOROT_OUTPUT_TARGETS else "zeros"
        self.net = PlainDimeNetPlusPlus(
            hidden_channels=hidden_channels,
            out_channels=1,
            num_blocks=num_blocks,
            int_emb_size=int_emb_size,
            basis_emb_size=basis_emb_size,
            out_emb_channels=out_emb_channels,
            num_spherical=num_spherical,
            num_radial=num_radial,
            cutoff=cutoff,
            max_num_neighbors=max_num_neighbors,
            envelope_exponent=envelope_exponent,
            num_before_skip=num_before_skip,
            num_after_skip=num_after_skip,
            num_output_layers=num_output_layers,
            act=act,
            output_initializer=output_initializer,
            reduce="sum" if data.pooling == "sum" else "mean",
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.net(batch.z, batch.pos, batch.batch).squeeze(-1)
