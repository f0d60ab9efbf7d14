"""Dense batches padded less (mpnn/data/buckets.py) on real QM9 molecules: split batches
(`data.batch_parts`) and size buckets (`data.bucketing=true`)."""

import itertools

import numpy as np
import pytest
import torch
from lightning.fabric.utilities.data import _set_sampler_epoch

from mpnn.data.buckets import PAIR_WEIGHT, BucketBatchSampler, SplitBatch, bucket_bounds
from mpnn.training.build import build
from tests.training.test_module import compose_config

BATCH = 64


@pytest.fixture(scope="module")
def dynamic(datamodule_factory):
    return datamodule_factory(subset=3000, batch_size=BATCH, bucketing=True)


@pytest.fixture(scope="module")
def static(datamodule_factory):
    return datamodule_factory(subset=3000, batch_size=BATCH, bucketing=True, static_shapes=True)


def _work(num_atoms: np.ndarray, padded: np.ndarray) -> float:
    return float((padded + PAIR_WEIGHT * padded.astype(float) ** 2).sum())


def test_bounds_are_the_least_padded_work_of_all_choices(packed):
    num_atoms = packed.num_atoms.astype(np.int64)
    sizes = np.unique(num_atoms)
    bounds = bucket_bounds(num_atoms, 3)
    assert bounds[-1] == num_atoms.max() and list(bounds) == sorted(bounds) and len(bounds) == 3

    def padded_work(b) -> float:
        return _work(num_atoms, np.asarray(b)[np.searchsorted(b, num_atoms)])

    best = min(padded_work([*cuts, sizes[-1]]) for cuts in itertools.combinations(sizes[:-1], 2))
    assert padded_work(bounds) == pytest.approx(best)
    assert list(bucket_bounds(num_atoms, 1)) == [num_atoms.max()]
    assert list(bucket_bounds(np.array([5, 5, 7]), 6)) == [5, 7]  # never more buckets than sizes


def _epoch(datamodule, loader) -> tuple[list[np.ndarray], list[int]]:
    """(positions in the training split of every batch, padded atom count of every batch)."""
    rows, pads = [], []
    position = {int(row): i for i, row in enumerate(datamodule.split.train)}
    for index, n in loader:
        rows.append(np.array([position[int(i)] for i in index]))
        pads.append(n)
    return rows, pads


def test_every_molecule_once_per_epoch_each_batch_padded_to_its_largest(dynamic):
    loader = dynamic.train_dataloader()
    num_atoms = dynamic.dataset.num_atoms.numpy()[dynamic.split.train]
    for _ in range(2):
        rows, pads = _epoch(dynamic, loader)
        assert len(rows) == len(loader)
        assert np.array_equal(np.sort(np.concatenate(rows)), np.arange(len(dynamic.split.train)))
        assert sum(len(r) < BATCH for r in rows) == 1  # only the last batch of the pooled remainders
        assert all(n == num_atoms[r].max() for r, n in zip(rows, pads))
    # Padded work drops by more than a quarter against random batches padded to their largest molecule.
    random_batches = np.array_split(np.random.default_rng(0).permutation(len(num_atoms)), len(rows))
    plain = sum(_work(num_atoms, np.full(len(r), num_atoms[r].max())) for r in random_batches)
    bucketed = sum(_work(num_atoms, np.full(len(r), n)) for r, n in zip(rows, pads))
    assert bucketed < 0.75 * plain


def test_static_shapes_one_per_bucket_and_fewer_than_one_batch_dropped(static):
    loader = static.train_dataloader()
    train = len(static.split.train)
    assert len(static.pad_sizes) == 6 and static.pad_sizes[-1] == 29
    dropped = []
    for _ in range(3):
        rows, pads = _epoch(static, loader)
        seen = np.concatenate(rows)
        assert len(np.unique(seen)) == len(seen)  # nothing twice
        assert all(len(r) == BATCH for r in rows) and set(pads) <= set(static.pad_sizes)
        dropped.append(frozenset(set(range(train)) - set(seen.tolist())))
        assert 0 < len(dropped[-1]) < BATCH
    assert len(set(dropped)) == 3  # a different random few each epoch
    # The batches really have those shapes, and every molecule fits its batch.
    index, n = next(iter(loader))
    batch = static.on_after_batch_transfer((index, n), 0)
    assert batch.x.shape[:2] == (BATCH, n) and batch.mask.sum(1).max() <= n


