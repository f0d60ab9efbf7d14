"""What a model needs to know about its data, as one small value: `DataSpec`.

It travels in every checkpoint (as a plain dict), so a checkpoint rebuilds its model and
featurizes new molecules exactly as in training, with no config or cache beside it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mpnn.recipes import RECIPES

EDGE_KINDS = ("chemical_graph", "distance_bins", "raw_distance")
BOND_TYPES = ("single", "double", "triple", "aromatic")  # bond codes 1..4 in the cache; 0 = no bond
NUM_BOND_TYPES = len(BOND_TYPES)
DISTANCE_BIN_EDGES = (2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0)  # 10 bins, Angstrom
NUM_NODE_FEATURES = 13  # mpnn.data.features.NODE_FEATURES


@dataclass(frozen=True)
class DataSpec:
    """The target, its recipe, and the representation of molecules a model is trained on."""

    target: str = "mu"
    recipe: str = "intensive"
    edges: str = "raw_distance"
    virtual_edges: bool = False
    explicit_h: bool = True
    node_features: int = NUM_NODE_FEATURES
    # Incoming edges per atom over the training split (fitted by QM9DataModule.setup): what
    # `model.message.sum_scale=auto` divides summed messages by. None: not fitted.
    mean_neighbours: float | None = None

    def __post_init__(self):
        if self.edges not in EDGE_KINDS:
            raise ValueError(f"unknown data.edges={self.edges!r}; valid: {', '.join(EDGE_KINDS)}")
        if self.virtual_edges and self.edges != "chemical_graph":
            raise ValueError(
                "data.virtual_edges=true applies to data.edges=chemical_graph only (the others are complete graphs)"
            )
        if self.mean_neighbours is not None and not self.mean_neighbours > 0:
            raise ValueError(f"mean_neighbours={self.mean_neighbours!r} must be positive")
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe={self.recipe!r}; valid: {', '.join(RECIPES)}")

    @property
    def num_edge_types(self) -> int:
        """Discrete edge types (0 for the continuous raw-distance representation)."""
        if self.edges == "chemical_graph":
            return NUM_BOND_TYPES + int(self.virtual_edges)
        if self.edges == "distance_bins":
            return NUM_BOND_TYPES + len(DISTANCE_BIN_EDGES) + 1
        return 0

    @property
    def edge_dim(self) -> int:
        """Width of `edge_attr`: a one-hot of the edge type, or bond one-hot plus the distance."""
        return self.num_edge_types or NUM_BOND_TYPES + 1

    @property
    def complete_graph(self) -> bool:
        """Whether every pair of atoms is an edge (all representations but the plain chemical graph)."""
        return self.edges != "chemical_graph" or self.virtual_edges

    @property
    def pooling(self) -> str:
        """How a model with per-atom outputs pools them for this target: "sum" or "mean"."""
        return RECIPES[self.recipe].pooling

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
