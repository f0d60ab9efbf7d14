"""Edge representations (mpnn/data/edges.py) on crafted geometries, dense and sparse, and on real molecules."""

import re

import pytest
import torch

from mpnn.data.batch import MoleculeBatch
from mpnn.data.datamodule import molecule_store
from mpnn.data.edges import EdgeFeaturizer, complete_graph, sparse_edges
from mpnn.data.spec import DataSpec

SPECS = {
    "chemical_graph": DataSpec(edges="chemical_graph"),
    "virtual_edges": DataSpec(edges="chemical_graph", virtual_edges=True),
    "distance_bins": DataSpec(edges="distance_bins"),
    "raw_distance": DataSpec(edges="raw_distance"),
}


def crafted_batch(dtype=torch.float32) -> MoleculeBatch:
    """Molecule 0: four atoms on a line at 0, 1.5, 4.2 and 9 Angstrom, atoms 0-1 single-bonded, one padding slot.
    Molecule 1: three atoms at 0, 2 and 6 Angstrom (bin boundaries), atoms 1-2 double-bonded, two padding slots."""
    pos = torch.zeros(2, 5, 3, dtype=dtype)
    pos[0, :4, 0] = torch.tensor([0.0, 1.5, 4.2, 9.0])
    pos[1, :3, 0] = torch.tensor([0.0, 2.0, 6.0])
    bond = torch.zeros(2, 5, 5, dtype=torch.long)
    bond[0, 0, 1] = bond[0, 1, 0] = 1
    bond[1, 1, 2] = bond[1, 2, 1] = 2
    mask = torch.tensor([[True, True, True, True, False], [True, True, True, False, False]])
    z = torch.where(mask, 6, 0)
    return MoleculeBatch(
        x=torch.zeros(2, 5, 13, dtype=dtype),
        z=z,
        pos=pos,
        bond=bond,
        mask=mask,
        y=torch.zeros(2),
        index=torch.arange(2),
    )


def types(features: torch.Tensor) -> torch.Tensor:
    """Discrete edge types: the argmax of the one-hot features."""
    return features.argmax(-1)


def test_spec_sizes_of_each_representation():
    """Edge feature widths: 4 bond types, +1 virtual type, +10 distance bins, or 4 bond columns + distance."""
    sizes = {name: (spec.num_edge_types, spec.edge_dim, spec.complete_graph) for name, spec in SPECS.items()}
    assert sizes == {
        "chemical_graph": (4, 4, False),
        "virtual_edges": (5, 5, True),
        "distance_bins": (14, 14, True),
        "raw_distance": (0, 5, True),
    }


def test_distance_bins_for_known_distances():
    """Bonded pairs keep their bond type; others fall in [0,2], 8 bins of 0.5 over (2,6], or (6,inf)."""
    edges = EdgeFeaturizer(SPECS["distance_bins"])(crafted_batch())
    assert edges.features.shape == (2, 5, 5, 14)
    line, boundaries = types(edges.features[0]), types(edges.features[1])
    assert line[0, 1] == line[1, 0] == 0  # bonded: single, though 1.5 A would be bin [0, 2]
    assert line[0, 2] == 4 + 5  # 4.2 A: (4.0, 4.5]
    assert line[1, 2] == 4 + 2  # 2.7 A: (2.5, 3.0]
    assert line[2, 3] == 4 + 6  # 4.8 A: (4.5, 5.0]
    assert line[0, 3] == line[1, 3] == 4 + 9  # 9 A and 7.5 A: beyond 6
    assert boundaries[0, 1] == 4 + 0  # exactly 2 A: the closed first bin [0, 2]
    assert boundaries[0, 2] == 4 + 8  # exactly 6 A: (5.5, 6.0], not beyond 6
    assert boundaries[1, 2] == boundaries[2, 1] == 1  # bonded: double
    adjacency = edges.adjacency
    assert adjacency[0, :4, :4].sum() == 12 and adjacency[1, :3, :3].sum() == 6 and adjacency.sum() == 18
    assert not adjacency[0, 4].any() and not adjacency[0, :, 4].any() and not adjacency[1, 3:].any()
    assert not adjacency.diagonal(dim1=1, dim2=2).any()
    assert torch.equal(edges.features.sum(-1), adjacency.float())  # one-hot on edges, zero elsewhere


def test_chemical_graph_and_virtual_edges():
    """The chemical graph has only the bonds; virtual edges complete it with a fifth type."""
    batch = crafted_batch()
    plain = EdgeFeaturizer(SPECS["chemical_graph"])(batch)
    assert plain.adjacency.sum() == 4 and plain.adjacency[0, 0, 1] and plain.adjacency[0, 1, 0]
    assert plain.adjacency[1, 1, 2] and plain.adjacency[1, 2, 1]
    assert plain.features[0, 0, 1].tolist() == [1, 0, 0, 0] and plain.features[1, 2, 1].tolist() == [0, 1, 0, 0]
    assert torch.equal(plain.features.sum(-1), plain.adjacency.float())
    virtual = EdgeFeaturizer(SPECS["virtual_edges"])(batch)
    assert virtual.features.shape == (2, 5, 5, 5) and virtual.adjacency.sum() == 18
    assert types(virtual.features[0])[0, 2] == 4 and types(virtual.features[0])[0, 1] == 0
    assert types(virtual.features[1])[1, 2] == 1 and types(virtual.features[1])[0, 2] == 4
    assert torch.equal(virtual.features.sum(-1), virtual.adjacency.float())


