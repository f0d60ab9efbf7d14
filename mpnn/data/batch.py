"""Dense, padded molecule batches and the whole dataset held as padded tensors.

Every molecule occupies one row of `n_max` atom slots. A batch is an index gather on the
device that holds the dataset (GPU or CPU): no per-sample Python, no collate. QM9 molecules
have at most 29 atoms, so dense per-molecule pair tensors (B, n, n, ...) are small and let
message passing run as batched matrix products.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mpnn.data.cache import PackedQM9

ATOM_TYPES = (1, 6, 7, 8, 9)  # H, C, N, O, F
NODE_FEATURES = (
    "H",
    "C",
    "N",
    "O",
    "F",
    "atomic_number",
    "acceptor",
    "donor",
    "aromatic",
    "sp",
    "sp2",
    "sp3",
    "num_h",
)


@dataclass
class EdgeInputs:
    """Pair inputs of a batch: which pairs are edges, and what they carry."""

    adjacency: torch.Tensor  # (B, n, n) bool: True where w sends a message to v ([b, v, w])
    features: torch.Tensor  # (B, n, n, edge_dim) float (one-hot for discrete edge types)
    types: torch.Tensor | None  # (B, n, n) long for discrete representations, else None


@dataclass
class MoleculeBatch:
    x: torch.Tensor  # (B, n, F) node features, zero on padding
    pos: torch.Tensor  # (B, n, 3)
    bond: torch.Tensor  # (B, n, n) long bond type code, 0 = none
    mask: torch.Tensor  # (B, n) bool, True for real atoms
    y: torch.Tensor  # (B,) target in physical units (float64 keeps large energies exact)
    index: torch.Tensor  # (B,) row in the dataset
    edges: EdgeInputs | None = None

    @property
    def num_molecules(self) -> int:
        return self.x.shape[0]


def node_features(packed: PackedQM9) -> np.ndarray:
    """The paper's atom features (Gilmer et al. Table 1), one row per atom."""
    z = packed.z.astype(np.int64)
    type_onehot = (z[:, None] == np.array(ATOM_TYPES)[None, :]).astype(np.float32)
    hyb_onehot = (packed.hybridization[:, None] == np.array([1, 2, 3])[None, :]).astype(np.float32)
    columns = [z, packed.acceptor, packed.donor, packed.aromatic]
    return np.concatenate(
        [type_onehot, np.stack(columns, 1).astype(np.float32), hyb_onehot, packed.num_h[:, None].astype(np.float32)],
        axis=1,
    )


class PaddedQM9:
    """The featurized dataset as padded tensors; `gather` builds a batch by indexing."""

    def __init__(self, packed: PackedQM9, target_column: int, explicit_h: bool = True):
        features = node_features(packed)
        num_atoms = packed.num_atoms.astype(np.int64)
        mol_of_atom = np.repeat(np.arange(len(packed)), num_atoms)
        atom_ptr = np.concatenate([[0], np.cumsum(num_atoms)])
        local = np.arange(len(packed.z)) - atom_ptr[mol_of_atom]
        bond_mol = np.repeat(np.arange(len(packed)), packed.bond_count.astype(np.int64))
        bond_i, bond_j, bond_type = (packed.bonds[:, k].astype(np.int64) for k in range(3))
        if not explicit_h:  # heavy atoms only; hydrogens survive as the num_h feature
            keep = packed.z != 1
            kept_before = np.cumsum(keep) - keep  # kept atoms strictly before each atom
            new_local = kept_before - kept_before[atom_ptr[mol_of_atom]]
            heavy_bond = keep[atom_ptr[bond_mol] + bond_i] & keep[atom_ptr[bond_mol] + bond_j]
            bond_i = new_local[atom_ptr[bond_mol] + bond_i][heavy_bond]
            bond_j = new_local[atom_ptr[bond_mol] + bond_j][heavy_bond]
            bond_type, bond_mol = bond_type[heavy_bond], bond_mol[heavy_bond]
            features, mol_of_atom, local = features[keep], mol_of_atom[keep], new_local[keep]
            pos = packed.pos[keep]
            num_atoms = np.bincount(mol_of_atom, minlength=len(packed))
        else:
            pos = packed.pos
        n_max = int(num_atoms.max())
        m = len(packed)
        x = np.zeros((m, n_max, features.shape[1]), np.float32)
        x[mol_of_atom, local] = features
        padded_pos = np.zeros((m, n_max, 3), np.float32)
        padded_pos[mol_of_atom, local] = pos
        bond = np.zeros((m, n_max, n_max), np.uint8)
        bond[bond_mol, bond_i, bond_j] = bond_type
        bond[bond_mol, bond_j, bond_i] = bond_type
        self.x = torch.from_numpy(x)
        self.pos = torch.from_numpy(padded_pos)
        self.bond = torch.from_numpy(bond)
        self.num_atoms = torch.from_numpy(num_atoms)
        self.y = torch.from_numpy(np.ascontiguousarray(packed.targets[:, target_column]))
        self.n_max = n_max
        self._device_copies: dict[torch.device, tuple[torch.Tensor, ...]] = {}

    def __len__(self) -> int:
        return len(self.y)

    @property
    def num_node_features(self) -> int:
        return self.x.shape[-1]

    def _on(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        if device not in self._device_copies:
            tensors = (self.x, self.pos, self.bond, self.num_atoms, self.y)
            self._device_copies[device] = tuple(t.to(device) for t in tensors)
        return self._device_copies[device]

    def gather(self, index: torch.Tensor, n: int | None = None) -> MoleculeBatch:
        """Batch of molecules `index` (on the device to compute on), cropped to `n` atom slots.

        `n` defaults to the largest molecule in the batch, read from the CPU copy so that
        no device synchronisation is needed; pass `n_max` for static shapes.
        """
        if n is None:
            n = int(self.num_atoms[index.cpu()].max())
        x, pos, bond, num_atoms, y = self._on(index.device)
        counts = num_atoms[index]
        mask = torch.arange(n, device=index.device)[None, :] < counts[:, None]
        return MoleculeBatch(
            x=x[index, :n],
            pos=pos[index, :n],
            bond=bond[index, :n, :n].long(),
            mask=mask,
            y=y[index],
            index=index,
        )