def test_epochs_are_shuffled_and_reproducible_from_the_seed(dynamic):
    num_atoms = dynamic.dataset.num_atoms.numpy()[dynamic.split.train]
    sampler = BucketBatchSampler(num_atoms, dynamic.pad_sizes, BATCH, seed=7)
    again = BucketBatchSampler(num_atoms, dynamic.pad_sizes, BATCH, seed=7)
    other = BucketBatchSampler(num_atoms, dynamic.pad_sizes, BATCH, seed=8)
    first, second = list(sampler), list(sampler)  # two epochs
    assert first == list(again) and second == list(again)
    assert first != second and first != list(other)
    # Both the order of buckets and the molecules within them change from epoch to epoch.
    assert [num_atoms[b].max() for b in first] != [num_atoms[b].max() for b in second]
    assert not {frozenset(b) for b in first} & {frozenset(b) for b in second}
    # Lightning sets the epoch before each one (so a resumed run sees the same batches).
    loader = dynamic.train_dataloader()
    loader.batch_sampler.seed = 7
    _set_sampler_epoch(loader, 1)
    assert list(loader.batch_sampler) == second


def test_evaluation_batches_are_in_size_order_and_cover_the_split(dynamic):
    num_atoms = dynamic.dataset.num_atoms.numpy()
    rows = np.concatenate([index.numpy() for index, _ in dynamic.val_dataloader()])
    assert np.array_equal(np.sort(rows), np.sort(dynamic.split.val))
    assert list(num_atoms[rows]) == sorted(num_atoms[rows])


def test_bucketing_needs_the_dense_backend(datamodule_factory):
    with pytest.raises(ValueError, match="data.bucketing=true pads dense batches less; it needs backend=dense"):
        datamodule_factory(subset=300, backend="pyg", bucketing=True)


@pytest.fixture(scope="module")
def split(datamodule_factory):
    return datamodule_factory(subset=3000, batch_size=BATCH, batch_parts=4)


def test_split_batches_are_size_sorted_parts_each_padded_to_its_largest(split):
    num_atoms = split.dataset.num_atoms
    rows = []
    for raw in split.train_dataloader():
        batch = split.on_after_batch_transfer(raw, 0)
        assert isinstance(batch, SplitBatch) and len(batch.parts) == 4 and batch.num_graphs == len(raw[0])
        sizes = [num_atoms[part.index] for part in batch.parts]
        assert [len(s) for s in sizes] == [len(raw[0]) // 4 + (i < len(raw[0]) % 4) for i in range(4)]
        assert all(part.x.shape[1] == s.max() for part, s in zip(batch.parts, sizes))  # its own largest
        assert all(a.max() <= b.min() for a, b in zip(sizes, sizes[1:]))  # sorted by size
        assert torch.equal(batch.y, torch.cat([part.y for part in batch.parts]))
        rows.append(raw[0])
    assert np.array_equal(np.sort(torch.cat(rows).numpy()), np.sort(split.split.train))
    # Diagnostics and notebooks get whole batches.
    assert not isinstance(split.batch(split.split.train[:64]), SplitBatch)


def test_a_split_batch_has_the_loss_and_gradients_of_the_whole_batch(packed):
    datamodule, module = build(compose_config("data.subset=1000", "data.batch_parts=4", "matmul_precision=highest"))
    rows = datamodule.split.train[:128]
    whole = datamodule.batch(rows)
    parts = datamodule.on_after_batch_transfer(datamodule._collate(rows), 0)
    results = []
    for batch in (whole, parts):
        module.zero_grad()
        loss, prediction = module.loss(batch)
        loss.backward()
        physical = dict(
            zip(
                torch.cat([p.index for p in getattr(batch, "parts", [batch])]).tolist(),
                module.denormalise(prediction, batch).tolist(),
            )
        )
        results.append((loss.detach(), [p.grad.clone() for p in module.parameters()], physical))
    (loss, gradients, physical), (split_loss, split_gradients, split_physical) = results
    torch.testing.assert_close(split_loss, loss, rtol=1e-5, atol=0)
    for a, b in zip(split_gradients, gradients):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert split_physical.keys() == physical.keys()
    np.testing.assert_allclose([split_physical[i] for i in physical], list(physical.values()), rtol=1e-5)


@pytest.mark.parametrize(
    "setting", [{"static_shapes": True}, {"bucketing": True}, {"backend": "pyg"}], ids=lambda s: next(iter(s))
)
def test_batch_parts_need_dense_dynamic_unbucketed_batches(setting, datamodule_factory):
    with pytest.raises(ValueError, match="pads the parts of a dense batch to their own sizes: it needs backend=dense"):
        datamodule_factory(subset=300, batch_parts=4, **setting)
