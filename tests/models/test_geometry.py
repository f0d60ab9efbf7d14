"""The plain-torch radius graph and triplets against brute-force references on real QM9 molecules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mpnn.data.cache import load
from mpnn.models.geometry import radius_graph, triplets

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "qm9_sample.npz"


@pytest.fixture(scope="module")
def molecules() -> list[np.ndarray]:
    """Positions (float64, Angstrom) of the 48 fixture molecules, 3 to 29 atoms."""
    packed = load(FIXTURE)
    return np.split(packed.pos.astype(np.float64), np.cumsum(packed.num_atoms)[:-1])


def collate(positions: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    pos = torch.from_numpy(np.concatenate(positions))
    batch = torch.repeat_interleave(torch.arange(len(positions)), torch.tensor([len(p) for p in positions]))
    return pos, batch


def reference_edges(positions: list[np.ndarray], cutoff: float, loop: bool, max_neighbors: int) -> set:
    """(neighbour j, centre i) pairs by brute force: squared distance < cutoff**2, the nearest `max_neighbors`."""
    edges, offset = set(), 0
    for pos in positions:
        for i in range(len(pos)):
            near = []
            for j in range(len(pos)):
                sq = float(((pos[i] - pos[j]) ** 2).sum())
                if sq < cutoff * cutoff and (loop or i != j):
                    near.append((sq, j))
            edges |= {(offset + j, offset + i) for _, j in sorted(near)[:max_neighbors]}
        offset += len(pos)
    return edges


def as_set(edge_index: torch.Tensor) -> set:
    return set(map(tuple, edge_index.t().tolist()))


@pytest.mark.parametrize("cutoff", [1.2, 2.0, 5.0])
@pytest.mark.parametrize("loop", [False, True])
def test_radius_graph_matches_brute_force_on_every_molecule(molecules, cutoff, loop):
    for pos in molecules:
        edge_index = radius_graph(*collate([pos]), cutoff, loop=loop)
        assert as_set(edge_index) == reference_edges([pos], cutoff, loop, 32)
        assert edge_index.shape[1] == len(as_set(edge_index))  # no duplicates


def test_radius_graph_on_a_batch_keeps_molecules_apart(molecules):
    chosen = [molecules[i] for i in (2, 32, 0, 17, 44, 33, 9)]  # 3 to 29 atoms, unsorted sizes
    pos, batch = collate(chosen)
    edge_index = radius_graph(pos, batch, cutoff=6.0)
    assert as_set(edge_index) == reference_edges(chosen, 6.0, False, 32)
    assert torch.equal(batch[edge_index[0]], batch[edge_index[1]])
    # Grouped by centre, as PyG returns them.
    assert bool((edge_index[1, 1:] >= edge_index[1, :-1]).all())


def test_max_num_neighbors_keeps_the_nearest_and_limits_the_centre(molecules):
    chosen = [molecules[i] for i in (32, 33, 5)]  # two 29-atom molecules and a small one
    pos, batch = collate(chosen)
    edge_index = radius_graph(pos, batch, cutoff=10.0, max_num_neighbors=4)
    assert as_set(edge_index) == reference_edges(chosen, 10.0, False, 4)
    per_centre = torch.bincount(edge_index[1], minlength=pos.size(0))
    assert per_centre.max().item() == 4  # edge_index[1] is the centre, whose neighbours are capped
    assert per_centre[batch == 2].max().item() == len(chosen[2]) - 1  # a 4-atom molecule keeps all 3


def test_distance_equal_to_the_cutoff_is_not_an_edge():
    pos = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 1.5]], dtype=torch.float64)
    assert radius_graph(pos, None, cutoff=1.5).shape[1] == 0
    assert radius_graph(pos, None, cutoff=1.5 + 1e-9).shape[1] == 2


def test_float32_positions_give_the_same_graph(molecules):
    pos, batch = collate(molecules[:12])
    torch.testing.assert_close(radius_graph(pos.float(), batch, 3.0), radius_graph(pos, batch, 3.0))


def reference_triplets(edge_index: torch.Tensor) -> list[tuple]:
    """PyG's triplet order by brute force: for each edge j -> i, each edge k -> j by k ascending, k != i."""
    row, col = edge_index.tolist()
    out = []
    for ji, (j, i) in enumerate(zip(row, col)):
        for k, kj in sorted((row[kj], kj) for kj in range(len(row)) if col[kj] == j):
            if k != i:
                out.append((i, j, k, kj, ji))
    return out


def test_triplets_match_pyg_order_and_the_geometric_definition(molecules):
    """On edges in shuffled order: PyG's triplets accept any edge order."""
    chosen = [molecules[i] for i in (0, 14, 32, 3)]
    pos, batch = collate(chosen)
    edge_index = radius_graph(pos, batch, cutoff=2.5)
    edge_index = edge_index[:, torch.randperm(edge_index.shape[1], generator=torch.Generator().manual_seed(0))]
    i, j, idx_i, idx_j, idx_k, idx_kj, idx_ji = triplets(edge_index, num_nodes=pos.size(0))

    assert torch.equal(i, edge_index[1]) and torch.equal(j, edge_index[0])
    got = list(zip(*(t.tolist() for t in (idx_i, idx_j, idx_k, idx_kj, idx_ji))))
    assert got == reference_triplets(edge_index)
    # Every path k - j - i with k != i through two edges, and nothing else.
    neighbours = {}
    for src, dst in as_set(edge_index):
        neighbours.setdefault(dst, set()).add(src)
    expected = {(a, b, c) for a in neighbours for b in neighbours[a] for c in neighbours.get(b, ()) if c != a}
    assert {(a, b, c) for a, b, c, _, _ in got} == expected
    assert len(got) == len(expected) > 0
    assert torch.equal(edge_index[0, idx_kj], idx_k) and torch.equal(edge_index[1, idx_kj], idx_j)
    assert torch.equal(batch[idx_k], batch[idx_i])


def test_triplets_of_an_empty_graph():
    out = triplets(torch.empty(2, 0, dtype=torch.long), num_nodes=3)
    assert all(t.numel() == 0 and t.dtype == torch.long for t in out)
