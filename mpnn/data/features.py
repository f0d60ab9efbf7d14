"""The paper's atom features and the atoms a representation keeps, shared by the dense and PyG paths.

Node features (Gilmer et al. Table 1), one row per atom, in this column order (`NODE_FEATURES`):

| columns | feature |
| --- | --- |
| 0-4 `H C N O F` | atom type, one-hot |
| 5 `atomic_number` | atomic number Z |
| 6 `acceptor` | hydrogen-bond acceptor (RDKit's single-atom definition), 0/1 |
| 7 `donor` | hydrogen-bond donor, 0/1 |
| 8 `aromatic` | in an aromatic system, 0/1 |
| 9-11 `sp sp2 sp3` | hybridization, one-hot (all zero for others, e.g. H) |
| 12 `num_h` | number of bonded hydrogens |

With `explicit_h=False` hydrogens are dropped as atoms and survive only as `num_h`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


def node_features(packed: PackedQM9) -> np.ndarray:
    """The paper's atom features (see the module docstring), one float32 row per atom."""
    z = packed.z.astype(np.int64)
    type_onehot = (z[:, None] == np.array(ATOM_TYPES)[None, :]).astype(np.float32)
    hyb_onehot = (packed.hybridization[:, None] == np.array([1, 2, 3])[None, :]).astype(np.float32)
    columns = [z, packed.acceptor, packed.donor, packed.aromatic]
    return np.concatenate(
        [type_onehot, np.stack(columns, 1).astype(np.float32), hyb_onehot, packed.num_h[:, None].astype(np.float32)],
        axis=1,
    )


@dataclass
class AtomTable:
    """The atoms and bonds a representation keeps, concatenated over molecules (numpy, CPU).

    Bonds are listed once (i < j, molecule-local atom indices after any atoms were dropped).
    """

    x: np.ndarray  # (A, 13) float32 node features
    z: np.ndarray  # (A,) int64 atomic numbers
    pos: np.ndarray  # (A, 3) float32 Angstrom
    num_atoms: np.ndarray  # (M,) int64
    molecule: np.ndarray  # (A,) int64 molecule of each atom
    local: np.ndarray  # (A,) int64 index of each atom within its molecule
    bond_molecule: np.ndarray  # (B,) int64
    bond_i: np.ndarray  # (B,) int64 local index
    bond_j: np.ndarray  # (B,) int64 local index
    bond_type: np.ndarray  # (B,) int64 code 1..4 (single, double, triple, aromatic)

    @property
    def atom_ptr(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.num_atoms)])

    @property
    def bond_count(self) -> np.ndarray:
        return np.bincount(self.bond_molecule, minlength=len(self.num_atoms))


def atom_table(packed: PackedQM9, explicit_h: bool = True) -> AtomTable:
    """The molecules of `packed` as kept by the representation: all atoms, or heavy atoms only."""
    features = node_features(packed)
    num_atoms = packed.num_atoms.astype(np.int64)
    molecule = np.repeat(np.arange(len(packed)), num_atoms)
    atom_ptr = np.concatenate([[0], np.cumsum(num_atoms)])
    local = np.arange(len(packed.z)) - atom_ptr[molecule]
    bond_molecule = np.repeat(np.arange(len(packed)), packed.bond_count.astype(np.int64))
    bond_i, bond_j, bond_type = (packed.bonds[:, k].astype(np.int64) for k in range(3))
    z, pos = packed.z.astype(np.int64), packed.pos
    if not explicit_h:  # heavy atoms only; hydrogens survive as the num_h feature
        keep = packed.z != 1
        kept_before = np.cumsum(keep) - keep  # kept atoms strictly before each atom
        new_local = kept_before - kept_before[atom_ptr[molecule]]
        first = atom_ptr[bond_molecule]
        heavy_bond = keep[first + bond_i] & keep[first + bond_j]
        bond_i, bond_j = new_local[first + bond_i][heavy_bond], new_local[first + bond_j][heavy_bond]
        bond_type, bond_molecule = bond_type[heavy_bond], bond_molecule[heavy_bond]
        features, z, pos = features[keep], z[keep], pos[keep]
        molecule, local = molecule[keep], new_local[keep]
        num_atoms = np.bincount(molecule, minlength=len(packed))
    return AtomTable(
        x=features,
        z=z,
        pos=pos,
        num_atoms=num_atoms,
        molecule=molecule,
        local=local,
        bond_molecule=bond_molecule,
        bond_i=bond_i,
        bond_j=bond_j,
        bond_type=bond_type,
    )
