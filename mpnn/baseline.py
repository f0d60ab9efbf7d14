"""PyG's examples/qm9_nn_conv.py, built from PyG's stock pieces as that example uses them.

Used by scripts/benchmark.py as the speed baseline: per-sample `Complete` + `Distance`
transforms in a PyG DataLoader, NNConv (mean aggregation) + nn.GRU + Set2Set(3), dim 64.
Molecules come from this project's cache, so both pipelines see the same data.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
import torch_geometric.transforms as T
from torch.nn import GRU, Linear, ReLU, Sequential
from torch_geometric.data import Data
from torch_geometric.data import Dataset as PyGDataset
from torch_geometric.nn import NNConv, Set2Set
from torch_geometric.utils import remove_self_loops

from mpnn.data.cache import PackedQM9
from mpnn.data.features import node_features


class Complete:
    """The example's transform: complete graph, bond features copied, zeros elsewhere."""

    def __call__(self, data: Data) -> Data:
        data = copy.copy(data)
        device = data.edge_index.device
        row = torch.arange(data.num_nodes, dtype=torch.long, device=device)
        col = torch.arange(data.num_nodes, dtype=torch.long, device=device)
        row = row.view(-1, 1).repeat(1, data.num_nodes).view(-1)
        col = col.repeat(data.num_nodes)
        edge_index = torch.stack([row, col], dim=0)
        idx = data.edge_index[0] * data.num_nodes + data.edge_index[1]
        size = list(data.edge_attr.size())
        size[0] = data.num_nodes * data.num_nodes
        edge_attr = data.edge_attr.new_zeros(size)
        edge_attr[idx] = data.edge_attr
        edge_index, edge_attr = remove_self_loops(edge_index, edge_attr)
        data.edge_attr = edge_attr
        data.edge_index = edge_index
        return data


class MoleculeList(PyGDataset):
    """In-memory list of Data objects with a per-sample transform, like QM9(transform=...)."""

    def __init__(self, molecules: list[Data], transform: Callable[[Data], Data] | None = None):
        super().__init__(None, transform)
        self.molecules = molecules

    def len(self) -> int:
        return len(self.molecules)

    def get(self, idx: int) -> Data:
        return self.molecules[idx]


def to_pyg(packed: PackedQM9, indices: np.ndarray, target_column: int, mean: float, std: float) -> list[Data]:
    """Bond-graph Data objects (x, pos, bond one-hot edge_attr, standardised y) for `indices`."""
    features = torch.from_numpy(node_features(packed))
    atom_ptr = np.concatenate([[0], np.cumsum(packed.num_atoms.astype(np.int64))])
    bond_ptr = np.concatenate([[0], np.cumsum(packed.bond_count.astype(np.int64))])
    pos = torch.from_numpy(packed.pos)
    bonds = torch.from_numpy(packed.bonds.astype(np.int64))
    y = (packed.targets[:, target_column] - mean) / std
    molecules = []
    for m in indices:
        b = bonds[bond_ptr[m] : bond_ptr[m + 1]]
        edge_index = torch.cat([b[:, :2].T, b[:, [1, 0]].T], 1)
        edge_attr = F.one_hot(b[:, 2] - 1, 4).float().repeat(2, 1)
        lo, hi = atom_ptr[m], atom_ptr[m + 1]
        molecules.append(
            Data(
                x=features[lo:hi],
                pos=pos[lo:hi],
                edge_index=edge_index,
                edge_attr=edge_attr,
                y=torch.tensor([y[m]], dtype=torch.float),
            )
        )
    return molecules


def example_transform() -> T.Compose:
    return T.Compose([Complete(), T.Distance(norm=False)])


class ExampleNet(torch.nn.Module):
    """The example's model, verbatim apart from the number of input features."""

    def __init__(self, num_features: int, dim: int = 64):
        super().__init__()
        self.lin0 = torch.nn.Linear(num_features, dim)
        nn = Sequential(Linear(5, 128), ReLU(), Linear(128, dim * dim))
        self.conv = NNConv(dim, dim, nn, aggr="mean")
        self.gru = GRU(dim, dim)
        self.set2set = Set2Set(dim, processing_steps=3)
        self.lin1 = torch.nn.Linear(2 * dim, dim)
        self.lin2 = torch.nn.Linear(dim, 1)

    def forward(self, data: Data) -> torch.Tensor:
        out = F.relu(self.lin0(data.x))
        h = out.unsqueeze(0)
        for _ in range(3):
            m = F.relu(self.conv(out, data.edge_index, data.edge_attr))
            out, h = self.gru(m.unsqueeze(0), h)
            out = out.squeeze(0)
        out = self.set2set(out, data.batch)
        out = F.relu(self.lin1(out))
        out = self.lin2(out)
        return out.view(-1)