def test_raw_distance_features():
    """Raw distance: the bond one-hot (4 columns, zero when not bonded), then the distance; zero off the edges."""
    edges = EdgeFeaturizer(SPECS["raw_distance"])(crafted_batch())
    features = edges.features
    assert features.shape == (2, 5, 5, 5) and edges.adjacency.sum() == 18
    assert features[0, 0, 1].tolist() == [1, 0, 0, 0, 1.5]
    assert features[0, 0, 2, :4].sum() == 0 and torch.isclose(features[0, 0, 2, 4], torch.tensor(4.2))
    assert torch.isclose(features[0, 3, 1, 4], torch.tensor(7.5))
    assert features[1, 2, 1].tolist() == [0, 1, 0, 0, 4.0]
    assert features[0, 0, 4].abs().sum() == 0 and features[0, 4].abs().sum() == 0  # padding
    assert features.diagonal(dim1=1, dim2=2).abs().sum() == 0


@pytest.mark.parametrize("name", SPECS)
def test_featurizer_follows_the_coordinates_dtype(name):
    """Features are computed in the batch's dtype (float64 for double-precision runs), with the same values."""
    featurizer = EdgeFeaturizer(SPECS[name])
    single, double = featurizer(crafted_batch()), featurizer(crafted_batch(torch.float64))
    assert double.features.dtype == torch.float64 and single.features.dtype == torch.float32
    assert torch.equal(single.adjacency, double.adjacency)
    torch.testing.assert_close(double.features.float(), single.features)


def test_complete_graph_lists_every_ordered_pair_per_molecule():
    """`complete_graph`: all ordered pairs of distinct atoms, per molecule, sorted, with the global atom numbers."""
    num_atoms = torch.tensor([3, 1, 2])
    ptr = torch.tensor([0, 3, 4, 6])
    edge_index, molecule = complete_graph(num_atoms, ptr, n_max=3)
    pairs = [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (4, 5), (5, 4)]
    assert list(zip(*edge_index.tolist())) == pairs
    assert molecule.tolist() == [0] * 6 + [2] * 2


@pytest.mark.parametrize("name", SPECS)
def test_sparse_edges_equal_the_dense_featurizer(name):
    """`sparse_edges` on the crafted molecules as flat lists gives exactly the dense featurizer's edges."""
    spec, batch = SPECS[name], crafted_batch()
    dense = EdgeFeaturizer(spec)(batch)
    num_atoms = batch.mask.sum(1)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), num_atoms.cumsum(0)])
    b, v, w = batch.bond.nonzero(as_tuple=True)  # both directions of every bond
    bond_index = torch.stack([ptr[b] + v, ptr[b] + w])
    edge_index, edge_attr = sparse_edges(
        spec, batch.pos[batch.mask], bond_index, batch.bond[b, v, w], num_atoms, ptr, 4
    )
    assert edge_attr.shape == (int(dense.adjacency.sum()), spec.edge_dim)
    molecule = torch.bucketize(edge_index[0], ptr, right=True) - 1
    target, source = edge_index[1] - ptr[molecule], edge_index[0] - ptr[molecule]
    assert dense.adjacency[molecule, target, source].all()  # [b, v, w]: w sends to v
    torch.testing.assert_close(edge_attr, dense.features[molecule, target, source])


@pytest.mark.parametrize("name", SPECS)
def test_real_molecules_edges(sample, name):
    """On real molecules: bonded pairs carry their bond type in every representation; complete graphs have
    n(n-1) edges; raw distance is the interatomic distance."""
    spec = SPECS[name]
    batch = molecule_store(sample, spec, "dense").gather(torch.arange(len(sample)))
    edges = EdgeFeaturizer(spec)(batch)
    n = batch.mask.sum(1)
    bonded = batch.bond > 0
    if spec.complete_graph:
        assert torch.equal(edges.adjacency.sum((1, 2)), n * (n - 1))
    else:
        assert torch.equal(edges.adjacency, bonded)
    assert torch.equal(edges.features[..., :4][bonded].argmax(-1), batch.bond[bonded] - 1)
    assert torch.equal(edges.features[..., :4][bonded].sum(-1), torch.ones(int(bonded.sum())))
    if spec.edges == "raw_distance":
        distance = torch.cdist(batch.pos, batch.pos)
        torch.testing.assert_close(edges.features[..., 4], distance * edges.adjacency)
        assert distance[bonded].max() < 2.0  # covalent bonds in QM9 are shorter than 2 A
    else:
        assert torch.equal(edges.features.sum(-1), edges.adjacency.float())


def test_bad_edge_settings_are_rejected_with_the_valid_names():
    """Unknown edge kinds and virtual edges on complete graphs fail, naming what is valid."""
    with pytest.raises(ValueError, match=re.escape("valid: chemical_graph, distance_bins, raw_distance")):
        DataSpec(edges="complete")
    for edges in ("raw_distance", "distance_bins"):
        with pytest.raises(ValueError, match="applies to data.edges=chemical_graph only"):
            DataSpec(edges=edges, virtual_edges=True)
