import torch

from mpnn.data.batch import MoleculeBatch
from mpnn.data.edges import EdgeFeaturizer


def crafted_batch() -> MoleculeBatch:
    """Four atoms on a line at 0, 1.5, 4.2 and 9 Angstrom; atoms 0-1 single-bonded; one padding slot."""
    pos = torch.tensor([[[0.0, 0, 0], [1.5, 0, 0], [4.2, 0, 0], [9.0, 0, 0], [0, 0, 0]]])
    bond = torch.zeros(1, 5, 5, dtype=torch.long)
    bond[0, 0, 1] = bond[0, 1, 0] = 1
    mask = torch.tensor([[True, True, True, True, False]])
    return MoleculeBatch(
        x=torch.zeros(1, 5, 13), pos=pos, bond=bond, mask=mask, y=torch.zeros(1), index=torch.zeros(1, dtype=torch.long)
    )


def test_distance_bins_for_a_known_geometry():
    featurizer = EdgeFeaturizer("distance_bins")
    edges = featurizer(crafted_batch())
    assert featurizer.num_edge_types == 14
    types, adjacency = edges.types[0], edges.adjacency[0]
    assert types[0, 1] == 0  # bonded: keeps its bond type (single)
    assert types[0, 2] == 4 + 5  # 4.2 A: bin (4.0, 4.5] is the 6th bin (index 5)
    assert types[1, 2] == 4 + 2  # 2.7 A: (2.5, 3.0]
    assert types[0, 3] == 4 + 9  # 9 A: beyond 6
    assert types[2, 3] == 4 + 6  # 4.8 A: (4.5, 5.0]
    assert adjacency[:4, :4].sum() == 12 and not adjacency[4].any() and not adjacency.diagonal().any()


def test_chemical_graph_and_virtual_edges():
    batch = crafted_batch()
    plain = EdgeFeaturizer("chemical_graph")(batch)
    assert plain.adjacency[0].sum() == 2 and plain.adjacency[0, 0, 1] and plain.adjacency[0, 1, 0]
    virtual_featurizer = EdgeFeaturizer("chemical_graph", virtual_edges=True)
    virtual = virtual_featurizer(batch)
    assert virtual_featurizer.num_edge_types == 5
    assert virtual.adjacency[0].sum() == 12
    assert virtual.types[0, 0, 2] == 4 and virtual.types[0, 0, 1] == 0


def test_raw_distance_features():
    edges = EdgeFeaturizer("raw_distance")(crafted_batch())
    assert edges.features.shape == (1, 5, 5, 5)
    assert torch.isclose(edges.features[0, 0, 2, 0], torch.tensor(4.2))
    assert edges.features[0, 0, 1, 1:].tolist() == [1, 0, 0, 0]
    assert edges.features[0, 0, 2, 1:].sum() == 0
    assert edges.features[0, 0, 4].abs().sum() == 0  # padding


def test_bad_edge_settings_are_rejected():
    import pytest

    with pytest.raises(ValueError, match="valid: chemical_graph, distance_bins, raw_distance"):
        EdgeFeaturizer("complete")
    with pytest.raises(ValueError, match="chemical_graph only"):
        EdgeFeaturizer("raw_distance", virtual_edges=True)
