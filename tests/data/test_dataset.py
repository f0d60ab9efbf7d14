"""QM9 as a PyG dataset (mpnn/data/dataset.py): each molecule a `Data` equal to the cache and the dense path."""

import numpy as np
import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from torch_geometric.transforms import Compose, Distance

from mpnn.data.datamodule import molecule_store
from mpnn.data.dataset import QM9Dataset
from mpnn.data.features import NODE_FEATURES, node_features
from mpnn.data.spec import DataSpec
from mpnn.data.transforms import ImplicitHydrogens, transform_for
from mpnn.targets import TARGET_NAMES
from tests.conftest import DATA_ROOT
from tests.data.test_features import molecule_slices


@pytest.fixture(scope="module")
def dataset(sample):
    """The sample with its real SMILES (stored in the cache with the molecules)."""
    return QM9Dataset(packed=sample)


def test_molecule_is_a_data_object_with_the_documented_fields(sample, dataset):
    """Each molecule: x (atoms, 13), z, pos, both directions of every bond, one-hot bond types, y (1, 17) float64
    in `target_names` order, its QM9 index and SMILES, all equal to the cache."""
    assert len(dataset) == len(sample)
    assert QM9Dataset.node_feature_names == NODE_FEATURES and QM9Dataset.target_names == TARGET_NAMES
    assert len(TARGET_NAMES) == 17
    features = node_features(sample)
    for m in range(len(sample)):
        lo, hi, bonds = molecule_slices(sample, m)
        data = dataset[m]
        assert isinstance(data, Data) and data.num_nodes == hi - lo
        assert data.x.shape == (hi - lo, 13) and data.x.dtype == torch.float32
        np.testing.assert_array_equal(data.x.numpy(), features[lo:hi])
        np.testing.assert_array_equal(data.z.numpy(), sample.z[lo:hi])
        np.testing.assert_array_equal(data.pos.numpy(), sample.pos[lo:hi])
        assert data.y.shape == (1, 17) and data.y.dtype == torch.float64
        np.testing.assert_array_equal(data.y[0].numpy(), sample.targets[m])
        assert data.idx.tolist() == [int(sample.index[m])]
        both_directions = {(i, j, t) for i, j, t in bonds.tolist()} | {(j, i, t) for i, j, t in bonds.tolist()}
        assert data.edge_index.shape == (2, 2 * len(bonds)) and data.edge_attr.shape == (2 * len(bonds), 4)
        assert torch.equal(data.edge_attr.sum(1), torch.ones(2 * len(bonds)))  # one-hot
        codes = (data.edge_attr.argmax(1) + 1).tolist()
        assert set(zip(*data.edge_index.tolist(), codes)) == both_directions
        assert data.is_coalesced() and data.is_undirected()


def test_real_smiles_and_bond_types(dataset):
    """SMILES come from qm9pack by QM9 index; the edge_attr columns are single, double, triple, aromatic."""
    by_smiles = {dataset[m].smiles: dataset[m] for m in range(len(dataset))}
    assert dataset[0].smiles == "C" and dataset[2].smiles == "O" and dataset[7].smiles == "CO"
    acetylene = by_smiles["C#C"]  # H-C#C-H: one triple bond, two single
    assert acetylene.edge_attr.sum(0).tolist() == [4, 0, 2, 0]
    formaldehyde = by_smiles["C=O"]
    assert formaldehyde.edge_attr.sum(0).tolist() == [4, 2, 0, 0]
    aromatic = [data for data in by_smiles.values() if data.x[:, NODE_FEATURES.index("aromatic")].any()]
    assert aromatic and all(data.edge_attr[:, 3].sum() >= 10 for data in aromatic)  # a ring: 5+ bonds, twice


@pytest.mark.parametrize("target", ["mu", "gap"])
def test_molecules_equal_the_dense_path(sample, dataset, target):
    """Every field of `dataset[m]` is what the dense store holds for molecule m (atoms, bond matrix, target)."""
    padded = molecule_store(sample, DataSpec(target=target), "dense").gather(torch.arange(len(sample)))
    for m in range(len(sample)):
        data, mask = dataset[m], padded.mask[m]
        assert torch.equal(data.x, padded.x[m][mask]) and torch.equal(data.z, padded.z[m][mask])
        assert torch.equal(data.pos, padded.pos[m][mask])
        assert data.y[0, TARGET_NAMES.index(target)] == padded.y[m]
        bond = torch.zeros_like(padded.bond[m])
        bond[data.edge_index[0], data.edge_index[1]] = data.edge_attr.argmax(1) + 1
        assert torch.equal(bond, padded.bond[m])


