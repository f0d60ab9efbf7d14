"""Dense store (mpnn/data/padded.py via `molecule_store(..., "dense")`): gathered rows equal the cache."""

import numpy as np
import pytest
import torch

from mpnn.data.datamodule import molecule_store
from mpnn.data.features import NODE_FEATURES, node_features
from mpnn.data.padded import PaddedQM9
from mpnn.data.spec import DataSpec
from mpnn.targets import TARGET_NAMES
from tests.data.test_features import molecule_slices


def bond_matrix(n, bonds):
    """Symmetric (n, n) matrix of bond codes, 0 off the bonds."""
    matrix = np.zeros((n, n), np.int64)
    matrix[bonds[:, 0], bonds[:, 1]] = bonds[:, 2]
    matrix[bonds[:, 1], bonds[:, 0]] = bonds[:, 2]
    return matrix


@pytest.mark.parametrize("target", ["mu", "u0"])
def test_explicit_h_rows_match_the_cache(sample, target):
    """Every molecule's row holds its cache atoms (x, z, pos), symmetric bond matrix and target; zero padding."""
    store = molecule_store(sample, DataSpec(target=target), "dense")
    assert isinstance(store, PaddedQM9) and len(store) == len(sample) and store.n_max == 29
    batch = store.gather(torch.arange(len(sample)))
    assert batch.num_graphs == len(sample) and batch.x.shape == (len(sample), 29, 13)
    np.testing.assert_array_equal(batch.y.numpy(), sample.targets[:, TARGET_NAMES.index(target)])
    assert batch.y.dtype == torch.float64 and batch.z.dtype == batch.bond.dtype == torch.long
    features = node_features(sample)
    for m in range(len(sample)):
        lo, hi, bonds = molecule_slices(sample, m)
        n = hi - lo
        assert batch.mask[m].tolist() == [True] * n + [False] * (29 - n)
        np.testing.assert_array_equal(batch.x[m, :n].numpy(), features[lo:hi])
        np.testing.assert_array_equal(batch.z[m, :n].numpy(), sample.z[lo:hi])
        np.testing.assert_array_equal(batch.pos[m, :n].numpy(), sample.pos[lo:hi])
        np.testing.assert_array_equal(batch.bond[m, :n, :n].numpy(), bond_matrix(n, bonds))
        assert not batch.x[m, n:].any() and not batch.z[m, n:].any() and not batch.pos[m, n:].any()
        assert not batch.bond[m, n:].any() and not batch.bond[m, :, n:].any()


def test_implicit_h_keeps_heavy_atoms_their_bonds_and_num_h(sample):
    """Without explicit hydrogens a row holds the heavy atoms in cache order, the bonds among them, num_h."""
    store = molecule_store(sample, DataSpec(explicit_h=False), "dense")
    assert store.n_max == 9  # QM9 has at most 9 heavy atoms
    batch = store.gather(torch.arange(len(sample)))
    features = node_features(sample)
    for m in range(len(sample)):
        lo, hi, bonds = molecule_slices(sample, m)
        heavy = np.flatnonzero(sample.z[lo:hi] != 1)
        k = len(heavy)
        assert batch.mask[m].sum() == k and not batch.mask[m, k:].any()
        np.testing.assert_array_equal(batch.z[m, :k].numpy(), sample.z[lo:hi][heavy])
        np.testing.assert_array_equal(batch.pos[m, :k].numpy(), sample.pos[lo:hi][heavy])
        np.testing.assert_array_equal(batch.x[m, :k].numpy(), features[lo:hi][heavy])
        num_h = batch.x[m, :k, NODE_FEATURES.index("num_h")]
        assert num_h.sum() == (sample.z[lo:hi] == 1).sum()  # every hydrogen survives as a count
        assert not batch.x[m, :, NODE_FEATURES.index("H")].any()
        np.testing.assert_array_equal(batch.bond[m, :k, :k].numpy(), bond_matrix(hi - lo, bonds)[np.ix_(heavy, heavy)])
        assert int((batch.bond[m] > 0).sum()) == 2 * (len(bonds) - (sample.z[lo:hi] == 1).sum())
    np.testing.assert_array_equal(batch.y.numpy(), sample.targets[:, 0])


def test_gather_crops_to_the_largest_molecule_or_n(sample):
    """`gather` crops to the batch's largest molecule unless `n` is given; rows follow the index, repeats too."""
    store = molecule_store(sample, DataSpec(), "dense")
    rows = torch.tensor([4, 0, 4, 2])  # HCN (3 atoms), CH4 (5), HCN, H2O (3)
    batch = store.gather(rows)
    assert batch.x.shape == (4, 5, 13) and batch.mask.sum(1).tolist() == [3, 5, 3, 3]
    assert batch.index.tolist() == rows.tolist()
    assert torch.equal(batch.x[0], batch.x[2]) and torch.equal(batch.pos[0], batch.pos[2])
    static = store.gather(rows, n=store.n_max)
    assert static.x.shape == (4, 29, 13) and static.bond.shape == (4, 29, 29)
    assert torch.equal(static.x[:, :5], batch.x) and torch.equal(static.bond[:, :5, :5], batch.bond)
    assert torch.equal(static.mask[:, :5], batch.mask) and not static.mask[:, 5:].any()


def test_dtype_sets_features_and_coordinates_only(sample):
    """`dtype` changes x and pos (same values); z, bond stay long and y float64."""
    store = molecule_store(sample, DataSpec(), "dense")
    rows = torch.arange(10, 20)
    single, double = store.gather(rows), store.gather(rows, dtype=torch.float64)
    assert single.x.dtype == single.pos.dtype == torch.float32
    assert double.x.dtype == double.pos.dtype == torch.float64
    assert torch.equal(double.x, single.x.double()) and torch.equal(double.pos, single.pos.double())
    assert double.z.dtype == double.bond.dtype == torch.long and double.y.dtype == torch.float64
    assert torch.equal(double.bond, single.bond) and torch.equal(double.y, single.y)
