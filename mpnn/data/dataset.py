"""QM9 as a PyTorch Geometric dataset, from the project's offline, correctly featurized cache.

    from mpnn.data import QM9Dataset
    dataset = QM9Dataset("data")                 # 130,831 molecules; builds the cache once if missing
    dataset[0]                                   # Data(x=[5, 13], z=[5], pos=[5, 3], edge_index=[2, 8], ...)

Unlike `torch_geometric.datasets.QM9`, atom features come from RDKit with bond orders matched to
the coordinates (aromaticity, hybridization, hydrogen-bond donors and acceptors are set), targets
are in this project's physical units (eV, not hartree) and nothing is downloaded. Loading needs
neither RDKit nor qm9pack: they are used only when the cache must be built.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data, InMemoryDataset

from mpnn.data.cache import PackedQM9, load_or_build
from mpnn.data.features import NODE_FEATURES, atom_table
from mpnn.data.graphs import directed_bonds
from mpnn.data.spec import NUM_BOND_TYPES
from mpnn.targets import TARGET_NAMES


class QM9Dataset(InMemoryDataset):
    """QM9 with the paper's features; every molecule a `torch_geometric.data.Data`:

    - `x` (atoms, 13): the paper's node features, columns `QM9Dataset.node_feature_names`
      (see `mpnn.data.features` for each column);
    - `z` (atoms,): atomic numbers; `pos` (atoms, 3): coordinates in Angstrom (DFT atom order);
    - `edge_index` (2, 2 x bonds) / `edge_attr` (2 x bonds, 4): the chemical graph, both
      directions of every bond, `edge_attr` one-hot single, double, triple, aromatic;
    - `y` (1, 17): every target in physical units (float64), columns `QM9Dataset.target_names`;
    - `idx`: the molecule's QM9 index (the source data's Index column); `smiles`: its SMILES.

    The paper's other edge representations and implicit hydrogens are transforms in
    `mpnn.data.transforms` (`transform=` or `pre_transform=`). `packed` builds the dataset from
    molecules already loaded (e.g. a test fixture) instead of the cache under `root`.
    """

    target_names: tuple[str, ...] = TARGET_NAMES
    node_feature_names: tuple[str, ...] = NODE_FEATURES

    def __init__(
        self,
        root: str | Path = "data",
        transform: Callable[[Data], Data] | None = None,
        pre_transform: Callable[[Data], Data] | None = None,
        pre_filter: Callable[[Data], bool] | None = None,
        packed: PackedQM9 | None = None,
    ):
        super().__init__(str(root), transform, pre_transform, pre_filter, log=False)
        if packed is None:
            packed, _ = load_or_build(root)
        self._data, self.slices = storage(packed)
        if pre_transform is not None or pre_filter is not None:  # per molecule, as PyG's process() does
            molecules = [self.get(i) for i in range(len(self))]
            molecules = [m for m in molecules if pre_filter is None or pre_filter(m)]
            self._data_list = None
            self._data, self.slices = self.collate([pre_transform(m) if pre_transform else m for m in molecules])


def storage(packed: PackedQM9) -> tuple[Data, dict[str, torch.Tensor]]:
    """InMemoryDataset's storage (all molecules concatenated, with slice offsets), built vectorised
    from the cache instead of collating 130,831 Data objects."""
    table = atom_table(packed, explicit_h=True)
    bond_molecule, source, target, code = directed_bonds(table)
    atom_slices = torch.from_numpy(table.atom_ptr)
    bond_slices = torch.from_numpy(np.concatenate([[0], np.cumsum(np.bincount(bond_molecule, minlength=len(packed)))]))
    molecule_slices = torch.arange(len(packed) + 1)
    edge_attr = np.zeros((len(code), NUM_BOND_TYPES), np.float32)
    edge_attr[np.arange(len(code)), code - 1] = 1
    data = Data(
        x=torch.from_numpy(table.x),
        z=torch.from_numpy(table.z),
        pos=torch.from_numpy(table.pos),
        edge_index=torch.from_numpy(np.stack([source, target])),
        edge_attr=torch.from_numpy(edge_attr),
        y=torch.from_numpy(np.ascontiguousarray(packed.targets, dtype=np.float64)),
        idx=torch.from_numpy(packed.index.astype(np.int64)),
        smiles=packed.smiles.tolist(),
    )
    slices = {
        "x": atom_slices,
        "z": atom_slices,
        "pos": atom_slices,
        "edge_index": bond_slices,
        "edge_attr": bond_slices,
        "y": molecule_slices,
        "idx": molecule_slices,
        "smiles": molecule_slices,
    }
    return data, slices
