"""The paper's representations as PyG transforms (mpnn/data/transforms.py): per molecule, exactly the dense
featurizer's edges and features; ImplicitHydrogens keeps heavy atoms, their bonds and num_h."""

import numpy as np
import pytest
import torch
from torch_geometric.transforms import Compose

from mpnn.data.datamodule import molecule_store
from mpnn.data.dataset import QM9Dataset
from mpnn.data.features import NODE_FEATURES
from mpnn.data.spec import DataSpec
from mpnn.data.transforms import DistanceBins, ImplicitHydrogens, RawDistance, VirtualEdges, transform_for
from tests.data.test_features import molecule_slices
from tests.data.test_graphs import assert_same_edges, dense_edges

TRANSFORMS = {
    "chemical_graph": (None, DataSpec(edges="chemical_graph")),
    "virtual_edges": (VirtualEdges, DataSpec(edges="chemical_graph", virtual_edges=True)),
    "distance_bins": (DistanceBins, DataSpec(edges="distance_bins")),
    "raw_distance": (RawDistance, DataSpec(edges="raw_distance")),
}


@pytest.fixture(scope="module")
def dataset(sample):
    return QM9Dataset(packed=sample)


@pytest.mark.parametrize("explicit_h", [True, False])
@pytest.mark.parametrize("name", TRANSFORMS)
def test_transforms_equal_the_dense_featurizer(sample, dataset, name, explicit_h):
    """RawDistance, DistanceBins, VirtualEdges (after ImplicitHydrogens or not) give each molecule the dense
    featurizer's edges and features; transform_for(spec) gives the same as these named transforms."""
    cls, spec = TRANSFORMS[name]
    spec = DataSpec(edges=spec.edges, virtual_edges=spec.virtual_edges, explicit_h=explicit_h)
    steps = ([] if explicit_h else [ImplicitHydrogens()]) + ([cls()] if cls else [])
    named, configured = Compose(steps), transform_for(spec)
    store = molecule_store(sample, spec, "dense")
    for m in range(len(sample)):
        data, padded = named(dataset[m]), store.gather(torch.tensor([m]))
        assert torch.equal(data.x, padded.x[padded.mask]) and torch.equal(data.pos, padded.pos[padded.mask])
        assert torch.equal(data.z, padded.z[padded.mask]) and data.num_nodes == int(padded.mask.sum())
        assert data.edge_attr.shape == (data.edge_index.shape[1], spec.edge_dim)
        assert_same_edges((data.edge_index, data.edge_attr), dense_edges(spec, store, torch.tensor([m])))
        other = configured(dataset[m])
        assert torch.equal(other.edge_index, data.edge_index) and torch.equal(other.edge_attr, data.edge_attr)
        assert torch.equal(other.x, data.x)


def step_names(**spec) -> list[str]:
    return [type(step).__name__ for step in transform_for(DataSpec(**spec)).transforms]


def test_transform_for_steps():
    """transform_for: ImplicitHydrogens first when hydrogens are implicit, then one edge transform if complete."""
    assert step_names(edges="chemical_graph") == []
    assert step_names(edges="chemical_graph", explicit_h=False) == ["ImplicitHydrogens"]
    assert step_names(edges="chemical_graph", virtual_edges=True, explicit_h=False) == [
        "ImplicitHydrogens",
        "PaperEdges",
    ]
    assert step_names(edges="raw_distance") == ["PaperEdges"]


@pytest.mark.parametrize("m", [0, 3, 20, 47])
def test_implicit_hydrogens_keeps_heavy_atoms_bonds_and_num_h(sample, dataset, m):
    """Heavy atoms in cache order with all their features (num_h included), the bonds among them with their
    types, renumbered; the input molecule is left as it was."""
    lo, hi, bonds = molecule_slices(sample, m)
    original = dataset[m]
    before = original.clone()
    data = ImplicitHydrogens()(original)
    heavy = np.flatnonzero(sample.z[lo:hi] != 1)
    assert data.num_nodes == len(heavy) and data.x.shape == (len(heavy), 13)
    assert torch.equal(data.x, before.x[heavy]) and torch.equal(data.pos, before.pos[heavy])
    assert torch.equal(data.z, before.z[heavy]) and not data.x[:, NODE_FEATURES.index("H")].any()
    assert data.x[:, NODE_FEATURES.index("num_h")].sum() == (sample.z[lo:hi] == 1).sum()
    position = {int(atom): k for k, atom in enumerate(heavy)}
    expected = {(position[i], position[j], t) for i, j, t in bonds.tolist() if i in position and j in position}
    expected |= {(j, i, t) for i, j, t in expected}
    got = set(zip(*data.edge_index.tolist(), (data.edge_attr.argmax(1) + 1).tolist()))
    assert got == expected and data.edge_index.shape[1] == len(expected)
    assert torch.equal(data.y, before.y) and data.smiles == before.smiles
    for key in ("x", "z", "pos", "edge_index", "edge_attr"):
        assert torch.equal(original[key], before[key]), key  # not modified in place


def test_raw_distance_follows_the_coordinates_dtype(dataset):
    """Edge features are computed in the coordinates' dtype."""
    data = dataset[20]
    data.pos = data.pos.double()
    double = RawDistance()(data)
    assert double.edge_attr.dtype == torch.float64
    torch.testing.assert_close(double.edge_attr.float(), RawDistance()(dataset[20]).edge_attr)
