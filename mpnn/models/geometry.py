"""Graph construction for the geometric models in plain torch: radius graphs and DimeNet's triplets.

PyG's own `radius_graph` and DimeNet's `triplets` need pyg-lib / torch-cluster / torch-sparse,
which are not always installable. QM9 molecules are small (<= 29 atoms), so a padded
(molecules, n, n) distance matrix per batch is cheap and needs nothing but torch, on any device.
Both functions return exactly the conventions of the PyG functions they replace.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _molecule_offsets(batch: Tensor, num_nodes: int) -> tuple[Tensor, Tensor, int]:
    """(first node index of each molecule, position of each node within its molecule, largest molecule)."""
    counts = torch.bincount(batch, minlength=1)
    ptr = torch.cumsum(counts, 0) - counts
    local = torch.arange(num_nodes, device=batch.device) - ptr[batch]
    return ptr, local, int(counts.max())


def radius_graph(
    pos: Tensor, batch: Tensor | None, cutoff: float, loop: bool = False, max_num_neighbors: int = 32
) -> Tensor:
    """Edges between atoms of the same molecule closer than `cutoff`, as `torch_geometric.nn.radius_graph`.

    Convention (flow source_to_target): `edge_index[0]` is the neighbour j, `edge_index[1]` the
    centre i; edges come grouped by centre (ascending), neighbours ascending within a centre.
    A pair is an edge when its squared distance is strictly below cutoff**2, computed in the
    dtype of `pos`: the comparison pyg-lib and torch-cluster make (`dist < r * r`).
    `batch` must be sorted (as in every PyG `Batch`); None means one molecule.

    A centre with more than `max_num_neighbors` neighbours keeps its nearest ones (ties: lower
    index first). PyG keeps an implementation-defined subset instead (kd-tree order on CPU, the
    first indices on CUDA), which makes the graph depend on atom order; on QM9 (<= 29 atoms,
    default 32) the limit never binds. With `loop=True` the self-loop is one of the
    `max_num_neighbors`, as in PyG.
    """
    num_nodes = pos.size(0)
    if batch is None:
        batch = torch.zeros(num_nodes, dtype=torch.long, device=pos.device)
    if num_nodes == 0:
        return torch.empty(2, 0, dtype=torch.long, device=pos.device)
    ptr, local, n = _molecule_offsets(batch, num_nodes)
    num_molecules = ptr.numel()

    padded = pos.new_zeros(num_molecules, n, pos.size(1))
    padded[batch, local] = pos.detach()
    present = torch.zeros(num_molecules, n, dtype=torch.bool, device=pos.device)
    present[batch, local] = True

    sq_dist = (padded.unsqueeze(2) - padded.unsqueeze(1)).pow(2).sum(-1)  # (B, centre i, neighbour j)
    edge = present.unsqueeze(2) & present.unsqueeze(1) & (sq_dist < cutoff * cutoff)
    if not loop:
        edge &= ~torch.eye(n, dtype=torch.bool, device=pos.device)
    if n > max_num_neighbors:
        order = torch.where(edge, sq_dist, torch.full_like(sq_dist, float("inf"))).argsort(dim=-1, stable=True)
        rank = torch.empty_like(order).scatter_(-1, order, torch.arange(n, device=pos.device).expand_as(order))
        edge &= rank < max_num_neighbors

    molecule, centre, neighbour = edge.nonzero(as_tuple=True)
    return torch.stack([ptr[molecule] + neighbour, ptr[molecule] + centre])


def triplets(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """DimeNet's angle triplets k -> j -> i (k != i), as `torch_geometric.nn.models.dimenet.triplets`.

    Returns (i, j, idx_i, idx_j, idx_k, idx_kj, idx_ji): i = edge_index[1] and j = edge_index[0]
    per edge; per triplet the three nodes, the edge k -> j and the edge j -> i. Triplets come in
    the order PyG's SparseTensor gives them: by edge j -> i, then by k ascending.
    """
    row, col = edge_index  # row = source j, col = target i
    num_edges = row.numel()
    # Incoming edges of every node, grouped by target and sorted by source: a CSR of the adjacency.
    by_target = torch.argsort(col * num_nodes + row, stable=True)
    incoming = torch.bincount(col, minlength=num_nodes)
    start = torch.cumsum(incoming, 0) - incoming

    per_edge = incoming[row]  # edges k -> j for every edge j -> i
    idx_ji = torch.arange(num_edges, device=row.device).repeat_interleave(per_edge)
    first = torch.cumsum(per_edge, 0) - per_edge
    within = torch.arange(idx_ji.numel(), device=row.device) - first[idx_ji]
    idx_kj = by_target[start[row[idx_ji]] + within]

    idx_i, idx_j, idx_k = col[idx_ji], row[idx_ji], row[idx_kj]
    keep = idx_i != idx_k
    return col, row, idx_i[keep], idx_j[keep], idx_k[keep], idx_kj[keep], idx_ji[keep]
