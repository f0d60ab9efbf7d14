"""On-device PyG batches (mpnn/data/graphs.py): `GraphQM9.gather` equals PyG's own dataset, transforms and
DataLoader, and the dense path, for every edge representation with and without explicit hydrogens."""

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from mpnn.data.datamodule import molecule_store
from mpnn.data.dataset import QM9Dataset
from mpnn.data.edges import EdgeFeaturizer
from mpnn.data.graphs import BatchSizes, GraphQM9, ragged_gather
from mpnn.data.spec import DataSpec
from mpnn.data.transforms import transform_for
from mpnn.targets import TARGET_NAMES

REPRESENTATIONS = {
    "chemical_graph": {"edges": "chemical_graph"},
    "virtual_edges": {"edges": "chemical_graph", "virtual_edges": True},
    "distance_bins": {"edges": "distance_bins"},
    "raw_distance": {"edges": "raw_distance"},
}
CASES = [(name, explicit_h) for name in REPRESENTATIONS for explicit_h in (True, False)]


def spec_of(name: str, explicit_h: bool, target: str = "u0") -> DataSpec:
    return DataSpec(target=target, explicit_h=explicit_h, **REPRESENTATIONS[name])


def sorted_edges(edge_index: torch.Tensor, edge_attr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Edges in (source, target) order, to compare edge sets whatever order they were built in."""
    key = edge_index[0] * (int(edge_index.max()) + 1 if edge_index.numel() else 1) + edge_index[1]
    order = key.argsort()
    assert key.unique().numel() == key.numel(), "duplicate edges"
    return edge_index[:, order], edge_attr[order]


def assert_same_edges(got: tuple[torch.Tensor, torch.Tensor], expected: tuple[torch.Tensor, torch.Tensor]) -> None:
    got_index, got_attr = sorted_edges(*got)
    expected_index, expected_attr = sorted_edges(*expected)
    assert torch.equal(got_index, expected_index)
    torch.testing.assert_close(got_attr, expected_attr)


def dense_edges(spec: DataSpec, store, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The dense featurizer's edges of molecules `rows` as a PyG edge list in the batch's atom numbering."""
    batch = store.gather(rows)
    edges = EdgeFeaturizer(spec)(batch)
    num_atoms = batch.mask.sum(1)
    ptr = torch.cat([num_atoms.new_zeros(1), num_atoms.cumsum(0)])
    b, v, w = edges.adjacency.nonzero(as_tuple=True)  # [b, v, w]: w sends to v
    return torch.stack([ptr[b] + w, ptr[b] + v]), edges.features[b, v, w]


@pytest.fixture(scope="module")
def rows(sample):
    """Every molecule of the sample in a shuffled order, then some again (repeats)."""
    order = torch.randperm(len(sample), generator=torch.Generator().manual_seed(0))
    return torch.cat([order, torch.tensor([5, 5, 0, 47])])


def pyg_reference(sample, spec: DataSpec, rows: torch.Tensor) -> Batch:
    """The same molecules through PyG's machinery: QM9Dataset + transform_for(spec) + DataLoader."""
    dataset = QM9Dataset(packed=sample, transform=transform_for(spec))
    return next(iter(DataLoader(dataset[rows], batch_size=len(rows))))


@pytest.mark.parametrize(("name", "explicit_h"), CASES)
def test_gather_equals_pyg_dataset_and_loader(sample, rows, name, explicit_h):
    """A gathered batch holds exactly what QM9Dataset + transform_for(spec) + PyG's DataLoader give."""
    spec = spec_of(name, explicit_h)
    store = molecule_store(sample, spec, "pyg")
    assert isinstance(store, GraphQM9) and len(store) == len(sample)
    batch = store.gather(rows)
    expected = pyg_reference(sample, spec, rows)
    assert isinstance(batch, Batch) and batch.num_graphs == expected.num_graphs == len(rows)
    for key in ("x", "z", "pos", "batch", "ptr", "idx"):
        assert batch[key].dtype == expected[key].dtype, key
        assert torch.equal(batch[key], expected[key]), key
    assert torch.equal(batch.y, expected.y[:, TARGET_NAMES.index("u0")]) and batch.y.dtype == torch.float64
    assert batch.edge_attr.shape == (batch.edge_index.shape[1], spec.edge_dim)
    assert_same_edges((batch.edge_index, batch.edge_attr), (expected.edge_index, expected.edge_attr))


@pytest.mark.parametrize(("name", "explicit_h"), CASES)
def test_gather_equals_the_dense_path(sample, rows, name, explicit_h):
    """Per molecule, the PyG batch's atoms, edges and edge features are the dense batch's (`EdgeFeaturizer`)."""
    spec = spec_of(name, explicit_h)
    dense = molecule_store(sample, spec, "dense")
    batch = molecule_store(sample, spec, "pyg").gather(rows)
    padded = dense.gather(rows)
    for key in ("x", "z", "pos"):
        assert torch.equal(batch[key], getattr(padded, key)[padded.mask]), key
    assert torch.equal(batch.y, padded.y)
    assert_same_edges((batch.edge_index, batch.edge_attr), dense_edges(spec, dense, rows))
    molecule = batch.batch[batch.edge_index]
    assert torch.equal(molecule[0], molecule[1])  # no edge crosses molecules


@pytest.mark.parametrize("name", REPRESENTATIONS)
def test_single_heavy_atom_molecules_have_no_edges(sample, name):
    """Heavy-atom graphs of CH4, NH3, H2O are single atoms: an empty edge list of the right width, as PyG's."""
    spec = spec_of(name, explicit_h=False)
    rows = torch.tensor([0, 1, 2])
    batch = molecule_store(sample, spec, "pyg").gather(rows)
    assert batch.x.shape == (3, 13) and batch.z.tolist() == [6, 7, 8]
    assert batch.edge_index.shape == (2, 0) and batch.edge_attr.shape == (0, spec.edge_dim)
    expected = pyg_reference(sample, spec, rows)
    assert expected.edge_index.shape == (2, 0) and expected.edge_attr.shape == (0, spec.edge_dim)


def test_ragged_gather_on_a_crafted_case():
    """Blocks of rows (one empty) come out in block order, with their block and position within it."""
    starts, counts = torch.tensor([10, 0, 5, 2]), torch.tensor([2, 0, 3, 1])
    index, block, within = ragged_gather(starts, counts, total=6)
    assert index.tolist() == [10, 11, 5, 6, 7, 2]
    assert block.tolist() == [0, 0, 2, 2, 2, 3]
    assert within.tolist() == [0, 1, 0, 1, 2, 0]
    index, block, within = ragged_gather(torch.tensor([3]), torch.tensor([0]), total=0)
    assert index.numel() == block.numel() == within.numel() == 0


def test_any_order_and_repeats(sample):
    """A batch of rows in any order, with repeats, is the concatenation of the single-molecule batches."""
    spec = spec_of("chemical_graph", explicit_h=True)
    store = molecule_store(sample, spec, "pyg")
    rows = torch.tensor([30, 2, 30, 17, 2])
    batch = store.gather(rows)
    singles = [store.gather(torch.tensor([r])) for r in rows.tolist()]
    fields = ("x", "z", "pos", "edge_index", "edge_attr", "y", "idx")
    expected = Batch.from_data_list([Data(**{key: single[key] for key in fields}) for single in singles])
    for key in ("x", "z", "pos", "edge_index", "edge_attr", "y", "idx", "batch", "ptr"):
        assert torch.equal(batch[key], expected[key]), key
    assert batch.idx.tolist() == sample.index[rows.numpy()].tolist()
    assert torch.equal(batch.x[batch.batch == 0], batch.x[batch.batch == 2])


def test_sizes_and_dtype(sample):
    """`sizes` counts atoms, directed bonds and the largest molecule on the host; passing them changes
    nothing; `dtype` sets x, pos and edge_attr (same values), y stays float64."""
    spec = spec_of("raw_distance", explicit_h=True)
    store = molecule_store(sample, spec, "pyg")
    rows = torch.tensor([0, 4, 20])
    sizes = store.sizes(rows)
    assert sizes == BatchSizes(
        atoms=int(sample.num_atoms[[0, 4, 20]].sum()),
        bonds=2 * int(sample.bond_count[[0, 4, 20]].sum()),
        n_max=int(sample.num_atoms[[0, 4, 20]].max()),
    )
    single, double = store.gather(rows), store.gather(rows, sizes, dtype=torch.float64)
    assert double.x.dtype == double.pos.dtype == double.edge_attr.dtype == torch.float64
    assert single.x.dtype == single.pos.dtype == single.edge_attr.dtype == torch.float32
    assert torch.equal(double.x, single.x.double()) and torch.equal(double.pos, single.pos.double())
    assert torch.equal(double.edge_index, single.edge_index)
    torch.testing.assert_close(double.edge_attr.float(), single.edge_attr)
    assert double.y.dtype == torch.float64 and double.z.dtype == torch.long