def test_works_with_pygs_dataloader(sample, dataset):
    """PyG's DataLoader collates molecules: atoms concatenated, edges shifted, y (B, 17), idx and smiles per graph."""
    loader = DataLoader(dataset, batch_size=10, shuffle=False)
    batches = list(loader)
    assert [b.num_graphs for b in batches] == [10, 10, 10, 10, 8]
    first = batches[0]
    assert first.x.shape == (int(sample.num_atoms[:10].sum()), 13) and first.y.shape == (10, 17)
    assert first.idx.tolist() == sample.index[:10].tolist() and first.smiles[:3] == ["C", "N", "O"]
    assert first.edge_index.shape[1] == 2 * int(sample.bond_count[:10].sum())
    assert torch.equal(first.batch[first.edge_index[0]], first.batch[first.edge_index[1]])
    np.testing.assert_array_equal(torch.cat([b.y for b in batches]).numpy(), sample.targets)


def test_composes_with_pygs_own_transforms(sample):
    """PyG's Distance after our raw-distance transform appends the same distance our last column holds."""
    spec = DataSpec(edges="raw_distance")
    dataset = QM9Dataset(packed=sample, transform=Compose([transform_for(spec), Distance(norm=False)]))
    for m in (0, 20, 47):
        data = dataset[m]
        n = data.num_nodes
        assert data.edge_attr.shape == (n * (n - 1), 6)
        torch.testing.assert_close(data.edge_attr[:, 5], data.edge_attr[:, 4])
    chemical = QM9Dataset(packed=sample, transform=Distance(norm=False))
    data = chemical[20]
    assert data.edge_attr.shape[1] == 5 and data.edge_attr[:, 4].max() < 2.0  # bond lengths


def test_pre_transform_and_pre_filter(sample):
    """`pre_filter` keeps the molecules it accepts and `pre_transform` is stored, as PyG's process() does."""
    kept = [m for m in range(len(sample)) if (sample.z[slice(*molecule_slices(sample, m)[:2])] == 9).any()]
    assert 0 < len(kept) < len(sample)
    dataset = QM9Dataset(
        packed=sample,
        pre_transform=ImplicitHydrogens(),
        pre_filter=lambda data: bool((data.z == 9).any()),
    )
    assert len(dataset) == len(kept)
    assert dataset.idx.tolist() == sample.index[kept].tolist()
    for position, m in enumerate(kept):
        lo, hi, _ = molecule_slices(sample, m)
        data = dataset[position]
        heavy = sample.z[lo:hi] != 1
        np.testing.assert_array_equal(data.z.numpy(), sample.z[lo:hi][heavy])
        assert data.smiles == sample.smiles[m] and data.y.shape == (1, 17)
        assert data.edge_index.shape[1] == 2 * (int(sample.bond_count[m]) - int((~heavy).sum()))
    only_filter = QM9Dataset(packed=sample, pre_filter=lambda data: data.num_nodes > 20)
    assert len(only_filter) == int((sample.num_atoms > 20).sum()) > 0


def test_documented_import():
    """The module docstring's `from mpnn.data import QM9Dataset` works, and loading the cache alone
    stays light (the export is lazy)."""
    import subprocess
    import sys

    from mpnn.data import QM9Dataset as Imported

    assert Imported is QM9Dataset
    code = "import sys, mpnn.data.cache; assert 'torch_geometric' not in sys.modules and 'lightning' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.slow
def test_full_dataset():
    """The whole cache: 130,831 molecules as Data objects, and a DataLoader iterates batches of them."""
    dataset = QM9Dataset(DATA_ROOT)
    assert len(dataset) == 130_831
    last = dataset[-1]
    assert last.x.shape[1] == 13 and last.y.shape == (1, 17) and isinstance(last.smiles, str)
    loader = DataLoader(dataset, batch_size=256, shuffle=True)
    for step, batch in enumerate(loader):
        assert batch.num_graphs == 256 and batch.y.shape == (256, 17)
        assert batch.x.shape[0] == batch.num_nodes == int(batch.ptr[-1])
        if step == 3:
            break
