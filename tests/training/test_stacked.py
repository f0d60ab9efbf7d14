"""The stacked engine's batch stacking follows MoleculeBatch's fields (mpnn/training/stacked.py)."""

import dataclasses

import torch

from mpnn.data.batch import MoleculeBatch
from mpnn.data.datamodule import molecule_store
from mpnn.training.stacked import stack_batches
from tests.models.conftest import fitted_spec


def test_every_batch_field_says_which_dimensions_are_atoms():
    for field in dataclasses.fields(MoleculeBatch):
        assert "atom_dims" in field.metadata, f"MoleculeBatch.{field.name} must declare its atom_dims"


def test_batches_of_different_sizes_stack_padded_by_their_fields(sample):
    spec = fitted_spec(sample, target="mu")
    store = molecule_store(sample, spec, "dense")
    small = store.gather(torch.tensor([2, 9]))  # 3 and more atoms: padded to different slot counts
    large = store.gather(torch.tensor([0, 17]))
    n = max(small.x.shape[1], large.x.shape[1])
    assert small.x.shape[1] != large.x.shape[1]
    stacked = stack_batches([small, large])
    for k, batch in enumerate((small, large)):
        m = batch.x.shape[1]
        assert stacked.x.shape == (2, 2, n, batch.x.shape[2])
        assert torch.equal(stacked.x[k, :, :m], batch.x) and not stacked.x[k, :, m:].any()
        assert torch.equal(stacked.bond[k, :, :m, :m], batch.bond) and not stacked.bond[k, :, m:].any()
        assert not stacked.bond[k, :, :, m:].any() and not stacked.mask[k, :, m:].any()
        assert stacked.mask.dtype == torch.bool and torch.equal(stacked.mask[k, :, :m], batch.mask)
        assert torch.equal(stacked.y[k], batch.y) and torch.equal(stacked.index[k], batch.index)
