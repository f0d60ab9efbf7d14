"""Edge representations of Gilmer et al. (section 5), built on the device from positions and bonds.

- `chemical_graph`: bonded pairs only, one of 4 bond types; `virtual_edges` adds a fifth type
  for every non-bonded pair.
- `distance_bins`: all pairs; bonded pairs keep their bond type, the rest fall in one of 10
  distance bins ([0,2], 8 uniform bins over (2,6], (6,inf) Angstrom): 14 symbols.
- `raw_distance`: all pairs; distance plus the 4-way bond one-hot (zero when not bonded).

Discrete representations also provide a one-hot `features` tensor, so an edge network can run
on any representation; the matrix-multiply message needs the discrete `types`.
"""

from __future__ import annotations

import torch

from mpnn.data.batch import EdgeInputs, MoleculeBatch

EDGE_KINDS = ("chemical_graph", "distance_bins", "raw_distance")
NUM_BOND_TYPES = 4
DISTANCE_BIN_EDGES = (2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0)  # 10 bins


class EdgeFeaturizer(torch.nn.Module):
    """Builds a batch's EdgeInputs; a parameter-free module so a model carries its edge kind."""

    def __init__(self, kind: str = "raw_distance", virtual_edges: bool = False):
        super().__init__()
        if kind not in EDGE_KINDS:
            raise ValueError(f"unknown data.edges={kind!r}; valid: {', '.join(EDGE_KINDS)}")
        if virtual_edges and kind != "chemical_graph":
            raise ValueError(
                "data.virtual_edges=true applies to data.edges=chemical_graph only (the others are complete graphs)"
            )
        self.kind = kind
        self.virtual_edges = virtual_edges
        # A buffer, not a tensor made per call: a host-to-device copy cannot be captured in a CUDA graph.
        self.register_buffer("bin_edges", torch.tensor(DISTANCE_BIN_EDGES), persistent=False)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, virtual_edges={self.virtual_edges}"

    @property
    def num_edge_types(self) -> int:
        """Discrete edge types (0 for the continuous raw-distance representation)."""
        if self.kind == "chemical_graph":
            return NUM_BOND_TYPES + int(self.virtual_edges)
        if self.kind == "distance_bins":
            return NUM_BOND_TYPES + len(DISTANCE_BIN_EDGES) + 1
        return 0

    @property
    def edge_dim(self) -> int:
        return self.num_edge_types or 1 + NUM_BOND_TYPES

    def forward(self, batch: MoleculeBatch) -> EdgeInputs:
        mask = batch.mask
        n = mask.shape[1]
        not_self = ~torch.eye(n, dtype=torch.bool, device=mask.device)
        pairs = mask[:, :, None] & mask[:, None, :] & not_self
        bonded = batch.bond > 0
        dtype = batch.pos.dtype
        if self.kind != "chemical_graph":
            distance = (batch.pos[:, :, None, :] - batch.pos[:, None, :, :]).norm(dim=-1)
        if self.kind == "raw_distance":
            features = torch.cat([distance.unsqueeze(-1), _one_hot(batch.bond - 1, NUM_BOND_TYPES, dtype)], -1)
            return EdgeInputs(pairs, features * pairs.unsqueeze(-1), None)
        if self.kind == "chemical_graph":
            types = torch.where(bonded, batch.bond - 1, NUM_BOND_TYPES)
            adjacency = pairs if self.virtual_edges else pairs & bonded
        else:
            bins = torch.bucketize(distance, self.bin_edges.to(distance))
            types = torch.where(bonded, batch.bond - 1, NUM_BOND_TYPES + bins)
            adjacency = pairs
        types = types * adjacency  # padding and non-edges get type 0, masked out by adjacency
        features = _one_hot(types, self.num_edge_types, dtype)
        return EdgeInputs(adjacency, features * adjacency.unsqueeze(-1), types)


def _one_hot(codes: torch.Tensor, classes: int, dtype: torch.dtype) -> torch.Tensor:
    """Float one-hot; codes outside 0..classes-1 give all zeros. Unlike F.one_hot it never
    checks the codes' range, which on a GPU means a synchronisation every batch."""
    return (codes.unsqueeze(-1) == torch.arange(classes, device=codes.device)).to(dtype)
