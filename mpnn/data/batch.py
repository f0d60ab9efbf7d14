"""The dense batch types: molecules padded to a common atom count, for the fast dense path.

QM9 molecules have at most 29 atoms, so per-molecule pair tensors (B, n, n, ...) are small and
message passing runs as batched matrix products. The PyG path uses `torch_geometric.data.Batch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

# The two batch forms a model can take: dense padded `MoleculeBatch`es or PyG `Batch`es (`edge_index` form).
BACKENDS = ("dense", "pyg")


@dataclass
class EdgeInputs:
    """Pair inputs of a dense batch: which pairs are edges, and what they carry."""

    adjacency: torch.Tensor  # (B, n, n) bool: True where w sends a message to v ([b, v, w])
    features: torch.Tensor  # (B, n, n, edge_dim) float, zero off the edges (one-hot for discrete types)


def _atoms(*dims: int):
    """A MoleculeBatch field whose dimensions `dims` index atom slots (padded when batches are stacked)."""
    return field(metadata={"atom_dims": dims})


@dataclass
class MoleculeBatch:
    """Molecules padded to n atom slots; padding has mask False and z 0. Every field declares which of its
    dimensions index atom slots (`atom_dims`), so that code padding batches to a common size
    (`mpnn.training.stacked.stack_batches`) follows the fields, new ones included."""

    x: torch.Tensor = _atoms(1)  # (B, n, F) node features, zero on padding
    z: torch.Tensor = _atoms(1)  # (B, n) long atomic numbers, 0 on padding
    pos: torch.Tensor = _atoms(1)  # (B, n, 3) Angstrom
    bond: torch.Tensor = _atoms(1, 2)  # (B, n, n) long bond type code, 0 = none
    mask: torch.Tensor = _atoms(1)  # (B, n) bool, True for real atoms
    y: torch.Tensor = _atoms()  # (B,) target in physical units (float64 keeps large energies exact)
    index: torch.Tensor = _atoms()  # (B,) row in the dataset

    @property
    def num_graphs(self) -> int:
        """Molecules in the batch (PyG's name, so that both batch kinds answer it)."""
        return self.x.shape[0]


@dataclass
class SparseEdges:
    """Edge inputs of a PyG batch: `edge_index` (2, E) with sources in row 0, `edge_attr` (E, edge_dim)."""

    edge_index: torch.Tensor
    edge_attr: torch.Tensor


@dataclass
class EnsembleBatch:
    """One training batch per member of an ensemble (`mpnn.training.ensemble`), each from its own shuffle."""

    members: list  # MoleculeBatch or PyG Batch, one per member

    @property
    def num_graphs(self) -> int:
        """Molecules trained on in this step, over all members."""
        return sum(batch.num_graphs for batch in self.members)
