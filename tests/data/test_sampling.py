"""Training batches from a seed and the epoch: the same for a single run and an ensemble's member."""

import numpy as np
import pytest

from mpnn.data.batch import EnsembleBatch
from mpnn.data.sampling import MemberBatches, ShuffledBatches


def epoch(sampler, number: int) -> list:
    sampler.set_epoch(number)
    return list(sampler)


def test_shuffled_batches_depend_on_seed_and_epoch_only():
    sampler = ShuffledBatches(103, 10, seed=4)
    first = epoch(sampler, 0)
    assert len(first) == len(sampler) == 11 and sorted(sum(first, [])) == list(range(103))
    assert epoch(ShuffledBatches(103, 10, seed=4), 0) == first  # a new sampler (a resumed run): the same
    assert epoch(sampler, 1) != first and epoch(ShuffledBatches(103, 10, seed=5), 0) != first
    dropped = epoch(ShuffledBatches(103, 10, seed=4, drop_last=True), 0)
    assert len(dropped) == 10 and all(len(batch) == 10 for batch in dropped)


def test_member_batches_give_each_member_its_own_seeds_batches():
    together = epoch(MemberBatches([ShuffledBatches(50, 8, seed) for seed in (0, 1, 2)]), 3)
    for k, seed in enumerate((0, 1, 2)):
        assert [step[k] for step in together] == epoch(ShuffledBatches(50, 8, seed), 3)
    with pytest.raises(ValueError, match="different numbers of batches"):
        MemberBatches([ShuffledBatches(50, 8, 0), ShuffledBatches(60, 8, 1)])


def test_an_ensembles_loader_yields_one_batch_per_member(datamodule_factory):
    single = datamodule_factory(subset=300, batch_size=16, shuffle_seeds=[1])
    ensemble = datamodule_factory(subset=300, batch_size=16, shuffle_seeds=[0, 1])
    index, _ = next(iter(single.train_dataloader()))
    batch = ensemble.on_after_batch_transfer(next(iter(ensemble.train_dataloader())), 0)
    assert isinstance(batch, EnsembleBatch) and len(batch.members) == 2 and batch.num_graphs == 32
    np.testing.assert_array_equal(batch.members[1].index.numpy(), index.numpy())  # member 1 = the run with seed 1
    assert not np.array_equal(batch.members[0].index.numpy(), index.numpy())
    with pytest.raises(ValueError, match="shuffle_seeds"):
        datamodule_factory(subset=300, shuffle_seeds=[])
