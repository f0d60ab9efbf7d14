"""The paper's input representations as PyG transforms, for `QM9Dataset(transform=...)` or any
`Data` with `pos`, `z` and a chemical graph (`edge_attr` one-hot single, double, triple, aromatic).

    QM9Dataset("data", transform=RawDistance())   # complete graph, bond one-hot + distance
    QM9Dataset("data", transform=Compose([ImplicitHydrogens(), DistanceBins()]))   # heavy atoms, 14 symbols

They compute exactly what the training pipeline's batches hold (`mpnn.data.edges`), one molecule at a time.
"""

from __future__ import annotations

import torch
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform, Compose
from torch_geometric.utils import subgraph

from mpnn.data.edges import sparse_edges
from mpnn.data.spec import DataSpec


class PaperEdges(BaseTransform):
    """Replaces a molecule's chemical graph by one of the paper's edge representations."""

    def __init__(self, edges: str, virtual_edges: bool = False):
        self.spec = DataSpec(edges=edges, virtual_edges=virtual_edges)

    def forward(self, data: Data) -> Data:
        data = data.clone()
        n = data.num_nodes
        bond_type = data.edge_attr.argmax(-1) + 1
        num_atoms = torch.tensor([n], device=data.pos.device)
        ptr = torch.tensor([0, n], device=data.pos.device)
        data.edge_index, data.edge_attr = sparse_edges(
            self.spec, data.pos, data.edge_index, bond_type, num_atoms, ptr, n
        )
        return data

    def __repr__(self) -> str:
        if type(self) is PaperEdges:
            return f"PaperEdges(edges={self.spec.edges!r}, virtual_edges={self.spec.virtual_edges})"
        return f"{self.__class__.__name__}()"


class RawDistance(PaperEdges):
    """Complete graph; `edge_attr` = bond one-hot (zero when not bonded), then the distance in Angstrom."""

    def __init__(self):
        super().__init__("raw_distance")


class DistanceBins(PaperEdges):
    """Complete graph; `edge_attr` one-hot of 14 symbols: the bond type, or one of 10 distance bins."""

    def __init__(self):
        super().__init__("distance_bins")


class VirtualEdges(PaperEdges):
    """Complete graph; `edge_attr` one-hot of 5 types: the bond type, or "virtual" for a non-bonded pair."""

    def __init__(self):
        super().__init__("chemical_graph", virtual_edges=True)


class ImplicitHydrogens(BaseTransform):
    """Heavy atoms only; hydrogens survive as the `num_h` node feature. Apply before an edge transform."""

    def forward(self, data: Data) -> Data:
        data = data.clone()
        keep = data.z != 1
        data.edge_index, data.edge_attr = subgraph(keep, data.edge_index, data.edge_attr, relabel_nodes=True)
        for key in ("x", "z", "pos"):
            data[key] = data[key][keep]
        data.num_nodes = int(keep.sum())
        return data


def transform_for(spec: DataSpec) -> Compose:
    """The transforms that turn a `QM9Dataset` molecule into what the pipeline trains on under `spec`."""
    steps: list[BaseTransform] = [] if spec.explicit_h else [ImplicitHydrogens()]
    if spec.complete_graph:
        steps.append(PaperEdges(spec.edges, spec.virtual_edges))
    return Compose(steps)
