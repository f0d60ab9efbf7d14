"""The dataset held as padded tensors on the training device; a dense batch is an index gather."""

from __future__ import annotations

import numpy as np
import torch

from mpnn.data.batch import MoleculeBatch
from mpnn.data.features import AtomTable


class PaddedQM9:
    """Every molecule in one row of `n_max` atom slots; `gather` builds a `MoleculeBatch` by indexing."""

    def __init__(self, table: AtomTable, y: np.ndarray):
        n_max = int(table.num_atoms.max())
        m = len(table.num_atoms)
        x = np.zeros((m, n_max, table.x.shape[1]), np.float32)
        x[table.molecule, table.local] = table.x
        z = np.zeros((m, n_max), np.uint8)
        z[table.molecule, table.local] = table.z
        pos = np.zeros((m, n_max, 3), np.float32)
        pos[table.molecule, table.local] = table.pos
        bond = np.zeros((m, n_max, n_max), np.uint8)
        bond[table.bond_molecule, table.bond_i, table.bond_j] = table.bond_type
        bond[table.bond_molecule, table.bond_j, table.bond_i] = table.bond_type
        self.x = torch.from_numpy(x)
        self.z = torch.from_numpy(z)
        self.pos = torch.from_numpy(pos)
        self.bond = torch.from_numpy(bond)
        self.num_atoms = torch.from_numpy(table.num_atoms)
        self.num_bonds = torch.from_numpy(2 * table.bond_count)  # directed, as GraphQM9 counts them
        self.y = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float64))
        self.n_max = n_max
        self._device_copies: dict[torch.device, tuple[torch.Tensor, ...]] = {}

    def __len__(self) -> int:
        return len(self.y)

    def _on(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        if device not in self._device_copies:
            tensors = (self.x, self.z, self.pos, self.bond, self.num_atoms, self.y)
            self._device_copies[device] = tuple(t.to(device) for t in tensors)
        return self._device_copies[device]

    def gather(self, index: torch.Tensor, n: int | None = None, dtype: torch.dtype = torch.float32) -> MoleculeBatch:
        """Batch of molecules `index` (on the device to compute on), cropped to `n` atom slots, features
        and coordinates in `dtype`.

        `n` defaults to the largest molecule in the batch, read from the CPU copy; pass it (the
        loaders do) to avoid a device synchronisation, or `n_max` for static shapes.
        """
        if n is None:
            n = int(self.num_atoms[index.cpu()].max())
        x, z, pos, bond, num_atoms, y = self._on(index.device)
        mask = torch.arange(n, device=index.device)[None, :] < num_atoms[index][:, None]
        return MoleculeBatch(
            x=x[index, :n].to(dtype),
            z=z[index, :n].long(),
            pos=pos[index, :n].to(dtype),
            bond=bond[index, :n, :n].long(),
            mask=mask,
            y=y[index],
            index=index,
        )
