"""QM9DataModule (mpnn/data/datamodule.py) on the real cache, both backends: splits, batches, training targets."""

import re

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from mpnn.data.batch import MoleculeBatch
from mpnn.data.datamodule import QM9DataModule, molecule_store
from mpnn.data.spec import DataSpec
from mpnn.models.protocol import batch_element_counts
from mpnn.targets import TARGET_NAMES


@pytest.fixture(scope="module")
def dense(datamodule_factory):
    return datamodule_factory(subset=300, batch_size=64, eval_batch_size=10, target="u0")


@pytest.fixture(scope="module")
def pyg(datamodule_factory):
    return datamodule_factory(subset=300, batch_size=64, eval_batch_size=10, backend="pyg", edges="distance_bins")


@pytest.fixture(scope="module")
def pyg_implicit_h(datamodule_factory):
    return datamodule_factory(subset=300, backend="pyg", explicit_h=False, target="u0")


@pytest.mark.parametrize("backend", ["dense", "pyg"])
def test_loaders_cover_each_split_once(dense, pyg, backend):
    """Train, validation and test loaders yield each molecule of their split exactly once; batches hold them."""
    dm = dense if backend == "dense" else pyg
    assert dm.backend == backend and len(dm.split.train) == 300 - 23 - 23
    seen = {}
    for stage, loader in (
        ("train", dm.train_dataloader()),
        ("val", dm.val_dataloader()),
        ("test", dm.test_dataloader()),
    ):
        rows = []
        for raw in loader:
            batch = dm.on_after_batch_transfer(raw, 0)
            index = raw[0]
            assert isinstance(batch, MoleculeBatch if backend == "dense" else Batch)
            assert batch.num_graphs == len(index)
            if backend == "dense":
                assert torch.equal(batch.index, index)
            else:
                assert batch.idx.tolist() == dm.packed.index[index.numpy()].tolist()
            np.testing.assert_array_equal(batch.y.numpy(), dm.packed.targets[index.numpy(), dm.target_column])
            rows.append(index.numpy())
        seen[stage] = np.concatenate(rows)
        assert len(seen[stage]) == len(set(seen[stage].tolist()))
        np.testing.assert_array_equal(np.sort(seen[stage]), np.sort(getattr(dm.split, stage)))
    assert not set(seen["train"]) & (set(seen["val"]) | set(seen["test"])) and not set(seen["val"]) & set(seen["test"])


def test_both_backends_share_the_split(dense, pyg):
    """The same seed gives the same split whatever the backend."""
    for stage in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(dense.split, stage), getattr(pyg.split, stage))


def test_pyg_batches_count_their_sizes_on_the_host(pyg):
    """The PyG loader's host-side sizes are those of the gathered batch (atoms, directed bonds, largest molecule)."""
    index, sizes = next(iter(pyg.train_dataloader()))
    batch = pyg.on_after_batch_transfer((index, sizes), 0)
    num_atoms = batch.ptr.diff()
    assert sizes.atoms == batch.num_nodes and sizes.n_max == int(num_atoms.max())
    assert sizes.bonds == 2 * int(pyg.packed.bond_count[index.numpy()].astype(np.int64).sum())
    assert batch.edge_index.shape[1] == int((num_atoms * (num_atoms - 1)).sum())  # distance_bins: complete graphs
    assert batch.edge_attr.shape[1] == pyg.spec.edge_dim == 14


def test_dense_batches_are_cropped_to_their_largest_molecule(dense, datamodule_factory):
    """Dense batches are as wide as their largest molecule; static shapes pad to 29 atoms and drop a partial batch."""
    for raw in dense.train_dataloader():
        batch = dense.on_after_batch_transfer(raw, 0)
        assert batch.x.shape[1] == int(batch.mask.sum(1).max()) == raw[1]
    static = datamodule_factory(subset=300, batch_size=32, static_shapes=True)
    shapes = {static.on_after_batch_transfer(b, 0).x.shape for b in static.train_dataloader()}
    assert shapes == {(32, 29, 13)} and len(static.train_dataloader()) == len(static.split.train) // 32
    last = list(static.val_dataloader())[-1]
    assert static.on_after_batch_transfer(last, 0).x.shape[1] == 29  # evaluation keeps every molecule, padded


def test_training_targets_are_the_training_split(dense):
    """`training_targets()`: the target column of the training rows, and each molecule's element counts."""
    y, counts = dense.training_targets()
    rows = dense.split.train
    column = TARGET_NAMES.index("u0")
    assert dense.target_column == column
    np.testing.assert_array_equal(y, dense.packed.targets[rows, column])
    assert counts.shape == (len(rows), 10) and counts.dtype == np.float64
    batch = dense.batch(rows)
    np.testing.assert_array_equal(batch.y.numpy(), y)
    np.testing.assert_array_equal(counts.sum(1), batch.mask.sum(1).numpy())  # every atom counted once
    np.testing.assert_array_equal(counts[:, 1], (batch.z == 1).sum(1).numpy())


@pytest.mark.parametrize("case", ["dense", "pyg", "pyg_implicit_h", "dense_implicit_h"])
def test_training_counts_match_the_batches(dense, pyg, pyg_implicit_h, case):
    """The scaler's counts from `training_targets()` equal `batch_element_counts` of a batch of the same molecules,
    for both backends, with hydrogens as atoms or as num_h."""
    dm = {"dense": dense, "pyg": pyg, "pyg_implicit_h": pyg_implicit_h, "dense_implicit_h": dense}[case]
    _, counts = dm.training_targets()
    rows = dm.split.train[:100]
    if case == "dense_implicit_h":
        store = molecule_store(dm.packed, DataSpec(target="u0", explicit_h=False), "dense")
        batch = store.gather(torch.from_numpy(rows))
        assert batch.x.shape[1] <= 9
    else:
        batch = dm.batch(rows)
    if case == "pyg_implicit_h":
        assert (batch.z > 1).all()
    np.testing.assert_array_equal(batch_element_counts(batch).numpy(), counts[:100])


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"batch_size": 0}, "data.batch_size=0 must be a positive number of molecules"),
        ({"eval_batch_size": -5}, "data.eval_batch_size=-5 must be a positive number of molecules"),
        ({"split_seed": -1}, "data.split_seed=-1 must be a non-negative integer"),
        ({"edges": "bonds"}, "unknown data.edges='bonds'; valid: chemical_graph, distance_bins, raw_distance"),
        ({"edges": "raw_distance", "virtual_edges": True}, "applies to data.edges=chemical_graph only"),
        ({"backend": "jax"}, "unknown backend='jax'; valid: dense, pyg"),
        (
            {"backend": "pyg", "static_shapes": True},
            "data.static_shapes=true pads dense batches; it needs backend=dense",
        ),
        ({"target": "energy"}, "unknown target 'energy'; valid targets: mu, alpha, homo"),
    ],
)
def test_bad_settings_fail_with_the_valid_range(setting, message):
    """Bad settings fail when the datamodule is made, before any data is read, saying what is valid."""
    with pytest.raises(ValueError, match=re.escape(message)):
        QM9DataModule(root="/nonexistent", **setting)
