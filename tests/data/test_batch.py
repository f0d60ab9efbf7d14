"""Padded dataset: gathered rows equal the packed cache, with and without explicit hydrogens."""

import numpy as np
import pytest
import torch

from mpnn.data.batch import NODE_FEATURES, PaddedQM9, node_features


@pytest.fixture(scope="module")
def padded(packed):
    return PaddedQM9(packed, target_column=0), PaddedQM9(packed, target_column=0, explicit_h=False)


def molecule(packed, m):
    atom_ptr = np.concatenate([[0], np.cumsum(packed.num_atoms.astype(np.int64))])
    bond_ptr = np.concatenate([[0], np.cumsum(packed.bond_count.astype(np.int64))])
    lo, hi = atom_ptr[m], atom_ptr[m + 1]
    return lo, hi, packed.bonds[bond_ptr[m] : bond_ptr[m + 1]].astype(np.int64)


@pytest.mark.parametrize("m", [0, 208, 50_000, 130_830])
def test_explicit_h_rows_match_the_cache(packed, padded, m):
    explicit, _ = padded
    lo, hi, bonds = molecule(packed, m)
    n = hi - lo
    batch = explicit.gather(torch.tensor([m]))
    assert batch.mask[0].sum() == n
    np.testing.assert_array_equal(batch.pos[0, :n].numpy(), packed.pos[lo:hi])
    np.testing.assert_array_equal(batch.x[0, :n].numpy(), node_features(packed)[lo:hi])
    expected = np.zeros((n, n), dtype=np.int64)
    expected[bonds[:, 0], bonds[:, 1]] = bonds[:, 2]
    expected[bonds[:, 1], bonds[:, 0]] = bonds[:, 2]
    np.testing.assert_array_equal(batch.bond[0, :n, :n].numpy(), expected)
    assert batch.y[0].item() == packed.targets[m, 0]


@pytest.mark.parametrize("m", [0, 208, 50_000, 130_830])
def test_implicit_h_keeps_heavy_atoms_and_their_bonds(packed, padded, m):
    _, implicit = padded
    lo, hi, bonds = molecule(packed, m)
    heavy = np.flatnonzero(packed.z[lo:hi] != 1)
    batch = implicit.gather(torch.tensor([m]))
    k = len(heavy)
    assert batch.mask[0].sum() == k and implicit.n_max == 9
    np.testing.assert_array_equal(batch.pos[0, :k].numpy(), packed.pos[lo:hi][heavy])
    num_h = batch.x[0, :k, NODE_FEATURES.index("num_h")].numpy()
    np.testing.assert_array_equal(num_h, packed.num_h[lo:hi][heavy])
    assert batch.x[0, :k, NODE_FEATURES.index("H")].sum() == 0
    position = {atom: i for i, atom in enumerate(heavy)}
    heavy_bonds = [(position[i], position[j], t) for i, j, t in bonds if i in position and j in position]
    assert int((batch.bond[0] > 0).sum()) == 2 * len(heavy_bonds)
    for i, j, t in heavy_bonds:
        assert batch.bond[0, i, j] == t == batch.bond[0, j, i]
