"""The dataset as concatenated tensors on the training device; a PyG `Batch` is built by gathers.

The PyG backend's data path: no `Data` objects, no collate, no loader workers. Atoms and bonds
of all molecules sit in a few flat tensors with per-molecule offsets; a batch gathers the rows of
its molecules (`ragged_gather`), shifts bond indices to the batch's atom numbering and builds
the configured edge representation (`mpnn.data.edges.sparse_edges`), all vectorised.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch_geometric.data import Batch

from mpnn.data.edges import sparse_edges
from mpnn.data.features import AtomTable
from mpnn.data.spec import DataSpec


class BatchSizes(NamedTuple):
    """Sizes of a batch, counted on the host by the loader so that the device never synchronises."""

    atoms: int
    bonds: int  # directed chemical-graph edges
    n_max: int  # largest molecule


def ragged_gather(
    starts: torch.Tensor, counts: torch.Tensor, total: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of variable-length blocks: (row indices, block of each row, position within its block).

    Block b covers rows starts[b] .. starts[b] + counts[b] - 1; `total` = counts.sum(), known on the host.
    """
    block = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts, output_size=total)
    first_in_batch = torch.cumsum(counts, 0) - counts
    within = torch.arange(total, device=counts.device) - first_in_batch[block]
    return starts[block] + within, block, within


def directed_bonds(table: AtomTable) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Both directions of every bond, sorted by molecule, source, target (PyG's coalesced order):
    (molecule, local source, local target, bond code)."""
    molecule = np.concatenate([table.bond_molecule, table.bond_molecule])
    source = np.concatenate([table.bond_i, table.bond_j])
    target = np.concatenate([table.bond_j, table.bond_i])
    code = np.concatenate([table.bond_type, table.bond_type])
    order = np.lexsort((target, source, molecule))
    return molecule[order], source[order], target[order], code[order]


class GraphQM9:
    """All molecules as flat tensors (kept per device); `gather(rows)` returns a PyG `Batch`."""

    def __init__(self, table: AtomTable, y: np.ndarray, qm9_index: np.ndarray, spec: DataSpec):
        self.spec = spec
        bond_molecule, source, target, code = directed_bonds(table)
        self.num_atoms = torch.from_numpy(table.num_atoms)
        self.num_bonds = torch.from_numpy(np.bincount(bond_molecule, minlength=len(table.num_atoms)))
        self._tensors = {
            "x": torch.from_numpy(table.x),
            "z": torch.from_numpy(table.z.astype(np.uint8)),
            "pos": torch.from_numpy(table.pos),
            "atom_start": torch.from_numpy(table.atom_ptr[:-1]),
            "num_atoms": self.num_atoms,
            "bond_start": torch.from_numpy(np.concatenate([[0], np.cumsum(self.num_bonds.numpy())])[:-1]),
            "num_bonds": self.num_bonds,
            "bond_local": torch.from_numpy(np.stack([source, target]).astype(np.uint8)),
            "bond_type": torch.from_numpy(code.astype(np.uint8)),
            "y": torch.from_numpy(np.ascontiguousarray(y, dtype=np.float64)),
            "idx": torch.from_numpy(qm9_index.astype(np.int64)),
        }
        self._device_copies: dict[torch.device, dict[str, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.num_atoms)

    def sizes(self, rows: torch.Tensor) -> BatchSizes:
        """Host-side sizes of the batch of `rows` (a CPU tensor)."""
        atoms = self.num_atoms[rows]
        return BatchSizes(int(atoms.sum()), int(self.num_bonds[rows].sum()), int(atoms.max()))

    def _on(self, device: torch.device) -> dict[str, torch.Tensor]:
        if device not in self._device_copies:
            self._device_copies[device] = {name: t.to(device) for name, t in self._tensors.items()}
        return self._device_copies[device]

    def gather(self, rows: torch.Tensor, sizes: BatchSizes | None = None, dtype: torch.dtype = torch.float32) -> Batch:
        """The PyG batch of molecules `rows` (on the device to compute on), edges as `spec` says;
        features and coordinates in `dtype`."""
        sizes = sizes or self.sizes(rows.cpu())
        t = self._on(rows.device)
        num_atoms = t["num_atoms"][rows]
        atoms, batch, _ = ragged_gather(t["atom_start"][rows], num_atoms, sizes.atoms)
        ptr = torch.cat([num_atoms.new_zeros(1), torch.cumsum(num_atoms, 0)])
        bonds, bond_molecule, _ = ragged_gather(t["bond_start"][rows], t["num_bonds"][rows], sizes.bonds)
        bond_index = t["bond_local"][:, bonds].long() + ptr[bond_molecule]
        pos = t["pos"][atoms].to(dtype)
        edge_index, edge_attr = sparse_edges(
            self.spec, pos, bond_index, t["bond_type"][bonds], num_atoms, ptr, sizes.n_max
        )
        return Batch(
            x=t["x"][atoms].to(dtype),
            z=t["z"][atoms].long(),
            pos=pos,
            edge_index=edge_index,
            edge_attr=edge_attr,
            y=t["y"][rows],
            idx=t["idx"][rows],
            batch=batch,
            ptr=ptr,
        )
