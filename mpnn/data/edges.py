"""Edge representations of Gilmer et al. (section 5), for dense pair tensors and for PyG edge lists.

- `chemical_graph`: bonded pairs only, edge features one-hot single, double, triple, aromatic;
  `virtual_edges` makes the graph complete, non-bonded pairs getting a fifth type.
- `distance_bins`: all pairs; bonded pairs keep their bond type, the rest fall in one of 10
  distance bins ([0,2], 8 uniform bins over (2,6], (6,inf) Angstrom): 14 one-hot symbols.
- `raw_distance`: all pairs; the bond one-hot (zero when not bonded), then the distance.

`edge_attributes` is the one definition; `EdgeFeaturizer` applies it to dense (B, n, n) pairs on
the training device, `sparse_edges` to the edge lists of PyG batches and transforms.
"""

from __future__ import annotations

import torch

from mpnn.data.batch import EdgeInputs, MoleculeBatch
from mpnn.data.spec import DISTANCE_BIN_EDGES, NUM_BOND_TYPES, DataSpec


def edge_attributes(
    spec: DataSpec, bond: torch.Tensor, distance: torch.Tensor | None, bin_edges: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """Edge features (..., spec.edge_dim) from bond codes (0 = none, 1..4) and distances of the same shape."""
    bonded = bond > 0
    if spec.edges == "raw_distance":
        return torch.cat([_one_hot(bond - 1, NUM_BOND_TYPES, dtype), distance.unsqueeze(-1).to(dtype)], -1)
    if spec.edges == "chemical_graph":
        types = torch.where(bonded, bond - 1, NUM_BOND_TYPES)  # the virtual type for non-bonded pairs
    else:
        types = torch.where(bonded, bond - 1, NUM_BOND_TYPES + torch.bucketize(distance, bin_edges.to(distance)))
    return _one_hot(types, spec.num_edge_types, dtype)


class EdgeFeaturizer(torch.nn.Module):
    """Builds a dense batch's EdgeInputs on its device; a parameter-free module so a model carries its edges."""

    def __init__(self, spec: DataSpec):
        super().__init__()
        self.spec = spec
        # A buffer, not a tensor made per call: a host-to-device copy cannot be captured in a CUDA graph.
        self.register_buffer("bin_edges", torch.tensor(DISTANCE_BIN_EDGES), persistent=False)

    def extra_repr(self) -> str:
        return f"edges={self.spec.edges}, virtual_edges={self.spec.virtual_edges}"

    def forward(self, batch: MoleculeBatch) -> EdgeInputs:
        mask = batch.mask
        n = mask.shape[1]
        not_self = ~torch.eye(n, dtype=torch.bool, device=mask.device)
        pairs = mask[:, :, None] & mask[:, None, :] & not_self
        adjacency = pairs if self.spec.complete_graph else pairs & (batch.bond > 0)
        distance = None
        if self.spec.edges != "chemical_graph":
            distance = (batch.pos[:, :, None, :] - batch.pos[:, None, :, :]).norm(dim=-1)
        features = edge_attributes(self.spec, batch.bond, distance, self.bin_edges, batch.pos.dtype)
        return EdgeInputs(adjacency, features * adjacency.unsqueeze(-1))


def complete_graph(num_atoms: torch.Tensor, ptr: torch.Tensor, n_max: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(edge_index, molecule of each edge): every ordered pair of distinct atoms within each molecule,
    sorted by molecule, source, target. `n_max` (the largest molecule, known on the host) fixes the
    shapes without a device synchronisation."""
    device = num_atoms.device
    slots = torch.arange(n_max, device=device)
    real = slots[None, :] < num_atoms[:, None]
    pairs = real[:, :, None] & real[:, None, :] & (slots[:, None] != slots[None, :])
    molecule, source, target = pairs.nonzero(as_tuple=True)
    first = ptr[molecule]
    return torch.stack([first + source, first + target]), molecule


def sparse_edges(
    spec: DataSpec,
    pos: torch.Tensor,
    bond_index: torch.Tensor,
    bond_type: torch.Tensor,
    num_atoms: torch.Tensor,
    ptr: torch.Tensor,
    n_max: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(edge_index, edge_attr) of the representation `spec`, from the chemical graph of a batch.

    `bond_index` (2, E) holds both directions of every bond (global atom indices), `bond_type`
    its codes 1..4; `num_atoms`, `ptr` and `n_max` describe the molecules.
    """
    bin_edges = torch.tensor(DISTANCE_BIN_EDGES, device=pos.device)
    if not spec.complete_graph:
        return bond_index, edge_attributes(spec, bond_type, None, bin_edges, pos.dtype)
    edge_index, molecule = complete_graph(num_atoms, ptr, n_max)
    # Bond codes of all pairs through a dense (B, n, n) table: molecules are small.
    table = torch.zeros(len(num_atoms), n_max, n_max, dtype=torch.long, device=pos.device)
    bond_molecule = torch.bucketize(bond_index[0], ptr, right=True) - 1
    first = ptr[bond_molecule]
    table[bond_molecule, bond_index[0] - first, bond_index[1] - first] = bond_type.long()
    first = ptr[molecule]
    bond = table[molecule, edge_index[0] - first, edge_index[1] - first]
    distance = (pos[edge_index[0]] - pos[edge_index[1]]).norm(dim=-1)
    return edge_index, edge_attributes(spec, bond, distance, bin_edges, pos.dtype)


def _one_hot(codes: torch.Tensor, classes: int, dtype: torch.dtype) -> torch.Tensor:
    """Float one-hot; codes outside 0..classes-1 give all zeros. Unlike F.one_hot it never
    checks the codes' range, which on a GPU means a synchronisation every batch."""
    return (codes.unsqueeze(-1) == torch.arange(classes, device=codes.device)).to(dtype)
