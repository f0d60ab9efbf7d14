"""The model protocol: what the training pipeline asks of a model, and nothing more.

A model is a `MoleculeModel`:

- It is built by Hydra from its YAML under `conf/model/` plus one keyword the pipeline adds,
  `data`: a `mpnn.data.spec.DataSpec` saying what the data looks like (node feature count, edge
  representation and its edge feature size, hydrogens kept or not, the target and its recipe).
  Use what you need of it and ignore the rest.
- `backends` names the batch kinds `forward` accepts, fastest first:
  `"pyg"`: a `torch_geometric.data.Batch` with `x` (atoms x 13 node features, columns
  `mpnn.data.features.NODE_FEATURES`), `z` (atomic numbers), `pos` (Angstrom), `edge_index` /
  `edge_attr` (the configured edge representation), `batch`, `ptr` and `y` (the target, physical
  units, float64, one per molecule);
  `"dense"`: a `mpnn.data.batch.MoleculeBatch` of padded tensors (the fast path of the paper's MPNN).
  `backend=auto` (the default) picks the first; asking for one the model lacks is refused by name.
- `forward(batch)` returns one number per molecule, shape (num_molecules,): the prediction of the
  *standardised* target. The pipeline fits `self.scaler` on the training split before training
  (mean, std and, for extensive targets, per-element reference values; see `mpnn.recipes`) and
  turns predictions into physical units with `predict(batch)`. A model never sees physical units.
- The pipeline sets `model.spec` (the `DataSpec` it was built for) and, on a loaded checkpoint,
  `model.backend`, so that new molecules are featurized as in training.
- Everything a model needs to predict must be parameters or buffers, so that the checkpoint alone
  rebuilds it (`mpnn.load_checkpoint`).

A new model is one module with one `MoleculeModel` subclass plus one YAML in `conf/model/` whose
`_target_` names it; README "Add a model" shows a complete example.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from mpnn.data.elements import element_counts
from mpnn.data.features import NODE_FEATURES
from mpnn.models.scaler import TargetScaler

NUM_H_COLUMN = NODE_FEATURES.index("num_h")


def batch_element_counts(batch) -> torch.Tensor:
    """(num_molecules, MAX_Z + 1) element counts of a dense `MoleculeBatch` or a PyG `Batch` (hydrogens
    from the `num_h` feature when the batch has node features `x`, else from its atoms)."""
    z = batch.z
    num_h = batch.x[..., NUM_H_COLUMN] if getattr(batch, "x", None) is not None else None
    if z.dim() == 2:  # dense: (B, n), zero on padding
        molecule = torch.arange(z.shape[0], device=z.device).unsqueeze(1).expand_as(z).reshape(-1)
        return element_counts(z.reshape(-1), molecule, z.shape[0], None if num_h is None else num_h.reshape(-1))
    return element_counts(z, batch.batch, batch.num_graphs, num_h)


class MoleculeModel(nn.Module):
    """Base class of every model: a forward on batches of molecules and a target scaler (see module doc)."""

    backends: ClassVar[tuple[str, ...]] = ("pyg",)

    def __init__(self):
        super().__init__()
        self.scaler = TargetScaler()

    def forward(self, batch) -> torch.Tensor:
        """Prediction of the standardised target, shape (num_molecules,)."""
        raise NotImplementedError

    def normalise(self, batch) -> torch.Tensor:
        """The batch's target, standardised as `forward` predicts it (float32)."""
        return self.scaler.normalise(batch.y, batch_element_counts(batch))

    def denormalise(self, prediction: torch.Tensor, batch) -> torch.Tensor:
        """Predictions of `forward` in the target's physical unit (float64)."""
        return self.scaler.denormalise(prediction, batch_element_counts(batch))

    @torch.no_grad()
    def predict(self, batch) -> torch.Tensor:
        """Prediction in the target's physical unit (float64), shape (num_molecules,)."""
        return self.denormalise(self(batch), batch)
