"""Element counts per molecule: what the target scaler's per-element reference values multiply.

They live with the data because the data module counts whole splits and the models count batches,
and both must count the same way.
"""

from __future__ import annotations

import torch

MAX_Z = 9  # QM9 has H, C, N, O, F


def element_counts(
    z: torch.Tensor, molecule: torch.Tensor, num_molecules: int, num_h: torch.Tensor | None = None
) -> torch.Tensor:
    """(num_molecules, MAX_Z + 1) float64 count of each element per molecule; `z` = 0 marks padding.

    With `num_h` (the node feature), heavy atoms are counted from `z` and hydrogens from the
    `num_h` of the heavy atoms: the same numbers whether hydrogens are explicit atoms or not (in
    QM9 every hydrogen is bonded to one heavy atom). Without it every atom counts by its `z`.
    """
    counted = (z > 1 if num_h is not None else z > 0).double()
    counts = torch.zeros(num_molecules, MAX_Z + 1, dtype=torch.float64, device=z.device)
    counts.index_put_((molecule, z), counted, accumulate=True)
    if num_h is not None:
        counts[:, 1] = torch.zeros_like(counts[:, 1]).index_add_(0, molecule, counted * num_h.double())
    counts[:, 0] = 0
    return counts
