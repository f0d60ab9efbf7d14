"""Atom features and the atoms a representation keeps (mpnn/data/features.py), on real QM9 molecules."""

import numpy as np
import pytest

from mpnn.data.features import NODE_FEATURES, atom_table, node_features
from mpnn.data.spec import NUM_NODE_FEATURES, DataSpec

COLUMN = {name: k for k, name in enumerate(NODE_FEATURES)}


def molecule_slices(packed, m):
    """Atom range and bonds (i, j, code) of molecule `m` in the cache."""
    atom_ptr = np.concatenate([[0], np.cumsum(packed.num_atoms.astype(np.int64))])
    bond_ptr = np.concatenate([[0], np.cumsum(packed.bond_count.astype(np.int64))])
    return atom_ptr[m], atom_ptr[m + 1], packed.bonds[bond_ptr[m] : bond_ptr[m + 1]].astype(np.int64)


def test_node_feature_columns_follow_the_cache(sample):
    """Each column of `node_features` is the cache array its name says, in NODE_FEATURES order."""
    x = node_features(sample)
    assert x.dtype == np.float32 and x.shape == (len(sample.z), NUM_NODE_FEATURES) == (len(sample.z), 13)
    assert DataSpec().node_features == len(NODE_FEATURES)
    for k, (name, z) in enumerate(zip(("H", "C", "N", "O", "F"), (1, 6, 7, 8, 9))):
        np.testing.assert_array_equal(x[:, COLUMN[name]], sample.z == z)
        assert k == COLUMN[name]
    assert (x[:, :5].sum(1) == 1).all()  # QM9 has only H, C, N, O, F
    np.testing.assert_array_equal(x[:, COLUMN["atomic_number"]], sample.z)
    for name in ("acceptor", "donor", "aromatic", "num_h"):
        np.testing.assert_array_equal(x[:, COLUMN[name]], getattr(sample, name))
    for code, name in enumerate(("sp", "sp2", "sp3"), start=1):
        np.testing.assert_array_equal(x[:, COLUMN[name]], sample.hybridization == code)
    hydrogens = sample.z == 1
    assert not x[hydrogens][:, [COLUMN["sp"], COLUMN["sp2"], COLUMN["sp3"], COLUMN["num_h"]]].any()


def test_methane_and_methanol_features(sample):
    """Known chemistry: methane's carbon is sp3 with 4 hydrogens; methanol's OH oxygen donates and accepts."""
    x = node_features(sample)
    methane, _, _ = molecule_slices(sample, 0)
    methanol, _, _ = molecule_slices(sample, 7)
    assert sample.index[0] == 1 and sample.index[7] == 8  # QM9 1: CH4, QM9 8: CH3OH (atoms C, O, H...)
    assert x[methane].tolist() == [0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 1, 4]
    oxygen = x[methanol + 1]
    assert oxygen[COLUMN["O"]] == 1 and oxygen[COLUMN["num_h"]] == 1 and oxygen[COLUMN["sp3"]] == 1
    assert oxygen[COLUMN["donor"]] == 1 and oxygen[COLUMN["acceptor"]] == 1


def test_num_h_counts_the_bonded_hydrogens(sample):
    """num_h of each heavy atom is its number of hydrogen neighbours: what implicit hydrogens rely on."""
    for m in range(len(sample)):
        lo, hi, bonds = molecule_slices(sample, m)
        z = sample.z[lo:hi]
        counted, degree = np.zeros(hi - lo, np.int64), np.zeros(hi - lo, np.int64)
        np.add.at(counted, bonds[:, 0], z[bonds[:, 1]] == 1)
        np.add.at(counted, bonds[:, 1], z[bonds[:, 0]] == 1)
        np.add.at(degree, bonds[:, :2].reshape(-1), 1)
        heavy = z != 1
        np.testing.assert_array_equal(sample.num_h[lo:hi][heavy], counted[heavy])
        assert (degree[~heavy] == 1).all() and not counted[~heavy].any()  # each H bonded to one heavy atom


def test_explicit_h_table_is_the_cache(sample):
    """With explicit hydrogens the table holds every atom and bond of the cache, molecule-local."""
    table = atom_table(sample, explicit_h=True)
    np.testing.assert_array_equal(table.x, node_features(sample))
    np.testing.assert_array_equal(table.z, sample.z)
    np.testing.assert_array_equal(table.pos, sample.pos)
    np.testing.assert_array_equal(table.num_atoms, sample.num_atoms)
    np.testing.assert_array_equal(table.bond_count, sample.bond_count)
    np.testing.assert_array_equal(np.stack([table.bond_i, table.bond_j, table.bond_type], 1), sample.bonds)
    assert table.atom_ptr[-1] == len(sample.z)
    np.testing.assert_array_equal(table.local, np.arange(len(sample.z)) - table.atom_ptr[table.molecule])


@pytest.mark.parametrize("m", [0, 3, 20, 47])
def test_implicit_h_table_keeps_heavy_atoms_and_their_bonds(sample, m):
    """Without hydrogens: heavy atoms renumbered 0..k-1 per molecule, their bonds, num_h kept."""
    table = atom_table(sample, explicit_h=False)
    lo, hi, bonds = molecule_slices(sample, m)
    heavy = np.flatnonzero(sample.z[lo:hi] != 1)
    atoms = np.flatnonzero(table.molecule == m)
    assert table.num_atoms[m] == len(heavy) == len(atoms)
    np.testing.assert_array_equal(table.local[atoms], np.arange(len(heavy)))
    np.testing.assert_array_equal(table.z[atoms], sample.z[lo:hi][heavy])
    np.testing.assert_array_equal(table.pos[atoms], sample.pos[lo:hi][heavy])
    np.testing.assert_array_equal(table.x[atoms], node_features(sample)[lo:hi][heavy])
    assert table.x[atoms, COLUMN["num_h"]].sum() == (sample.z[lo:hi] == 1).sum()
    position = {int(atom): k for k, atom in enumerate(heavy)}
    expected = sorted((position[i], position[j], t) for i, j, t in bonds if i in position and j in position)
    kept = table.bond_molecule == m
    got = sorted(zip(table.bond_i[kept].tolist(), table.bond_j[kept].tolist(), table.bond_type[kept].tolist()))
    assert got == expected and table.bond_count[m] == len(expected)
    assert len(expected) == len(bonds) - (sample.z[lo:hi] == 1).sum()  # only bonds to hydrogens are dropped
